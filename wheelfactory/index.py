"""dist/ records -> a static package index (``invoke index``).

The index is derived from the JSON records in dist/ alone (the wheels are never
re-opened): every page, hash and ``.metadata`` file comes from a record.

What is written under ``paths.index`` (default ``index/``)::

    simple/index.html            PEP 503 root (PEP 629 meta: repository version 1.1)
    simple/index.json            PEP 691 root (application/vnd.pypi.simple.v1+json)
    simple/NAME/index.html       PEP 503 links: #sha256, data-requires-python,
                                 data-dist-info-metadata + data-core-metadata (PEP 658/714),
                                 data-yanked (PEP 592)
    simple/NAME/index.json       PEP 691 + PEP 700 (versions, size, upload-time)
    files/WHEEL.metadata         PEP 658 core metadata, beside the wheel's link target
    files/WHEEL                  the wheel itself (co-hosted mode only; hard link to dist/)
    files/WHEEL.log              the build log (``index.copy-logs``)
    index.html                   human root: projects, latest version, build date
    project/NAME/index.html      human page: install command, apt-get line, tags, sizes, log
    .wheelfactory/state.json     what this index holds (not published)

Links are relative (``../../files/WHEEL``) when the files are co-hosted with the
index, or absolute (``index.files-base-url``/WHEEL) when the files live elsewhere,
e.g. on a GitHub release. Everything that belongs to a wheel (``.metadata``,
``.log``) lives beside it, so one base URL serves them all.

Updates are atomic and incremental. Changed files are generated into a staging
folder beside the index; nothing in the live index is touched until that has
fully succeeded. Then a commit file is written and the staged files are renamed
into place (each rename is atomic) in an order that keeps every link resolvable
at every instant: files first, project pages next, root pages, deletions last.
A run interrupted during those renames is completed by the next run (a
roll-forward journal); one interrupted before the commit file leaves the live
index exactly as it was. Only the pages of projects whose records (or yanks, or
settings) changed are rewritten; unchanged records are not even re-read (their
summaries are cached by the record file's stat).

Every file is known by its sha256. A wheel whose file name was indexed before
with different content is reported as *replaced* (a stale build must never hide
behind an old name), two names with the same content as duplicates; the report
lists what was added, replaced and removed.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import html
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from filelock import FileLock
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from . import __version__, ui
from .config import Config, load_config
from .errors import FactoryError, RecipeError
from .recipe import parse_recipe, recipe_path

# Bump when the format of any generated file changes: every page is then rewritten.
FORMAT = "1"
API_VERSION = "1.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"

FILES = "files"
SIMPLE = "simple"
PROJECT = "project"
STATE_DIR = ".wheelfactory"
STATE = f"{STATE_DIR}/state.json"
COMMIT = ".commit.json"  # inside the staging folder: its presence means "apply me"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED = ("name", "version", "filename", "sha256", "size", "tags", "metadata_sha256", "built_at")


class IndexProblem(FactoryError):
    """dist/ or the index cannot be turned into a truthful index."""


# --- settings -----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    title: str
    url: str  # public URL of the simple/ root, "" when unknown
    files_base: str  # absolute URL prefix of the files, "" = co-hosted (relative links)
    copy_logs: bool

    def key(self) -> str:
        return json.dumps([FORMAT, self.title, self.url, self.files_base, self.copy_logs])

    def file_url(self, filename: str, *, depth: int = 2) -> str:
        """The link to a wheel (or WHEEL.metadata / WHEEL.log) from a page ``depth`` folders deep."""
        if self.files_base:
            return f"{self.files_base}/{quote(filename)}"
        return "../" * depth + f"{FILES}/{quote(filename)}"


def github_download_base(config: Config) -> str:
    """Where a GitHub release serves its assets, derived from the API URL."""
    pub = config["publish"]
    api = pub["api-url"].rstrip("/")
    if api == "https://api.github.com":
        web = "https://github.com"
    elif api.endswith("/api/v3"):
        web = api[: -len("/api/v3")]
    else:
        raise IndexProblem(
            f"factory.toml: cannot tell where release files are downloaded from for publish.api-url = {api!r}; "
            f"set index.files-base-url (e.g. https://HOST/OWNER/REPO/releases/download/TAG)"
        )
    if not pub["repository"]:
        raise IndexProblem(
            "factory.toml: publish.target is 'github' but publish.repository is empty; "
            "set it to OWNER/NAME (or set index.files-base-url)"
        )
    return f"{web}/{pub['repository']}/releases/download/{pub['release-tag']}"


def settings_from(config: Config) -> Settings:
    idx = config["index"]
    base = idx["files-base-url"].rstrip("/")
    if not base and config["publish"]["target"] == "github":
        base = github_download_base(config)  # wheels live on the release, not beside the pages
    if base and not re.match(r"^https?://", base):
        raise IndexProblem(
            f"factory.toml: index.files-base-url {idx['files-base-url']!r} must be an absolute http(s) URL, "
            f"or empty when the files are co-hosted with the index"
        )
    url = idx["url"]
    if url and not url.endswith("/"):
        url += "/"
    return Settings(title=idx["title"], url=url, files_base=base, copy_logs=idx["copy-logs"])


# --- reading dist/ ------------------------------------------------------------------


def _iso_z(value: str, where: str) -> str:
    """Normalize a timestamp to the PEP 700 form yyyy-mm-ddThh:mm:ss[.ffffff]Z."""
    try:
        t = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise IndexProblem(f"{where}: 'built_at' {value!r} is not an ISO 8601 time; rebuild the wheel") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    t = t.astimezone(_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{t.microsecond:06d}" if t.microsecond else "") + "Z"


def entry_from_record(rec: dict, where: str) -> dict:
    """The page-relevant facts of one record, validated against its own file name."""
    missing = [k for k in _REQUIRED if k not in rec]
    if missing:
        raise IndexProblem(f"{where}: record lacks {', '.join(missing)}; rebuild the wheel or delete the record")
    fn = rec["filename"]
    try:
        name, version, build, _tags = parse_wheel_filename(fn)
    except InvalidWheelFilename as e:
        raise IndexProblem(f"{where}: 'filename' {fn!r} is not a valid wheel file name ({e})") from None
    if canonicalize_name(rec["name"]) != name:
        raise IndexProblem(f"{where}: 'name' {rec['name']!r} does not match the wheel file name {fn!r}")
    try:
        if Version(rec["version"]) != version:
            raise IndexProblem(f"{where}: 'version' {rec['version']!r} does not match the wheel file name {fn!r}")
    except InvalidVersion:
        raise IndexProblem(f"{where}: 'version' {rec['version']!r} is not a valid version") from None
    build_tag = [build[0], build[1]] if build else None  # JSON-friendly (number, suffix)
    if rec.get("build_tag") not in (None, build[0] if build else None):
        raise IndexProblem(f"{where}: 'build_tag' {rec['build_tag']!r} does not match the wheel file name {fn!r}")
    for key in ("sha256", "metadata_sha256"):
        if not isinstance(rec[key], str) or not _SHA256.match(rec[key]):
            raise IndexProblem(f"{where}: '{key}' must be 64 lowercase hex digits")
    if not isinstance(rec["size"], int) or rec["size"] < 0:
        raise IndexProblem(f"{where}: 'size' must be a byte count")
    return {
        "filename": fn,
        "name": str(name),
        "version": rec["version"],
        "build_tag": build_tag,
        "sha256": rec["sha256"],
        "size": rec["size"],
        "tags": list(rec["tags"]),
        "requires_python": rec.get("requires_python") or None,
        "metadata_sha256": rec["metadata_sha256"],
        "built_at": _iso_z(rec["built_at"], where),
        "debian_runtime": list(rec.get("debian_runtime") or []),
        "python": rec.get("python"),
        "policy": rec.get("achieved_policy") or rec.get("policy"),
        "recipe": rec.get("recipe") or str(name),
        "log": rec.get("log") or None,
        "record_yanked": rec.get("yanked") or None,
    }


def read_record(path: Path) -> dict:
    try:
        rec = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise IndexProblem(f"{path}: unreadable dist record ({e}); rebuild the wheel or delete the record") from None
    if not isinstance(rec, dict):
        raise IndexProblem(f"{path}: a dist record must be a JSON object")
    return rec


@dataclass
class Scan:
    entries: dict[str, dict]  # filename -> entry
    stats: dict[str, list[int]]  # filename -> stat key of its record
    fresh: dict[str, dict]  # records read in this run (filename -> full record)


def scan_dist(dist: Path, cache: dict[str, dict]) -> Scan:
    """Every record in dist/, re-reading only records whose file changed since ``cache``.

    A record without its wheel (or whose wheel has another size) is an error: the
    index would link to a file that is not there.
    """
    scan = Scan({}, {}, {})
    if not dist.is_dir():
        return scan
    with os.scandir(dist) as it:
        names = {e.name: e for e in it}
    orphans, mismatched = [], []
    for rname, rentry in sorted(names.items()):
        if not rname.endswith(".whl.json"):
            continue
        fn = rname[: -len(".json")]
        st = rentry.stat()
        key = [st.st_mtime_ns, st.st_size, st.st_ino]
        cached = cache.get(fn)
        if cached is not None and cached["stat"] == key:
            entry = cached["entry"]
        else:
            rec = read_record(dist / rname)
            entry = entry_from_record(rec, str(dist / rname))
            if entry["filename"] != fn:
                raise IndexProblem(
                    f"{dist / rname}: the record describes {entry['filename']!r}; "
                    f"a record must be named after its wheel (WHEEL.json)"
                )
            scan.fresh[fn] = rec
        wheel = names.get(fn)
        if wheel is None:
            orphans.append(fn)
            continue
        if wheel.stat().st_size != entry["size"]:
            mismatched.append(fn)
        scan.entries[fn] = entry
        scan.stats[fn] = key
    if orphans:
        listed = "\n".join(f"  - {dist / fn}.json" for fn in orphans)
        raise IndexProblem(
            f"{len(orphans)} dist record(s) without their wheel; the index would link to missing files:\n"
            f"{listed}\n  fix: restore the wheel(s), or delete the record(s) and rebuild; "
            f"the index was left as it was"
        )
    if mismatched:
        listed = "\n".join(f"  - {dist / fn}" for fn in mismatched)
        raise IndexProblem(
            f"{len(mismatched)} wheel(s) in dist/ differ in size from their record (replaced by hand?):\n"
            f"{listed}\n  fix: rebuild them (the build gets a new build tag); the index was left as it was"
        )
    return scan


# --- yanks --------------------------------------------------------------------------


class Yanks:
    """PEP 592 yanks: config ``index.yanked`` (filename or NAME==VERSION) and recipe ``[yanked]``."""

    def __init__(self, config: Config, recipes: Iterable[str]):
        self.by_file: dict[str, str] = {}
        self.by_version: dict[tuple[str, Version], str] = {}
        where = str(config.source or config.root / "factory.toml")
        for key, reason in config["index"]["yanked"].items():
            if key.endswith(".whl"):
                self.by_file[key] = reason
            elif "==" in key:
                name, _, ver = key.partition("==")
                try:
                    self.by_version[(canonicalize_name(name.strip()), Version(ver.strip()))] = reason
                except InvalidVersion:
                    raise IndexProblem(f"{where}: index.yanked key {key!r}: {ver!r} is not a version") from None
            else:
                raise IndexProblem(
                    f"{where}: index.yanked key {key!r} must be a wheel file name or NAME==VERSION"
                )
        # Recipe yanks come after config yanks, which win.
        self.recipe_file: dict[str, str] = {}
        self.recipe_version: dict[tuple[str, Version], str] = {}
        root = config.path("recipes")
        for name in sorted(set(recipes)):
            path = recipe_path(root, name)
            if not path.is_file():
                continue  # a retired recipe: its wheels stay, without recipe yanks
            try:
                r = parse_recipe(path)
            except RecipeError:
                raise
            for key, reason in r["yanked"].items():
                if key.endswith(".whl"):
                    self.recipe_file[key] = reason
                else:
                    try:
                        self.recipe_version[(r.name, Version(key))] = reason
                    except InvalidVersion:
                        raise IndexProblem(
                            f"{path}: [yanked] key {key!r} must be a version or a wheel file name"
                        ) from None

    def reason(self, entry: dict) -> str | None:
        fn = entry["filename"]
        if fn in self.by_file:
            return self.by_file[fn]
        vkey = None
        if self.by_version or self.recipe_version:
            vkey = (entry["name"], Version(entry["version"]))
            if vkey in self.by_version:
                return self.by_version[vkey]
        if fn in self.recipe_file:
            return self.recipe_file[fn]
        if vkey is not None and vkey in self.recipe_version:
            return self.recipe_version[vkey]
        return entry["record_yanked"]


# --- rendering ----------------------------------------------------------------------

_e = html.escape


def _sort_key(entry: dict) -> tuple:
    return (Version(entry["version"]), _bt(entry["build_tag"]), entry["filename"])


def _bt(bt) -> tuple:
    """A build tag as a sort key; no tag sorts before any tag (as pip orders them)."""
    return (bt[0], bt[1]) if bt else (-1, "")


def _build_tag_str(bt) -> str:
    return "" if not bt else f"{bt[0]}{bt[1]}"


def render_simple_root(names: list[str]) -> tuple[bytes, bytes]:
    links = "".join(f'<a href="{n}/">{n}</a><br>\n' for n in names)
    page = (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{API_VERSION}">\n'
        "<title>Simple index</title>\n</head>\n<body>\n"
        f"{links}</body>\n</html>\n"
    )
    data = {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]}
    return page.encode(), json.dumps(data, separators=(",", ":")).encode()


def render_simple_project(name: str, files: list[dict], settings: Settings) -> tuple[bytes, bytes]:
    """The PEP 503 page and the PEP 691 document of one project (``files`` sorted)."""
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
        lines.append(f'<a href="{url}#sha256={f["sha256"]}"{attrs}>{_e(fn)}</a><br>\n')
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
    page = (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"<title>Links for {name}</title>\n</head>\n<body>\n<h1>Links for {name}</h1>\n"
        + "".join(lines)
        + "</body>\n</html>\n"
    )
    data = {
        "meta": {"api-version": API_VERSION},
        "name": name,
        "versions": sorted(versions, key=Version),
        "files": jfiles,
    }
    return page.encode(), json.dumps(data, separators=(",", ":")).encode()


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:14px 28px}header a{color:#fff;text-decoration:none}
header h1{margin:0;font-size:20px}main{max-width:1180px;margin:24px auto;padding:0 28px}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;margin-bottom:18px}
h2{font-size:17px;margin:0 0 10px}pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;
padding:9px 12px;overflow-x:auto;margin:6px 0}code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eaeef2;
vertical-align:top}th{font-size:13px;color:#57606a;font-weight:600}td.n{text-align:right;white-space:nowrap}
.tag{display:inline-block;background:#ddf4ff;color:#0969da;border-radius:10px;padding:0 8px;margin:1px 0;
font:12px ui-monospace,monospace}.yank{background:#ffebe9;color:#cf222e;border-radius:10px;padding:0 8px;
font-size:12px}.muted{color:#57606a;font-size:13px}a{color:#0969da}
"""

