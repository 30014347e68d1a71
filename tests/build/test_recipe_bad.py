"""The corpus of bad recipes (tests/bad_recipes/CASE/): each must produce its message.

A case folder holds ``recipe.toml`` (``@URL@``/``@SHA256@`` are replaced by a
tiny sdist served from 127.0.0.1), optional ``patches/``, and ``case.toml``:

    stage   "load" (rejected while reading the recipe) or "build" (fails in a stage)
    expect  substrings the one error message must contain (the file and key, or the package)
    fix     the substring that is the fix (required: every message says what to change)
    package recipe folder name (default "wf-tiny"); sdist: served variant (default "tiny")

Every case goes through the real command (`nox -s build-NAME` calls the same
function): exit status 1, exactly one error line and no traceback, the message
and its fix, dist/ and index/ byte-for-byte unchanged, and for build failures a
kept log and an attempt record with status "failed".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from support.build import make_project, tiny_recipe, tree_snapshot
from support.cli import BUILD, env

from wheelfactory import cli
from wheelfactory.build import pipeline
from wheelfactory.cli import build as build_cli
from wheelfactory.index import build_index
from wheelfactory.settings.factory import load_config

CORPUS = Path(__file__).parent / "bad_recipes"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "case.toml").is_file())


@pytest.fixture(scope="session")
def good_project(tmp_path_factory, shared_cache, sdist_server):
    """A project whose dist/ holds one real stored wheel + record, indexed: failures must leave both as they were."""
    root = make_project(tmp_path_factory.mktemp("good") / "p", shared_cache)
    tiny_recipe(root, sdist_server)
    assert build_cli.build_command(["wf-tiny"], root=root) == 0
    build_index(load_config(root), quiet=True)
    return root


@pytest.fixture(scope="session")
def good_dist(good_project):
    return good_project / "dist"


def _render(text: str, server, variant: str) -> str:
    url, sha = server.sdists[variant]
    return text.replace("@URL@", url).replace("@SHA256@", sha)


def test_the_corpus_is_not_empty():
    assert len(CASES) >= 20
    for case in CASES:
        spec = tomllib.loads((CORPUS / case / "case.toml").read_text())
        assert spec["stage"] in ("load", "build") and spec["expect"] and spec.get("fix"), case


@pytest.mark.parametrize("case", CASES)
def test_bad_recipe_gives_its_message_and_loses_nothing(case, tmp_path, shared_cache, sdist_server, good_project,
                                                        capsys):
    spec = tomllib.loads((CORPUS / case / "case.toml").read_text())
    package, variant = spec.get("package", "wf-tiny"), spec.get("sdist", "tiny")
    root = make_project(tmp_path / "p", shared_cache)
    recipe = root / "recipes" / package / "recipe.toml"
    recipe.parent.mkdir(parents=True)
    recipe.write_text(_render((CORPUS / case / "recipe.toml").read_text(), sdist_server, variant))
    if (CORPUS / case / "patches").exists():
        shutil.copytree(CORPUS / case / "patches", root / "patches" / package, symlinks=True)
    shutil.copytree(good_project / "dist", root / "dist")
    shutil.copytree(good_project / "index", root / "index")
    before = {d: tree_snapshot(root / d) for d in ("dist", "index")}
    capsys.readouterr()

    with pytest.raises(SystemExit) as exit_info:
        cli.run(build_cli.build_command, [package, "--target", "host"], root=root)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err
    flat = " ".join(err.split())  # rich may wrap long lines
    for piece in [*spec["expect"], spec.get("fix", "(case.toml names no fix)")]:
        piece = " ".join(_render(piece, sdist_server, variant).split())
        assert piece in flat, f"{case}: {piece!r} not in:\n{err}"
    assert {d: tree_snapshot(root / d) for d in ("dist", "index")} == before, "dist/ or index/ changed"
    assert not (tmp_path.parent / "escaped.txt").exists() and not (root / "escaped.txt").exists()

    logs = sorted((root / "logs").rglob("*.log"))
    if spec["stage"] == "build":
        assert len(logs) == 1, logs
        text = logs[0].read_text()
        assert "# FAILED:" in text
        attempt = json.loads(logs[0].with_suffix(".json").read_text())
        assert attempt["status"] == "failed" and attempt["recipe"] == package
        assert package in attempt["message"]
        assert f"log: logs/{package}/" in flat
    else:
        assert logs == []  # rejected before anything ran


def test_an_interrupted_build_leaves_dist_as_it_was(tmp_path, shared_cache, sdist_server, good_dist, monkeypatch):
    """Ctrl-C in the middle of a build (here: during verify) changes nothing in dist/."""
    root = make_project(tmp_path / "p", shared_cache)
    tiny_recipe(root, sdist_server, extra='[build]\nenv = { WF_TINY_FLAVOR = "interrupted" }\n')
    shutil.copytree(good_dist, root / "dist")
    before = tree_snapshot(root / "dist")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "verify_wheel", interrupt)
    with pytest.raises(SystemExit) as exit_info:
        cli.run(build_cli.build_command, ["wf-tiny"], root=root)
    assert exit_info.value.code == 130
    assert tree_snapshot(root / "dist") == before
    (attempt,) = (root / "logs" / "wf-tiny").glob("*.json")
    assert json.loads(attempt.read_text())["status"] == "interrupted"


def test_ctrl_c_during_a_build_stops_it_and_leaves_dist_and_index_as_they_were(tmp_path, shared_cache, sdist_server,
                                                                              good_project):
    """SIGINT to the build's process group (what Ctrl-C in a terminal sends) while the backend runs:
    exit 130, one line saying so, no traceback, dist/ and index/ byte-identical, the log kept and
    the attempt record "interrupted"."""
    root = make_project(tmp_path / "p", shared_cache)
    mark = tmp_path / "building"
    tiny_recipe(root, sdist_server, variant="slow", extra=f'[build]\nenv = {{ WF_TINY_MARK = "{mark}" }}\n')
    shutil.copytree(good_project / "dist", root / "dist")
    shutil.copytree(good_project / "index", root / "index")
    before = {d: tree_snapshot(root / d) for d in ("dist", "index")}
    proc = subprocess.Popen([sys.executable, "-c", BUILD, str(root), "wf-tiny", "--target", "host"], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not mark.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == ["error: interrupted; dist/ and index/ are left as they were"], err
    assert {d: tree_snapshot(root / d) for d in ("dist", "index")} == before
    (log,) = (root / "logs" / "wf-tiny").glob("*.log")
    assert json.loads(log.with_suffix(".json").read_text())["status"] == "interrupted"
