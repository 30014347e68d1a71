"""Audit: which packages of a requirement's full dependency tree lack riscv64 wheels.

The numpy lesson: a package nobody listed (a transitive dependency that a dirty
build machine already had) cost a clean board 25 minutes of compiling. So the
audit never looks at an installed environment. It resolves the whole tree with
``uv pip compile --universal`` — a resolution that holds for every platform, so
it cannot stop or backtrack at the first package without a riscv64 wheel, as a
``pip --dry-run`` or a ``--python-platform`` resolve does — and then evaluates
each pin's environment marker for the target (riscv64 Linux, each configured
CPython). Every package left is looked up in the PEP 691 JSON of PyPI and of
our own index and its files are matched, with ``packaging.tags``, against the
tags a riscv64 ``manylinux_2_39`` machine accepts.

Index pages are fetched concurrently and cached on disk (cache/audit/), reused
while fresh (Cache-Control max-age, else ``audit.max-age``) and revalidated
with If-None-Match / If-Modified-Since after that. The resolution is cached the
same way, keyed by everything that decides it.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import functools
import hashlib
import html
import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from importlib import metadata as importlib_metadata
from pathlib import Path
from urllib.parse import urljoin, urlsplit, unquote

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    canonicalize_version,
    parse_wheel_filename,
)

from .. import ui
from ..settings.factory import Config, load_config
from ..settings.target import host_arch
from ..errors import ConfigError, FactoryError
from ..settings.recipe import RECIPE_FILE, parse_recipe

PEP691_JSON = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{PEP691_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
CACHE_SCHEMA = 3  # bump when the cached rows change shape
SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".txz", ".tbz", ".tar")

# Exit status of `invoke audit` when some package still needs a recipe (1 = an error).
EXIT_MISSING = 2


class AuditError(FactoryError):
    """The audit could not run: bad requirement, unknown package, unreachable index."""


# --- requirements ---------------------------------------------------------------------


@dataclasses.dataclass
class RequirementsInput:
    requirements: list[str]  # requirement strings, validated
    constraints: list[str]

    @property
    def names(self) -> list[str]:
        return sorted({canonicalize_name(Requirement(r).name) for r in self.requirements})


def split_requirement_args(values: Iterable[str]) -> list[str]:
    """Requirements given on a command line: each value may hold several, comma- or space-separated.

    Commas inside a version specifier (``numpy>=2,<3``) stay with their requirement:
    a piece that starts with an operator continues the previous one.
    """
    out: list[str] = []
    for value in values:
        for piece in re.split(r"[\s,]+", value.strip()):
            if not piece:
                continue
            if out and re.match(r"^(===|==|!=|~=|<=|>=|<|>)", piece):
                out[-1] += "," + piece
            else:
                out.append(piece)
    return out


def _check_requirement(text: str, where: str) -> str:
    try:
        req = Requirement(text)
    except InvalidRequirement as e:
        raise AuditError(f"{where}: {text!r} is not a valid requirement: {e}") from None
    return str(req)


def _logical_lines(path: Path) -> Iterable[tuple[int, str]]:
    """Lines of a requirements file with comments removed and ``\\`` continuations joined."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AuditError(f"requirements file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AuditError(f"requirements file {path} cannot be read: {e}") from None
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not buf:
            start = number
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            yield start, buf.strip()
        buf = ""
    if buf.strip():
        yield start, buf.strip()


def read_requirement_file(path: Path, into: RequirementsInput, *, constraint: bool = False,
                          seen: set[Path] | None = None) -> None:
    """pip's requirements-file format: requirements, ``-r FILE``, ``-c FILE``, comments."""
    path = path.resolve()
    seen = seen if seen is not None else set()
    if path in seen:
        return
    seen.add(path)
    for number, line in _logical_lines(path):
        where = f"{path}:{number}"
        if line.startswith("-"):
            parts = shlex.split(line)
            opt, arg = parts[0], (parts[1] if len(parts) > 1 else "")
            if "=" in opt:
                opt, arg = opt.split("=", 1)
            if opt in ("-r", "--requirement", "-c", "--constraint"):
                if not arg:
                    raise AuditError(f"{where}: {opt} needs a file name")
                nested = Path(arg) if Path(arg).is_absolute() else path.parent / arg
                read_requirement_file(nested, into, constraint=constraint or opt in ("-c", "--constraint"),
                                      seen=seen)
                continue
            raise AuditError(
                f"{where}: option {opt!r} is not supported by the audit (indexes come from factory.toml "
                f"[audit] and [indexes]); remove it or list plain requirements"
            )
        req = _check_requirement(line, where)
        (into.constraints if constraint else into.requirements).append(req)


def _names_a_file(piece: str) -> bool:
    """A command-line piece that is a requirements file rather than a requirement.

    invoke cannot leave a positional argument empty, so `invoke audit requirements.txt`
    is how a file alone is audited; a path (with a slash, or .txt/.in) that exists counts.
    """
    return ("/" in piece or piece.endswith((".txt", ".in"))) and Path(piece).is_file()


def read_requirements(requirements: Iterable[str], files: Iterable[str | Path] = ()) -> RequirementsInput:
    into = RequirementsInput([], [])
    files = list(files)
    for text in split_requirement_args(requirements):
        if _names_a_file(text):
            files.append(text)
            continue
        into.requirements.append(_check_requirement(text, "command line"))
    for f in files:
        read_requirement_file(Path(f), into)
    if not into.requirements:
        raise AuditError("nothing to audit: give requirements (e.g. `invoke audit vllm`) or -r requirements.txt")
    return into


