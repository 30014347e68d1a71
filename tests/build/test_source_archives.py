"""An sdist with an absolute member, through the build command as a user meets it (issue #16):
one message naming the member, exit 1, nothing unpacked, dist/ unchanged, the attempt recorded."""

from __future__ import annotations

import json
import tarfile

import pytest
from conftest import write_project
from support.build import (
    LocalServer,
    make_sdist,
    tiny_files,
    tree_snapshot,
    write_recipe,
)

from wheelfactory import cli
from wheelfactory.cli import build as build_cli


def test_an_sdist_with_an_absolute_member_is_refused_naming_it(tmp_path, capsys):
    member = tarfile.TarInfo("/opt/escaped.txt")
    member.size = 4
    server = LocalServer(tmp_path / "served")
    try:
        path, sha = make_sdist(tmp_path / "served", tiny_files(), extra_members=[member])
        root = write_project(tmp_path / "p")
        recipe = write_recipe(root, "wf-tiny", f'[package]\nname = "wf-tiny"\nversion = "1.0"\n'
                                               f'[source]\nurl = "{server.url}/{path.name}"\nsha256 = "{sha}"\n')
        (root / "dist").mkdir()
        (root / "dist" / "keep.txt").write_text("untouched")
        before = tree_snapshot(root / "dist")
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            cli.run(build_cli.build_command, ["wf-tiny", "--target", "host"], root=root)
    finally:
        server.close()
    err = capsys.readouterr().err
    flat = " ".join(err.split())
    assert exit_info.value.code == 1, err
    assert (f"error: wf-tiny: cannot unpack wf_tiny-1.0.tar.gz safely: member '/opt/escaped.txt' is an absolute "
            f"path; nothing was unpacked. Fix: check that source.url and source.sha256 in {recipe} point at "
            f"the project's real release; an archive with such a member is never built"
            ) in flat, err
    assert err.count("error:") == 1 and "Traceback" not in err
    assert tree_snapshot(root / "dist") == before
    assert not (root / "build" / "wf-tiny" / "src").exists() or not any((root / "build" / "wf-tiny" / "src").iterdir())
    [attempt] = [json.loads(p.read_text()) for p in (root / "logs").rglob("*.json")]
    assert attempt["status"] == "failed" and "'/opt/escaped.txt'" in attempt["message"]
