"""[extra-sources.NAME]: archives a build needs beside its source, pinned like the source.

A real build of a tiny C extension whose setup.py reads one file from an extra
archive found through an env var and one from an archive unpacked into the
source tree, both served from 127.0.0.1: the wheel's compiled code returns
what the two archives held, the record lists them, the second build uses the
cache, and a changed sha256 is a new build key. The bad inputs (missing
sha256, mismatch, unreachable URL, unpack-to that exists) are cases in
bad_recipes/ (test_recipe_bad.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from support.build import make_project, make_sdist, tiny_files

from conftest import write_recipe
from wheelfactory.cli import build as build_cli
from wheelfactory.settings.recipe import load_recipe

# The flavor the extension returns comes from the two extra archives, nowhere else.
EXTRA_SETUP = '''\
import os
from setuptools import Extension, setup

from_env = open(os.path.join(os.environ["WF_EXTRA_DATA"], "flavor.txt")).read().strip()
from_tree = open(os.path.join("vendor", "blob", "flavor.txt")).read().strip()
setup(ext_modules=[Extension("{module}._speed", ["src/speed.c"],
                             define_macros=[("FLAVOR", '"%s+%s"' % (from_env, from_tree))])])
'''


def _tarball(path: Path, top: str, files: dict[str, str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:xz") as tf:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_extra_sources_reach_the_build_and_the_record(tmp_path, shared_cache, sdist_server):
    served = sdist_server.folder / "extra"
    sdist, sdist_sha = make_sdist(served, tiny_files(name="wf-extra", setup_py=EXTRA_SETUP), name="wf-extra")
    data_sha = _tarball(served / "data-1.0.tar.xz", "data-1.0", {"flavor.txt": "envside\n"})
    blob_sha = _tarball(served / "blob-2.0.tar.xz", "blob-2.0", {"flavor.txt": "treeside\n"})
    base = f"{sdist_server.url}/extra"
    root = make_project(tmp_path / "p", shared_cache)
    text = f'''\
        [package]
        name = "wf-extra"
        version = "1.0"

        [source]
        url = "{base}/{sdist.name}"
        sha256 = "{sdist_sha}"

        [extra-sources.data]
        url = "{base}/data-1.0.tar.xz"
        sha256 = "{data_sha}"
        env = "WF_EXTRA_DATA"

        [extra-sources.blob]
        url = "{base}/blob-2.0.tar.xz"
        sha256 = "{blob_sha}"
        unpack-to = "vendor/blob"

        [test]
        imports = ["wf_extra._speed"]
        commands = ["python -c \\"import wf_extra; assert wf_extra.flavor() == 'envside+treeside', wf_extra.flavor()\\""]
        '''
    write_recipe(root, "wf-extra", text)
    assert build_cli.build_command(["wf-extra"], root=root) == 0

    (record,) = [json.loads(p.read_text()) for p in (root / "dist").glob("*.json")]
    assert record["source"]["extra"] == {
        "data": {"url": f"{base}/data-1.0.tar.xz", "sha256": data_sha, "unpack_to": None, "env": "WF_EXTRA_DATA"},
        "blob": {"url": f"{base}/blob-2.0.tar.xz", "sha256": blob_sha, "unpack_to": "vendor/blob", "env": None},
    }
    if os.geteuid() == 0:  # the native runner cuts the backend's network as root (test_network_cut.py)
        assert record["host"]["network"] == "cut"
    for sha in (data_sha, blob_sha):  # cached and verified like the main source
        assert (shared_cache / "sources" / sha).is_dir()

    # Another sha256 for an extra source is another build: the key counts it.
    key = record["build_key"]
    other_sha = _tarball(served / "blob-2.1.tar.xz", "blob-2.1", {"flavor.txt": "treeside\n"})
    write_recipe(root, "wf-extra", text.replace(blob_sha, other_sha).replace("blob-2.0", "blob-2.1"))
    assert load_recipe(root / "recipes", "wf-extra").extra_sources["blob"].sha256 == other_sha
    assert build_cli.build_command(["wf-extra"], root=root) == 0
    keys = {json.loads(p.read_text())["build_key"] for p in (root / "dist").glob("*.json")}
    assert len(keys) == 2 and key in keys
    log = sorted((root / "logs" / "wf-extra").glob("*.log"))[-1].read_text()
    assert "using cached" in log and "extra-sources.data" in log
