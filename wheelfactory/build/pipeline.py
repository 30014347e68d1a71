"""The build pipeline: recipe → source → build → repair → verify → store.

``build_recipe`` runs every stage for one recipe and every wanted Python and
returns a RecipeResult; it never raises for a failed build (the result says
why) and is safe to call for different recipes from parallel threads (a
per-recipe file lock serializes builds of the same recipe). ``build_command``
is the command line behind ``nox -s build-NAME`` / ``build`` / ``build-all``.

Nothing reaches dist/ before every Python of the recipe is built, repaired and
verified; then each wheel and its record are stored atomically. Every attempt
that gets past the "already built" check leaves a log and an attempt JSON
under logs/NAME/, failed ones too.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import shutil
import threading
import time
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from filelock import Timeout
from packaging.metadata import parse_email
from packaging.utils import canonicalize_name, parse_wheel_filename
from rich.markup import escape

from . import compcache, graph, store
from .. import ui
from .pep517 import build_wheel, check_debian, ensure_tools
from ..settings.factory import Config, load_config
from ..errors import EnvironmentProblem, FactoryError
from ..settings.recipe import Recipe, load_recipe
from .repair import policy_for, repair_wheel, with_build_tag
from ..runners import Runner, select_runner
from .source import check_patches, prepare, source_id
from .verify import verify_wheel

STATUSES = ("built", "skipped", "failed", "disabled")

# Set when the command is interrupted (Ctrl-C): builds still running in worker
# threads stop at their next stage boundary, and never reach dist/.
CANCELLED = threading.Event()


def _check_cancelled() -> None:
    if CANCELLED.is_set():
        raise KeyboardInterrupt


@dataclass
class RecipeResult:
    name: str
    status: str  # one of STATUSES
    wheels: list[Path] = field(default_factory=list)  # in dist/ (built, or already there when skipped)
    duration: float = 0.0
    logs: list[Path] = field(default_factory=list)
    message: str = ""
    version: str = ""
    compiler_cache: dict | None = None  # ccache counts of the Pythons built (compcache.read_stats)


# --- the attempt log ---------------------------------------------------------------

class AttemptLog(io.TextIOBase):
    """The attempt's log: buffered in memory until the build really starts.

    A recipe whose wheels are all stored already is skipped without leaving
    files behind; anything past that (or any failure) goes to logs/NAME/.
    """

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


# --- helpers -----------------------------------------------------------------------

def select_pythons(config: Config, runner: Runner, wanted: Sequence[str] | None) -> dict[str, str]:
    """X.Y -> interpreter: the asked-for Pythons (or the config's) that the runner has."""
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
    """Can ``wheel`` be installed by Python X.Y (by its interpreter/abi tags)?"""
    major, minor = (int(x) for x in version.split("."))
    for t in parse_wheel_filename(wheel.name)[3]:
        if t.interpreter in (f"cp{major}{minor}", f"py{major}{minor}", f"py{major}"):
            return True
        if t.abi == "abi3" and t.interpreter.startswith(f"cp{major}"):
            # cp39-abi3 installs on 3.9 and every later 3.x
            if int(t.interpreter[len(f"cp{major}"):] or 0) <= minor:
                return True
    return False


def make_record(config: Config, recipe: Recipe, wheel: Path, *, build_key: str, python: str, policy: str,
                achieved: str, source: dict, patches: list[str], auditwheel: str, host: dict, duration: float,
                stages: dict, log: str | None, notes: list[str], **extra) -> dict:
    """The dist record of a verified wheel: every field store.py documents (every runner writes these)."""
    metadata = wheel_metadata(wheel)
    raw_meta, _ = parse_email(metadata)
    wname, wversion, build_tag, wtags = parse_wheel_filename(wheel.name)
    return {
        "name": str(wname),
        "version": str(wversion),
        "build_tag": build_tag[0] if build_tag else None,
        "sha256": store.sha256_file(wheel),
        "size": wheel.stat().st_size,
        "tags": sorted(str(t) for t in wtags),
        "requires_python": raw_meta.get("requires_python"),
        "metadata": metadata,
        "metadata_sha256": hashlib.sha256(metadata.encode("utf-8")).hexdigest(),
        "build_key": build_key,
        "python": python,
        "target": config.arch,
        "policy": policy,
        "achieved_policy": achieved,
        "recipe": recipe.name,
        "source": source,
        "patches": patches,
        "debian_runtime": list(recipe.runtime.debian),
        "auditwheel": auditwheel,
        "host": host,
        "duration": round(duration, 3),
        "stages": stages,
        "status": "ok",
        "log": log,
        "notes": notes,
        **extra,
        "yanked": None,
    }


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if len(names) != 1:
            raise FactoryError(f"{wheel.name}: expected one .dist-info/METADATA, found {len(names)}")
        return zf.read(names[0]).decode("utf-8")


def _rel(config: Config, path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.resolve().relative_to(config.root.resolve()).as_posix()
    except ValueError:
        return str(path)


@contextlib.contextmanager
def _heartbeat(name: str, what: str, log_path: str | None, every: float = 120.0):
    """A long stage (torch builds for hours on a board) says every few minutes that it is alive."""
    stop = threading.Event()
    start = time.monotonic()

    def beat() -> None:
        while not stop.wait(every):
            ui.info(f"{escape(name)} {what}: still running after {(time.monotonic() - start) / 60:.0f} min "
                    f"(tail -f {escape(log_path or '')})")

    thread = threading.Thread(target=beat, name=f"heartbeat-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


# --- one recipe --------------------------------------------------------------------

def build_recipe(config: Config, recipe: Recipe, runner: Runner, *, pythons: Sequence[str] | None = None,
                 force: bool = False, dependency_wheels: Iterable[Path] = (),
                 extra_env: dict[str, str] | None = None) -> RecipeResult:
    """Build, repair, verify and store ``recipe`` for each wanted Python. Never raises FactoryError."""
    start = time.monotonic()
    if recipe.package.disabled:
        return RecipeResult(recipe.name, "disabled", version=recipe.version,
                            message=f"disabled: {recipe.package.disabled}")
    if getattr(runner, "builds_whole_recipe", False):
        # The container runner (cibuildwheel) builds, repairs and tests by itself,
        # takes the same lock and stores through store.py with the same records.
        return runner.build_recipe(config, recipe, pythons=pythons, force=force,
                                   dependency_wheels=list(dependency_wheels), extra_env=extra_env)
    lock = store.recipe_lock(config.paths.build / ".locks", recipe.name)
    try:
        lock.acquire(timeout=0.5)
    except Timeout:
        ui.info(f"{recipe.name}: another build of this recipe is running; waiting for it")
        lock.acquire()
    try:
        return _build_locked(config, recipe, runner, pythons=pythons, force=force,
                             dependency_wheels=list(dependency_wheels), extra_env=extra_env, start=start)
    finally:
        lock.release()


def _build_locked(config, recipe, runner, *, pythons, force, dependency_wheels, extra_env, start) -> RecipeResult:
    name = recipe.name
    dist, logs = config.paths.dist, config.paths.logs
    workdir = config.paths.build / name
    log = AttemptLog()
    stages: dict[str, float] = {}
    attempt: dict = {"recipe": name, "version": recipe.version, "target": config.arch,
                     "runner": runner.id, "started_at": store.utcnow(), "pythons": {}}
    result = RecipeResult(name, "failed", version=recipe.version)
    log_path = attempt_path = None

    def begin_attempt() -> None:
        nonlocal log_path, attempt_path
        if log_path is None:
            log_path, attempt_path = store.attempt_paths(logs, name)
            log.open(log_path)
            result.logs.append(log_path)

    clock = [time.monotonic()]

    def stage_done(stage: str, detail: str = "") -> None:
        _check_cancelled()
        now = time.monotonic()
        stages[stage] = stages.get(stage, 0.0) + (now - clock[0])
        ui.stage(name, stage, now - clock[0], detail)
        clock[0] = now

    try:
        log.write(f"# {name} {recipe.version} on {runner.id}, target {config.arch}, {store.utcnow()}\n")
        policy = policy_for(config, recipe)
        patches_root = config.paths.patches
        check_patches(recipe, patches_root)
        sid = source_id(recipe, log)
        fingerprint = recipe.fingerprint(patches_root)

        # Build keys first: what is stored already is skipped (and said so).
        keys, deps_for, stored_for = {}, {}, {}
        records = store.load_records(dist)
        for v in dict.fromkeys(list(pythons) if pythons else config.pythons):
            deps_for[v] = [w for w in dependency_wheels if wheel_fits(w, v)]
            keys[v] = store.build_key(recipe_fingerprint=fingerprint, source_id=sid, python=v,
                                      target=config.arch, policy=policy,
                                      dependencies=[store.sha256_file(w) for w in deps_for[v]])
            stored = [r for r in records if r.get("build_key") == keys[v]]
            if stored and not force:
                # (--force may have stored the same key under several build tags: the newest counts)
                stored_for[v] = dist / max(stored, key=lambda r: r["build_tag"] or 0)["filename"]
        kept = list(stored_for.values())
        # Asking the runner which Pythons it has costs a process per version (more
        # under pyenv or emulation): a no-op whose every Python is stored skips it.
        todo = []
        if len(stored_for) < len(keys):
            interpreters = select_pythons(config, runner, pythons)
            todo = [v for v in interpreters if v not in stored_for]
        if not todo:
            result.status, result.wheels = "skipped", kept
            result.message = (f"already built (same build key): {', '.join(p.name for p in kept)}; "
                              f"--force builds it again with the next build tag")
            ui.info(f"[bold]{name}[/bold] {recipe.version}: {escape(result.message)}")
            return result

        begin_attempt()
        ui.info(f"[bold]{name}[/bold] {recipe.version}: building for Python {', '.join(todo)} "
                f"on {runner.id} (log: {_rel(config, log_path)})")
        attempt["build_keys"] = {v: keys[v] for v in todo}
        clock[0] = time.monotonic()
        check_debian(runner, recipe)

        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        deps_dir = workdir / "deps"
        deps_dir.mkdir()
        for w in dependency_wheels:
            shutil.copyfile(w, deps_dir / w.name)
        tree = prepare(recipe, commit=sid.removeprefix("git:") if sid.startswith("git:") else None,
                       cache=config.paths.cache, patches_root=patches_root, workdir=workdir, log=log,
                       index_url=config.indexes.install[0], on_stage=stage_done)
        attempt["source"] = tree.info

        ready = []  # (version, wheel, repaired, stage seconds, notes)
        py_tools: dict[str, dict] = {}  # version -> tool versions (build, auditwheel, …)
        cache_stats: dict[str, dict | None] = {}  # version -> this build's ccache counts
        for v in todo:
            interp = interpreters[v]
            py_stages = {}
            t = time.monotonic()
            tools = ensure_tools(config, runner, v, interp, log)
            py_tools[v] = tools.versions
            if time.monotonic() - t > 1:
                stage_done("tools", f"py{v} tools venv ready ({tools.installer})")
            clock[0] = time.monotonic()
            deps = [deps_dir / w.name for w in deps_for[v]]
            cache_mark = compcache.stats_mark(extra_env)
            with _heartbeat(name, f"build py{v}", _rel(config, log_path)):
                raw = build_wheel(config, runner, tools, recipe=recipe, version=v, interpreter=interp,
                                  project=tree.project, workdir=workdir, dependency_wheels=deps,
                                  extra_env=extra_env, log=log)
            py_stages["build"] = time.monotonic() - clock[0]
            cache_stats[v] = compcache.read_stats(extra_env, since=cache_mark)
            stage_done("build", f"py{v} {raw.name}" + (f", {compcache.describe(cache_stats[v])}" if cache_stats[v] else ""))
            rep = repair_wheel(runner, tools, recipe=recipe, wheel=raw, outdir=workdir / "repaired" / f"py{v}",
                               policy=policy, arch=config.arch, log=log)
            wheel = rep.wheel
            tag = store.next_build_tag(dist, canonicalize_name(recipe.project), _wheel_version(wheel),
                                       [str(t) for t in parse_wheel_filename(wheel.name)[3]])
            if tag is not None:
                wheel = with_build_tag(runner, tools, wheel, tag, log)
            py_stages["repair"] = time.monotonic() - clock[0]
            stage_done("repair", f"py{v} {rep.achieved_policy}" + (f", build tag {tag}" if tag is not None else ""))
            notes = verify_wheel(config, runner, tools, recipe=recipe, version=v, interpreter=interp, wheel=wheel,
                                 find_links=deps_dir, workdir=workdir, log=log, pinned=deps)
            for note in notes:
                log.write(f"\n# note: {note}\n")
            py_stages["verify"] = time.monotonic() - clock[0]
            stage_done("verify", f"py{v} " + (", ".join(recipe.test.imports) or "install only"))
            ready.append((v, wheel, rep, py_stages, notes))

        # Every Python passed: now, and only now, dist/ changes.
        _check_cancelled()
        host = {**runner.describe(), "runner_id": runner.id}
        shared = {k: round(s, 3) for k, s in stages.items() if k in ("fetch", "unpack", "patch")}
        for v, wheel, rep, py_stages, notes in ready:
            record = make_record(
                config, recipe, wheel, build_key=keys[v], python=v, policy=policy, achieved=rep.achieved_policy,
                source=tree.info, patches=tree.patches, auditwheel=rep.show,
                host={**host, "tools": py_tools.get(v, {})}, duration=time.monotonic() - start,
                stages={**shared, **{k: round(s, 3) for k, s in py_stages.items()}}, log=_rel(config, log_path),
                notes=notes, compiler_cache=cache_stats.get(v))
            dest = store.store_wheel(dist, wheel, record)
            result.wheels.append(dest)
            attempt["pythons"][v] = {"status": "built", "wheel": dest.name, "build_key": keys[v]}
        stage_done("store", ", ".join(p.name for p in result.wheels))
        result.compiler_cache = compcache.merge(list(cache_stats.values()))
        attempt["compiler_cache"] = cache_stats
        result.wheels += kept
        result.status = "built"
        result.message = "built " + ", ".join(p.name for p in result.wheels)
        shutil.rmtree(workdir, ignore_errors=True)  # kept on failure, for a look inside
        return result
    except FactoryError as e:
        msg = str(e.args[0])
        result.message = msg if msg.startswith(name) else f"{name}: {msg}"
        log.write(f"\n# FAILED: {result.message}\n")
        return result
    except KeyboardInterrupt:
        result.message = f"{name}: interrupted"
        attempt["status"] = "interrupted"
        log.write("\n# INTERRUPTED\n")
        raise
    except Exception as e:  # a bug: keep the traceback in the log, say so in one line
        result.message = f"{name}: internal error: {type(e).__name__}: {e} (traceback in the log)"
        log.write("\n" + traceback.format_exc())
        return result
    finally:
        result.duration = time.monotonic() - start
        if result.status != "skipped":
            begin_attempt()
            attempt.update(status=attempt.get("status") or result.status, message=result.message,
                           duration=round(result.duration, 3), stages={k: round(s, 3) for k, s in stages.items()},
                           log=_rel(config, log_path), wheels=[p.name for p in result.wheels],
                           host={**runner.describe(), "runner_id": runner.id}, finished_at=store.utcnow())
            store.atomic_write_text(attempt_path, json.dumps(attempt, indent=2, sort_keys=True) + "\n")
        log.close()


def _wheel_version(wheel: Path) -> str:
    return str(parse_wheel_filename(wheel.name)[1])


# --- many recipes ------------------------------------------------------------------

def with_dependencies(recipes_root: Path, names: Sequence[str]) -> dict[str, Recipe]:
    """The named recipes and every recipe they need (build and run time), dependencies first."""
    loaded: dict[str, Recipe] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        name = canonicalize_name(name)
        if name in chain:
            raise FactoryError(f"recipes depend on each other in a cycle: {' -> '.join(chain + (name,))}")
        if name in loaded:
            return
        r = load_recipe(recipes_root, name)
        for dep in r.build.depends + r.runtime.depends:
            visit(dep, chain + (name,))
        loaded[name] = r

    for n in names:
        visit(n, ())
    return loaded


def _print_table(config: Config, results: list[RecipeResult]) -> None:
    from rich.table import Table

    table = Table(title="build summary", title_justify="left")
    for col in ("recipe", "version", "status", "time", "wheels / reason", "log"):
        table.add_column(col, overflow="fold")
    colors = {"built": "green", "skipped": "cyan", "failed": "red", "disabled": "yellow"}
    for r in results:
        what = "\n".join(p.name for p in r.wheels) if r.status in ("built",) else r.message
        if r.status == "skipped" and r.wheels:
            what = "already built: " + ", ".join(p.name for p in r.wheels)
        if r.status == "built" and r.compiler_cache:
            what += f"\n{compcache.describe(r.compiler_cache)}"
        table.add_row(r.name, r.version, f"[{colors[r.status]}]{r.status}[/]", f"{r.duration:.1f}s",
                      ui.mask_secrets(what), "\n".join(_rel(config, p) or "" for p in r.logs) or "-")
    ui.console.print(table)
    counts = {s: sum(1 for r in results if r.status == s) for s in STATUSES}
    ui.info(", ".join(f"{n} {s}" for s, n in counts.items() if n))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nox -s build --", description="Build recipes into verified wheels in dist/.")
    p.add_argument("names", nargs="*", metavar="NAME", help="recipes to build (their dependencies come along)")
    p.add_argument("--all", action="store_true", help="every recipe")
    p.add_argument("--target", choices=("default", "host"), default="default",
                   help="host: build for this machine's arch (policy: the best auditwheel finds)")
    p.add_argument("--runner", choices=("auto", "native", "emulated", "container"), default=None,
                   help="where builds run (default: build.runner in factory.toml)")
    p.add_argument("--python", action="append", metavar="X.Y", help="build for this Python (repeatable)")
    p.add_argument("--force", action="store_true", help="build again even if the build key is stored")
    p.add_argument("--jobs", type=int, default=None, help="parallel builds (default: build.jobs)")
    p.add_argument("--keep-going", action=argparse.BooleanOptionalAction, default=None,
                   help="go on after a failure (default: build.keep-going)")
    args = p.parse_args(list(argv))
    if not args.names and not args.all:
        p.error("name at least one recipe, or --all")
    return args


def build_command(argv: list[str], root: Path) -> int:
    """``nox -s build-NAME`` / ``build -- NAME...`` / ``build-all``: returns the exit status."""
    try:
        args = parse_args(argv)
    except SystemExit as e:  # argparse already printed the usage message
        return int(e.code or 0)
    # nox turns on DEBUG logging; the libraries' chatter (each HTTP request, each
    # lock) would drown the one line per stage. Their details go to the log instead.
    for noisy in ("urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = load_config(root)
    if args.target == "host":
        config = config.for_host()
    if args.jobs is not None:
        config = config.replace(build={"jobs": args.jobs})
    keep_going = config.build.keep_going if args.keep_going is None else args.keep_going
    recipes_root = config.paths.recipes
    if args.all:
        from ..settings.recipe import load_all

        recipes = load_all(recipes_root)
    else:
        recipes = with_dependencies(recipes_root, args.names)
    graph.topological_order(recipes)  # a dependency cycle is an error before anything runs
    runner = select_runner(config, args.runner)
    # --force rebuilds what was named, not the dependencies that came along.
    forced = (set(recipes) if args.all else set(args.names)) if args.force else set()
    # Dependency order, args.jobs at once; each build gets the wheels of what it needs
    # from this run and a compiler-cache environment (graph.build_recipes).
    CANCELLED.clear()
    try:
        results = graph.build_recipes(config, recipes, runner, pythons=args.python, force=forced,
                                      jobs=graph.default_jobs(config), keep_going=keep_going)
    except KeyboardInterrupt:
        CANCELLED.set()  # builds still running in worker threads stop before dist/
        raise

    for r in results:
        if r.status == "failed":
            ui.error(r.message + (f"\n  log: {_rel(config, r.logs[-1])}" if r.logs else ""))
    if len(results) > 1:
        _print_table(config, results)
    else:
        for r in results:
            if r.status == "built":
                for w in r.wheels:
                    ui.info(f"[green]built[/green] {_rel(config, w)}")
            elif r.status == "disabled":
                ui.warn(f"{r.name}: {r.message}")
    return 1 if any(r.status == "failed" for r in results) else 0
