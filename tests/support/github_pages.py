"""A publish project aimed at the GitHub stand-in (tests/fakes/github_releases.py) and a bare git
repository as the Pages remote, and what that remote would serve."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from fakes.github_releases import FakeGitHub
from support.wheels import store_wheel

from conftest import write_project
from wheelfactory.index.check import check_index

REPOSITORY = "octo/wheels"
TAG = "wheels"


@pytest.fixture
def gh():
    with FakeGitHub(repositories=[REPOSITORY]) as fake:
        yield fake


def make_project(tmp_path: Path, gh: FakeGitHub, *, repository: str = REPOSITORY, extra: str = "") -> Path:
    bare = tmp_path / "pages.git"
    if not bare.exists():
        subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    root = write_project(tmp_path / "p", config=f"""
        [index]
        files-base-url = "{gh.download_base(repository, TAG)}"
        [publish]
        target = "github"
        api-url = "{gh.api_url}"
        repository = "{repository}"
        release-tag = "{TAG}"
        pages-remote = "{bare.as_uri()}"
        timeout = 2
        retries = 3
        {extra}
    """)
    (root / "logs").mkdir(exist_ok=True)
    (root / "logs" / "markupsafe.log").write_text("building markupsafe … ok\n")
    return root


def add(root: Path, real_wheels, *keys: str, **overrides) -> None:  # noqa: F811
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
