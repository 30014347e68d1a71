"""The pages of the index, rendered from page entries: strings in, bytes out, no I/O.

``render_simple_root`` and ``render_simple_project`` write the PEP 503 HTML pages
(with the PEP 629 repository version, PEP 658/714 metadata attributes and PEP 592
yanks) and their PEP 691 JSON twins (API 1.1, PEP 700: versions, size, upload
time); ``render_human_root`` and ``render_human_project`` the pages a person reads.

A page entry is the dict ``records.entry_from_record`` returns, plus ``yanked``
(the reason, "" for none given, None when not yanked), ``has_log`` and (set by
``supersede``) ``superseded_by``.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from packaging.utils import parse_wheel_filename
from packaging.version import Version

# Bump when the format of any generated file (or of the state) changes: every page is
# then rewritten. ("6": the state became one file; "7": the uv line picks across indexes,
# superseded builds leave the simple pages, the state knows its copies in files/; "8": the
# digest file lists every wheel served.)
FORMAT = "8"
API_VERSION = "1.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"

# The index's folders: the wheels' own files, the PEP 503/691 pages, the human pages.
FILES = "files"
SIMPLE = "simple"
PROJECT = "project"
# At the index root: {"digest": "sha256:…", "files": {WHEEL: sha256}, "projects": N, "wheels": N},
# the content digest of the pages (update.index_digest) and the manifest of every wheel served
# (update.digest_bytes), written last. Fetch it from the live site to tell whether the host
# serves this index yet; fetch-dist restores dist/ from its manifest.
DIGEST = "index-digest.json"
# `invoke prove`'s rows (audit/prove.py) and its page, relative to the project root; the
# front page shows them.
CATALOG_STATUS = "docs/catalog-status.json"
CATALOG_PAGE = "docs/catalog-status.md"
CATALOG_TABLE_MAX = 200

# The install commands every page prints ({url}: the simple/ root, {name}: the project).
# uv's default strategy takes a project from the first index that has it at all, so a
# project we hold only for another Python would fail on uv where pip (which picks across
# its indexes) falls back to PyPI; unsafe-best-match picks across indexes as pip does.
PIP_INSTALL = "pip install --prefer-binary --extra-index-url {url} {name}"
UV_INSTALL = "uv pip install --index-strategy unsafe-best-match --index {url} {name}"
# How a user checks a downloaded wheel's build provenance (GitHub artifact attestations, made by the
# build jobs with actions/attest-build-provenance; docs/ci.md, "Verify where a wheel came from").
VERIFY = "gh attestation verify FILE --repo {repo}"

_URL_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")
_e = html.escape


@dataclass(frozen=True)
class Settings:
    """What the pages depend on besides the records (from factory.toml's ``[index]``)."""

    title: str
    url: str  # public URL of the simple/ root, ending in "/"; "" when unknown
    files_base: str  # absolute URL prefix of the files, "" = co-hosted (relative links); may hold {project}
    copy_logs: bool
    attested_by: str = ""  # OWNER/REPO whose workflow attests the wheels (GitHub publish target), else ""

    def key(self) -> str:
        """Changes whenever every page must be rewritten."""
        return json.dumps([FORMAT, self.title, self.url, self.files_base, self.copy_logs, self.attested_by])

    def file_url(self, filename: str, *, depth: int = 2) -> str:
        """The link to a wheel (or WHEEL.metadata / WHEEL.log) from a page ``depth`` folders deep."""
        if self.files_base:
            return f"{files_base_for(self.files_base, filename)}/{_quote(filename)}"
        return "../" * depth + f"{FILES}/{_quote(filename)}"


PROJECT_FIELD = "{project}"  # in index.files-base-url / publish.release-tag: one release per project


def project_of_file(filename: str) -> str:
    """The normalized project name of a wheel, or of a file beside it (WHEEL.metadata, .log, .json)."""
    wheel = filename[: filename.index(".whl") + len(".whl")]
    return str(parse_wheel_filename(wheel)[0])


def files_base_for(base: str, filename: str) -> str:
    """``base`` with ``{project}`` filled in for ``filename``'s project (one release per project)."""
    return base.replace(PROJECT_FIELD, project_of_file(filename)) if PROJECT_FIELD in base else base


def _quote(filename: str) -> str:
    return filename if _URL_SAFE.match(filename) else quote(filename)


def sort_files(files: list[dict]) -> None:
    """Sort page entries oldest first: by version, then build tag (no tag first, as pip
    orders them), then file name."""
    versions = {v: Version(v) for v in {f["version"] for f in files}}
    files.sort(key=lambda f: (versions[f["version"]], _bt(f["build_tag"]), f["filename"]))


def supersede(files: list[dict]) -> list[dict]:
    """The page entries the simple pages offer: of the builds of one version with the same
    Python/ABI tags, only the newest (highest build tag; all files that share it). Each
    entry gets ``superseded_by``: the newer build tag as text ("1"), or None when offered.

    Why: installers order candidates by their tags' rank on this machine first and use
    the build tag only to break ties (PEP 427; pip's and uv's sort keys), so a rebuild
    with a lower manylinux floor (``tb_demo-1.0-1-…-manylinux_2_31…``) loses to the first
    build (``…-manylinux_2_35…``) on every machine both support. The superseded files
    stay in files/ (their URLs keep working) and on the human page. A yanked build
    supersedes nothing (yanking a bad rebuild brings the previous build back), unless
    every build is yanked.
    """
    groups: dict[tuple, list[dict]] = {}
    for f in files:
        groups.setdefault((f["version"], f["python_abi"]), []).append(f)
    for group in groups.values():
        top = max(_bt(f["build_tag"]) for f in ([f for f in group if f["yanked"] is None] or group))
        for f in group:
            f["superseded_by"] = _build_tag_str(top) if _bt(f["build_tag"]) < top else None
    return [f for f in files if f["superseded_by"] is None]


def _bt(bt) -> tuple:
    """A build tag (number, suffix) as a sort key; no tag sorts before any tag."""
    return (bt[0], bt[1]) if bt else (-1, "")


def _build_tag_str(bt) -> str:
    return "" if not bt else f"{bt[0]}{bt[1]}"


def _simple_page(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"<title>{title}</title>\n</head>\n<body>\n{body}</body>\n</html>\n"
    ).encode()


def _json(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def render_simple_root(names: list[str]) -> tuple[bytes, bytes]:
    """The PEP 503 root page and the PEP 691 root document listing ``names`` (normalized, sorted)."""
    links = "".join(f'<a href="{n}/">{n}</a><br>\n' for n in names)
    data = {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]}
    return _simple_page("Simple index", links), _json(data)


def render_simple_project(name: str, files: list[dict], settings: Settings) -> tuple[bytes, bytes]:
    """The PEP 503 page and the PEP 691 document of project ``name`` (``files``: the page
    entries it offers, sorted by ``sort_files``, as ``supersede`` returns them)."""
    lines = []
    jfiles = []
    versions: dict[str, None] = {}
    for f in files:
        fn = f["filename"]
        url = settings.file_url(fn)
        meta = f"sha256={f['metadata_sha256']}"
        attrs = f' data-dist-info-metadata="{meta}" data-core-metadata="{meta}"'
        if f["requires_python"]:
            attrs = f' data-requires-python="{_e(f["requires_python"])}"' + attrs
        if f["yanked"] is not None:
            attrs += f' data-yanked="{_e(f["yanked"])}"'
        lines.append(f'<a href="{url}#sha256={f["sha256"]}"{attrs}>{fn}</a><br>\n')  # (names need no escaping)
        jf: dict[str, Any] = {
            "filename": fn,
            "url": url,
            "hashes": {"sha256": f["sha256"]},
            "core-metadata": {"sha256": f["metadata_sha256"]},
            "dist-info-metadata": {"sha256": f["metadata_sha256"]},
            "size": f["size"],
            "upload-time": f["built_at"],
            "yanked": (f["yanked"] or True) if f["yanked"] is not None else False,
        }
        if f["requires_python"]:
            jf["requires-python"] = f["requires_python"]
        jfiles.append(jf)
        versions[f["version"]] = None
    page = _simple_page(f"Links for {name}", f"<h1>Links for {name}</h1>\n" + "".join(lines))
    data = {
        "meta": {"api-version": API_VERSION},
        "name": name,
        "versions": list(versions),  # ``files`` is sorted by version: so is this
        "files": jfiles,
    }
    return page, _json(data)


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:14px 28px}header a{color:#fff;text-decoration:none}
header h1{margin:0;font-size:20px}header .crumb{font-weight:400;opacity:.8}main{max-width:1180px;margin:24px auto;padding:0 28px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;margin-bottom:18px}
h2{font-size:17px;margin:0 0 10px}pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;
padding:9px 12px;overflow-x:auto;margin:6px 0}code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eaeef2;
vertical-align:top}th{font-size:13px;color:#57606a;font-weight:600}.n{text-align:right}.n,.d{white-space:nowrap}
.tag{display:inline-block;white-space:nowrap;background:#ddf4ff;color:#0969da;border-radius:10px;padding:0 8px;margin:1px 0;
font:12px ui-monospace,monospace}.yank{background:#ffebe9;color:#cf222e;border-radius:10px;padding:0 8px;
font-size:12px}.old{background:#fff8c5;color:#7d4e00;border-radius:10px;padding:0 8px;font-size:12px}.muted{color:#57606a;font-size:13px}a{color:#0969da}
"""

_URL_SCRIPT = (
    "<script>for(const e of document.querySelectorAll('[data-rel]'))"
    "e.textContent=new URL(e.dataset.rel,location.href).href;</script>"
)


def _human_page(title: str, heading_link: str, body: str, settings: Settings, crumb: str = "") -> bytes:
    crumb = f' <span class="crumb">/ {_e(crumb)}</span>' if crumb else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<header><h1><a href="{heading_link}">{_e(settings.title)}</a>{crumb}</h1></header>\n'
        f"<main>\n{body}</main>\n{_URL_SCRIPT}\n</body>\n</html>\n"
    ).encode()


def _index_url_code(settings: Settings, rel: str) -> str:
    """The index URL: the configured one, or filled in from the page's own address."""
    if settings.url:
        return _e(settings.url)
    return f'<span data-rel="{rel}">{rel}</span>'


def _date(iso: str) -> str:
    return iso[:10] + " " + iso[11:16] + " UTC"


def _size(n: float) -> str:
    """A file size as the human pages show it: "512 B", "25.6 KiB", "4.9 MiB"."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def human_root_row(name: str, latest: str, built: str, count: int) -> str:
    """A project's row on the human root page: its ``latest`` version, when it was last
    ``built`` (PEP 700 time) and its ``count`` of wheels. The state keeps the row, so the
    root page joins 1,000 rows instead of rendering them."""
    return (f'<tr><td><a href="{PROJECT}/{name}/">{name}</a></td><td>{_e(latest)}</td>'
            f'<td class="n">{count}</td><td class="d">{_date(built)}</td></tr>\n')


def render_human_root(rows: list[str], wheels: int, settings: Settings, catalog: list[dict] = ()) -> bytes:
    """The human root page: ``rows`` (``human_root_row`` of each project, sorted by name),
    the total number of ``wheels`` and, when given, ``catalog``: the rows of
    docs/catalog-status.json that ``invoke prove`` writes (:func:`render_catalog_status`)."""
    url = _index_url_code(settings, f"{SIMPLE}/")
    body = (
        "<section><h2>Install from this index</h2>\n"
        f"<pre><code>{PIP_INSTALL.format(url=url, name='PACKAGE')}</code></pre>\n"
        f"<pre><code>{UV_INSTALL.format(url=url, name='PACKAGE')}</code></pre>\n"
        f'<p class="muted">{len(rows)} projects, {wheels} wheels. '
        f'Machine-readable: <a href="{SIMPLE}/">{SIMPLE}/</a> (PEP 503 HTML, PEP 691 JSON).</p></section>\n'
        "<section><h2>Projects</h2>\n<table>\n<thead><tr><th>Project</th><th>Latest version</th>"
        f'<th class="n">Wheels</th><th>Built</th></tr></thead>\n<tbody>\n{"".join(rows)}</tbody></table></section>\n'
        + render_catalog_status(catalog, settings)
    )
    return _human_page(settings.title, "./", body, settings)


def render_catalog_status(rows: list[dict], settings: Settings) -> str:
    """The front page's "Catalog status" section ("" without rows): per level, how many recipe
    versions reached it, then one table row per recipe, version and level (``invoke prove``'s
    rows: recipe, version, level, reached, wheel, size in bytes, seconds, date, reason). Above
    CATALOG_TABLE_MAX rows only the counts, and a link to the committed page when the
    repository is known (``attested_by``)."""
    if not rows:
        return ""
    levels: dict[str, list[bool]] = {}
    for r in rows:
        levels.setdefault(r["level"], []).append(bool(r["reached"]))
    counts = "; ".join(f"{_e(level)}: {sum(got)} of {len(got)} reached" for level, got in levels.items())
    body = f'<section><h2>Catalog status</h2>\n<p class="muted">From <code>invoke prove</code>: {counts}.'
    if len(rows) > CATALOG_TABLE_MAX:
        if settings.attested_by:
            page = f"https://github.com/{settings.attested_by}/blob/HEAD/{CATALOG_PAGE}"
            body += f' Every row: <a href="{_e(page)}">{CATALOG_PAGE}</a>.'
        return body + "</p></section>\n"
    cells = "".join(
        f'<tr><td>{_e(r["recipe"])}</td><td>{_e(r["version"])}</td><td>{_e(r["level"])}</td>'
        f'<td>{"yes" if r["reached"] else "no"}</td><td class="n">{_size(r["size"]) if r["size"] else "-"}</td>'
        f'<td class="n">{r["seconds"]:.0f} s</td><td class="d">{_e(r["date"])}</td>'
        f'<td>{_e(r["reason"]) or "-"}</td></tr>\n' for r in rows)
    return (body + "</p>\n<table>\n<thead><tr><th>Recipe</th><th>Version</th><th>Level</th><th>Reached</th>"
            f'<th class="n">Wheel</th><th class="n">Build time</th><th>Date</th><th>Reason</th></tr></thead>\n'
            f"<tbody>\n{cells}</tbody></table></section>\n")


def latest_version(files: list[dict]) -> str:
    """The newest version among sorted page entries that is not yanked (if all are: the newest)."""
    for f in reversed(files):
        if f["yanked"] is None:
            return f["version"]
    return files[-1]["version"]


def render_human_project(name: str, files: list[dict], settings: Settings) -> bytes:
    """The human page of project ``name``: install commands, the Debian packages its latest
    version needs at run time, and each wheel by version, newest first (``files`` sorted)."""
    latest = latest_version(files)
    url = _index_url_code(settings, f"../../{SIMPLE}/")
    debs = sorted({d for f in files if f["version"] == latest for d in f["debian_runtime"]})
    built = max(f["built_at"] for f in files)
    parts = [
        f"<section><h2>Install {_e(name)}</h2>\n",
        f'<p class="muted">Latest version {_e(latest)} &middot; {len(files)} wheel{"s" if len(files) != 1 else ""} '
        f"&middot; last built {_date(built)}</p>\n",
        f"<pre><code>{PIP_INSTALL.format(url=url, name=_e(name))}</code></pre>\n",
        f"<pre><code>{UV_INSTALL.format(url=url, name=_e(name))}</code></pre>\n",
    ]
    if debs:
        parts.append(
            "<p>These wheels need Debian packages at run time (not bundled):</p>\n"
            f"<pre><code>sudo apt-get install {_e(' '.join(debs))}</code></pre>\n"
        )
    else:
        parts.append('<p class="muted">No Debian packages needed at run time: the libraries are bundled.</p>\n')
    if settings.attested_by:
        parts.append(
            "<p>Check where a downloaded wheel was built (its signed build provenance; GitHub CLI 2.49 or newer):</p>\n"
            f"<pre><code>{_e(VERIFY.format(repo=settings.attested_by))}</code></pre>\n"
        )
    parts.append(f'<p class="muted"><a href="../../{SIMPLE}/{name}/">simple page</a></p></section>\n')
    by_version: dict[str, list[dict]] = {}
    for f in files:
        by_version.setdefault(f["version"], []).append(f)
    for version in reversed(list(by_version)):
        rows = [_human_file_row(f, settings) for f in
                sorted(by_version[version], key=lambda f: (_bt(f["build_tag"]), f["filename"]), reverse=True)]
        parts.append(
            f"<section><h2>Version {_e(version)}</h2>\n<table>\n<thead><tr><th>File</th><th>Tags</th>"
            "<th>Build</th><th class=\"n\">Size</th><th>Built</th><th>Debian runtime</th><th>Log</th></tr></thead>\n"
            f"<tbody>\n{''.join(rows)}</tbody></table></section>\n"
        )
    return _human_page(f"{name} - {settings.title}", "../../", "".join(parts), settings, crumb=name)


def _human_file_row(f: dict, settings: Settings) -> str:
    tags = "<br>".join(f'<span class="tag">{_e(t)}</span>' for t in f["tags"])
    log = f'<a href="{settings.file_url(f["filename"] + ".log")}">log</a>' if f["has_log"] else ""
    yank = f' <span class="yank">yanked: {_e(f["yanked"] or "no reason given")}</span>' if f["yanked"] is not None else ""
    if f.get("superseded_by"):
        yank += (f' <span class="old">superseded by build {_e(f["superseded_by"])}: not offered to pip or uv; '
                 f"this URL keeps working</span>")
    deb = _e(" ".join(f["debian_runtime"])) or "&mdash;"
    python = " &middot; requires Python " + _e(f["requires_python"]) if f["requires_python"] else ""
    return (
        f'<tr><td><a href="{settings.file_url(f["filename"])}">{_e(f["filename"])}</a>{yank}<br>'
        f'<span class="muted">sha256 {f["sha256"][:16]}&hellip;{python}'
        f"</span></td><td>{tags}</td><td>{_e(_build_tag_str(f['build_tag'])) or '&mdash;'}</td>"
        f'<td class="n">{_size(f["size"])}</td><td class="d">{_date(f["built_at"])}</td><td>{deb}</td><td>{log}</td></tr>\n'
    )
