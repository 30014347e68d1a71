"""Which recipes get a build job in this workflow run (``invoke ci.plan``), and the published tag.

A recipe is rebuilt when what decides its build key changed since a base commit:
its recipe file, its patches, ``[target]``, the engine's build-logic version —
or anything it needs (a dependency's new wheel is part of its dependents' keys).
The base's files are read from git (``git archive`` of the base commit into a
temporary folder, loaded with this engine), so uncommitted changes count too.

In CI the event picks the base: a pull request's base commit, or on the branch
the commit tagged ``[ci].published-tag``, which :func:`mark_published` moves
(never backwards) after a publish succeeds. Git runs through
:func:`wheelfactory._util.proc.git`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from .. import BUILD_LOGIC_VERSION
from .._util.proc import git
from ..build.graph import closure, topological_order
from ..errors import ConfigError, FactoryError, RecipeError
from ..settings.factory import CONFIG_NAME, Config, load_config
from ..settings.recipe import RECIPE_FILE, Recipe, load_all, parse_recipe
from ..settings.schema import did_you_mean
from .workflow import buildable, relative_path

# wheelfactory/__init__.py of an old commit is read as text (it may not import with this engine).
_LOGIC_RE = re.compile(r'^BUILD_LOGIC_VERSION\s*=\s*["\']([^"\']*)["\']', re.M)
ENGINE_INIT = "wheelfactory/__init__.py"


@dataclass(frozen=True)
class PlanEntry:
    """One recipe's decision: ``build`` or not, why, and its pin (``project==version``)."""

    name: str
    build: bool
    reason: str
    requirement: str


# --- git -------------------------------------------------------------------------------


def _toplevel(root: Path) -> Path:
    what = f"find the git repository of {root} (the plan compares with its history)"
    return Path(git(["rev-parse", "--show-toplevel"], cwd=root, what=what).stdout.strip())


def _commit(top: Path, ref: str) -> str | None:
    """The commit ``ref`` names, or None."""
    proc = git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=top, check=False,
               what=f"look up {ref}")
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def _is_ancestor(top: Path, commit: str) -> bool:
    return git(["merge-base", "--is-ancestor", commit, "HEAD"], cwd=top, check=False,
               what="compare with HEAD").returncode == 0


def _base_tree(config: Config, top: Path, prefix: str, commit: str, dest: Path) -> None:
    """Extract, from ``commit``, the files that decide build keys into ``dest``."""
    wanted = [relative_path(config, "recipes", config.paths.recipes),
              relative_path(config, "patches", config.paths.patches), CONFIG_NAME, ENGINE_INIT]
    tree = f"{commit}:{prefix}"
    present = git(["ls-tree", "--name-only", tree, "--", *wanted], cwd=top,
                  what=f"list the files of {commit[:12]}").stdout.split()
    if not present:
        return
    tar_path = dest / ".base.tar"
    git(["archive", "--format=tar", f"--output={tar_path}", tree, "--", *present], cwd=top,
        what=f"git archive of {commit[:12]} failed")
    with tarfile.open(tar_path) as tf:
        tf.extractall(dest, filter="data")
    tar_path.unlink()


# --- what changed ----------------------------------------------------------------------


