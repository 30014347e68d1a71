"""A publish project aimed at the GitHub stand-in (tests/fakes/github_releases.py) and a bare git
repository as the Pages remote, and what that remote would serve."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from fakes.github_releases import FakeGitHub
from wheelfactory._util.github import PACING_ENV
from support.wheels import store_wheel

from conftest import write_project
from wheelfactory.index.check import check_index

REPOSITORY = "octo/wheels"
TAG = "wheels"


# The stand-in's Pages deploys a push this many seconds later (GitHub: up to ~10 minutes); its cache
# keeps GitHub's max-age=600, so a test that reads the live site without bypassing it sees old pages.
DEPLOY_DELAY = 0.5


@pytest.fixture
def gh(monkeypatch):
    # The client's waits for GitHub's limits, shortened for the stand-in (PACING_ENV is for tests only).
    monkeypatch.setenv(PACING_ENV, "write_interval=0.01,secondary_wait=0.2,reset_wait=5")
    with FakeGitHub(repositories=[REPOSITORY], deploy_delay=DEPLOY_DELAY) as fake:
        yield fake


def make_project(tmp_path: Path, gh: FakeGitHub, *, repository: str = REPOSITORY, extra: str = "",
                 pages: bool = True, tag: str = TAG) -> Path:
    """``pages``: the stand-in serves the bare repository's gh-pages branch as REPOSITORY's Pages site.
    ``tag``: publish.release-tag (and the release part of index.files-base-url); "wheels-{project}"
    gives each project its own release."""
    bare = tmp_path / "pages.git"
    if not bare.exists():
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    if pages and REPOSITORY not in gh.pages:
        gh.attach_pages(REPOSITORY, str(bare))
    root = write_project(tmp_path / "p", config=f"""
        [index]
        url = "{gh.pages_url}/simple/"
        files-base-url = "{gh.download_base(repository, tag)}"
        [publish]
        target = "github"
        api-url = "{gh.api_url}"
        repository = "{repository}"
        release-tag = "{tag}"
        pages-remote = "{bare.as_uri()}"
        timeout = 2
        retries = 3
        pages-repository = "{REPOSITORY}"
        {"" if "deploy-timeout" in extra else "deploy-timeout = 30"}
        {extra}
    """)
    (root / "logs").mkdir(exist_ok=True)
    (root / "logs" / "markupsafe.log").write_text("building markupsafe … ok\n")
    return root


def add(root: Path, real_wheels, *keys: str, **overrides) -> None:
    for key in keys:
        log = "logs/markupsafe.log" if key.startswith("markupsafe") else None
        store_wheel(root / "dist", real_wheels[key], log=log, **overrides)


def pages_head(tmp_path: Path) -> str | None:
    r = subprocess.run(["git", "--git-dir", str(tmp_path / "pages.git"), "rev-parse", "-q", "--verify",
                        "refs/heads/gh-pages"], capture_output=True, text=True)
    return r.stdout.strip() or None


def live_pages(tmp_path: Path, name: str = "live") -> Path:
    """A fresh checkout of what GitHub Pages would serve."""
    dest = tmp_path / f"{name}-{time.monotonic_ns()}"
    subprocess.run(["git", "clone", "-q", "-b", "gh-pages", (tmp_path / "pages.git").as_uri(), str(dest)], check=True)
    return dest


def assert_live_consistent(tmp_path: Path) -> Path:
    live = live_pages(tmp_path)
    result = check_index(str(live))
    assert result.problems == [], result.problems
    return live


def listed_files(live: Path) -> set[str]:
    out = set()
    for page in (live / "simple").glob("*/index.json"):
        out |= {f["filename"] for f in json.loads(page.read_bytes())["files"]}
    return out
