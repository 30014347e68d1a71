"""The build graph: recipes in dependency order, several at a time.

Pure scheduling: this module knows recipes and their ``depends``, not how one
is built. ``run_graph`` is handed ``build_one`` (build/catalog.py joins it to
the pipeline and the compiler caches), as pyodide-build's graph builder is
handed its builder.

Recipes name the recipes they need (``build.depends``: installed into the build
environment; ``runtime.depends``: needed to install and verify the wheel). A
recipe starts once everything it needs has built; up to ``jobs`` builds run side
by side, except the exclusive ones (``build.exclusive`` in the recipe or
``[build].exclusive`` in factory.toml: torch, grpcio …) which run alone.

Each build is handed the dist wheels of everything it transitively needs; the
pipeline installs them and puts their sha256 into the build key, so a
dependency's new build (and nothing else) makes its dependents rebuild.

A disabled recipe, and everything that needs it, is not built and the reason is
shown (``build --all``; asked for by name, :func:`check_enabled` makes it an
error); a failure skips only its dependents while the rest goes on (unless
keep_going is off, then nothing new starts).
"""

from __future__ import annotations

import graphlib
import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from packaging.utils import canonicalize_name

from .. import ui
from ..errors import RecipeError
from ..settings.recipe import Recipe
from ..settings.schema import did_you_mean
from .attempt import RecipeResult

# build_one(recipe, dependency_wheels) -> RecipeResult (e.g. pipeline.build_recipe)
BuildOne = Callable[[Recipe, list[Path]], RecipeResult]

OK_STATUSES = ("built", "skipped")  # "skipped" by the pipeline = up to date, wheels still valid


def needs(recipe: Recipe) -> list[str]:
    """The recipes this one needs before it can build (build + runtime), canonical, in order."""
    seen: dict[str, None] = {}
    for dep in [*recipe.build.depends, *recipe.runtime.depends]:
        seen.setdefault(canonicalize_name(dep), None)
    return list(seen)


def _as_mapping(recipes: Mapping[str, Recipe] | Iterable[Recipe]) -> dict[str, Recipe]:
    if isinstance(recipes, Mapping):
        return {r.name: r for r in recipes.values()}
    return {r.name: r for r in recipes}


def _walk(recipes: Mapping[str, Recipe], name: str, next_of) -> list[str]:
    """Breadth-first from ``name``'s direct needs, following ``next_of(recipe)``; nearest first."""
    order: dict[str, None] = {}
    stack = list(needs(recipes[name]))
    while stack:
        dep = stack.pop(0)
        if dep in order or dep == name:
            continue
        order[dep] = None
        if dep in recipes:
            stack.extend(next_of(recipes[dep]))
    return list(order)


def closure(recipes: Mapping[str, Recipe], name: str) -> list[str]:
    """Everything ``name`` needs, transitively (build and runtime), nearest first; not ``name`` itself."""
    return _walk(recipes, name, needs)


def install_closure(recipes: Mapping[str, Recipe], name: str) -> list[str]:
    """The recipes whose wheels ``name``'s build gets: what it needs directly (build and
    runtime), plus, transitively, what those need at run time to install. A dependency's
    own build dependencies are not needed to install its wheel."""
    return _walk(recipes, name, lambda r: r.runtime.depends)


def select(all_recipes: Mapping[str, Recipe], names: Sequence[str], *, where: str = "") -> dict[str, Recipe]:
    """The named recipes plus everything they need (``build -- NAME...``), keyed by canonical name.

    ``all_recipes`` is only read where the walk goes (a lazy mapping loads no
    more than that). An unknown name or dependency is a RecipeError naming it;
    a cycle is left to :func:`topological_order`.
    """
    chosen: dict[str, Recipe] = {}
    for raw in names:
        name = canonicalize_name(raw)
        if name not in all_recipes:
            raise RecipeError(
                f"no recipe '{raw}'{' in ' + where if where else ''}{did_you_mean(name, all_recipes)}; "
                f"known recipes: {', '.join(sorted(all_recipes)) or '(none)'}; "
                f"`invoke new-recipe {raw}` scaffolds one"
            )
        for n in [name, *closure(all_recipes, name)]:
            if n not in all_recipes:
                raise RecipeError(
                    f"{all_recipes[name].path}: depends on '{n}', which has no recipe; "
                    f"add recipes/{n}/recipe.toml or remove it from build.depends/runtime.depends"
                )
            chosen[n] = all_recipes[n]
    return chosen


