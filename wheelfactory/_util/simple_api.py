"""The PEP 503/691 simple API: one client for the project pages of package indexes.

Every stage that asks an index about a project goes through :class:`Client`:
the audit (behind its on-disk cache, ``audit/cache.py``), ``new-recipe``,
``outdated`` and ``bump``, and the clean-install check's reachability probe.

The rules, in one place:

* A page is asked for as PEP 691 JSON, with PEP 503 HTML as the fallback
  (content negotiation, PEP 691); ``json_only`` refuses an HTML answer. A
  ``file://`` index is a folder holding ``NAME/index.html`` (PEP 503).
* A 404 or 410 means "no such project"; a 304 answers a conditional request
  (``etag``/``last_modified``). Retries (5xx, resets, timeouts) are
  ``_util.http``'s; anything else is one error naming the index, where it is
  configured and the fix.
* File names are parsed by ``packaging.utils`` (wheel and sdist name rules);
  an sdist may also end in the older suffixes pip still installs (``.tar.bz2``,
  ``.tgz``, …). Files of another project, eggs, installers and names packaging
  refuses are left out, as pip leaves them out. A wheel's tags are parsed only
  where it is matched (:meth:`ProjectFile.wheel_tags`).
* Yanked files (PEP 592) stay, with their reason; callers decide.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import threading
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urljoin, urlsplit

from packaging.tags import Tag
from packaging.utils import (
    BuildTag,
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from ..errors import FactoryError

PEP691_JSON = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{PEP691_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
# Archive suffixes pip accepts for an sdist; packaging parses the name-version part.
SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".txz", ".tbz", ".tar")


class ProjectFile(NamedTuple):
    """One file of a project page (a NamedTuple: pages hold thousands, made fast)."""

    filename: str
    url: str  # absolute
    sha256: str  # "" when the index gives none
    requires_python: str  # "" when not given
    yanked: str | None  # None, or the reason ("" when none was given)
    kind: str  # "wheel" | "sdist"
    version: str  # as packaging spells it (``str(Version)``)

    def wheel_tags(self) -> tuple[BuildTag, frozenset[Tag]] | None:
        """(build tag, tags) of a wheel, by ``packaging.utils.parse_wheel_filename``; None for an sdist
        or a wheel name packaging refuses."""
        if self.kind != "wheel":
            return None
        try:
            return parse_wheel_filename(self.filename)[2:]
        except InvalidWheelFilename:
            return None


@dataclasses.dataclass
class ProjectPage:
    """A project page: ``status`` 200, 404 (no such project) or 304 (not modified; no files)."""

    url: str
    status: int
    files: list[ProjectFile] = dataclasses.field(default_factory=list)
    versions: list[str] = dataclasses.field(default_factory=list)  # PEP 700's list, else the files'
    etag: str = ""
    last_modified: str = ""
    max_age: float | None = None  # seconds, from Cache-Control; None when it says nothing


def project_url(base: str, project: str) -> str:
    """``BASE/NAME/`` with the PEP 503-normalized name."""
    return f"{base.rstrip('/')}/{canonicalize_name(project)}/"


def file_version(project: str, filename: str) -> tuple[str, str] | None:
    """(kind, version) of a distribution file of ``project`` (canonical name), else None.

    A wheel's tags are not parsed here (see :func:`_release`); they are, by
    :meth:`ProjectFile.wheel_tags`, where a wheel is matched to a target.
    """
    if filename.endswith(".whl"):
        parts = filename.split("-", 2)
        if len(parts) < 3 or filename.count("-") not in (4, 5):  # NAME-VERSION[-BUILD]-PY-ABI-PLATFORM.whl
            return None
        release, kind = _release(f"{parts[0]}-{parts[1]}"), "wheel"
    else:
        suffix = next((s for s in SDIST_SUFFIXES if filename.lower().endswith(s)), None)
        if suffix is None:
            return None
        try:
            name, version = parse_sdist_filename(filename[: -len(suffix)] + ".tar.gz")
        except InvalidSdistFilename:
            return None
        release, kind = (name, str(version)), "sdist"
    return (kind, release[1]) if release and release[0] == project else None


@functools.lru_cache(maxsize=65536)
def _release(name_version: str) -> tuple[str, str] | None:
    """(canonical name, version) of a wheel's ``NAME-VERSION`` part, by packaging's wheel-name rules.

    Cached per release: a page repeats it for every tag (torch lists ~1,000
    wheels), and parsing every file's tags too made reading the pages of a
    vllm tree three times slower.
    """
    try:
        name, version, _, _ = parse_wheel_filename(f"{name_version}-py3-none-any.whl")
    except InvalidWheelFilename:
        return None
    return name, str(version)


def _files(project: str, entries: Iterable[Mapping], page_url: str) -> list[ProjectFile]:
    """PEP 691 file entries (dicts) as ProjectFiles, leaving out what is not a file of ``project``.

    Runs for every file of every page (tens of thousands for a big tree): kept lean.
    """
    out = []
    for f in entries:
        filename = f["filename"]
        kv = file_version(project, filename)
        if kv is None:
            continue
        url = f["url"]
        if "://" not in url:
            url = urljoin(page_url, url)
        hashes = f.get("hashes")
        yanked = f.get("yanked")
        out.append(ProjectFile(filename, url, hashes.get("sha256", "") if hashes else "",
                               f.get("requires-python") or "",
                               None if yanked is None or yanked is False else "" if yanked is True else str(yanked),
                               kv[0], kv[1]))
    return out


def _file_versions(files: list[ProjectFile]) -> list[str]:
    return sorted({f.version for f in files})


def parse_json_page(project: str, body: bytes, url: str) -> tuple[list[ProjectFile], list[str]]:
    """A PEP 691 JSON project page: (files, versions). Raises ValueError/KeyError/TypeError if it is not one."""
    data = json.loads(body)
    files = _files(canonicalize_name(project), data.get("files", []), url)
    return files, list(data.get("versions") or _file_versions(files))


class _AnchorParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.anchors.append(dict(attrs))


def parse_html_page(project: str, body: bytes, url: str) -> tuple[list[ProjectFile], list[str]]:
    """A PEP 503 HTML project page (hash fragments, data-requires-python, data-yanked): (files, versions)."""
    parser = _AnchorParser()
    parser.feed(body.decode("utf-8", "replace"))
    entries = []
    for a in parser.anchors:
        href = a.get("href")
        if not href:
            continue
        link, _, fragment = href.partition("#")
        yanked = a.get("data-yanked")
        entries.append({
            "filename": unquote(urlsplit(link).path.rsplit("/", 1)[-1]),
            "url": link,
            "hashes": dict([fragment.split("=", 1)]) if "=" in fragment else {},
            "requires-python": a.get("data-requires-python") or "",
            "yanked": False if yanked is None else (yanked or True),
        })
    files = _files(canonicalize_name(project), entries, url)
    return files, _file_versions(files)


def cache_max_age(headers: Mapping[str, str]) -> float | None:
    """Seconds a response may be reused (Cache-Control): 0 for no-store/no-cache, None when unsaid."""
    cc = (headers.get("Cache-Control") or "").lower()
    if "no-store" in cc or "no-cache" in cc:
        return 0.0
    m = re.search(r"max-age=(\d+)", cc)
    return float(m.group(1)) if m else None


def short_reason(e: Exception) -> str:
    """The part of a connection error a user can act on ("connection refused"), not urllib3's repr."""
    text = str(e)
    for pat in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                "Temporary failure in name resolution", "CERTIFICATE_VERIFY_FAILED"):
        if pat in text:
            return pat.lower() if pat != "CERTIFICATE_VERIFY_FAILED" else "TLS certificate not trusted"
    return text.splitlines()[0][:200] if text else type(e).__name__


