"""What both publish targets share: the files to publish, the report, the index they publish.

Every published file is an :class:`Artifact` taken from the index's state: a
wheel, its ``.metadata``, its build log, and its dist record (``<wheel>.json``,
which ``invoke fetch-dist`` reads back).
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .._util.fs import sha256_file
from ..build.store import record_path
from ..errors import FactoryError
from ..index import FILES, build_index, indexed_wheels
from ..settings.factory import Config


class PublishError(FactoryError):
    """Publishing cannot go on; the message says what is wrong and how to fix it."""


@dataclass
class Artifact:
    """One published file: a wheel, its .metadata, its build log, or its dist record.

    The record (``<wheel>.json``) is not linked by the index; it is published so that
    ``invoke fetch-dist`` can restore dist/ from what is published (CI starts empty).
    """

    name: str  # file / asset name
    wheel: str  # the wheel it belongs to
    kind: str  # "wheel" | "metadata" | "log" | "record"
    source: Path
    sha256: str | None  # known from the record for wheels and .metadata
    built_at: str

    def digest(self) -> str:
        """The sha256 (hex) the published copy must have: the record's, else the file's."""
        if self.sha256 is None:
            self.sha256 = sha256_file(self.source)
        return self.sha256


@dataclass
class PublishReport:
    """What one publish did: index files by name, dist records by number, and the pages."""

    target: str
    uploaded: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # stale remote copies, flagged and replaced
    unchanged: int = 0
    pruned: list[str] = field(default_factory=list)
    records: dict = field(default_factory=lambda: {"uploaded": 0, "replaced": 0, "unchanged": 0, "pruned": 0})
    pages: str = ""  # what happened to the pages ("pushed abc123", "unchanged", "written")
    prune_later: list[str] = field(default_factory=list)  # unlinked, still within publish.prune-grace

    def as_dict(self) -> dict:
        return {
            "target": self.target, "uploaded": self.uploaded, "replaced": self.replaced,
            "unchanged": self.unchanged, "pruned": self.pruned, "records": self.records, "pages": self.pages,
            "prune_later": self.prune_later,
        }

    def count(self, art: Artifact, what: str) -> None:
        """Tally one file as ``what`` (uploaded, replaced, unchanged)."""
        if art.kind == "record":
            self.records[what] += 1
        elif what == "unchanged":
            self.unchanged += 1
        else:
            getattr(self, what).append(art.name)

    def count_pruned(self, name: str) -> None:
        if name.endswith(".whl.json"):
            self.records["pruned"] += 1
        else:
            self.pruned.append(name)


def artifacts(config: Config, state: dict, index_dir: Path) -> list[Artifact]:
    """Every file to publish, in upload order (wheel, .metadata, log, then the dist record)."""
    dist, files = config.paths.dist, index_dir / FILES
    out = []
    for w in indexed_wheels(state, index_dir):
        fn = w["filename"]
        out.append(Artifact(fn, fn, "wheel", dist / fn, w["sha256"], w["built_at"]))
        out.append(Artifact(f"{fn}.metadata", fn, "metadata", files / f"{fn}.metadata",
                            w["metadata_sha256"], w["built_at"]))
        if w["has_log"]:
            out.append(Artifact(f"{fn}.log", fn, "log", files / f"{fn}.log", None, w["built_at"]))
        # Last, so a published record always has its wheel beside it (fetch-dist relies on it).
        out.append(Artifact(f"{fn}.json", fn, "record", record_path(dist, fn), None, w["built_at"]))
    return out


def check_digest(art: Artifact, sha: str, consequence: str = "") -> None:
    """Raise PublishError when a file's sha256 is not its record's (it changed after it was built)."""
    if art.sha256 is not None and sha != art.sha256:
        raise PublishError(
            f"{art.source} does not match its record (sha256 {sha[:12]}…, the record says {art.sha256[:12]}…): "
            f"the file changed after it was built; rebuild it (it gets a new build tag){consequence}"
        )


def current_index(config: Config, dry_run: bool, stack: contextlib.ExitStack) -> Path:
    """The index, brought up to date (a dry run builds a throwaway one: it changes nothing)."""
    if not dry_run:
        build_index(config)  # a record without its wheel stops here, before anything is published
        return config.paths.index
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dry-run-index-"))) / "index"
    build_index(config, out=tmp, quiet=True)
    return tmp