# --- the target -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    arch: str
    policy: str  # manylinux_X_Y
    pythons: tuple[str, ...]

    @classmethod
    def from_config(cls, config: Config, pythons: Iterable[str] | None = None) -> "Target":
        pys = tuple(pythons or config.pythons)
        for py in pys:
            if not re.fullmatch(r"3\.\d+", py):
                raise ConfigError(f"Python version {py!r} must look like 3.12 (target.pythons / --python)")
        policy = config.policy
        if policy == "best" and config.arch == host_arch():
            # --target host: this machine's glibc bounds the manylinux tags it accepts.
            glibc = (os.confstr("CS_GNU_LIBC_VERSION") or "glibc 2.17").split()[-1]
            policy = f"manylinux_2_{glibc.split('.')[1]}"
        if not re.fullmatch(r"manylinux_2_\d+", policy):
            raise ConfigError(
                f"target.policy is {config.policy!r}; the audit needs a manylinux_2_NN policy to know "
                f"which wheels a {config.arch} machine accepts"
            )
        return cls(config.arch, policy, tuple(sorted(set(pys), key=lambda v: tuple(map(int, v.split("."))))))

    @property
    def glibc_minor(self) -> int:
        return int(self.policy.rsplit("_", 1)[1])

    def platforms(self, *, allow_linux: bool) -> list[str]:
        """manylinux_2_39_riscv64 down to manylinux_2_17_riscv64 (most specific first)."""
        plats = [f"manylinux_2_{m}_{self.arch}" for m in range(self.glibc_minor, 16, -1)]
        # PyPI refuses linux_* uploads; our own index may still hold unrepaired wheels.
        return plats + ([f"linux_{self.arch}"] if allow_linux else [])

    @functools.cache
    def tag_priority(self, python: str, allow_linux: bool) -> dict[Tag, int]:
        """The tags a CPython ``python`` on the target accepts, mapped to pip's preference order."""
        ver = tuple(int(x) for x in python.split("."))
        interp = f"cp{ver[0]}{ver[1]}"
        plats = self.platforms(allow_linux=allow_linux)
        tags = list(cpython_tags(ver, abis=[interp], platforms=plats))
        tags += list(compatible_tags(ver, interp, plats))
        order: dict[Tag, int] = {}
        for t in tags:
            order.setdefault(t, len(order))
        return order

    def marker_env(self, python: str) -> dict[str, str]:
        return {
            "implementation_name": "cpython",
            "implementation_version": f"{python}.0",
            "os_name": "posix",
            "platform_machine": self.arch,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": f"{python}.0",
            "python_version": python,
            "sys_platform": "linux",
            "extra": "",
        }


# --- the on-disk cache ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FileRow:
    filename: str
    url: str
    sha256: str
    requires_python: str
    yanked: str | None  # None, or the reason ("" when no reason was given)
    kind: str  # wheel | sdist