def check_enabled(recipes: Mapping[str, Recipe], names: Sequence[str]) -> None:
    """A recipe asked for by name must be buildable: RecipeError when it, or anything it needs,
    is disabled (``build -- NAME``). ``build --all`` skips disabled recipes instead."""
    for raw in names:
        name = canonicalize_name(raw)
        recipe = recipes[name]
        if recipe.package.disabled:
            raise RecipeError(
                f"{name} is disabled ({recipe.package.disabled}), so it is not built when asked for by name; "
                f"to build it, remove package.disabled from {recipe.path} (`nox -s build-all` skips it)"
            )
        for dep in closure(recipes, name):
            reason = recipes[dep].package.disabled
            if reason:
                via = next(r for r in [name, *closure(recipes, name)] if dep in needs(recipes[r]))
                raise RecipeError(
                    f"{name} needs {dep}{f' (through {via})' if via != name else ''}, which is disabled "
                    f"({reason}); remove package.disabled from {recipes[dep].path}, or drop '{dep}' from "
                    f"build.depends/runtime.depends in {recipes[via].path}"
                )


def check_missing(recipes: Mapping[str, Recipe]) -> None:
    for r in recipes.values():
        for dep in needs(r):
            if dep not in recipes:
                raise RecipeError(
                    f"{r.path}: depends on '{dep}', which is not among the recipes being built; "
                    f"add recipes/{dep}/recipe.toml or remove it from build.depends/runtime.depends"
                )


def topological_order(recipes: Mapping[str, Recipe] | Iterable[Recipe]) -> list[str]:
    """A dependency-first order (ties by name); a cycle is a RecipeError naming it."""
    recipes = _as_mapping(recipes)
    sorter = _sorter(recipes)
    order = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return order


def _sorter(recipes: Mapping[str, Recipe]) -> graphlib.TopologicalSorter:
    check_missing(recipes)
    sorter: graphlib.TopologicalSorter = graphlib.TopologicalSorter()
    for name in sorted(recipes):
        sorter.add(name, *needs(recipes[name]))
    try:
        sorter.prepare()
    except graphlib.CycleError as e:
        # args[1] lists nodes each of which is needed by the next: read it backwards
        # to get "a needs b needs … needs a".
        cycle = list(reversed(e.args[1]))
        files = ", ".join(str(recipes[n].path) for n in dict.fromkeys(cycle) if n in recipes)
        raise RecipeError(
            f"recipes depend on each other in a cycle: {' -> '.join(cycle)} "
            f"(via build.depends/runtime.depends in {files}); remove one of these dependencies"
        ) from None
    return sorter


def default_jobs(config=None) -> int:
    """[build].jobs from the config, or the number of cores this process may use."""
    configured = config.build.jobs if config is not None else 0
    if configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def is_exclusive(config, recipe: Recipe) -> bool:
    listed = {canonicalize_name(n) for n in (config.build.exclusive if config is not None else [])}
    return bool(recipe.build.exclusive) or recipe.name in listed


def _result(**kw) -> RecipeResult:
    return RecipeResult(**{"wheels": [], "duration": 0.0, "logs": [], "message": "", **kw})


