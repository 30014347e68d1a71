"""dist/ is the source of truth: the copies in index/ and in a publish directory never share
an inode with dist/, and a damaged or replaced copy is found by its content (not a marker
file), reported, and replaced from dist/ -- by `invoke index` and by `invoke publish`."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.wheels import store_wheel

from conftest import REPO, write_project
from wheelfactory.index import build_index
from wheelfactory.index.check import check_index
from wheelfactory.publish import publish
from wheelfactory.settings.factory import load_config


def digests(d: Path) -> dict[str, str]:
    """Every file's sha256 (the index's own state left out)."""
    return {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file() and ".wheelfactory" not in p.parts}


def project(tmp_path: Path, real_wheels) -> Path:
    root = write_project(tmp_path / "p")
    (root / "logs").mkdir()
    (root / "logs" / "ms.log").write_text("build log\n")
    store_wheel(root / "dist", real_wheels["jinja2"])
    store_wheel(root / "dist", real_wheels["markupsafe"], log="logs/ms.log")
    return root


def invoke(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), *args],
                          env={**os.environ, "WHEELFACTORY_ROOT": str(root)}, capture_output=True, text=True)


def test_copies_never_share_an_inode_with_dist(tmp_path, real_wheels):
    root = project(tmp_path, real_wheels)
    publish(load_config(root))
    in_dist = {os.stat(p).st_ino for p in (root / "dist").iterdir()}
    copies = [p for d in ("index/files", "publish/files") for p in (root / d).iterdir()]
    assert {p.name for p in copies} >= {real_wheels["jinja2"].name, real_wheels["markupsafe"].name}
    for p in copies:
        st = os.stat(p)
        assert st.st_ino not in in_dist and st.st_nlink == 1, p
        assert st.st_mode & 0o777 == 0o644, p  # readable by a web server


def test_publish_replaces_a_copy_overwritten_through_the_published_folder(tmp_path, real_wheels):
    """The issue's first case: `cp other.whl publish/files/W.whl`."""
    root = project(tmp_path, real_wheels)
    assert invoke(root, "publish").returncode == 0
    dist = digests(root / "dist")
    w = root / "publish/files" / real_wheels["markupsafe"].name
    subprocess.run(["cp", str(real_wheels["markupsafe_stale"]), str(w)], check=True)
    assert digests(root / "dist") == dist  # (with hard links, this cp rewrote dist/)
    r = invoke(root, "publish")
    assert r.returncode == 0, r.stderr
    assert f"{w}: damaged or replaced" in " ".join(r.stderr.split()) and "replaced from dist/" in r.stderr
    assert "1 replaced (stale)" in " ".join((r.stdout + r.stderr).split())
    assert w.read_bytes() == real_wheels["markupsafe"].read_bytes()
    assert digests(root / "dist") == dist
    assert check_index(str(root / "publish")).problems == []


def test_publish_replaces_a_damaged_metadata_file_even_after_a_full_index(tmp_path, real_wheels, capsys):
    """The issue's second case: `echo x >> publish/files/W.whl.metadata`, then `invoke index --full`."""
    root = project(tmp_path, real_wheels)
    publish(load_config(root))
    dist = digests(root / "dist")
    m = root / "publish/files" / f"{real_wheels['jinja2'].name}.metadata"
    good = m.read_bytes()
    with open(m, "a") as f:
        f.write("x\n")
    assert check_index(str(root / "publish")).problems  # (what a client would see)
    build_index(load_config(root), full=True)
    capsys.readouterr()
    report = publish(load_config(root))
    assert report.replaced == [m.name]
    assert f"{m}: damaged or replaced" in " ".join(capsys.readouterr().err.split())
    assert m.read_bytes() == good
    assert digests(root / "dist") == dist
    assert check_index(str(root / "publish")).problems == []
    again = publish(load_config(root))
    assert again.replaced == [] and again.uploaded == []


def test_index_restores_damaged_and_missing_copies_from_dist(tmp_path, real_wheels):
    root = project(tmp_path, real_wheels)
    build_index(load_config(root))
    index, dist = root / "index", digests(root / "dist")
    before = digests(index)
    j, ms = real_wheels["jinja2"].name, real_wheels["markupsafe"].name
    shutil.copyfile(real_wheels["markupsafe_stale"], index / "files" / ms)  # in place, like cp
    with open(index / "files" / f"{j}.metadata", "ab") as f:
        f.write(b"x\n")
    (index / "files" / f"{ms}.log").unlink()
    os.utime(index / "files" / f"{ms}.metadata", ns=(1, 1))  # touched only: not a damage
    report = build_index(load_config(root))
    assert sorted(Path(x["path"]).name for x in report.restored) == sorted([ms, f"{j}.metadata", f"{ms}.log"])
    missing = next(x for x in report.restored if x["path"].endswith(".log"))
    assert missing["sha256"] is None
    assert report.replaced == [] and report.added == []
    assert digests(index) == before and digests(root / "dist") == dist
    assert check_index(str(index)).problems == []
    # The next run finds nothing to do (the touched copy's new stat was recorded).
    again = build_index(load_config(root))
    assert again.restored == [] and not again.changed


def test_invoke_index_reports_a_damaged_copy(tmp_path, real_wheels):
    root = project(tmp_path, real_wheels)
    build_index(load_config(root))
    m = root / "index/files" / f"{real_wheels['jinja2'].name}.metadata"
    with open(m, "a") as f:
        f.write("x\n")
    r = invoke(root, "index")
    assert r.returncode == 0, r.stderr
    assert f"{m}: damaged or replaced" in " ".join(r.stderr.split()) and "restored from dist/" in r.stderr
    assert check_index(str(root / "index")).problems == []