_URL_SCRIPT = (
    "<script>for(const e of document.querySelectorAll('[data-rel]'))"
    "e.textContent=new URL(e.dataset.rel,location.href).href;</script>"
)


def _human_page(title: str, heading_link: str, body: str, settings: Settings) -> bytes:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<header><h1><a href="{heading_link}">{_e(settings.title)}</a></h1></header>\n'
        f"<main>\n{body}</main>\n{_URL_SCRIPT}\n</body>\n</html>\n"
    ).encode()


def _index_url_code(settings: Settings, rel: str) -> str:
    """The index URL: the configured one, or filled in from the page's own address."""
    if settings.url:
        return _e(settings.url)
    return f'<span data-rel="{rel}">{rel}</span>'


def _date(iso: str) -> str:
    return iso[:10] + " " + iso[11:16] + " UTC"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def render_human_root(projects: dict[str, dict], settings: Settings) -> bytes:
    rows = "".join(
        f'<tr><td><a href="{PROJECT}/{n}/">{n}</a></td><td>{_e(p["latest"])}</td>'
        f'<td class="n">{p["count"]}</td><td>{_date(p["built_at"])}</td></tr>\n'
        for n, p in sorted(projects.items())
    )
    url = _index_url_code(settings, f"{SIMPLE}/")
    body = (
        "<section><h2>Install from this index</h2>\n"
        f"<pre><code>pip install --prefer-binary --extra-index-url {url} PACKAGE</code></pre>\n"
        f"<pre><code>uv pip install --index {url} PACKAGE</code></pre>\n"
        f'<p class="muted">{len(projects)} projects, {sum(p["count"] for p in projects.values())} wheels. '
        f'Machine-readable: <a href="{SIMPLE}/">{SIMPLE}/</a> (PEP 503 HTML, PEP 691 JSON).</p></section>\n'
        "<section><h2>Projects</h2>\n<table>\n<thead><tr><th>Project</th><th>Latest version</th>"
        f'<th class="n">Wheels</th><th>Built</th></tr></thead>\n<tbody>\n{rows}</tbody></table></section>\n'
    )
    return _human_page(settings.title, "./", body, settings)


