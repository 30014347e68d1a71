"""The build pipeline: recipe → source → build → repair → verify → store.

``build_recipe`` builds one recipe for every wanted Python and returns a
RecipeResult; it never raises for a failed build (the result says why) and is
safe to call for different recipes from parallel threads (a per-recipe file
lock serializes builds of the same recipe). It prints progress (one line a
stage), never reports: the build command (cli/build.py) prints those.

How a recipe is built depends on the runner (:func:`strategy_for`): stage by
stage through the runner (:func:`build_stages`: native, emulated), or whole
by cibuildwheel in the manylinux image (build/cibuildwheel.py). Both run in an
:class:`~wheelfactory.build.attempt.Attempt` (keys, skip, log, stage clock,
attempt record, failure message).

Nothing reaches dist/ before every Python of the recipe is built, repaired and
verified; then each wheel and its record are stored atomically.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import Timeout
from packaging.version import Version
from rich.markup import escape

from .. import ui
from ..errors import BuildError, NetworkNeeded, RepairError, VerifyError
from ..runners import Runner
from ..runners.container import ContainerRunner
from ..runners.emulated import EmulatedRunner
from ..settings.factory import Config
from ..settings.recipe import Recipe
from ..settings.target import Target
from . import cibuildwheel, compcache, store
from .attempt import Attempt, Plan, RecipeResult, wheel_fits
from .pep517 import build_wheel, check_debian, ensure_tools, network_state
from .record import make_record
from .repair import Repaired, repair_wheel, unlisted_runtime_packages, with_next_build_tag
from .source import SourceTree, check_wheel_version
from .verify import clean_interpreter, verified_on, verify_place, verify_wheel

# (attempt, plan, *, extra_env) -> None: builds plan.todo and stores it through attempt.store_all.
BuildStrategy = Callable[..., None]


def strategy_for(runner: Runner) -> BuildStrategy:
    """How recipes are built on ``runner``: cibuildwheel builds, repairs and tests a whole recipe
    in the container's image; every other runner runs the stages one by one."""
    return cibuildwheel.build_in_container if isinstance(runner, ContainerRunner) else build_stages


def build_recipe(config: Config, recipe: Recipe, runner: Runner, *, pythons: Sequence[str] | None = None,
                 force: bool = False, dependency_wheels: Iterable[Path] = (),
                 extra_env: Mapping[str, str] | None = None) -> RecipeResult:
    """Build, repair, verify and store ``recipe`` for each wanted Python (X.Y; default the config's).

    ``dependency_wheels``: dist wheels of the recipes it needs (installed into
    the build and the verify venv; their sha256s are part of the build keys).
    ``force`` builds again when the key is stored (the next build tag).
    ``extra_env``: for the build commands (compcache.prepare). Never raises
    FactoryError; raises KeyboardInterrupt when interrupted.
    """
    start = time.monotonic()
    if recipe.package.disabled:
        return RecipeResult(recipe.name, "disabled", version=recipe.version,
                            message=f"disabled: {recipe.package.disabled}")
    build = strategy_for(runner)
    with _recipe_lock(config, recipe.name):
        with Attempt(config, recipe, runner, start=start) as attempt:
            plan = attempt.plan(pythons, dependency_wheels, force=force)
            if plan.todo:
                build(attempt, plan, extra_env=extra_env)
        return attempt.result


@contextlib.contextmanager
def _recipe_lock(config: Config, name: str):
    lock = store.recipe_lock(config.paths.build / ".locks", name)
    try:
        lock.acquire(timeout=0.5)
    except Timeout:
        ui.info(f"{name}: another build of this recipe is running; waiting for it")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


# --- stage by stage (native and emulated runners) -------------------------------------------


@dataclass
class _Ready:
    """One Python's wheel, repaired and verified, waiting for the others before dist/."""

    wheel: Path
    repaired: Repaired
    stages: dict[str, float]  # build/repair/verify seconds of this Python
    notes: list[str]
    tools: dict[str, str]  # tool -> version
    compiler_cache: dict | None
    verified: dict  # where: verify.verified_on


