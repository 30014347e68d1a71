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
    .wheelfactory/state.marshal  what this index holds: each record's stat key (not published)
    .wheelfactory/shards/NN.marshal  each record's summary, by project (not published)

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

Work is done per project. A project is rendered again only when one of its
records is new, changed or gone, or one of its yanks changed; an unchanged record
is not even re-read: the state knows it by the stat of its file, and keeps a
one-string summary of it in the shard file of its project, which is read only
when that project is rendered. dist/ is listed and every record stat'ed on each
run (a record overwritten in place changes nothing else); with an idle core, a
helper process does half of the stats (``statkeys``). A big generation (a first
index, a full rebuild) is spread over worker processes when the machine has idle
cores: each reads, checks and renders whole projects, so only small summaries
travel back.

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
import marshal
import multiprocessing
import os
import re
import shutil
import threading
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, NamedTuple
from urllib.parse import quote

from filelock import FileLock
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .. import __version__, ui
from ..settings.factory import Config, load_config
from ..errors import FactoryError
from ..settings.recipe import parse_recipe, recipe_path
from .statkeys import StatHelper, stat_keys

# Bump when the format of any generated file changes: every page is then rewritten.
FORMAT = "5"
API_VERSION = "1.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"

FILES = "files"
SIMPLE = "simple"
PROJECT = "project"
STATE_DIR = ".wheelfactory"
STATE = f"{STATE_DIR}/state.marshal"  # marshal: what every run needs (a stat key per record), in about a ms
SHARD_DIR = f"{STATE_DIR}/shards"  # the records' summaries, by project: read only for the projects a run renders
SHARDS = 64
COMMIT = ".commit.json"  # inside the staging folder: its presence means "apply me"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILENAME = re.compile(r"^[A-Za-z0-9._+!-]+\.whl$")  # what a wheel name can hold: safe in HTML and paths
_ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
_IO_THREADS = 4  # reading records from a cold disk overlaps well; writing files does not (measured)
# Big generations (a first index, a full rebuild) spread over the CPU cores above these sizes.
PARALLEL_MIN_RECORDS = 2000
PARALLEL_MIN_PROJECTS = 300
SCAN_HELPER_MIN = 4000  # records (in the state); below this, a helper process costs more than it saves
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
    pub = config.publish
    api = pub.api_url.rstrip("/")
    if api == "https://api.github.com":
        web = "https://github.com"
    elif api.endswith("/api/v3"):
        web = api[: -len("/api/v3")]
    else:
        raise IndexProblem(
            f"factory.toml: cannot tell where release files are downloaded from for publish.api-url = {api!r}; "
            f"set index.files-base-url (e.g. https://HOST/OWNER/REPO/releases/download/TAG)"
        )
    if not pub.repository:
        raise IndexProblem(
            "factory.toml: publish.target is 'github' but publish.repository is empty; "
            "set it to OWNER/NAME (or set index.files-base-url)"
        )
    return f"{web}/{pub.repository}/releases/download/{pub.release_tag}"


def settings_from(config: Config) -> Settings:
    idx = config.index
    base = idx.files_base_url.rstrip("/")
    if not base and config.publish.target == "github":
        base = github_download_base(config)  # wheels live on the release, not beside the pages
    if base and not re.match(r"^https?://", base):
        raise IndexProblem(
            f"factory.toml: index.files-base-url {idx.files_base_url!r} must be an absolute http(s) URL, "
            f"or empty when the files are co-hosted with the index"
        )
    url = idx.url
    if url and not url.endswith("/"):
        url += "/"
    return Settings(title=idx.title, url=url, files_base=base, copy_logs=idx.copy_logs)


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


# --- what the state keeps of a record -------------------------------------------------

_US = "\x1f"  # ASCII unit separator: in no file name, version, hash, time or recipe name


class Summary(NamedTuple):
    """What the index state keeps of one record: enough to know what the index holds."""

    sha256: str
    metadata_sha256: str
    name: str
    version: str
    recipe: str
    built_at: str
    yanked: str | None  # the record's own yank reason
    log: str | None