def render_human_project(name: str, files: list[dict], settings: Settings) -> bytes:
    latest = files[-1]["version"]
    for f in reversed(files):  # the latest version that is not yanked, if any
        if f["yanked"] is None:
            latest = f["version"]
            break
    url = _index_url_code(settings, f"../../{SIMPLE}/")
    debs = sorted({d for f in files if f["version"] == latest for d in f["debian_runtime"]})
    parts = [
        f"<section><h2>{_e(name)} {_e(latest)}</h2>\n",
        f"<pre><code>pip install --prefer-binary --extra-index-url {url} {_e(name)}</code></pre>\n",
        f"<pre><code>uv pip install --index {url} {_e(name)}</code></pre>\n",
    ]
    if debs:
        parts.append(
            "<p>These wheels need Debian packages at run time (not bundled):</p>\n"
            f"<pre><code>sudo apt-get install {_e(' '.join(debs))}</code></pre>\n"
        )
    else:
        parts.append('<p class="muted">No Debian packages needed at run time: the libraries are bundled.</p>\n')
    parts.append(f'<p class="muted"><a href="../../{SIMPLE}/{name}/">simple page</a></p></section>\n')
    by_version: dict[str, list[dict]] = {}
    for f in files:
        by_version.setdefault(f["version"], []).append(f)
    for version in reversed(list(by_version)):
        rows = []
        for f in sorted(by_version[version], key=lambda f: (_bt(f["build_tag"]), f["filename"]), reverse=True):
            tags = "<br>".join(f'<span class="tag">{_e(t)}</span>' for t in f["tags"])
            log = f'<a href="{settings.file_url(f["filename"] + ".log")}">log</a>' if f["has_log"] else ""
            yank = f' <span class="yank">yanked: {_e(f["yanked"] or "no reason given")}</span>' if f["yanked"] is not None else ""
            deb = _e(" ".join(f["debian_runtime"])) or "&mdash;"
            rows.append(
                f'<tr><td><a href="{settings.file_url(f["filename"])}">{_e(f["filename"])}</a>{yank}<br>'
                f'<span class="muted">sha256 {f["sha256"][:16]}&hellip;'
                f'{" &middot; requires Python " + _e(f["requires_python"]) if f["requires_python"] else ""}'
                f"</span></td><td>{tags}</td><td>{_e(_build_tag_str(f['build_tag'])) or '&mdash;'}</td>"
                f'<td class="n">{_size(f["size"])}</td><td>{_date(f["built_at"])}</td><td>{deb}</td><td>{log}</td></tr>\n'
            )
        parts.append(
            f"<section><h2>{_e(name)} {_e(version)}</h2>\n<table>\n<thead><tr><th>File</th><th>Tags</th>"
            "<th>Build</th><th class=\"n\">Size</th><th>Built</th><th>Debian runtime</th><th>Log</th></tr></thead>\n"
            f"<tbody>\n{''.join(rows)}</tbody></table></section>\n"
        )
    return _human_page(f"{name} - {settings.title}", "../../", "".join(parts), settings)


