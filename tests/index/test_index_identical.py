"""Nothing changes for users: the index generated from a fixed set of dist/ records is
byte for byte what the original code (commit 1e6efda, before index/ was split) wrote.

``fixtures/`` holds the dist/ records (several projects, rebuilds with a build tag, a
local version, a yank from the config by NAME==VERSION and by file name with and
without a reason, one from a recipe by version and one by file name, one from the
record itself, a build log with ``copy-logs``), the recipes and the log, and three
factory.toml files: co-hosted, absolute ``files-base-url``, and the GitHub release
base derived from ``[publish]`` (with ``copy-logs = false``). The wheels are
placeholders of the recorded size, made here (the index never opens a wheel).

``expected-MODE.json`` maps every published file (``.wheelfactory/``, the unpublished
state, left out) to its sha256, as the original code wrote it: generated once with
``PYTHONPATH=/work/main`` (the untouched flat layout) by the same steps as ``make``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from wheelfactory.index import build_index, update
from wheelfactory.settings.factory import load_config

FIXTURES = Path(__file__).parent / "fixtures"
MODES = ["cohosted", "absolute", "github"]


def make(tmp_path: Path, mode: str, *, leave_out: tuple[str, ...] = ()) -> Path:
    """A project root holding the fixture's records (minus ``leave_out``), their placeholder
    wheels, recipes, logs and the factory.toml of ``mode``."""
    root = tmp_path / "project"
    for sub in ("dist", "recipes", "logs"):
        shutil.copytree(FIXTURES / sub, root / sub)
    (root / "factory.toml").write_text((FIXTURES / f"factory-{mode}.toml").read_text())
    for fn in leave_out:
        (root / "dist" / f"{fn}.json").unlink()
    for record in (root / "dist").glob("*.whl.json"):
        add_wheel(root / "dist", json.loads(record.read_text()))
    return root


def add_wheel(dist: Path, rec: dict) -> None:
    with open(dist / rec["filename"], "wb") as f:
        f.truncate(rec["size"])  # a sparse placeholder of the recorded size


def manifest(index: Path) -> dict[str, str]:
    return {p.relative_to(index).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(index.rglob("*"))
            if p.is_file() and ".wheelfactory" not in p.relative_to(index).parts}


def assert_identical(index: Path, mode: str) -> None:
    expected = json.loads((FIXTURES / f"expected-{mode}.json").read_text())
    got = manifest(index)
    differ = sorted(rel for rel in expected.keys() & got.keys() if expected[rel] != got[rel])
    assert (sorted(expected.keys() - got.keys()), sorted(got.keys() - expected.keys()), differ) == ([], [], [])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("devices", [{}, {"workers": 2}, {"workers": 1, "raw_io": False, "pack_summaries": False}])
def test_full_generation_is_byte_identical(tmp_path, monkeypatch, mode, devices):
    """With each speed device on and off (workers=2: in worker processes)."""
    monkeypatch.setattr(update, "PARALLEL_MIN_RECORDS", 1)
    root = make(tmp_path, mode)
    report = build_index(load_config(root), quiet=True, **devices)
    assert report.wheels == 14 and report.projects == 6
    assert_identical(root / "index", mode)


@pytest.mark.parametrize("mode", MODES)
def test_incremental_generation_is_byte_identical(tmp_path, mode):
    """An index made without some records, then updated as they arrive, ends up the same."""
    late = ("markupsafe-2.1.5-1-cp312-cp312-manylinux_2_39_riscv64.whl",
            "numpy-2.2.0-cp313-cp313-manylinux_2_39_riscv64.whl", "tiny_pure-0.1-py3-none-any.whl")
    root = make(tmp_path, mode, leave_out=late)
    config = load_config(root)
    build_index(config, quiet=True)
    for fn in late:
        shutil.copy(FIXTURES / "dist" / f"{fn}.json", root / "dist")
        add_wheel(root / "dist", json.loads((FIXTURES / "dist" / f"{fn}.json").read_text()))
        report = build_index(config, quiet=True)
        assert report.added == [fn] and not report.full
    assert_identical(root / "index", mode)