class AuditCache:
    """cache/audit/index.sqlite: index pages (one row per file) and resolutions, with validators.

    One connection guarded by a lock: workers write the pages they fetched,
    readers query the files of one version without parsing whole pages again.
    """

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version != CACHE_SCHEMA:
            self.db.executescript("DROP TABLE IF EXISTS pages; DROP TABLE IF EXISTS files; "
                                  "DROP TABLE IF EXISTS resolutions;")
            self.db.execute(f"PRAGMA user_version={CACHE_SCHEMA}")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS pages (url TEXT PRIMARY KEY, status INTEGER, etag TEXT,
                last_modified TEXT, fetched REAL, max_age REAL, versions TEXT);
            CREATE TABLE IF NOT EXISTS files (page TEXT, version TEXT, data TEXT, PRIMARY KEY (page, version));
            CREATE TABLE IF NOT EXISTS resolutions (key TEXT PRIMARY KEY, created REAL, output TEXT);
            """
        )

    def page(self, url: str) -> dict | None:
        with self.lock:
            row = self.db.execute(
                "SELECT status, etag, last_modified, fetched, max_age, versions FROM pages WHERE url=?", (url,)
            ).fetchone()
        if not row:
            return None
        return dict(zip(("status", "etag", "last_modified", "fetched", "max_age", "versions"), row))

    def store_page(self, url: str, status: int, etag: str, last_modified: str, max_age: float,
                   versions: list[str], by_version: dict[str, list[str]]) -> None:
        """Replace a page: one row per version holding its files, one per line (see _file_line)."""
        with self.lock:
            self.db.execute("BEGIN")
            try:
                self.db.execute("DELETE FROM files WHERE page=?", (url,))
                self.db.executemany("INSERT INTO files VALUES (?,?,?)",
                                    ((url, v, "\n".join(lines)) for v, lines in by_version.items()))
                self.db.execute(
                    "INSERT OR REPLACE INTO pages VALUES (?,?,?,?,?,?,?)",
                    (url, status, etag, last_modified, time.time(), max_age, json.dumps(versions)),
                )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def touch_page(self, url: str, max_age: float) -> None:
        with self.lock:
            self.db.execute("UPDATE pages SET fetched=?, max_age=? WHERE url=?", (time.time(), max_age, url))

    def files(self, url: str, version: str) -> list[FileRow]:
        with self.lock:
            row = self.db.execute("SELECT data FROM files WHERE page=? AND version=?",
                                  (url, canonical_version(version))).fetchone()
        if not row or not row[0]:
            return []
        out = []
        for line in row[0].split("\n"):
            filename, file_url, sha256, requires_python, yanked, kind = line.split("\t")
            out.append(FileRow(filename, file_url, sha256, requires_python, None if yanked == "\0" else yanked, kind))
        return out

    def resolution(self, key: str, max_age: float) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT created, output FROM resolutions WHERE key=?", (key,)).fetchone()
        if row and time.time() - row[0] < max_age:
            return row[1]
        return None

    def store_resolution(self, key: str, output: str) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO resolutions VALUES (?,?,?)", (key, time.time(), output))

    def close(self) -> None:
        with self.lock:
            self.db.close()


@functools.lru_cache(maxsize=65536)
def canonical_version(v: str) -> str:
    return canonicalize_version(v)


# --- index pages (PEP 691 JSON, PEP 503 HTML as a fallback) -----------------------------


@dataclasses.dataclass
class Page:
    url: str
    status: int  # 200, or 404 when the index does not know the project
    versions: list[str]


class _AnchorParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.anchors.append(dict(attrs))


def _file_version(project: str, filename: str) -> tuple[str, str] | None:
    """(kind, version) of a distribution file name, or None for eggs, exes and the like."""
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        return ("wheel", parts[1]) if len(parts) in (5, 6) else None
    for suffix in SDIST_SUFFIXES:
        if filename.lower().endswith(suffix):
            stem = filename[: -len(suffix)]
            parts = stem.split("-")
            for i in range(1, len(parts)):
                if canonicalize_name("-".join(parts[:i])) == project:
                    return "sdist", "-".join(parts[i:])
            return ("sdist", parts[-1]) if len(parts) > 1 else None
    return None


_CLEAN = str.maketrans("\t\n\r", "   ")


def _group_files(project: str, files: Iterable[dict], base_url: str) -> tuple[dict[str, list[str]], list[str]]:
    """Files grouped by canonical version, each as one tab-separated line (cheap to store and read).

    Pages are big (torch's lists thousands of files): this runs for every file
    of every project, so it avoids per-file work that is not needed (urljoin
    only for relative links, version parsing cached).
    """
    by_version: dict[str, list[str]] = {}
    for f in files:
        fn = f["filename"]
        kv = _file_version(project, fn)
        if not kv:
            continue
        kind, version = kv
        version = canonical_version(version)
        yanked = f.get("yanked", False)
        yanked = "\0" if yanked is False or yanked is None else ("" if yanked is True else str(yanked))
        if kind == "sdist":  # only an sdist is ever downloaded (by new-recipe): keep its URL and hash
            url = f["url"] if "://" in f["url"] else urljoin(base_url, f["url"])
            sha256 = (f.get("hashes") or {}).get("sha256", "")
        else:
            url = sha256 = ""
        line = "\t".join((fn, url, sha256, f.get("requires-python") or "", yanked.translate(_CLEAN), kind))
        by_version.setdefault(version, []).append(line)
    return by_version, sorted(by_version)


def parse_json_page(project: str, body: bytes, url: str) -> tuple[dict[str, list[str]], list[str]]:
    data = json.loads(body)
    by_version, versions = _group_files(project, data.get("files", []), url)
    return by_version, data.get("versions") or versions


def parse_html_page(project: str, body: bytes, url: str) -> tuple[dict[str, list[str]], list[str]]:
    parser = _AnchorParser()
    parser.feed(body.decode("utf-8", "replace"))
    files = []
    for a in parser.anchors:
        href = a.get("href")
        if not href:
            continue
        link, _, fragment = href.partition("#")
        hashes = dict([fragment.split("=", 1)]) if "=" in fragment else {}
        yanked = a.get("data-yanked")
        files.append({
            "filename": unquote(urlsplit(link).path.rsplit("/", 1)[-1]),
            "url": link,
            "hashes": hashes,
            "requires-python": html.unescape(a.get("data-requires-python") or ""),
            "yanked": False if yanked is None else (yanked or True),
        })
    return _group_files(project, files, url)


def _max_age(headers, default: float) -> float:
    cc = (headers.get("Cache-Control") or "").lower()
    if "no-store" in cc or "no-cache" in cc:
        return 0.0
    m = re.search(r"max-age=(\d+)", cc)
    return float(m.group(1)) if m else default


class IndexClient:
    """Fetches project pages from several indexes concurrently; each page once per run."""

    def __init__(self, cache: AuditCache, *, concurrency: int, max_age: float, refresh: bool,
                 labels: dict[str, str]):
        self.cache = cache
        self.max_age = max_age
        self.refresh = refresh
        self.labels = labels  # index base URL -> the config key naming it (for messages)
        self.concurrency = concurrency
        self._session = None  # made on the first request: a warm run never imports requests
        self.pool = ThreadPoolExecutor(max_workers=max(concurrency, 1), thread_name_prefix="index")
        self.futures: dict[str, Future[Page]] = {}
        self.lock = threading.Lock()
        self.network_requests = 0

    @property
    def session(self):
        with self.lock:
            if self._session is None:
                from .._util import http

                self._session = http.session(retries=3, pool=max(self.concurrency, 4))
            return self._session

    @staticmethod
    def page_url(base: str, name: str) -> str:
        return f"{base.rstrip('/')}/{canonicalize_name(name)}/"

    def fetch(self, base: str, name: str) -> Future[Page]:
        url = self.page_url(base, name)
        with self.lock:
            fut = self.futures.get(url)
            if fut is None:
                fut = self.futures[url] = self.pool.submit(self._get, base, canonicalize_name(name), url)
        return fut

    def _get(self, base: str, name: str, url: str) -> Page:
        cached = self.cache.page(url)
        if cached and not self.refresh and time.time() - cached["fetched"] < cached["max_age"]:
            return Page(url, cached["status"], json.loads(cached["versions"]))
        if url.startswith("file://"):
            return self._get_file(name, url)
        headers = {"Accept": ACCEPT}
        if cached and cached["status"] == 200:
            if cached["etag"]:
                headers["If-None-Match"] = cached["etag"]
            if cached["last_modified"]:
                headers["If-Modified-Since"] = cached["last_modified"]
        import requests

        from .._util.http import DEFAULT_TIMEOUT

        try:
            resp = self.session.get(url, headers=headers, timeout=DEFAULT_TIMEOUT)
        except requests.RequestException as e:
            raise AuditError(
                f"cannot reach {base} ({self.labels.get(base, 'index')} in factory.toml): "
                f"{_short_reason(e)}; check the URL and the network"
            ) from None
        with self.lock:
            self.network_requests += 1
        max_age = _max_age(resp.headers, self.max_age)
        if resp.status_code == 304 and cached:
            self.cache.touch_page(url, max_age)
            return Page(url, cached["status"], json.loads(cached["versions"]))
        if resp.status_code in (404, 410):
            self.cache.store_page(url, 404, "", "", max_age, [], {})
            return Page(url, 404, [])
        if resp.status_code != 200:
            raise AuditError(
                f"{url} answered HTTP {resp.status_code} ({self.labels.get(base, 'index')} in factory.toml); "
                f"check the index URL or retry later"
            )
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            if ctype == PEP691_JSON or ctype.endswith("+json") or ctype == "application/json":
                rows, versions = parse_json_page(name, resp.content, resp.url)
            else:
                rows, versions = parse_html_page(name, resp.content, resp.url)
        except (ValueError, KeyError, TypeError) as e:
            raise AuditError(f"{url}: not a PEP 691/503 project page ({e}); is this a package index?") from None
        self.cache.store_page(url, 200, resp.headers.get("ETag", ""), resp.headers.get("Last-Modified", ""),
                              max_age, versions, rows)
        return Page(url, 200, versions)

    def _get_file(self, name: str, url: str) -> Page:
        """A static index on disk (file://…/simple): NAME/index.html (PEP 503)."""
        folder = Path(unquote(urlsplit(url).path))
        page = folder / "index.html"
        if not page.is_file():
            self.cache.store_page(url, 404, "", "", 0, [], {})
            return Page(url, 404, [])
        rows, versions = parse_html_page(name, page.read_bytes(), page.as_uri())
        self.cache.store_page(url, 200, "", "", 0, versions, rows)
        return Page(url, 200, versions)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self._session is not None:
            self._session.close()


def _short_reason(e: Exception) -> str:
    text = str(e)
    for pat in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                "Temporary failure in name resolution", "CERTIFICATE_VERIFY_FAILED"):
        if pat in text:
            return pat.lower() if pat != "CERTIFICATE_VERIFY_FAILED" else "TLS certificate not trusted"
    return text.splitlines()[0][:200] if text else type(e).__name__


# --- resolution -------------------------------------------------------------------------


@dataclasses.dataclass
class Pin:
    name: str  # canonical
    version: str  # "" for a direct URL reference
    marker: str  # "" when unconditional
    via: list[str]
    url: str = ""

    def pythons(self, target: Target) -> list[str]:
        if not self.marker:
            return list(target.pythons)
        m = Marker(self.marker)
        return [py for py in target.pythons if m.evaluate(target.marker_env(py))]


_SELECTING = re.compile(r"Selecting: ([A-Za-z0-9][A-Za-z0-9._-]*)==")


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        import shutil

        found = shutil.which("uv")
        if not found:
            from ..errors import EnvironmentProblem

            raise EnvironmentProblem("uv is not installed; `pip install uv` (it is a wheelfactory dependency)")
        return found


def _uv_env() -> dict[str, str]:
    """The environment minus uv settings that would change what is resolved (a bare resolve)."""
    keep = {"UV_CACHE_DIR", "UV_NATIVE_TLS", "UV_HTTP_TIMEOUT", "UV_CONCURRENT_DOWNLOADS",
            "UV_CONCURRENT_BUILDS", "UV_CONCURRENT_INSTALLS", "UV_OFFLINE"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_") or k in keep}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["NO_COLOR"] = "1"
    return env


def resolution_key(reqs: RequirementsInput, target: Target, indexes: list[str]) -> str:
    try:
        uv_version = importlib_metadata.version("uv")
    except importlib_metadata.PackageNotFoundError:
        uv_version = "?"
    blob = json.dumps([reqs.requirements, reqs.constraints, target.pythons[0], indexes, uv_version])
    return hashlib.sha256(blob.encode()).hexdigest()


def parse_compile_output(text: str) -> list[Pin]:
    pins = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("-"):
            continue
        body, _, note = line.partition("  # via ")
        if "#" in body:
            body, _, note2 = body.partition("#")
            note = note or note2.replace("via ", "", 1)
        req = Requirement(body.strip())
        version = ""
        for spec in req.specifier:
            if spec.operator in ("==", "==="):
                version = spec.version
        via = [v.strip() for v in note.split(",") if v.strip()]
        via = ["(requested)" if v.startswith("-r ") or v == "-r" else v for v in via]
        pins.append(Pin(canonicalize_name(req.name), version, str(req.marker) if req.marker else "", via,
                        req.url or ""))
    return pins


def resolve(reqs: RequirementsInput, target: Target, indexes: list[str], labels: dict[str, str], *,
            on_name=None, abort: threading.Event | None = None) -> str:
    """``uv pip compile --universal`` of the requirements; returns its requirements.txt output.

    ``on_name(name)`` is called for every package uv selects while it works, so
    index lookups start long before the resolution ends.
    """
    with tempfile.TemporaryDirectory(prefix="wf-audit-") as tmp:
        tmpd = Path(tmp)
        (tmpd / "requirements.in").write_text("\n".join(reqs.requirements) + "\n")
        argv = [uv_binary(), "pip", "compile", str(tmpd / "requirements.in"), "--universal",
                "--python-version", target.pythons[0], "--no-config", "--no-header", "--annotation-style",
                "line", "--color", "never", "--index-url", indexes[0], "-v"]
        for extra in indexes[1:]:
            argv += ["--extra-index-url", extra]
        if len(indexes) > 1:
            argv += ["--index-strategy", "unsafe-best-match"]  # pick across indexes as pip does
        if reqs.constraints:
            (tmpd / "constraints.txt").write_text("\n".join(reqs.constraints) + "\n")
            argv += ["-c", str(tmpd / "constraints.txt")]
        proc = subprocess.Popen(argv, cwd=tmpd, env=_uv_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        messages: list[str] = []

        def read_stderr():
            for line in proc.stderr:
                if line.startswith(("DEBUG", "TRACE", "INFO")):
                    m = _SELECTING.search(line)
                    if m and on_name:
                        on_name(m.group(1))
                    continue
                messages.append(line.rstrip())

        out_chunks: list[str] = []
        readers = [threading.Thread(target=read_stderr, daemon=True),
                   threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)]
        for t in readers:
            t.start()
        while True:
            if abort is not None and abort.is_set():
                proc.kill()
                proc.wait()
                return ""
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                continue
        for t in readers:
            t.join(timeout=10)
        if proc.returncode != 0:
            raise AuditError(_uv_failure(messages, indexes, labels))
        return "".join(out_chunks)


def _uv_failure(messages: list[str], indexes: list[str], labels: dict[str, str]) -> str:
    text = "\n".join(m for m in messages if m.strip() and not m.startswith("warning:"))
    m = re.search(r"Because ([A-Za-z0-9._-]+) was not found in the package registry", text)
    if m:
        return (f"unknown package '{m.group(1)}': no index has it ({', '.join(indexes)}); "
                f"check the spelling of the requirement")
    if "Connection refused" in text or "dns error" in text or "tcp connect error" in text or \
            "Failed to fetch" in text:
        m = re.search(r"Failed to fetch: (\S+)", text)
        url = m.group(1) if m else indexes[0]
        base = next((b for b in indexes if url.startswith(b.rstrip("/"))), indexes[0])
        return (f"cannot reach {base} ({labels.get(base, 'index')} in factory.toml) while resolving: "
                f"{'connection refused' if 'refused' in text else 'network error'}; check the URL and the network")
    if "No solution found" in text:
        causes = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(("cause:", "╰─▶", "Because", "And because"))]
        detail = " ".join(c.removeprefix("cause:").removeprefix("╰─▶").strip() for c in causes) or text
        return f"the requirements cannot be satisfied: {detail}"
    tail = "\n  ".join(text.splitlines()[-15:])
    return f"uv pip compile failed:\n  {tail}"


# --- classification ---------------------------------------------------------------------


@dataclasses.dataclass
class PythonVerdict:
    source: str  # pypi | ours | pure | sdist | none
    filename: str = ""
    tag: str = ""
    build: str = ""


@dataclasses.dataclass
class PackageReport:
    name: str
    version: str
    pythons: list[str]
    status: str
    detail: str
    via: list[str]
    per_python: dict[str, PythonVerdict]
    sdist: dict | None
    recipe: dict | None  # {"path", "version", "matches"} when recipes/NAME exists
    marker: str = ""
    only_via_missing: bool = False  # every package that needs it lacks riscv64 wheels itself

    @property
    def needs_recipe(self) -> bool:
        return self.status in NEEDS and self.recipe is None

    def to_json(self) -> dict:
        d = dict(vars(self))
        d["per_python"] = {py: dict(vars(v)) for py, v in self.per_python.items()}
        d["needs_recipe"] = self.needs_recipe
        return d


NEEDS = ("needs-recipe", "needs-git-recipe")
STATUS_ORDER = ["needs-git-recipe", "needs-recipe", "direct-url", "our-wheel", "pypi-wheel", "pure", "ignored"]
STATUS_TEXT = {
    "pypi-wheel": "riscv64 wheel on PyPI",
    "our-wheel": "wheel in our index",
    "pure": "pure Python",
    "needs-recipe": "sdist only: needs a recipe",
    "needs-git-recipe": "nothing installable: needs a recipe from git",
    "direct-url": "direct URL (not checked)",
    "ignored": "ignored (audit.ignore)",
}
STATUS_SHORT = {
    "pypi-wheel": "PyPI wheel", "our-wheel": "our wheel", "pure": "pure Python", "needs-recipe": "sdist only",
    "needs-git-recipe": "nothing installable", "direct-url": "direct URL", "ignored": "ignored",
}
STATUS_STYLE = {"pypi-wheel": "green", "our-wheel": "cyan", "pure": "green", "needs-recipe": "red",
                "needs-git-recipe": "red bold", "direct-url": "yellow", "ignored": "dim"}


def best_wheel(files: list[FileRow], priority: dict[Tag, int], python: str) -> tuple[FileRow, Tag, str] | None:
    """The wheel pip would pick on the target: best tag priority, then the highest build tag."""
    best, best_key = None, None
    py_full = f"{python}.0"
    arch = re.sub(r"^(manylinux_\d+_\d+|linux)_", "", next(iter(priority)).platform) if priority else ""
    for f in files:
        if f.kind != "wheel" or f.yanked is not None:
            continue
        # Cheap first: a wheel for the target names its arch or is "any" (parsing tags is the slow part).
        if arch not in f.filename and not f.filename.endswith("-any.whl"):
            continue
        try:
            _, _, build, tags = parse_wheel_filename(f.filename)
        except InvalidWheelFilename:
            continue
        ranks = [(priority[t], t) for t in tags if t in priority]
        if not ranks:
            continue
        if f.requires_python:
            try:
                if not SpecifierSet(f.requires_python).contains(py_full, prereleases=True):
                    continue
            except InvalidSpecifier:
                pass
        rank, tag = min(ranks, key=lambda x: x[0])
        key = (rank, -(build[0] if build else -1))
        if best_key is None or key < best_key:
            best, best_key = (f, tag, f"{build[0]}{build[1]}" if build else ""), key
    return best


def classify(pin: Pin, pythons: list[str], target: Target, pypi_files: list[FileRow],
             our_files: list[FileRow], recipes_root: Path, ignore: list[str]) -> PackageReport:
    recipe = _recipe_info(recipes_root, pin.name, pin.version)
    sdists = [f for f in pypi_files + our_files if f.kind == "sdist" and f.yanked is None] or \
             [f for f in pypi_files + our_files if f.kind == "sdist"]
    sdist = dataclasses.asdict(sdists[0]) if sdists else None
    if any(fnmatch.fnmatchcase(pin.name, pat) for pat in ignore):
        return PackageReport(pin.name, pin.version, pythons, "ignored", "matches audit.ignore", pin.via, {},
                             sdist, recipe, pin.marker)
    if pin.url:
        return PackageReport(pin.name, pin.url, pythons, "direct-url", pin.url, pin.via, {}, None, recipe, pin.marker)
    per: dict[str, PythonVerdict] = {}
    for py in pythons:
        up = best_wheel(pypi_files, target.tag_priority(py, False), py)
        ours = best_wheel(our_files, target.tag_priority(py, True), py)
        if up and up[1].platform != "any":
            per[py] = PythonVerdict("pypi", up[0].filename, str(up[1]), up[2])
        elif ours and (ours[1].platform != "any" or not up):
            per[py] = PythonVerdict("ours", ours[0].filename, str(ours[1]), ours[2])
        elif up:
            per[py] = PythonVerdict("pure", up[0].filename, str(up[1]), up[2])
        else:
            per[py] = PythonVerdict("sdist" if sdist else "none")
    sources = {v.source for v in per.values()}
    missing = [py for py, v in per.items() if v.source in ("sdist", "none")]
    if missing:
        status = "needs-recipe" if sdist else "needs-git-recipe"
        covered = [f"{py}: {per[py].tag}" for py in pythons if py not in missing]
        detail = (f"sdist {sdist['filename']}" if sdist else "no sdist and no riscv64 wheel on any index")
        if covered:
            detail += f"; no wheel for Python {', '.join(missing)} (has {'; '.join(covered)})"
    elif "ours" in sources:
        status = "our-wheel"
        detail = _per_python_detail(per, lambda v: v.filename)
    elif sources == {"pure"}:
        status = "pure"
        detail = _per_python_detail(per, lambda v: v.tag)
        if any(f.kind == "wheel" and not f.filename.endswith("-any.whl") for f in pypi_files):
            detail += " (a fallback: compiled wheels exist for other platforms)"
    else:
        status = "pypi-wheel"
        detail = _tags_detail(per)
    if status == "pypi-wheel" and recipe:
        detail += f" — upstream ships {target.arch} wheels: recipes/{pin.name} can be dropped"
    if not pythons:
        status, detail = "ignored", "not needed on the target (marker)"
    return PackageReport(pin.name, pin.version, pythons, status, detail, pin.via, per, sdist, recipe, pin.marker)


def _tags_detail(per: dict[str, PythonVerdict]) -> str:
    """``manylinux_2_39_riscv64: cp311-cp311, cp312-cp312`` rather than one full tag per Python."""
    by_platform: dict[str, list[str]] = {}
    for v in per.values():
        interp, abi, plat = v.tag.split("-")
        key = f"{plat}{' (pure fallback)' if v.source == 'pure' else ''}"
        if f"{interp}-{abi}" not in by_platform.setdefault(key, []):
            by_platform[key].append(f"{interp}-{abi}")
    return "; ".join(f"{plat}: {', '.join(ia)}" for plat, ia in by_platform.items())


def _per_python_detail(per: dict[str, PythonVerdict], show) -> str:
    values = {show(v) for v in per.values()}
    if len(values) == 1:
        return values.pop()
    return "; ".join(f"{py}: {show(v)}" for py, v in per.items())


def _recipe_info(recipes_root: Path, name: str, version: str) -> dict | None:
    path = recipes_root / name / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        r = parse_recipe(path)
        rv = r.version
    except FactoryError:
        rv = "?"
    return {"path": str(path), "version": rv,
            "matches": bool(version) and rv != "?" and canonical_version(rv) == canonical_version(version)}


# --- the audit ---------------------------------------------------------------------------


@dataclasses.dataclass
class AuditResult:
    target: Target
    requirements: RequirementsInput
    packages: list[PackageReport]
    indexes: dict[str, str]
    seconds: float
    cached_resolution: bool
    network_requests: int

    @property
    def missing(self) -> list[PackageReport]:
        return [p for p in self.packages if p.needs_recipe]

    def summary(self) -> dict[str, int]:
        counts = {s: 0 for s in STATUS_ORDER}
        for p in self.packages:
            counts[p.status] += 1
        counts["with-recipe"] = sum(1 for p in self.packages if p.status in NEEDS and p.recipe)
        counts["total"] = len(self.packages)
        return counts

    def to_json(self) -> dict:
        return {
            "target": {"arch": self.target.arch, "policy": self.target.policy, "pythons": list(self.target.pythons)},
            "requirements": self.requirements.requirements,
            "constraints": self.requirements.constraints,
            "indexes": self.indexes,
            "packages": [p.to_json() for p in self.packages],
            "summary": self.summary(),
            "needs_recipe": [p.name for p in self.missing],
            "seconds": round(self.seconds, 3),
        }


def audit_indexes(config: Config) -> tuple[str, list[str], dict[str, str]]:
    """(PyPI URL, our index URLs, URL -> config key) from [audit] and [indexes]."""
    pypi = config.audit.pypi_url.rstrip("/")
    labels = {pypi: "audit.pypi-url"}
    ours: list[str] = []
    if config.audit.our_index:
        ours = [config.audit.our_index.rstrip("/")]
        labels[ours[0]] = "audit.our-index"
    else:
        for url in config.indexes.install:
            u = url.rstrip("/")
            if u != pypi and u not in ("https://pypi.org/simple", "https://pypi.python.org/simple"):
                ours.append(u)
                labels[u] = "indexes.install"
    return pypi, ours, labels


def run_audit(config: Config, reqs: RequirementsInput, *, pythons: list[str] | None = None,
              refresh: bool = False, progress: bool = True) -> AuditResult:
    started = time.monotonic()
    target = Target.from_config(config, pythons)
    pypi, ours, labels = audit_indexes(config)
    indexes = [pypi, *ours]
    cache = AuditCache(config.paths.cache / "audit" / "index.sqlite")
    max_age = float(config.audit.max_age)
    client = IndexClient(cache, concurrency=config.audit.concurrency, max_age=max_age, refresh=refresh,
                         labels=labels)
    ui_progress = _Progress(enabled=progress)
    try:
        with ui_progress:
            return _audit(config, reqs, target, pypi, ours, labels, cache, client, ui_progress, refresh,
                          max_age, started)
    finally:
        client.close()
        cache.close()


def _audit(config, reqs, target, pypi, ours, labels, cache, client, prog, refresh, max_age, started):
    indexes = [pypi, *ours]

    def lookup(name: str) -> None:
        for base in indexes:
            client.fetch(base, name)

    # The requested projects first: an unknown name or a dead index shows within a second.
    top = [n for n, r in ((canonicalize_name(Requirement(r).name), Requirement(r)) for r in reqs.requirements)
           if not r.url]
    for name in top:
        lookup(name)

    key = resolution_key(reqs, target, indexes)
    output = None if refresh else cache.resolution(key, max_age)
    cached_resolution = output is not None
    if output is None:
        prog.start_resolve()
        seen: set[str] = set()

        def on_name(name: str) -> None:
            name = canonicalize_name(name)
            if name not in seen:
                seen.add(name)
                prog.resolved(len(seen))
                lookup(name)

        abort = threading.Event()
        errors: list[BaseException] = []

        def check_top():
            for name in top:
                try:
                    pages = [client.fetch(b, name).result() for b in indexes]
                except AuditError as e:
                    errors.append(e)
                    abort.set()
                    return
                if all(p.status == 404 for p in pages):
                    errors.append(AuditError(
                        f"unknown package '{name}': not on {pypi}"
                        + (f" nor on {', '.join(ours)}" if ours else "")
                        + "; check the spelling of the requirement"))
                    abort.set()
                    return

        checker = threading.Thread(target=check_top, daemon=True)
        checker.start()
        try:
            output = resolve(reqs, target, indexes, labels, on_name=on_name, abort=abort)
        except AuditError:
            checker.join(timeout=30)
            if errors:  # our own, clearer finding about the same cause
                raise errors[0] from None
            raise
        checker.join(timeout=30)
        if errors:
            raise errors[0]
        cache.store_resolution(key, output)
        prog.end_resolve()
    pins = parse_compile_output(output)

    # Which pins apply on the target, per Python; a package may be pinned twice (forks by version).
    wanted: list[tuple[Pin, list[str]]] = []
    for pin in pins:
        pys = pin.pythons(target)
        if pys:
            wanted.append((pin, pys))
            if not pin.url:
                lookup(pin.name)
    prog.start_check(len(wanted))
    recipes_root = config.paths.recipes
    ignore = list(config.audit.ignore)
    reports = []
    for pin, pys in wanted:
        pypi_page = client.fetch(pypi, pin.name).result() if not pin.url else None
        our_pages = [client.fetch(b, pin.name).result() for b in ours] if not pin.url else []
        pypi_files = cache.files(pypi_page.url, pin.version) if pypi_page and pypi_page.status == 200 else []
        our_files = [f for p in our_pages if p.status == 200 for f in cache.files(p.url, pin.version)]
        reports.append(classify(pin, pys, target, pypi_files, our_files, recipes_root, ignore))
        prog.checked()
    _mark_only_via_missing(reports)
    reports.sort(key=lambda r: (STATUS_ORDER.index(r.status), r.name, r.version))
    return AuditResult(target, reqs, reports, {"pypi": pypi, "ours": ", ".join(ours)},
                       time.monotonic() - started, cached_resolution, client.network_requests)


def _mark_only_via_missing(reports: list[PackageReport]) -> None:
    """Flag packages wanted only by packages that need a recipe themselves.

    Their presence comes from the x86_64 metadata of those packages (torch's
    CUDA wheels name nvidia-* dependencies); a riscv64 build from source may
    not need them at all, so they are worth triage before a recipe.
    """
    missing = {r.name for r in reports if r.status in NEEDS}
    changed = True
    while changed:
        changed = False
        for r in reports:
            if r.status in NEEDS and not r.only_via_missing and r.via and "(requested)" not in r.via \
                    and all(v in missing and v != r.name for v in r.via):
                parents = [p for p in reports if p.name in r.via]
                if parents and all(p.status in NEEDS for p in parents):
                    r.only_via_missing = True
                    changed = True


class _Progress:
    """Progress on stderr while uv resolves and while the indexes are checked."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.progress = None
        self.resolve_task = self.check_task = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, \
                TimeElapsedColumn

            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), console=ui.console, transient=True)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.__exit__(*exc)

    def start_resolve(self):
        if self.progress:
            self.resolve_task = self.progress.add_task("resolving the tree (uv, universal)", total=None)

    def resolved(self, n: int):
        if self.progress and self.resolve_task is not None:
            self.progress.update(self.resolve_task, completed=n,
                                 description=f"resolving the tree (uv, universal): {n} packages")

    def end_resolve(self):
        if self.progress and self.resolve_task is not None:
            self.progress.update(self.resolve_task, total=1, completed=1)

    def start_check(self, total: int):
        if self.progress:
            self.check_task = self.progress.add_task("checking PyPI and our index", total=total)

    def checked(self):
        if self.progress and self.check_task is not None:
            self.progress.advance(self.check_task)


# --- output --------------------------------------------------------------------------------


def print_table(result: AuditResult) -> None:
    from rich.table import Table

    t = result.target
    # A report piped to a file or a CI log keeps its columns readable.
    width = None if ui.console.is_terminal else max(ui.console.width, 160)
    table = Table(title=f"{t.arch} {t.policy}, CPython {', '.join(t.pythons)}: "
                        f"{len(result.packages)} packages", title_justify="left", width=width)
    table.add_column("package", no_wrap=True)
    table.add_column("version", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold", ratio=3)
    table.add_column("recipe")
    table.add_column("via", overflow="fold", ratio=2)
    for p in result.packages:
        pys = "" if p.pythons == list(t.pythons) else f" (py {', '.join(p.pythons)})"
        if p.recipe:
            rec = f"recipes/{p.name} ({p.recipe['version']})" + ("" if p.recipe["matches"] or not p.version
                                                                 else " [yellow]≠ resolved[/yellow]")
        else:
            rec = "[red]missing[/red]" if p.status in NEEDS else ""
        style = STATUS_STYLE.get(p.status, "")
        detail = p.detail + (" [dim](only needed by packages that lack riscv64 wheels themselves)[/dim]"
                             if p.only_via_missing else "")
        table.add_row(p.name, p.version + pys, f"[{style}]{STATUS_SHORT[p.status]}[/{style}]", detail, rec,
                      ", ".join(p.via[:4]) + (" …" if len(p.via) > 4 else ""))
    ui.console.print(table)
    s = result.summary()
    ui.console.print(
        f"{s['total']} packages: {s['pypi-wheel']} with riscv64 wheels on PyPI, {s['our-wheel']} in our index, "
        f"{s['pure']} pure Python, {s['needs-recipe']} sdist only, {s['needs-git-recipe']} with nothing "
        f"installable ({s['with-recipe']} of those have a recipe)"
        + (f", {s['ignored']} ignored" if s["ignored"] else "")
        + f"  [{result.seconds:.1f}s{', cached resolution' if result.cached_resolution else ''}]"
    )
    if result.missing:
        names = sorted({p.name for p in result.missing})
        ui.console.print(f"[red]needs a recipe:[/red] {', '.join(names)}  "
                         f"(`invoke audit … --write-recipes` scaffolds them)")


def audit_command(requirements: Iterable[str] = (), *, requirement_files: Iterable[str] = (),
                  root: Path | str | None = None, json_output: bool = False, write_recipes: bool = False,
                  pythons: Iterable[str] | None = None, refresh: bool = False) -> int:
    """`invoke audit`: resolve, classify, print; exit 2 when a package still needs a recipe."""
    config = load_config(root)
    reqs = read_requirements(requirements, requirement_files)
    result = run_audit(config, reqs, pythons=list(pythons) if pythons else None, refresh=refresh,
                       progress=ui.console.is_terminal or not json_output)
    written: list[Path] = []
    if write_recipes and result.missing:
        from . import scaffold

        written = scaffold.write_missing_recipes(config, result.missing)
    if json_output:
        doc = result.to_json()
        doc["written_recipes"] = [str(p) for p in written]
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        print_table(result)
    for p in written:
        ui.info(f"scaffolded {p}")
    still_missing = [p for p in result.missing if not (config.paths.recipes / p.name / RECIPE_FILE).is_file()]
    return EXIT_MISSING if still_missing else 0


def main(argv: list[str] | None = None, *, root: Path | str | None = None) -> int:
    """Command-line form (``python -m wheelfactory.audit``), same options as `invoke audit`."""
    ap = argparse.ArgumentParser(prog="wheelfactory.audit")
    ap.add_argument("requirements", nargs="*")
    ap.add_argument("-r", "--requirement", action="append", default=[], dest="files")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--write-recipes", action="store_true")
    ap.add_argument("--python", action="append", default=[])
    ap.add_argument("--refresh", action="store_true")
    a = ap.parse_args(argv)
    return audit_command(a.requirements, requirement_files=a.files, root=root, json_output=a.json,
                         write_recipes=a.write_recipes, pythons=a.python or None, refresh=a.refresh)


if __name__ == "__main__":
    from .. import cli

    cli.run(main, sys.argv[1:])
