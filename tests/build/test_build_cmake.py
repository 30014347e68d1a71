"""A real scikit-build-core/CMake build: the shipped pyzmq recipe, built for the host.

pyzmq's CMake build downloads libzmq and libsodium when it does not find libzmq;
the recipe links Debian's libzmq (PYZMQ_NO_BUNDLE), so the build must find it
with pkg-config, compile the Cython backend and let auditwheel bundle libzmq.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import zipfile

import pytest

from support.build import make_project
from wheelfactory.build import store
from wheelfactory.cli import build as build_cli

pytestmark = pytest.mark.slow


def test_pyzmq_builds_with_cmake_against_debians_libzmq(tmp_path, shared_cache):
    root = make_project(tmp_path / "project", shared_cache, recipes=["pyzmq"])
    with open(tmp_path / "stderr.txt", "w") as f, contextlib.redirect_stderr(f):
        rc = build_cli.build_command(["pyzmq", "--target", "host"], root=root)
    out = (tmp_path / "stderr.txt").read_text()
    assert rc == 0, out
    [rec] = store.load_records(root / "dist")
    names = zipfile.ZipFile(root / "dist" / rec["filename"]).namelist()
    assert any(re.fullmatch(r"zmq/backend/cython/_zmq\.cpython-[^/]+\.so", n) for n in names), names
    assert any(re.fullmatch(r"pyzmq\.libs/libzmq-[0-9a-f]+\.so[.0-9]*", n) for n in names), names
    # Debian's libzmq, found by CMake through pkg-config, not a downloaded one.
    system = subprocess.run(["pkg-config", "--modversion", "libzmq"], capture_output=True, text=True,
                            check=True).stdout.strip()
    log = (root / rec["log"]).read_text()
    assert f"Found libzmq, version {system}" in log, log[-3000:]
    assert "Linking libzmq target PkgConfig::libzmq" in log
    assert "bundled libzmq" not in log.lower() and "libsodium" not in log.lower()
