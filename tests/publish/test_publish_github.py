"""invoke publish to GitHub: release assets through the REST API, the index pushed to Pages with git.

GitHub is not reachable here, so the API is tests/fakes/github_releases.py (the
real wire format, on 127.0.0.1); the Pages remote is a local bare git
repository. Faults are injected into the fake: HTTP 500/502, connection resets,
stalls past the timeout, and a kill in the middle of an upload.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.github_releases import FakeGitHub
from support.github_pages import (DEPLOY_DELAY, REPOSITORY, TAG, add, assert_live_consistent, gh, listed_files,  # noqa: F401
                                  live_pages, make_project, pages_head)
from support.wheels import record_from_wheel, store_wheel

from conftest import REPO
from wheelfactory.build import store
from wheelfactory.settings.factory import load_config
from wheelfactory.errors import FactoryError
from wheelfactory._util.github import PACING_ENV
from wheelfactory.publish import publish
from wheelfactory.publish.github import releases
from wheelfactory.index.serve import IndexServer

def snapshot_all(root: Path, tmp_path: Path, gh: FakeGitHub) -> tuple:
    files = {}
    for d in (root / "dist", root / "index"):
        for p in sorted(d.rglob("*")) if d.exists() else []:
            if p.is_file():  # a sparse 2 GiB wheel: its size and mtime (reading it takes seconds)
                st = p.stat()
                files[str(p)] = p.read_bytes() if st.st_size < 1 << 28 else (st.st_size, st.st_mtime_ns)
    return files, pages_head(tmp_path), gh.snapshot()


def run_invoke(root: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "WHEELFACTORY_ROOT": str(root), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "publish", *args],
                          env=env, capture_output=True, text=True)


# --- the happy path ---------------------------------------------------------------------


def test_publish_release_assets_then_pages(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh)
    add(root, real_wheels, "jinja2", "markupsafe")
    report = publish(load_config(root))
    j, m = real_wheels["jinja2"].name, real_wheels["markupsafe"].name
    assert sorted(report.uploaded) == sorted([j, f"{j}.metadata", m, f"{m}.metadata", f"{m}.log"])
    assert report.pages.startswith("pushed ") and not report.replaced

    assets = gh.assets(REPOSITORY, TAG)
    assert set(assets) == set(report.uploaded) | {f"{j}.json", f"{m}.json"}  # + the dist records
    assert report.records["uploaded"] == 2
    for name, a in assets.items():
        assert a["state"] == "uploaded"
        if name.endswith(".whl"):
            rec = json.loads((root / "dist" / f"{name}.json").read_text())
            assert a["digest"] == f"sha256:{rec['sha256']}" and a["label"] is None  # the page shows the name
    # Files first, index last: every asset was uploaded before the one push of the pages.
    uploads = [i for i, e in enumerate(gh.log) if e[0] == "uploads" and e[3] == 201]
    assert len(uploads) == 7

    live = assert_live_consistent(tmp_path)
    assert not (live / "files").exists() and not (live / ".wheelfactory").exists()
    assert (live / ".nojekyll").exists() and (live / "project/markupsafe/index.html").exists()
    assert listed_files(live) == {j, m}

    # A real installer: pages from the Pages checkout, files from the release (through its redirect).
    pages = IndexServer(live, quiet=True).start()
    seen = len(gh.log)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
        env.update(UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp_path / "uv-cache"), UV_PYTHON_DOWNLOADS="never")
        subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(tmp_path / "venv")], check=True, env=env)
        r = subprocess.run(["uv", "pip", "install", "--python", str(tmp_path / "venv/bin/python"), "--index-url",
                            pages.url + "simple/", "jinja2"], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
    finally:
        pages.stop()
    downloads = [e for e in gh.log[seen:] if e[0] == "web" and e[2].endswith(".whl") and e[3] == 302]
    assert len(downloads) == 2

    # Nothing changed: nothing uploaded, nothing pushed.
    head = pages_head(tmp_path)
    again = publish(load_config(root))
    assert again.uploaded == [] and again.unchanged == 5 and again.pages == "unchanged"
    assert pages_head(tmp_path) == head

    # A rebuild (build tag 1) is added; then jinja2 leaves the index: its assets go, after the push.
    add(root, real_wheels, "markupsafe_rebuilt")
    rb = real_wheels["markupsafe_rebuilt"].name
    report = publish(load_config(root))
    assert sorted(report.uploaded) == sorted([rb, f"{rb}.metadata", f"{rb}.log"])
    for suffix in ("", ".json"):
        (root / "dist" / f"{j}{suffix}").unlink()
    report = publish(load_config(root))
    # Unlinked, but clients may hold the old index for a while: pruned only after publish.prune-grace.
    assert report.pruned == [] and sorted(report.prune_later) == sorted([j, f"{j}.json", f"{j}.metadata"])
    assert {j, f"{j}.metadata"} <= set(gh.assets(REPOSITORY, TAG))
    live = assert_live_consistent(tmp_path)
    assert listed_files(live) == {rb}  # (m: superseded by rb, still on the release)


def test_pagination_and_servers_without_digests(tmp_path, real_wheels, monkeypatch):
    """Older GitHub Enterprise gives no asset digest: the bytes are hashed; lists span pages."""
    monkeypatch.setenv(PACING_ENV, "write_interval=0.01")
    with FakeGitHub(repositories=[REPOSITORY], max_per_page=2, digests=False, deploy_delay=DEPLOY_DELAY) as gh:
        monkeypatch.setenv("GITHUB_TOKEN", gh.token)
        root = make_project(tmp_path, gh)
        add(root, real_wheels, "jinja2", "markupsafe", "markupsafe_rebuilt")
        first = publish(load_config(root))
        assert len(first.uploaded) == 8
        again = publish(load_config(root))
        assert again.uploaded == [] and again.unchanged == 8
        config = load_config(root)
        client = releases(config.publish, gh.token, command="test")
        listed = client.assets(client.release_by_tag(TAG))
        assert {a["name"] for a in listed} == set(gh.assets(REPOSITORY, TAG))
        assert sum(1 for e in gh.log if e[0] == "api" and "/assets?per_page=2&page=" in e[2]) >= 5
        # Different bytes under a published name are recognized by hashing the bytes (--force replaces).
        m = real_wheels["markupsafe"].name
        for suffix in ("", ".json"):
            (root / "dist" / f"{m}{suffix}").unlink()
        add(root, real_wheels, "markupsafe_stale")
        with pytest.raises(FactoryError, match="already publishes different bytes"):
            publish(load_config(root))
        report = publish(load_config(root), force=True)
        assert report.replaced == [m]
        assert_live_consistent(tmp_path)


# --- faults -------------------------------------------------------------------------------


def test_transient_faults_are_retried(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh)
    add(root, real_wheels, "jinja2", "markupsafe")
    faults = [
        gh.inject("500", host="uploads", count=1),
        gh.inject("reset", host="uploads", count=1),
        gh.inject("502", host="uploads", count=1),  # leaves a "starter" asset behind
        gh.inject("stall", host="api", method="GET", path=r"/assets$", count=1, seconds=3),  # > timeout 2s
        gh.inject("500", host="api", method="POST", path=r"/releases$", count=1),
    ]
    report = publish(load_config(root))
    assert all(f.hits == 1 for f in faults)
    assert len(report.uploaded) == 5
    assets = gh.assets(REPOSITORY, TAG)
    assert len(assets) == 7 and all(a["state"] == "uploaded" for a in assets.values())
    for name, a in assets.items():
        src = root / "dist" / name if name.endswith((".whl", ".whl.json")) else root / "index/files" / name
        assert a["_data"] == src.read_bytes()
    assert len([r for r in gh.repositories[REPOSITORY]["releases"].values()]) == 1
    assert_live_consistent(tmp_path)


def test_persistent_failure_leaves_live_index_and_rerun_completes(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh)
    add(root, real_wheels, "jinja2")
    publish(load_config(root))
    head = pages_head(tmp_path)

    add(root, real_wheels, "markupsafe")
    fault = gh.inject("500", host="uploads", count=1000)
    with pytest.raises(FactoryError, match=r"answered 500 .*re-run `invoke publish`, it resumes"):
        publish(load_config(root))
    assert fault.hits >= 2  # retried before giving up
    assert pages_head(tmp_path) == head  # the live index was not touched
    assert listed_files(assert_live_consistent(tmp_path)) == {real_wheels["jinja2"].name}

    fault.count = 0  # the outage ends
    report = publish(load_config(root))
    assert report.uploaded and report.pages.startswith("pushed")
    assert listed_files(assert_live_consistent(tmp_path)) == {real_wheels["jinja2"].name, real_wheels["markupsafe"].name}


def test_kill_in_the_middle_of_an_upload(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh)
    add(root, real_wheels, "jinja2")
    publish(load_config(root))
    head = pages_head(tmp_path)

    add(root, real_wheels, "markupsafe", "markupsafe_rebuilt")
    # The second upload hangs (the first went through); the publish process is killed while it waits.
    hang = gh.inject("hang", host="uploads", path=r"/assets$", count=1, after=1)
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "-r", str(REPO), "publish"],
                            env={**os.environ, "WHEELFACTORY_ROOT": str(root)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert hang.entered.wait(60), "the publish never reached the upload"
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    hang.release.set()
    assert proc.returncode == -signal.SIGKILL
    assert gh.token not in out + err
    assert len(gh.assets(REPOSITORY, TAG)) == 4  # jinja2's two and its record, and one of the new ones

    assert pages_head(tmp_path) == head
    assert listed_files(assert_live_consistent(tmp_path)) == {real_wheels["jinja2"].name}

    r = run_invoke(root)  # the re-run completes it
    assert r.returncode == 0, r.stderr
    assert gh.token not in r.stdout + r.stderr
    live = assert_live_consistent(tmp_path)
    assert listed_files(live) == {real_wheels[k].name for k in ("jinja2", "markupsafe_rebuilt")}  # (superseded: markupsafe)


def test_reset_in_the_middle_of_an_upload_body(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh)
    add(root, real_wheels, "markupsafe")
    fault = gh.inject("reset-mid-body", host="uploads", path=r"/assets$", count=1)
    report = publish(load_config(root))
    assert fault.hits == 1 and len(report.uploaded) == 3
    assert all(a["state"] == "uploaded" for a in gh.assets(REPOSITORY, TAG).values())
    assert_live_consistent(tmp_path)


# --- stale and duplicate files ------------------------------------------------------------


def test_different_bytes_under_a_published_name_are_refused(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    """A published file name always means the same bytes: one message, nothing changed; --force replaces."""
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh)
    add(root, real_wheels, "jinja2", "markupsafe")
    publish(load_config(root))
    m = real_wheels["markupsafe"].name
    # A rebuild lands in dist/ under the same file name (the seed report's torch).
    for suffix in ("", ".json"):
        (root / "dist" / f"{m}{suffix}").unlink()
    add(root, real_wheels, "markupsafe_stale")
    before = snapshot_all(root, tmp_path, gh)
    r = run_invoke(root, env_extra={"GITHUB_TOKEN": gh.token})
    assert r.returncode == 1 and r.stderr.count("error:") == 1 and "Traceback" not in r.stderr
    assert "already publishes different bytes" in r.stderr and m in r.stderr
    assert "a rebuild gets the next build tag" in r.stderr
    assert snapshot_all(root, tmp_path, gh)[1:] == before[1:]
    r = run_invoke(root, "--force", env_extra={"GITHUB_TOKEN": gh.token})
    assert r.returncode == 0, r.stderr
    assert gh.asset_bytes(REPOSITORY, TAG, m) == real_wheels["markupsafe_stale"].read_bytes()
    assert_live_consistent(tmp_path)


def _pip_install(tmp_path: Path, index: str, name: str) -> str:
    """Install ``name`` with real pip from ``index`` into a new venv; the wheel file pip chose."""
    venv = tmp_path / f"venv-{len(list(tmp_path.glob('venv-*')))}"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    r = subprocess.run([sys.executable, "-m", "pip", "--isolated", "--python", str(venv / "bin/python"), "install",
                        "--no-cache-dir", "--no-deps", "--index-url", index, name, "-v"],
                       capture_output=True, text=True, env={**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    return re.search(r"/releases/download/[^/]+/([^/\s]+\.whl)", r.stdout).group(1)


def test_replace_and_prune_while_a_client_holds_the_previous_index(tmp_path, real_wheels, monkeypatch):
    """GitHub Pages deploys late and is cached (max-age): publish waits for its own index behind the
    cache, and prunes a replaced file only after publish.prune-grace, counted across publishes; a client
    served the previous index from the cache meanwhile still installs (real pip)."""
    monkeypatch.setenv(PACING_ENV, "write_interval=0.01")
    max_age, grace = 6, 9  # seconds: the stand-in's cache, and a grace period covering deploy + cache
    with FakeGitHub(repositories=[REPOSITORY], deploy_delay=DEPLOY_DELAY, max_age=max_age) as gh:
        monkeypatch.setenv("GITHUB_TOKEN", gh.token)
        root = make_project(tmp_path, gh, extra=f"prune-grace = {grace}")
        index = f"{gh.pages_url}/simple/"
        add(root, real_wheels, "markupsafe")
        old, new = real_wheels["markupsafe"].name, real_wheels["markupsafe_rebuilt"].name
        publish(load_config(root))
        assert _pip_install(tmp_path, index, "markupsafe") == old  # the page is now in the cache

        # The rebuild replaces the first build: dist/ holds only the new one.
        add(root, real_wheels, "markupsafe_rebuilt")
        for suffix in ("", ".json"):
            (root / "dist" / f"{old}{suffix}").unlink()
        report = publish(load_config(root))
        pushed_at = time.monotonic()
        assert report.uploaded and new in report.uploaded and report.pruned == []
        assert sorted(report.prune_later) == sorted([old, f"{old}.json", f"{old}.log", f"{old}.metadata"])
        assert listed_files(live_pages(tmp_path)) == {new}  # the branch and the deployment hold the new index
        # A client within max-age still gets the previous page, and its file is still there.
        assert _pip_install(tmp_path, index, "markupsafe") == old

        again = publish(load_config(root))  # within the grace period: nothing pruned yet
        assert again.pruned == [] and again.pages == "unchanged" and old in again.prune_later
        time.sleep(max(0.0, grace - (time.monotonic() - pushed_at)) + 0.5)
        last = publish(load_config(root))  # the grace counted from the publish that unlinked it
        assert sorted(last.pruned) == sorted([old, f"{old}.log", f"{old}.metadata"]) and last.records["pruned"] == 1
        assert old not in gh.assets(REPOSITORY, TAG)
        assert _pip_install(tmp_path, index, "markupsafe") == new  # the cache has expired by now
        assert_live_consistent(tmp_path)


# --- bad input: one message, nothing changed ----------------------------------------------


@pytest.mark.parametrize("case", ["missing-token", "bad-token", "wrong-repository", "wrong-remote",
                                  "record-without-wheel", "over-2-gib", "pages-off", "pages-from-workflow",
                                  "pages-other-branch", "immutable-repository"])
def test_bad_input_changes_nothing(tmp_path, gh, real_wheels, case):  # noqa: F811
    repository = "octo/no-such-repo" if case == "wrong-repository" else REPOSITORY
    root = make_project(tmp_path, gh, repository=repository)
    add(root, real_wheels, "jinja2")
    env = {"GITHUB_TOKEN": gh.token}
    expected = {
        "missing-token": "publish.target is 'github' but $GITHUB_TOKEN is not set",
        "bad-token": "GitHub rejected the token in $GITHUB_TOKEN (401 Bad credentials)",
        "wrong-repository": "repository 'octo/no-such-repo' not found at",
        "wrong-remote": "the Pages remote (publish.pages-remote)",
        "record-without-wheel": "1 dist record(s) without their wheel",
        "over-2-gib": "over GitHub's limit of 2147483648 bytes (2 GiB) per release asset",
        "pages-off": "GitHub Pages is not enabled on octo/wheels",
        "pages-from-workflow": "deploys from a GitHub Actions workflow, not from the branch publish pushes",
        "pages-other-branch": "serves branch 'main' folder '/docs', not 'gh-pages' '/'",
        "immutable-repository": "has 'Release immutability' on",
    }[case]
    if case == "pages-off":
        gh.pages.clear()
    elif case == "pages-from-workflow":
        gh.pages[REPOSITORY].update(build_type="workflow", source=None)
    elif case == "pages-other-branch":
        gh.pages[REPOSITORY]["source"] = {"branch": "main", "path": "/docs"}
    elif case == "immutable-repository":
        gh.immutable = True
    if case == "missing-token":
        env = {"GITHUB_TOKEN": ""}
    elif case == "bad-token":
        env = {"GITHUB_TOKEN": "ghp_wrongTokenWrongTokenWrongToken00"}
    elif case == "wrong-remote":
        text = (root / "factory.toml").read_text().replace((tmp_path / "pages.git").as_uri(),
                                                          (tmp_path / "nowhere.git").as_uri())
        (root / "factory.toml").write_text(text)
    elif case == "record-without-wheel":
        add(root, real_wheels, "markupsafe")
        (root / "dist" / real_wheels["markupsafe"].name).unlink()
    elif case == "over-2-gib":
        os.truncate(root / "dist" / real_wheels["jinja2"].name, 2 * 1024**3 + 1)  # sparse: no disk used
    publish_env = {**os.environ, "WHEELFACTORY_ROOT": str(root), **env}
    if case not in ("record-without-wheel", "over-2-gib"):
        # Start from an index that exists, so "unchanged" covers it too.
        subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "index"], env=publish_env,
                       check=True, capture_output=True)
    before = snapshot_all(root, tmp_path, gh)
    r = run_invoke(root, env_extra=env)
    assert r.returncode == 1
    assert expected in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.count("error:") == 1
    assert gh.token not in r.stdout + r.stderr and "ghp_wrongToken" not in r.stdout + r.stderr
    assert snapshot_all(root, tmp_path, gh) == before
    assert not [e for e in gh.log if e[1] in ("POST", "DELETE")]


def _local_version_wheel(wheel: Path, out: Path, version: str) -> Path:
    """``wheel`` repacked as ``version`` (a local version label: dist-info and METADATA)."""
    subprocess.run([sys.executable, "-m", "wheel", "unpack", "-d", str(out), str(wheel)], check=True,
                   capture_output=True)
    (tree,) = out.iterdir()
    (info,) = tree.glob("*.dist-info")
    old = info.name[: -len(".dist-info")].rpartition("-")[2]
    meta = info / "METADATA"
    meta.write_text(meta.read_text().replace(f"Version: {old}\n", f"Version: {version}\n", 1))
    info.rename(info.with_name(info.name.replace(old, version)))
    subprocess.run([sys.executable, "-m", "wheel", "pack", "-d", str(out), str(tree)], check=True,
                   capture_output=True)
    (packed,) = out.glob("*.whl")
    return packed


def test_local_version_label_is_published_as_github_keeps_it(tmp_path, gh, real_wheels, monkeypatch):  # noqa: F811
    """GitHub keeps '+' in asset names; the index links it as %2B (a local-version wheel, …+cu121…)."""
    monkeypatch.setenv("GITHUB_TOKEN", gh.token)
    root = make_project(tmp_path, gh)
    local = _local_version_wheel(real_wheels["markupsafe"], tmp_path / "local", "2.1.5+riscv")
    store.store_wheel(root / "dist", local, record_from_wheel(local, version="2.1.5+riscv"))
    report = publish(load_config(root))
    assert local.name in report.uploaded and local.name in gh.assets(REPOSITORY, TAG)
    assert "%2B" in gh.assets(REPOSITORY, TAG)[local.name]["browser_download_url"]
    assert listed_files(assert_live_consistent(tmp_path)) == {local.name}


def test_dry_run_changes_nothing(tmp_path, gh, real_wheels):  # noqa: F811
    root = make_project(tmp_path, gh)
    add(root, real_wheels, "jinja2")
    subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "index"], check=True, capture_output=True,
                   env={**os.environ, "WHEELFACTORY_ROOT": str(root)})
    before = snapshot_all(root, tmp_path, gh)
    r = run_invoke(root, "--dry-run", "--json", env_extra={"GITHUB_TOKEN": gh.token})
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert sorted(plan["uploaded"]) == sorted([real_wheels["jinja2"].name, f"{real_wheels['jinja2'].name}.metadata"])
    assert plan["pages"] == "would be pushed"
    assert snapshot_all(root, tmp_path, gh) == before
    assert not [e for e in gh.log if e[1] in ("POST", "DELETE")]