# --- the journal: stage, commit, apply ----------------------------------------------


def _staging_dir(live: Path) -> Path:
    return live.parent / f".{live.name}.staging"


def _lock(live: Path) -> FileLock:
    live.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(live.parent / f".{live.name}.lock"))


def _apply(staging: Path, live: Path) -> None:
    """Rename the staged files into place in the committed order, then delete what went away."""
    plan = json.loads((staging / COMMIT).read_text())
    made: set[Path] = set()
    for rel in plan["moves"]:
        src, dest = staging / rel, live / rel
        if dest.parent not in made:
            dest.parent.mkdir(parents=True, exist_ok=True)
            made.add(dest.parent)
        try:
            os.replace(src, dest)
        except FileNotFoundError:
            if not src.exists() and dest.exists():
                continue  # moved by an earlier, interrupted apply
            raise
    for rel in plan["deletes"]:
        p = live / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    shutil.rmtree(staging, ignore_errors=True)


def recover(live: Path) -> bool:
    """Finish (or discard) an index update that was interrupted. True if one was finished."""
    staging = _staging_dir(live)
    if not staging.exists():
        return False
    if (staging / COMMIT).is_file() and live.is_dir():
        ui.info(f"completing an interrupted update of {live}")
        _apply(staging, live)
        return True
    shutil.rmtree(staging, ignore_errors=True)  # never committed: the live index is the previous one
    return False


