"""What an index holds (its saved state), and what dist/ holds now (the scan).

The state is one marshal file, ``.wheelfactory/state.marshal`` inside the index
(never published). It knows every record of dist/ by the stat of its file and keeps
a summary of each, so an incremental run re-reads only the records that changed and
renders only their projects. Its keys::

    format        render.FORMAT when written (another format: the next run is a full one)
    generator     "wheelfactory VERSION"
    settings      render.Settings.key() of the pages
    files_base    the absolute files URL, "" when co-hosted (``invoke serve`` reads it)
    records       wheel file name -> stat key, every record of dist/ (excluded ones too)
    shas          the same names -> sha256 (for the duplicates check, every run)
    summaries     project name -> {wheel file name: records.Summary as a tuple}, or that
                  dict as marshal bytes (see Summaries)
    excluded      the records left out of this index (publish's interim index)
    logs          build logs copied beside indexed wheels: file name -> (source path, size)
    yanked        file name -> reason, the yanked wheels only
    recipes       the recipes of the indexed wheels
    yank_key      records.Yanks.key(recipes): a change re-checks every wheel's yank
    recipe_cache  records.Yanks.cache for those recipes
    projects      name -> {"wheels": its indexed wheels in page order,
                           "recipes": [...], "row": render.human_root_row(...),
                           "digest": sha256 of its three pages}
    digest        update.index_digest of the pages (render.DIGEST holds it too)
    copies        each file the index wrote in files/ (WHEEL, WHEEL.metadata, WHEEL.log) ->
                  its stat key as written (``check_copies``)
"""

from __future__ import annotations

import marshal
import os
from dataclasses import dataclass, field
from pathlib import Path

from .._util.fs import sha256_file
from .records import IndexProblem, Summary, project_of
from .render import FILES

STATE_DIR = ".wheelfactory"
STATE = f"{STATE_DIR}/state.marshal"


def empty_state() -> dict:
    """The state of an index that holds nothing."""
    return {"records": {}, "shas": {}, "summaries": {}, "excluded": [], "logs": {}, "yanked": {}, "projects": {},
            "recipes": [], "yank_key": None, "recipe_cache": {}, "copies": {}}


def load_state(live: Path) -> dict | None:
    """The state of the index at ``live``: None if it has none (not ours, or not yet
    written), ``{"format": None}`` if it is unreadable."""
    try:
        data = (live / STATE).read_bytes()
    except OSError:
        return None
    try:
        state = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return {"format": None}
    return state if isinstance(state, dict) and state.get("format") else {"format": None}


def state_bytes(state: dict) -> bytes:
    """The bytes of the state file."""
    return marshal.dumps(state)


def indexed_wheels(state: dict, live: Path) -> list[dict]:
    """What the index at ``live`` (with its loaded ``state``) links to, per wheel, sorted by
    file name (for publishing): filename, sha256, metadata_sha256, built_at, has_log."""
    excluded, logs, summaries = set(state["excluded"]), state["logs"], Summaries(state["summaries"])
    out = []
    for fn in sorted(state["records"]):
        if fn in excluded:
            continue
        s = Summary(*summaries.get(fn))
        out.append({"filename": fn, "sha256": s.sha256, "metadata_sha256": s.metadata_sha256,
                    "built_at": s.built_at, "has_log": fn in logs})
    return out


class Summaries:
    """Each record's summary (a ``records.Summary`` tuple), by project.

    With ``packed`` (a speed device), each project's summaries are kept in the state as
    one marshal string: loading and saving the state then handles 1,000 strings instead
    of 10,000 tuples, and a run decodes only the projects it renders. Both forms are
    read, whatever ``packed`` says.
    """

    def __init__(self, stored: dict[str, dict | bytes], *, packed: bool = True):
        self.stored = dict(stored)  # project -> {fn: summary}, or its marshal bytes
        self.packed = packed
        self._decoded: dict[str, dict[str, tuple]] = {}

    def project(self, name: str) -> dict[str, tuple]:
        """The summaries of one project's records (do not change the dict: ``put`` a new one)."""
        got = self._decoded.get(name)
        if got is None:
            got = self.stored.get(name, {})
            if isinstance(got, bytes):
                got = marshal.loads(got)
            self._decoded[name] = got
        return got

    def get(self, fn: str) -> tuple:
        return self.project(project_of(fn))[fn]

    def put(self, name: str, summaries: dict[str, tuple]) -> None:
        """Set a project's summaries (none: drop the project)."""
        self._decoded[name] = summaries
        if not summaries:
            self.stored.pop(name, None)
        elif self.packed:
            self.stored[name] = marshal.dumps(dict(sorted(summaries.items())))
        else:
            self.stored[name] = summaries


