"""repair.exclude on a real build: a C extension linking the system's libffi (libffi-dev).

The exclusion that matches nothing (libffi.so.7 while the wheel needs libffi.so.8)
is in the bad-recipe corpus (bad_recipes/exclude-matches-nothing). Here: the
fix that message gives works (exclude libffi.so.8: the wheel is stored without
libffi), and the excluded library's Debian package (libffi8, found through
Debian's Contents index by runners/debian.py) is a warning and a record note
until runtime.debian lists it.
"""

from __future__ import annotations

import json
import zipfile

from support.build import make_project, tiny_recipe
from wheelfactory.cli import build as build_cli


def _build(tmp_path, shared_cache, sdist_server, capsys, extra: str) -> tuple[dict, str]:
    root = make_project(tmp_path / "p", shared_cache)
    tiny_recipe(root, sdist_server, variant="ffi", extra=extra)
    capsys.readouterr()
    assert build_cli.build_command(["wf-tiny", "--target", "host"], root=root) == 0
    err = " ".join(capsys.readouterr().err.split())
    (record,) = (root / "dist").glob("*.whl.json")
    rec = json.loads(record.read_text())
    with zipfile.ZipFile(root / "dist" / rec["filename"]) as zf:
        assert not [n for n in zf.namelist() if "libffi" in n], "libffi was bundled despite repair.exclude"
    return rec, err


def test_the_excluded_librarys_package_is_named_until_runtime_debian_lists_it(tmp_path, shared_cache, sdist_server,
                                                                              capsys):
    rec, err = _build(tmp_path / "a", shared_cache, sdist_server, capsys, '\n[repair]\nexclude = ["libffi.so.8"]\n')
    want = ("repair.exclude leaves libffi.so.8 to the system, but its Debian package libffi8 is not in "
            "runtime.debian; add \"libffi8\" to runtime.debian in")
    assert f"warning: wf-tiny: {want}" in err
    assert any(note.startswith(want) for note in rec["notes"])

    rec, err = _build(tmp_path / "b", shared_cache, sdist_server, capsys,
                      '\n[repair]\nexclude = ["libffi.so.*"]\n[runtime]\ndebian = ["libffi8"]\n')
    assert "warning" not in err and not any("repair.exclude" in n for n in rec["notes"])
    assert rec["debian_runtime"] == ["libffi8"]
