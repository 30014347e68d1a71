"""Upstream tracking: which recipes are behind PyPI, which can retire, and version bumps.

``invoke outdated`` reads each recipe's project page from the PEP 691 JSON
simple API ([upstream].pypi-url) and reports

* a newer release than the recipe's version (pre-releases only when
  [upstream].prereleases is on, or the recipe itself pins one; yanked files
  never count);
* riscv64 wheels upstream now ships for our Python versions: the wheel tags a
  pip on the target would accept (``packaging.tags`` for the target's arch and
  glibc). A recipe whose every Python is covered is a candidate to retire.

``invoke bump NAME [--version V]`` rewrites version and sha256 (and a git rev
or build env value that spells the old version) in the recipe text — comments
and layout untouched — builds and verifies it, and keeps the new text only when
that passed; otherwise the recipe is restored byte for byte and the reason
shown. One run bumps at most [upstream].max-bumps recipes, like the capped
automatic bumps of conda-forge's bot: only what actually built is proposed.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

from filelock import FileLock
from packaging import tags as ptags
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from .._util import http
from .. import ui
from ..settings.target import host_arch
from ..errors import FactoryError, RecipeError, SourceError
from ..settings.recipe import Recipe, load_all, load_recipe
from ..build.store import atomic_write_bytes

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


class UpstreamError(FactoryError):
    """The index could not be read, or a bump cannot be prepared."""


# --- the index -------------------------------------------------------------------

def project_page(index_url: str, project: str, *, session=None) -> dict | None:
    """The PEP 691 JSON page of ``project``; None when the index has no such project."""
    url = f"{index_url.rstrip('/')}/{canonicalize_name(project)}/"
    s = session or http.session()
    try:
        resp = s.get(url, headers={"Accept": f"{SIMPLE_JSON}, application/json;q=0.1"},
                     timeout=http.DEFAULT_TIMEOUT)
    except Exception as e:  # connection errors after the session's retries
        raise UpstreamError(f"cannot reach the index {url}: {e}; check [upstream].pypi-url in factory.toml") from None
    if resp.status_code == 404:
        return None
    if resp.status_code != 200:
        raise UpstreamError(f"{url} answered HTTP {resp.status_code}")
    ctype = resp.headers.get("Content-Type", "")
    if not ctype.startswith(SIMPLE_JSON):
        raise UpstreamError(
            f"{url} does not serve the PEP 691 JSON simple API (Content-Type {ctype!r}); "
            f"set [upstream].pypi-url to an index that does (https://pypi.org/simple)"
        )
    try:
        return resp.json()
    except ValueError:
        raise UpstreamError(f"{url}: the PEP 691 answer is not valid JSON") from None


@dataclass
class Release:
    version: Version
    sdists: list[dict] = field(default_factory=list)
    wheels: list[dict] = field(default_factory=list)


def releases(page: dict, project: str) -> dict[Version, Release]:
    """Files of the page grouped by version; yanked files are left out."""
    name = canonicalize_name(project)
    out: dict[Version, Release] = {}
    for f in page.get("files", []):
        if f.get("yanked"):
            continue
        filename = f.get("filename", "")
        try:
            if filename.endswith(".whl"):
                fname, ver, _, _ = parse_wheel_filename(filename)
                kind = "wheels"
            else:
                fname, ver = parse_sdist_filename(filename)
                kind = "sdists"
        except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
            continue
        if fname != name:
            continue
        getattr(out.setdefault(ver, Release(ver)), kind).append(f)
    return out


def latest(rels: dict[Version, Release], *, prereleases: bool) -> Version | None:
    candidates = [v for v in rels if prereleases or not (v.is_prerelease or v.is_devrelease)]
    return max(candidates) if candidates else None


def target_platforms(config) -> list[str]:
    """The platform tags a pip on the target machine accepts, most specific first."""
    arch, policy = config.arch, config.policy
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)", policy)
    if m:
        major, minor = int(m.group(1)), int(m.group(2))
        plats = [f"manylinux_{major}_{v}_{arch}" for v in range(minor, 16, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        plats += [f"{legacy[v]}_{arch}" for v in (17,) if v <= minor]
        return plats
    if arch == host_arch():  # policy "best" (--target host): what this machine's pip accepts
        return list(ptags.platform_tags())
    return [f"manylinux_2_{v}_{arch}" for v in range(39, 16, -1)]


def supported_tags(config, python: str) -> list[ptags.Tag]:
    """Tags, in pip's preference order, a CPython ``python`` (X.Y) on the target accepts."""
    major, minor = (int(x) for x in python.split(".")[:2])
    plats = target_platforms(config)
    abi = f"cp{major}{minor}"
    return [
        *ptags.cpython_tags(python_version=(major, minor), abis=[abi], platforms=plats),
        *ptags.compatible_tags(python_version=(major, minor), interpreter=abi, platforms=plats),
    ]