def _plan_key(recipe: Recipe, patches: Path, target: dict, logic: str | None) -> str:
    # every version it lists: a [versions] entry added or changed is a change too
    recipe_keys = [recipe.at(v).fingerprint(patches) for v in recipe.all_versions]
    payload = json.dumps({"recipe": recipe_keys if len(recipe_keys) > 1 else recipe_keys[0], "target": target,
                          "logic": logic}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _base_logic(config: Config, base_root: Path) -> str | None:
    """The build-logic version at the base. It counts only where the engine lives in the
    project (this repository); a project using an installed engine has no history of it."""
    if not (config.root / ENGINE_INIT).is_file():
        return BUILD_LOGIC_VERSION
    init = base_root / ENGINE_INIT
    m = _LOGIC_RE.search(init.read_text()) if init.is_file() else None
    return m.group(1) if m else None


def _why_changed(config: Config, base_config: Config, base_logic: str | None, name: str,
                 recipe: Recipe) -> str | None:
    """Why one recipe's build inputs differ from the base's (None: they do not)."""
    path = base_config.paths.recipes / name / RECIPE_FILE
    head_target = dataclasses.asdict(config.target)
    if not path.is_file():
        return "new recipe"
    if dataclasses.asdict(base_config.target) != head_target:
        return "[target] changed"
    if base_logic != BUILD_LOGIC_VERSION:
        return f"build logic version changed ({base_logic} -> {BUILD_LOGIC_VERSION})"
    try:
        old = parse_recipe(path)
    except RecipeError:
        return "the recipe at the base does not parse with this engine"
    if _plan_key(old, base_config.paths.patches, head_target, base_logic) != _plan_key(
            recipe, config.paths.patches, head_target, BUILD_LOGIC_VERSION):
        return "recipe or patches changed"
    return None


def _with_dependents(recipes: dict[str, Recipe], why: dict[str, str]) -> dict[str, str]:
    """A dependency's new build changes its dependents' build keys (its wheel is in them)."""
    for name in topological_order(recipes):
        if name not in why:
            dep = next((d for d in closure(recipes, name) if d in why), None)
            if dep is not None:
                why[name] = f"needs {dep}, which changed"
    return why


def changed_since(config: Config, base: str) -> dict[str, str]:
    """{recipe: why it changed} between ``base`` (its merge base with HEAD) and the working tree.

    Raises FactoryError when ``base`` is not a commit of this clone.
    """
    top = _toplevel(config.root)
    prefix = git(["rev-parse", "--show-prefix"], cwd=config.root,
                 what="find the project in the repository").stdout.strip()
    recipes = load_all(config.paths.recipes, config.arch)
    base_commit = _commit(top, base)
    if base_commit is None:
        raise FactoryError(
            f"the base {base!r} is not a commit in this clone of {top}; fetch it (the workflow checks out "
            f"with fetch-depth: 0) or pass another --base"
        )
    mb = git(["merge-base", base_commit, "HEAD"], cwd=top, check=False, what="find the merge base").stdout.strip()
    if not mb:
        return {n: f"{base} shares no history with HEAD" for n in recipes}
    with tempfile.TemporaryDirectory(prefix="wheelfactory-base-") as tmp:
        base_root = Path(tmp)
        _base_tree(config, top, prefix, mb, base_root)
        try:
            base_config = load_config(base_root)
        except ConfigError:
            return {n: f"{CONFIG_NAME} at {mb[:12]} does not load with this engine" for n in recipes}
        base_logic = _base_logic(config, base_root)
        why = {name: reason for name, recipe in recipes.items()
               if (reason := _why_changed(config, base_config, base_logic, name, recipe))}
    return _with_dependents(recipes, why)


# --- the plan --------------------------------------------------------------------------


def _by_name(recipes: dict[str, Recipe], names: list[str]) -> dict[str, str]:
    if [n.lower() for n in names] == ["all"]:
        return {n: "all recipes asked for" for n in recipes}
    chosen = {}
    for raw in names:
        name = canonicalize_name(raw)
        if name not in recipes:
            raise RecipeError(f"no recipe '{raw}'{did_you_mean(name, recipes)}; pass known "
                              f"recipes (or 'all'): {', '.join(sorted(recipes))}")
        chosen[name] = "asked for by name"
    return chosen


def _since_published(config: Config, recipes: dict[str, Recipe]) -> dict[str, str]:
    """Changed since the commit tagged ``[ci].published-tag`` (everything when there is none to compare with)."""
    tag = config.ci.published_tag
    top = _toplevel(config.root)
    tagged = _commit(top, f"refs/tags/{tag}")
    if tagged is None:
        return {n: f"nothing published yet (no tag {tag})" for n in recipes}
    if not _is_ancestor(top, tagged):
        return {n: f"the published commit (tag {tag}) is not an ancestor of HEAD" for n in recipes}
    return changed_since(config, tagged)


def plan(config: Config, *, base: str | None = None, names: list[str] | None = None, event: str = "",
         pr_base: str = "", head_repo: str = "", repo: str = "") -> dict[str, PlanEntry]:
    """Which recipes get a build job in this run, and why: {recipe: PlanEntry}.

    ``names``: exactly these ("all" = every recipe). ``base``: those changed since
    that commit. In CI, ``event`` picks the base: a pull request's base commit
    (``pr_base``), or otherwise the commit tagged ``[ci].published-tag``
    (everything when it is missing or not an ancestor of HEAD, e.g. the first
    run). A pull request from a fork (``head_repo`` is not ``repo``) builds
    nothing on self-hosted boards. Disabled recipes and what needs them never build.
    """
    recipes = load_all(config.paths.recipes, config.arch)
    _, left_out = buildable(recipes)
    if names:
        want = _by_name(recipes, names)
    elif event == "pull_request":
        self_hosted = "self-hosted" in [x.lower() for x in config.build_runs_on]
        if self_hosted and head_repo and repo and head_repo.lower() != repo.lower():
            # Code from a fork must never run on our boards (it could take them over).
            fork = (f"pull request from the fork {head_repo}: self-hosted boards do not run code from "
                    f"forks; a maintainer can run the workflow by hand after review")
            return {n: PlanEntry(n, False, left_out.get(n, fork), _pin(r)) for n, r in recipes.items()}
        if not pr_base:
            raise FactoryError("a pull_request plan needs --pr-base (github.event.pull_request.base.sha)")
        want = changed_since(config, pr_base)
    elif base is None:
        want = _since_published(config, recipes)
    else:
        want = changed_since(config, base)
    return {n: _entry(n, r, left_out, want) for n, r in recipes.items()}


def _pin(recipe: Recipe) -> str:
    return f"{recipe.project}=={recipe.version}"


def _entry(name: str, recipe: Recipe, left_out: dict[str, str], want: dict[str, str]) -> PlanEntry:
    if name in left_out:
        return PlanEntry(name, False, left_out[name], _pin(recipe))
    if name in want:
        return PlanEntry(name, True, want[name], _pin(recipe))
    return PlanEntry(name, False, "unchanged", _pin(recipe))


# --- the published tag -------------------------------------------------------------------


@dataclass(frozen=True)
class Marked:
    """What :func:`mark_published` did: ``tag`` moved to ``head``, or left at ``current`` (newer)."""

    tag: str
    head: str
    moved: bool
    current: str | None = None


def mark_published(config: Config, *, remote: str = "origin") -> Marked:
    """Move the published tag to HEAD (never backwards) and push it: the next plan starts here.

    A tag at a commit that is not an ancestor of HEAD (a newer run published
    first) is left where it is.
    """
    tag = config.ci.published_tag
    top = _toplevel(config.root)
    head = _commit(top, "HEAD")
    git(["fetch", "--quiet", "--force", remote, f"+refs/tags/{tag}:refs/tags/{tag}"], cwd=top, check=False,
        what=f"fetch tag {tag}")
    current = _commit(top, f"refs/tags/{tag}")
    if current and not _is_ancestor(top, current):
        return Marked(tag, head, moved=False, current=current)
    git(["tag", "--force", tag, head], cwd=top, what=f"move tag {tag}")
    git(["push", "--force", remote, f"refs/tags/{tag}"], cwd=top, what=f"push tag {tag} to {remote}")
    return Marked(tag, head, moved=True)