def pack_summary(e: dict) -> str | tuple:
    """One string per record: marshal loads 10,000 strings in about a millisecond, where
    10,000 tuples took ~20 ms, a fifth of an incremental run. The hashes come first, at
    fixed width, so the sha256 of a record is a slice."""
    rest = (e["name"], e["version"], e["recipe"], e["built_at"], e["record_yanked"] or "", e["log"] or "")
    if any(_US in f for f in rest):  # (a free-text reason or path that holds the separator)
        return (e["sha256"], e["metadata_sha256"], *rest)
    return e["sha256"] + e["metadata_sha256"] + _US.join(rest)


def unpack_summary(packed: str | tuple) -> Summary:
    if isinstance(packed, tuple):
        sha, msha, *rest = packed
    else:
        sha, msha, rest = packed[:64], packed[64:128], packed[128:].split(_US)
    name, version, recipe, built_at, yanked, log = rest
    return Summary(sha, msha, name, version, recipe, built_at, yanked or None, log or None)


def _sha(packed: str | tuple) -> str:
    return packed[:64] if isinstance(packed, str) else packed[0]


def _msha(packed: str | tuple) -> str:
    return packed[64:128] if isinstance(packed, str) else packed[1]


def project_of(filename: str) -> str:
    """The project a wheel belongs to: the first field of its file name, normalized, as
    ``parse_wheel_filename`` derives it (that full parse, and the check that the record
    agrees with it, happen when the record is read)."""
    return canonicalize_name(filename.partition("-")[0])


def sha_prefix(packed: str | tuple) -> int:
    """The first 31 bits of a summary's sha256 (an int marshal stores in 5 bytes): it
    narrows the search for duplicate contents to a few candidates, which are then
    compared on the full hash (among 10,000 wheels, two distinct ones share a prefix
    in about 2 % of runs)."""
    return int(_sha(packed)[:8], 16) >> 1


class Shards:
    """The cold part of the state: each project's indexed wheels in page order and the
    summary of each of its records, in SHARDS files chosen by a hash of the project name.

    An incremental run reads and rewrites only the files of the projects it renders
    (a few dozen KB), where one state file of every summary cost a tenth of the run to
    load, save and rename. ``at`` is the index to read; None starts empty.
    """

    def __init__(self, at: Path | None, *, lenient: bool = False):
        self.dir = at / SHARD_DIR if at is not None else None
        self.lenient = lenient  # a damaged file reads as empty (a full rebuild does not need it)
        self.files: dict[int, dict[str, tuple[list[str], dict]]] = {}
        self.changed: set[int] = set() if at is not None else set(range(SHARDS))  # a new set: all written

    @staticmethod
    def number(name: str) -> int:
        return zlib.crc32(name.encode()) % SHARDS

    def _file(self, i: int) -> dict:
        f = self.files.get(i)
        if f is None:
            f = {}
            if self.dir is not None:
                path = self.dir / f"{i:02d}.marshal"
                try:
                    f = marshal.loads(path.read_bytes())
                except FileNotFoundError:
                    pass
                except (EOFError, ValueError, TypeError):
                    if not self.lenient:
                        raise IndexProblem(f"{path}: damaged (part of the index's state); rebuild the index "
                                           f"with `invoke index --full`; nothing was changed") from None
                    ui.warn(f"{path}: damaged; its wheels cannot be checked for a changed sha256 this once")
            self.files[i] = f
        return f

    def project(self, name: str) -> tuple[list[str], dict]:
        """(the project's indexed wheels in page order, each of its records' packed summary)."""
        return self._file(self.number(name)).get(name, ([], {}))

    def summary(self, fn: str) -> str | tuple:
        return self.project(project_of(fn))[1][fn]

    def put(self, name: str, order: list[str], summaries: dict) -> None:
        i = self.number(name)
        if summaries:
            self._file(i)[name] = (order, summaries)
        else:
            self._file(i).pop(name, None)
        self.changed.add(i)

    def drop(self, fn: str) -> None:
        """Forget a record that left dist/."""
        name = project_of(fn)
        order, summaries = self.project(name)
        if fn in summaries:
            self.put(name, [x for x in order if x != fn], {k: v for k, v in summaries.items() if k != fn})

    def written(self) -> list[tuple[str, bytes]]:
        """The changed files, as (path in the index, bytes); sorted by project name, so the
        bytes do not depend on the order the projects were rendered in."""
        return [(f"{SHARD_DIR}/{i:02d}.marshal", marshal.dumps(dict(sorted(self._file(i).items()))))
                for i in sorted(self.changed)]