def wheels_for_target(config, release: Release) -> dict[str, str]:
    """For each of our Pythons: the best native wheel tag of ``release`` the target accepts.

    Pure-Python wheels (platform "any") do not count: a package that ships one as
    a fallback (frozenlist) still needs our build for its C extension.
    """
    found: dict[str, str] = {}
    offered: dict[ptags.Tag, str] = {}
    for f in release.wheels:
        for t in parse_wheel_filename(f["filename"])[3]:
            if t.platform != "any":
                offered.setdefault(t, f["filename"])
    for python in config.pythons:
        for t in supported_tags(config, python):
            if t in offered:
                found[python] = str(t)
                break
    return found


# --- outdated ----------------------------------------------------------------------

@dataclass
class Status:
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


def check(config, recipe: Recipe, *, session=None) -> Status:
    up = config.upstream
    st = Status(recipe.name, recipe.version, disabled=recipe.package.disabled)
    page = project_page(up.pypi_url, recipe.project, session=session)
    if page is None:
        st.note = f"not on {up.pypi_url}"
        return st
    rels = releases(page, recipe.project)
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
    pure = [str(t) for f in rels.get(newest, Release(newest)).wheels
            for t in parse_wheel_filename(f["filename"])[3] if t.platform == "any"]
    st.pure = pure[0] if pure else ""
    return st


def outdated(config, names: Sequence[str] = ()) -> list[Status]:
    recipes = load_all(config.paths.recipes)
    chosen = [recipes[_known(recipes, n, config)] for n in names] if names else list(recipes.values())
    session = http.session(pool=16)
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda r: check(config, r, session=session), chosen))


def _known(recipes: dict, name: str, config) -> str:
    from ..settings.schema import did_you_mean

    n = canonicalize_name(name)
    if n not in recipes:
        raise RecipeError(
            f"no recipe '{name}' in {config.paths.recipes}{did_you_mean(n, recipes)}"
        )
    return n


def print_outdated(config, statuses: list[Status]) -> None:
    from rich.table import Table

    table = Table(title=f"upstream ({config.upstream.pypi_url}) for {config.arch}, "
                        f"Python {', '.join(config.pythons)}")
    for col in ("recipe", "ours", "upstream", "", f"{config.arch} wheels upstream"):
        table.add_column(col)
    for st in sorted(statuses, key=lambda s: s.name):
        mark = ("[yellow]newer[/yellow]" if st.newer else "[green]current[/green]") if st.latest else st.note
        if st.wheels:
            tags = ", ".join(f"{p}: {t}" for p, t in st.wheels.items())
            missing = [p for p in config.pythons if p not in st.wheels]
            wheels = (f"[bold]retire?[/bold] {st.wheels_version}: {tags}" if st.retire
                      else f"{st.wheels_version}: {tags} (none for {', '.join(missing)})")
        else:
            wheels = "none"
        if st.pure:
            wheels += f" [dim](a pure-Python {st.pure} wheel too: installs without the C extension)[/dim]"
        name = st.name + (f" [dim](disabled: {st.disabled})[/dim]" if st.disabled else "")
        table.add_row(name, st.current, st.latest or "-", mark, wheels)
    ui.console.print(table)
    n_new = sum(s.newer for s in statuses)
    n_ret = sum(s.retire for s in statuses)
    ui.info(f"{n_new} recipe(s) behind upstream; {n_ret} candidate(s) to retire "
            f"(upstream ships {config.arch} wheels for every Python we build)")


def outdated_command(root, names: Sequence[str] = (), *, json_out: bool = False, target: str | None = None) -> int:
    config = _config(root, target)
    statuses = outdated(config, names)
    if json_out:
        print(json.dumps([asdict(s) for s in sorted(statuses, key=lambda s: s.name)], indent=2))
    else:
        print_outdated(config, statuses)
    return 0


def _config(root, target):
    from ..settings.factory import load_config

    config = load_config(root)
    if target == "host":
        config = config.for_host()
    elif target:
        raise UpstreamError(f"--target must be 'host' or left out (the target arch comes from factory.toml), got {target!r}")
    return config


# --- editing recipe text -------------------------------------------------------------

_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$")
_ANY_TABLE = re.compile(r"^\s*\[")


