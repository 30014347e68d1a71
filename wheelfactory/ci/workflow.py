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
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from packaging.utils import canonicalize_name

from .. import BUILD_LOGIC_VERSION, ui
from ..settings.factory import CONFIG_NAME, Config, load_config
from ..errors import ConfigError, FactoryError, RecipeError
from ..build.graph import closure, topological_order
from ..settings.recipe import RECIPE_FILE, Recipe, load_all, parse_recipe
from ..settings.schema import did_you_mean
from ..build.store import atomic_write_text

# GitHub's own actions, pinned by major version: the first majors on the node24 runtime
# (actionlint flags the node20 ones, whose removal GitHub has scheduled).
CHECKOUT = "actions/checkout@v5"
UPLOAD = "actions/upload-artifact@v6"
DOWNLOAD = "actions/download-artifact@v7"

ACTIONLINT_CONFIG = "actionlint.yaml"  # beside the workflows folder: .github/actionlint.yaml
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_LOGIC_RE = re.compile(r'^BUILD_LOGIC_VERSION\s*=\s*["\']([^"\']*)["\']', re.M)


# --- labels ------------------------------------------------------------------------


def _where(config: Config) -> str:
    return str(config.source or config.root / CONFIG_NAME)


def check_runs_on(config: Config, labels: list[str], key: str) -> None:
    """One runs-on label set must be something a runner really carries.

    A set with ``self-hosted`` must use only labels our boards register with
    (``[runners].labels``); otherwise it must be exactly one hosted label from
    ``[ci].hosted-labels``. A job asking for a label nobody has queues forever.
    """
    where = _where(config)
    if not labels:
        raise ConfigError(f"{where}: '{key}' is empty; give the runner labels a job runs on, e.g. "
                          f"[\"self-hosted\", \"linux\", \"riscv64\"]")
    for label in labels:
        if not _LABEL.match(label):
            raise ConfigError(f"{where}: '{key}' has label {label!r}: labels are letters, digits, '.', '_' "
                              f"and '-' (no spaces or commas), at most 100 characters")
    lowered = [label.lower() for label in labels]
    if "self-hosted" in lowered:
        known = {label.lower() for label in config.runners.labels} | {"self-hosted"}
        for label in labels:
            if label.lower() not in known:
                raise ConfigError(
                    f"{where}: '{key}' asks for label '{label}', which no board registered by "
                    f"`invoke runners.register` carries{did_you_mean(label.lower(), known)}; known labels: "
                    f"{', '.join(config.runners.labels)} ([runners].labels). Fix the label, or add it "
                    f"to [runners].labels and re-register the boards"
                )
        return
    hosted = config.ci.hosted_labels
    if len(labels) != 1 or labels[0] not in hosted:
        guess = did_you_mean(labels[0], hosted) if len(labels) == 1 else ""
        raise ConfigError(
            f"{where}: '{key}' = {labels} is neither a self-hosted set (one that includes 'self-hosted') "
            f"nor one hosted runner label from [ci].hosted-labels ({', '.join(hosted) or 'none'}){guess}"
        )


def build_labels(config: Config, recipes: Mapping[str, Recipe]) -> dict[str, list[str]]:
    """runs-on of each recipe's build job, checked."""
    ci = config.ci
    base = list(ci.runner_labels)
    check_runs_on(config, base, "ci.runner-labels")
    extra: dict[str, list[str]] = {}
    for raw, value in ci.recipe_labels.items():
        name = canonicalize_name(raw)
        if name not in recipes:
            raise ConfigError(f"{_where(config)}: 'ci.recipe-labels' names '{raw}', which has no recipe"
                              f"{did_you_mean(name, recipes)}")
        extra[name] = [value] if isinstance(value, str) else list(value)
    out = {}
    for name in recipes:
        labels = base + [x for x in extra.get(name, []) if x not in base]
        if name in extra:
            check_runs_on(config, labels, f"ci.recipe-labels.{name}")
        out[name] = labels
    return out


def publish_labels(config: Config) -> list[str]:
    labels = list(config.ci.publish_runs_on) or list(config.ci.runner_labels)
    check_runs_on(config, labels, "ci.publish-runs-on")
    return labels


