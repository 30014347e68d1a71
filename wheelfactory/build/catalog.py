"""The catalog: which recipes a command builds, and the graph of them run through the pipeline.

This is the glue pyodide-build keeps apart from its graph: ``graph`` orders
and schedules, ``pipeline`` builds one recipe, ``compcache`` gives each build
its compiler caches; :func:`build_recipes` joins the three. :func:`choose`
reads the recipes a command names (and what they need) through the one
dependency walk, ``graph.select``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from ..settings.factory import Config
from ..settings.recipe import RECIPE_FILE, Recipe, load_all, load_recipe, recipe_path
from . import compcache, graph
from .attempt import RecipeResult
from .pipeline import build_recipe


class RecipeFolder(Mapping[str, Recipe]):
    """recipes/ as a read-only mapping of canonical name -> Recipe, each parsed when first asked for.

    ``build -- NAME`` reads NAME and what it needs, not every recipe: a broken
    recipe elsewhere in the folder does not stop it.
    """

    def __init__(self, root: Path):
        self.root = root
        self._loaded: dict[str, Recipe] = {}

    def __getitem__(self, name: str) -> Recipe:
        if name not in self._loaded:
            self._loaded[name] = load_recipe(self.root, name)
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and recipe_path(self.root, name).is_file()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(p.parent.name for p in self.root.glob(f"*/{RECIPE_FILE}")))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def choose(config: Config, names: Sequence[str] = (), *, every: bool = False) -> dict[str, Recipe]:
    """The recipes to build: every one that is not retired (``package.retired``: upstream ships the
    wheels) plus what those need, or the named ones and all they need; RecipeError names a
    missing recipe or dependency, a dependency cycle and, for named ones, a disabled recipe among
    them or what they need (checked before anything runs; ``every`` skips disabled ones)."""
    root = config.paths.recipes
    if every:
        everything = load_all(root)
        recipes = graph.select(everything, [n for n, r in everything.items() if not r.package.retired], where=str(root))
    else:
        recipes = graph.select(RecipeFolder(root), names, where=str(root))
    graph.topological_order(recipes)
    if not every:
        graph.check_enabled(recipes, names)
    return recipes


def build_recipes(config: Config, recipes: Mapping[str, Recipe], runner, *, pythons: Sequence[str] | None = None,
                  force: Iterable[str] = (), jobs: int | None = None, keep_going: bool = True) -> list[RecipeResult]:
    """Run the pipeline over ``recipes`` as a graph (dependencies first, ``jobs`` at once): each build
    gets the wheels of what it needs from this run and its own compiler-cache environment.
    ``force``: names to rebuild even when their build key is stored (not the dependencies that
    came along). One result per recipe, in dependency order."""
    forced = {canonicalize_name(n) for n in force}

    def build_one(recipe: Recipe, deps: list[Path]) -> RecipeResult:
        env = compcache.prepare(config, runner, recipe.name)
        try:
            return build_recipe(config, recipe, runner, pythons=pythons, force=recipe.name in forced,
                                dependency_wheels=deps, extra_env=env)
        finally:
            compcache.finish(env)

    return graph.run_graph(config, recipes, build_one, jobs=jobs or graph.default_jobs(config),
                           keep_going=keep_going)