# --- which records changed ------------------------------------------------------------


@dataclass
class Scan:
    stats: dict[str, int]  # every record of dist/ (by wheel file name) -> its stat key
    misses: set[str] = field(default_factory=set)  # those to (re)read: see compare()

    def compare(self, old_records: dict[str, int], *, reread: bool = False) -> None:
        """Find the records whose stat key differs from the state's ``old_records`` (all: ``reread``)."""
        get = old_records.get
        self.misses = set(self.stats) if reread else {fn for fn, key in self.stats.items() if get(fn) != key}


def scan_dist(dist: Path, *, helper: StatHelper | None = None) -> Scan:
    """Every record of dist/ and its stat key (``Scan.compare`` then finds what changed).

    A record is known by the stat (mtime, size, inode) of its file: the store
    writes records atomically, so a rewritten record always differs, and a record
    overwritten in place (``cp``) has a new mtime. A record without its wheel is an
    error (the index would link to a file that is not there). Wheels themselves are
    never opened. A ``helper`` (started before, so it is up by now) stats half.
    """
    keys: list = []
    helper_keys: list = []
    fd = None
    try:
        if not dist.is_dir():
            return Scan({})
        names = os.listdir(dist)
        jsons = [n for n in names if n.endswith(".whl.json")]
        cut = len(jsons) // 2 if helper is not None else len(jsons)
        if helper is not None:
            helper.send(jsons[cut:])
        stems = [n[:-5] for n in jsons]  # the wheels' file names
        present = set(names)
        orphans = sorted(fn for fn in stems if fn not in present)
        if orphans:
            listed = "\n".join(f"  - {dist / fn}.json" for fn in orphans)
            raise IndexProblem(
                f"{len(orphans)} dist record(s) without their wheel; the index would link to missing files:\n"
                f"{listed}\n  fix: restore the wheel(s), or delete the record(s) and rebuild; "
                f"the index was left as it was"
            )
        # One stat per record, relative to the folder (no full-path lookups). Linux's
        # readdir gives no mtime or size.
        fd = os.open(dist, os.O_RDONLY | os.O_DIRECTORY)
        keys = stat_keys(jsons[:cut], fd)
    finally:
        if fd is not None:
            os.close(fd)
        if helper is not None:
            helper_keys = helper.join()  # (always: it is a process to reap)
    keys += helper_keys
    if None in keys:
        name = jsons[keys.index(None)]
        raise IndexProblem(f"{dist / name}: the record disappeared while indexing; re-run `invoke index`")
    return Scan(dict(zip(stems, keys)))


# --- reading and rendering projects ---------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What rendering projects needs (sent to the worker processes of a big generation)."""

    dist: str
    staging: str
    root: str
    settings: Settings
    yanks: "Yanks"
    full: bool  # every file is (re)written
    excluded: frozenset  # wheels left out of the index (their records are still read)


class Task(NamedTuple):
    """One project to render: its records in dist/, which of them changed since the
    index was made, and what the index held of each before: (sha256, .metadata sha256, log)."""

    name: str
    filenames: list[str]
    changed: frozenset
    before: dict[str, tuple]


class Done(NamedTuple):
    """A rendered project."""

    name: str
    records: list[tuple]  # (filename, summary, log (path, size) or None, yank reason, indexed, files written)
    order: list[str]  # its indexed wheels, as sorted on the pages (empty: the project left the index)
    info: tuple | None  # (latest version, last built, number of wheels, recipes, root page row)
    staged: tuple[list[str], list[str]]  # files written into the staging folder: (files/…, pages)


