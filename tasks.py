"""Invoke tasks: thin wrappers that parse arguments and call the engine."""

from __future__ import annotations

import os
from pathlib import Path

from invoke import Argument, Collection, Task, task

from wheelfactory import cli

# The project root; WHEELFACTORY_ROOT points the tasks at another checkout's
# recipes, dist/ and index/ (the tests use it for throwaway projects).
ROOT = Path(os.environ.get("WHEELFACTORY_ROOT") or Path(__file__).parent).resolve()


# --- index / publish (issue: an index that cannot lie) ------------------------------
@task(help={"full": "rewrite every page (default: only what changed)", "json": "print the change report as JSON"})
def index(c, full=False, json=False):
    """Regenerate index/ from the dist/ records; reports added / replaced / removed wheels."""
    from wheelfactory.cli import index as index_cli

    cli.run(index_cli.index_command, ROOT, full=full, as_json=json)


@task(help={
    "dry_run": "show what would be uploaded/replaced; change nothing",
    "force": "replace release assets even where the release holds a newer build under the same name",
    "json": "print the report as JSON",
})
def publish(c, dry_run=False, force=False, json=False):
    """Publish files first, index last ([publish].target: directory or github)."""
    from wheelfactory.cli import publish as publish_cli

    cli.run(publish_cli.publish_command, ROOT, dry_run=dry_run, force=force, as_json=json)


@task(name="fetch-dist", help={"json": "print the report as JSON"})
def fetch_dist(c, json=False):
    """Restore into dist/ the published wheels + records it lacks (CI: before `invoke publish`)."""
    from wheelfactory.cli import publish as publish_cli

    cli.run(publish_cli.fetch_dist_command, ROOT, as_json=json)


@task(help={"port": "port on 127.0.0.1 (0 = any free port)", "host": "address to bind (default 127.0.0.1)",
            "directory": "folder to serve (default: paths.index)"})
def serve(c, port=8000, host="127.0.0.1", directory=""):
    """Serve index/ on 127.0.0.1 with PEP 691 content negotiation, for trying installs."""
    from wheelfactory.cli import index as index_cli

    cli.run(index_cli.serve_command, ROOT, host=host, port=int(port), directory=directory or None)


@task(name="check-index", help={
    "target": "index URL or local folder (default: index.url, else paths.index)",
    "quick": "HEAD the wheels instead of downloading them (.metadata is still checked)",
    "jobs": "parallel downloads",
})
def check_index(c, target="", quick=False, jobs=8):
    """Fetch every link of a published index: status, size, sha256, .metadata vs the wheel."""
    from wheelfactory.cli import index as index_cli

    cli.run(index_cli.check_index_command, ROOT, target=target or None, quick=quick, jobs=int(jobs))


# --- audit / new-recipe (issue: find what is missing) ------------------------------
# invoke has no variadic positionals: PACKAGES is one argument holding one or more
# requirements separated by spaces or commas ("vllm", "numpy>=2,<3 scipy"), plus
# any number of `-r FILE` (pip requirements files). invoke requires every positional;
# _AuditTask lets `-r FILE` stand in for PACKAGES (`invoke audit -r requirements.txt`).


class _PackagesArgument(Argument):
    """PACKAGES, which counts as given once a ``-r FILE`` is (invoke asks ``value``)."""

    requirement: Argument

    @property
    def value(self):
        given = self._value if self._value is not None else self.default
        return "" if given is None and self.requirement.value else given

    @value.setter
    def value(self, arg):
        self.set_value(arg, cast=True)


class _AuditTask(Task):
    def get_arguments(self, ignore_unknown_help=None):
        args = super().get_arguments(ignore_unknown_help)
        by_name = {a.name: a for a in args}
        by_name["packages"].__class__ = _PackagesArgument
        by_name["packages"].requirement = by_name["requirement"]
        return args


@task(klass=_AuditTask, positional=["packages"], iterable=["requirement", "python"], help={
    "packages": "requirements, space- or comma-separated: \"vllm\", \"numpy>=2,<3 torch\"",
    "requirement": "a requirements file (repeatable), as pip's -r",
    "json": "print the report as JSON on stdout",
    "write-recipes": "scaffold recipes/NAME for every package that needs one (all or none)",
    "python": "audit for this Python X.Y (repeatable; default: target.pythons)",
    "refresh": "ask the indexes again even when the cache is fresh",
})
def audit(c, packages=None, requirement=None, json=False, write_recipes=False, python=None, refresh=False):
    """Resolve the full dependency tree for the target and list what lacks riscv64 wheels (exit 2)."""
    from wheelfactory.cli import audit as audit_cli

    cli.run(audit_cli.audit_command, [packages] if packages else [], requirement_files=requirement or [],
            root=ROOT, json_output=json, write_recipes=write_recipes, pythons=python or None,
            refresh=refresh)


@task(name="new-recipe", help={
    "name": "the PyPI project name",
    "version": "the version to build (default: the latest release)",
    "git": "build from this git repository instead of the PyPI sdist",
    "rev": "the tag, branch or commit of --git",
    "subdirectory": "folder of the Python project inside the source",
})
def new_recipe(c, name, version="", git="", rev="", subdirectory=""):
    """Scaffold recipes/NAME/recipe.toml from PyPI: version, sdist sha256, build backend and its settings."""
    from wheelfactory.cli import upkeep

    cli.run(upkeep.new_recipe_command, name, root=ROOT, version=version or None, git=git, rev=rev,
            subdirectory=subdirectory)


