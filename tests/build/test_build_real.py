"""Real builds of real PyPI sdists on the host arch, through the whole pipeline.

multidict, propcache, frozenlist and cffi are built ONCE per session (one
`build` run, which also shows the summary table); each wheel is then installed
into a fresh bare venv with the real pip and imported.
"""

from __future__ import annotations

import contextlib
import json
import time

import pytest
from packaging.utils import parse_wheel_filename

from support.build import bare_venv, make_project, run, tree_snapshot
from wheelfactory._util.fs import sha256_file
from wheelfactory.cli import build as build_cli
from wheelfactory.build import store

REAL = ["multidict", "propcache", "frozenlist", "cffi"]
IMPORTS = {
    "multidict": "import multidict, multidict._multidict; d = multidict.MultiDict(a=1); d.add('a', 2); assert d.getall('a') == [1, 2]",
    "propcache": "import propcache, propcache._helpers_c",
    "frozenlist": "import frozenlist, frozenlist._frozenlist; f = frozenlist.FrozenList([1]); f.freeze(); assert hash(f)",
    "cffi": "import cffi, _cffi_backend; ffi = cffi.FFI(); ffi.cdef('int abs(int);'); assert ffi.dlopen(None).abs(-3) == 3",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def real_build(tmp_path_factory, shared_cache):
    root = make_project(tmp_path_factory.mktemp("real") / "project", shared_cache, recipes=REAL)
    capture = tmp_path_factory.mktemp("out") / "stderr.txt"
    # The console writes to whatever sys.stderr is (a session fixture cannot use capsys).
    with open(capture, "w") as f, contextlib.redirect_stderr(f):
        rc = build_cli.build_command([*REAL, "--target", "host"], root=root)
    return root, rc, capture.read_text()


def test_real_sdists_build_and_the_run_ends_with_a_table(real_build):
    root, rc, out = real_build
    assert rc == 0, out
    assert "build summary" in out
    assert "4 built" in out
    for name in REAL:
        for stage in ("fetch", "unpack", "build", "repair", "verify", "store"):
            assert any(line.startswith(f"{name} {stage}") for line in out.splitlines()), (name, stage, out)


@pytest.mark.parametrize("name", REAL)
def test_each_wheel_is_manylinux_recorded_and_imports_in_a_bare_venv(real_build, name, tmp_path):
    root, rc, out = real_build
    assert rc == 0, out
    records = [r for r in store.load_records(root / "dist") if r["recipe"] == name]
    assert len(records) == 1, records
    rec = records[0]
    wheel = root / "dist" / rec["filename"]
    _, _, build_tag, tags = parse_wheel_filename(wheel.name)
    assert build_tag == ()
    assert all(t.platform.startswith("manylinux") for t in tags), tags  # never a bare linux_* wheel
    assert rec["sha256"] == sha256_file(wheel) and rec["size"] == wheel.stat().st_size
    assert rec["status"] == "ok" and rec["python"] == "3.11" and rec["policy"] == "best"
    assert rec["achieved_policy"].startswith("manylinux_2_")
    assert "is consistent with the following platform tag" in " ".join(rec["auditwheel"].split())
    assert rec["metadata"].startswith("Metadata-Version:") and f"Name: {name}" in rec["metadata"]
    assert rec["source"]["kind"] == "sdist" and rec["source"]["url"].endswith(".tar.gz")
    assert (root / rec["log"]).is_file()
    for key in ("build_key", "tags", "requires_python", "metadata_sha256", "host", "duration", "stages", "built_at"):
        assert key in rec
    # Install like a user: a bare venv, the real pip, dependencies from PyPI.
    py = bare_venv(tmp_path / "venv")
    proc = run([py, "-m", "pip", "install", "-q", "--prefer-binary", wheel])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run([py, "-c", IMPORTS[name]], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_unchanged_recipe_is_skipped_and_dist_is_untouched(real_build, capsys):
    root, rc, _ = real_build
    before = tree_snapshot(root / "dist")
    logs_before = sorted((root / "logs").rglob("*"))
    t = time.monotonic()
    rc = build_cli.build_command(["multidict", "--target", "host"], root=root)
    err = capsys.readouterr().err
    assert rc == 0
    assert "already built (same build key)" in err
    assert tree_snapshot(root / "dist") == before
    assert sorted((root / "logs").rglob("*")) == logs_before  # a skip is not an attempt
    assert time.monotonic() - t < 60  # sanity only; the speed target is checked by benchmarks/


def test_attempt_records_are_kept(real_build):
    root, _, _ = real_build
    for name in REAL:
        attempts = sorted((root / "logs" / name).glob("*.json"))
        assert attempts, name
        data = json.loads(attempts[-1].read_text())
        assert data["status"] == "built" and data["recipe"] == name
        assert (root / data["log"]).read_text().count("$ ") > 3