def _render_projects(job: Job, tasks: list[Task]) -> tuple[list[Done], list[str], dict]:
    """Read, check and render ``tasks`` into the staging folder.

    Each project's records are read (all of them: its pages list every wheel), each
    wheel's own files (.metadata; the wheel when co-hosted; the build log) are staged
    when new or changed, and its three pages are written. Returns the rendered
    projects, the wheels whose size differs from their record, and the recipe yanks
    loaded here (so the caller's yank key covers what was used).
    """
    dist, staging, settings, yanks = job.dist, job.staging, job.settings, job.yanks
    cohosted = not settings.files_base
    paths = [f"{dist}/{fn}.json" for t in tasks for fn in t.filenames]
    datas = iter(_in_threads(_read_bytes, paths))
    done, mismatched, writes, links, copies = [], [], [], [], []
    made_files_dir = False
    for task in tasks:
        name = task.name
        records, views, file_rels = [], [], []
        for fn in task.filenames:
            path = f"{dist}/{fn}.json"
            data = next(datas)
            if isinstance(data, OSError):
                raise IndexProblem(f"{path}: unreadable dist record ({data}); rebuild the wheel or delete the record")
            rec = _parse_record(data, path)
            e = entry_from_record(rec, path)
            if e["filename"] != fn:
                raise IndexProblem(
                    f"{path}: the record describes {e['filename']!r}; a record must be named after its wheel (WHEEL.json)"
                )
            try:
                if os.stat(f"{dist}/{fn}").st_size != e["size"]:
                    mismatched.append(fn)
            except FileNotFoundError:
                raise IndexProblem(f"{path}: the record's wheel disappeared while indexing; re-run") from None
            summary = pack_summary(e)
            if fn in job.excluded:
                records.append((fn, summary, None, None, False, False))
                continue
            prev = None if job.full else task.before.get(fn)
            if prev is None or fn in task.changed:
                log = _log_sig(e["log"], job.root, settings)
            else:
                log = prev[2]  # copied into the index already; the source may be gone since
            now = (e["sha256"], e["metadata_sha256"], log)
            if prev is None or prev[1] != now[1]:
                writes.append((f"{staging}/{FILES}/{fn}.metadata", metadata_bytes(rec, path)))
                file_rels.append(f"{FILES}/{fn}.metadata")
            if cohosted and (prev is None or prev[0] != now[0]):
                links.append((f"{dist}/{fn}", f"{staging}/{FILES}/{fn}"))
                file_rels.append(f"{FILES}/{fn}")
            if log is not None and (prev is None or prev[2] != log):
                copies.append((log[0], f"{staging}/{FILES}/{fn}.log"))
                file_rels.append(f"{FILES}/{fn}.log")
            yank = yanks.reason(fn, e["name"], e["version"], e["recipe"], e["record_yanked"])
            records.append((fn, summary, log, yank, True, prev != now))
            e["yanked"] = yank
            e["has_log"] = log is not None
            views.append(e)
        if file_rels and not made_files_dir:
            os.makedirs(f"{staging}/{FILES}", exist_ok=True)
            made_files_dir = True
        if not views:
            done.append(Done(name, records, [], None, (file_rels, [])))
            continue
        sort_files(views)
        html_page, json_page = render_simple_project(name, views, settings)
        os.makedirs(f"{staging}/{SIMPLE}/{name}", exist_ok=True)
        os.makedirs(f"{staging}/{PROJECT}/{name}", exist_ok=True)
        page_rels = [f"{SIMPLE}/{name}/index.html", f"{SIMPLE}/{name}/index.json", f"{PROJECT}/{name}/index.html"]
        writes += [
            (f"{staging}/{page_rels[0]}", html_page),
            (f"{staging}/{page_rels[1]}", json_page),
            (f"{staging}/{page_rels[2]}", render_human_project(name, views, settings)),
        ]
        unyanked = [v for v in views if v["yanked"] is None] or views
        latest, built = unyanked[-1]["version"], max(v["built_at"] for v in views)
        info = (latest, built, len(views), tuple(sorted({v["recipe"] for v in views})),
                human_root_row(name, latest, built, len(views)))
        # (The page order names the same string objects as the records: marshal stores them once.)
        by_name = {r[0]: r[0] for r in records}
        done.append(Done(name, records, [by_name[v["filename"]] for v in views], info, (file_rels, page_rels)))
    for w in writes:
        _write_file(w)
    for source, dest in links:
        link_or_copy(source, dest)
    for source, dest in copies:
        shutil.copyfile(source, dest)
    return done, mismatched, yanks.loaded()


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