# --- CI workflow / runners (issue: many boards) ------------------------------------
# Two namespaces, `ci` and `runners` (added to `ns` at the end of this file). The
# functions are plain (not module-level Tasks) so they appear only there.


def _ci_workflow(c, check=False):
    """Generate .github/workflows/ from the recipes (--check: fail if the committed files differ)."""
    from wheelfactory.cli import ci

    cli.run(ci.workflow_command, ROOT, check=check)


def _ci_plan(c, base="", recipes="", event="", pr_base="", head_repo="", repo=""):
    """Which recipes get a build job: changed since --base (or, in CI, per --event); prints JSON."""
    from wheelfactory.cli import ci

    cli.run(ci.plan_command, ROOT, base=base, recipes=recipes, event=event, pr_base=pr_base,
            head_repo=head_repo, repo=repo)


def _ci_mark_published(c, remote="origin"):
    """Move the [ci].published-tag tag to HEAD and push it (the publish job's last step)."""
    from wheelfactory.cli import ci

    cli.run(ci.mark_published, ROOT, remote=remote)


def _runners_register(c, jit=False, replace=False, name="", no_start=False):
    """Register this board's runner once (--jit: run one just-in-time ephemeral runner)."""
    from wheelfactory.cli import runners

    cli.run(runners.register, ROOT, jit=jit, replace=replace, name=name, start=not no_start)


def _runners_status(c, json=False):
    """List the runners of [runners].scope: online/offline, busy/idle, labels."""
    from wheelfactory.cli import runners

    cli.run(runners.status, ROOT, as_json=json)


def _runners_drain(c, name=""):
    """Take the factory label off this board's runner, wait until it is idle (bounded), stop its service."""
    from wheelfactory.cli import runners

    cli.run(runners.drain, ROOT, name=name)


def _runners_restart(c, name=""):
    """Drain, restart the runner service, wait until it is online, put the factory label back."""
    from wheelfactory.cli import runners

    cli.run(runners.restart, ROOT, name=name)


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
@task(iterable=["name"], help={
    "name": "recipe to check (repeatable; default: all)",
    "json": "print the report as JSON on stdout",
    "target": "'host': check wheels for this machine's arch instead of the target's",
    "retire": "write package.retired into every retire candidate's recipe",
})
def outdated(c, name=None, json=False, target=None, retire=False):
    """Recipes behind PyPI, and those upstream now ships target wheels for (retire candidates)."""
    from wheelfactory.cli import upkeep

    cli.run(upkeep.outdated_command, ROOT, name or (), json_out=json, target=target, retire=retire)


@task(iterable=["name"], help={
    "name": "recipe to prove (repeatable; default: all)",
    "target": "'host': build for this machine (the host level) instead of the target; the target's arch (riscv64) is the default",
    "runner": "auto | native | emulated | container (default: build.runner)",
})
def prove(c, name=None, target=None, runner=None):
    """Build recipes and write how far each got to docs/catalog-status.md (exit 1 if one fell short)."""
    from wheelfactory.cli import upkeep

    cli.run(upkeep.prove_command, ROOT, name or (), target=target, runner=runner)


@task(iterable=["python"], help={
    "name": "recipe(s) to bump, comma-separated",
    "version": "the version to bump to (default: the newest upstream release); one recipe only",
    "target": "'host': build for this machine's arch",
    "runner": "auto | native | emulated | container",
    "python": "build for this Python only (repeatable)",
    "commit": "git-commit each recipe that was bumped",
    "json": "print the results as JSON on stdout",
})
def bump(c, name, version=None, target=None, runner=None, python=None, commit=False, json=False):
    """Bump version+sha256 of NAME; the change is kept only if it builds and verifies."""
    from wheelfactory.cli import upkeep

    names = [n.strip() for n in name.split(",") if n.strip()]
    cli.run(upkeep.bump_command, ROOT, names, version=version, target=target, runner=runner,
            pythons=python or None, commit=commit, json_out=json)


@task(name="bump-outdated", iterable=["python"], help={
    "target": "'host': build for this machine's arch",
    "runner": "auto | native | emulated | container",
    "python": "build for this Python only (repeatable)",
    "commit": "git-commit each recipe that was bumped",
    "json": "print the results as JSON on stdout",
})
def bump_outdated(c, target=None, runner=None, python=None, commit=False, json=False):
    """Bump every recipe behind upstream, at most [upstream].max-bumps per run."""
    from wheelfactory.cli import upkeep

    cli.run(upkeep.bump_command, ROOT, (), target=target, runner=runner, pythons=python or None,
            commit=commit, json_out=json)


# --- docs ------------------------------------------------------------------------------
@task(help={"check": "fail (exit 1) when a generated table differs from the schema; write nothing"})
def docs(c, check=False):
    """Refill the key tables of docs/recipes.md and docs/config.md from the settings schema."""
    from wheelfactory.cli import docs as docs_cli

    cli.run(docs_cli.docs_command, ROOT, check=check)


# --- the namespace (keep this block last) ---------------------------------------------
# Every top-level @task above, plus the `ci` and `runners` namespaces.
import sys as _sys  # noqa: E402

ns = Collection.from_module(_sys.modules[__name__])
ns.add_collection(_ci_ns)
ns.add_collection(_runners_ns)
