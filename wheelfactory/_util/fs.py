"""Files: atomic writes, hashes, timestamps, locks, and deleting trees safely.

Atomic writes go to a temporary file beside the target, are fsync'ed and renamed
over it, so a reader sees the old file or the new one, never a half-written one
(dist/ records, index pages, stamps). Files get the mode ``open()`` would give
(readable by a web server), not mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .. import ui
from ..errors import FactoryError


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_file_mode()  # what open() would give: readable by a web server


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def utcnow() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; dist/ and index/ files are served to others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- locks and safe deletion -------------------------------------------------------------

@contextlib.contextmanager
def flock(path: Path, *, shared: bool = False, waiting: str = "") -> Iterator[None]:
    """An fcntl lock on ``path`` (shared or exclusive); says ``waiting`` when it has to wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                ui.info(waiting)
            fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this process's mount namespace."""
    base = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), point)
            if point == base or point.startswith(base.rstrip("/") + "/"):
                found.append(point)
    return found


def remove_tree(path: Path) -> None:
    """Delete a rootfs-like tree, but never through a mount point (a bound /dev or project folder)."""
    if not os.path.lexists(path):
        return
    real = Path(os.path.realpath(path))
    if len(real.parts) < 3:
        raise FactoryError(f"refusing to delete {real}: too close to /")
    left = mounts_under(real)
    for point in sorted(left, key=len, reverse=True):  # leftovers of a crashed process: detach them
        subprocess.run(["umount", "--lazy", point], capture_output=True)
    left = mounts_under(real)
    if left:
        raise FactoryError(f"refusing to delete {real}: {left[0]} is still mounted; unmount it first (umount -R)")
    shutil.rmtree(real)


def tree_size(path: Path) -> int:
    """Bytes on disk under ``path`` (like du -sx; hard links counted once)."""
    total, seen = 0, set()
    dev = os.lstat(path).st_dev
    for dirpath, dirnames, filenames in os.walk(path):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if st.st_dev != dev or (st.st_ino in seen):
                continue
            if st.st_nlink > 1:
                seen.add(st.st_ino)
            total += st.st_blocks * 512
        dirnames[:] = [d for d in dirnames if os.lstat(os.path.join(dirpath, d)).st_dev == dev]
    return total


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit in ("B", "KiB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def human_age(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.0f} days"
