"""One build attempt of one recipe: what every build strategy shares.

Both strategies (stage by stage in build/pipeline.py, cibuildwheel in
build/cibuildwheel.py) run inside an :class:`Attempt`, which owns:

* the log (:class:`AttemptLog`): kept in memory until the build really starts,
  so a recipe whose wheels are all stored leaves no file behind;
* the build keys (:meth:`Attempt.plan`) and the "already built (same build
  key)" skip;
* the stage clock (:meth:`Attempt.stage_done`: one progress line a stage, and
  a stop at the stage boundary after Ctrl-C, see :data:`CANCELLED`);
* the source (:meth:`Attempt.prepare_source`), fetched into the work folder;
* the end: a FactoryError becomes the result's one message, any other error
  an "internal error" line with the traceback in the log, and every attempt
  past the skip leaves ``logs/NAME/<stamp>.log`` and ``.json``, failed ones too.

May import: build (source, record, store), settings, _util, errors, ui.
"""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename
from rich.markup import escape

from .. import ui
from .._util.fs import atomic_write_text, sha256_file, utcnow
from ..errors import BuildError, EnvironmentProblem, FactoryError
from ..settings.factory import Config
from ..settings.recipe import Recipe
from ..settings.target import Target
from . import store
from .record import build_key
from .source import SourceTree, check_patches, declared_requires_python, prepare, python_fits, source_id

STATUSES = ("built", "skipped", "failed", "disabled")

# Set when the command is interrupted (Ctrl-C): builds still running in worker
# threads stop at their next stage boundary, and never reach dist/.
CANCELLED = threading.Event()


def check_cancelled() -> None:
    """Raise KeyboardInterrupt in a worker thread once the command was interrupted."""
    if CANCELLED.is_set():
        raise KeyboardInterrupt


@dataclass
class RecipeResult:
    """What building one recipe came to (the library's report; cli/build.py prints it)."""

    name: str
    status: str  # one of STATUSES
    wheels: list[Path] = field(default_factory=list)  # in dist/ (built, or already there when skipped)
    duration: float = 0.0  # seconds
    logs: list[Path] = field(default_factory=list)
    message: str = ""
    version: str = ""
    compiler_cache: dict | None = None  # ccache counts of the Pythons built (compcache.read_stats)
    # What its dependents get, when not ``wheels``: for a recipe with [versions], every version's
    # wheels, package.version's first (catalog.build_recipes); each dependent picks (choose_dependencies).
    offered: list[Path] | None = None

    def for_dependents(self) -> list[Path]:
        """The wheels its dependents get: ``offered`` when set, else ``wheels``."""
        return self.offered if self.offered is not None else self.wheels


class AttemptLog(io.TextIOBase):
    """The attempt's log: buffered in memory until :meth:`open`, secrets masked."""

    def __init__(self):
        self._buf = io.StringIO()
        self._file = None
        self.path: Path | None = None

    def open(self, path: Path) -> None:
        if self._file is None:
            self.path = path
            self._file = open(path, "w", encoding="utf-8", errors="replace")
            self._file.write(self._buf.getvalue())
            self._file.flush()

    def write(self, s: str) -> int:
        return (self._file or self._buf).write(ui.mask_secrets(s))

    def flush(self) -> None:
        if self._file:
            self._file.flush()

    def close(self) -> None:
        if self._file:
            f, self._file = self._file, None
            f.close()


def rel(config: Config, path: Path | None) -> str | None:
    """``path`` relative to the project root (as records and messages show it), else as is."""
    if path is None:
        return None
    try:
        return path.resolve().relative_to(config.root.resolve()).as_posix()
    except ValueError:
        return str(path)


def select_pythons(config: Config, runner, wanted: Sequence[str] | None) -> dict[str, str]:
    """X.Y -> interpreter: the asked-for Pythons (or the config's) that the runner has, oldest first.

    Raises EnvironmentProblem when an asked-for one (or every configured one) is missing.
    """
    asked = list(wanted) if wanted else config.pythons
    found = runner.pythons(asked)
    if wanted:
        missing = [v for v in asked if v not in found]
        if missing:
            raise EnvironmentProblem(
                f"Python {', '.join(missing)} not found on the {runner.name} runner "
                f"(looked for python{missing[0]} on PATH); install it or drop --python {missing[0]}"
            )
    if not found:
        raise EnvironmentProblem(
            f"none of the configured Pythons ({', '.join(asked)}) is available on the {runner.name} runner; "
            f"install one (e.g. apt-get install -y python3 python3-venv) or change target.pythons in factory.toml"
        )
    return dict(sorted(found.items(), key=lambda kv: tuple(int(x) for x in kv[0].split("."))))


