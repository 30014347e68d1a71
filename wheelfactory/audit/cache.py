"""Where the audit's index pages come from, and how they are kept between runs.

``cache/audit/index.sqlite`` holds project pages (one row per version with
its files, plus the page's ETag, Last-Modified, fetch time and max-age) and uv
resolutions. :class:`CachedIndex` fetches pages through ``_util.simple_api``
concurrently, each at most once per run; a page is reused without a request
while fresh (Cache-Control max-age, else ``audit.max-age``) and revalidated
with If-None-Match / If-Modified-Since after that (a 304 keeps the rows).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from packaging.utils import canonicalize_version

from .._util.simple_api import Client, ProjectFile, ProjectPage, project_url
from ..settings.factory import Config
from .requirements import AuditError

CACHE_SCHEMA = 4  # bump when the cached rows change shape
PYPI_ALIASES = ("https://pypi.org/simple", "https://pypi.python.org/simple")


def audit_indexes(config: Config) -> tuple[str, list[str], dict[str, str]]:
    """(PyPI URL, our index URLs, URL -> where it is set) from [audit] and [indexes].

    Our index is ``audit.our-index``, else the non-PyPI entries of ``indexes.install``.
    """
    pypi = config.audit.pypi_url.rstrip("/")
    labels = {pypi: "audit.pypi-url in factory.toml"}
    ours: list[str] = []
    if config.audit.our_index:
        ours = [config.audit.our_index.rstrip("/")]
        labels[ours[0]] = "audit.our-index in factory.toml"
    else:
        for url in config.indexes.install:
            u = url.rstrip("/")
            if u != pypi and u not in PYPI_ALIASES:
                ours.append(u)
                labels[u] = "indexes.install in factory.toml"
    return pypi, ours, labels


@functools.lru_cache(maxsize=65536)
def canonical_version(v: str) -> str:
    """``packaging.utils.canonicalize_version``, cached: it runs for every file of every page."""
    return canonicalize_version(v)


_CLEAN = str.maketrans("\t\n\r", "   ")
_NOT_YANKED = "\0"


def _file_line(f: ProjectFile) -> str:
    """One file as a tab-separated line (cheap to store and read back).

    Only an sdist is ever downloaded (by new-recipe): wheels keep no URL or hash.
    """
    url, sha256 = (f.url, f.sha256) if f.kind == "sdist" else ("", "")
    yanked = _NOT_YANKED if f.yanked is None else f.yanked.translate(_CLEAN)
    return "\t".join((f.filename, url, sha256, f.requires_python.translate(_CLEAN), yanked, f.kind, f.version))


def _file_from_line(line: str) -> ProjectFile:
    filename, url, sha256, requires_python, yanked, kind, version = line.split("\t")
    return ProjectFile(filename, url, sha256, requires_python, None if yanked == _NOT_YANKED else yanked, kind,
                       version)


class AuditCache:
    """cache/audit/index.sqlite: index pages (one row per version) and resolutions, with validators.

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

    def store_page(self, page: ProjectPage, max_age: float) -> None:
        """Replace a page (200 or 404): one row per canonical version holding its files."""
        by_version: dict[str, list[str]] = {}
        for f in page.files:
            by_version.setdefault(canonical_version(f.version), []).append(_file_line(f))
        with self.lock:
            self.db.execute("BEGIN")
            try:
                self.db.execute("DELETE FROM files WHERE page=?", (page.url,))
                self.db.executemany("INSERT INTO files VALUES (?,?,?)",
                                    ((page.url, v, "\n".join(lines)) for v, lines in by_version.items()))
                self.db.execute(
                    "INSERT OR REPLACE INTO pages VALUES (?,?,?,?,?,?,?)",
                    (page.url, page.status, page.etag, page.last_modified, time.time(), max_age,
                     json.dumps(page.versions)),
                )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def touch_page(self, url: str, max_age: float) -> None:
        with self.lock:
            self.db.execute("UPDATE pages SET fetched=?, max_age=? WHERE url=?", (time.time(), max_age, url))

    def files(self, url: str, version: str) -> list[ProjectFile]:
        """The files of one version (any spelling: 1.0 = 1.0.0) of a stored page."""
        with self.lock:
            row = self.db.execute("SELECT data FROM files WHERE page=? AND version=?",
                                  (url, canonical_version(version))).fetchone()
        if not row or not row[0]:
            return []
        return [_file_from_line(line) for line in row[0].split("\n")]

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


@dataclasses.dataclass
class Page:
    """A project page as the audit sees it: its files stay in the cache (``AuditCache.files``)."""

    url: str
    status: int  # 200, or 404 when the index does not know the project
    versions: list[str]


class CachedIndex:
    """Project pages of several indexes, fetched concurrently through the cache; each page once per run."""

    def __init__(self, cache: AuditCache, *, concurrency: int, max_age: float, refresh: bool,
                 labels: dict[str, str]):
        self.cache = cache
        self.max_age = max_age
        self.refresh = refresh
        # labels: index base URL -> where it is set (for messages)
        self.client = Client(sources=labels, pool=max(concurrency, 4), retries=3, error=AuditError)
        self.pool = ThreadPoolExecutor(max_workers=max(concurrency, 1), thread_name_prefix="index")
        self.futures: dict[str, Future[Page]] = {}
        self.lock = threading.Lock()

    @property
    def network_requests(self) -> int:
        return self.client.requests

    def fetch(self, base: str, name: str) -> Future[Page]:
        """The page of ``name`` on ``base``, as a future (started at most once per URL)."""
        url = project_url(base, name)
        with self.lock:
            fut = self.futures.get(url)
            if fut is None:
                fut = self.futures[url] = self.pool.submit(self._get, base, name, url)
        return fut

    def _get(self, base: str, name: str, url: str) -> Page:
        cached = self.cache.page(url)
        if cached and not self.refresh and time.time() - cached["fetched"] < cached["max_age"]:
            return Page(url, cached["status"], json.loads(cached["versions"]))
        valid = cached if cached and cached["status"] == 200 else {"etag": "", "last_modified": ""}
        page = self.client.page(base, name, etag=valid["etag"], last_modified=valid["last_modified"])
        max_age = self.max_age if page.max_age is None else page.max_age
        if page.status == 304 and cached:
            self.cache.touch_page(url, max_age)
            return Page(url, cached["status"], json.loads(cached["versions"]))
        self.cache.store_page(page, max_age)
        return Page(url, page.status, page.versions)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