class _Stage:
    """Files written for one update, and the order they go live in."""

    ORDER = (FILES, SIMPLE + "/", PROJECT + "/", "root", STATE)

    def __init__(self, staging: Path):
        self.dir = staging
        self.groups: dict[str, list[str]] = {k: [] for k in self.ORDER}
        self._dirs: set[str] = set()

    def _path(self, rel: str) -> Path:
        parent = rel.rpartition("/")[0]
        if parent and parent not in self._dirs:
            (self.dir / parent).mkdir(parents=True, exist_ok=True)
            self._dirs.add(parent)
        return self.dir / rel

    def _group(self, rel: str) -> str:
        if rel == STATE:
            return STATE
        if rel.startswith(FILES + "/"):
            return FILES
        if rel.count("/") >= 2:  # simple/NAME/… or project/NAME/…
            return rel.split("/", 1)[0] + "/"
        return "root"

    def write(self, rel: str, data: bytes) -> None:
        with open(self._path(rel), "wb") as f:
            f.write(data)
        self.groups[self._group(rel)].append(rel)

    def link(self, rel: str, source: Path) -> None:
        """A hard link to ``source`` (a copy across file systems)."""
        dest = self._path(rel)
        try:
            os.link(source, dest)
        except OSError:
            shutil.copyfile(source, dest)
        self.groups[self._group(rel)].append(rel)

    def copy(self, rel: str, source: Path) -> None:
        shutil.copyfile(source, self._path(rel))
        self.groups[self._group(rel)].append(rel)

    def moves(self) -> list[str]:
        return [rel for k in self.ORDER for rel in self.groups[k]]


