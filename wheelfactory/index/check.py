"""``invoke check-index``: fetch every link of a published index and prove it true.

The target is a URL (``https://…/simple/``) or a local folder (an index, a
publish directory, or its ``simple/``); local pages may still link to absolute
URLs (files on a release), which are fetched over HTTP.

For every project page the check
  * parses the PEP 503 HTML and, where offered, the PEP 691 JSON (negotiated
    with the Accept header, else the static ``index.json`` beside the page) and
    requires both to agree on files, hashes, Requires-Python, yanks, metadata;
  * downloads every file: status 200, size (the JSON ``size`` and the bytes
    received) and sha256 (the ``#sha256=`` fragment);
  * downloads every ``.metadata`` file: its sha256 against
    ``data-core-metadata`` / ``data-dist-info-metadata``, its bytes against the
    METADATA inside the wheel, and its Name/Version/Requires-Python against
    the file name and the page;
and every link of the human pages (project pages, build logs) must resolve.
It fails with the list of what is broken. ``--quick`` skips the wheel
downloads (HEAD for status and size only, or a ranged GET of the first byte where the
host refuses HEAD, as a presigned URL does; .metadata is still fetched).
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import tempfile
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

import requests
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import ui
from .._util import http
from ..errors import FactoryError
from .render import JSON_TYPE


class IndexCheckFailed(FactoryError):
    """The published index has links that do not resolve or do not match."""


# --- fetching file:// and http(s):// alike --------------------------------------------


@dataclass
class Response:
    status: int  # 200, 404, … ; 0 when the request itself failed
    body: bytes = b""
    content_type: str = ""
    error: str = ""


class Fetcher:
    def __init__(self, timeout: float = 60):
        self.session = http.session(retries=3)
        self.timeout = timeout
        # Pages are fetched with a query string of this run: a CDN that keys its cache by the whole
        # URL and ignores a client's no-cache (GitHub Pages: max-age=600) then answers from the origin,
        # so the check sees the deployed site, not a copy up to 10 minutes old.
        self.fresh = {"wf-fresh": uuid.uuid4().hex}

    @staticmethod
    def _local(url: str) -> Path:
        p = Path(unquote(urlsplit(url).path))
        return p / "index.html" if url.endswith("/") or p.is_dir() else p

    def get(self, url: str, accept: str | None = None) -> Response:
        if url.startswith("file:"):
            p = self._local(url)
            try:
                return Response(200, p.read_bytes(), "text/html" if p.suffix == ".html" else "")
            except FileNotFoundError:
                return Response(404, error="no such file")
            except OSError as e:
                return Response(0, error=str(e))
        try:
            headers = {"Cache-Control": "no-cache", **({"Accept": accept} if accept else {})}
            r = self.session.get(url, params=self.fresh, timeout=self.timeout, headers=headers)
            return Response(r.status_code, r.content, r.headers.get("Content-Type", ""))
        except requests.RequestException as e:
            return Response(0, error=type(e).__name__)

    def download(self, url: str, dest: Path) -> tuple[int, str, int, str]:
        """(status, sha256, bytes, error) of ``url`` streamed into ``dest``."""
        h = hashlib.sha256()
        n = 0
        if url.startswith("file:"):
            p = self._local(url)
            try:
                with open(p, "rb") as src, open(dest, "wb") as out:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        h.update(chunk)
                        out.write(chunk)
                        n += len(chunk)
            except FileNotFoundError:
                return 404, "", 0, "no such file"
            return 200, h.hexdigest(), n, ""
        try:
            with self.session.get(url, stream=True, timeout=self.timeout) as r:
                if r.status_code != 200:
                    return r.status_code, "", 0, ""
                with open(dest, "wb") as out:
                    for chunk in r.iter_content(1 << 20):
                        h.update(chunk)
                        out.write(chunk)
                        n += len(chunk)
        except requests.RequestException as e:
            return 0, "", n, type(e).__name__
        return 200, h.hexdigest(), n, ""

    def head(self, url: str) -> tuple[int, int | None, str]:
        """(status, size or None, error) without downloading."""
        if url.startswith("file:"):
            p = self._local(url)
            return (200, p.stat().st_size, "") if p.is_file() else (404, None, "no such file")
        try:
            r = self.session.head(url, timeout=self.timeout, allow_redirects=True)
            if r.status_code in HEAD_REFUSED:
                return self._first_byte(url)
            return r.status_code, _int(r.headers.get("Content-Length")) if r.status_code == 200 else None, ""
        except requests.RequestException as e:
            return 0, None, type(e).__name__

    def _first_byte(self, url: str) -> tuple[int, int | None, str]:
        """(status, size or None, error) from a ranged GET of the first byte: for hosts that
        refuse HEAD (a presigned S3 URL is signed for GET only and answers HEAD with 403; others
        405). Size: from ``Content-Range: bytes 0-0/SIZE`` (RFC 9110 14.4), or the whole
        answer's Content-Length when the host ignores the range (its body is not read)."""
        with self.session.get(url, headers={"Range": "bytes=0-0"}, stream=True, timeout=self.timeout) as r:
            if r.status_code == 206:
                total = r.headers.get("Content-Range", "").rpartition("/")[2]
                return 200, _int(total), ""
            return r.status_code, _int(r.headers.get("Content-Length")) if r.status_code == 200 else None, ""


