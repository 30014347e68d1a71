"""The stat key of each dist/ record, and a helper process that computes part of them.

An index run stats every record of dist/: a record overwritten in place changes
nothing but its own mtime. That is one system call per record (about 3 µs on a
VM), the floor of an incremental run. With an idle core, a second Python stats
part of the records at the same time. It is a process, not a thread (every stat
would hand the GIL over), and spawned, not forked (a fork costs in proportion to
the caller's memory). Started with ``-I -S`` it runs this file alone, with no
site-packages, in about 10 ms, while the caller lists dist/.

Run as a script (the helper): ``python -I -S statkeys.py FOLDER``, reads a marshal
list of names on stdin and writes the marshal list of their keys on stdout.
"""

from __future__ import annotations

import marshal
import os
import sys

# (subprocess and fcntl are imported where they are used: the helper, which runs this
# file, starts faster without them.)


def stat_keys(names: list[str], fd: int) -> list[int | None]:
    """The stat key of each file in the folder ``fd`` (None if it is gone): one int of
    (mtime, size, inode) that is cheap to store and load. Tuples of ints hash alike in
    every process (only str and bytes hashes are salted), so the helper's keys match."""
    stat, keys = os.stat, []
    for name in names:
        try:
            st = stat(name, dir_fd=fd)
        except FileNotFoundError:
            keys.append(None)
            continue
        keys.append(hash((st.st_mtime_ns, st.st_size, st.st_ino)))
    return keys


class StatHelper:
    """A helper process for ``folder``: ``start`` it early, ``send`` it names, ``join`` for
    their keys (always: it is a process to reap)."""

    @classmethod
    def start(cls, folder: str | os.PathLike) -> StatHelper | None:
        """A started helper, or None if no Python can be started (an embedded interpreter)."""
        if not sys.executable or not os.path.isfile(__file__):
            return None
        try:
            return cls(folder)
        except OSError:
            return None

    def __init__(self, folder: str | os.PathLike):
        self.folder, self.names = os.fspath(folder), []
        self.failed = False  # set by join() when it had to do the helper's part itself
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-I", "-S", os.path.abspath(__file__), self.folder],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:  # (Linux) room for all the names while the helper starts up
            import fcntl

            fcntl.fcntl(self.proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        except (ImportError, AttributeError, OSError):
            pass

    def send(self, names: list[str]) -> None:
        self.names = names
        try:
            self.proc.stdin.write(marshal.dumps(names))
            self.proc.stdin.close()
        except OSError:
            pass  # it died: join() does its part here

    def join(self) -> list[int | None]:
        """The keys of the names sent (computed here if the helper failed)."""
        try:
            if not self.proc.stdin.closed:
                self.proc.stdin.close()
            data = self.proc.stdout.read()
            self.proc.stdout.close()
        except OSError:
            data = b""
        ok = self.proc.wait() == 0
        if not self.names:
            return []
        try:
            keys = marshal.loads(data) if ok else None
        except (EOFError, ValueError, TypeError):
            keys = None
        if not isinstance(keys, list) or len(keys) != len(self.names):
            self.failed = True
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                keys = stat_keys(self.names, fd)
            finally:
                os.close(fd)
        return keys


def _serve() -> None:
    data = sys.stdin.buffer.read()
    if data:  # (nothing: the caller found nothing for it to do)
        fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
        sys.stdout.buffer.write(marshal.dumps(stat_keys(marshal.loads(data), fd)))


if __name__ == "__main__":
    _serve()
