"""The ``directory`` publish target: a folder any static web server can serve.

The files and the index sit side by side (``files/``, ``simple/``, ``project/``,
``index.html``) in ``publish.directory``. Each file is placed with an atomic
rename; wheels are verified against their record's sha256 on the way in; pages
go in after the files; files the index no longer lists are removed last.

dist/ is the source of truth: each file is a copy (or a reflink), never a hard link,
so nothing written into this folder reaches dist/. A marker file
(``.wheelfactory-publish.json``) remembers, per file placed, its sha256 and the stat
key (mtime, size, inode) of the copy as placed. A copy whose stat key is unchanged
is not hashed again; any other is hashed, and if its content is not what the index
serves it is reported and replaced (a damaged ``.metadata``, a wheel overwritten
by ``cp``).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path


from .. import ui
from .._util.fs import sha256_file
from ..build.store import path_lock
from ..index import DIGEST, FILES, PROJECT, SIMPLE, STATE_DIR, clone_file, load_state, stat_key
from ..settings.factory import Config
from .artifacts import Artifact, PublishError, PublishReport, artifacts, check_digest, current_index

MARKER = ".wheelfactory-publish.json"


def destination(config: Config) -> Path:
    """``publish.directory``, resolved against the project root."""
    dest = Path(config.publish.directory)
    return dest if dest.is_absolute() else config.root / dest


def publish_directory(config: Config, *, dry_run: bool = False) -> PublishReport:
    """Files, then pages, then pruning, into ``publish.directory`` (a dry run changes nothing).

    Raises PublishError when the folder is the index itself, holds files not
    written by publish, or a wheel no longer matches its record.
    """
    dest = destination(config)
    if dest.resolve() == config.paths.index.resolve():
        raise PublishError(f"factory.toml: publish.directory is the index folder ({dest}); pick another folder")
    report = PublishReport(target=str(dest))
    with contextlib.ExitStack() as stack:
        index_dir = current_index(config, dry_run, stack)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with path_lock(config.paths.build / ".locks", dest, "publish"):
            return _publish(config, index_dir, dest, report, dry_run=dry_run)


def _publish(config: Config, index_dir: Path, dest: Path, report: PublishReport, *, dry_run: bool) -> PublishReport:
    marker = dest / MARKER
    # name -> [sha256, stat key of the copy] (an older marker: name -> sha256, re-hashed once)
    published: dict[str, list] = json.loads(marker.read_text()) if marker.is_file() else {}
    if dest.exists() and any(dest.iterdir()) and not marker.is_file():
        raise PublishError(f"{dest} exists but was not written by `invoke publish`; "
                           f"move it away or set publish.directory")
    arts = artifacts(config, load_state(index_dir), index_dir)
    for art in arts:
        _place_file(art, dest / FILES / art.name, published, report, dry_run=dry_run)
    if dry_run:
        report.pages = "would be written"
        return report
    pages = _pages(index_dir)
    written = sum(_place_page(p, dest / p.relative_to(index_dir)) for p in pages)
    report.pages = f"{written} pages written" if written else "unchanged"
    if config.publish.prune:
        _prune(dest, {p.relative_to(index_dir).as_posix() for p in pages}, {a.name for a in arts}, published, report)
    marker.write_text(json.dumps(published, indent=1, sort_keys=True))
    return report


def _place_file(art: Artifact, target: Path, published: dict[str, list], report: PublishReport, *,
                dry_run: bool) -> None:
    """One file, verified and placed atomically unless the copy there is already right
    (the same stat key as placed, or else the same sha256)."""
    sha = art.digest()  # from the record; build logs (small) are hashed
    key = stat_key(target)
    if published.get(art.name) == [sha, key] and key is not None:
        report.count(art, "unchanged")
        return
    if key is not None:
        old = sha256_file(target)
        if old == sha:
            if not dry_run:
                published[art.name] = [sha, key]
            report.count(art, "unchanged")
            return
        if art.kind != "record":  # a record changes when the index annotates it (yanked, …)
            ui.warn(f"{target}: {'stale copy' if _placed(published.get(art.name)) == old else 'damaged or replaced'} "
                    f"(sha256 {old[:12]}…, the index serves {sha[:12]}…); "
                    f"{'would be ' if dry_run else ''}replaced from dist/")
        report.count(art, "replaced")
    else:
        report.count(art, "uploaded")
    if dry_run:
        return
    if art.kind == "wheel":
        check_digest(art, sha256_file(art.source))
    _place(target, art.source)
    published[art.name] = [sha, stat_key(target)]


def _placed(entry) -> str | None:
    """The sha256 a marker entry says was placed (either form)."""
    return entry[0] if isinstance(entry, list) else entry


def _pages(index_dir: Path) -> list[Path]:
    """The index's pages (not its state, not files/), project pages before the root pages that
    list them, the digest marker last (a client that sees it sees the pages it describes)."""
    return sorted(
        (p for p in index_dir.rglob("*") if p.is_file()
         and not p.relative_to(index_dir).as_posix().startswith((STATE_DIR + "/", FILES + "/"))),
        key=lambda p: (p.relative_to(index_dir).as_posix().count("/") < 2, p.name == DIGEST, p.as_posix()),
    )


def _place_page(page: Path, target: Path) -> bool:
    data = page.read_bytes()
    if target.is_file() and target.read_bytes() == data:
        return False
    _place(target, data=data)
    return True


def _prune(dest: Path, wanted_pages: set[str], wanted_files: set[str], published: dict[str, list],
           report: PublishReport) -> None:
    """Last: the pages and files the index no longer lists (and the folders left empty)."""
    for sub in (SIMPLE, PROJECT):
        for p in sorted((dest / sub).rglob("*"), reverse=True) if (dest / sub).is_dir() else []:
            if p.is_file() and p.relative_to(dest).as_posix() not in wanted_pages:
                p.unlink()
            elif p.is_dir() and not any(p.iterdir()):
                p.rmdir()
    for p in sorted((dest / FILES).iterdir()) if (dest / FILES).is_dir() else []:
        if p.is_file() and p.name not in wanted_files and not p.name.startswith("."):
            p.unlink()
            published.pop(p.name, None)
            report.count_pruned(p.name)


def _place(dest: Path, source: Path | None = None, data: bytes | None = None) -> None:
    """Put a file in place with one atomic rename (a copy or reflink of ``source``, never a hard link)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    if data is not None:
        tmp.write_bytes(data)
    else:
        clone_file(source, tmp)  # world-readable, for the web server
    os.replace(tmp, dest)
