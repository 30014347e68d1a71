"""The build command: ``nox -s build -- NAME...``, ``build-all`` and ``build-NAME``.

Parses the arguments, picks the recipes (build/catalog.py) and the runner,
builds them as a graph, and prints what came of it: one error line (and log)
per failure, then the summary table when more than one recipe was involved.
The library (build/) returns RecipeResults and prints only progress.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from .. import ui
from .._util.proc import interrupt_running
from ..build import attempt, catalog, compcache, graph
from ..build.attempt import STATUSES, RecipeResult, rel
from ..runners import select_runner
from ..settings.factory import PYTHON_XY, Config, load_config


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The build command's options; argparse exits (status 2) on a usage error."""
    p = argparse.ArgumentParser(prog="nox -s build --", description="Build recipes into verified wheels in dist/.")
    p.add_argument("names", nargs="*", metavar="NAME", help="recipes to build (their dependencies come along)")
    p.add_argument("--all", action="store_true", help="every recipe")
    p.add_argument("--target", choices=("default", "host"), default="default",
                   help="host: build for this machine's arch (policy: the best auditwheel finds)")
    p.add_argument("--runner", choices=("auto", "native", "emulated", "container"), default=None,
                   help="where builds run (default: build.runner in factory.toml)")
    p.add_argument("--python", action="append", metavar="X.Y", type=_python_version,
                   help="build for this Python (repeatable)")
    p.add_argument("--version", default=None, metavar="V",
                   help="build only this version of the one recipe named (package.version or a [versions] "
                        "key; default: every version it lists)")
    p.add_argument("--force", action="store_true", help="build again even if the build key is stored")
    p.add_argument("--jobs", type=int, default=None, help="parallel builds (default: build.jobs)")
    p.add_argument("--keep-going", action=argparse.BooleanOptionalAction, default=None,
                   help="go on after a failure (default: build.keep-going)")
    args = p.parse_args(list(argv))
    if not args.names and not args.all:
        p.error("name at least one recipe, or --all")
    return args


def _python_version(text: str) -> str:
    """--python's value: a CPython version X.Y (argparse makes the ArgumentTypeError a usage error)."""
    if not PYTHON_XY.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a CPython version X.Y; write e.g. --python 3.12")
    return text


def build_command(argv: list[str], root: Path) -> int:
    """``nox -s build-NAME`` / ``build -- NAME...`` / ``build-all``: returns the exit status.

    0 when nothing failed, 1 when a build failed, 2 on a usage error; a
    FactoryError (bad recipe, no runner) reaches ``cli.run``.
    """
    try:
        args = parse_args(argv)
    except SystemExit as e:  # argparse already printed the usage message
        return int(e.code or 0)
    config = load_config(root)
    if args.target == "host":
        config = config.for_host()
    if args.jobs is not None:
        config = config.replace(build={"jobs": args.jobs})
    keep_going = config.build.keep_going if args.keep_going is None else args.keep_going
    recipes = catalog.choose(config, args.names, every=args.all, version=args.version)
    runner = select_runner(config, args.runner)
    # --force rebuilds what was named, not the dependencies that came along.
    forced = (set(recipes) if args.all else set(args.names)) if args.force else set()
    attempt.CANCELLED.clear()
    try:
        results = catalog.build_recipes(config, recipes, runner, pythons=args.python, force=forced,
                                        jobs=graph.default_jobs(config), keep_going=keep_going)
    except KeyboardInterrupt:
        attempt.CANCELLED.set()  # builds still running in worker threads stop before dist/
        interrupt_running()  # and the commands they wait on stop now, not when they end
        raise
    report(config, results)
    return 1 if any(r.status == "failed" for r in results) else 0


def report(config: Config, results: list[RecipeResult]) -> None:
    """Each failure with its log; then the table (several recipes) or the wheels built (one)."""
    for r in results:
        if r.status == "failed":
            ui.error(r.message + (f"\n  log: {rel(config, r.logs[-1])}" if r.logs else ""))
    if len(results) > 1:
        _print_table(config, results)
        return
    for r in results:
        if r.status == "built":
            for w in r.wheels:
                ui.info(f"[green]built[/green] {rel(config, w)}")
        elif r.status == "disabled":
            ui.warn(f"{r.name}: {r.message}")


def _print_table(config: Config, results: list[RecipeResult]) -> None:
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
                      ui.mask_secrets(what), "\n".join(rel(config, p) or "" for p in r.logs) or "-")
    ui.console.print(table)
    counts = {s: sum(1 for r in results if r.status == s) for s in STATUSES}
    ui.info(", ".join(f"{n} {s}" for s, n in counts.items() if n))
