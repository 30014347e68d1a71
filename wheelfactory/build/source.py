"""Stage 1: the source. Fetch (cached, sha256 verified BEFORE unpacking), unpack
safely (every member checked first: build/unpack.py), pick the subdirectory,
check the version it declares against the recipe, apply patches.

Sources are prepared on the host side: these steps only move bytes into
``build/`` and ``cache/``, which every runner sees at the same absolute path,
so the build stage that follows can run anywhere.

Three kinds of source (see recipe.py):

* ``sdist`` (default): the PyPI sdist of name==version, found through the
  PEP 691 JSON simple API of the first install index;
* ``url``: an archive at a URL;
* ``git``: a repository + rev; the rev is resolved to a commit, which is what
  the build key and the record name.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from filelock import FileLock
from packaging.metadata import parse_email
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidSdistFilename, canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .._util.fs import sha256_file
from .._util.proc import git
from ..errors import SourceError
from ..settings.recipe import Recipe
from .unpack import ARCHIVE_SUFFIXES, UnsafeMember, unpack_archive

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class SourceTree:
    """A prepared source: where it was unpacked and what it came from."""

    root: Path  # top of the unpacked/checked-out tree (patches apply here)
    project: Path  # root / subdirectory: the Python project to build
    info: dict = field(default_factory=dict)  # the record's `source` field
    patches: list[str] = field(default_factory=list)  # applied, relative to patches/
    env: dict[str, str] = field(default_factory=dict)  # for the build: extra-sources.NAME.env -> its folder


# --- identity (for the build key, without fetching anything big) -------------------

def source_id(recipe: Recipe, log: IO[str] | None = None) -> str:
    """What pins the source: the archive's sha256, or the git commit rev resolves to."""
    src = recipe.source
    if recipe.source_kind != "git":
        return f"sha256:{src.sha256}"
    return f"git:{resolve_git_rev(recipe, log)}"


def resolve_git_rev(recipe: Recipe, log: IO[str] | None = None) -> str:
    """The commit a git rev names (a full commit is taken as is; no clone needed)."""
    src = recipe.source
    rev = src.rev
    if _COMMIT.match(rev):
        return rev
    out = _git(["ls-remote", src.git, rev, f"{rev}^{{}}", f"refs/tags/{rev}^{{}}"],
               log=log, what=f"{recipe.name}: cannot reach git repository {src.git}").stdout
    refs = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        refs[ref] = sha
    # A peeled annotated tag (^{}) names the commit; the tag object itself does not.
    for ref in (f"refs/tags/{rev}^{{}}", f"refs/tags/{rev}", f"refs/heads/{rev}", rev):
        if ref in refs:
            return refs[ref]
    if len(rev) >= 7 and re.fullmatch(r"[0-9a-f]+", rev):
        raise SourceError(
            f"{recipe.name}: source.rev {rev!r} looks like an abbreviated commit; "
            f"write the full 40-digit commit in {recipe.path}"
        )
    raise SourceError(
        f"{recipe.name}: git repository {src.git} has no tag or branch {rev!r} "
        f"(source.rev in {recipe.path}); set it to a tag, branch or full commit that exists "
        f"(`git ls-remote {src.git}` lists them)"
    )


# --- fetch ----------------------------------------------------------------------

