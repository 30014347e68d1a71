"""Upstream tracking: which recipes are behind PyPI, which can retire, and version bumps.

``invoke outdated`` reads each recipe's project page from the PEP 691 JSON
simple API ([upstream].pypi-url, through ``_util.simple_api``) and reports

* a newer release than the recipe's version (pre-releases only when
  [upstream].prereleases is on, or the recipe itself pins one; yanked files
  never count);
* riscv64 wheels upstream now ships for our Python versions: the wheel tags a
  pip on the target would accept (``settings.target.Target``). A recipe whose
  every Python is covered is a candidate to retire.

``invoke bump NAME [--version V]`` rewrites version and sha256 (and a git rev
or build env value that spells the old version) in the recipe text — comments
and layout untouched, by ``settings.edit`` — builds it with the builder it is
given (the CLI passes the real pipeline) and verifies it, and keeps the new text only when
that passed; otherwise the recipe is restored byte for byte and the reason
shown. One run bumps at most [upstream].max-bumps recipes, like the capped
automatic bumps of conda-forge's bot: only what actually built is proposed.

The printed tables and the commands are in ``cli/upkeep.py``.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

from filelock import FileLock
from packaging import tags as ptags
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .. import ui
from .._util import http
from .._util.fs import atomic_write_bytes
from .._util.proc import git
from .._util.simple_api import Client, ProjectFile, ProjectPage
from ..errors import FactoryError, RecipeError, SourceError
from ..settings.edit import EditMismatch, InvalidEdit, set_strings
from ..settings.recipe import Recipe, load_all, load_recipe
from ..settings.schema import did_you_mean
from ..settings.target import Target


class UpstreamError(FactoryError):
    """The index could not be read, or a bump cannot be prepared."""


# --- the index -------------------------------------------------------------------

def index_client(base: str, key: str = "upstream.pypi-url") -> Client:
    """The simple API client of ``outdated`` and ``bump`` for the index ``base`` (set by ``key``):
    PEP 691 JSON only, failures as UpstreamError."""
    return Client(sources={base.rstrip("/"): f"{key} in factory.toml"}, json_only=True, error=UpstreamError)


@dataclass
class Release:
    """The files of one upstream release (yanked ones left out)."""

    version: Version
    sdists: list[ProjectFile] = field(default_factory=list)
    wheels: list[ProjectFile] = field(default_factory=list)


def releases(page: ProjectPage) -> dict[Version, Release]:
    """Files of the page grouped by version; yanked files are left out."""
    out: dict[Version, Release] = {}
    for f in page.files:
        if f.yanked is not None:
            continue
        version = Version(f.version)
        rel = out.setdefault(version, Release(version))
        (rel.wheels if f.kind == "wheel" else rel.sdists).append(f)
    return out


def _tags(f: ProjectFile) -> frozenset[ptags.Tag]:
    parsed = f.wheel_tags()
    return parsed[1] if parsed else frozenset()


def latest(rels: dict[Version, Release], *, prereleases: bool) -> Version | None:
    """The newest release, pre- and dev releases only when asked for; None when there is none."""
    candidates = [v for v in rels if prereleases or not (v.is_prerelease or v.is_devrelease)]
    return max(candidates) if candidates else None


def wheels_for_target(config, release: Release) -> dict[str, str]:
    """For each of our Pythons: the best native wheel tag of ``release`` the target accepts.

    Pure-Python wheels (platform "any") do not count: a package that ships one as
    a fallback (frozenlist) still needs our build for its C extension. The
    accepted tags and their order are settings.target's (pip's).
    """
    target = Target.of(config)
    found: dict[str, str] = {}
    offered: dict[ptags.Tag, str] = {}
    for f in release.wheels:
        for t in _tags(f):
            if t.platform != "any":
                offered.setdefault(t, f.filename)
    for python in config.pythons:
        for t in target.supported_tags(python):
            if t in offered:
                found[python] = str(t)
                break
    return found


# --- outdated ----------------------------------------------------------------------

@dataclass
class Status:
    """Where one recipe stands against upstream (``invoke outdated``)."""

    name: str
    current: str
    latest: str | None = None
    newer: bool = False
    wheels: dict[str, str] = field(default_factory=dict)  # python -> tag on the index for the target
    wheels_version: str | None = None
    retire: bool = False
    pure: str = ""  # a pure-Python wheel upstream ships for the newest release (its tag), if any
    disabled: str = ""
    note: str = ""
    retired: str = ""  # package.retired as the recipe holds it

    @property
    def retired_value(self) -> str:
        """What ``package.retired`` says for a candidate: ``VERSION: tag, tag`` (the tags found)."""
        return f"{self.wheels_version}: {', '.join(dict.fromkeys(self.wheels.values()))}"


def check(config, recipe: Recipe, *, client: Client | None = None) -> Status:
    """Where ``recipe`` stands against [upstream].pypi-url: newer releases, target wheels upstream."""
    up = config.upstream
    st = Status(recipe.name, recipe.version, disabled=recipe.package.disabled, retired=recipe.package.retired)
    page = (client or index_client(up.pypi_url)).page(up.pypi_url, recipe.project)
    if page.status == 404:
        st.note = f"not on {up.pypi_url}"
        return st
    rels = releases(page)
    current = Version(recipe.version)
    newest = latest(rels, prereleases=up.prereleases or current.is_prerelease)
    if newest is None:
        st.note = "no releases"
        return st
    st.latest = str(newest)
    st.newer = newest > current
    # Retirement looks at the newest release (what `pip install NAME` picks), falling
    # back to our own version: either way users would no longer need our wheels.
    for v in dict.fromkeys([newest, current]):
        if v in rels:
            wheels = wheels_for_target(config, rels[v])
            if wheels:
                st.wheels, st.wheels_version = wheels, str(v)
                break
    st.retire = bool(st.wheels) and all(p in st.wheels for p in config.pythons)
    pure = [str(t) for f in rels.get(newest, Release(newest)).wheels for t in _tags(f) if t.platform == "any"]
    st.pure = pure[0] if pure else ""
    return st


def outdated(config, names: Sequence[str] = ()) -> list[Status]:
    """:func:`check` of the named recipes (default: all), 8 at a time."""
    recipes = load_all(config.paths.recipes)
    chosen = [recipes[known_recipe(recipes, n, config)] for n in names] if names else list(recipes.values())
    with index_client(config.upstream.pypi_url) as client, ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda r: check(config, r, client=client), chosen))


def retire(config, statuses: Sequence[Status]) -> list[Status]:
    """Write ``package.retired`` into each candidate's recipe that lacks it (``invoke outdated --retire``).

    The text is edited by settings.edit (comments and layout kept, checked by
    parsing it again). Returns the statuses retired now.
    """
    done = []
    for st in statuses:
        if st.retire and not st.retired:
            recipe = load_recipe(config.paths.recipes, st.name)
            text = set_strings(recipe.text.decode(), {"package.retired": st.retired_value}, where=str(recipe.path))
            atomic_write_bytes(recipe.path, text.encode())
            st.retired = st.retired_value
            done.append(st)
    return done


def known_recipe(recipes: dict, name: str, config) -> str:
    """The canonical name of a recipe given on the command line; RecipeError with a "did you mean"."""
    n = canonicalize_name(name)
    if n not in recipes:
        raise RecipeError(
            f"no recipe '{name}' in {config.paths.recipes}{did_you_mean(n, recipes)}"
        )
    return n


# --- bump ----------------------------------------------------------------------------

@dataclass
class BumpPlan:
    """A bump before it is built: the new recipe text and what changed."""

    name: str
    old: str
    new: str
    text: bytes  # the new recipe file
    changes: list[str]  # human-readable "key: old -> new"


def _sha256_url(url: str) -> str:
    h = hashlib.sha256()
    try:
        with http.session().get(url, stream=True, timeout=http.DEFAULT_TIMEOUT) as resp:
            if resp.status_code != 200:
                raise UpstreamError(f"cannot download {url}: HTTP {resp.status_code}")
            for chunk in resp.iter_content(1 << 20):
                h.update(chunk)
    except UpstreamError:
        raise
    except Exception as e:
        raise UpstreamError(f"cannot download {url}: {e}") from None
    return h.hexdigest()


def plan_bump(config, recipe: Recipe, version: str | None = None) -> BumpPlan | None:
    """The new recipe text for ``version`` (default: the newest upstream release).

    None when the recipe is already there. Network: the index page, and for a
    ``url`` source the new archive (to hash it). The text is edited by
    settings.edit (layout and comments kept, checked by parsing it again).
    """
    up = config.upstream
    old = recipe.version
    if version is None:
        with index_client(up.pypi_url) as client:
            page = client.page(up.pypi_url, recipe.project)
        if page.status == 404:
            raise UpstreamError(f"{recipe.name}: there is no project '{recipe.project}' on {up.pypi_url}; "
                                f"give the version with --version")
        newest = latest(releases(page), prereleases=up.prereleases or Version(old).is_prerelease)
        if newest is None:
            raise UpstreamError(f"{recipe.name}: {up.pypi_url} lists no release of {recipe.project}")
        version = str(newest)
    try:
        new_v = Version(version)
    except InvalidVersion:
        raise UpstreamError(f"{recipe.name}: --version {version!r} is not a valid version") from None
    if new_v == Version(old):
        return None

    src = recipe.source
    edits = {"package.version": version}
    changes = [f"package.version: {old} -> {version}"]
    kind = recipe.source_kind
    if kind == "sdist":
        sha = _sdist_sha256(config, recipe, version)
    elif kind == "url":
        if old not in urlsplit(src.url).path:
            raise UpstreamError(
                f"{recipe.name}: source.url {src.url!r} does not contain the version {old}, so the new "
                f"archive's URL is unknown; edit {recipe.path} by hand"
            )
        parts = urlsplit(src.url)  # only the path spells the version, never the host
        new_url = urlunsplit(parts._replace(path=parts.path.replace(old, version)))
        edits["source.url"] = new_url
        changes.append(f"source.url: {src.url} -> {new_url}")
        sha = _sha256_url(new_url)
    else:  # git: the rev must spell the version (v2.15.0, 2.15.0, release-2.15.0 …)
        if old not in src.rev:
            raise UpstreamError(
                f"{recipe.name}: source.rev {src.rev!r} does not contain the version {old}, so the new "
                f"rev is unknown; edit {recipe.path} by hand"
            )
        new_rev = src.rev.replace(old, version)
        edits["source.rev"] = new_rev
        changes.append(f"source.rev: {src.rev} -> {new_rev}")
        sha = None
    if sha is not None:
        edits["source.sha256"] = sha
        changes.append(f"source.sha256: {src.sha256[:12]}… -> {sha[:12]}…")
    # Build env values that are exactly the old version (torch: PYTORCH_BUILD_VERSION).
    for k, v in recipe.build.env.items():
        if v == old:
            edits[f"build.env.{k}"] = version
            changes.append(f"build.env.{k}: {old} -> {version}")
    try:
        text = set_strings(recipe.text.decode(), edits, where=str(recipe.path))
    except InvalidEdit as e:
        raise UpstreamError(str(e)) from None
    except EditMismatch:
        sha_hint = f" and source.sha256 = {json.dumps(sha)}" if sha else ""
        raise UpstreamError(
            f"{recipe.name}: could not update {recipe.path} automatically (its layout is unusual); "
            f"set package.version = {json.dumps(version)}{sha_hint} by hand"
        ) from None
    return BumpPlan(recipe.name, old, version, text.encode(), changes)


def _sdist_sha256(config, recipe: Recipe, version: str) -> str:
    """sha256 of name==version's sdist as the install index lists it (where the build fetches it)."""
    index = config.indexes.install[0]
    with index_client(index, "indexes.install") as client:
        page = client.page(index, recipe.project)
    if page.status == 404:
        raise UpstreamError(f"{recipe.name}: there is no project '{recipe.project}' on {index}")
    rel = releases(page).get(Version(version))
    if rel is None or not rel.sdists:
        raise UpstreamError(
            f"{recipe.name}: {index} has no sdist of {recipe.project} {version}; "
            f"pick another --version or switch the recipe to a url or git source"
        )
    chosen = sorted(rel.sdists, key=lambda f: not f.filename.endswith(".tar.gz"))[0]
    return chosen.sha256 or _sha256_url(chosen.url)


