"""The catalog: which recipes a command builds, and the graph of them run through the pipeline.

This is the glue pyodide-build keeps apart from its graph: ``graph`` orders
and schedules, ``pipeline`` builds one recipe, ``compcache`` gives each build
its compiler caches; :func:`build_recipes` joins the three. :func:`choose`
reads the recipes a command names (and what they need) through the one
dependency walk, ``graph.select``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from ..errors import RecipeError
from ..settings.factory import Config
from ..settings.recipe import RECIPE_FILE, Recipe, check_depends_versions, load_all, load_recipe, recipe_path
from . import compcache, graph
from .attempt import RecipeResult
from .pipeline import build_recipe


class RecipeFolder(Mapping[str, Recipe]):
    """recipes/ as a read-only mapping of canonical name -> Recipe, each parsed when first asked for.

    ``build -- NAME`` reads NAME and what it needs, not every recipe: a broken
    recipe elsewhere in the folder does not stop it.
    """

    def __init__(self, root: Path, arch: str):
        self.root, self.arch = root, arch  # depends markers are read for this target arch
        self._loaded: dict[str, Recipe] = {}

    def __getitem__(self, name: str) -> Recipe:
        if name not in self._loaded:
            self._loaded[name] = load_recipe(self.root, name).for_arch(self.arch)
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and recipe_path(self.root, name).is_file()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(p.parent.name for p in self.root.glob(f"*/{RECIPE_FILE}")))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def choose(config: Config, names: Sequence[str] = (), *, every: bool = False,
           version: str | None = None) -> dict[str, Recipe]:
    """The recipes to build: every one that is not retired (``package.retired``: upstream ships the
    wheels) plus what those need, or the named ones and all they need; RecipeError names a
    missing recipe or dependency, a dependency cycle and, for named ones, a disabled recipe among
    them or what they need (checked before anything runs; ``every`` skips disabled ones).

    Versions: a chosen recipe builds every version it lists (package.version and
    [versions]: the index serves each version a target resolves to; stored build
    keys skip the ones already built). A recipe that only comes along as a
    dependency builds package.version, the one its dependents build with, and
    the newest listed version matching each depends specifier that
    package.version does not (``"numpy<2.5"``). ``version``: the one named
    recipe builds that listed version only."""
    root = config.paths.recipes
    if every:
        everything = load_all(root, config.arch)
        recipes = graph.select(everything, [n for n, r in everything.items() if not r.package.retired], where=str(root))
    else:
        recipes = graph.select(RecipeFolder(root, config.arch), names, where=str(root))
    graph.topological_order(recipes)
    check_depends_versions(recipes)
    if not every:
        graph.check_enabled(recipes, names)
    named = set(recipes) if every else {canonicalize_name(n) for n in names}
    if version is not None:
        if len(named) != 1:
            raise RecipeError(f"--version {version} picks a version of one recipe; name exactly one (got "
                              f"{', '.join(sorted(named)) or 'none'})")
        only = next(iter(named))
        recipes[only] = recipes[only].at(version)
    return came_along(recipes, named)


def came_along(recipes: Mapping[str, Recipe], named: Iterable[str]) -> dict[str, Recipe]:
    """``recipes`` with those not ``named`` (they came along as dependencies) narrowed to the
    versions their dependents build with: package.version, and for each depends specifier it
    does not match, the first listed version that does."""
    named = set(named)
    return {n: r if n in named else r.only(_wanted_versions(r, recipes.values())) for n, r in recipes.items()}


def _wanted_versions(recipe: Recipe, others: Iterable[Recipe]) -> list[str]:
    """What a recipe that came along as a dependency builds: package.version, and for each
    dependent's specifier that package.version does not match, the first listed version that does."""
    wanted = [recipe.version]
    for other in others:
        spec = other.depends_versions.get(recipe.name)
        if spec is not None and not spec.contains(recipe.version, prereleases=True):
            wanted.append(next(v for v in recipe.all_versions if spec.contains(v, prereleases=True)))
    return list(dict.fromkeys(wanted))




def build_recipes(config: Config, recipes: Mapping[str, Recipe], runner, *, pythons: Sequence[str] | None = None,
                  force: Iterable[str] = (), jobs: int | None = None, keep_going: bool = True) -> list[RecipeResult]:
    """Run the pipeline over ``recipes`` as a graph (dependencies first, ``jobs`` at once): each build
    gets the wheels of what it needs from this run and its own compiler-cache environment.
    ``force``: names to rebuild even when their build key is stored (not the dependencies that
    came along). One result per recipe and version it builds (:meth:`Recipe.all_versions`:
    package.version first, one after the other), in dependency order."""
    forced = {canonicalize_name(n) for n in force}

    older: dict[str, list[RecipeResult]] = {}  # the [versions] results, beside package.version's

    def build_one(recipe: Recipe, deps: list[Path]) -> RecipeResult:
        env = compcache.prepare(config, runner, recipe.name)
        try:
            results = [build_recipe(config, recipe.at(v), runner, pythons=pythons, force=recipe.name in forced,
                                    dependency_wheels=deps, extra_env=env) for v in recipe.all_versions]
        finally:
            compcache.finish(env)
        older[recipe.name] = results[1:]
        # Dependents get every version's wheels, package.version's first: each takes, per Python, the
        # first that fits and matches its depends specifier (Attempt.plan), so a Python package.version
        # has no wheel for (numpy 2.5.5 needs 3.12, the host has 3.11) gets an older version's.
        offered = list(dict.fromkeys(w for r in results for w in r.wheels))
        return results[0] if offered == results[0].wheels else dataclasses.replace(results[0], offered=offered)

    done = graph.run_graph(config, recipes, build_one, jobs=jobs or graph.default_jobs(config),
                           keep_going=keep_going)
    return [r for first in done for r in (first, *older.get(first.name, ()))]
