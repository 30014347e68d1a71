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
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from filelock import FileLock
from packaging.utils import parse_wheel_filename

from .._util.fs import atomic_copy, atomic_write_text, sha256_file, utcnow

RECORD_SCHEMA = 1


def record_path(dist: Path, filename: str) -> Path:
    return dist / f"{filename}.json"


def load_records(dist: Path) -> list[dict]:
    """All complete records in dist/, sorted by file name."""
    records = []
    if not dist.is_dir():
        return records
    for p in sorted(dist.glob("*.whl.json")):
        rec = json.loads(p.read_text())
        if (dist / rec["filename"]).is_file():
            records.append(rec)
    return records


def stored_with_keys(dist: Path, keys: Mapping[str, str]) -> dict[str, Path]:
    """For each ``keys`` entry (any label -> build key) stored in dist/, the wheel's path.

    ``--force`` may have stored one key under several build tags: the newest counts.
    """
    by_key: dict[str, dict] = {}
    for r in load_records(dist):
        key = r.get("build_key")
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


def attempt_paths(logs: Path, name: str, python: str | None = None) -> tuple[Path, Path]:
    """(log file, attempt record) for a new build attempt of ``name``."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    suffix = f"-py{python}" if python else ""
    base = logs / name / f"{stamp}{suffix}"
    base.parent.mkdir(parents=True, exist_ok=True)
    return base.with_suffix(".log"), base.with_suffix(".json")
