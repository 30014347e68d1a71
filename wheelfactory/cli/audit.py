"""`invoke audit` and `nox -s clean-install`: their arguments and printed reports.

``invoke audit --write-recipes`` is joined here: the audit (``audit.report``)
runs first, then the scaffold (``audit.scaffold``) plans and writes a recipe
for every package that still needs one, all or none.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.requirements import Requirement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import ui
from ..audit.classify import NEEDS
from ..audit.report import EXIT_MISSING, AuditResult, run_audit
from ..audit.report import Progress as AuditProgress
from ..audit.requirements import read_requirements
from ..settings.factory import Config, load_config
from ..settings.recipe import RECIPE_FILE

if TYPE_CHECKING:
    from ..audit.clean_install import CleanInstallReport

STATUS_SHORT = {
    "pypi-wheel": "PyPI wheel", "our-wheel": "our wheel", "pure": "pure Python", "needs-recipe": "sdist only",
    "needs-git-recipe": "nothing installable", "direct-url": "direct URL", "ignored": "ignored",
}
STATUS_STYLE = {"pypi-wheel": "green", "our-wheel": "cyan", "pure": "green", "needs-recipe": "red",
                "needs-git-recipe": "red bold", "direct-url": "yellow", "ignored": "dim"}


# --- invoke audit ----------------------------------------------------------------------------


class RichProgress(AuditProgress):
    """Progress bars on stderr while uv resolves and while the indexes are checked."""

    def __init__(self):
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=ui.console, transient=True)
        self.resolve_task = self.check_task = None

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        self.progress.__exit__(*exc)

    def start_resolve(self):
        self.resolve_task = self.progress.add_task("resolving the tree (uv, universal)", total=None)

    def resolved(self, n: int):
        if self.resolve_task is not None:
            self.progress.update(self.resolve_task, completed=n,
                                 description=f"resolving the tree (uv, universal): {n} packages")

    def end_resolve(self):
        if self.resolve_task is not None:
            self.progress.update(self.resolve_task, total=1, completed=1)

    def start_check(self, total: int):
        self.check_task = self.progress.add_task("checking PyPI and our index", total=total)

    def checked(self):
        if self.check_task is not None:
            self.progress.advance(self.check_task)


def print_table(result: AuditResult) -> None:
    """The audit as a table on stderr, then a one-line summary and the packages that need a recipe."""
    t = result.target
    # A report piped to a file or a CI log keeps its columns readable.
    width = None if ui.console.is_terminal else max(ui.console.width, 160)
    table = Table(title=f"{t.arch} {t.policy}, CPython {', '.join(result.pythons)}: "
                        f"{len(result.packages)} packages", title_justify="left", width=width)
    table.add_column("package", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold", ratio=3)
    table.add_column("recipe")
    table.add_column("via", overflow="fold", ratio=2)
    for p in result.packages:
        pys = "" if p.pythons == list(result.pythons) else f" (py {', '.join(p.pythons)})"
        if p.recipe:
            rec = f"recipes/{p.name} ({p.recipe['version']})" + ("" if p.recipe["matches"] or not p.version
                                                                 else " [yellow]≠ resolved[/yellow]")
        else:
            rec = "[red]missing[/red]" if p.status in NEEDS else ""
        style = STATUS_STYLE.get(p.status, "")
        detail = p.detail + (" [dim](only needed by packages that lack riscv64 wheels themselves)[/dim]"
                             if p.only_via_missing else "")
        table.add_row(p.name, p.version + pys, f"[{style}]{STATUS_SHORT[p.status]}[/{style}]", detail, rec,
                      ", ".join(p.via[:4]) + (" …" if len(p.via) > 4 else ""))
    ui.console.print(table)
    s = result.summary()
    ui.console.print(
        f"{s['total']} packages: {s['pypi-wheel']} with riscv64 wheels on PyPI, {s['our-wheel']} in our index, "
        f"{s['pure']} pure Python, {s['needs-recipe']} sdist only, {s['needs-git-recipe']} with nothing "
        f"installable ({s['with-recipe']} of those have a recipe)"
        + (f", {s['ignored']} ignored" if s["ignored"] else "")
        + f"  [{result.seconds:.1f}s{', cached resolution' if result.cached_resolution else ''}]"
    )
    if result.not_for_target:
        ui.console.print(f"not for {t.arch}, not resolved: {len(result.not_for_target)} requirements "
                         f"({', '.join(sorted({Requirement(r).name for r in result.not_for_target}))})")
    if result.own_metadata:
        ui.console.print(f"resolved with our metadata, not the index's: {', '.join(result.own_metadata)} "
                         f"(runtime.requires-dist or our build)")
    if result.missing:
        names = sorted({p.name for p in result.missing})
        ui.console.print(f"[red]needs a recipe:[/red] {', '.join(names)}  "
                         f"(`invoke audit … --write-recipes` scaffolds them)")


def audit_command(requirements: Iterable[str] = (), *, requirement_files: Iterable[str] = (),
                  root: Path | str | None = None, json_output: bool = False, write_recipes: bool = False,
                  pythons: Iterable[str] | None = None, refresh: bool = False) -> int:
    """`invoke audit`: resolve, classify, print; exit 2 when a package still needs a recipe."""
    config = load_config(root)
    reqs = read_requirements(requirements, requirement_files)
    show_progress = ui.console.is_terminal or not json_output
    result = run_audit(config, reqs, pythons=list(pythons) if pythons else None, refresh=refresh,
                       progress=RichProgress() if show_progress else None)
    written: list[Path] = []
    if write_recipes and result.missing:
        # Imported here for start-up speed: scaffold loads requests, which a warm audit never needs.
        from ..audit import scaffold

        written = scaffold.write_missing_recipes(config, result.missing)
    if json_output:
        doc = result.to_json()
        doc["written_recipes"] = [str(p) for p in written]
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        print_table(result)
    for p in written:
        ui.info(f"scaffolded {p}")
    still_missing = [p for p in result.missing if not (config.paths.recipes / p.name / RECIPE_FILE).is_file()]
    return EXIT_MISSING if still_missing else 0


# --- nox -s clean-install ------------------------------------------------------------------------


def clean_install_parser() -> argparse.ArgumentParser:
    """The arguments of `nox -s clean-install -- …`."""
    p = argparse.ArgumentParser(prog="nox -s clean-install --",
                                description="Install requirements in a bare venv as a user would; fail on source "
                                            "builds and on imports that miss a shared library.")
    p.add_argument("requirements", nargs="*", metavar="REQUIREMENT")
    p.add_argument("-r", "--requirement", action="append", default=[], dest="files", metavar="FILE")
    p.add_argument("--python", help="X.Y (on the clean system, or pythonX.Y on PATH with --target host) or, with "
                                    "--target host, an interpreter path; default: target.pythons' first, or "
                                    "this one with --target host")
    p.add_argument("--index", action="append", dest="indexes", metavar="URL",
                   help="install from these indexes instead (first = --index-url); default: audit.pypi-url "
                        "plus our index")
    p.add_argument("--target", choices=("default", "host"), default="default",
                   help="default: on a fresh layer of the target's clean system (emulated on another host), "
                        "with our index made from dist/ served for the run; host: on this machine")
    p.add_argument("--keep", action="store_true", help="keep the venv for a look")
    p.add_argument("--no-upgrade-pip", action="store_true", help="use the pip that venv installs")
    p.add_argument("--json", action="store_true", help="the report as JSON on stdout")
    return p


def print_clean_install(config: Config, rep: CleanInstallReport) -> None:
    """The clean-install report on stderr: what was built from source, which libraries are missing."""
    head = f"clean install of {' '.join(rep.requirements)} ({rep.python}, bare venv, --prefer-binary)"
    if rep.ok:
        ui.info(f"[green]OK[/green] {head}: {len(rep.installed)} distributions from wheels, every module "
                f"imports  [{rep.seconds:.0f}s]")
    else:
        ui.error(f"{head}: FAILED  [{rep.seconds:.0f}s]")
    if rep.pip_failed:
        ui.info(f"  pip install failed: {rep.pip_failed}")
        if "No matching distribution" in rep.pip_failed:
            ui.info("  fix: correct the requirement's name or version (pip lists the versions it found), "
                    "or, for a project none of the indexes has, give its index with --index URL")
    if rep.built_from_source:
        ui.info(f"  built from source ({len(rep.built_packages)}: {', '.join(rep.built_packages)}) — each needs "
                f"a wheel in our index (`invoke new-recipe NAME`):")
        for line in rep.built_from_source:
            ui.info(f"    {line}")
    if rep.missing_libraries:
        ui.info("  imports failing on a missing shared library:")
        for f in rep.missing_libraries:
            deb = (" | ".join(f.debian[:4]) + (" …" if len(f.debian) > 4 else "")) if f.debian else \
                "no Debian package found for it"
            recipe = config.paths.recipes / f.dist / RECIPE_FILE
            where = (f"declare it in {_rel(config, recipe)} [runtime] debian, or let auditwheel bundle it"
                     if recipe.is_file() else "the wheel's recipe should declare it ([runtime] debian) or "
                                              "bundle it")
            ui.info(f"    {f.dist}: import {f.module}: {f.library} → Debian: {deb}; {where}")
    for f in rep.other_import_failures:
        ui.warn(f"{f.dist}: import {f.module} failed: {f.error[:300]}")
    ui.info(f"  log: {rep.log}")


def _rel(config: Config, path: Path) -> str:
    return str(path.relative_to(config.root)) if path.is_relative_to(config.root) else str(path)


def clean_install_command(argv: list[str], root: Path | str | None = None) -> int:
    """`nox -s clean-install -- REQUIREMENT...`: exit 1 when anything was built or a library is missing."""
    # Imported here for start-up speed: `invoke audit` imports this module and never needs pip's machinery.
    from ..audit import clean_install as ci

    try:
        args = clean_install_parser().parse_args(list(argv))
    except SystemExit as e:
        return int(e.code or 0)
    config = load_config(root)
    rep = ci.clean_install(config, args.requirements, args.files, python=args.python, indexes=args.indexes,
                           keep=args.keep, upgrade_pip=not args.no_upgrade_pip, target=args.target)
    if args.json:
        sys.stdout.write(json.dumps({**dataclasses.asdict(rep), "ok": rep.ok}, indent=2) + "\n")
    print_clean_install(config, rep)
    return 0 if rep.ok else 1
