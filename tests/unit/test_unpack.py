"""build/unpack.py: archives built the way the tarfile advisories describe are refused before
anything is written (CVE-2025-4517, CVE-2025-4330, CVE-2025-4138, CVE-2024-12718; python/cpython#135034),
whatever the Python's own ``data`` filter would let through."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from wheelfactory.build.unpack import PATH_MAX, UnsafeMember, unpack_archive


class Arc:
    """A tar archive written member by member (like CPython's ArchiveMaker in test_tarfile)."""

    def __init__(self, path: Path):
        self.path = path
        self.tf = tarfile.open(path, "w")  # noqa: SIM115 (closed by close())

    def add(self, name: str, *, content: str | None = None, symlink_to: str | None = None,
            hardlink_to: str | None = None, type: bytes | None = None, mode: int = 0o644) -> None:
        info = tarfile.TarInfo(name)
        info.mode = mode
        data = None
        if symlink_to is not None:
            info.type, info.linkname = tarfile.SYMTYPE, symlink_to
        elif hardlink_to is not None:
            info.type, info.linkname = tarfile.LNKTYPE, hardlink_to
        elif type is not None:
            info.type = type
        else:
            raw = (content or "").encode()
            info.size, data = len(raw), io.BytesIO(raw)
        self.tf.addfile(info, data)

    def close(self) -> Path:
        self.tf.close()
        return self.path


@pytest.fixture
def outer(tmp_path):
    """tmp/outer/flag (must survive) and tmp/outer/dest/ (where archives go)."""
    outer = tmp_path / "outer"
    (outer / "dest").mkdir(parents=True)
    (outer / "flag").write_text("original")
    return outer


def refused(arc: Arc, outer: Path, match: str) -> None:
    """The archive is refused naming why, nothing at all is written, and nothing outside changed."""
    path = arc.close()
    with pytest.raises(UnsafeMember, match=match):
        unpack_archive(path, outer / "dest")
    assert list((outer / "dest").iterdir()) == []
    assert (outer / "flag").read_text() == "original"
    assert sorted(p.name for p in outer.iterdir()) == ["dest", "flag"]


def test_a_plain_sdist_unpacks_with_its_inner_links(tmp_path, outer):
    arc = Arc(tmp_path / "ok.tar")
    arc.add("pkg-1.0/", type=tarfile.DIRTYPE, mode=0o755)
    arc.add("pkg-1.0/setup.py", content="print('hi')\n")
    arc.add("pkg-1.0/docs/", type=tarfile.DIRTYPE, mode=0o755)
    arc.add("pkg-1.0/docs/README", symlink_to="../setup.py")
    arc.add("pkg-1.0/COPY", hardlink_to="pkg-1.0/setup.py")
    arc.add("pkg-1.0/./sub/x.txt", content="x")
    unpack_archive(arc.close(), outer / "dest")
    top = outer / "dest" / "pkg-1.0"
    assert (top / "docs" / "README").read_text() == "print('hi')\n"
    assert (top / "COPY").read_text() == "print('hi')\n" and (top / "sub" / "x.txt").read_text() == "x"


@pytest.mark.parametrize("filters", [True, False])  # False: a Python 3.11 before 3.11.4, without tarfile filters
def test_modes_and_owners_are_not_taken_from_the_archive(tmp_path, outer, monkeypatch, filters):
    if not filters:
        monkeypatch.delattr(tarfile, "data_filter")
    arc = Arc(tmp_path / "modes.tar")
    arc.add("pkg/run", content="#!/bin/sh\n", mode=0o6777)
    with tarfile.open(arc.close(), "a") as tf:  # a foreign owner on one more member
        info = tarfile.TarInfo("pkg/owned")
        info.uid, info.gid, info.uname, info.gname = 4242, 4242, "nobody-here", "nobody-here"
        tf.addfile(info, io.BytesIO(b""))
    unpack_archive(arc.path, outer / "dest")
    assert (outer / "dest" / "pkg" / "run").stat().st_mode & 0o7777 == 0o755
    assert (outer / "dest" / "pkg" / "owned").stat().st_uid == os.getuid()


def test_realpath_limit_attack_cve_2025_4517(tmp_path, outer):
    # Symlinks a..p each lead one long directory deeper; unexpanded the path fits in PATH_MAX,
    # expanded it does not, so os.path.realpath(strict=False) stops expanding and the filter sees
    # a harmless path while the kernel follows the links out (CPython test_realpath_limit_attack).
    steps = "abcdefghijklmnop"
    dest_len = len(str(outer / "dest")) + 1
    component = "d" * ((PATH_MAX - dest_len) // (len(steps) + 1))
    linkpath = os.path.join(*steps, "l" * 254)

    def staircase(arc: Arc) -> Arc:
        path = ""
        for step in steps:
            arc.add(os.path.join(path, component), type=tarfile.DIRTYPE, mode=0o777)
            arc.add(os.path.join(path, step), symlink_to=component)
            path = os.path.join(path, component)
        arc.add(linkpath, symlink_to=os.path.join(*[".."] * len(steps)))
        arc.add("escape", symlink_to=os.path.join(linkpath, ".."))
        return arc

    arc = staircase(Arc(tmp_path / "limit.tar"))
    arc.add("flaglink", hardlink_to=os.path.join("escape", "flag"))
    arc.add("flaglink", content="overwrite")
    arc.add("escape/newfile", content="new")
    refused(arc, outer, r"hard link 'flaglink' -> 'escape/flag' does not name an earlier regular file")
    # The staircase alone is refused too: its links are members written through other links.
    refused(staircase(Arc(tmp_path / "limit2.tar")), outer,
            r"member 'a/b/c/.*' is written through 'a', which is not a directory")


def test_a_symlink_whose_expansion_exceeds_path_max(tmp_path, outer):
    # Each target is short; followed through s1 the path is longer than PATH_MAX, where
    # os.path.realpath gives up expanding (CVE-2025-4517): refused, not guessed.
    d, e = "D" * 250, "E" * 250
    arc = Arc(tmp_path / "long.tar")
    arc.add("/".join([d] * 10) + "/", type=tarfile.DIRTYPE, mode=0o755)
    arc.add("s1", symlink_to="/".join([d] * 10))
    arc.add("s2", symlink_to="s1/" + "/".join([e] * 7))
    refused(arc, outer, r"symlink 's2' expands to a path longer than PATH_MAX")


DIR, FILE = {"type": tarfile.DIRTYPE, "mode": 0o755}, {"content": "x"}

# (members in archive order as (name, Arc.add keywords), what the refusal says)
HOSTILE = {
    # The docs promise no absolute paths; the data filter strips the "/" and goes on.
    "absolute member": ([("pkg-1.0/setup.py", FILE), ("/opt/escaped.txt", FILE)],
                        r"member '/opt/escaped.txt' is an absolute path"),
    "dot-dot member": ([("pkg-1.0/../../flag", FILE)], r"has '\.\.' and would land outside"),
    # Each link alone looks inside ("x/.." is "." lexically), but x leads two folders down,
    # so x/../../.. is one above the destination once x is followed (CVE-2025-4138).
    "chain escaping when followed": ([("a/b/", DIR), ("x", {"symlink_to": "a/b"}), ("y", {"symlink_to": "x/../../.."})],
                                     r"symlink 'y' points outside the destination"),
    # os.link follows a symlink source: the hard link would be to the file outside (CVE-2025-4330).
    "hard link to an escaping symlink": ([("pkg/", DIR), ("pkg/sneaky", {"symlink_to": "../../flag"}),
                                          ("pkg/boom", {"hardlink_to": "pkg/sneaky"}), ("pkg/boom", FILE)],
                                         r"hard link 'pkg/boom' -> 'pkg/sneaky' does not name an earlier regular file"),
    "hard link to an inner symlink": ([("pkg/inner", {"symlink_to": "x"}), ("pkg/x", FILE),
                                       ("pkg/boom", {"hardlink_to": "pkg/inner"})],
                                      r"hard link 'pkg/boom' -> 'pkg/inner' does not name an earlier regular file"),
    "hard link to a later member": ([("a", {"hardlink_to": "b"}), ("b", FILE)],
                                    "does not name an earlier regular file"),
    # The link points inside; later members are written (and chmod-ed) through it (CVE-2024-12718).
    "file through a symlink": ([("pkg/", DIR), ("pkg/lib", {"symlink_to": ".."}), ("pkg/lib/x", FILE)],
                               r"member 'pkg/lib/x' is written through 'pkg/lib'"),
    "directory over a symlink": ([("pkg/", DIR), ("pkg/f", {"symlink_to": "g"}),
                                  ("pkg/f", {"type": tarfile.DIRTYPE, "mode": 0o777})],
                                 r"member 'pkg/f' is written over the link"),
    "absolute symlink": ([("etc", {"symlink_to": "/etc"})], r"symlink 'etc' -> '/etc' points to an absolute path"),
    "character device": ([("pkg/null", {"type": tarfile.CHRTYPE})], r"'pkg/null' is a character device"),
    "block device": ([("pkg/sda", {"type": tarfile.BLKTYPE})], r"'pkg/sda' is a block device"),
    "FIFO": ([("pkg/pipe", {"type": tarfile.FIFOTYPE})], r"'pkg/pipe' is a FIFO"),
    "symlink loop": ([("a", {"symlink_to": "b"}), ("b", {"symlink_to": "a"})], "more than 40 symlinks"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_archives_are_refused_naming_the_member(tmp_path, outer, case):
    members, why = HOSTILE[case]
    arc = Arc(tmp_path / "hostile.tar")
    for name, kw in members:
        arc.add(name, **kw)
    refused(arc, outer, why)


def test_zip_members_get_the_same_name_rules(tmp_path, outer):
    for name, why in (("/opt/escaped.txt", "is an absolute path"), ("pkg/../../flag", "would land outside")):
        path = tmp_path / "bad.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("pkg/setup.py", "")
            zf.writestr(name, "bad")
        with pytest.raises(UnsafeMember, match=why):
            unpack_archive(path, outer / "dest")
        assert list((outer / "dest").iterdir()) == [] and (outer / "flag").read_text() == "original"
