"""Patches saved with CRLF line endings (issue #16): applied to LF sources, or named as CRLF;
a genuinely stale patch still says to refresh it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import write_project
from support.build import write_recipe

from wheelfactory.build import source
from wheelfactory.errors import SourceError
from wheelfactory.settings.recipe import load_recipe

# src/speed.c of the tiny sdist starts "#include <Python.h>\n#include <string.h>\n\n" (LF).
GOOD = ("--- a/src/speed.c\n+++ b/src/speed.c\n@@ -1,3 +1,4 @@\n"
        " #include <Python.h>\n #include <string.h>\n+#include <stdlib.h>\n \n")
STALE = GOOD.replace(" #include <string.h>\n", " #include <stdio.h>\n")


def _prepare_with_patch(tmp_path: Path, server, text: str):
    root = write_project(tmp_path / "p")
    url, sha = server.sdists["tiny"]
    write_recipe(root, "wf-tiny", f'[package]\nname = "wf-tiny"\nversion = "1.0"\n'
                                  f'[source]\nurl = "{url}"\nsha256 = "{sha}"\n')
    (root / "patches" / "wf-tiny").mkdir(parents=True)
    (root / "patches" / "wf-tiny" / "0001-stdlib.patch").write_bytes(text.encode())
    recipe = load_recipe(root / "recipes", "wf-tiny")
    return source.prepare(recipe, commit=None, cache=root / "cache", patches_root=root / "patches",
                          workdir=root / "build" / "wf-tiny", log=io.StringIO(), index_url="https://pypi.org/simple")


def test_a_crlf_patch_applies_to_an_lf_source(tmp_path, sdist_server):
    tree = _prepare_with_patch(tmp_path, sdist_server, GOOD.replace("\n", "\r\n"))
    speed = (tree.root / "src" / "speed.c").read_bytes()
    assert speed.startswith(b"#include <Python.h>\n#include <string.h>\n#include <stdlib.h>\n")
    assert b"\r" not in speed and tree.patches == ["wf-tiny/0001-stdlib.patch"]


def test_a_stale_crlf_patch_says_crlf_and_refresh(tmp_path, sdist_server):
    with pytest.raises(SourceError) as e:
        _prepare_with_patch(tmp_path, sdist_server, STALE.replace("\n", "\r\n"))
    assert str(e.value) == (
        "wf-tiny: patch patches/wf-tiny/0001-stdlib.patch does not apply: hunk at src/speed.c:1 does not match "
        "(the patch has CRLF line endings and applies neither as it is nor with LF endings); "
        "refresh the patch against wf-tiny 1.0")


def test_a_stale_lf_patch_still_says_refresh(tmp_path, sdist_server):
    with pytest.raises(SourceError) as e:
        _prepare_with_patch(tmp_path, sdist_server, STALE)
    assert str(e.value) == (
        "wf-tiny: patch patches/wf-tiny/0001-stdlib.patch does not apply: hunk at src/speed.c:1 does not match; "
        "refresh the patch against wf-tiny 1.0")
