"""`invoke new-recipe`, `invoke outdated`, `invoke bump`: their arguments and printed reports.

The library parts are ``audit.scaffold`` (planning and writing a recipe) and
``audit.upstream`` (where recipes stand against PyPI, and bumps); a bump is
built through the real pipeline (``build.catalog``) with the runner chosen here.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from packaging.utils import InvalidName, canonicalize_name
from rich.markup import escape
from rich.table import Table

from .. import ui
from ..audit import prove, scaffold, upstream
from ..build import catalog, graph, store
from ..runners import select_runner
from ..settings.factory import Config, load_config
from ..settings.recipe import RECIPE_FILE, load_all

# --- invoke new-recipe -------------------------------------------------------------------


def new_recipe_command(name: str, *, root: Path | str | None = None, version: str | None = None,
                       git: str = "", rev: str = "", subdirectory: str = "") -> int:
    """`invoke new-recipe NAME`: scaffold recipes/NAME/recipe.toml."""
    try:  # PEP 508's name rule; invoke hands `new-recipe --help` over as the name
        canonical = canonicalize_name(name, validate=True)
    except InvalidName:
        raise scaffold.ScaffoldError(
            f"{name!r} is not a project name (PEP 508: letters, digits, '.', '-', '_'); usage: invoke new-recipe "
            f"NAME [--version V] [--git URL --rev REV] [--subdirectory DIR]; options: invoke --help new-recipe"
        ) from None
    config = load_config(root)
    path = config.paths.recipes / canonical / RECIPE_FILE
    if path.exists():
        raise scaffold.ScaffoldError(f"{path} already exists; edit it (or remove it to scaffold again)")
    plan = scaffold.plan_recipe(config, name, version=version or None, git=git, rev=rev,
                                subdirectory=subdirectory)
    (written,) = scaffold.write_recipes(config.paths.recipes, [plan])
    ui.info(f"[green]wrote[/green] {written} ({plan.name} {plan.version}, backend {plan.backend})")
    for n in plan.notes:
        ui.warn(n)
    ui.info(f"next: review it, then `nox -s build -- {plan.name}`")
    return 0


# --- invoke outdated -------------------------------------------------------------------------


def _config(root, target: str | None) -> Config:
    config = load_config(root)
    if target == "host":
        return config.for_host()
    if target and target != config.arch:
        raise upstream.UpstreamError(
            f"--target must be 'host', {config.arch!r} (target.arch in factory.toml) or left out, got {target!r}")
    return config


def print_outdated(config: Config, statuses: list[upstream.Status]) -> None:
    """One row per recipe: our version, upstream's, and the target wheels upstream ships."""
    table = Table(title=f"upstream ({config.upstream.pypi_url}) for {config.arch}, "
                        f"Python {', '.join(config.pythons)}")
    for col in ("recipe", "ours", "upstream", "", f"{config.arch} wheels upstream"):
        table.add_column(col)
    for st in sorted(statuses, key=lambda s: s.name):
        mark = ("[yellow]newer[/yellow]" if st.newer else "[green]current[/green]") if st.latest else st.note
        if st.wheels:
            tags = ", ".join(f"{p}: {t}" for p, t in st.wheels.items())
            missing = [p for p in config.pythons if p not in st.wheels]
            wheels = (f"[dim]retired[/dim] {st.wheels_version}: {tags}" if st.retire and st.retired
                      else f"[bold]retire?[/bold] {st.wheels_version}: {tags}" if st.retire
                      else f"{st.wheels_version}: {tags} (none for {', '.join(missing)})")
        else:
            wheels = "none"
        if st.pure:
            wheels += f" [dim](a pure-Python {st.pure} wheel too: installs without the C extension)[/dim]"
        name = st.name + (f" [dim](disabled: {st.disabled})[/dim]" if st.disabled else "")
        table.add_row(name, st.current, st.latest or "-", mark, wheels)
    ui.console.print(table)
    n_new = sum(s.newer for s in statuses)
    n_ret = sum(s.retire and not s.retired for s in statuses)
    ui.info(f"{n_new} recipe(s) behind upstream; {n_ret} candidate(s) to retire "
            f"(upstream ships {config.arch} wheels for every Python we build)"
            + (": `invoke outdated --retire` marks them (package.retired)" if n_ret else ""))
    stale = [s.name for s in statuses if s.retired and not s.retire]
    if stale:
        ui.warn(f"retired, but upstream no longer covers every Python: {', '.join(stale)}; remove package.retired")