def plan_labels(config: Config) -> list[str]:
    labels = list(config.ci.plan_runs_on)
    if not labels:
        raise ConfigError(f"{_where(config)}: 'ci.plan-runs-on' is empty; the planning job needs git and "
                          f"Python 3.11+, e.g. [\"ubuntu-latest\"]")
    if "self-hosted" in [label.lower() for label in labels]:
        check_runs_on(config, labels, "ci.plan-runs-on")
    else:
        for label in labels:
            if not _LABEL.match(label):
                raise ConfigError(f"{_where(config)}: 'ci.plan-runs-on' has label {label!r}: labels are letters, "
                                  f"digits, '.', '_' and '-'")
    return labels


# --- the workflow model ------------------------------------------------------------


def buildable(recipes: Mapping[str, Recipe]) -> tuple[dict[str, Recipe], dict[str, str]]:
    """(recipes that get a job, {recipe without a job: why}) — disabled ones and what needs them."""
    order = topological_order(recipes)  # raises RecipeError on a dependency cycle
    out: dict[str, Recipe] = {}
    left_out: dict[str, str] = {}
    for name in order:
        r = recipes[name]
        if r.package.disabled:
            left_out[name] = f"disabled: {r.package.disabled}"
            continue
        blocked = [d for d in closure(recipes, name) if d in left_out]
        if blocked:
            left_out[name] = f"needs {blocked[0]}, which is {left_out[blocked[0]].split(':')[0]}"
            continue
        out[name] = r
    return out, left_out


def job_id(name: str) -> str:
    return f"build-{name}"


def _wheel_prefix(name: str) -> str:
    return name.replace("-", "_")  # the canonical name as spelled in wheel file names


def _relative_path(config: Config, key: str, path: Path) -> str:
    """``paths.KEY`` relative to the project root: the jobs see it inside their checkout."""
    try:
        return path.relative_to(config.root).as_posix()
    except ValueError:
        raise ConfigError(f"{_where(config)}: 'paths.{key}' is outside the project ({path}); the workflow "
                          f"needs paths inside the checkout") from None


def _install_engine(config: Config) -> dict:
    python = config.ci.python
    return {
        "name": "Install the engine",
        "run": (f'{python} -m venv --clear .venv-ci\n'
                '.venv-ci/bin/python -m pip install --quiet --upgrade pip\n'
                '.venv-ci/bin/python -m pip install --quiet -e .\n'
                'echo "$PWD/.venv-ci/bin" >> "$GITHUB_PATH"\n'),
    }


def _runs_on(labels: list[str]) -> Any:
    return labels[0] if len(labels) == 1 else list(labels)


