"""The GitHub Actions workflow, generated from the recipes (``invoke ci.workflow``).

One workflow builds every recipe on the boards, each job running exactly the
``nox -s build-NAME`` a maintainer would run:

    plan ──► build-numpy ──► build-torch ──┐
        └──► build-cffi ───────────────────┴──► publish (main only, one at a time)

* ``plan`` runs ``invoke ci.plan``: which recipes' build inputs (recipe file,
  patches, ``[target]``, the build-logic version, and what they need) changed
  since the base — the pull request's base, or on ``main`` the commit whose
  wheels were last published (the ``[ci].published-tag`` tag, moved by the
  publish job only after the index checks pass, so a failed or superseded
  publish is simply redone by the next run). It emits a JSON object
  ``{recipe: true|false}`` that each build job's ``if:`` reads.
* a build job ``needs:`` the jobs of everything its recipe needs (build and
  run time, transitively), downloads their fresh wheels into ``dist/`` so the
  pipeline reuses them, runs ``nox -s build-NAME``, uploads its wheels and
  records, and uploads the build logs always.
* ``publish`` runs after all builds, on the main branch only, in a concurrency
  group so two publishes never race: ``invoke fetch-dist`` (the published
  wheels and records back into ``dist/``), ``invoke publish``, ``invoke check-index``,
  ``nox -s clean-install``, then moves the published tag.

The file is never edited by hand; a test fails when the committed file differs
from what the recipes generate. Secrets appear by name only (``secrets.X``),
each job gets the smallest ``permissions``, and untrusted event fields reach
shell steps only through environment variables.
Checks of single keys (label shapes, the workflow's file name) run when
factory.toml is loaded; here remain the checks that need other settings or the
recipes (labels against ``[runners].labels`` and ``[ci].hosted-labels``, recipe
names in ``[ci].recipe-labels``). The text comes from :mod:`.yaml`; which
recipes changed is :mod:`.plan`; the command is ``wheelfactory/cli/ci.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from .._util.fs import atomic_write_text
from ..build.graph import closure, topological_order
from ..errors import ConfigError
from ..settings.factory import CACHE_ENV, CONFIG_NAME, Config
from ..settings.recipe import RECIPE_FILE, Recipe, load_all
from ..settings.schema import did_you_mean
from .yaml import scalar, to_yaml

# GitHub's own actions, pinned by major version: the first majors on the node24 runtime
# (actionlint flags the node20 ones, whose removal GitHub has scheduled).
CHECKOUT = "actions/checkout@v5"
UPLOAD = "actions/upload-artifact@v6"
DOWNLOAD = "actions/download-artifact@v7"
ATTEST = "actions/attest-build-provenance@v3"
# The permissions attest-build-provenance needs, and no more: an OIDC token for the Sigstore
# certificate, writing the attestation, reading the repository.
ATTEST_PERMISSIONS = {"contents": "read", "id-token": "write", "attestations": "write"}

ACTIONLINT_CONFIG = "actionlint.yaml"  # beside the workflows folder: .github/actionlint.yaml


# --- labels ------------------------------------------------------------------------


def _self_hosted(labels: list[str]) -> bool:
    return "self-hosted" in [label.lower() for label in labels]


def check_runs_on(config: Config, labels: list[str], key: str) -> None:
    """One runs-on label set must be something a runner really carries.

    A set with ``self-hosted`` must use only labels our boards carry: their
    system labels (self-hosted, the OS, the arch label of the runner kind) and
    the custom ones they register with (``[runners].factory-label`` and
    ``[runners].labels``); otherwise it must be exactly one hosted label from
    ``[ci].hosted-labels``. A job asking for a label nobody has queues forever.
    (Each label's shape, and the factory label in every self-hosted set, are
    checked when factory.toml is loaded.)
    """
    where = config.where
    if not labels:
        raise ConfigError(f"{where}: '{key}' is empty; give the runner labels a job runs on, e.g. "
                          f"[\"self-hosted\", \"linux\", \"riscv64\"]")
    if _self_hosted(labels):
        carried = [*config.system_labels, *config.board_labels]
        known = {label.lower() for label in carried}
        for label in labels:
            if label.lower() not in known:
                raise ConfigError(
                    f"{where}: '{key}' asks for label '{label}', which no board registered by "
                    f"`invoke runners.register` carries{did_you_mean(label.lower(), known)}; known labels: "
                    f"{', '.join(carried)} (system labels of [runners].kind {config.runner_kind!r}, then "
                    f"[runners].factory-label and [runners].labels). Fix the label, or add it "
                    f"to [runners].labels and re-register the boards"
                )
        return
    hosted = config.ci.hosted_labels
    if len(labels) != 1 or labels[0] not in hosted:
        guess = did_you_mean(labels[0], hosted) if len(labels) == 1 else ""
        raise ConfigError(
            f"{where}: '{key}' = {labels} is neither a self-hosted set (one that includes 'self-hosted') "
            f"nor one hosted runner label from [ci].hosted-labels ({', '.join(hosted) or 'none'}){guess}; "
            f"fix: give one of those labels, add the label to [ci].hosted-labels (a hosted runner your "
            f"account has), or add \"self-hosted\" and the boards' labels"
        )


def build_labels(config: Config, recipes: Mapping[str, Recipe]) -> dict[str, list[str]]:
    """runs-on of each recipe's build job: ``[ci].runner-labels`` (default: the boards' system labels plus
    the factory label) plus ``[ci].recipe-labels.NAME``, checked."""
    ci = config.ci
    base = config.build_runs_on
    check_runs_on(config, base, "ci.runner-labels")
    extra: dict[str, list[str]] = {}
    for raw, value in ci.recipe_labels.items():
        name = canonicalize_name(raw)
        if name not in recipes:
            raise ConfigError(f"{config.where}: 'ci.recipe-labels' names '{raw}', which has no recipe"
                              f"{did_you_mean(name, recipes)}; fix the name, or remove the entry")
        extra[name] = [value] if isinstance(value, str) else list(value)
    out = {}
    for name in recipes:
        labels = base + [x for x in extra.get(name, []) if x not in base]
        if name in extra:
            check_runs_on(config, labels, f"ci.recipe-labels.{name}")
        out[name] = labels
    return out


def publish_labels(config: Config) -> list[str]:
    """runs-on of the publish job (``[ci].publish-runs-on``, else the build jobs' labels), checked."""
    labels = list(config.ci.publish_runs_on) or config.build_runs_on
    check_runs_on(config, labels, "ci.publish-runs-on")
    return labels


def plan_labels(config: Config) -> list[str]:
    """runs-on of the plan job: any hosted label (it needs only git and Python), or a checked self-hosted set."""
    labels = list(config.ci.plan_runs_on)
    if not labels:
        raise ConfigError(f"{config.where}: 'ci.plan-runs-on' is empty; the planning job needs git and "
                          f"Python 3.11+, e.g. [\"ubuntu-latest\"]")
    if _self_hosted(labels):
        check_runs_on(config, labels, "ci.plan-runs-on")
    return labels


# --- the workflow model ------------------------------------------------------------


def buildable(recipes: Mapping[str, Recipe]) -> tuple[dict[str, Recipe], dict[str, str]]:
    """(recipes that get a job, {recipe without a job: why}) — disabled ones and what needs them,
    retired ones that nothing with a job needs.

    Raises RecipeError on a dependency cycle.
    """
    out: dict[str, Recipe] = {}
    left_out: dict[str, str] = {}
    needed = {d for n, r in recipes.items() if not r.package.retired for d in closure(recipes, n)}
    for name in topological_order(recipes):
        r = recipes[name]
        if r.package.disabled:
            left_out[name] = f"disabled: {r.package.disabled}"
            continue
        if r.package.retired and name not in needed:  # upstream ships the wheels
            left_out[name] = f"retired: {r.package.retired}"
            continue
        blocked = [d for d in closure(recipes, name) if d in left_out]
        if blocked:
            left_out[name] = f"needs {blocked[0]}, which is {left_out[blocked[0]].split(':')[0]}"
            continue
        out[name] = r
    return out, left_out


def job_id(name: str) -> str:
    """The id of a recipe's build job (``build-numpy``): what ``needs:`` and the plan's outputs name."""
    return f"build-{name}"


def relative_path(config: Config, key: str, path: Path) -> str:
    """``paths.KEY`` relative to the project root: the jobs see it inside their checkout."""
    try:
        return path.relative_to(config.root).as_posix()
    except ValueError:
        raise ConfigError(f"{config.where}: 'paths.{key}' is outside the project ({path}); the workflow "
                          f"needs paths inside the checkout: set it to a path under {config.root} "
                          f"(relative paths are taken from there)") from None


def _install_engine(config: Config) -> dict:
    return {
        "name": "Install the engine",
        "run": (f'{config.ci.python} -m venv --clear .venv-ci\n'
                '.venv-ci/bin/python -m pip install --quiet --upgrade pip\n'
                '.venv-ci/bin/python -m pip install --quiet -e .\n'
                'echo "$PWD/.venv-ci/bin" >> "$GITHUB_PATH"\n'),
    }


def _runs_on(labels: list[str]) -> Any:
    return labels[0] if len(labels) == 1 else list(labels)


def _plan_job(config: Config) -> dict:
    return {
        "name": "plan: which recipes changed",
        "runs-on": _runs_on(plan_labels(config)),
        "permissions": {"contents": "read"},
        "outputs": {
            "build": "${{ steps.plan.outputs.build }}",
            "any": "${{ steps.plan.outputs.any }}",
            "requirements": "${{ steps.plan.outputs.requirements }}",
        },
        "steps": [
            {"uses": CHECKOUT, "with": {"fetch-depth": 0}},  # the base commit and the published tag
            _install_engine(config),
            {
                "name": "Plan",
                "id": "plan",
                # Event fields reach the shell only through the environment (no injection).
                "env": {
                    "EVENT": "${{ github.event_name }}",
                    "PR_BASE": "${{ github.event.pull_request.base.sha }}",
                    "HEAD_REPO": "${{ github.event.pull_request.head.repo.full_name }}",
                    "REPO": "${{ github.repository }}",
                    "RECIPES": "${{ inputs.recipes }}",
                },
                "run": ('invoke ci.plan --event "$EVENT" --pr-base "$PR_BASE" --head-repo "$HEAD_REPO" '
                        '--repo "$REPO" --recipes "$RECIPES"\n'),
            },
        ],
    }


def _build_job(config: Config, name: str, recipe: Recipe, deps: list[str], labels: list[str]) -> dict:
    """The job of one recipe: its dependencies' fresh wheels in, ``nox -s build-NAME``, wheels and logs out."""
    ci = config.ci
    dist, logs = relative_path(config, "dist", config.paths.dist), relative_path(config, "logs", config.paths.logs)
    prefix = name.replace("-", "_")  # the canonical name as spelled in wheel file names
    steps: list[dict] = [{"uses": CHECKOUT}, _install_engine(config)]
    for dep in deps:
        steps.append({
            "name": f"Wheels of {dep} built in this run",
            "if": f"needs.{job_id(dep)}.result == 'success'",
            "uses": DOWNLOAD,
            "with": {"name": f"dist-{dep}", "path": dist},
        })
    for i, command in enumerate(ci.before_build):
        steps.append({"name": f"before-build {i + 1}", "run": command})
    steps.append({"name": f"nox -s build-{name}", "run": f"nox -s build-{name}"})
    steps.append({
        # Signed SLSA provenance for each wheel: `gh attestation verify WHEEL --repo OWNER/REPO`.
        "name": "Attest the wheels' build provenance",
        "if": "github.event_name != 'pull_request'",
        "uses": ATTEST,
        "with": {"subject-path": f"{dist}/{prefix}-*.whl"},
    })
    steps.append({
        "name": "Upload wheels and records",
        "uses": UPLOAD,
        "with": {"name": f"dist-{name}", "path": f"{dist}/{prefix}-*.whl\n{dist}/{prefix}-*.whl.json\n",
                 "if-no-files-found": "error", "retention-days": ci.artifact_retention_days},
    })
    steps.append({
        "name": "Upload build logs",
        "if": "always()",
        "uses": UPLOAD,
        "with": {"name": f"logs-{name}", "path": f"{logs}/{name}/", "if-no-files-found": "warn",
                 "retention-days": ci.artifact_retention_days},
    })
    return {
        "name": f"build {name} {', '.join(recipe.all_versions)}",
        "needs": ["plan", *[job_id(d) for d in deps]],
        # Skipped dependencies (unchanged) must not skip this job; failed ones must.
        "if": f"${{{{ !cancelled() && !failure() && fromJSON(needs.plan.outputs.build)['{name}'] }}}}",
        "runs-on": _runs_on(labels),
        "timeout-minutes": recipe.build.timeout_minutes or ci.timeout_minutes,
        "permissions": dict(ATTEST_PERMISSIONS),
        "env": _cache_env(config),
        "steps": steps,
    }


def _cache_env(config: Config) -> dict[str, str]:
    """The factory's cache outside the checkout, which actions/checkout cleans (``git clean -ffdx``)
    before every job: downloads, tool venvs, compiler caches and the rootfs survive between jobs."""
    return {CACHE_ENV: config.ci.cache_dir}


def _publish_job(config: Config, build_jobs: list[str]) -> dict:
    ci = config.ci
    dist = relative_path(config, "dist", config.paths.dist)
    token = {config.publish.token_env: f"${{{{ secrets.{ci.publish_token_secret} }}}}"}
    steps: list[dict] = [
        {"uses": CHECKOUT, "with": {"fetch-depth": 0}},  # mark-published compares with the tag
        _install_engine(config),
        {"name": "Wheels and records built in this run", "uses": DOWNLOAD,
         "with": {"pattern": "dist-*", "path": dist, "merge-multiple": True}},
        # dist/ holds only this run's wheels; publish treats dist/ as the whole truth (and prunes),
        # so first restore every published wheel + record dist/ lacks (reads the release: the token).
        {"name": "invoke fetch-dist", "env": dict(token), "run": "invoke fetch-dist"},
    ]
    steps += [{"name": f"before-publish {i + 1}", "run": command} for i, command in enumerate(ci.before_publish)]
    steps += [
        # publish returns once GitHub Pages serves the new index (publish.deploy-timeout), so the
        # two checks below test the deployed site.
        {"name": "invoke publish", "env": dict(token), "run": "invoke publish"},
        {"name": "invoke check-index", "run": "invoke check-index"},
        {
            # What this run built, pinned, installed from the published index into a bare venv.
            "name": "nox -s clean-install",
            "shell": "bash",
            "env": {"REQUIREMENTS": "${{ needs.plan.outputs.requirements }}"},
            "run": 'read -r -a requirements <<< "$REQUIREMENTS"\nnox -s clean-install -- "${requirements[@]}"\n',
        },
        {"name": "Mark this commit as published", "run": "invoke ci.mark-published"},
    ]
    return {
        "name": "publish the index",
        "needs": ["plan", *build_jobs],
        "if": (f"${{{{ !cancelled() && !failure() && github.event_name != 'pull_request' && "
               f"github.ref == 'refs/heads/{ci.branch}' && needs.plan.outputs.any == 'true' }}}}"),
        "runs-on": _runs_on(publish_labels(config)),
        "timeout-minutes": 120,
        # Releases, the Pages branch and the published tag are written with the job's token;
        # publish's preflight reads the Pages settings (GET /repos/{owner}/{repo}/pages).
        "permissions": {"contents": "write", "pages": "read"},
        # Publishes wait in line, every one of them (queue: max), instead of the newest pending one
        # replacing the others: each run publishes what it built.
        "concurrency": {"group": f"{ci.workflow_name}-publish", "cancel-in-progress": False, "queue": "max"},
        "env": _cache_env(config),
        "steps": steps,
    }


def _header(config: Config, left_out: dict[str, str]) -> list[str]:
    recipes = relative_path(config, "recipes", config.paths.recipes)
    header = [
        f"Generated by `invoke ci.workflow` from {recipes}/*/{RECIPE_FILE} and {CONFIG_NAME} ([ci]).",
        "Do not edit: change a recipe or [ci] and run `invoke ci.workflow` (a test compares this file",
        "with what the recipes generate).",
    ]
    if left_out:
        header.append("No job for: " + "; ".join(f"{n} ({why})" for n, why in left_out.items()))
    return header


def workflow_model(config: Config, recipes: Mapping[str, Recipe]) -> dict:
    """The workflow as plain data (dicts keep their order in the YAML; ``__header__``: comment lines).

    Raises ConfigError for labels no runner carries, RecipeError for a dependency cycle.
    """
    jobs_for, left_out = buildable(recipes)
    labels = build_labels(config, jobs_for)
    jobs: dict[str, Any] = {"plan": _plan_job(config)}
    for name, recipe in jobs_for.items():
        deps = [d for d in closure(recipes, name) if d in jobs_for]
        deps = list(topological_order({d: recipes[d] for d in deps})) if deps else []
        jobs[job_id(name)] = _build_job(config, name, recipe, deps, labels[name])
    jobs["publish"] = _publish_job(config, [job_id(n) for n in jobs_for])
    return {
        "__header__": _header(config, left_out),
        "name": config.ci.workflow_name,
        "on": {
            "push": {"branches": [config.ci.branch]},
            "pull_request": None,
            "workflow_dispatch": {
                "inputs": {
                    "recipes": {
                        "description": ("Recipes to build: empty = those changed since the last publish, "
                                        "'all', or names separated by spaces"),
                        "type": "string",
                        "default": "",
                    }
                }
            },
        },
        "permissions": {},
        "concurrency": {
            # A new push to a pull request cancels its older run; runs on the branch are never cancelled.
            "group": "${{ github.workflow }}-${{ github.event.pull_request.number || github.run_id }}",
            "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
        },
        "jobs": jobs,
    }


def actionlint_yaml(config: Config, recipes: Mapping[str, Recipe]) -> str:
    """.github/actionlint.yaml: the self-hosted and hosted labels our jobs use are known labels."""
    jobs_for, _ = buildable(recipes)
    used: dict[str, None] = {}
    sets = [*build_labels(config, jobs_for).values(), publish_labels(config), plan_labels(config)]
    for labels in sets:
        if not _self_hosted(labels) and labels[0] not in config.ci.hosted_labels:
            continue  # GitHub's own hosted labels (ubuntu-latest …): actionlint knows them
        for label in labels:
            if label.lower() != "self-hosted":
                used.setdefault(label, None)
    lines = ["# Generated by `invoke ci.workflow`: the runner labels our workflow uses, for actionlint.",
             "self-hosted-runner:", "  labels:"]
    lines += [f"    - {scalar(label)}" for label in used]
    return "\n".join(lines) + "\n"


# --- generate / check ----------------------------------------------------------------


def workflow_files(config: Config) -> dict[Path, str]:
    """{path: text} of every generated file for this project (all checked before any is written)."""
    recipes = load_all(config.paths.recipes, config.arch)
    wf_dir = Path(config.ci.workflow_dir)
    wf_dir = wf_dir if wf_dir.is_absolute() else config.root / wf_dir
    return {
        wf_dir / f"{config.ci.workflow_name}.yml": to_yaml(workflow_model(config, recipes)),
        wf_dir.parent / ACTIONLINT_CONFIG: actionlint_yaml(config, recipes),
    }


def stale_files(config: Config, files: dict[Path, str] | None = None) -> list[Path]:
    """Generated files whose committed text differs from what the recipes generate."""
    files = workflow_files(config) if files is None else files
    return [p for p, text in files.items() if not p.is_file() or p.read_text() != text]


def write_files(config: Config) -> tuple[list[Path], list[Path]]:
    """Write the generated files that are stale: (every generated file, those written)."""
    files = workflow_files(config)  # everything validated before anything is written
    stale = stale_files(config, files)
    for path in stale:
        atomic_write_text(path, files[path])
        path.chmod(0o644)  # a committed file, readable by all
    return list(files), stale
