"""Safe unpacking of source archives: every member is checked before anything is written.

``tarfile``'s ``data`` filter alone is not enough: CPython releases before
3.11.13, 3.12.11 and 3.13.4 let crafted archives past it (CVE-2025-4517,
CVE-2025-4330, CVE-2025-4138, CVE-2024-12718; python/cpython#135034), through
symlink chains whose expansion exceeds PATH_MAX, hard links to symlinks and
files written through links. So the whole member list is checked first,
without touching the file system, against these rules:

* a member's name is relative, has no ``..`` and is at most PATH_MAX long;
* members are regular files, directories, symlinks or hard links (no device
  files, FIFOs or unknown types);
* nothing is written through or over a link: no member lies under a symlink
  or hard link member, and a link's name is not used by another member;
* a symlink's target, resolved through the archive's other symlinks (at most
  40 of them, Linux's MAXSYMLINKS), stays inside the destination;
* a hard link names an earlier regular-file member.

Then tarfile extracts with the ``data`` filter as a second line (it also drops
setuid bits and foreign owners; on 3.11.0-3.11.3, which have no filters, this
module drops them). Zips get the name rules; zipfile writes symlink members as
plain files, so they cannot lead anywhere.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
import zipfile
from pathlib import Path

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")
PATH_MAX = 4096  # Linux <limits.h>, bytes with the terminating NUL
MAXSYMLINKS = 40  # Linux: symlinks followed in one path lookup before ELOOP


class UnsafeMember(Exception):
    """A member breaks one of the rules; str() is the member and why."""


def unpack_archive(archive: Path, dest: Path) -> None:
    """Check every member of ``archive`` (.tar.* or .zip), then extract it into the empty folder ``dest``.

    Raises UnsafeMember naming the first member that breaks a rule (nothing is
    extracted then), ValueError for another file type, and tarfile/zipfile/OS
    errors for a damaged archive.
    """
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                check_name(info.filename)
            zf.extractall(dest)
    elif name.endswith(ARCHIVE_SUFFIXES):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            check_tar_members(members)
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")
            else:  # CPython 3.11.0-3.11.3 have no filters: drop setuid bits and foreign owners here
                for m in members:
                    m.mode &= 0o755
                    m.uid, m.gid, m.uname, m.gname = os.getuid(), os.getgid(), "", ""
                tf.extractall(dest)
    else:
        raise ValueError(f"{archive.name} is not one of {', '.join(ARCHIVE_SUFFIXES)}")


def check_name(name: str) -> str:
    """The member name, normalized (``a/./b/`` -> ``a/b``); UnsafeMember if absolute, with ``..`` or too long."""
    if name.startswith("/"):
        raise UnsafeMember(f"member {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeMember(f"member {name!r} has '..' and would land outside the destination")
    if len(name.encode()) >= PATH_MAX:
        raise UnsafeMember(f"member {name[:60]!r}… has a name longer than PATH_MAX ({PATH_MAX} bytes)")
    return "/".join(parts)


def check_tar_members(members: list[tarfile.TarInfo]) -> None:
    """Apply the module's rules to a tar member list (in archive order); UnsafeMember on the first breach."""
    kinds: dict[str, str] = {}  # normalized name -> "file", "dir", "symlink", "hardlink"
    symlinks: dict[str, str] = {}  # normalized name -> link target as stored
    for m in members:
        path = check_name(m.name)
        if m.isreg():
            kind = "file"
        elif m.isdir():
            kind = "dir"
        elif m.issym():
            kind = "symlink"
        elif m.islnk():
            kind = "hardlink"
            target = check_name(m.linkname)
            if kinds.get(target) != "file":
                raise UnsafeMember(f"hard link {m.name!r} -> {m.linkname!r} does not name an earlier regular file")
        else:
            raise UnsafeMember(f"member {m.name!r} is a {_TYPE_NAMES.get(m.type, 'special file')}, not a file")
        if not path:
            if kind != "dir":
                raise UnsafeMember(f"member {m.name!r} would replace the destination folder itself")
            continue
        if path in kinds and (kinds[path] in ("symlink", "hardlink") or kind in ("symlink", "hardlink")):
            raise UnsafeMember(f"member {m.name!r} is written over the link of the same name")
        kinds[path] = kind
        if kind == "symlink":
            symlinks[path] = m.linkname
    for path in kinds:
        parent = path.rpartition("/")[0]
        while parent:
            if kinds.get(parent) in ("symlink", "hardlink", "file"):
                raise UnsafeMember(f"member {path!r} is written through {parent!r}, which is not a directory")
            parent = parent.rpartition("/")[0]
    for path, target in symlinks.items():
        if target.startswith("/"):
            raise UnsafeMember(f"symlink {path!r} -> {target!r} points to an absolute path")
        _resolve(posixpath.join(posixpath.dirname(path), target), symlinks, link=path)


def _resolve(path: str, symlinks: dict[str, str], *, link: str) -> str:
    """Where ``path`` (relative to the destination) leads once the archive's symlinks are followed,
    as the kernel would walk it; UnsafeMember if it leaves the destination or needs too many hops.
    Pure: the destination is empty, so the archive's own links are the only ones on the way."""
    todo = [p for p in path.split("/") if p not in ("", ".")]
    todo.reverse()
    stack: list[str] = []
    hops = 0
    while todo:
        part = todo.pop()
        if part == "..":
            if not stack:
                raise UnsafeMember(f"symlink {link!r} points outside the destination")
            stack.pop()
            continue
        stack.append(part)
        here = "/".join(stack)
        if len(here.encode()) >= PATH_MAX:
            raise UnsafeMember(f"symlink {link!r} expands to a path longer than PATH_MAX ({PATH_MAX} bytes)")
        if here in symlinks:
            hops += 1
            if hops > MAXSYMLINKS:
                raise UnsafeMember(f"symlink {link!r} goes through more than {MAXSYMLINKS} symlinks")
            target = symlinks[here]
            if target.startswith("/"):
                raise UnsafeMember(f"symlink {link!r} goes through {here!r}, which points to an absolute path")
            stack.pop()
            todo.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
    return "/".join(stack)


_TYPE_NAMES = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "FIFO"}