# How hosts refuse HEAD: 403 (a presigned S3/GitHub-release URL, signed for GET only),
# 405 Method Not Allowed, 501 Not Implemented.
HEAD_REFUSED = frozenset({403, 405, 501})


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


# --- parsing pages --------------------------------------------------------------------


class _Anchors(HTMLParser):
    """Every <a> with its attributes and text, and the PEP 629 repository version."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.anchors: list[dict] = []
        self.repository_version: str | None = None
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and "href" in a:
            self._open = {"attrs": a, "text": ""}
            self.anchors.append(self._open)
        elif tag == "meta" and a.get("name") == "pypi:repository-version":
            self.repository_version = a.get("content")

    def handle_data(self, data):
        if self._open is not None:
            self._open["text"] += data

    def handle_endtag(self, tag):
        if tag == "a":
            self._open = None


def parse_anchors(body: bytes) -> _Anchors:
    p = _Anchors()
    p.feed(body.decode("utf-8", "replace"))
    p.close()
    return p


@dataclass
class FileLink:
    project: str
    page: str
    filename: str
    url: str  # without the fragment
    sha256: str | None
    requires_python: str | None
    metadata_sha256: str | None  # from data-core-metadata (or the older attribute)
    yanked: str | None  # None = not yanked
    size: int | None = None  # from the JSON page


@dataclass
class Result:
    target: str
    projects: int = 0
    files: int = 0
    links: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _hash_attr(value: str | None) -> tuple[bool, str | None]:
    """(present, sha256) of a data-core-metadata style value ('true' or 'sha256=…')."""
    if value is None:
        return False, None
    if value.startswith("sha256="):
        return True, value[len("sha256="):]
    return value.lower() != "false", None


# --- the check ------------------------------------------------------------------------


def _normalize_target(target: str) -> tuple[str, str | None]:
    """(simple root URL ending in '/', site root URL or None) for a path or URL."""
    if target.startswith(("http://", "https://")):
        simple = target if target.endswith("/") else target + "/"
        site = urljoin(simple, "../") if simple.rstrip("/").endswith("/simple") else None
        return simple, site
    p = Path(target).resolve()
    if (p / "simple" / "index.html").is_file():
        return (p / "simple").as_uri() + "/", p.as_uri() + "/"
    if (p / "index.html").is_file():
        site = p.parent.as_uri() + "/" if p.name == "simple" and (p.parent / "index.html").is_file() else None
        return p.as_uri() + "/", site
    raise IndexCheckFailed(f"{target}: no index here (no simple/index.html or index.html); run `invoke index` first")


class Checker:
    def __init__(self, target: str, *, quick: bool = False, jobs: int = 8, timeout: float = 60):
        self.simple, self.site = _normalize_target(target)
        self.quick = quick
        self.jobs = jobs
        self.fetch = Fetcher(timeout)
        self.result = Result(target)
        self.checked: set[str] = set()  # URLs already proven to resolve

    def problem(self, url: str, what: str) -> None:
        self.result.problems.append(f"{url}: {what}")

    def run(self) -> Result:
        links = self.check_pages()
        self.check_files(links)
        if self.site:
            self.check_human_pages()
        return self.result

    # The simple pages, HTML and JSON.
    def check_pages(self) -> list[FileLink]:
        root = self.fetch.get(self.simple)
        if root.status != 200:
            raise IndexCheckFailed(f"{self.simple}: the index root answered {root.status or root.error}")
        anchors = parse_anchors(root.body)
        projects = {}
        for a in anchors.anchors:
            url = urljoin(self.simple, a["attrs"]["href"])
            name = canonicalize_name(a["text"].strip())
            if not url.startswith(self.simple):
                self.problem(url, f"project link for {a['text']!r} points outside the index")
                continue
            projects[name] = url
        root_json = self._json(self.simple)
        if root_json is not None:
            jnames = {canonicalize_name(p["name"]) for p in root_json.get("projects", [])}
            if jnames != set(projects):
                self.problem(self.simple, f"the JSON root lists {sorted(jnames ^ set(projects))} differently from the HTML root")
        self.result.projects = len(projects)
        links: list[FileLink] = []
        for name, url in sorted(projects.items()):
            links += self.check_project(name, url)
        return links

    def _json(self, url: str) -> dict | None:
        """The PEP 691 document of a page: negotiated, else the static index.json; None if absent."""
        if url.startswith("http"):
            r = self.fetch.get(url, accept=f"{JSON_TYPE}, text/html;q=0.01")
            if r.status == 200 and r.content_type.split(";")[0].strip() == JSON_TYPE:
                return self._load_json(url, r.body)
        r = self.fetch.get(urljoin(url, "index.json"))
        return self._load_json(url, r.body) if r.status == 200 else None

    def _load_json(self, url: str, body: bytes) -> dict | None:
        try:
            data = json.loads(body)
        except ValueError:
            self.problem(url, "the JSON page is not valid JSON")
            return None
        if not str(data.get("meta", {}).get("api-version", "")).startswith("1."):
            self.problem(url, "the JSON page lacks meta.api-version 1.x")
        return data

    def check_project(self, name: str, url: str) -> list[FileLink]:
        page = self.fetch.get(url)
        if page.status != 200:
            self.problem(url, f"project page answered {page.status or page.error}")
            return []
        parsed = parse_anchors(page.body)
        if parsed.repository_version is None:
            self.problem(url, "no <meta name=\"pypi:repository-version\"> (PEP 629)")
        links: dict[str, FileLink] = {}
        for a in parsed.anchors:
            attrs = a["attrs"]
            href, frag = urldefrag(urljoin(url, attrs["href"]))
            filename = unquote(urlsplit(href).path.rsplit("/", 1)[-1])
            sha = frag[len("sha256="):] if frag.startswith("sha256=") else None
            if sha is None:
                self.problem(href, "link without a #sha256= fragment")
            try:
                wname, _ver, _b, _t = parse_wheel_filename(filename)
                if wname != name:
                    self.problem(href, f"a wheel of {wname!r} listed on the page of {name!r}")
            except InvalidWheelFilename:
                self.problem(href, f"{filename!r} is not a wheel file name")
            core = attrs.get("data-core-metadata")
            legacy = attrs.get("data-dist-info-metadata")
            if core != legacy:
                self.problem(href, "data-core-metadata and data-dist-info-metadata differ (PEP 714)")
            present, msha = _hash_attr(core if core is not None else legacy)
            links[filename] = FileLink(
                project=name, page=url, filename=filename, url=href, sha256=sha,
                requires_python=attrs.get("data-requires-python"),
                metadata_sha256=msha if present else None,
                yanked=attrs.get("data-yanked"),
            )
            if not present:
                self.problem(href, "no data-core-metadata: resolvers must download the wheel (PEP 658)")
        data = self._json(url)
        if data is not None:
            self._compare_json(url, name, links, data)
        return list(links.values())

    def _compare_json(self, url: str, name: str, links: dict[str, FileLink], data: dict) -> None:
        if canonicalize_name(str(data.get("name", ""))) != name:
            self.problem(url, f"the JSON page names {data.get('name')!r}")
        jfiles = {f.get("filename"): f for f in data.get("files", [])}
        if set(jfiles) != set(links):
            self.problem(url, f"HTML and JSON list different files: {sorted(set(jfiles) ^ set(links))}")
        versions = set()
        for fn, jf in jfiles.items():
            link = links.get(fn)
            if link is None:
                continue
            where = f"{url} ({fn})"
            if urldefrag(urljoin(url, jf.get("url", "")))[0] != link.url:
                self.problem(where, "the JSON url differs from the HTML link")
            if jf.get("hashes", {}).get("sha256") != link.sha256:
                self.problem(where, "the JSON sha256 differs from the HTML #sha256")
            if jf.get("requires-python") != link.requires_python:
                self.problem(where, "the JSON requires-python differs from data-requires-python")
            jmeta = jf.get("core-metadata")
            if jmeta != jf.get("dist-info-metadata"):
                self.problem(where, "core-metadata and dist-info-metadata differ in the JSON (PEP 714)")
            if (jmeta or {}).get("sha256") != link.metadata_sha256:
                self.problem(where, "the JSON core-metadata hash differs from data-core-metadata")
            jy = jf.get("yanked", False)
            if bool(jy) != (link.yanked is not None) or (isinstance(jy, str) and jy != link.yanked):
                self.problem(where, "the JSON yanked state differs from data-yanked")
            if "size" in jf:
                link.size = jf["size"]
            elif data.get("meta", {}).get("api-version") == "1.1":
                self.problem(where, "API 1.1 requires a size for every file (PEP 700)")
            try:
                versions.add(str(parse_wheel_filename(fn)[1]))
            except InvalidWheelFilename:
                pass
        if "versions" in data and {str(Version(v)) for v in data["versions"]} != versions:
            self.problem(url, "the JSON versions do not match the files")

    # The files behind the links.
    def check_files(self, links: list[FileLink]) -> None:
        self.result.files = len(links)
        with _progress() as progress, tempfile.TemporaryDirectory(prefix="check-index-") as tmp:
            task = progress.add_task("checking files", total=len(links))

            def one(i_link):
                i, link = i_link
                try:
                    return self.check_file(link, Path(tmp) / f"{i}.whl")
                finally:
                    progress.advance(task)

            with ThreadPoolExecutor(self.jobs) as pool:
                for problems in pool.map(one, enumerate(links)):
                    self.result.problems += problems

    def check_file(self, link: FileLink, dest: Path) -> list[str]:
        out: list[str] = []
        bad = lambda url, what: out.append(f"{url}: {what}")  # noqa: E731
        self.checked.update((link.url, link.url + ".metadata"))  # reported here, not again by the page crawl
        if self.quick:
            status, size, err = self.fetch.head(link.url)
            if status != 200:
                bad(link.url, f"answered {status or err}")
            elif link.size is not None and size is not None and size != link.size:
                bad(link.url, f"{size} bytes, the index says {link.size}")
        else:
            status, sha, size, err = self.fetch.download(link.url, dest)
            if status != 200:
                bad(link.url, f"answered {status or err}")
            else:
                if link.size is not None and size != link.size:
                    bad(link.url, f"{size} bytes, the index says {link.size}")
                if link.sha256 and sha != link.sha256:
                    bad(link.url, f"sha256 {sha} but the index says {link.sha256} (stale or replaced file)")
        murl = link.url + ".metadata"
        if link.metadata_sha256 is None:
            return out
        meta = self.fetch.get(murl)
        if meta.status != 200:
            bad(murl, f"answered {meta.status or meta.error}")
            return out
        if hashlib.sha256(meta.body).hexdigest() != link.metadata_sha256:
            bad(murl, "sha256 differs from data-core-metadata")
        headers = email.parser.BytesParser().parsebytes(meta.body, headersonly=True)
        try:
            wname, wver, _b, _t = parse_wheel_filename(link.filename)
            if canonicalize_name(headers.get("Name", "")) != wname or Version(headers.get("Version", "0")) != wver:
                bad(murl, f"Name/Version {headers.get('Name')} {headers.get('Version')} do not match {link.filename}")
        except (InvalidWheelFilename, ValueError):
            pass
        if (headers.get("Requires-Python") or None) != link.requires_python:
            bad(murl, f"Requires-Python {headers.get('Requires-Python')!r} differs from the page's "
                      f"{link.requires_python!r}")
        if link.requires_python:
            try:
                SpecifierSet(link.requires_python)
            except InvalidSpecifier:
                bad(link.url, f"data-requires-python {link.requires_python!r} is not a valid specifier")
        if not self.quick and status == 200:
            try:
                with zipfile.ZipFile(dest) as z:
                    names = [n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
                    if len(names) != 1:
                        bad(link.url, "the wheel has no single .dist-info/METADATA")
                    elif z.read(names[0]) != meta.body:
                        bad(murl, "differs from the METADATA inside the wheel")
            except zipfile.BadZipFile:
                bad(link.url, "not a zip file")
        dest.unlink(missing_ok=True)
        return out

    # The human pages: every link must resolve.
    def check_human_pages(self) -> None:
        root = self.fetch.get(self.site)
        if root.status != 200:
            return  # an index without human pages (another generator): nothing to crawl
        pages = [self.site]
        seen_pages = {self.site}
        targets: set[str] = set()
        for a in parse_anchors(root.body).anchors:
            url = urldefrag(urljoin(self.site, a["attrs"]["href"]))[0]
            if url.startswith(self.site) and url.endswith("/") and url not in seen_pages \
                    and not url.startswith(self.simple):
                seen_pages.add(url)
                pages.append(url)
            else:
                targets.add(url)
        for page in pages[1:]:
            r = self.fetch.get(page)
            if r.status != 200:
                self.problem(page, f"human page answered {r.status or r.error}")
                continue
            for a in parse_anchors(r.body).anchors:
                targets.add(urldefrag(urljoin(page, a["attrs"]["href"]))[0])
        todo = sorted(t for t in targets if t.startswith(("http", "file:")) and t not in self.checked)
        self.result.links = len(pages) + len(todo)

        def one(url):
            if url.startswith(self.simple) or url.endswith("/"):
                r = self.fetch.get(url)
                return url, r.status, r.error
            status, _size, err = self.fetch.head(url)
            return url, status, err

        with ThreadPoolExecutor(self.jobs) as pool:
            for url, status, err in pool.map(one, todo):
                if status != 200:
                    self.problem(url, f"linked from a human page, answered {status or err}")


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=ui.console, transient=True,
    )


def check_index(target: str, *, quick: bool = False, jobs: int = 8) -> Result:
    """Check every link of the index at ``target`` (a URL or a local folder) with ``jobs``
    parallel downloads; the Result lists the problems (IndexCheckFailed: no index there)."""
    return Checker(target, quick=quick, jobs=jobs).run()