def wheel_fits(wheel: Path, version: str) -> bool:
    """Whether CPython X.Y installs ``wheel`` by its interpreter and ABI tags (cp311-cp311, an older
    cpXY-abi3, py3-none): packaging.tags' lists of what that CPython accepts, on the wheel's own
    platforms (the platform is the runner's business, not the Python's)."""
    tags = parse_wheel_filename(wheel.name)[3]
    platforms = sorted({t.platform for t in tags})
    python = tuple(int(p) for p in version.split("."))
    accepted = {*cpython_tags(python, platforms=platforms), *compatible_tags(python, platforms=platforms)}
    return not accepted.isdisjoint(tags)


def choose_dependencies(recipe: Recipe, wheels: Sequence[Path], version: str) -> list[Path]:
    """The dependency wheels a build of ``recipe`` for CPython X.Y gets: per project, those of the
    first version in ``wheels`` (each recipe's package.version first, RecipeResult.for_dependents)
    that fit the Python (:func:`wheel_fits`) and match the recipe's depends specifier, if any
    (``recipe.depends_versions``). BuildError when a project has wheels for the Python and none
    matches."""
    fitting = [(w, *parse_wheel_filename(w.name)[:2]) for w in wheels if wheel_fits(w, version)]
    chosen: dict[str, object] = {}  # project -> its version taken
    for _, project, v in fitting:
        spec = recipe.depends_versions.get(project)
        if project not in chosen and (spec is None or spec.contains(v, prereleases=True)):
            chosen[project] = v
    missed = sorted({p for _, p, _ in fitting} - set(chosen))
    if missed:
        offered = {p: sorted({str(v) for _, q, v in fitting if q == p}) for p in missed}
        raise BuildError(
            f"{recipe.name}: depends on " + "; ".join(
                f"'{p}{recipe.depends_versions[p]}', and the wheels of recipes/{p} for Python {version} are "
                f"{', '.join(offered[p])}" for p in missed)
            + f"; fix: build a version that matches (`nox -s build-{missed[0]}` builds every version its recipe "
              f"lists), or change the specifier in {recipe.path}")
    return [w for w, project, v in fitting if chosen.get(project) == v]


@dataclass
class Plan:
    """The build keys of an attempt and what is left to build."""

    policy: str  # as asked for: manylinux_X_Y or "best" (part of the key)
    source_id: str  # sha256:… or git:<commit>
    keys: dict[str, str]  # X.Y -> build key, every wanted Python
    dependency_wheels: list[Path]  # every one handed to the attempt
    dependencies: dict[str, list[Path]]  # X.Y -> those that fit it
    interpreters: dict[str, str]  # X.Y -> interpreter, the Pythons to build (empty: nothing to do)
    kept: list[Path]  # wheels stored already under their key

    @property
    def todo(self) -> list[str]:
        return list(self.interpreters)

    @property
    def commit(self) -> str | None:
        return self.source_id.removeprefix("git:") if self.source_id.startswith("git:") else None


