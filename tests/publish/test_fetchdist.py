"""invoke fetch-dist: restore dist/ from what is published, so a CI publish (empty dist/) keeps it.

GitHub is the fake of tests/fakes/github_releases.py (real wire format, on
127.0.0.1); the Pages remote is a local bare git repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.wheels import store_wheel
from support.github_pages import REPOSITORY, TAG, assert_live_consistent, gh, listed_files, make_project  # noqa: F401

from conftest import REPO, write_project
from wheelfactory.settings.factory import load_config
from wheelfactory.publish.fetch import FetchDistError, fetch_dist
from wheelfactory.publish import publish


def dist_bytes(dist: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(dist.iterdir())} if dist.is_dir() else {}


def start_ci_job(root: Path, real_wheels, *keys: str) -> dict[str, bytes]:
    """A fresh CI publish job: dist/ holds only this run's wheels. Returns what dist/ held before."""
    before = dist_bytes(root / "dist")
    shutil.rmtree(root / "dist")
    shutil.rmtree(root / "index", ignore_errors=True)
    for key in keys:
        store_wheel(root / "dist", real_wheels[key])
    return before


def run_fetch_dist(root: Path, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "WHEELFACTORY_ROOT": str(root), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "fetch-dist"],
                          env=env, capture_output=True, text=True)


def test_github_fetch_restores_published_then_publish_keeps_them(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    """fetch-dist reads the published index and downloads by public URLs: no token, no API request."""
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh)
    store_wheel(root / "dist", real_wheels["jinja2"])
    store_wheel(root / "dist", real_wheels["markupsafe"])
    publish(load_config(root))
    j, m, rb = (real_wheels[k].name for k in ("jinja2", "markupsafe", "markupsafe_rebuilt"))
    assert {f"{j}.json", f"{m}.json"} <= set(gh.assets(REPOSITORY, TAG))

    published = start_ci_job(root, real_wheels, "markupsafe_rebuilt")
    rebuilt_record = (root / "dist" / f"{rb}.json").read_bytes()
    api_before = sum(1 for e in gh.log if e[0] in ("api", "uploads"))
    r = run_fetch_dist(root, env_extra={"GITHUB_TOKEN": ""})
    assert r.returncode == 0, r.stderr
    assert sum(1 for e in gh.log if e[0] in ("api", "uploads")) == api_before
    assert gh.token not in r.stdout + r.stderr
    assert "2 fetched" in r.stderr
    after = dist_bytes(root / "dist")
    # A and the old B come back byte for byte (wheel and record); the rebuilt B is untouched.
    for name in (j, f"{j}.json", m, f"{m}.json"):
        assert after[name] == published[name], name
    assert after[f"{rb}.json"] == rebuilt_record
    assert set(after) == {j, f"{j}.json", m, f"{m}.json", rb, f"{rb}.json"}

    # Again: nothing to fetch.
    again = fetch_dist(load_config(root))
    assert again.fetched == [] and again.present == 2 and again.kept == []

    report = publish(load_config(root))
    assert report.pruned == [] and report.records["pruned"] == 0
    assets = set(gh.assets(REPOSITORY, TAG))
    assert {j, f"{j}.metadata", f"{j}.json", m, rb, f"{rb}.json"} <= assets
    assert listed_files(assert_live_consistent(tmp_path)) == {j, rb}  # (m: superseded by rb, still on the release)


def test_superseded_builds_survive_a_ci_round_trip(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    """Two builds of one version (build tags): the index offers only the newest, but both stay on the
    release. A CI job (fresh dist/ -> fetch-dist -> publish, long after the grace period) must restore
    and keep the superseded one too: fetch-dist reads the index's manifest (index-digest.json), which
    lists every file the index serves, not only what the simple pages offer."""
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh, extra="prune-grace = 0")
    store_wheel(root / "dist", real_wheels["markupsafe"])
    store_wheel(root / "dist", real_wheels["markupsafe_rebuilt"])
    publish(load_config(root))
    m, rb = (real_wheels[k].name for k in ("markupsafe", "markupsafe_rebuilt"))
    assert listed_files(assert_live_consistent(tmp_path)) == {rb}  # the older build is superseded

    published = start_ci_job(root, real_wheels)
    r = run_fetch_dist(root, env_extra={"GITHUB_TOKEN": ""})
    assert r.returncode == 0, r.stderr
    after = dist_bytes(root / "dist")
    assert set(after) == {m, f"{m}.json", rb, f"{rb}.json"}
    assert all(after[n] == published[n] for n in after)

    report = publish(load_config(root))  # prune-grace = 0: anything unlinked would go now
    assert report.pruned == [] and report.records["pruned"] == 0 and report.prune_later == []
    assert {m, f"{m}.metadata", f"{m}.json", rb, f"{rb}.metadata", f"{rb}.json"} <= set(gh.assets(REPOSITORY, TAG))


