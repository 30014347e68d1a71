"""The corpus of bad recipes (tests/bad_recipes/CASE/): each must produce its message.

A case folder holds ``recipe.toml`` (``@URL@``/``@SHA256@`` are replaced by a
tiny sdist served from 127.0.0.1), optional ``patches/``, and ``case.toml``:

    stage   "load" (rejected while reading the recipe) or "build" (fails in a stage)
    expect  substrings the one error message must contain
    package recipe folder name (default "wf-tiny"); sdist: served variant (default "tiny")

Every case goes through the real command (`nox -s build-NAME` calls the same
function): exit status 1, the message, dist/ byte-for-byte unchanged, and for
build failures a kept log and attempt record.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from support.build import make_project, sdist_server, shared_cache, tiny_recipe, tree_snapshot  # noqa: F401
from wheelfactory import cli
from wheelfactory.build import pipeline
from wheelfactory.cli import build as build_cli

CORPUS = Path(__file__).parent / "bad_recipes"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "case.toml").is_file())


@pytest.fixture(scope="session")
def good_dist(tmp_path_factory, shared_cache, sdist_server):  # noqa: F811
    """A dist/ with one real stored wheel + record, to prove failures leave it as it was."""
    root = make_project(tmp_path_factory.mktemp("good") / "p", shared_cache)
    tiny_recipe(root, sdist_server)
    assert build_cli.build_command(["wf-tiny"], root=root) == 0
    return root / "dist"


def _render(text: str, server, variant: str) -> str:
    url, sha = server.sdists[variant]
    return text.replace("@URL@", url).replace("@SHA256@", sha)


def test_the_corpus_is_not_empty():
    assert len(CASES) >= 20
    for case in CASES:
        spec = tomllib.loads((CORPUS / case / "case.toml").read_text())
        assert spec["stage"] in ("load", "build") and spec["expect"], case


@pytest.mark.parametrize("case", CASES)
def test_bad_recipe_gives_its_message_and_loses_nothing(case, tmp_path, shared_cache, sdist_server, good_dist, capsys):
    spec = tomllib.loads((CORPUS / case / "case.toml").read_text())
    package, variant = spec.get("package", "wf-tiny"), spec.get("sdist", "tiny")
    root = make_project(tmp_path / "p", shared_cache)
    recipe = root / "recipes" / package / "recipe.toml"
    recipe.parent.mkdir(parents=True)
    recipe.write_text(_render((CORPUS / case / "recipe.toml").read_text(), sdist_server, variant))
    if (CORPUS / case / "patches").exists():
        shutil.copytree(CORPUS / case / "patches", root / "patches" / package, symlinks=True)
    shutil.copytree(good_dist, root / "dist")
    before = tree_snapshot(root / "dist")
    capsys.readouterr()

    with pytest.raises(SystemExit) as exit_info:
        cli.run(build_cli.build_command, [package, "--target", "host"], root=root)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1, err
    flat = " ".join(err.split())  # rich may wrap long lines
    for piece in spec["expect"]:
        piece = " ".join(_render(piece, sdist_server, variant).split())
        assert piece in flat, f"{case}: {piece!r} not in:\n{err}"
    assert tree_snapshot(root / "dist") == before, "dist/ changed"
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