def _section_span(lines: list[str], section: str) -> tuple[int, int] | None:
    """(first line after the header, end) of a ``[section]`` table, or None."""
    start = None
    for i, line in enumerate(lines):
        m = _TABLE.match(line)
        if start is None:
            if m and m.group(1) == section:
                start = i + 1
        elif m or line.lstrip().startswith("[["):
            return start, i
    return (start, len(lines)) if start is not None else None


def set_string(text: str, section: str, key: str, value: str) -> str:
    """``text`` with ``[section] key = "value"``: the value replaced in place (quote style,
    spacing and trailing comment kept), added after the table's last key, or a new table."""
    lines = text.splitlines(keepends=True)
    span = _section_span(lines, section)
    quoted = json.dumps(value)
    if span is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        return f"{text}{sep}\n[{section}]\n{key} = {quoted}\n"
    start, end = span
    pat = re.compile(rf'^(\s*{re.escape(key)}\s*=\s*)(["\'])([^"\'\\]*)\2(\s*(?:#.*)?)$')
    for i in range(start, end):
        body = lines[i].rstrip("\r\n")
        m = pat.match(body)
        if m:
            newline = lines[i][len(body):]
            lines[i] = f"{m.group(1)}{m.group(2)}{value}{m.group(2)}{m.group(4)}{newline}"
            return "".join(lines)
        if re.match(rf"^\s*{re.escape(key)}\s*=", body):
            raise RecipeError(f"'{section}.{key}' is not a simple one-line string; edit it by hand")
    # Not there: insert after the last non-blank, non-comment line of the table.
    last = start
    for i in range(start, end):
        if lines[i].strip() and not lines[i].lstrip().startswith("#"):
            last = i + 1
    if last > 0 and not lines[last - 1].endswith("\n"):
        lines[last - 1] += "\n"
    lines.insert(last, f"{key} = {quoted}\n")
    return "".join(lines)


def replace_in_section_strings(text: str, section: str, old: str, new: str, *, key: str) -> str:
    """Replace the quoted string ``"old"`` by ``"new"`` on the ``key = …`` line of ``[section]``
    (e.g. the version inside ``env = { PYTORCH_BUILD_VERSION = "2.15.0" }``)."""
    lines = text.splitlines(keepends=True)
    span = _section_span(lines, section)
    if span is None:
        return text
    for i in range(*span):
        if re.match(rf"^\s*{re.escape(key)}\s*=", lines[i]):
            for q in ('"', "'"):
                lines[i] = lines[i].replace(f"{q}{old}{q}", f"{q}{new}{q}")
    return "".join(lines)


# --- bump ----------------------------------------------------------------------------

@dataclass
class BumpPlan:
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
    ``url`` source the new archive (to hash it).
    """
    up = config.upstream
    old = recipe.version
    if version is None:
        page = project_page(up.pypi_url, recipe.project)
        if page is None:
            raise UpstreamError(f"{recipe.name}: there is no project '{recipe.project}' on {up.pypi_url}; "
                                f"give the version with --version")
        newest = latest(releases(page, recipe.project), prereleases=up.prereleases or Version(old).is_prerelease)
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
    text = recipe.text.decode()
    changes = [f"package.version: {old} -> {version}"]
    text = set_string(text, "package", "version", version)
    expected = copy.deepcopy(_raw(recipe.text))
    expected.setdefault("package", {})["version"] = version

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
        text = set_string(text, "source", "url", new_url)
        expected["source"]["url"] = new_url
        changes.append(f"source.url: {src.url} -> {new_url}")
        sha = _sha256_url(new_url)
    else:  # git: the rev must spell the version (v2.15.0, 2.15.0, release-2.15.0 …)
        if old not in src.rev:
            raise UpstreamError(
                f"{recipe.name}: source.rev {src.rev!r} does not contain the version {old}, so the new "
                f"rev is unknown; edit {recipe.path} by hand"
            )
        new_rev = src.rev.replace(old, version)
        text = set_string(text, "source", "rev", new_rev)
        expected["source"]["rev"] = new_rev
        changes.append(f"source.rev: {src.rev} -> {new_rev}")
        sha = None
    if sha is not None:
        text = set_string(text, "source", "sha256", sha)
        expected.setdefault("source", {})["sha256"] = sha
        changes.append(f"source.sha256: {src.sha256[:12]}… -> {sha[:12]}…")

    # Build env values that are exactly the old version (torch: PYTORCH_BUILD_VERSION).
    for k, v in recipe.build.env.items():
        if v == old:
            expected["build"]["env"][k] = version
            changes.append(f"build.env.{k}: {old} -> {version}")
    if any(v == old for v in recipe.build.env.values()):
        text = replace_in_section_strings(text, "build", old, version, key="env")

    # The edit must change exactly what we meant, nothing else.
    got = _raw(text.encode(), where=str(recipe.path))
    if got != expected:
        raise UpstreamError(
            f"{recipe.name}: could not update {recipe.path} automatically (its layout is unusual); "
            f"set package.version = \"{version}\"{' and source.sha256 = ' + json.dumps(sha) if sha else ''} by hand"
        )
    return BumpPlan(recipe.name, old, version, text.encode(), changes)


def _raw(data: bytes, where: str = "") -> dict:
    try:
        return tomllib.loads(data.decode())
    except tomllib.TOMLDecodeError as e:
        raise UpstreamError(f"{where}: the edited recipe is not valid TOML ({e}); nothing was changed") from None


def _sdist_sha256(config, recipe: Recipe, version: str) -> str:
    """sha256 of name==version's sdist as the install index lists it (where the build fetches it)."""
    index = config.indexes.install[0]
    page = project_page(index, recipe.project)
    if page is None:
        raise UpstreamError(f"{recipe.name}: there is no project '{recipe.project}' on {index}")
    rel = releases(page, recipe.project).get(Version(version))
    if rel is None or not rel.sdists:
        raise UpstreamError(
            f"{recipe.name}: {index} has no sdist of {recipe.project} {version}; "
            f"pick another --version or switch the recipe to a url or git source"
        )
    chosen = sorted(rel.sdists, key=lambda f: not f["filename"].endswith(".tar.gz"))[0]
    sha = chosen.get("hashes", {}).get("sha256")
    return sha or _sha256_url(chosen["url"])