def sdist_url(recipe: Recipe, index_url: str) -> str:
    """The URL of name==version's sdist, from the index's PEP 691 JSON page.

    The index's own sha256 for the file must match the recipe's: a mismatch is
    reported before anything is downloaded.
    """
    from .._util import http  # requests is slow to import; a no-op build never fetches

    name, version = recipe.name, recipe.version
    page = f"{index_url.rstrip('/')}/{name}/"
    try:
        resp = http.session().get(page, headers={"Accept": SIMPLE_JSON}, timeout=http.DEFAULT_TIMEOUT)
    except Exception as e:  # requests' ConnectionError etc., after retries
        raise SourceError(f"{recipe.name}: cannot reach the package index {page}: {e}; check the network "
                          f"(or the index URL in factory.toml) and re-run") from None
    if resp.status_code == 404:
        raise SourceError(
            f"{recipe.name}: there is no project '{recipe.project}' on {index_url} (HTTP 404 for {page}); "
            f"check package.name in {recipe.path}"
        )
    if resp.status_code != 200:
        raise SourceError(f"{recipe.name}: {page} answered HTTP {resp.status_code}; re-run later, or check "
                          f"the index URL in factory.toml")
    if not resp.headers.get("Content-Type", "").startswith(SIMPLE_JSON):
        raise SourceError(
            f"{recipe.name}: {index_url} does not serve the PEP 691 JSON simple API; "
            f"give the archive with source.url in {recipe.path}"
        )
    files = resp.json().get("files", [])
    sdists, versions = [], set()
    for f in files:
        try:
            fname, fver = parse_sdist_filename(f["filename"])
        except (InvalidSdistFilename, InvalidVersion):
            continue
        if fname != canonicalize_name(name):
            continue
        versions.add(fver)
        if fver == Version(version):
            sdists.append(f)
    if not sdists:
        recent = ", ".join(str(v) for v in sorted(versions)[-5:]) or "none"
        raise SourceError(
            f"{recipe.name}: PyPI has no sdist of {recipe.project} {version} on {index_url} "
            f"(latest versions with an sdist: {recent}); fix package.version in {recipe.path}"
        )
    # Prefer .tar.gz (the PEP 625 format) when both exist.
    sdists.sort(key=lambda f: not f["filename"].endswith(".tar.gz"))
    chosen = sdists[0]
    want = recipe.source.sha256
    listed = chosen.get("hashes", {}).get("sha256")
    if listed and listed != want:
        raise SourceError(
            f"{recipe.name}: sha256 mismatch for {chosen['filename']}: the recipe says {want} but "
            f"{index_url} lists {listed}; if the recipe is wrong, set source.sha256 = \"{listed}\" in {recipe.path}"
        )
    return chosen["url"]


def fetch_archive(recipe: Recipe, url: str, cache: Path, log: IO[str], *, sha256: str = "",
                  key: str = "source") -> Path:
    """Download ``url`` into cache/sources/<sha256>/ once; the bytes must match ``sha256`` (default: the
    recipe's source.sha256). ``key``: the recipe table the url and sha256 come from, for the messages
    (``source``, ``extra-sources.NAME``). SourceError on HTTP errors, an unreachable host or a mismatch."""
    from .._util import http  # requests is slow to import: only when something is downloaded

    want = sha256 or recipe.source.sha256
    filename = Path(urlsplit(url).path).name or "source"
    dest = cache / "sources" / want / filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest.parent / ".lock")):
        if dest.is_file():
            have = sha256_file(dest)
            if have == want:
                log.write(f"using cached {dest}\n")
                return dest
            dest.unlink()  # a corrupt cache entry: fetch again
        log.write(f"downloading {url}\n")
        tmp = dest.with_name(f".{filename}.part")
        h = hashlib.sha256()
        try:
            with http.session().get(url, stream=True, timeout=http.DEFAULT_TIMEOUT) as resp:
                if resp.status_code != 200:
                    raise SourceError(f"{recipe.name}: downloading {url} failed: HTTP {resp.status_code}; "
                                      f"check {key}.url in {recipe.path} and re-run")
                with open(tmp, "wb") as f:
                    for chunk in resp.iter_content(1 << 20):
                        h.update(chunk)
                        f.write(chunk)
        except SourceError:
            tmp.unlink(missing_ok=True)
            raise
        except Exception as e:
            tmp.unlink(missing_ok=True)
            raise SourceError(f"{recipe.name}: downloading {url} failed: {e}; check the network and "
                              f"{key}.url in {recipe.path}, then re-run") from None
        got = h.hexdigest()
        if got != want:
            tmp.unlink(missing_ok=True)
            raise SourceError(
                f"{recipe.name}: sha256 mismatch for {url} ({key}): the recipe says {want}, the download is {got}. "
                f"Nothing was unpacked. If the new file is trusted, set {key}.sha256 = \"{got}\" in {recipe.path}"
            )
        os.replace(tmp, dest)
        (dest.parent / ORIGIN_FILE).write_text(url + "\n")
        log.write(f"sha256 {got} ok\n")
    return dest