# --- yanks --------------------------------------------------------------------------


class Yanks:
    """PEP 592 yanks: config ``index.yanked`` (filename or NAME==VERSION) and recipe ``[yanked]``.

    A recipe's yanks are read when one of its wheels is first looked at (``reason``)
    or its part of the key is asked for (``key``). A retired recipe's wheels stay in
    the index, without its yanks.
    """

    def __init__(self, config: Config, cache: dict[str, tuple] | None = None):
        self.by_file: dict[str, str] = {}
        self.by_version: dict[tuple[str, Version], str] = {}
        where = str(config.source or config.root / "factory.toml")
        for key, reason in config.index.yanked.items():
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
        root = config.paths.recipes
        self.recipes_root = str(root)
        self.present = frozenset(os.listdir(root)) if root.is_dir() else frozenset()
        # recipe -> (its canonical name, {wheel file: reason}, {version: reason}), or None: no such recipe
        self.recipes: dict[str, tuple | None] = {}
        self._new: dict[str, tuple | None] = {}
        # What earlier runs read: recipe -> (stat key of its file, its name, its [yanked] table).
        # Parsing a recipe costs ~0.2 ms; an index of 100 recipes would pay 20 ms every run.
        self.cache: dict[str, tuple] = dict(cache or {})

    def _recipe(self, recipe: str) -> tuple | None:
        if recipe in self.recipes:
            return self.recipes[recipe]
        found = None
        if recipe in self.present:
            path = recipe_path(Path(self.recipes_root), recipe)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None:
                key = (st.st_mtime_ns, st.st_size, st.st_ino)
                hit = self.cache.get(recipe)
                if hit is not None and hit[0] == key:
                    name, table = hit[1], hit[2]
                else:
                    r = parse_recipe(path)
                    name, table = r.name, dict(r.yanked)
                    self.cache[recipe] = (key, name, table)
                found = (name, *self._split(path, table))
        self.recipes[recipe] = self._new[recipe] = found
        return found

    @staticmethod
    def _split(path, table: dict[str, str]) -> tuple[dict, dict]:
        files, versions = {}, {}
        for key, reason in table.items():
            if key.endswith(".whl"):
                files[key] = reason
            else:
                try:
                    versions[Version(key)] = reason
                except InvalidVersion:
                    raise IndexProblem(f"{path}: [yanked] key {key!r} must be a version or a wheel file name") from None
        return files, versions

    def loaded(self) -> dict[str, tuple]:
        """The recipes read since the last call, with their cache entries (a worker
        process sends them back)."""
        new, self._new = self._new, {}
        return {recipe: (found, self.cache.get(recipe)) for recipe, found in new.items()}

    def adopt(self, loaded: dict[str, tuple]) -> None:
        """Use what a worker read, so the key describes the yanks the pages were rendered
        with, and the next run's cache holds what the worker parsed."""
        for recipe, (found, cached) in loaded.items():
            self.recipes.setdefault(recipe, found)
            if cached is not None:
                self.cache.setdefault(recipe, cached)

    def key(self, recipes: Iterable[str]) -> str:
        """Everything the yanks of these recipes' wheels depend on (a change re-checks every wheel)."""
        parts = []
        for recipe in sorted(recipes):
            found = self._recipe(recipe)
            if found:
                parts.append((recipe, found[0], sorted(found[1].items()), sorted((str(v), r) for v, r in found[2].items())))
        return repr([sorted(self.by_file.items()), sorted((n, str(v), r) for (n, v), r in self.by_version.items()),
                     parts])

    def reason(self, filename: str, name: str, version: str, recipe: str, record_yanked: str | None) -> str | None:
        """The yank reason of one wheel, or None: not yanked.
        The config wins over the recipe, which wins over the record's own reason."""
        if filename in self.by_file:
            return self.by_file[filename]
        if self.by_version:
            hit = self.by_version.get((name, Version(version)))
            if hit is not None:
                return hit
        found = self._recipe(recipe)
        if found:
            rname, files, versions = found
            if filename in files:
                return files[filename]
            if versions and rname == name:
                hit = versions.get(Version(version))
                if hit is not None:
                    return hit
        return record_yanked


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