def stat_keys(names: list[str], fd: int) -> list[int | None]:
    """The stat key of each file in the folder ``fd`` (None if it is gone): one int of
    (mtime, size, inode), cheap to store and compare. The stat is relative to the
    folder, so the kernel resolves no full path."""
    stat, keys = os.stat, []
    for name in names:
        try:
            st = stat(name, dir_fd=fd)
        except FileNotFoundError:
            keys.append(None)
            continue
        keys.append(hash((st.st_mtime_ns, st.st_size, st.st_ino)))  # (inlined _key: 10,000 calls a run)
    return keys


def stat_key(path) -> int | None:
    """The stat key (as ``stat_keys``) of one file; None if it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return hash((st.st_mtime_ns, st.st_size, st.st_ino))


@dataclass
class Scan:
    """dist/ now: every record (by wheel file name) -> its stat key, and (after
    ``compare``) the records to read again."""

    stats: dict[str, int]
    misses: set[str] = field(default_factory=set)

    def compare(self, old_records: dict[str, int], *, reread: bool = False) -> None:
        """Find the records whose stat key differs from the state's ``old_records`` (all: ``reread``)."""
        get = old_records.get
        self.misses = set(self.stats) if reread else {fn for fn, key in self.stats.items() if get(fn) != key}


def scan_dist(dist: Path) -> Scan:
    """Every record of dist/ and its stat key (``Scan.compare`` then finds what changed).

    A record is known by the stat (mtime, size, inode) of its file: the store writes
    records atomically, so a rewritten record always differs, and a record
    overwritten in place (``cp``) has a new mtime. Linux's readdir gives no mtime or
    size, so every record is stat'ed. A record without its wheel is an error (the
    index would link to a file that is not there). Wheels are never opened.
    """
    if not dist.is_dir():
        return Scan({})
    names = os.listdir(dist)
    jsons = [n for n in names if n.endswith(".whl.json")]
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
    fd = os.open(dist, os.O_RDONLY | os.O_DIRECTORY)
    try:
        keys = stat_keys(jsons, fd)
    finally:
        os.close(fd)
    if None in keys:
        raise IndexProblem(f"{dist / jsons[keys.index(None)]}: the record disappeared while indexing; "
                           f"re-run `invoke index`")
    return Scan(dict(zip(stems, keys)))


def check_copies(live: Path, state: dict, indexed) -> tuple[list[dict], dict[str, int]]:
    """The files the index wrote in files/ that are no longer what it wrote: (the damaged
    ones, each {path, filename, sha256 (None: missing), expected}; the new stat keys of
    the ones that were only touched).

    A copy is stat'ed, not hashed: one whose stat key (mtime, size, inode) is the one
    recorded when it was written (the state's ``copies``) is taken as intact; any write
    to it (``cp``, ``echo >>``) changes its mtime, a replacement also its inode. Only
    those are hashed and compared with their record's sha256 (the wheel, its .metadata)
    or the build log they were copied from. Wheels not in ``indexed`` are skipped.
    """
    copies = state.get("copies", {})
    names = list(copies)
    try:
        fd = os.open(live / FILES, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        keys: list[int | None] = [None] * len(names)
    else:
        try:
            keys = stat_keys(names, fd)
        finally:
            os.close(fd)
    damaged, touched = [], {}
    if keys == list(copies.values()):
        return damaged, touched  # (the usual case, compared in C: 10,000 copies cost their stats only)
    summaries = Summaries(state["summaries"])
    for name, key in zip(names, keys):
        if key == copies[name]:
            continue
        fn = name.removesuffix(".metadata").removesuffix(".log")
        if fn not in indexed:
            continue
        expected = _expected_sha(name, fn, state, summaries)
        got = sha256_file(live / FILES / name) if key is not None else None
        if got == expected or expected is None:  # (None: the log's source is gone; keep the copy)
            touched[name] = key
        else:
            damaged.append({"path": str(live / FILES / name), "filename": fn, "sha256": got, "expected": expected})
    return damaged, touched


def _expected_sha(name: str, fn: str, state: dict, summaries: Summaries) -> str | None:
    """What the index's copy ``name`` (of wheel ``fn``) should hash to."""
    if name.endswith(".log"):
        try:
            return sha256_file(Path(state["logs"][fn][0]))
        except (KeyError, OSError):
            return None
    s = Summary(*summaries.get(fn))
    return s.metadata_sha256 if name.endswith(".metadata") else s.sha256