ORIGIN_FILE = ".origin-url"  # beside a cached archive: where it was downloaded from


def cached_archive(cache: Path, sha256: str) -> tuple[Path, str] | None:
    """An archive already in cache/sources/<sha256>/ (with the URL it came from), if its bytes still match."""
    folder = cache / "sources" / sha256
    origin = folder / ORIGIN_FILE
    if not origin.is_file():
        return None
    url = origin.read_text().strip()
    path = folder / (Path(urlsplit(url).path).name or "source")
    if path.is_file() and sha256_file(path) == sha256:
        return path, url
    return None


# --- unpack ---------------------------------------------------------------------

def unpack(archive: Path, dest: Path, recipe: Recipe, key: str = "source") -> Path:
    """Unpack into the new or empty folder ``dest`` after checking every member (build/unpack.py);
    return the source root (the single top folder, if any). SourceError names an unsafe member
    and ``key``, the recipe table the archive comes from."""
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):  # the member checks assume no links are already there
        raise ValueError(f"{dest} is not empty")
    if not archive.name.lower().endswith(ARCHIVE_SUFFIXES):
        raise SourceError(
            f"{recipe.name}: {archive.name} is not an archive this factory unpacks "
            f"({', '.join(ARCHIVE_SUFFIXES)}); point {key}.url in {recipe.path} at one"
        )
    try:
        unpack_archive(archive, dest)
    except UnsafeMember as e:
        raise SourceError(
            f"{recipe.name}: cannot unpack {archive.name} safely: {e}; nothing was unpacked. Fix: "
            f"check that {key}.url and {key}.sha256 in {recipe.path} point at the project's real "
            f"release; an archive with such a member is never built"
        ) from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise SourceError(f"{recipe.name}: cannot unpack {archive.name}: {e}; nothing was built. Fix: "
                          f"check that {key}.url and {key}.sha256 in {recipe.path} point at the project's real "
                          f"release") from None
    entries = [p for p in dest.iterdir()]
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return dest


def fetch_cached(recipe: Recipe, url: str, sha256: str, cache: Path, log: IO[str], key: str) -> Path:
    """The archive of ``url`` pinned by ``sha256``: from cache/sources/ when there, else downloaded."""
    hit = cached_archive(cache, sha256)
    if hit and hit[1] == url:
        log.write(f"using cached {hit[0]} (from {url})\n")
        return hit[0]
    return fetch_archive(recipe, url, cache, log, sha256=sha256, key=key)


def add_extra_sources(recipe: Recipe, root: Path, cache: Path, scratch: Path,
                      log: IO[str]) -> tuple[dict[str, dict], dict[str, str]]:
    """Fetch, verify and unpack each [extra-sources.NAME] archive like the main source; move it to
    ``root``/unpack-to and/or name its folder in the env. Returns (the record's ``source.extra``,
    the build's env). SourceError names the recipe file and the key."""
    if scratch.exists():
        shutil.rmtree(scratch)
    info, env = {}, {}
    for name, extra in recipe.extra_sources.items():
        key = f"extra-sources.{name}"
        archive = fetch_cached(recipe, extra.url, extra.sha256, cache, log, key)
        top = unpack(archive, scratch / name, recipe, key)
        if extra.unpack_to:
            place = root / extra.unpack_to
            if not place.resolve().is_relative_to(root.resolve()):
                raise SourceError(f"{recipe.name}: {key}.unpack-to {extra.unpack_to!r} leads out of the source tree "
                                  f"(through a symlink); fix it in {recipe.path}")
            if place.exists() and (not place.is_dir() or any(place.iterdir())):
                raise SourceError(f"{recipe.name}: {key}.unpack-to {extra.unpack_to!r} already exists in the source "
                                  f"and is not an empty folder; fix: name a new folder in {recipe.path}")
            if place.is_dir():
                place.rmdir()
            place.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(top, place)
            top = place
        if extra.env:
            env[extra.env] = str(top)
        info[name] = {"url": extra.url, "sha256": extra.sha256, "unpack_to": extra.unpack_to or None,
                      "env": extra.env or None}
        log.write(f"{key}: {archive.name} -> {top}\n")
    return info, env


# --- git --------------------------------------------------------------------------