def workflow_model(config: Config, recipes: Mapping[str, Recipe]) -> dict:
    """The workflow as plain data (dicts keep their order in the YAML)."""
    ci = config.ci
    jobs_for, left_out = buildable(recipes)
    labels = build_labels(config, jobs_for)
    dist, logs = _relative_path(config, "dist", config.paths.dist), _relative_path(config, "logs", config.paths.logs)
    branch = ci.branch
    retention = ci.artifact_retention_days

    jobs: dict[str, Any] = {}
    jobs["plan"] = {
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

    for name, recipe in jobs_for.items():
        deps = [d for d in closure(recipes, name) if d in jobs_for]
        deps = [d for d in topological_order({d: recipes[d] for d in deps})] if deps else []
        prefix = _wheel_prefix(name)
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
            "name": "Upload wheels and records",
            "uses": UPLOAD,
            "with": {
                "name": f"dist-{name}",
                "path": f"{dist}/{prefix}-*.whl\n{dist}/{prefix}-*.whl.json\n",
                "if-no-files-found": "error",
                "retention-days": retention,
            },
        })
        steps.append({
            "name": "Upload build logs",
            "if": "always()",
            "uses": UPLOAD,
            "with": {
                "name": f"logs-{name}",
                "path": f"{logs}/{name}/",
                "if-no-files-found": "warn",
                "retention-days": retention,
            },
        })
        jobs[job_id(name)] = {
            "name": f"build {name} {recipe.version}",
            "needs": ["plan", *[job_id(d) for d in deps]],
            # Skipped dependencies (unchanged) must not skip this job; failed ones must.
            "if": f"${{{{ !cancelled() && !failure() && fromJSON(needs.plan.outputs.build)['{name}'] }}}}",
            "runs-on": _runs_on(labels[name]),
            "timeout-minutes": ci.timeout_minutes,
            "permissions": {"contents": "read"},
            "steps": steps,
        }

    publish_steps: list[dict] = [
        {"uses": CHECKOUT, "with": {"fetch-depth": 0}},  # mark-published compares with the tag
        _install_engine(config),
        {
            "name": "Wheels and records built in this run",
            "uses": DOWNLOAD,
            "with": {"pattern": "dist-*", "path": dist, "merge-multiple": True},
        },
    ]
    token_env = config.publish.token_env
    token = {token_env: f"${{{{ secrets.{ci.publish_token_secret} }}}}"}
    # dist/ holds only this run's wheels; publish treats dist/ as the whole truth (and prunes),
    # so first restore every published wheel + record dist/ lacks (reads the release: the token).
    publish_steps.append({"name": "invoke fetch-dist", "env": dict(token), "run": "invoke fetch-dist"})
    for i, command in enumerate(ci.before_publish):
        publish_steps.append({"name": f"before-publish {i + 1}", "run": command})
    publish_steps += [
        {
            "name": "invoke publish",
            "env": dict(token),
            "run": "invoke publish",
        },
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
    build_jobs = [job_id(n) for n in jobs_for]
    jobs["publish"] = {
        "name": "publish the index",
        "needs": ["plan", *build_jobs],
        "if": (f"${{{{ !cancelled() && !failure() && github.event_name != 'pull_request' && "
               f"github.ref == 'refs/heads/{branch}' && needs.plan.outputs.any == 'true' }}}}"),
        "runs-on": _runs_on(publish_labels(config)),
        "timeout-minutes": 120,
        # Releases, the Pages branch and the published tag are written with the job's token.
        "permissions": {"contents": "write"},
        "concurrency": {"group": f"{ci.workflow_name}-publish", "cancel-in-progress": False},
        "steps": publish_steps,
    }

    header = [
        f"Generated by `invoke ci.workflow` from {_relative_path(config, 'recipes', config.paths.recipes)}/*/{RECIPE_FILE} and "
        f"{CONFIG_NAME} ([ci]).",
        "Do not edit: change a recipe or [ci] and run `invoke ci.workflow` (a test compares this file",
        "with what the recipes generate).",
    ]
    if left_out:
        header.append("No job for: " + "; ".join(f"{n} ({why})" for n, why in left_out.items()))
    return {
        "__header__": header,
        "name": ci.workflow_name,
        "on": {
            "push": {"branches": [branch]},
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


# --- a small, deterministic YAML emitter ------------------------------------------------
#
# The workflow is a committed, reviewed file: its text must be stable and readable,
# so it is written here rather than by a general dumper.

_PLAIN = re.compile(r"^[A-Za-z0-9_$./(][^\n]*$")
# Plain scalars some YAML loader would not read as a string: booleans, nulls, numbers
# (YAML 1.1 too: 1_000, 0x1f, 1:20 sexagesimal, .inf) and dates.
_RESERVED = re.compile(
    r"^(?:true|false|yes|no|on|off|y|n|null|~|[-+]?(?:\d[\d_]*)?(?:\.\d*)?(?:e[-+]?\d+)?|0x[0-9a-f_]+|0o?[0-7_]+"
    r"|[-+]?\.(?:inf|nan)|[-+]?\d[\d_]*(?::[0-5]?\d)+(?:\.\d*)?|\d{4}-\d\d?-\d\d?(?:[Tt ].*)?)$",
    re.I,
)
_PLAIN_KEYS = {"on"}  # GitHub reads the bare key `on` (a boolean only to YAML 1.1 loaders)


def _scalar(value: Any, *, key: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    s = str(value)
    if key and s in _PLAIN_KEYS:
        return s
    if (_PLAIN.match(s) and not _RESERVED.match(s) and ": " not in s and " #" not in s
            and not s.endswith((" ", ":")) and "\t" not in s):
        return s
    return json.dumps(s, ensure_ascii=False)


def _emit(value: Any, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for k, v in value.items():
            head = f"{pad}{_scalar(k, key=True)}:"
            if isinstance(v, dict) and v:
                out.append(head)
                _emit(v, indent + 1, out)
            elif isinstance(v, list) and v and (
                    not all(isinstance(x, (str, int)) for x in v)
                    or len(head) + sum(len(_scalar(x)) + 2 for x in v) > 100):
                out.append(head)
                _emit(v, indent + 1, out)
            elif isinstance(v, list):
                out.append(f"{head} [{', '.join(_scalar(x) for x in v)}]")
            elif isinstance(v, dict):
                out.append(f"{head} {{}}")
            elif isinstance(v, str) and "\n" in v:
                block = "|" if v.endswith("\n") and not v.endswith("\n\n") else "|-"
                out.append(f"{head} {block}")
                for line in v.rstrip("\n").split("\n"):
                    out.append(f"{pad}  {line}" if line else "")
            elif v is None:
                out.append(head)
            else:
                out.append(f"{head} {_scalar(v)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                sub: list[str] = []
                _emit(item, indent + 1, sub)
                first = sub[0][len(pad) + 2:]
                out.append(f"{pad}- {first}")
                out.extend(sub[1:])
            else:
                out.append(f"{pad}- {_scalar(item)}")
    else:
        raise TypeError(f"cannot emit {type(value).__name__}")


def to_yaml(model: dict) -> str:
    lines = [f"# {h}" for h in model.get("__header__", [])]
    body = {k: v for k, v in model.items() if k != "__header__"}
    for i, (k, v) in enumerate(body.items()):
        if i and isinstance(v, dict):
            lines.append("")
        if k == "jobs":
            lines.append("jobs:")
            for j, (jid, job) in enumerate(v.items()):
                if j:
                    lines.append("")
                lines.append(f"  {jid}:")
                _emit(job, 2, lines)
        else:
            _emit({k: v}, 0, lines)
    return "\n".join(lines) + "\n"


def actionlint_yaml(config: Config, recipes: Mapping[str, Recipe]) -> str:
    """.github/actionlint.yaml: the self-hosted and hosted labels our jobs use are known labels."""
    jobs_for, _ = buildable(recipes)
    used: dict[str, None] = {}
    sets = [*build_labels(config, jobs_for).values(), publish_labels(config), plan_labels(config)]
    for labels in sets:
        if "self-hosted" not in [x.lower() for x in labels] and labels[0] not in config.ci.hosted_labels:
            continue  # GitHub's own hosted labels (ubuntu-latest …): actionlint knows them
        for label in labels:
            if label.lower() != "self-hosted":
                used.setdefault(label, None)
    lines = ["# Generated by `invoke ci.workflow`: the runner labels our workflow uses, for actionlint.",
             "self-hosted-runner:", "  labels:"]
    lines += [f"    - {_scalar(label)}" for label in used]
    return "\n".join(lines) + "\n"


# --- generate / check ----------------------------------------------------------------


def workflow_files(config: Config) -> dict[Path, str]:
    """{path: text} of every generated file for this project."""
    recipes = load_all(config.paths.recipes)
    wf_dir = Path(config.ci.workflow_dir)
    wf_dir = wf_dir if wf_dir.is_absolute() else config.root / wf_dir
    name = config.ci.workflow_name
    if not re.match(r"^[A-Za-z0-9._-]+$", name):
        raise ConfigError(f"{_where(config)}: 'ci.workflow-name' {name!r} must be a plain file name "
                          f"(letters, digits, '.', '_', '-')")
    return {
        wf_dir / f"{name}.yml": to_yaml(workflow_model(config, recipes)),
        wf_dir.parent / ACTIONLINT_CONFIG: actionlint_yaml(config, recipes),
    }


def stale_files(config: Config) -> list[Path]:
    """Generated files whose committed text differs from what the recipes generate."""
    return [p for p, text in workflow_files(config).items() if not p.is_file() or p.read_text() != text]


def workflow_command(root: Path | str | None = None, *, check: bool = False) -> int:
    """``invoke ci.workflow``: write the generated files (``--check``: only compare)."""
    config = load_config(root)
    files = workflow_files(config)  # everything validated before anything is written
    stale = [p for p, text in files.items() if not p.is_file() or p.read_text() != text]
    rel = lambda p: os.path.relpath(p, config.root)  # noqa: E731
    if check:
        if stale:
            raise FactoryError(
                f"the committed workflow is out of date with the recipes: {', '.join(rel(p) for p in stale)}; "
                f"run `invoke ci.workflow` and commit the result"
            )
        ui.info(f"workflow up to date: {', '.join(rel(p) for p in files)}")
        return 0
    for path in stale:
        atomic_write_text(path, files[path])
        path.chmod(0o644)  # a committed file, readable by all (mkstemp made it 0600)
    ui.info(f"wrote {', '.join(rel(p) for p in stale)}" if stale else "workflow already up to date")
    return 0


# --- plan: which recipes changed -------------------------------------------------------


@dataclass(frozen=True)
class PlanEntry:
    name: str
    build: bool
    reason: str


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise FactoryError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _commit(top: Path, ref: str) -> str | None:
    proc = _git(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def _plan_key(recipe: Recipe, patches: Path, target: dict, logic: str | None) -> str:
    payload = json.dumps({"recipe": recipe.fingerprint(patches), "target": target, "logic": logic}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _base_tree(config: Config, top: Path, prefix: str, commit: str, dest: Path) -> None:
    """Extract, from ``commit``, the files that decide build keys into ``dest``."""
    wanted = [_relative_path(config, "recipes", config.paths.recipes), _relative_path(config, "patches", config.paths.patches), CONFIG_NAME,
              "wheelfactory/__init__.py"]
    tree = f"{commit}:{prefix}"
    present = _git(top, "ls-tree", "--name-only", tree, "--", *wanted).stdout.split()
    if not present:
        return
    archive = subprocess.run(["git", "archive", "--format=tar", tree, "--", *present], cwd=top,
                             capture_output=True)
    if archive.returncode != 0:
        raise FactoryError(f"git archive of {commit[:12]} failed: {archive.stderr.decode(errors='replace').strip()}")
    tar_path = dest / ".base.tar"
    tar_path.write_bytes(archive.stdout)
    with tarfile.open(tar_path) as tf:
        tf.extractall(dest, filter="data")
    tar_path.unlink()


def changed_since(config: Config, base: str) -> dict[str, str]:
    """{recipe: why it changed} between ``base`` (its merge base with HEAD) and the working tree."""
    root = config.root
    top = Path(_git(root, "rev-parse", "--show-toplevel").stdout.strip())
    prefix = _git(root, "rev-parse", "--show-prefix").stdout.strip()
    recipes = load_all(config.paths.recipes)
    base_commit = _commit(top, base)
    if base_commit is None:
        raise FactoryError(
            f"the base {base!r} is not a commit in this clone of {top}; fetch it (the workflow checks out "
            f"with fetch-depth: 0) or pass another --base"
        )
    mb = _git(top, "merge-base", base_commit, "HEAD", check=False).stdout.strip()
    if not mb:
        return {n: f"{base} shares no history with HEAD" for n in recipes}

    head_target = dataclasses.asdict(config.target)
    with tempfile.TemporaryDirectory(prefix="wheelfactory-base-") as tmp:
        base_root = Path(tmp)
        _base_tree(config, top, prefix, mb, base_root)
        try:
            base_config = load_config(base_root)
        except ConfigError:
            return {n: f"{CONFIG_NAME} at {mb[:12]} does not load with this engine" for n in recipes}
        # The build-logic version counts only where the engine lives in the project
        # (this repository); a project using an installed engine has no history of it.
        base_logic = BUILD_LOGIC_VERSION
        if (root / "wheelfactory" / "__init__.py").is_file():
            init = base_root / "wheelfactory" / "__init__.py"
            m = _LOGIC_RE.search(init.read_text()) if init.is_file() else None
            base_logic = m.group(1) if m else None
        base_recipes = base_config.paths.recipes
        base_patches = base_config.paths.patches
        why: dict[str, str] = {}
        for name, recipe in recipes.items():
            path = base_recipes / name / RECIPE_FILE
            if not path.is_file():
                why[name] = "new recipe"
                continue
            if dataclasses.asdict(base_config.target) != head_target:
                why[name] = "[target] changed"
                continue
            if base_logic != BUILD_LOGIC_VERSION:
                why[name] = f"build logic version changed ({base_logic} -> {BUILD_LOGIC_VERSION})"
                continue
            try:
                old = parse_recipe(path)
            except RecipeError:
                why[name] = "the recipe at the base does not parse with this engine"
                continue
            if _plan_key(old, base_patches, head_target, base_logic) != _plan_key(
                    recipe, config.paths.patches, head_target, BUILD_LOGIC_VERSION):
                why[name] = "recipe or patches changed"
    # A dependency's new build changes its dependents' build keys (its wheel is in them).
    for name in topological_order(recipes):
        if name not in why:
            for dep in closure(recipes, name):
                if dep in why:
                    why[name] = f"needs {dep}, which changed"
                    break
    return why


def plan(root: Path | str | None = None, *, base: str | None = None, names: list[str] | None = None,
         event: str = "", pr_base: str = "", head_repo: str = "", repo: str = "") -> dict[str, PlanEntry]:
    """Which recipes get a build job in this run, and why.

    ``names``: exactly these ("all" = every recipe). ``base``: those changed since
    that commit. In CI, ``event`` picks the base: a pull request's base commit, or
    otherwise the commit tagged ``[ci].published-tag`` (everything when it is missing
    or not an ancestor of HEAD, e.g. the first run).
    """
    config = load_config(root)
    recipes = load_all(config.paths.recipes)
    jobs_for, left_out = buildable(recipes)
    entries: dict[str, PlanEntry] = {}

    def decide(want: dict[str, str]) -> dict[str, PlanEntry]:
        for name in recipes:
            if name in left_out:
                entries[name] = PlanEntry(name, False, left_out[name])
            elif name in want:
                entries[name] = PlanEntry(name, True, want[name])
            else:
                entries[name] = PlanEntry(name, False, "unchanged")
        return entries

    if names:
        if [n.lower() for n in names] == ["all"]:
            return decide({n: "all recipes asked for" for n in recipes})
        chosen = {}
        for raw in names:
            name = canonicalize_name(raw)
            if name not in recipes:
                raise RecipeError(f"no recipe '{raw}'{did_you_mean(name, recipes)}; known recipes: "
                                  f"{', '.join(sorted(recipes))}")
            chosen[name] = "asked for by name"
        return decide(chosen)
    if event == "pull_request":
        self_hosted = "self-hosted" in [x.lower() for x in config.ci.runner_labels]
        if self_hosted and head_repo and repo and head_repo.lower() != repo.lower():
            # Code from a fork must never run on our boards (it could take them over).
            fork = (f"pull request from the fork {head_repo}: self-hosted boards do not run code from "
                    f"forks; a maintainer can run the workflow by hand after review")
            return {n: PlanEntry(n, False, left_out.get(n, fork)) for n in recipes}
        if not pr_base:
            raise FactoryError("a pull_request plan needs --pr-base (github.event.pull_request.base.sha)")
        return decide(changed_since(config, pr_base))
    if base is None:
        tag = config.ci.published_tag
        top = Path(_git(config.root, "rev-parse", "--show-toplevel").stdout.strip())
        tagged = _commit(top, f"refs/tags/{tag}")
        if tagged is None:
            return decide({n: f"nothing published yet (no tag {tag})" for n in recipes})
        if _git(top, "merge-base", "--is-ancestor", tagged, "HEAD", check=False).returncode != 0:
            return decide({n: f"the published commit (tag {tag}) is not an ancestor of HEAD" for n in recipes})
        base = tagged
    return decide(changed_since(config, base))


def plan_command(root: Path | str | None = None, *, base: str = "", recipes: str = "", event: str = "",
                 pr_base: str = "", head_repo: str = "", repo: str = "") -> int:
    """``invoke ci.plan``: print the plan; in Actions also write the job outputs and a summary."""
    names = recipes.split() if recipes.strip() else None
    entries = plan(root, base=base or None, names=names, event=event, pr_base=pr_base,
                   head_repo=head_repo, repo=repo)
    build = {n: e.build for n, e in sorted(entries.items())}
    config = load_config(root)
    recipes = load_all(config.paths.recipes)
    requirements = " ".join(f"{recipes[n].project}=={recipes[n].version}" for n, b in build.items() if b)
    for e in sorted(entries.values(), key=lambda e: (not e.build, e.name)):
        ui.info(f"{'build' if e.build else 'skip '}  {e.name}: {e.reason}")
    print(json.dumps(build, sort_keys=True))
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
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


def mark_published(root: Path | str | None = None, *, remote: str = "origin") -> int:
    """Move the published tag to HEAD (never backwards) and push it: the next plan starts here."""
    config = load_config(root)
    tag = config.ci.published_tag
    top = Path(_git(config.root, "rev-parse", "--show-toplevel").stdout.strip())
    head = _commit(top, "HEAD")
    _git(top, "fetch", "--quiet", "--force", remote, f"+refs/tags/{tag}:refs/tags/{tag}", check=False)
    current = _commit(top, f"refs/tags/{tag}")
    if current and _git(top, "merge-base", "--is-ancestor", current, "HEAD", check=False).returncode != 0:
        ui.warn(f"tag {tag} is at {current[:12]}, which is not an ancestor of HEAD {head[:12]} "
                f"(a newer run published first); leaving it")
        return 0
    _git(top, "tag", "--force", tag, head)
    _git(top, "push", "--force", remote, f"refs/tags/{tag}")
    ui.info(f"tag {tag} -> {head[:12]}")
    return 0
