"""invoke publish to a directory (the default): files and index side by side, files first."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.wheels import store_wheel

from conftest import REPO, write_project
from wheelfactory.index.check import check_index
from wheelfactory.errors import ConfigError
from wheelfactory.settings.factory import load_config
from wheelfactory.publish import PublishError, publish


def project(tmp_path: Path, real_wheels, *keys: str) -> Path:
    root = write_project(tmp_path / "p")
    (root / "logs").mkdir()
    (root / "logs" / "ms.log").write_text("ok\n")
    for key in keys:
        store_wheel(root / "dist", real_wheels[key], log="logs/ms.log" if key.startswith("markupsafe") else None)
    return root


def tree(d: Path) -> set[str]:
    return {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()}


def test_default_target_is_a_servable_directory(tmp_path, real_wheels):
    root = project(tmp_path, real_wheels, "jinja2", "markupsafe")
    r = subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "publish"],
                       env={**os.environ, "WHEELFACTORY_ROOT": str(root)}, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = root / "publish"
    j, m = real_wheels["jinja2"].name, real_wheels["markupsafe"].name
    assert tree(out) == {
        ".wheelfactory-publish.json", "index.html", "index-digest.json", "simple/index.html", "simple/index.json",
        "simple/jinja2/index.html", "simple/jinja2/index.json", "simple/markupsafe/index.html",
        "simple/markupsafe/index.json", "project/jinja2/index.html", "project/markupsafe/index.html",
        f"files/{j}", f"files/{j}.metadata", f"files/{m}", f"files/{m}.metadata", f"files/{m}.log",
        f"files/{j}.json", f"files/{m}.json",  # the dist records, for `invoke fetch-dist`
    }
    assert (out / "files" / m).read_bytes() == real_wheels["markupsafe"].read_bytes()
    assert check_index(str(out)).problems == []
    again = publish(load_config(root))
    assert again.uploaded == [] and again.unchanged == 5 and again.pages == "unchanged"


def test_stale_file_replaced_and_removed_files_pruned(tmp_path, real_wheels, capsys):
    root = project(tmp_path, real_wheels, "jinja2", "markupsafe")
    publish(load_config(root))
    out = root / "publish"
    m = real_wheels["markupsafe"].name
    # dist/ gets a different build under the same name; jinja2 leaves.
    for suffix in ("", ".json"):
        (root / "dist" / f"{m}{suffix}").unlink()
        (root / "dist" / f"{real_wheels['jinja2'].name}{suffix}").unlink()
    store_wheel(root / "dist", real_wheels["markupsafe_stale"], log="logs/ms.log")
    capsys.readouterr()
    report = publish(load_config(root))
    assert report.replaced == [m]
    assert "stale copy" in capsys.readouterr().err
    assert (out / "files" / m).read_bytes() == real_wheels["markupsafe_stale"].read_bytes()
    assert sorted(report.pruned) == sorted([real_wheels["jinja2"].name, f"{real_wheels['jinja2'].name}.metadata"])
    assert not (out / "simple" / "jinja2").exists() and not (out / "project" / "jinja2").exists()
    assert check_index(str(out)).problems == []


def test_wheel_changed_after_build_is_refused(tmp_path, real_wheels):
    root = project(tmp_path, real_wheels, "jinja2")
    publish(load_config(root))
    out = root / "publish"
    published = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    store_wheel(root / "dist", real_wheels["markupsafe"])
    # Same size, other bytes: the record's size check passes, its sha256 does not.
    w = root / "dist" / real_wheels["markupsafe"].name
    data = bytearray(w.read_bytes())
    data[100] ^= 0xFF
    w.unlink()  # (a new inode: the index's hard link keeps the old bytes)
    w.write_bytes(bytes(data))
    with pytest.raises(PublishError, match="does not match its record"):
        publish(load_config(root))
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == published
    assert check_index(str(out)).problems == []


def test_foreign_directory_is_refused(tmp_path, real_wheels):
    root = project(tmp_path, real_wheels, "jinja2")
    (root / "publish").mkdir()
    (root / "publish" / "keep.txt").write_text("mine")
    with pytest.raises(PublishError, match="was not written by `invoke publish`"):
        publish(load_config(root))
    assert tree(root / "publish") == {"keep.txt"}


def test_unknown_target_is_one_message(tmp_path, real_wheels):
    root = write_project(tmp_path / "p", config='[publish]\ntarget = "s3"\n')
    with pytest.raises(ConfigError, match="publish.target 's3' is not one of: directory, github"):
        publish(load_config(root))


def test_dry_run_changes_nothing(tmp_path, real_wheels):
    root = project(tmp_path, real_wheels, "jinja2", "markupsafe")
    report = publish(load_config(root), dry_run=True)
    assert len(report.uploaded) == 5 and report.pages == "would be written"
    assert not (root / "publish").exists() and not (root / "index").exists()