# The one git helper; a failure here is a SourceError("what: git's line").
_git = functools.partial(git, error=SourceError)


def checkout_git(recipe: Recipe, commit: str, cache: Path, dest: Path, log: IO[str]) -> Path:
    """A clean checkout of ``commit`` (with submodules) in ``dest``, via a cached mirror."""
    url = recipe.source.git
    mirror = cache / "git" / (hashlib.sha256(url.encode()).hexdigest()[:16] + ".git")
    mirror.parent.mkdir(parents=True, exist_ok=True)
    what = f"{recipe.name}: git {url}"
    with FileLock(str(mirror) + ".lock"):
        if not (mirror / "HEAD").is_file():
            shutil.rmtree(mirror, ignore_errors=True)
            _git(["clone", "--mirror", "--quiet", url, str(mirror)], log=log, what=what)
        have = _git(["--git-dir", str(mirror), "cat-file", "-e", f"{commit}^{{commit}}"], what=what,
                    check=False).returncode == 0
        if not have:
            _git(["--git-dir", str(mirror), "fetch", "--quiet", "--prune", "origin",
                  "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], log=log, what=what)
            try:
                _git(["--git-dir", str(mirror), "cat-file", "-e", f"{commit}^{{commit}}"], log=log, what=what)
            except SourceError:
                _git(["--git-dir", str(mirror), "fetch", "--quiet", "origin", commit], log=log, what=what)
    _git(["clone", "--quiet", "--no-checkout", str(mirror), str(dest)], log=log, what=what)
    _git(["-C", str(dest), "checkout", "--quiet", "--detach", commit], log=log, what=f"{what}: rev {commit}")
    # Submodule URLs are resolved against the real upstream, not the mirror.
    _git(["-C", str(dest), "remote", "set-url", "origin", url], log=log, what=what)
    if (dest / ".gitmodules").is_file():
        _git(["-C", str(dest), "submodule", "update", "--init", "--recursive", "--quiet"],
             log=log, what=f"{what}: submodules")
    return dest


# --- subdirectory and patches ------------------------------------------------------

def project_dir(recipe: Recipe, root: Path) -> Path:
    sub = recipe.source.subdirectory
    if not sub:
        return root
    p = (root / sub).resolve()
    if not p.is_relative_to(root.resolve()):
        raise SourceError(
            f"{recipe.name}: source.subdirectory {sub!r} escapes the source tree (through a symlink); "
            f"fix it in {recipe.path}"
        )
    if not p.is_dir():
        raise SourceError(
            f"{recipe.name}: source.subdirectory {sub!r} does not exist in the source "
            f"({_listing(root)}); fix it in {recipe.path}"
        )
    if not ((p / "pyproject.toml").is_file() or (p / "setup.py").is_file()):
        raise SourceError(
            f"{recipe.name}: source.subdirectory {sub!r} holds no pyproject.toml or setup.py; "
            f"point it at the Python project in {recipe.path}"
        )
    return p


def _listing(root: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    shown = ", ".join(names[:12]) + (", …" if len(names) > 12 else "")
    return f"the top folder holds: {shown}" if names else "the source is empty"


def check_patches(recipe: Recipe, patches_root: Path) -> list[Path]:
    """The recipe's patches, in order; a dangling or misnamed patch is an error, not a silent skip."""
    base = patches_root / recipe.name
    if base.is_dir():
        for folder in (base, base / recipe.version):
            if not folder.is_dir():
                continue
            for p in sorted(folder.iterdir()):
                if p.is_dir():
                    continue
                shown = (Path(patches_root.name) / p.relative_to(patches_root)).as_posix()
                if p.name.endswith(".patch"):
                    if not p.is_file():
                        raise SourceError(
                            f"{recipe.name}: patch {shown} is missing (a dangling link); restore it or remove the link"
                        )
                elif not (p.name.startswith(".") or p.name.upper().startswith("README") or p.suffix == ".md"):
                    # e.g. fix.diff or fix.patch.txt: silently never applied is worse than an error.
                    raise SourceError(
                        f"{recipe.name}: {shown} is in the patch folder but is not a *.patch file, so it would "
                        f"never be applied; rename it to *.patch or move it out of {Path(shown).parent}/"
                    )
    return recipe.patches(patches_root)


def apply_patches(recipe: Recipe, patches: list[Path], root: Path, patches_root: Path, log: IO[str]) -> list[str]:
    """Apply each patch with -p1 at the source root, in order; the first failure names itself and the file.

    A patch saved with CRLF line endings that does not apply as it is is applied with LF endings
    (the usual case: edited on Windows, for a source with LF files); if that fails too, the
    message says the patch has CRLF line endings.
    """
    applied = []
    for patch in patches:
        rel = patch.relative_to(patches_root).as_posix()
        what = f"{recipe.name}: patch patches/{rel}"
        proc = _git_apply(patch, root, log, what)
        crlf = proc.returncode != 0 and b"\r\n" in patch.read_bytes()
        if crlf:
            with tempfile.NamedTemporaryFile(suffix=".patch") as lf:
                lf.write(patch.read_bytes().replace(b"\r\n", b"\n"))
                lf.flush()
                log.write(f"# {rel} has CRLF line endings; trying it with LF\n")
                proc = _git_apply(Path(lf.name), root, log, what)
        if proc.returncode != 0:
            endings = (" (the patch has CRLF line endings and applies neither as it is nor with LF endings)"
                       if crlf else "")
            raise SourceError(
                f"{what} does not apply: {_patch_failure(proc.stderr)}{endings}; "
                f"refresh the patch against {recipe.project} {recipe.version}"
            )
        applied.append(rel)
    return applied


def _git_apply(patch: Path, root: Path, log: IO[str], what: str):
    # git apply must not mistake an enclosing repository (the project's own
    # checkout) for the source tree: stop its repository search at root's parent.
    return _git(["apply", "-p1", "--verbose", "--whitespace=nowarn", str(patch)], cwd=root,
                env={"GIT_CEILING_DIRECTORIES": str(root.parent)}, log=log, what=what, check=False)


def _patch_failure(stderr: str) -> str:
    """The failing file and reason from git apply's messages."""
    for pat, fmt in (
        (r"error: patch failed: (.+?):(\d+)", "hunk at {0}:{1} does not match"),
        (r"error: (.+?): No such file or directory", "{0} does not exist in the source"),
        (r"error: (.+?): does not exist in index", "{0} does not exist in the source"),
        (r"error: (.+?): already exists in working directory", "{0} already exists"),
        (r"error: No valid patches in input.*", "the file holds no patch (is it empty?)"),
        (r"error: corrupt patch at line (\d+)", "the patch is corrupt at line {0}"),
    ):
        m = re.search(pat, stderr)
        if m:
            return fmt.format(*m.groups())
    lines = [l for l in stderr.strip().splitlines() if l.startswith("error")]
    return lines[0] if lines else stderr.strip()[-300:] or "git apply failed"


# --- the version the source declares ---------------------------------------------

def declared_version(project: Path) -> tuple[str, str] | None:
    """(version, where it was read) from the source's own metadata: PKG-INFO's Version (an sdist,
    core metadata), else pyproject.toml's ``[project].version`` when static (PEP 621); None when
    neither says (a version the backend computes: the built wheel's name tells)."""
    return _declared(project, "version", "version")


def declared_requires_python(project: Path) -> tuple[SpecifierSet, str] | None:
    """(Requires-Python, where it was read), from PKG-INFO or a static ``[project].requires-python``
    as :func:`declared_version` reads them; None when neither says or the specifier is not PEP 440."""
    found = _declared(project, "requires_python", "requires-python")
    if found is None:
        return None
    try:
        return SpecifierSet(found[0]), found[1]
    except InvalidSpecifier:
        return None  # the build backend reports it, with its own words


def python_fits(spec: SpecifierSet, python: str) -> bool:
    """Whether CPython X.Y satisfies ``spec``: tested as X.Y.99, so ``>=3.11.2`` admits 3.11, as
    cibuildwheel's BuildSelector tests requires-python."""
    return spec.contains(f"{python}.99", prereleases=True)


def _declared(project: Path, email_key: str, pyproject_key: str) -> tuple[str, str] | None:
    pkg_info = project / "PKG-INFO"
    if pkg_info.is_file():
        raw, _ = parse_email(pkg_info.read_bytes())
        if raw.get(email_key):
            return raw[email_key], f"PKG-INFO {pyproject_key.title()}"
    pyproject = project / "pyproject.toml"
    if pyproject.is_file():
        try:
            table = tomllib.loads(pyproject.read_text(errors="replace")).get("project", {})
        except tomllib.TOMLDecodeError:
            return None  # the build backend reports it, with its own words
        if isinstance(table, dict) and isinstance(table.get(pyproject_key), str) \
                and pyproject_key not in table.get("dynamic", []):
            return table[pyproject_key], f"pyproject.toml [project].{pyproject_key}"
    return None


def check_version(recipe: Recipe, version: str, where: str) -> None:
    """SourceError unless ``version`` (read from ``where``) equals package.version as PEP 440 versions
    (``1.0`` == ``1.0.0``); a version that is not PEP 440 is left to the build backend."""
    try:
        same = Version(version) == Version(recipe.version)
    except InvalidVersion:
        return
    if same:
        return
    pin = {"git": "source.rev", "url": "source.url and source.sha256"}.get(recipe.source_kind, "source.sha256")
    raise SourceError(
        f"{recipe.name}: the source is version {version} ({where}) while {recipe.path} says "
        f"package.version = \"{recipe.version}\"; set package.version = \"{version}\" there, or point {pin} "
        f"at the source of {recipe.version}"
    )


def check_wheel_version(recipe: Recipe, wheel: Path) -> None:
    """The built wheel's version (its file name, PEP 427) must be the recipe's too."""
    check_version(recipe, str(parse_wheel_filename(wheel.name)[1]), f"the built wheel {wheel.name}")


# --- the stage ----------------------------------------------------------------------

def prepare(recipe: Recipe, *, commit: str | None, cache: Path, patches_root: Path, workdir: Path,
            log: IO[str], index_url: str, on_stage=None) -> SourceTree:
    """fetch → unpack → subdirectory → version check → patches, into ``workdir``/src.

    The version the source declares (:func:`declared_version`) must be package.version, cached
    archive or not; a source that declares none is checked by its wheel (:func:`check_wheel_version`).

    ``on_stage(name, detail)`` is called as each step finishes (for progress lines).
    """
    on_stage = on_stage or (lambda name, detail="": None)
    src = recipe.source
    patches = check_patches(recipe, patches_root)
    dest = workdir / "src"
    if dest.exists():
        shutil.rmtree(dest)
    info = {"kind": recipe.source_kind, "url": src.url or None, "sha256": src.sha256 or None,
            "git": src.git or None, "rev": src.rev or None, "commit": None,
            "subdirectory": src.subdirectory or None}
    if recipe.source_kind == "git":
        commit = commit or resolve_git_rev(recipe, log)
        root = checkout_git(recipe, commit, cache, dest, log)
        info["commit"] = commit
        on_stage("fetch", f"{src.git} @ {commit[:12]}")
    else:
        # The archive is pinned by its sha256: once cached, no index lookup is needed.
        hit = cached_archive(cache, src.sha256)
        if hit and (not src.url or hit[1] == src.url):
            archive, url = hit
            log.write(f"using cached {archive} (from {url})\n")
        else:
            url = src.url or sdist_url(recipe, index_url)
            archive = fetch_archive(recipe, url, cache, log)
        info["url"] = url
        on_stage("fetch", f"{archive.name} sha256 ok")
        root = unpack(archive, dest, recipe)
        on_stage("unpack", str(root.relative_to(workdir)))
    env = {}
    if recipe.extra_sources:
        info["extra"], env = add_extra_sources(recipe, root, cache, workdir / "extra", log)
        on_stage("extra", f"{len(recipe.extra_sources)} extra source(s) sha256 ok")
    project = project_dir(recipe, root)
    declared = declared_version(project)
    if declared:  # before the patches: a wrong version is the first thing to fix
        check_version(recipe, *declared)
    applied = apply_patches(recipe, patches, root, patches_root, log)
    if patches:
        on_stage("patch", f"{len(applied)} applied")
    return SourceTree(root=root, project=project, info=info, patches=applied, env=env)