def build_stages(attempt: Attempt, plan: Plan, *, extra_env: Mapping[str, str] | None = None) -> None:
    """Per Python: PEP 517 build, auditwheel repair (and build tag), verify in a bare venv; then store all.

    Emulated builds run on a throwaway layer of the build rootfs (``EmulatedRunner.hermetic``):
    the recipe's build.debian is installed there only, so the wheel depends on the recipe alone.
    """
    base = attempt.runner
    with _hermetic(base, cross=attempt.recipe.build.cross) as attempt.runner:
        try:
            _build_stages(attempt, plan, extra_env)
        except BaseException as e:
            with contextlib.suppress(Exception):  # never hide the failure behind a second one
                attempt.failed_host = attempt.host()  # the layer it failed in: its packages and compilers
            if getattr(attempt.runner, "cross", None) is not None and isinstance(e, COMPILER_FAULTS) \
                    and not isinstance(e, NetworkNeeded):  # say the way out once, in the one message
                e.args = (f"{e.args[0]} (compiled with native cross compilers; if they are the cause, set "
                          f"build.cross = false in the recipe)", *e.args[1:])
            raise
        finally:
            attempt.runner = base


# Where native cross compilers could be the cause: the compile, auditwheel's view of the objects,
# and their import (a miscompile). Not a download, a bad recipe or a missing tool.
COMPILER_FAULTS = (BuildError, RepairError, VerifyError)


@contextlib.contextmanager
def _hermetic(runner: Runner, *, cross: bool):
    if isinstance(runner, EmulatedRunner):
        with runner.hermetic(cross=cross) as layered:
            yield layered
    else:
        yield runner


def _build_stages(attempt: Attempt, plan: Plan, extra_env: Mapping[str, str] | None) -> None:
    config, recipe, runner = attempt.config, attempt.recipe, attempt.runner
    attempt.begin(plan, f"on {runner.id}")
    check_debian(runner, recipe)
    tree = attempt.prepare_source(plan)
    attempt.drop_pythons_outside(plan, tree)
    if not plan.todo:
        return
    deps_dir = attempt.workdir / "deps"
    deps_dir.mkdir()
    for w in dict.fromkeys(w for ws in plan.dependencies.values() for w in ws):  # the chosen ones only
        shutil.copyfile(w, deps_dir / w.name)
    ready: dict[str, _Ready] = {}
    served: dict[str, str] = {}  # X.Y -> the older X.Y whose abi3/py3 wheel serves it
    for v in sorted(plan.todo, key=Version):
        older = next((u for u, r in ready.items() if wheel_fits(r.wheel, v)), None)
        if older is None:
            ready[v] = _build_python(attempt, plan, tree, v, deps_dir, extra_env)
        else:
            served[v] = older
            ready[older].notes += _verify_served(attempt, plan, ready[older].wheel, v, deps_dir)

    host = attempt.host()
    shared = attempt.stage_seconds(("fetch", "unpack", "patch"))
    records = {v: (r.wheel, make_record(
        config, recipe, r.wheel, build_key=plan.keys[v], python=v, policy=plan.policy,
        achieved=r.repaired.achieved_policy, source=tree.info, patches=tree.patches, auditwheel=r.repaired.show,
        host={**host, "tools": r.tools, "network": network_state(runner, recipe)},
        duration=time.monotonic() - attempt.start,
        stages={**shared, **r.stages}, log=attempt.log_rel(), notes=r.notes, compiler_cache=r.compiler_cache,
        verified=r.verified, **_served_keys(plan, served, v)))
        for v, r in ready.items()}
    cache_stats = {v: r.compiler_cache for v, r in ready.items()}
    attempt.result.compiler_cache = compcache.merge(list(cache_stats.values()))
    attempt.record["compiler_cache"] = cache_stats
    attempt.store_all(plan, records, served)