def _is_json(content_type: str) -> bool:
    return content_type == PEP691_JSON or content_type.endswith("+json") or content_type == "application/json"


class Client:
    """Project pages of any number of indexes, over one pooled HTTP session (thread-safe).

    ``sources`` maps an index base URL to where it is configured
    (``"audit.pypi-url in factory.toml"``, ``"--index"``), for messages.
    Failures raise ``error`` (the caller's FactoryError subclass).
    """

    def __init__(self, *, sources: Mapping[str, str] | None = None, json_only: bool = False,
                 retries: int = 3, pool: int = 16, error: type[FactoryError] = FactoryError):
        self.sources = dict(sources or {})
        self.json_only = json_only
        self.error = error
        self.requests = 0  # HTTP requests made (file:// pages are not requests)
        self._retries, self._pool = retries, pool
        self._session = None
        self._timeout: tuple[float, float] | None = None
        self._lock = threading.Lock()

    def source(self, base: str) -> str:
        return self.sources.get(base.rstrip("/"), "index in factory.toml")

    @property
    def session(self):
        with self._lock:
            if self._session is None:
                # Imported on the first request, for start-up speed: a warm audit never imports requests.
                from . import http

                self._session = http.session(retries=self._retries, pool=self._pool)
                self._timeout = http.DEFAULT_TIMEOUT
            return self._session

    def page(self, base: str, project: str, *, etag: str = "", last_modified: str = "") -> ProjectPage:
        """The project page of ``project`` on the index ``base``; a 304 when the validators still hold."""
        url = project_url(base, project)
        if url.startswith("file://"):
            return self._file_page(project, url)
        headers = {"Accept": ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        resp = self._get(base, url, headers)
        max_age = cache_max_age(resp.headers)
        if resp.status_code == 304:
            return ProjectPage(url, 304, max_age=max_age)
        if resp.status_code in (404, 410):
            return ProjectPage(url, 404, max_age=max_age)
        if resp.status_code != 200:
            raise self.error(f"{url} answered HTTP {resp.status_code} ({self.source(base)}); "
                             f"check the index URL or retry later")
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if self.json_only and not _is_json(ctype):
            raise self.error(f"{url} does not serve the PEP 691 JSON simple API (Content-Type {ctype!r}); "
                             f"set {self.source(base)} to an index that does (https://pypi.org/simple)")
        parse = parse_json_page if _is_json(ctype) else parse_html_page
        try:
            files, versions = parse(project, resp.content, resp.url)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise self.error(f"{url}: not a PEP 691/503 project page ({e}); is this a package index?") from None
        return ProjectPage(url, 200, files, versions, resp.headers.get("ETag", ""),
                           resp.headers.get("Last-Modified", ""), max_age)

    def check_reachable(self, base: str, project: str) -> None:
        """One request to ``base``: raises ``error`` only when the index cannot be reached at all."""
        url = project_url(base, project)
        if not url.startswith("file:"):
            self._get(base, url, {"Accept": "text/html"})

    def _get(self, base: str, url: str, headers: dict[str, str]):
        session = self.session
        try:
            resp = session.get(url, headers=headers, timeout=self._timeout)
        except OSError as e:  # requests' errors (after the session's retries) are OSErrors
            raise self.error(f"cannot reach {base} ({self.source(base)}): {short_reason(e)}; "
                             f"check the URL and the network") from None
        with self._lock:
            self.requests += 1
        return resp

    def _file_page(self, project: str, url: str) -> ProjectPage:
        page = Path(unquote(urlsplit(url).path)) / "index.html"
        if not page.is_file():
            return ProjectPage(url, 404, max_age=0)
        files, versions = parse_html_page(project, page.read_bytes(), page.as_uri())
        return ProjectPage(url, 200, files, versions, max_age=0)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
