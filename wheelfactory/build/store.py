"""dist/: repaired wheels and one JSON record beside each, the single source of truth.

A record (``dist/<wheel filename>.json``) holds:

    schema            1
    name, version     canonical project name, version string
    filename          the wheel's file name (with its build tag, if any)
    build_tag         int or null
    sha256, size      of the wheel file
    tags              ["cp311-cp311-manylinux_2_39_riscv64", …] (expanded compressed tags)
    requires_python   from the core metadata, or null
    metadata          the wheel's core metadata text (.dist-info/METADATA)
    metadata_sha256   sha256 of that text encoded as UTF-8 (the PEP 658 file's bytes)
    build_key         content key of everything that decided the output
    python            X.Y the wheel was built with
    served_pythons    {X.Y: build key} of the later Pythons this wheel also serves (an abi3 or
                      py3 wheel built once, verified with each of them, as cibuildwheel does),
                      or absent
    target, policy    arch and the policy asked for; achieved_policy: what auditwheel reached
    recipe            recipe name; source: {kind, url, sha256, git, rev, commit, subdirectory}
    patches           patch files applied, relative to patches/ (in the order applied)
    debian_runtime    Debian packages the wheel needs at run time (from the recipe)
    auditwheel        `auditwheel show` text of the repaired wheel
    host              runner facts (runner, hostname, arch, libc, rootfs…; tools: {build, auditwheel, …: version})
    duration          seconds of the whole build attempt
    stages            {stage: seconds}
    status            "ok"
    log               log file path relative to the project root
    notes             list of remarks from the build (e.g. dependencies verify built from source)
    built_at          ISO 8601 UTC time the record was written
    compiler_cache    null, or this wheel's build through ccache (compcache.read_stats):
                      {tool, calls, hits, direct_hits, preprocessed_hits, misses, uncacheable, hit_rate}
    yanked            null, or the reason (set by the index from the recipe/config)

The record is written after the wheel, both atomically, so a wheel without a
record is an interrupted store and is ignored (and cleaned) by readers.

Every command reads records through ``read_record``: a damaged one (not JSON, not an
object, a required field missing) is a ``DamagedRecord`` naming the file and the fix.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from filelock import FileLock
from packaging.utils import canonicalize_name, parse_wheel_filename

from .._util.fs import atomic_copy, atomic_write_text, sha256_file, utcnow
from ..errors import FactoryError

RECORD_SCHEMA = 1
REQUIRED = ("name", "version", "filename", "sha256", "size", "tags", "metadata_sha256", "built_at")


class DamagedRecord(FactoryError):
    """A dist record that is not a JSON object with the required fields."""


def record_path(dist: Path, filename: str) -> Path:
    return dist / f"{filename}.json"


def damaged(path: str | Path, why: str) -> str:
    """The message for a damaged record at ``path`` (``DIST/WHEEL.json``): what is wrong and
    a fix that works whatever is left of it (the wheel beside it goes too, or the next
    build would meet a wheel of the same name without a record)."""
    path = str(path)
    wheel = path.removesuffix(".json")
    project = canonicalize_name(os.path.basename(wheel).partition("-")[0])
    return (f"{path}: damaged dist record ({why}); fix: delete it and its wheel (`rm {path} {wheel}`), "
            f"then rebuild (`nox -s build-{project}`) or restore the published copy (`invoke fetch-dist`)")


def parse_record(data: bytes, path: str | Path) -> dict:
    """The record in ``data`` (the bytes of the file at ``path``) as a dict.
    Raises DamagedRecord: not JSON, not an object, or a field of ``REQUIRED`` missing."""
    try:
        rec = json.loads(data)
    except ValueError as e:
        raise DamagedRecord(damaged(path, f"not JSON: {e}")) from None
    if not isinstance(rec, dict):
        raise DamagedRecord(damaged(path, f"a JSON {type(rec).__name__}, not an object"))
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise DamagedRecord(damaged(path, f"record lacks {', '.join(missing)}"))
    if not isinstance(rec["filename"], str):
        raise DamagedRecord(damaged(path, f"'filename' is {rec['filename']!r}, not a wheel file name"))
    return rec


def read_record(path: str | Path, *, raw_io: bool = False) -> dict:
    """The record at ``path`` (``parse_record``); an unreadable file is a DamagedRecord too.
    ``raw_io``: read with os.open/os.read (a speed device of the index, see ``read_bytes``)."""
    try:
        if raw_io:
            data = read_bytes(str(path))
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as e:
        raise DamagedRecord(damaged(path, f"unreadable: {e.strerror or e}")) from None
    return parse_record(data, path)


def read_bytes(path: str) -> bytes:
    """The bytes of a file, through os.open/os.read: a buffered open() adds an fstat, an
    ioctl and an lseek per file, 7 µs of the 13 µs it takes to read a small file on this
    VM (see docs/index.md, "Speed devices")."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


