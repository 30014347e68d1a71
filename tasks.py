"""Invoke tasks: thin wrappers that parse arguments and call the engine."""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, task

from wheelfactory import cli

ROOT = Path(__file__).parent


# --- index / publish (issue: an index that cannot lie) ------------------------------
# (tasks added here)


# --- audit / new-recipe (issue: find what is missing) ------------------------------
# (tasks added here)


# --- CI workflow / runners (issue: many boards) ------------------------------------
# Two namespaces, `ci` and `runners` (added to `ns` at the end of this file). The
# functions are plain (not module-level Tasks) so they appear only there.

def _ci_root():
    import os

    return os.environ.get("WHEELFACTORY_ROOT") or ROOT


def _ci_workflow(c, check=False):
    """Generate .github/workflows/ from the recipes (--check: fail if the committed files differ)."""
    from wheelfactory import workflow

    cli.run(workflow.workflow_command, _ci_root(), check=check)


def _ci_plan(c, base="", recipes="", event="", pr_base="", head_repo="", repo=""):
    """Which recipes get a build job: changed since --base (or, in CI, per --event); prints JSON."""
    from wheelfactory import workflow

    cli.run(workflow.plan_command, _ci_root(), base=base, recipes=recipes, event=event, pr_base=pr_base,
            head_repo=head_repo, repo=repo)


def _ci_mark_published(c, remote="origin"):
    """Move the [ci].published-tag tag to HEAD and push it (the publish job's last step)."""
    from wheelfactory import workflow

    cli.run(workflow.mark_published, _ci_root(), remote=remote)


def _runners_register(c, jit=False, replace=False, name="", no_start=False):
    """Register this board's runner once (--jit: run one just-in-time ephemeral runner)."""
    from wheelfactory import ghrunners

    cli.run(ghrunners.register, _ci_root(), jit=jit, replace=replace, name=name, start=not no_start)


def _runners_status(c, json=False):
    """List the runners of [runners].scope: online/offline, busy/idle, labels."""
    from wheelfactory import ghrunners

    cli.run(ghrunners.status, _ci_root(), as_json=json)


def _runners_drain(c, name=""):
    """Wait until this board's runner is idle (bounded), then stop its service."""
    from wheelfactory import ghrunners

    cli.run(ghrunners.drain, _ci_root(), name=name)


def _runners_restart(c, name=""):
    """Drain, then restart the runner service and wait until it is online again."""
    from wheelfactory import ghrunners

    cli.run(ghrunners.restart, _ci_root(), name=name)


_ci_ns = Collection("ci")
_ci_ns.add_task(task(_ci_workflow), name="workflow")
_ci_ns.add_task(task(_ci_plan), name="plan")
_ci_ns.add_task(task(_ci_mark_published), name="mark-published")
_runners_ns = Collection("runners")
_runners_ns.add_task(task(_runners_register), name="register")
_runners_ns.add_task(task(_runners_status), name="status")
_runners_ns.add_task(task(_runners_drain), name="drain")
_runners_ns.add_task(task(_runners_restart), name="restart")


# --- upstream tracking (issue: the catalog at speed) --------------------------------
# (tasks added here)


# --- the namespace (keep this block last) ---------------------------------------------
# Every top-level @task above, plus the `ci` and `runners` namespaces.
import sys as _sys  # noqa: E402

ns = Collection.from_module(_sys.modules[__name__])
ns.add_collection(_ci_ns)
ns.add_collection(_runners_ns)
