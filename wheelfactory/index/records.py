"""dist/ records -> page entries: each record checked against its own wheel file name,
its PEP 658 metadata bytes, and the PEP 592 yanks of the config and the recipes.

The index reads the JSON records the store writes (``build/store.py``), never the
wheels. A record that cannot be indexed truthfully raises ``IndexProblem`` with the
record's path, what is wrong and the fix.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
from collections.abc import Iterable
from typing import NamedTuple

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..build import store
from ..errors import FactoryError
from ..settings.factory import Config
from ..settings.recipe import parse_recipe, recipe_path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILENAME = re.compile(r"^[A-Za-z0-9._+!-]+\.whl$")  # what a wheel name can hold: safe in HTML and paths
_ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


class IndexProblem(FactoryError):
    """dist/ or the index cannot be turned into a truthful index."""


def read_record(path: str, *, raw_io: bool = True) -> dict:
    """The dist record at ``path`` (``store.read_record``; IndexProblem if damaged).
    ``raw_io``: read with os.open/os.read (a speed device, see ``store.read_bytes``)."""
    try:
        return store.read_record(path, raw_io=raw_io)
    except store.DamagedRecord as e:
        raise IndexProblem(str(e)) from None


def _iso_z(value: str, where: str) -> str:
    """A timestamp in the PEP 700 form yyyy-mm-ddThh:mm:ss[.ffffff]Z (UTC)."""
    if isinstance(value, str) and _ISO_Z.match(value):
        return value  # what store.utcnow() writes
    try:
        t = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise IndexProblem(store.damaged(where, f"'built_at' {value!r} is not an ISO 8601 time")) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.UTC)
    t = t.astimezone(_dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{t.microsecond:06d}" if t.microsecond else "") + "Z"


def entry_from_record(rec: dict, where: str) -> dict:
    """The page-relevant facts of one record (a dict, see the return below), checked against
    its own file name (PEP 427: name, version, build tag) and the hash formats; ``where``
    (the record's path) starts every error message."""
    missing = [k for k in store.REQUIRED if k not in rec]
    if missing:
        raise IndexProblem(store.damaged(where, f"record lacks {', '.join(missing)}"))
    fn = rec["filename"]
    if not isinstance(fn, str) or not _FILENAME.match(fn):
        raise IndexProblem(store.damaged(where, f"'filename' {fn!r} is not a valid wheel file name"))
    try:
        name, version, build, tags = parse_wheel_filename(fn)
    except InvalidWheelFilename as e:
        raise IndexProblem(store.damaged(where, f"'filename' {fn!r} is not a valid wheel file name ({e})")) from None
    if canonicalize_name(rec["name"]) != name:
        raise IndexProblem(store.damaged(where, f"'name' {rec['name']!r} does not match the wheel file name {fn!r}"))
    if rec["version"] != str(version):  # (the usual case needs no second parse)
        try:
            if Version(rec["version"]) != version:
                raise IndexProblem(store.damaged(
                    where, f"'version' {rec['version']!r} does not match the wheel file name {fn!r}"))
        except InvalidVersion:
            raise IndexProblem(store.damaged(where, f"'version' {rec['version']!r} is not a valid version")) from None
    if rec.get("build_tag") not in (None, build[0] if build else None):
        raise IndexProblem(store.damaged(
            where, f"'build_tag' {rec['build_tag']!r} does not match the wheel file name {fn!r}"))
    for key in ("sha256", "metadata_sha256"):
        if not isinstance(rec[key], str) or not _SHA256.match(rec[key]):
            raise IndexProblem(store.damaged(where, f"'{key}' must be 64 lowercase hex digits"))
    if not isinstance(rec["size"], int) or rec["size"] < 0:
        raise IndexProblem(store.damaged(where, "'size' must be a byte count"))
    return {
        "filename": fn,
        "name": str(name),  # normalized (PEP 503)
        "version": rec["version"],
        "build_tag": [build[0], build[1]] if build else None,  # JSON-friendly (number, suffix)
        "sha256": rec["sha256"],
        "size": rec["size"],
        "tags": list(rec["tags"]),
        # The Python/ABI tags of the file name ("cp313-cp313"): builds that share them supersede each other.
        "python_abi": tuple(sorted({f"{t.interpreter}-{t.abi}" for t in tags})),
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


def metadata_bytes(rec: dict, where: str) -> bytes:
    """The PEP 658 file of a record: its core metadata text (``metadata``), checked against
    ``metadata_sha256``."""
    text = rec.get("metadata")
    if not isinstance(text, str) or not text:
        raise IndexProblem(store.damaged(where, "the record lacks the core metadata text ('metadata')"))
    data = text.encode("utf-8")
    if hashlib.sha256(data).hexdigest() != rec["metadata_sha256"]:
        raise IndexProblem(store.damaged(where, "'metadata' does not match 'metadata_sha256'"))
    return data


def project_of(filename: str) -> str:
    """The project a wheel belongs to: the first field of its file name, normalized, as
    ``parse_wheel_filename`` derives it (that full parse, and the check that the record
    agrees with it, happen when the record is read)."""
    return canonicalize_name(filename.partition("-")[0])


class Summary(NamedTuple):
    """What the index state keeps of one record (stored as a plain tuple)."""

    sha256: str
    metadata_sha256: str
    name: str  # the normalized project name
    version: str
    recipe: str
    built_at: str
    yanked: str | None  # the record's own yank reason
    log: str | None  # the record's build log path


def summary_of(e: dict) -> tuple:
    """The ``Summary`` of a page entry, as the plain tuple the state stores."""
    return (e["sha256"], e["metadata_sha256"], e["name"], e["version"], e["recipe"], e["built_at"],
            e["record_yanked"], e["log"])


class Yanks:
    """PEP 592 yanks: config ``index.yanked`` (filename or NAME==VERSION) and recipe ``[yanked]``.

    A recipe's yanks are read when one of its wheels is first looked at (``reason``)
    or its part of the key is asked for (``key``). A retired recipe's wheels stay in
    the index, without its yanks. ``cache`` is what earlier runs read of the recipes
    (``Yanks.cache`` after a run): recipe -> (stat key of its file, its name, its
    ``[yanked]`` table); parsing a recipe costs ~0.2 ms, and an index of 100 recipes
    would pay 20 ms every run.
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
                    raise IndexProblem(f"{where}: index.yanked key {key!r}: {ver!r} is not a version; "
                                       f"fix: write NAME==VERSION (e.g. \"numpy==2.2.0\") or the wheel file name") from None
            else:
                raise IndexProblem(
                    f"{where}: index.yanked key {key!r} must be a wheel file name or NAME==VERSION; "
                    f"fix: write e.g. \"numpy==2.2.0\" or \"numpy-2.2.0-cp312-cp312-manylinux_2_39_riscv64.whl\""
                )
        root = config.paths.recipes
        self.recipes_root = root
        self.present = frozenset(os.listdir(root)) if root.is_dir() else frozenset()
        # recipe -> (its canonical name, {wheel file: reason}, {version: reason}), or None: no such recipe
        self.recipes: dict[str, tuple | None] = {}
        self.cache: dict[str, tuple] = dict(cache or {})

    def _recipe(self, recipe: str) -> tuple | None:
        if recipe in self.recipes:
            return self.recipes[recipe]
        found = None
        if recipe in self.present:
            path = recipe_path(self.recipes_root, recipe)
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
        self.recipes[recipe] = found
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
                    raise IndexProblem(f"{path}: [yanked] key {key!r} must be a version or a wheel file name; "
                                       f"fix: write e.g. \"1.2.3\" = \"reason\"") from None
        return files, versions

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