@dataclass
class BumpResult:
    """What one bump did: bumped, failed (recipe restored), current, error, capped or disabled."""

    name: str
    old: str
    new: str | None
    status: str  # "bumped", "failed", "current", "error", "capped", "disabled"
    message: str = ""
    changes: list[str] = field(default_factory=list)
    log: str = ""


# build(config, recipe_name) -> the RecipeResult of that recipe (its dependencies built first)
Builder = Callable[[object, str], object]


def bump(config, name: str, *, version: str | None = None, build: Builder, commit: bool = False) -> BumpResult:
    """Bump one recipe; keep the new text only if it builds and verifies."""
    recipes_root = config.paths.recipes
    recipe = load_recipe(recipes_root, name)
    if recipe.package.disabled:
        return BumpResult(recipe.name, recipe.version, version, "disabled",
                          f"disabled ({recipe.package.disabled}); clear package.disabled to bump it")
    lock = FileLock(str(config.paths.build / "locks" / f"{recipe.name}.bump.lock"))
    config.paths.build.joinpath("locks").mkdir(parents=True, exist_ok=True)
    with lock:
        original = recipe.path.read_bytes()
        try:
            plan = plan_bump(config, recipe, version)
        except (UpstreamError, SourceError) as e:
            return BumpResult(recipe.name, recipe.version, version, "error", str(e))
        if plan is None:
            return BumpResult(recipe.name, recipe.version, recipe.version, "current", "already at this version")
        ui.info(f"[bold]{recipe.name}[/bold]: trying {plan.old} -> {plan.new} ({'; '.join(plan.changes)})")
        atomic_write_bytes(recipe.path, plan.text)
        try:
            result = build(config, recipe.name)
        except BaseException as e:
            atomic_write_bytes(recipe.path, original)
            if isinstance(e, FactoryError):
                return BumpResult(recipe.name, plan.old, plan.new, "failed",
                                  f"{e}; {recipe.path} restored", plan.changes)
            raise
        status = getattr(result, "status", "failed")
        if status not in ("built", "skipped") or not getattr(result, "wheels", None):
            atomic_write_bytes(recipe.path, original)
            logs = getattr(result, "logs", None) or []
            return BumpResult(recipe.name, plan.old, plan.new, "failed",
                              f"{getattr(result, 'message', '') or status}; {recipe.path} restored",
                              plan.changes, str(logs[-1]) if logs else "")
        if commit:
            _git_commit(config.root, recipe.path, f"{recipe.name}: bump {plan.old} -> {plan.new}")
        return BumpResult(recipe.name, plan.old, plan.new, "bumped",
                          f"built and verified: {len(result.wheels)} wheel(s)", plan.changes)


