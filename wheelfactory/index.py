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
    .wheelfactory/state.marshal  what this index holds, and a cache of the records (not published)

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
index exactly as it was. (While the renames run, for microseconds, the HTML and
JSON twins of one page may be one update apart; each is complete by itself.)

Only the pages of projects whose records (or yanks, or settings) changed are
rewritten; unchanged records are not even re-read: their summaries are cached,
keyed by the stat of the record file. A big generation (a first index, a full
rebuild) is spread over worker processes when the machine has idle cores.

Every file is known by its sha256. A wheel whose file name was indexed before
with different content is reported as *replaced* (a stale build must never hide
behind an old name), two names with the same content as duplicates; the report
lists what was added, replaced and removed.
"""

from __future__ import annotations

import collections
import datetime as _dt
import hashlib
import html
import json
import marshal
import multiprocessing
import os
import re
import shutil
import time
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from filelock import FileLock
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from . import __version__, ui
from .config import Config, load_config
from .errors import FactoryError
from .recipe import parse_recipe, recipe_path

# Bump when the format of any generated file changes: every page is then rewritten.
FORMAT = "2"
API_VERSION = "1.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"

FILES = "files"
SIMPLE = "simple"
PROJECT = "project"
STATE_DIR = ".wheelfactory"
STATE = f"{STATE_DIR}/state.marshal"  # marshal: loads 10k records' summaries in milliseconds
COMMIT = ".commit.json"  # inside the staging folder: its presence means "apply me"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILENAME = re.compile(r"^[A-Za-z0-9._+!-]+\.whl$")  # what a wheel name can hold: safe in HTML and paths
_ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
_IO_THREADS = 4  # reading records from a cold disk overlaps well; writing files does not (measured)
# Big generations (a first index, a full rebuild) spread over the CPU cores above these sizes.
PARALLEL_MIN_RECORDS = 2000
PARALLEL_MIN_PROJECTS = 300
WORKERS: int | None = None  # worker processes; None = the idle cores
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
            return f"{self.files_base}/{_quote(filename)}"
        return "../" * depth + f"{FILES}/{_quote(filename)}"


_URL_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def _quote(filename: str) -> str:
    return filename if _URL_SAFE.match(filename) else quote(filename)


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
    if isinstance(value, str) and _ISO_Z.match(value):
        return value  # what store.utcnow() writes
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
    if not isinstance(fn, str) or not _FILENAME.match(fn):
        raise IndexProblem(f"{where}: 'filename' {fn!r} is not a valid wheel file name")
    try:
        name, version, build, _tags = parse_wheel_filename(fn)
    except InvalidWheelFilename as e:
        raise IndexProblem(f"{where}: 'filename' {fn!r} is not a valid wheel file name ({e})") from None
    if canonicalize_name(rec["name"]) != name:
        raise IndexProblem(f"{where}: 'name' {rec['name']!r} does not match the wheel file name {fn!r}")
    if rec["version"] != str(version):  # (the usual case needs no second parse)
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


def read_record(path: Path | str) -> dict:
    data = _read_bytes(str(path))
    if isinstance(data, OSError):
        raise IndexProblem(f"{path}: unreadable dist record ({data}); rebuild the wheel or delete the record")
    return _parse_record(data, path)


def _parse_record(data: bytes, path) -> dict:
    try:
        rec = json.loads(data)
    except ValueError as e:
        raise IndexProblem(f"{path}: unreadable dist record ({e}); rebuild the wheel or delete the record") from None
    if not isinstance(rec, dict):
        raise IndexProblem(f"{path}: a dist record must be a JSON object")
    return rec


def _read_bytes(path: str) -> bytes | OSError:
    # os.open/os.read: a buffered open() adds an fstat, an ioctl and two lseeks per
    # file, which is ~40% of reading 10,000 small records (measured).
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        return e
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except OSError as e:
        return e
    finally:
        os.close(fd)


def _in_threads(fn, items: list) -> list:
    """``[fn(x) for x in items]``, spread over a few threads in chunks (for I/O-bound work)."""
    if len(items) < 256:
        return [fn(x) for x in items]
    n = _IO_THREADS
    chunks = [items[i::n] for i in range(n)]
    with ThreadPoolExecutor(n) as pool:
        parts = list(pool.map(lambda chunk: [fn(x) for x in chunk], chunks))
    out: list = [None] * len(items)
    for i, part in enumerate(parts):
        out[i::n] = part
    return out


# The per-record summary cached in the index state: a tuple (fast to load for 10,000
# records). Pages are rendered from full entries, re-read only for changed projects.
S_STAT, S_NAME, S_VERSION, S_RECIPE, S_SHA256, S_METADATA_SHA256, S_BUILT_AT, S_YANKED, S_LOG = range(9)


def summary_of(entry: dict, stat: tuple) -> tuple:
    return (stat, entry["name"], entry["version"], entry["recipe"], entry["sha256"], entry["metadata_sha256"],
            entry["built_at"], entry["record_yanked"], entry["log"])


@dataclass
class Scan:
    summaries: dict[str, tuple]  # filename -> summary (see S_*): cached, or filled by load_records()
    misses: list[str]  # records to (re)read: new or changed since the cache
    stats: dict[str, tuple]  # their stat keys
    entries: dict[str, dict] = field(default_factory=dict)  # full entries of the records read in this run


def scan_dist(dist: Path, cache: dict[str, tuple], *, reread: bool = False) -> Scan:
    """Which records of dist/ are unchanged since ``cache``, and which must be read.

    A record is known by the stat (mtime, size, inode) of its file: the store
    writes records atomically, so a rewritten record always differs. A record
    without its wheel is an error (the index would link to a file that is not
    there). Wheels themselves are never opened.
    """
    scan = Scan({}, [], {})
    if not dist.is_dir():
        return scan
    # listdir + stat relative to the folder: no DirEntry objects, no full-path lookups
    # (the stat per record is the floor of an incremental run; scandir would not save it,
    # Linux readdir gives no mtime or size).
    names = os.listdir(dist)
    wheels = {n for n in names if n.endswith(".whl")}
    orphans = []
    summaries, misses, stats = scan.summaries, scan.misses, scan.stats
    stat, get = os.stat, cache.get
    fd = os.open(dist, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            if not name.endswith(".whl.json"):
                continue
            fn = name[:-5]
            if fn not in wheels:
                orphans.append(fn)
                continue
            st = stat(name, dir_fd=fd)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            cached = get(fn)
            if cached is not None and cached[S_STAT] == key and not reread:
                summaries[fn] = cached
            else:
                misses.append(fn)
                stats[fn] = key
    finally:
        os.close(fd)
    scan.misses.sort()
    orphans.sort()
    if orphans:
        listed = "\n".join(f"  - {dist / fn}.json" for fn in orphans)
        raise IndexProblem(
            f"{len(orphans)} dist record(s) without their wheel; the index would link to missing files:\n"
            f"{listed}\n  fix: restore the wheel(s), or delete the record(s) and rebuild; "
            f"the index was left as it was"
        )
    return scan


def _load_chunk(dist: str, staging: str, full: bool, skip: frozenset,
                items: list[tuple[str, tuple, str | None]]) -> tuple[list, list[str]]:
    """Read and check records; write the .metadata of those that need it into ``staging``.

    ``items``: (filename, stat key, sha256 of the .metadata the index holds now, or None).
    Returns ([(filename, entry, summary, wrote .metadata)], [wheels whose size differs]).
    Runs in a worker process for big generations.
    """
    paths = [f"{dist}/{fn}.json" for fn, _, _ in items]
    datas = _in_threads(_read_bytes, paths)
    out, mismatched, writes = [], [], []
    for (fn, stat, prev_msha), path, data in zip(items, paths, datas):
        if isinstance(data, OSError):
            raise IndexProblem(f"{path}: unreadable dist record ({data}); rebuild the wheel or delete the record")
        rec = _parse_record(data, path)
        entry = entry_from_record(rec, path)
        if entry["filename"] != fn:
            raise IndexProblem(
                f"{path}: the record describes {entry['filename']!r}; a record must be named after its wheel (WHEEL.json)"
            )
        try:
            if os.stat(f"{dist}/{fn}").st_size != entry["size"]:
                mismatched.append(fn)
        except FileNotFoundError:
            raise IndexProblem(f"{path}: the record's wheel disappeared while indexing; re-run") from None
        write = fn not in skip and (full or prev_msha != entry["metadata_sha256"])
        if write:
            writes.append((f"{staging}/{FILES}/{fn}.metadata", metadata_bytes(rec, path)))
        out.append((fn, entry, summary_of(entry, stat), write))
    if writes:
        os.makedirs(f"{staging}/{FILES}", exist_ok=True)
        for w in writes:
            _write_file(w)
    return out, mismatched


def _render_chunk(staging: str, settings: "Settings", projects: list[tuple[str, list[dict]]]) -> list:
    """Render and write the three pages of each project; returns [(name, latest, last built, wheels)]."""
    writes, out = [], []
    for name, files in projects:
        html_page, json_page = render_simple_project(name, files, settings)
        os.makedirs(f"{staging}/{SIMPLE}/{name}", exist_ok=True)
        os.makedirs(f"{staging}/{PROJECT}/{name}", exist_ok=True)
        writes += [
            (f"{staging}/{SIMPLE}/{name}/index.html", html_page),
            (f"{staging}/{SIMPLE}/{name}/index.json", json_page),
            (f"{staging}/{PROJECT}/{name}/index.html", render_human_project(name, files, settings)),
        ]
        unyanked = [f for f in files if f["yanked"] is None] or files
        out.append((name, unyanked[-1]["version"], max(f["built_at"] for f in files), len(files)))
    for w in writes:
        _write_file(w)
    return out


def _write_file(item: tuple[str, bytes]) -> None:
    path, data = item
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


class _Workers:
    """Run chunks of work in processes (fork) when there is enough of it, else right here."""

    def __init__(self):
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        # Only idle cores help (on a busy machine workers just add their overhead); the
        # load average counts this process too.
        idle = cpus - os.getloadavg()[0] + 1 if hasattr(os, "getloadavg") else cpus
        self.n = WORKERS or max(1, min(cpus, 8, int(idle + 0.5)))
        self.pool: ProcessPoolExecutor | None = None

    def map(self, fn, items: list, *args, threshold: int) -> list:
        """``fn(*args, chunk)`` over chunks of ``items``; the results, in order."""
        if not items:
            return []
        if self.n <= 1 or len(items) < threshold:
            return [fn(*args, items)]
        if self.pool is None:
            # fork is cheapest, but only safe from a single-threaded process (another
            # thread could hold a lock the child inherits); otherwise use a fork server.
            methods = multiprocessing.get_all_start_methods()
            method = "fork" if threading.active_count() == 1 and "fork" in methods else (
                "forkserver" if "forkserver" in methods else "spawn")
            self.pool = ProcessPoolExecutor(self.n, mp_context=multiprocessing.get_context(method))
        k = self.n * 4
        chunks = [items[i * len(items) // k:(i + 1) * len(items) // k] for i in range(k)]
        futures = [self.pool.submit(fn, *args, c) for c in chunks if c]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
            self.pool = None


def load_records(scan: Scan, dist: Path, staging: Path, old_files: dict, *, full: bool, skip: frozenset,
                 stage: "_Stage", workers: _Workers) -> None:
    """Read the records ``scan`` found new or changed, writing their .metadata as needed."""
    items = [(fn, scan.stats[fn], (old_files.get(fn) or (None, None))[1]) for fn in scan.misses]
    mismatched: list[str] = []
    for loaded, bad in workers.map(_load_chunk, items, str(dist), str(staging), full, skip,
                                   threshold=PARALLEL_MIN_RECORDS):
        mismatched += bad
        for fn, entry, summary, wrote in loaded:
            scan.entries[fn] = entry
            scan.summaries[fn] = summary
            if wrote:
                stage.record(f"{FILES}/{fn}.metadata")
    if mismatched:
        listed = "\n".join(f"  - {dist / fn}" for fn in sorted(mismatched))
        raise IndexProblem(
            f"{len(mismatched)} wheel(s) in dist/ differ in size from their record (replaced by hand?):\n"
            f"{listed}\n  fix: rebuild them (the build gets a new build tag); the index was left as it was"
        )


def _entry(fn: str, scan: Scan, dist: Path) -> dict:
    """The full entry of a record: from this run's reads, else read now (a changed project's other wheels)."""
    e = scan.entries.get(fn)
    if e is None:
        e = scan.entries[fn] = entry_from_record(read_record(f"{dist}/{fn}.json"), f"{dist}/{fn}.json")
    return e


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
        present = set(os.listdir(root)) if root.is_dir() else set()
        for name in sorted(set(recipes) & present):  # a retired recipe's wheels stay, without its yanks
            path = recipe_path(root, name)
            if not os.path.isfile(path):
                continue
            r = parse_recipe(path)
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

    def key(self) -> str:
        """Everything the yanks depend on (a change re-checks every wheel)."""
        return repr([sorted(self.by_file.items()), sorted((n, str(v), r) for (n, v), r in self.by_version.items()),
                     sorted(self.recipe_file.items()),
                     sorted((n, str(v), r) for (n, v), r in self.recipe_version.items())])

    def reason(self, summary: tuple, filename: str) -> str | None:
        if filename in self.by_file:
            return self.by_file[filename]
        vkey = None
        if self.by_version or self.recipe_version:
            vkey = (summary[S_NAME], Version(summary[S_VERSION]))
            if vkey in self.by_version:
                return self.by_version[vkey]
        if filename in self.recipe_file:
            return self.recipe_file[filename]
        if vkey is not None and vkey in self.recipe_version:
            return self.recipe_version[vkey]
        return summary[S_YANKED]


# --- rendering ----------------------------------------------------------------------

_e = html.escape


def sort_files(files: list[dict]) -> None:
    """Oldest first: by version, then build tag (no tag first), then file name."""
    versions = {v: Version(v) for v in {f["version"] for f in files}}
    files.sort(key=lambda f: (versions[f["version"]], _bt(f["build_tag"]), f["filename"]))


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
        "versions": list(versions),  # ``files`` is sorted by version: so is this
        "files": jfiles,
    }
    return page.encode(), json.dumps(data, separators=(",", ":")).encode()


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
font-size:12px}.muted{color:#57606a;font-size:13px}a{color:#0969da}
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


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def render_human_root(projects: dict[str, tuple], settings: Settings) -> bytes:
    """``projects``: name -> (latest version, last built, number of wheels)."""
    rows = "".join(
        f'<tr><td><a href="{PROJECT}/{n}/">{n}</a></td><td>{_e(latest)}</td>'
        f'<td class="n">{count}</td><td class="d">{_date(built)}</td></tr>\n'
        for n, (latest, built, count) in sorted(projects.items())
    )
    url = _index_url_code(settings, f"{SIMPLE}/")
    body = (
        "<section><h2>Install from this index</h2>\n"
        f"<pre><code>pip install --prefer-binary --extra-index-url {url} PACKAGE</code></pre>\n"
        f"<pre><code>uv pip install --index {url} PACKAGE</code></pre>\n"
        f'<p class="muted">{len(projects)} projects, {sum(p[2] for p in projects.values())} wheels. '
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
    built = max(f["built_at"] for f in files)
    parts = [
        f"<section><h2>Install {_e(name)}</h2>\n",
        f'<p class="muted">Latest version {_e(latest)} &middot; {len(files)} wheel{"s" if len(files) != 1 else ""} '
        f"&middot; last built {_date(built)}</p>\n",
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
                f'<td class="n">{_size(f["size"])}</td><td class="d">{_date(f["built_at"])}</td><td>{deb}</td><td>{log}</td></tr>\n'
            )
        parts.append(
            f"<section><h2>Version {_e(version)}</h2>\n<table>\n<thead><tr><th>File</th><th>Tags</th>"
            "<th>Build</th><th class=\"n\">Size</th><th>Built</th><th>Debian runtime</th><th>Log</th></tr></thead>\n"
            f"<tbody>\n{''.join(rows)}</tbody></table></section>\n"
        )
    return _human_page(f"{name} - {settings.title}", "../../", "".join(parts), settings, crumb=name)


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


def link_or_copy(source, dest) -> None:
    """Hard-link ``source`` to ``dest``; copy it when a link is impossible or would not be
    readable by a web server (the store writes 0600 files) -- the copy is made 0644."""
    if os.stat(source).st_mode & 0o044 == 0o044:
        try:
            os.link(source, dest)
            return
        except OSError:
            pass
    shutil.copyfile(source, dest)
    os.chmod(dest, 0o644)


class _Stage:
    """Files written for one update, and the order they go live in.

    Writes are queued and flushed by a few threads at once (the file system,
    not Python, is the bottleneck of writing thousands of small files).
    """

    ORDER = (FILES, SIMPLE + "/", PROJECT + "/", "root", STATE)

    def __init__(self, staging: Path):
        self.dir = str(staging)
        self.groups: dict[str, list[str]] = {k: [] for k in self.ORDER}
        self._dirs: set[str] = set()
        self._pending: list[tuple[str, bytes | Path, str]] = []  # (path, data or source, how)

    def _path(self, rel: str) -> str:
        parent = rel.rpartition("/")[0]
        if parent:
            self._dirs.add(parent)  # made by flush(), before the files
        return f"{self.dir}/{rel}"

    def _group(self, rel: str) -> str:
        if rel == STATE:
            return STATE
        if rel.startswith(FILES + "/"):
            return FILES
        if rel.count("/") >= 2:  # simple/NAME/… or project/NAME/…
            return rel.split("/", 1)[0] + "/"
        return "root"

    def write(self, rel: str, data: bytes) -> None:
        self._pending.append((self._path(rel), data, "write"))
        self.groups[self._group(rel)].append(rel)

    def record(self, rel: str) -> None:
        """A file a worker wrote into the staging folder itself."""
        self.groups[self._group(rel)].append(rel)

    def link(self, rel: str, source: Path) -> None:
        """A hard link to ``source`` (a copy across file systems)."""
        self._pending.append((self._path(rel), source, "link"))
        self.groups[self._group(rel)].append(rel)

    def copy(self, rel: str, source: Path) -> None:
        self._pending.append((self._path(rel), source, "copy"))
        self.groups[self._group(rel)].append(rel)

    @staticmethod
    def _do(item: tuple) -> None:
        path, what, how = item
        if how == "write":
            _write_file((path, what))
        elif how == "link":
            link_or_copy(what, path)
        else:
            shutil.copyfile(what, path)

    def flush(self) -> None:
        for d in sorted(self._dirs):  # parents sort before children
            os.makedirs(f"{self.dir}/{d}", exist_ok=True)
        self._dirs.clear()
        items, self._pending = self._pending, []
        for item in items:
            self._do(item)

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
    """What the index at ``live`` holds (None if it has no state: not ours, or not yet written)."""
    p = live / STATE
    try:
        data = p.read_bytes()
    except OSError:
        return None
    try:
        state = marshal.loads(data)
        return state if isinstance(state, dict) and state.get("format") else {"format": None}
    except (ValueError, EOFError, TypeError):
        return {"format": None}  # unreadable (another Python's marshal?): ours, rebuilt in full


def indexed_wheels(state: dict) -> list[dict]:
    """What an index links to, per wheel (for publishing): name, hashes, build time, log."""
    out = []
    for fn, (sha, msha, log) in sorted(state["files"].items()):
        out.append({"filename": fn, "sha256": sha, "metadata_sha256": msha,
                    "built_at": state["records"][fn][S_BUILT_AT], "has_log": log is not None})
    return out


def _log_sig(log: str | None, root: Path, settings: Settings) -> tuple | None:
    """(path, size) of the build log to publish beside the wheel, or None."""
    if not settings.copy_logs or not log:
        return None
    p = log if os.path.isabs(log) else f"{root}/{log}"
    try:
        return (p, os.stat(p).st_size)
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
        skey = settings.key()
        compatible = old is not None and old.get("format") == FORMAT
        if not compatible or old.get("settings") != skey:
            full = True  # a first index, a new page format or changed settings: every page differs
        report.full = full
        cache: dict[str, tuple] = old["records"] if compatible else {}
        old_files: dict[str, tuple] = old["files"] if compatible else {}
        old_projects: dict[str, tuple] = old["projects"] if compatible else {}

        scan = scan_dist(dist, cache, reread=full)
        excluded = frozenset(exclude)
        staging = _staging_dir(live)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        stage = _Stage(staging)
        workers = _Workers()
        try:
            load_records(scan, dist, staging, old_files, full=full, skip=excluded, stage=stage, workers=workers)
            report, deletes = _generate(config, settings, skey, live, dist, old if compatible else None,
                                        old_files, old_projects, scan, excluded, full, stage, workers, report)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            workers.close()

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
            # Nothing visible changed: refresh the record cache if a record was re-read
            # (touched, rewritten with the same content); else leave the index byte for byte.
            if scan.misses:
                (live / STATE_DIR).mkdir(exist_ok=True)
                os.replace(staging / STATE, live / STATE)
            shutil.rmtree(staging, ignore_errors=True)
    report.seconds = time.perf_counter() - t0
    if not quiet:
        _print_report(report)
    return report


def _generate(config: Config, settings: Settings, skey: str, live: Path, dist: Path, old: dict | None,
              old_files: dict, old_projects: dict, scan: Scan, excluded: frozenset, full: bool, stage: _Stage,
              workers: _Workers, report: Report) -> tuple[Report, list[str]]:
    """Stage every changed file of the index; returns the report and what to delete.

    Only wheels whose record was (re)read, or that are new to the index, are looked
    at one by one (everything, when the yanks or the settings changed): an
    unchanged record of an unchanged project costs nothing but its stat.
    """
    old_yanked: dict[str, str] = old["yanked"] if old else {}
    old_by_project: dict[str, list[str]] = old["by_project"] if old else {}
    summaries = scan.summaries
    current = set(summaries) - excluded
    yanks = Yanks(config, {sm[S_RECIPE] for fn, sm in summaries.items() if fn not in excluded}
                  if excluded else {sm[S_RECIPE] for sm in summaries.values()})
    yank_key = yanks.key()
    full_check = full or old is None or old["yank_key"] != yank_key
    removed = set(old_files) - current
    recheck = current if full_check else (set(scan.stats) & current) | (current - set(old_files))

    new_files = dict(old_files)
    new_yanked = dict(old_yanked)
    by_project = dict(old_by_project)  # lists are copied before they change
    affected: set[str] = set()
    for fn in removed:
        del new_files[fn]
        new_yanked.pop(fn, None)
        cached = old["records"].get(fn) if old else None
        name = cached[S_NAME] if cached else next((n for n, fns in old_by_project.items() if fn in fns), None)
        if name:
            affected.add(name)
            by_project[name] = [f for f in by_project[name] if f != fn]

    for fn in sorted(recheck):
        sm = summaries[fn]
        name = sm[S_NAME]
        y = yanks.reason(sm, fn)
        prev = old_files.get(fn)
        if full or prev is None or fn in scan.stats:
            log = _log_sig(sm[S_LOG], config.root, settings)
        else:
            log = prev[2]  # copied into the index already; the source may be gone since
        files_now = (sm[S_SHA256], sm[S_METADATA_SHA256], log)
        if prev is None:
            report.added.append(fn)
        elif prev[0] != files_now[0]:
            report.replaced.append({"filename": fn, "old_sha256": prev[0], "new_sha256": files_now[0]})
        if fn not in old_files:  # (every indexed wheel is in its project's list)
            by_project[name] = [*by_project.get(name, ()), fn]
        if full or prev != files_now or fn in scan.stats or old_yanked.get(fn) != y:
            affected.add(name)
        new_files[fn] = files_now
        if y is None:
            new_yanked.pop(fn, None)
        else:
            new_yanked[fn] = y

        # Per-wheel files: .metadata (written while reading changed records), the wheel
        # (co-hosted), the log.
        if not full and prev == files_now:
            continue
        sha, msha, _ = files_now
        if fn not in scan.stats and (prev is None or prev[1] != msha):
            # An unchanged record whose .metadata the index lacks (it was excluded before).
            path = f"{dist}/{fn}.json"
            stage.write(f"{FILES}/{fn}.metadata", metadata_bytes(read_record(path), path))
        if not settings.files_base and (full or prev is None or prev[0] != sha):
            stage.link(f"{FILES}/{fn}", dist / fn)
        if log is not None and (full or prev is None or prev[2] != log):
            stage.copy(f"{FILES}/{fn}.log", Path(log[0]))
        report.files_written += 1
    report.added.sort()
    report.removed = sorted(removed)
    by_project = {name: fns for name, fns in by_project.items() if fns}
    # Duplicates: one content under several names.
    if len({v[0] for v in new_files.values()}) < len(new_files):  # (the usual case: none)
        counts = collections.Counter(v[0] for v in new_files.values())
        dup = {sha for sha, n in counts.items() if n > 1}
        groups: dict[str, list[str]] = {}
        for fn, (sha, _, _) in new_files.items():
            if sha in dup:
                groups.setdefault(sha, []).append(fn)
        report.duplicates = sorted(sorted(g) for g in groups.values())

    # Project pages, only for the projects affected.
    projects: dict[str, tuple] = {n: v for n, v in old_projects.items() if n in by_project and n not in affected}
    to_render: list[tuple[str, list[dict]]] = []
    for name in sorted(affected & set(by_project)):
        files = []
        for fn in by_project[name]:
            view = dict(_entry(fn, scan, dist))
            view["yanked"] = new_yanked.get(fn)
            view["has_log"] = new_files[fn][2] is not None
            files.append(view)
        sort_files(files)
        by_project[name] = [f["filename"] for f in files]
        to_render.append((name, files))
    for rendered in workers.map(_render_chunk, to_render, str(stage.dir), settings,
                                threshold=PARALLEL_MIN_PROJECTS):
        for name, latest, built, count in rendered:
            projects[name] = (latest, built, count)
            for rel in (f"{SIMPLE}/{name}/index.html", f"{SIMPLE}/{name}/index.json",
                        f"{PROJECT}/{name}/index.html"):
                stage.record(rel)
            report.projects_written.append(name)
    projects = dict(sorted(projects.items()))

    # Root pages: rewritten when their bytes change.
    names = list(projects)
    simple_html, simple_json = render_simple_root(names)
    for rel, data in (
        (f"{SIMPLE}/index.html", simple_html),
        (f"{SIMPLE}/index.json", simple_json),
        ("index.html", render_human_root(projects, settings)),
    ):
        if full or _read_or_none(live / rel) != data:
            stage.write(rel, data)

    # Deletions: files of removed wheels, pages of removed projects.
    deletes = []
    for fn in report.removed:
        deletes += [f"{FILES}/{fn}.metadata", f"{FILES}/{fn}", f"{FILES}/{fn}.log"]
    for fn in recheck:
        prev = old_files.get(fn)
        if prev and prev[2] and not new_files[fn][2]:
            deletes.append(f"{FILES}/{fn}.log")
    for name in old_projects:
        if name not in by_project:
            deletes += [f"{SIMPLE}/{name}", f"{PROJECT}/{name}"]
    if full and live.exists():
        deletes += _strays(live, stage)

    report.projects = len(by_project)
    report.wheels = len(new_files)
    state = {
        "format": FORMAT,
        "generator": f"wheelfactory {__version__}",
        "settings": skey,
        "files_base": settings.files_base,
        "records": scan.summaries,  # every record of dist/, excluded ones too (a cache)
        "files": new_files,  # what the index links to: (sha256, .metadata sha256, log (path, size))
        "yanked": new_yanked,  # filename -> reason, yanked wheels only
        "yank_key": yank_key,
        "by_project": by_project,  # name -> its wheels, sorted as on the pages
        "projects": projects,  # name -> (latest version, last built, number of wheels)
        "excluded": sorted(excluded & set(scan.summaries)),
    }
    stage.write(STATE, marshal.dumps(state))
    stage.flush()
    return report, deletes


def metadata_bytes(rec: dict, where) -> bytes:
    """The PEP 658 file of a record: its core metadata text, checked against its hash."""
    text = rec.get("metadata")
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


def _strays(live: Path, stage: _Stage) -> list[str]:
    """On a full rebuild: everything in the live index that the new index does not hold."""
    keep = set(stage.moves())
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
