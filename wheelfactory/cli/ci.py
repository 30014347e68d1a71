"""``invoke ci.workflow / ci.plan / ci.mark-published``: load factory.toml, call
:mod:`wheelfactory.ci`, print what it reports (and, in GitHub Actions, write the
plan's job outputs and step summary)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import ui
from ..ci import plan as ci_plan
from ..ci import workflow
from ..errors import FactoryError
from ..settings.factory import load_config

Root = Path | str | None


def workflow_command(root: Root = None, *, check: bool = False) -> int:
    """``invoke ci.workflow``: write the generated files (``check``: only compare, exit 1 when stale)."""
    config = load_config(root)
    rel = lambda p: os.path.relpath(p, config.root)  # noqa: E731
    if check:
        files = workflow.workflow_files(config)
        stale = workflow.stale_files(config, files)
        if stale:
            raise FactoryError(
                f"the committed workflow is out of date with the recipes: {', '.join(rel(p) for p in stale)}; "
                f"run `invoke ci.workflow` and commit the result"
            )
        ui.info(f"workflow up to date: {', '.join(rel(p) for p in files)}")
        return 0
    _, written = workflow.write_files(config)
    ui.info(f"wrote {', '.join(rel(p) for p in written)}" if written else "workflow already up to date")
    return 0


def plan_command(root: Root = None, *, base: str = "", recipes: str = "", event: str = "", pr_base: str = "",
                 head_repo: str = "", repo: str = "") -> int:
    """``invoke ci.plan``: print the plan (JSON ``{recipe: build?}`` on stdout); in Actions also
    write the job outputs (``$GITHUB_OUTPUT``: build, any, requirements) and a summary table."""
    names = recipes.split() if recipes.strip() else None
    entries = ci_plan.plan(load_config(root), base=base or None, names=names, event=event, pr_base=pr_base,
                           head_repo=head_repo, repo=repo)
    build = {n: e.build for n, e in sorted(entries.items())}
    for e in sorted(entries.values(), key=lambda e: (not e.build, e.name)):
        ui.info(f"{'build' if e.build else 'skip '}  {e.name}: {e.reason}")
    print(json.dumps(build, sort_keys=True))
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        requirements = " ".join(entries[n].requirement for n, b in build.items() if b)
        with open(output, "a") as f:
            f.write(f"build={json.dumps(build, sort_keys=True, separators=(',', ':'))}\n")
            f.write(f"any={'true' if any(build.values()) else 'false'}\n")
            f.write(f"requirements={requirements}\n")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write("| recipe | build | why |\n|---|---|---|\n")
            for e in sorted(entries.values(), key=lambda e: e.name):
                f.write(f"| {e.name} | {'yes' if e.build else 'no'} | {e.reason} |\n")
    return 0


def mark_published(root: Root = None, *, remote: str = "origin") -> int:
    """``invoke ci.mark-published``: move the published tag to HEAD (never backwards) and push it."""
    marked = ci_plan.mark_published(load_config(root), remote=remote)
    if marked.moved:
        ui.info(f"tag {marked.tag} -> {marked.head[:12]}")
    else:
        ui.warn(f"tag {marked.tag} is at {marked.current[:12]}, which is not an ancestor of HEAD {marked.head[:12]} "
                f"(a newer run published first); leaving it")
    return 0