def human_root_row(name: str, latest: str, built: str, count: int) -> str:
    """A project's row on the human root page (kept in the state: 1,000 rows are joined, not rendered)."""
    return (f'<tr><td><a href="{PROJECT}/{name}/">{name}</a></td><td>{_e(latest)}</td>'
            f'<td class="n">{count}</td><td class="d">{_date(built)}</td></tr>\n')


def render_human_root(projects: dict[str, tuple], settings: Settings) -> bytes:
    """``projects`` (sorted): name -> (latest version, last built, number of wheels, recipes, row)."""
    rows = "".join(p[4] for p in projects.values())
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
    """Files staged for one update, and the order they go live in: each wheel's own
    files first, then project pages, root pages, and the state last."""

    ORDER = (FILES, SIMPLE + "/", PROJECT + "/", "root", SHARD_DIR, STATE)

    def __init__(self, staging: Path):
        self.dir = str(staging)
        self.groups: dict[str, list[str]] = {k: [] for k in self.ORDER}
        self._pending: list[tuple[str, bytes]] = []

    def write(self, rel: str, data: bytes) -> None:
        """A root page or a part of the state (written by flush())."""
        group = STATE if rel == STATE else SHARD_DIR if rel.startswith(SHARD_DIR + "/") else "root"
        self.groups[group].append(rel)
        self._pending.append((f"{self.dir}/{rel}", data))

    def staged(self, files: list[str], pages: list[str]) -> None:
        """Files already written into the staging folder (by _render_projects)."""
        self.groups[FILES] += files
        for rel in pages:
            self.groups[rel.split("/", 1)[0] + "/"].append(rel)

    def visible(self) -> bool:
        """Whether anything a client sees was staged."""
        return any(self.groups[k] for k in self.ORDER if k not in (SHARD_DIR, STATE))

    def flush(self) -> None:
        items, self._pending = self._pending, []
        for path, data in items:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _write_file((path, data))

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


def indexed_wheels(state: dict, live: Path) -> list[dict]:
    """What the index at ``live`` (with its loaded ``state``) links to, per wheel (for
    publishing): name, hashes, build time, log."""
    excluded, logs, shards = set(state["excluded"]), state["logs"], Shards(live)
    out = []
    for fn in sorted(state["records"]):
        if fn in excluded:
            continue
        s = unpack_summary(shards.summary(fn))
        out.append({"filename": fn, "sha256": s.sha256, "metadata_sha256": s.metadata_sha256,
                    "built_at": s.built_at, "has_log": fn in logs})
    return out


def _log_sig(log: str | None, root: str, settings: Settings) -> tuple | None:
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
    live = (out or config.paths.index).resolve()
    dist = config.paths.dist
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
        if old is None or old.get("format") != FORMAT:
            old = None  # a first index, or one in an older format: every page is new
        if old is None or old["settings"] != skey:
            full = True  # changed settings: every page differs
        report.full = full

        workers = _Workers()  # (its processes start only when a big generation needs them)
        # A helper process stats half of a big dist/ when a core is idle; started first,
        # it gets going while this process lists the folder.
        big = old is not None and len(old["records"]) >= SCAN_HELPER_MIN
        scan = scan_dist(dist, helper=StatHelper.start(dist) if big and workers.n > 1 else None)
        scan.compare(old["records"] if old else {}, reread=full)
        staging = _staging_dir(live)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        stage = _Stage(staging)
        try:
            deletes, state = _generate(config, settings, skey, live, dist, old, scan, frozenset(exclude), full,
                                       stage, workers, report)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            workers.close()

        if not live.exists():
            os.rename(staging, live)  # a first index: one atomic rename
        elif stage.visible() or deletes or report.replaced or stage.groups[SHARD_DIR] or state != old:
            # (Only the state changes when, say, a record left out of the index left dist/.)
            plan = {"moves": stage.moves(), "deletes": deletes}
            (staging / COMMIT).write_text(json.dumps(plan))  # the commit point
            _apply(staging, live)
        else:
            shutil.rmtree(staging, ignore_errors=True)  # nothing changed: the index stays byte for byte
    report.seconds = time.perf_counter() - t0
    if not quiet:
        _print_report(report)
    return report