@dataclass
class BumpResult:
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
    rel = path.relative_to(root)
    for argv in (["git", "add", "--", str(rel)], ["git", "commit", "-q", "-m", message, "--", str(rel)]):
        proc = subprocess.run(argv, cwd=root, capture_output=True, text=True)
        if proc.returncode != 0:
            raise UpstreamError(f"the bump built, but `{' '.join(argv)}` failed: {proc.stderr.strip()}")


def bump_many(config, names: Sequence[str], *, version: str | None = None, build: Builder,
              commit: bool = False) -> list[BumpResult]:
    """Bump ``names`` (empty: every recipe behind upstream), at most [upstream].max-bumps attempts."""
    if version and len(names) != 1:
        raise UpstreamError("--version needs exactly one recipe name")
    recipes = load_all(config.paths.recipes)
    if names:
        todo = [_known(recipes, n, config) for n in names]
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


def print_bumps(results: list[BumpResult]) -> None:
    from rich.table import Table

    table = Table(title="bumps")
    for col in ("recipe", "from", "to", "result", "why"):
        table.add_column(col)
    colour = {"bumped": "green", "failed": "red", "error": "red", "capped": "yellow"}
    for r in results:
        c = colour.get(r.status, "dim")
        why = r.message + (f" (log: {r.log})" if r.log else "")
        table.add_row(r.name, r.old, r.new or "-", f"[{c}]{r.status}[/{c}]", why)
    ui.console.print(table)


def pipeline_builder(*, runner_choice: str | None = None, pythons: Sequence[str] | None = None) -> Builder:
    """Build a recipe (and what it needs) through the real pipeline: source, PEP 517
    build, repair, verify in a bare venv, store. Returns the recipe's RecipeResult."""
    from ..build import catalog, graph
    from ..runners import select_runner

    runners: dict[str, object] = {}

    def build(config, name: str):
        recipes = graph.select(load_all(config.paths.recipes), [name])
        runner = runners.get(config.arch) or runners.setdefault(config.arch, select_runner(config, runner_choice))
        results = catalog.build_recipes(config, recipes, runner, pythons=pythons, keep_going=False)
        return next(r for r in results if r.name == canonicalize_name(name))

    return build


def bump_command(root, names: Sequence[str] = (), *, version: str | None = None, target: str | None = None,
                 runner: str | None = None, pythons: Sequence[str] | None = None, commit: bool = False,
                 json_out: bool = False) -> int:
    """`invoke bump [NAME] [--version V]`: exit 1 when a bump failed or could not be prepared."""
    config = _config(root, target)
    results = bump_many(config, names, version=version, commit=commit,
                        build=pipeline_builder(runner_choice=runner, pythons=pythons))
    if json_out:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print_bumps(results)
    if not results:
        ui.info("every recipe is at its newest upstream version")
    return 1 if any(r.status in ("failed", "error") for r in results) else 0