def _build_python(attempt: Attempt, plan: Plan, tree: SourceTree, v: str, deps_dir: Path,
                  extra_env: Mapping[str, str] | None) -> _Ready:
    config, recipe, runner, log = attempt.config, attempt.recipe, attempt.runner, attempt.log
    interp, workdir = plan.interpreters[v], attempt.workdir
    t = time.monotonic()
    tools = ensure_tools(config, runner, v, interp, log)
    if time.monotonic() - t > 1:
        attempt.stage_done("tools", f"py{v} tools venv ready ({tools.installer})")
    attempt.restart_clock()
    deps = [deps_dir / w.name for w in plan.dependencies[v]]
    cache_mark = compcache.stats_mark(extra_env)
    with _heartbeat(attempt.name, f"build py{v}", attempt.log_rel()):
        raw = build_wheel(config, runner, tools, recipe=recipe, version=v, interpreter=interp,
                          project=tree.project, workdir=workdir, dependency_wheels=deps,
                          extra_env={**tree.env, **(extra_env or {})}, log=log)
    check_wheel_version(recipe, raw)
    cache = compcache.read_stats(extra_env, since=cache_mark)
    stages = {"build": attempt.stage_done("build", f"py{v} {raw.name}"
                                          + (f", {compcache.describe(cache)}" if cache else ""))}
    rep = repair_wheel(runner, tools, recipe=recipe, wheel=raw, outdir=workdir / "repaired" / f"py{v}",
                       target=Target(config.arch, plan.policy), log=log)
    wheel, tag = with_next_build_tag(runner, tools, config.paths.dist, recipe.project, rep.wheel, log)
    stages["repair"] = attempt.stage_done("repair", f"py{v} {rep.achieved_policy}"
                                          + (f", build tag {tag}" if tag is not None else ""))
    notes = unlisted_runtime_packages(config, recipe, rep.excluded, config.arch)
    verify_notes, verified = _verify(attempt, plan, tools, wheel, v, deps_dir)
    notes += verify_notes
    for note in notes:
        log.write(f"\n# note: {note}\n")
    stages["verify"] = attempt.stage_done("verify", f"py{v} " + (", ".join(recipe.test.imports) or "install only"))
    return _Ready(wheel, rep, {k: round(s, 3) for k, s in stages.items()}, notes, tools.versions, cache, verified)


def _verify(attempt: Attempt, plan: Plan, tools, wheel: Path, v: str, deps_dir: Path) -> tuple[list[str], dict]:
    """``wheel`` installed and tested with Python ``v`` where verify runs (verify.verify_place):
    (the verify's notes, where it ran for the record)."""
    config, recipe, runner, log = attempt.config, attempt.recipe, attempt.runner, attempt.log
    deps = [deps_dir / w.name for w in plan.dependencies[v]]
    with verify_place(config, runner, recipe, log=log) as place:
        notes = verify_wheel(config, place, tools, recipe=recipe, version=v,
                             interpreter=clean_interpreter(place, v, plan.interpreters[v]), wheel=wheel,
                             find_links=deps_dir, workdir=attempt.workdir, log=log, pinned=deps)
        return notes, verified_on(place, v)


def _verify_served(attempt: Attempt, plan: Plan, wheel: Path, v: str, deps_dir: Path) -> list[str]:
    """An older Python's abi3/py3 wheel serves Python ``v`` too: not built again (cibuildwheel
    does the same), verified with ``v`` as its own build would be. Returns the verify's notes."""
    tools = ensure_tools(attempt.config, attempt.runner, v, plan.interpreters[v], attempt.log)
    notes, _ = _verify(attempt, plan, tools, wheel, v, deps_dir)
    attempt.stage_done("verify", f"py{v} {wheel.name} (built once for the older Python, as its tags allow)")
    return [f"Python {v}: {note}" for note in notes]


def _served_keys(plan: Plan, served: Mapping[str, str], built_with: str) -> dict:
    keys = {v: plan.keys[v] for v, older in served.items() if older == built_with}
    return {"served_pythons": keys} if keys else {}


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