# --- generation ---------------------------------------------------------------------


@dataclass
class Report:
    index: Path
    mode: str  # "co-hosted" or the files base URL
    added: list[str] = field(default_factory=list)
    replaced: list[dict] = field(default_factory=list)  # {filename, old_sha256, new_sha256}
    removed: list[str] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)  # names sharing one sha256
    projects_written: list[str] = field(default_factory=list)
    files_written: int = 0
    projects: int = 0
    wheels: int = 0
    full: bool = False
    recovered: bool = False
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.removed or self.projects_written)

    def as_dict(self) -> dict:
        return {
            "index": str(self.index),
            "links": self.mode,
            "added": self.added,
            "replaced": self.replaced,
            "removed": self.removed,
            "duplicates": self.duplicates,
            "projects_written": self.projects_written,
            "files_written": self.files_written,
            "projects": self.projects,
            "wheels": self.wheels,
            "full": self.full,
            "seconds": round(self.seconds, 3),
        }


def load_state(live: Path) -> dict | None:
    p = live / STATE
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_bytes())
    except ValueError:
        return None


def _project_digest(settings_key: str, files: list[dict]) -> str:
    return hashlib.sha256(
        json.dumps([settings_key, sorted(files, key=lambda f: f["filename"])], sort_keys=True).encode()
    ).hexdigest()


def _log_sig(entry: dict, root: Path, settings: Settings) -> list | None:
    """(path, size) of the build log to publish beside the wheel, or None."""
    if not settings.copy_logs or not entry["log"]:
        return None
    p = Path(entry["log"])
    p = p if p.is_absolute() else root / p
    try:
        return [str(p), p.stat().st_size]
    except OSError:
        return None