def test_github_corrupt_published_wheel_changes_nothing(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh)
    store_wheel(root / "dist", real_wheels["jinja2"])
    store_wheel(root / "dist", real_wheels["markupsafe"])
    publish(load_config(root))
    j = real_wheels["jinja2"].name
    with gh.lock:  # the release's copy rots: same size, different bytes
        asset = gh.assets(REPOSITORY, TAG)[j]
        data = bytearray(asset["_data"])
        data[len(data) // 2] ^= 0xFF
        asset["_data"] = bytes(data)

    start_ci_job(root, real_wheels, "markupsafe_rebuilt")
    before = dist_bytes(root / "dist")
    siblings = set(root.iterdir())
    r = run_fetch_dist(root)
    assert r.returncode == 1
    assert j in r.stderr and "does not match its record" in r.stderr and "dist/ was not changed" in r.stderr
    assert gh.token not in r.stdout + r.stderr
    assert dist_bytes(root / "dist") == before  # not even the good old B was stored
    assert set(root.iterdir()) == siblings  # no temporary folder left behind


def test_github_without_a_published_index_is_one_message(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    root = make_project(tmp_path, gh)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    r = run_fetch_dist(root)
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.count("error:") == 1
    assert "index-digest.json answered HTTP 404" in r.stderr and "index.url" in r.stderr


def test_directory_round_trip(tmp_path, real_wheels):
    root = write_project(tmp_path / "p")
    store_wheel(root / "dist", real_wheels["jinja2"])
    store_wheel(root / "dist", real_wheels["markupsafe"])
    publish(load_config(root))
    j, m, rb = (real_wheels[k].name for k in ("jinja2", "markupsafe", "markupsafe_rebuilt"))
    files = root / "publish" / "files"
    assert (files / f"{j}.json").read_bytes() == (root / "dist" / f"{j}.json").read_bytes()

    published = start_ci_job(root, real_wheels, "markupsafe_rebuilt")
    # dist/ holds its own, different record for the old B (e.g. annotated later): it is kept.
    local_m = dict(json.loads(published[f"{m}.json"]), notes=["kept locally"])
    store_wheel(root / "dist", real_wheels["markupsafe"], **{k: v for k, v in local_m.items()
                                                             if k not in ("schema", "filename")})
    local_record = (root / "dist" / f"{m}.json").read_bytes()
    report = fetch_dist(load_config(root))
    assert report.fetched == [j] and report.kept == [m] and report.present == 0
    assert (root / "dist" / j).read_bytes() == published[j]
    assert (root / "dist" / f"{j}.json").read_bytes() == published[f"{j}.json"]
    assert (root / "dist" / f"{m}.json").read_bytes() == local_record

    report = publish(load_config(root))
    assert report.pruned == []
    assert {j, m, rb, f"{j}.json", f"{rb}.json"} <= {p.name for p in files.iterdir()}

    # A published record whose wheel is gone: one message naming it, dist/ unchanged.
    (files / j).unlink()
    start_ci_job(root, real_wheels, "markupsafe_rebuilt")
    before = dist_bytes(root / "dist")
    with pytest.raises(FetchDistError, match=f"{j}: the published record has no wheel"):
        fetch_dist(load_config(root))
    assert dist_bytes(root / "dist") == before


def test_nothing_published_yet(tmp_path, real_wheels):
    root = write_project(tmp_path / "p")
    report = fetch_dist(load_config(root))
    assert report.fetched == [] and report.present == 0
    assert not (root / "dist").exists() or not any((root / "dist").iterdir())