def load_records(dist: Path) -> list[dict]:
    """All complete records in dist/, sorted by file name (DamagedRecord: one is damaged)."""
    records = []
    if not dist.is_dir():
        return records
    for p in sorted(dist.glob("*.whl.json")):
        rec = read_record(p)
        if (dist / rec["filename"]).is_file():
            records.append(rec)
    return records


def stored_with_keys(dist: Path, keys: Mapping[str, str]) -> dict[str, Path]:
    """For each ``keys`` entry (any label -> build key) stored in dist/, the wheel's path.

    ``--force`` may have stored one key under several build tags: the newest counts.
    """
    by_key: dict[str, dict] = {}
    for r in load_records(dist):
        for key in (r.get("build_key"), *(r.get("served_pythons") or {}).values()):
            if key and (key not in by_key or (r["build_tag"] or 0) >= (by_key[key]["build_tag"] or 0)):
                by_key[key] = r
    return {label: dist / by_key[key]["filename"] for label, key in keys.items() if key in by_key}


def next_build_tag(dist: Path, name: str, version: str, tags: Iterable[str]) -> int | None:
    """Build tag for a new build whose key is not stored yet.

    None when no wheel of this name and version shares one of ``tags``; otherwise
    one more than the highest build tag used so far among those (a first build
    without a tag counts as 0), so the new file name is never one already used.
    """
    tags = set(tags)
    used = []
    for r in load_records(dist):
        if r["name"] == name and r["version"] == version and tags.intersection(r["tags"]):
            used.append(r["build_tag"] or 0)
    return None if not used else max(used) + 1


def store_wheel(dist: Path, wheel: Path, record: dict) -> Path:
    """Copy the wheel into dist/ and write its record, atomically, wheel first."""
    name, version, build, tags = parse_wheel_filename(wheel.name)
    dest = dist / wheel.name
    if dest.exists() and sha256_file(dest) != record["sha256"]:
        # Should never happen: build tags keep different contents apart.
        raise FileExistsError(f"{dest} exists with different content; refusing to overwrite it")
    rec = {"schema": RECORD_SCHEMA, **record, "filename": wheel.name, "built_at": record.get("built_at") or utcnow()}
    atomic_copy(wheel, dest)
    try:
        atomic_write_text(record_path(dist, wheel.name), json.dumps(rec, indent=2, sort_keys=True) + "\n")
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return dest


def recipe_lock(locks_dir: Path, name: str) -> FileLock:
    """Serializes builds of one recipe; different recipes build side by side."""
    locks_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(locks_dir / f"{name}.lock"))


def path_lock(locks_dir: Path, path: Path, kind: str) -> FileLock:
    """Serializes the runs that update ``path`` (a folder: the index, a publish directory).

    The lock file is ``locks_dir/KIND-DIGEST.lock`` (paths.build/.locks, which git
    ignores; not beside ``path``, which would leave a file in the project root); the
    digest is of ``path`` resolved, so every run on one folder takes the same lock.
    """
    locks_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(os.fsencode(path.resolve())).hexdigest()[:16]
    return FileLock(str(locks_dir / f"{kind}-{digest}.lock"))


def attempt_paths(logs: Path, name: str, python: str | None = None) -> tuple[Path, Path]:
    """(log file, attempt record) for a new build attempt of ``name``."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    suffix = f"-py{python}" if python else ""
    base = logs / name / f"{stamp}{suffix}"
    base.parent.mkdir(parents=True, exist_ok=True)
    return base.with_suffix(".log"), base.with_suffix(".json")