def build_index(
    config: Config,
    *,
    full: bool = False,
    out: Path | None = None,
    exclude: Iterable[str] = (),
    quiet: bool = False,
) -> Report:
    """Bring the index (``out``, default ``paths.index``) up to date with dist/.

    ``exclude`` leaves the named wheels out (publish uses this for an interim
    index while a replaced release asset is re-uploaded).
    """
    t0 = time.perf_counter()
    settings = settings_from(config)
    live = (out or config.path("index")).resolve()
    dist = config.path("dist")
    report = Report(index=live, mode=settings.files_base or "co-hosted")
    with _lock(live):
        report.recovered = recover(live)
        old = load_state(live)
        if old is None and live.exists() and any(live.iterdir()):
            raise IndexProblem(
                f"{live} exists but was not written by `invoke index` (no {STATE}); "
                f"move it away or point paths.index elsewhere; nothing was changed"
            )
        if old is not None and (old.get("format") != FORMAT or old.get("settings") != settings.key()):
            full = True  # the page format or a setting changed: every page differs
        report.full = full = full or old is None
        cache = {} if old is None else old["records"]
        scan = scan_dist(dist, cache)
        excluded = set(exclude)
        entries = {fn: e for fn, e in scan.entries.items() if fn not in excluded}

        yanks = Yanks(config, {e["recipe"] for e in entries.values()})
        old_files: dict[str, dict] = {} if old is None else old["files"]
        old_projects: dict[str, dict] = {} if old is None else old["projects"]

        # Group per project; an entry's page view adds the yank and the log.
        projects: dict[str, list[dict]] = {}
        logs: dict[str, list | None] = {}
        for fn, e in entries.items():
            view = dict(e)
            view["yanked"] = yanks.reason(e)
            logs[fn] = _log_sig(e, config.root, settings)
            view["has_log"] = logs[fn] is not None
            projects.setdefault(e["name"], []).append(view)

        # What changed, by sha256.
        by_sha: dict[str, list[str]] = {}
        for fn, e in entries.items():
            by_sha.setdefault(e["sha256"], []).append(fn)
            prev = old_files.get(fn)
            if prev is None:
                report.added.append(fn)
            elif prev["sha256"] != e["sha256"]:
                report.replaced.append({"filename": fn, "old_sha256": prev["sha256"], "new_sha256": e["sha256"]})
        report.removed = sorted(fn for fn in old_files if fn not in entries)
        report.duplicates = [sorted(v) for v in by_sha.values() if len(v) > 1]

        staging = _staging_dir(live)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        stage = _Stage(staging)
        skey = settings.key()
        new_files: dict[str, dict] = {}
        try:
            # Per-wheel files: .metadata, the wheel (co-hosted), the log.
            for fn, e in entries.items():
                rec_files = {"sha256": e["sha256"], "metadata_sha256": e["metadata_sha256"], "log": logs[fn]}
                prev = old_files.get(fn)
                new_files[fn] = rec_files
                if not full and prev == rec_files:
                    continue
                if full or prev is None or prev["metadata_sha256"] != e["metadata_sha256"]:
                    stage.write(f"{FILES}/{fn}.metadata", _metadata_bytes(fn, scan, dist))
                if not settings.files_base and (full or prev is None or prev["sha256"] != e["sha256"]):
                    stage.link(f"{FILES}/{fn}", dist / fn)
                if logs[fn] is not None and (full or prev is None or prev.get("log") != logs[fn]):
                    stage.copy(f"{FILES}/{fn}.log", Path(logs[fn][0]))
                report.files_written += 1

            # Project pages, only where the project's digest changed.
            summaries: dict[str, dict] = {}
            for name in sorted(projects):
                files = projects[name]
                digest = _project_digest(skey, files)
                prev = old_projects.get(name)
                if not full and prev is not None and prev["digest"] == digest:
                    summaries[name] = prev
                    continue
                files.sort(key=_sort_key)
                html_page, json_page = render_simple_project(name, files, settings)
                stage.write(f"{SIMPLE}/{name}/index.html", html_page)
                stage.write(f"{SIMPLE}/{name}/index.json", json_page)
                stage.write(f"{PROJECT}/{name}/index.html", render_human_project(name, files, settings))
                unyanked = [f for f in files if f["yanked"] is None] or files
                summaries[name] = {
                    "digest": digest,
                    "latest": unyanked[-1]["version"],
                    "built_at": max(f["built_at"] for f in files),
                    "count": len(files),
                }
                report.projects_written.append(name)

            # Root pages: rewritten when their bytes change.
            names = sorted(projects)
            simple_html, simple_json = render_simple_root(names)
            for rel, data in (
                (f"{SIMPLE}/index.html", simple_html),
                (f"{SIMPLE}/index.json", simple_json),
                ("index.html", render_human_root(summaries, settings)),
            ):
                if full or _read_or_none(live / rel) != data:
                    stage.write(rel, data)

            # Deletions: files of removed wheels, pages of removed projects.
            deletes = []
            for fn in report.removed:
                deletes += [f"{FILES}/{fn}.metadata", f"{FILES}/{fn}", f"{FILES}/{fn}.log"]
            for fn, rec_files in new_files.items():
                prev = old_files.get(fn)
                if prev and prev.get("log") and not rec_files["log"]:
                    deletes.append(f"{FILES}/{fn}.log")
            for name in old_projects:
                if name not in projects:
                    deletes += [f"{SIMPLE}/{name}", f"{PROJECT}/{name}"]
            if full and old is not None:
                deletes += _strays(live, stage, settings, new_files, projects)

            report.projects = len(projects)
            report.wheels = len(entries)
            state = {
                "format": FORMAT,
                "generator": f"wheelfactory {__version__}",
                "settings": skey,
                "files_base": settings.files_base,
                "records": {fn: {"stat": scan.stats[fn], "entry": e} for fn, e in scan.entries.items()},
                "files": new_files,
                "projects": summaries,
                "excluded": sorted(excluded & set(scan.entries)),
            }
            stage.write(STATE, json.dumps(state, separators=(",", ":")).encode())
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

        if not live.exists():
            os.rename(staging, live)  # a first index: one atomic rename
        elif (
            stage.groups[FILES] or stage.groups[SIMPLE + "/"] or stage.groups[PROJECT + "/"]
            or stage.groups["root"] or deletes or report.replaced
        ):
            plan = {"moves": stage.moves(), "deletes": deletes}
            (staging / COMMIT).write_text(json.dumps(plan))  # the commit point
            _apply(staging, live)
        else:
            # Nothing visible changed; refresh the record cache only.
            os.replace(staging / STATE, live / STATE)
            shutil.rmtree(staging, ignore_errors=True)
    report.seconds = time.perf_counter() - t0
    if not quiet:
        _print_report(report)
    return report


