"""Atomic updates of the live index: the staging folder, the commit file, the roll-forward
journal, and recovery from an interrupted update.

Changed files are written into a staging folder beside the index (``.NAME.staging``);
nothing in the live index is touched until that has fully succeeded. Then a commit
file (``.commit.json``: the renames in order, then the deletions) is written, and
the staged files are renamed into place, each rename atomic, in an order that keeps
every link resolvable at every instant: each wheel's own files first, project pages
next, root pages, the state last, deletions after. A run interrupted during the
renames is completed by the next run (``recover``: the commit file is the journal);
one interrupted before the commit file leaves the live index exactly as it was.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

from .. import ui
from .render import FILES, PROJECT, SIMPLE
from .state import STATE

COMMIT = ".commit.json"  # inside the staging folder: its presence means "apply me"


def staging_dir(live: Path) -> Path:
    """Where an update of ``live`` is prepared: beside it, on the same file system, so each
    staged file goes live with one rename."""
    return live.parent / f".{live.name}.staging"


# ioctl FICLONE (linux/fs.h: _IOW(0x94, 9, int)): share the source's extents, copy on write.
FICLONE = 0x40049409


def clone_file(source, dest) -> None:
    """Copy ``source`` to a new file ``dest`` (0644, readable by a web server) that never
    shares an inode with it: a hard link would let a write through the published copy
    (``cp other.whl publish/files/W.whl``) change dist/. A reflink where the file system
    has them (btrfs, XFS: no bytes copied, blocks shared copy-on-write), else an in-kernel
    copy (``copy_file_range``; ``shutil.copyfile``'s sendfile where that is refused)."""
    with open(source, "rb") as src, open(dest, "wb") as out:
        os.fchmod(out.fileno(), 0o644)
        try:
            fcntl.ioctl(out.fileno(), FICLONE, src.fileno())
            return
        except OSError:
            pass
        try:
            left = os.fstat(src.fileno()).st_size
            while left > 0:
                n = os.copy_file_range(src.fileno(), out.fileno(), left)
                if n == 0:
                    break
                left -= n
            return
        except OSError:  # (EXDEV on older kernels, ENOSYS, EINVAL on some file systems)
            out.seek(0)
            out.truncate()
    shutil.copyfile(source, dest)


def write_bytes(path: str, data: bytes) -> None:
    """Create (or truncate) the file ``path`` holding ``data``, through os.open/os.write: a
    buffered open() adds an fstat, an ioctl, an lseek and a flush per file, a third of
    the time it takes to write a small file on this VM (docs/index.md, "Speed devices")."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


class Stage:
    """Files staged for one update (paths relative to the index), and the order they go
    live in: each wheel's own files first, then project pages, root pages, the state."""

    ORDER = (FILES, SIMPLE, PROJECT, "root", STATE)

    def __init__(self, staging: Path, *, raw_io: bool = True):
        self.dir = staging
        self.raw_io = raw_io  # write with os.open/os.write (a speed device, see write_bytes)
        self.groups: dict[str, list[str]] = {k: [] for k in self.ORDER}
        self._made: set[str] = set()

    @staticmethod
    def _group(rel: str) -> str:
        if rel == STATE:
            return STATE
        top, _, rest = rel.partition("/")
        return top if top == FILES or "/" in rest else "root"  # (simple/index.html is a root page)

    def _path(self, rel: str) -> str:
        """The staged file of ``rel`` (its folder made); ``rel`` joins its group."""
        self.groups[self._group(rel)].append(rel)
        folder, _, _ = rel.rpartition("/")
        if folder not in self._made:
            os.makedirs(f"{self.dir}/{folder}", exist_ok=True)
            self._made.add(folder)
        return f"{self.dir}/{rel}"  # (strings: a Path per file costs more than writing a small file)

    def write(self, rel: str, data: bytes) -> None:
        if self.raw_io:
            write_bytes(self._path(rel), data)
        else:
            with open(self._path(rel), "wb") as f:
                f.write(data)

    def clone(self, source: str, rel: str) -> None:
        """Stage a copy of ``source`` (a wheel in dist/) as ``rel`` (a reflink where possible)."""
        clone_file(source, self._path(rel))

    def copy(self, source: str, rel: str) -> None:
        shutil.copyfile(source, self._path(rel))

    def adopt(self, rels: list[str]) -> None:
        """Files another process staged in this folder."""
        for rel in rels:
            self.groups[self._group(rel)].append(rel)

    def moves(self) -> list[str]:
        return [rel for k in self.ORDER for rel in self.groups[k]]


def commit(stage: Stage, live: Path, deletes: list[str]) -> None:
    """Make the staged update live: write the commit file (the point of no return), then apply it."""
    (stage.dir / COMMIT).write_text(json.dumps({"moves": stage.moves(), "deletes": deletes}))
    _apply(stage.dir, live)


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
    staging = staging_dir(live)
    if not staging.exists():
        return False
    if (staging / COMMIT).is_file() and live.is_dir():
        ui.info(f"completing an interrupted update of {live}")
        _apply(staging, live)
        return True
    shutil.rmtree(staging, ignore_errors=True)  # never committed: the live index is the previous one
    return False


def strays(live: Path, stage: Stage) -> list[str]:
    """On a full rebuild: every file in the live index that the new index does not hold
    (an older format's state files included)."""
    keep = set(stage.moves()) | {STATE}
    return sorted(rel for p in live.rglob("*") if not p.is_dir()
                  if (rel := p.relative_to(live).as_posix()) not in keep)