def outdated_command(root, names: Sequence[str] = (), *, json_out: bool = False, target: str | None = None,
                     retire: bool = False) -> int:
    """`invoke outdated [--name N] [--retire]`: recipes behind upstream and retire candidates;
    ``retire`` writes ``package.retired`` into the candidates' recipes."""
    if retire and target:
        raise upstream.UpstreamError("--retire marks recipes by the target's wheels; leave out --target")
    config = _config(root, target)
    statuses = upstream.outdated(config, names)
    if retire:
        for st in upstream.retire(config, statuses):
            ui.info(f"{st.name}: retired ({st.retired}) in {config.paths.recipes / st.name / RECIPE_FILE}")
    if json_out:
        print(json.dumps([asdict(s) for s in sorted(statuses, key=lambda s: s.name)], indent=2))
    else:
        print_outdated(config, statuses)
    return 0


# --- invoke bump -------------------------------------------------------------------------------


def print_bumps(results: list[upstream.BumpResult]) -> None:
    """One row per bump: from, to, result and why."""
    table = Table(title="bumps")
    for col in ("recipe", "from", "to", "result", "why"):
        table.add_column(col)
    colour = {"bumped": "green", "failed": "red", "error": "red", "capped": "yellow"}
    for r in results:
        c = colour.get(r.status, "dim")
        why = r.message + (f" (log: {r.log})" if r.log else "")
        table.add_row(r.name, r.old, r.new or "-", f"[{c}]{r.status}[/{c}]", why)
    ui.console.print(table)


def pipeline_builder(*, runner_choice: str | None = None, pythons: Sequence[str] | None = None) -> upstream.Builder:
    """Build a recipe (and what it needs) through the real pipeline: source, PEP 517
    build, repair, verify in a bare venv, store. Returns the recipe's RecipeResult."""
    runners: dict[str, object] = {}

    def build(config, name: str):
        # package.version only (the one bumped), not the older [versions] beside it; what it needs
        # builds as it does for any build (catalog.came_along)
        everything = load_all(config.paths.recipes, config.arch)
        key = canonicalize_name(name)
        recipes = catalog.came_along(graph.select(everything, [key]), [])
        recipes[key] = everything[key].at(everything[key].version)
        runner = runners.get(config.arch) or runners.setdefault(config.arch, select_runner(config, runner_choice))
        results = catalog.build_recipes(config, recipes, runner, pythons=pythons, keep_going=False)
        return next(r for r in results if r.name == canonicalize_name(name))

    return build


def bump_command(root, names: Sequence[str] = (), *, version: str | None = None, target: str | None = None,
                 runner: str | None = None, pythons: Sequence[str] | None = None, commit: bool = False,
                 json_out: bool = False) -> int:
    """`invoke bump [NAME] [--version V]`: exit 1 when a bump failed or could not be prepared."""
    config = _config(root, target)
    results = upstream.bump_many(config, names, version=version, commit=commit,
                                 build=pipeline_builder(runner_choice=runner, pythons=pythons))
    if json_out:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print_bumps(results)
    if not results:
        ui.info("every recipe is at its newest upstream version")
    return 1 if any(r.status in ("failed", "error") for r in results) else 0


# --- invoke prove ---------------------------------------------------------------------------------


def prove_command(root, names: Sequence[str] = (), *, target: str | None = None, runner: str | None = None) -> int:
    """`invoke prove [--target host] [NAME...]`: build the recipes (default: all, retired ones too)
    and write docs/catalog-status.md; exit 1 when one did not reach the level."""
    config = _config(root, target)
    everything = load_all(config.paths.recipes, config.arch)
    asked = [canonicalize_name(n) for n in names] or sorted(everything)
    chosen = catalog.came_along(graph.select(everything, asked, where=str(config.paths.recipes)), asked)
    run_on = select_runner(config, runner)
    results = catalog.build_recipes(config, chosen, run_on)
    new = prove.proofs(config, chosen, results, run_on.name)
    docs = config.root / "docs"
    # Two proves at once (host and riscv64) each merge their rows into the same file: one at a time.
    with store.path_lock(config.paths.build / ".locks", docs, "catalog-status"):
        page = prove.write(docs, prove.merge(prove.load(docs), new, {n: r.all_versions for n, r in everything.items()}),
                           everything)
    for p in new:
        mark = "[green]reached[/green]" if p.reached else f"[red]not reached[/red]: {escape(p.reason)}"
        ui.info(f"{p.recipe} {p.version}: {p.level} {mark}")
    ui.info(f"wrote {page}")
    return 0 if all(p.reached for p in new) else 1
