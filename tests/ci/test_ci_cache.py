"""The build jobs' cache survives the checkout's clean: two real builds of a small C recipe, with
`git clean -ffdx` between them (what actions/checkout does at the start of every job on a
self-hosted runner), configured exactly as the generated build job configures them (its `env:`).
The second build fetches nothing and compiles from the compiler cache."""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
from pathlib import Path

import pytest

from conftest import write_project
from support.build import LocalServer, _QuietHandler, make_sdist, tiny_files, tiny_recipe
from wheelfactory.ci import workflow
from wheelfactory.cli import build as build_cli
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.recipe import load_all

pytestmark = pytest.mark.slow


@pytest.fixture
def counting_server(tmp_path):
    """A 127.0.0.1 server with the tiny C sdist that records every path it is asked for."""
    asked: list[str] = []

    class Counting(_QuietHandler):
        def do_GET(self):
            asked.append(self.path)
            super().do_GET()

    folder = tmp_path / "served"
    server = LocalServer(folder)
    server.httpd.RequestHandlerClass = functools.partial(Counting, directory=str(folder))
    path, sha = make_sdist(folder / "tiny", tiny_files())
    server.sdists, server.requests = {"tiny": (f"{server.url}/tiny/{path.name}", sha)}, asked
    yield server
    server.close()


def git(top: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=top, env=env, check=True, capture_output=True, text=True).stdout


def build_as_the_job_does(root: Path, job_env: dict[str, str], monkeypatch, out: Path) -> tuple[int, dict]:
    """`nox -s build-wf-tiny` in the job's environment; (exit code, the attempt record)."""
    with monkeypatch.context() as m:
        for key, value in job_env.items():
            m.setenv(key, value)
        with open(out, "w") as f, contextlib.redirect_stderr(f):
            rc = build_cli.build_command(["wf-tiny", "--target", "host"], root=root)
    [record] = [json.loads(p.read_text()) for p in (root / "logs" / "wf-tiny").rglob("*.json")]
    return rc, record


def test_the_cache_survives_git_clean_between_two_jobs(tmp_path, counting_server, monkeypatch):
    sdist_server = counting_server
    top = tmp_path / "checkout"
    runner_cache = tmp_path / "runner-home" / ".cache" / "wheelfactory"
    root = write_project(top, config=f'[ci]\ncache-dir = "{runner_cache}"\n')
    tiny_recipe(root, sdist_server)
    git(top, "init", "-q", "-b", "main")
    git(top, "add", ".")
    git(top, "commit", "-qm", "recipes")

    config = load_config(root)
    job = workflow.workflow_model(config, load_all(config.paths.recipes))["jobs"]["build-wf-tiny"]
    assert job["env"] == {"WHEELFACTORY_CACHE": str(runner_cache)}

    rc, first = build_as_the_job_does(root, job["env"], monkeypatch, tmp_path / "first.txt")
    assert rc == 0, (tmp_path / "first.txt").read_text()
    served = len(sdist_server.requests)
    assert served >= 1  # the cold build downloaded the sdist
    [cold] = first["compiler_cache"].values()  # one Python
    assert cold["misses"] >= 1 and cold["hits"] == 0, cold
    assert not (root / "cache").exists() and (runner_cache / "ccache").is_dir()

    git(top, "clean", "-ffdx")  # actions/checkout, next job
    assert not (root / "dist").exists() and not (root / "logs").exists()

    rc, second = build_as_the_job_does(root, job["env"], monkeypatch, tmp_path / "second.txt")
    assert rc == 0, (tmp_path / "second.txt").read_text()
    assert second["status"] == "built"  # a real second build (dist/ was cleaned), not a skip
    log = (root / second["log"]).read_text()
    assert "using cached" in log and "downloading" not in log
    assert len(sdist_server.requests) == served  # nothing fetched
    [warm] = second["compiler_cache"].values()
    assert warm["misses"] == 0 and warm["hits"] == cold["misses"], warm  # every compile from the cache