class Attempt:
    """A context manager around one build attempt; ``attempt.result`` is its RecipeResult.

    ``with Attempt(...) as attempt:`` never lets a FactoryError (or a bug) out:
    the result says "failed" with one message. KeyboardInterrupt goes through,
    with the attempt recorded as "interrupted".
    """

    def __init__(self, config: Config, recipe: Recipe, runner, *, start: float | None = None):
        self.config, self.recipe, self.runner = config, recipe, runner
        self.name = recipe.name
        self.start = time.monotonic() if start is None else start
        self.workdir = config.paths.build / recipe.name
        self.log = AttemptLog()
        self.stages: dict[str, float] = {}
        self.record: dict = {"recipe": recipe.name, "version": recipe.version, "target": config.arch,
                             "runner": runner.id, "started_at": utcnow(), "pythons": {}}
        self.result = RecipeResult(recipe.name, "failed", version=recipe.version)
        self.log_path: Path | None = None
        self._record_path: Path | None = None
        self._clock = time.monotonic()

    # --- the keys and the skip --------------------------------------------------------

    def plan(self, wanted: Sequence[str] | None, dependency_wheels: Iterable[Path], *, force: bool = False) -> Plan:
        """Build keys for the wanted Pythons (default: the config's); what is stored is kept.

        Asking the runner which Pythons it has costs a process per version (more
        under pyenv or emulation): it is asked only when something is left to build.
        When nothing is, the result becomes "skipped" (and says so) and the plan's
        ``todo`` is empty.
        """
        config, recipe = self.config, self.recipe
        self.log.write(f"# {self.name} {recipe.version} on {self.runner.id}, target {config.arch}, {utcnow()}\n")
        policy = Target.of(config, recipe).policy
        check_patches(recipe, config.paths.patches)
        sid = source_id(recipe, self.log)
        fingerprint = recipe.fingerprint(config.paths.patches)
        versions = list(dict.fromkeys(wanted or config.pythons))
        dependency_wheels = list(dependency_wheels)
        deps = {v: choose_dependencies(recipe, dependency_wheels, v) for v in versions}
        keys = {v: build_key(recipe_fingerprint=fingerprint, source_id=sid, python=v, target=config.arch,
                             policy=policy, dependencies=[sha256_file(w) for w in deps[v]]) for v in versions}
        stored = store.stored_with_keys(config.paths.dist, keys)  # read even with --force: a damaged record stops it here
        stored = {} if force else stored
        interpreters = {}
        if len(stored) < len(keys):
            interpreters = {v: exe for v, exe in select_pythons(config, self.runner, wanted).items()
                            if v not in stored}
        plan = Plan(policy, sid, keys, dependency_wheels, deps, interpreters,
                    list(dict.fromkeys(stored.values())))  # an abi3 wheel serves several Pythons
        if not plan.todo:
            self.result.status, self.result.wheels = "skipped", plan.kept
            self.result.message = (f"already built (same build key): {', '.join(p.name for p in plan.kept)}; "
                                   f"--force builds it again with the next build tag")
            ui.info(f"[bold]{self.name}[/bold] {recipe.version}: {escape(self.result.message)}")
        return plan

    # --- the build ---------------------------------------------------------------------

    def begin(self, plan: Plan, how: str) -> None:
        """The build really starts: open the log file, say so, start the stage clock."""
        self._open()
        ui.info(f"[bold]{self.name}[/bold] {self.recipe.version}: building for Python {', '.join(plan.todo)} "
                f"{escape(how)} (log: {rel(self.config, self.log_path)})")
        self.record["build_keys"] = {v: plan.keys[v] for v in plan.todo}
        self.restart_clock()

    def restart_clock(self) -> None:
        self._clock = time.monotonic()

    def stage_done(self, stage: str, detail: str = "") -> float:
        """Close a stage: its seconds since the last one count for ``stage``; one progress line.

        Returns those seconds. Raises KeyboardInterrupt when the command was interrupted.
        """
        check_cancelled()
        now = time.monotonic()
        seconds = now - self._clock
        self.stages[stage] = self.stages.get(stage, 0.0) + seconds
        ui.stage(self.name, stage, seconds, detail)
        self._clock = now
        return seconds

    def stage_seconds(self, names: Iterable[str]) -> dict[str, float]:
        """The named stages' seconds so far (rounded to ms), for the records."""
        return {k: round(s, 3) for k, s in self.stages.items() if k in names}

    def prepare_source(self, plan: Plan) -> SourceTree:
        """An empty work folder, then the source fetched, unpacked and patched into it."""
        config = self.config
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        tree = prepare(self.recipe, commit=plan.commit, cache=config.paths.cache, patches_root=config.paths.patches,
                       workdir=self.workdir, log=self.log, index_url=config.indexes.install[0],
                       on_stage=self.stage_done)
        self.record["source"] = tree.info
        return tree

    def drop_pythons_outside(self, plan: Plan, tree: SourceTree) -> None:
        """Leave out of ``plan`` the Pythons the source's Requires-Python excludes, as cibuildwheel
        does (each one is named in the attempt's record and the result's message).

        Raises BuildError when it excludes every Python left to build and none is stored: there
        is nothing this version can be built for.
        """
        found = declared_requires_python(tree.project)
        if found is None:
            return
        spec, where = found
        outside = [v for v in plan.todo if not python_fits(spec, v)]
        if not outside:
            return
        why = f"{self.name} {self.recipe.version} requires Python {spec} ({where})"
        if len(outside) == len(plan.todo) and not plan.kept:
            raise BuildError(
                f"{why}, and the Pythons to build are {', '.join(outside)}: build another version "
                f"(`--version`, or a [versions] entry of {self.recipe.path}) or a Python it supports "
                f"(target.pythons in factory.toml, or --python)")
        for v in outside:
            del plan.interpreters[v]
            self.record["pythons"][v] = {"status": "skipped", "reason": why}
        ui.info(f"[bold]{self.name}[/bold] {self.recipe.version}: Python {', '.join(outside)} left out: "
                f"{escape(why)}")
        self.log.write(f"# Python {', '.join(outside)} left out: {why}\n")
        if not plan.todo:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.result.status, self.result.wheels = "skipped", list(plan.kept)
            self.result.message = f"already built for the other Pythons; {self._skipped_note()}"

    def _skipped_note(self) -> str:
        """The Pythons drop_pythons_outside left out, from the attempt record ("" when none)."""
        return "; ".join(f"Python {v} left out: {p['reason']}" for v, p in self.record["pythons"].items()
                         if p["status"] == "skipped")

    failed_host: dict | None = None  # host() of the layer a build failed in (set by the pipeline)

    def host(self) -> dict:
        """The runner's facts for records and the attempt."""
        return {**self.runner.describe(), "runner_id": self.runner.id}

    def log_rel(self) -> str | None:
        return rel(self.config, self.log_path)

    def store_all(self, plan: Plan, records: dict[str, tuple[Path, dict]],
                  served: Mapping[str, str] | None = None) -> None:
        """Every Python is ready: now, and only now, dist/ changes. ``records``: X.Y -> (wheel, record);
        ``served``: X.Y -> the older X.Y whose (abi3/py3) wheel it installs, verified with it."""
        check_cancelled()
        dist, added = self.config.paths.dist, []
        try:
            for v, (wheel, record) in records.items():
                new = not (dist / wheel.name).exists()
                dest = store.store_wheel(dist, wheel, record)
                added += [dest] if new else []
                self.result.wheels.append(dest)
                self.record["pythons"][v] = {"status": "built", "wheel": dest.name, "build_key": plan.keys[v]}
        except BaseException:
            # Every Python or none: what this attempt put in dist/ before the failure goes again.
            for dest in added:
                store.record_path(dist, dest.name).unlink(missing_ok=True)
                dest.unlink(missing_ok=True)
            self.result.wheels = []
            raise
        for v, older in (served or {}).items():
            self.record["pythons"][v] = {"status": "built", "wheel": self.record["pythons"][older]["wheel"],
                                         "build_key": plan.keys[v], "built_with": older}
        self.stage_done("store", ", ".join(p.name for p in self.result.wheels))
        self.result.wheels += plan.kept
        self.result.status = "built"
        self.result.message = "built " + ", ".join(p.name for p in self.result.wheels) \
            + (f"; {note}" if (note := self._skipped_note()) else "")
        shutil.rmtree(self.workdir, ignore_errors=True)  # kept on failure, for a look inside

    # --- the end -----------------------------------------------------------------------

    def __enter__(self) -> "Attempt":
        return self

    def __exit__(self, kind, error, tb) -> bool:
        try:
            return self._failed(error) if error is not None else False
        finally:
            self._finish()

    def _failed(self, error: BaseException) -> bool:
        """The result's one message; True when the error is handled here (all but Ctrl-C)."""
        if isinstance(error, FactoryError):
            msg = str(error.args[0])
            self.result.message = msg if msg.startswith(self.name) else f"{self.name}: {msg}"
            self.log.write(f"\n# FAILED: {self.result.message}\n")
            return True
        if isinstance(error, KeyboardInterrupt):
            self.result.message = f"{self.name}: interrupted"
            self.record["status"] = "interrupted"
            self.log.write("\n# INTERRUPTED\n")
            return False
        if isinstance(error, Exception):  # a bug: keep the traceback in the log, say so in one line
            self.result.message = (f"{self.name}: internal error: {type(error).__name__}: {error} "
                                   f"(traceback in the log)")
            self.log.write("\n" + "".join(traceback.format_exception(error)))
            return True
        return False

    def _finish(self) -> None:
        self.result.duration = time.monotonic() - self.start
        if self.result.status != "skipped" or self.log_path is not None:  # past begin(): keep its record
            self._open()
            self.record.update(status=self.record.get("status") or self.result.status, message=self.result.message,
                               duration=round(self.result.duration, 3),
                               stages={k: round(s, 3) for k, s in self.stages.items()}, log=self.log_rel(),
                               wheels=[p.name for p in self.result.wheels], host=self.failed_host or self.host(),
                               finished_at=utcnow())
            atomic_write_text(self._record_path, json.dumps(self.record, indent=2, sort_keys=True) + "\n")
        self.log.close()

    def _open(self) -> None:
        if self.log_path is None:
            self.log_path, self._record_path = store.attempt_paths(self.config.paths.logs, self.name)
            self.log.open(self.log_path)
            self.result.logs.append(self.log_path)