def _generate(config: Config, settings: Settings, skey: str, live: Path, dist: Path, old: dict | None, scan: Scan,
              exclude: frozenset, full: bool, stage: _Stage, workers: _Workers, report: Report) -> tuple[list, dict]:
    """Stage every changed file of the index and its new state; returns what to delete, and the state.

    Work is done per project: a project is rendered again when one of its records is
    new, changed or gone, or a wheel's yank changed. An unchanged record of an
    unchanged project costs nothing but its stat.
    """
    old_shards = Shards(live if old else None, lenient=full)
    shards = Shards(None) if full else old_shards  # (a full run writes every shard anew)
    old = old or {"records": {}, "shas": {}, "excluded": [], "logs": {}, "yanked": {}, "projects": {},
                  "recipes": [], "yank_key": None, "recipe_cache": {}}
    old_records: dict[str, int] = old["records"]
    old_logs: dict[str, tuple] = old["logs"]
    old_yanked: dict[str, str] = old["yanked"]
    in_dist = scan.stats
    excluded = exclude & in_dist.keys()
    # (Key views, not copies, in the usual case of no exclusions: these are 10,000 names.)
    indexed_before = old_records.keys() - old["excluded"] if old["excluded"] else old_records.keys()
    indexed_now = in_dist.keys() - excluded if excluded else in_dist.keys()
    gone = old_records.keys() - in_dist.keys()  # records no longer in dist/
    # (Without exclusions, now or before, the sets below follow from those: 10,000-name
    # set differences are a millisecond each.)
    exclusions = bool(excluded or old["excluded"])
    removed = indexed_before - indexed_now if exclusions else gone
    yanks = Yanks(config, cache=old["recipe_cache"])

    # Which projects to render.
    if full:
        members: dict[str, list[str]] = {}
        for fn in in_dist:
            members.setdefault(project_of(fn), []).append(fn)
    else:
        # Records the index did not list: new or changed ones, and ones excluded before.
        extra = scan.misses | (indexed_now - indexed_before) if exclusions else scan.misses
        affected = {project_of(fn) for fn in extra} | {project_of(fn) for fn in removed}
        if yanks.key(old["recipes"]) != old["yank_key"]:
            # The yanks changed: every wheel's reason is checked (its page is rendered only if it changed).
            for fn in indexed_now - scan.misses:
                s = unpack_summary(old_shards.summary(fn))
                if yanks.reason(fn, s.name, s.version, s.recipe, s.yanked) != old_yanked.get(fn):
                    affected.add(s.name)
        members = {name: [fn for fn in old_shards.project(name)[0] if fn in in_dist] for name in affected}
        for fn in extra:
            members[project_of(fn)].append(fn)
    tasks = []
    for name in sorted(members):
        fns = sorted(set(members[name]))
        before = {}  # (a full run rewrites every file: it needs none)
        if not full:
            held = old_shards.project(name)[1]
            before = {fn: (_sha(held[fn]), _msha(held[fn]), old_logs.get(fn)) for fn in fns if fn in indexed_before}
        tasks.append(Task(name, fns, frozenset(fn for fn in fns if fn in scan.misses), before))

    job = Job(str(dist), stage.dir, str(config.root), settings, yanks, full, excluded)
    results = workers.map(_render_projects, tasks, job, threshold=PARALLEL_MIN_PROJECTS)

    # Merge: the new state, and the report.
    records = {} if full else dict(old_records)
    shas: dict[str, int] = {} if full else dict(old["shas"])
    for fn in gone:
        del records[fn], shas[fn]
        if not full:
            shards.drop(fn)
    logs = {fn: v for fn, v in old_logs.items() if fn in indexed_now}
    yanked = {fn: v for fn, v in old_yanked.items() if fn in indexed_now}
    projects: dict[str, tuple] = dict(old["projects"])
    deletes: list[str] = []
    mismatched: list[str] = []
    for done, bad, loaded in results:
        mismatched += bad
        yanks.adopt(loaded)
        for d in done:
            held = old_shards.project(d.name)[1]
            summaries = {} if full else dict(shards.project(d.name)[1])
            for fn, summary, log, yank, indexed, wrote in d.records:
                records[fn] = in_dist[fn]
                shas[fn] = sha_prefix(summary)
                summaries[fn] = summary
                if not indexed:
                    continue
                if fn not in indexed_before:
                    report.added.append(fn)
                elif fn in held:  # (not in it: a damaged shard, on a full rebuild)
                    old_sha = _sha(held[fn])
                    if old_sha != _sha(summary):
                        report.replaced.append({"filename": fn, "old_sha256": old_sha, "new_sha256": _sha(summary)})
                    if old_logs.get(fn) and not log:
                        deletes.append(f"{FILES}/{fn}.log")
                if log is None:
                    logs.pop(fn, None)
                else:
                    logs[fn] = log
                if yank is None:
                    yanked.pop(fn, None)
                else:
                    yanked[fn] = yank
                report.files_written += wrote
            stage.staged(*d.staged)
            shards.put(d.name, d.order, summaries)
            if d.order:
                projects[d.name] = d.info
                report.projects_written.append(d.name)
            else:
                projects.pop(d.name, None)
    if mismatched:
        listed = "\n".join(f"  - {dist / fn}" for fn in sorted(mismatched))
        raise IndexProblem(
            f"{len(mismatched)} wheel(s) in dist/ differ in size from their record (replaced by hand?):\n"
            f"{listed}\n  fix: rebuild them (the build gets a new build tag); the index was left as it was"
        )
    report.added.sort()
    report.replaced.sort(key=lambda r: r["filename"])
    report.removed = sorted(removed)

    # Duplicates: one content under several names.
    if len(set(shas.values())) < len(shas):  # (usually: no two records with one content)
        by_prefix: dict[int, list[str]] = {}
        for fn in indexed_now:
            by_prefix.setdefault(shas[fn], []).append(fn)
        by_sha: dict[str, list[str]] = {}
        for group in by_prefix.values():
            for fn in group if len(group) > 1 else ():
                by_sha.setdefault(_sha(shards.summary(fn)), []).append(fn)
        report.duplicates = sorted(sorted(g) for g in by_sha.values() if len(g) > 1)

    # Root pages: rewritten when their bytes change (the simple root lists names only).
    projects = dict(sorted(projects.items()))
    pages = [("index.html", render_human_root(projects, settings))]
    if full or list(projects) != list(old["projects"]):
        pages += zip((f"{SIMPLE}/index.html", f"{SIMPLE}/index.json"), render_simple_root(list(projects)))
    for rel, data in pages:
        if full or _read_or_none(live / rel) != data:
            stage.write(rel, data)

    # Deletions: files of wheels that left the index, pages of projects that did.
    for fn in report.removed:
        deletes += [f"{FILES}/{fn}.metadata", f"{FILES}/{fn}", f"{FILES}/{fn}.log"]
    for name in old["projects"]:
        if name not in projects:
            deletes += [f"{SIMPLE}/{name}", f"{PROJECT}/{name}"]
    if full and live.exists():
        deletes += _strays(live, stage)

    report.projects = len(projects)
    report.wheels = len(indexed_now)
    recipes = sorted({r for info in projects.values() for r in info[3]})
    state = {
        "format": FORMAT,
        "generator": f"wheelfactory {__version__}",
        "settings": skey,
        "files_base": settings.files_base,
        "records": records,  # every record of dist/ (excluded ones too) -> its stat key
        "shas": shas,  # the same -> sha_prefix() (their summaries are in the shards)
        "excluded": sorted(excluded),  # records left out of this index
        "logs": logs,  # build logs copied beside indexed wheels: filename -> (source path, size)
        "yanked": yanked,  # filename -> reason, yanked wheels only
        "recipes": recipes,  # the recipes of the indexed wheels
        "yank_key": yanks.key(recipes),
        "recipe_cache": {r: yanks.cache[r] for r in recipes if r in yanks.cache},  # see Yanks.cache
        "projects": projects,  # name -> (latest version, last built, number of wheels, recipes, root page row)
    }
    for rel, data in shards.written():
        stage.write(rel, data)
    stage.write(STATE, marshal.dumps(state))
    stage.flush()
    return deletes, state


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
