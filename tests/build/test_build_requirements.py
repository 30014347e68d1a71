"""A build requirement that cannot be installed: one message naming it and the installer's reason.

Real builds on the native runner, real uv against PyPI: a tiny setuptools sdist whose
build-system.requires names a project PyPI does not have (as zstandard's ``cffi~=1.17`` has no
riscv64 wheel anywhere). The message names the requirement, says what uv said and gives a fix;
the fix it gives (build.isolation = false with build.requires) builds the same sdist.
"""

from __future__ import annotations

import json

from support.build import make_project, make_sdist, one_build_error, tiny_files, tree_snapshot

from conftest import write_recipe
from wheelfactory.cli import build as build_cli

MISSING = "wf-no-such-build-requirement"  # not on PyPI: uv cannot resolve it


def _recipe(root, server, build: str) -> None:
    files = tiny_files(name="wf-req")
    files["pyproject.toml"] = files["pyproject.toml"].replace(
        'requires = ["setuptools>=68"]', f'requires = ["setuptools>=68", "{MISSING}>=1"]')
    served = server.folder / "req"
    served.mkdir(exist_ok=True)
    sdist, sha = make_sdist(served, files, name="wf-req")
    write_recipe(root, "wf-req", f'''\
        [package]
        name = "wf-req"
        version = "1.0"

        [source]
        url = "{server.url}/req/{sdist.name}"
        sha256 = "{sha}"

        [build]
        {build}

        [test]
        imports = ["wf_req._speed"]
        ''')


def test_an_uninstallable_build_requirement_is_named_with_the_installers_reason(tmp_path, shared_cache,
                                                                                  sdist_server, capsys):
    root = make_project(tmp_path / "p", shared_cache)
    _recipe(root, sdist_server, "")
    (root / "dist").mkdir(exist_ok=True)
    (root / "dist" / "kept.txt").write_text("untouched\n")
    before = tree_snapshot(root / "dist")
    capsys.readouterr()
    flat = one_build_error(root, "wf-req", capsys)
    assert "CalledProcessError" not in flat, flat
    assert "wf-req: installing the build requirements for Python 3.11 failed (" in flat, flat
    assert f"{MISSING}>=1" in flat, flat
    # uv's own reason, not only its command line
    assert f"Because {MISSING} was not found in the package registry" in flat, flat
    assert "build.depends" in flat and "build.isolation = false" in flat, flat
    assert tree_snapshot(root / "dist") == before


def test_the_fix_it_gives_builds_the_same_sdist(tmp_path, shared_cache, sdist_server):
    root = make_project(tmp_path / "p", shared_cache)
    _recipe(root, sdist_server, 'isolation = false\n        requires = ["setuptools>=68"]')
    assert build_cli.build_command(["wf-req", "--target", "host"], root=root) == 0
    (record,) = [json.loads(p.read_text()) for p in (root / "dist").glob("*.json")]
    assert record["name"] == "wf-req"