def run_graph(config, recipes: Mapping[str, Recipe] | Sequence[Recipe], build_one: BuildOne, *,
              jobs: int | None = None, keep_going: bool = True) -> list[RecipeResult]:
    """Build ``recipes`` in dependency order with up to ``jobs`` at once.

    ``build_one(recipe, dependency_wheels)`` builds one recipe and returns its
    RecipeResult; it is called from worker threads. Returns one result per
    recipe (skipped and disabled ones included), dependencies first.
    """
    recipes = _as_mapping(recipes)
    sorter = _sorter(recipes)  # raises on a cycle before anything starts
    jobs = max(1, jobs or default_jobs(config))
    closures = {n: closure(recipes, n) for n in recipes}
    installs = {n: install_closure(recipes, n) for n in recipes}
    priority = {n: sum(n in c for c in closures.values()) for n in recipes}
    exclusive = {n: is_exclusive(config, r) for n, r in recipes.items()}
    total = len(recipes)

    results: dict[str, RecipeResult] = {}
    order: list[str] = []
    blocked_by: dict[str, str] = {}  # name -> why it cannot build (set on all its dependents)
    stop_reason = ""  # set when keep_going is off and something failed
    ready: list[str] = []
    running: dict[Future, str] = {}

    def finish(name: str, result) -> None:
        results[name] = result
        order.append(name)
        sorter.done(name)
        # A recipe that failed for one version but offers another's wheels (result.offered) still
        # serves its dependents.
        if (result.status not in OK_STATUSES and not result.offered) or name in blocked_by:
            why = blocked_by.get(name) or _why(name, result)
            for other, deps in closures.items():
                if name in deps:
                    blocked_by.setdefault(other, why)

    def resolve_without_building(name: str) -> bool:
        """Disabled, blocked or stopped recipes finish at once; True if so."""
        reason = recipes[name].package.disabled
        if reason:
            ui.info(f"{name}: [dim]disabled[/dim] — {reason}")
            finish(name, _result(name=name, version=recipes[name].version, status="disabled",
                                 message=f"disabled: {reason}"))
        elif name in blocked_by:
            ui.info(f"{name}: [yellow]skipped[/yellow] — {blocked_by[name]}")
            finish(name, _result(name=name, version=recipes[name].version, status="skipped",
                                 message=blocked_by[name]))
        elif stop_reason:
            finish(name, _result(name=name, version=recipes[name].version, status="skipped",
                                 message=stop_reason))
        else:
            if recipes[name].package.retired:  # built because it was named, or something here needs it
                ui.info(f"{name}: [dim]retired[/dim] — upstream ships the wheels ({recipes[name].package.retired}); "
                        f"building it as asked")
            return False
        return True

    def dependency_wheels(name: str) -> list[Path]:
        wheels: dict[Path, None] = {}
        for dep in installs[name]:
            for w in results[dep].for_dependents() if dep in results else []:
                wheels.setdefault(Path(w), None)
        return list(wheels)

    def work(recipe: Recipe, deps: list[Path]):
        try:
            return build_one(recipe, deps)
        except Exception as e:  # one build's unexpected error must not stop the others
            return _result(name=recipe.name, version=recipe.version, status="failed",
                           message=f"{recipe.name}: {type(e).__name__}: {e}")

    def next_to_start() -> str | None:
        if any(exclusive[n] for n in running.values()) or len(running) >= jobs:
            return None
        for i, name in enumerate(ready):
            if exclusive[name] and running:
                if i == 0:
                    return None  # the most needed recipe must run alone: let the others drain
                continue
            return ready.pop(i)
        return None

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="build")
    try:
        while True:
            # Newly ready recipes; those that will not build finish at once, which
            # may make more ready.
            found = True
            while found:
                found = False
                for name in sorter.get_ready():
                    found = True
                    if not resolve_without_building(name):
                        ready.append(name)
                if stop_reason:
                    for name in ready:
                        resolve_without_building(name)
                        found = True
                    ready.clear()
            ready.sort(key=lambda n: (-priority[n], n))

            while (name := next_to_start()) is not None:
                deps = dependency_wheels(name)
                extra = ["alone"] if exclusive[name] else []
                if deps:
                    extra.append(f"{len(deps)} dependency wheel{'s' * (len(deps) != 1)}")
                ui.info(f"[bold]{name}[/bold]: starting ({len(order) + len(running) + 1}/{total}"
                        f"{''.join(', ' + e for e in extra)})")
                running[pool.submit(work, recipes[name], deps)] = name

            if not running:
                if sorter.is_active():  # cannot happen: every node is ready, running or done
                    raise RuntimeError(f"build graph stalled with {sorted(ready)} ready")
                break

            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                name = running.pop(fut)
                result = fut.result()
                finish(name, result)
                if result.status == "failed" and not keep_going and not stop_reason:
                    stop_reason = f"not started: {name} failed and keep-going is off"
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    # Dependency order (not finishing order): the summary reads the same every run.
    return [results[n] for n in topological_order(recipes)]


def _why(name: str, result) -> str:
    if result.status == "disabled":
        return f"needs {name}, which is disabled ({result.message.removeprefix('disabled: ')})"
    if result.status == "skipped":
        return f"needs {name}, which was skipped ({result.message})"
    return f"needs {name}, which failed"  # the failure itself is in its own result