def _metadata_bytes(fn: str, scan: Scan, dist: Path) -> bytes:
    rec = scan.fresh.get(fn) or read_record(dist / f"{fn}.json")
    text = rec.get("metadata")
    where = dist / f"{fn}.json"
    if not isinstance(text, str) or not text:
        raise IndexProblem(f"{where}: the record lacks the core metadata text ('metadata'); rebuild the wheel")
    data = text.encode("utf-8")
    if hashlib.sha256(data).hexdigest() != rec["metadata_sha256"]:
        raise IndexProblem(f"{where}: 'metadata' does not match 'metadata_sha256'; the record is damaged, rebuild")
    return data


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _strays(live: Path, stage: _Stage, settings: Settings, files: dict, projects: dict) -> list[str]:
    """On a full rebuild: everything in the live index that the new index does not hold."""
    keep = set(stage.moves())
    for fn in files:
        keep.add(f"{FILES}/{fn}.metadata")
    out = []
    for p in live.rglob("*"):
        if p.is_dir():
            continue
        rel = p.relative_to(live).as_posix()
        if rel.startswith(STATE_DIR + "/") or rel in keep:
            continue
        out.append(rel)
    return out


def _print_report(r: Report) -> None:
    for fn in r.added:
        ui.info(f"  [green]added[/green]     {fn}")
    for x in r.replaced:
        ui.warn(
            f"{x['filename']}: same file name, different content (sha256 {x['old_sha256'][:12]}… -> "
            f"{x['new_sha256'][:12]}…); the index now serves the newer build"
        )
    for fn in r.removed:
        ui.info(f"  [red]removed[/red]   {fn}")
    for names in r.duplicates:
        ui.warn(f"same content under {len(names)} names: {', '.join(names)}")
    what = "rebuilt" if r.full else "updated" if r.changed else "up to date"
    ui.info(
        f"index {what}: {r.index} — {r.projects} projects, {r.wheels} wheels; "
        f"{len(r.added)} added, {len(r.replaced)} replaced, {len(r.removed)} removed; "
        f"{len(r.projects_written)} project pages written in {r.seconds:.2f}s (links: {r.mode})"
    )


def index_command(root: Path | str | None = None, *, full: bool = False, as_json: bool = False) -> int:
    """``invoke index``: regenerate index/ from dist/ and report what changed."""
    config = load_config(root)
    report = build_index(config, full=full)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    return 0