def _git_commit(root: Path, path: Path, message: str) -> None:
    rel = str(path.relative_to(root))
    for args in (["add", "--", rel], ["commit", "-q", "-m", message, "--", rel]):
        git(args, cwd=root, what=f"the bump built, but `git {' '.join(args)}` failed", error=UpstreamError)


def bump_many(config, names: Sequence[str], *, version: str | None = None, build: Builder,
              commit: bool = False) -> list[BumpResult]:
    """Bump ``names`` (empty: every recipe behind upstream), at most [upstream].max-bumps attempts."""
    if version and len(names) != 1:
        raise UpstreamError("--version needs exactly one recipe name")
    recipes = load_all(config.paths.recipes)
    if names:
        todo = [known_recipe(recipes, n, config) for n in names]
    else:
        todo = [s.name for s in outdated(config) if s.newer and not s.disabled]
        todo.sort()
    cap = max(0, int(config.upstream.max_bumps))
    results: list[BumpResult] = []
    attempted = 0
    for name in todo:
        if attempted >= cap:
            results.append(BumpResult(name, recipes[name].version, None, "capped",
                                      f"not attempted: [upstream].max-bumps = {cap} reached in this run"))
            continue
        r = bump(config, name, version=version, build=build, commit=commit)
        if r.status in ("bumped", "failed"):
            attempted += 1
        results.append(r)
    return results
