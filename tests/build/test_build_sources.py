"""Real builds of tiny generated projects: url and git sources, build tags (with the
real pip and uv), and the per-recipe lock. Each build is a genuine setuptools
C extension compiled, repaired by auditwheel and import-tested.
"""

from __future__ import annotations

import json
import shutil
import textwrap
import threading

import pytest
from packaging.utils import parse_wheel_filename

from support.build import bare_venv, make_git_repo, make_project, run, tiny_files, tiny_recipe, write_recipe
from wheelfactory._util.fs import sha256_file
from wheelfactory.build import pipeline
from wheelfactory.build import store
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.recipe import load_recipe
from wheelfactory.runners import NativeRunner

pytestmark = pytest.mark.slow


def _build(root, name="wf-tiny", **kw):
    config = load_config(root)
    return pipeline.build_recipe(config, load_recipe(config.paths.recipes, name), NativeRunner(), **kw)


def test_url_source_builds_and_records_the_url(tmp_path, shared_cache, sdist_server):
    root = make_project(tmp_path / "p", shared_cache)
    tiny_recipe(root, sdist_server)
    res = _build(root)
    assert res.status == "built", res.message
    (wheel,) = res.wheels
    rec = store.load_records(root / "dist")[0]
    assert rec["filename"] == wheel.name
    url, sha = sdist_server.sdists["tiny"]
    assert rec["source"] == {"kind": "url", "url": url, "sha256": sha, "git": None, "rev": None,
                             "commit": None, "subdirectory": None}
    assert not (root / "build" / "wf-tiny").exists()  # scratch removed after success
    tools = rec["host"]["tools"]  # the versions that shaped the wheel
    assert {"build", "auditwheel", "wheel", "pip"} <= set(tools) and tools["auditwheel"][0].isdigit()


def test_git_source_with_subdirectory_records_the_resolved_commit(tmp_path, shared_cache):
    files = {f"python/{k}": v for k, v in tiny_files().items()}
    files["README.md"] = "the Python project lives in python/\n"
    bare, commit = make_git_repo(tmp_path / "git", files, tag="v1.0")
    root = make_project(tmp_path / "p", shared_cache)
    write_recipe(root, "wf-tiny", f'''\
        [package]
        name = "wf-tiny"
        version = "1.0"

        [source]
        git = "{bare}"
        rev = "v1.0"
        subdirectory = "python"

        [test]
        imports = ["wf_tiny._speed"]
        ''')
    res = _build(root)
    assert res.status == "built", res.message
    rec = store.load_records(root / "dist")[0]
    assert rec["source"]["kind"] == "git"
    assert rec["source"]["commit"] == commit  # the annotated tag, peeled to its commit
    assert rec["source"]["rev"] == "v1.0" and rec["source"]["subdirectory"] == "python"
    # Unchanged rev and commit: the same key, so nothing is rebuilt.
    assert _build(root).status == "skipped"


def test_a_changed_build_gets_the_next_build_tag_and_pip_and_uv_pick_it(tmp_path, shared_cache, sdist_server):
    root = make_project(tmp_path / "p", shared_cache)
    tiny_recipe(root, sdist_server, extra='[build]\nenv = { WF_TINY_FLAVOR = "first" }\n')
    first = _build(root)
    assert first.status == "built", first.message
    assert parse_wheel_filename(first.wheels[0].name)[2] == ()

    # Same version, new build flags (like torch with USE_DISTRIBUTED=1): a new key.
    tiny_recipe(root, sdist_server, extra='[build]\nenv = { WF_TINY_FLAVOR = "second" }\n')
    second = _build(root)
    assert second.status == "built", second.message
    (wheel,) = second.wheels
    assert parse_wheel_filename(wheel.name)[2] == (1, "")
    assert wheel.name.startswith("wf_tiny-1.0-1-cp311-cp311-manylinux")
    recs = {r["build_tag"]: r for r in store.load_records(root / "dist")}
    assert set(recs) == {None, 1} and recs[None]["build_key"] != recs[1]["build_key"]

    dist = root / "dist"
    # The real pip, from a folder holding both builds, installs the higher build tag.
    py = bare_venv(tmp_path / "venv-pip")
    proc = run([py, "-m", "pip", "install", "-q", "--no-index", "--find-links", dist, "wf-tiny"])
    assert proc.returncode == 0, proc.stderr
    proc = run([py, "-c", "import wf_tiny; print(wf_tiny.flavor())"], cwd=tmp_path)
    assert proc.stdout.strip() == "second", proc.stdout + proc.stderr
    # And uv does the same.
    uv_venv = tmp_path / "venv-uv"
    assert run(["uv", "venv", "-q", "--python", "python3.11", uv_venv]).returncode == 0
    proc = run(["uv", "pip", "install", "-q", "--python", uv_venv / "bin" / "python", "--no-index",
                "--find-links", dist, "wf-tiny"])
    assert proc.returncode == 0, proc.stderr
    proc = run([uv_venv / "bin" / "python", "-c", "import wf_tiny; print(wf_tiny.flavor())"], cwd=tmp_path)
    assert proc.stdout.strip() == "second", proc.stdout + proc.stderr

    # A third build with the first flags again is a new build of its own: tag 2, never a reused name.
    tiny_recipe(root, sdist_server, extra='[build]\nenv = { WF_TINY_FLAVOR = "first" }\n')
    assert _build(root).status == "skipped"  # that key is stored already
    third = _build(root, force=True)
    assert parse_wheel_filename(third.wheels[0].name)[2] == (2, "")


def test_builds_of_one_recipe_are_serialized_others_go_side_by_side(tmp_path, shared_cache, sdist_server):
    root = make_project(tmp_path / "p", shared_cache)
    tiny_recipe(root, sdist_server)
    tiny_recipe(root, sdist_server, name="wf-other")  # same sdist, another recipe name
    config = load_config(root)
    lock = store.recipe_lock(config.paths.build / ".locks", "wf-tiny")
    lock.acquire()  # as if another process were building wf-tiny right now
    results = {}
    try:
        t_tiny = threading.Thread(target=lambda: results.setdefault("tiny", _build(root)))
        t_other = threading.Thread(target=lambda: results.setdefault("other", _build(root, "wf-other")))
        t_tiny.start()
        t_other.start()
        t_other.join(timeout=300)
        assert results["other"].status == "built", results["other"].message  # not blocked by wf-tiny's lock
        assert t_tiny.is_alive() and "tiny" not in results  # waits for the lock
        assert not [r for r in store.load_records(root / "dist") if r["recipe"] == "wf-tiny"]
    finally:
        lock.release()
    t_tiny.join(timeout=300)
    assert results["tiny"].status == "built", results["tiny"].message

    # Two simultaneous builds of the same recipe: one builds, the other waits and then finds it stored.
    shutil.rmtree(root / "dist")
    both = []
    threads = [threading.Thread(target=lambda: both.append(_build(root))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(r.status for r in both) == ["built", "skipped"], [r.message for r in both]
    assert len([r for r in store.load_records(root / "dist") if r["recipe"] == "wf-tiny"]) == 1


def _url_recipe(root, name: str, url: str, sha: str, rest: str = "") -> None:
    """A recipe of version 1.0 whose source is ``url``; ``rest``: its other tables."""
    write_recipe(root, name, f'[package]\nname = "{name}"\nversion = "1.0"\n[source]\nurl = "{url}"\n'
                             f'sha256 = "{sha}"\n' + textwrap.dedent(rest))


def _serve(server, key: str, files: dict, name: str) -> tuple[str, str]:
    from support.build import make_sdist

    path, sha = make_sdist(server.folder / key, files, name=name)
    return f"{server.url}/{key}/{path.name}", sha


@pytest.mark.parametrize("isolation", [True, False])
def test_dependency_wheels_are_installed_for_the_build_and_enter_the_key(isolation, tmp_path, shared_cache,
                                                                         sdist_server):
    from support.build import TINY_SETUP

    root = make_project(tmp_path / "p", shared_cache)
    dep_url, dep_sha = _serve(sdist_server, f"dep-{isolation}", tiny_files("wf-dep"), "wf-dep")
    _url_recipe(root, "wf-dep", dep_url, dep_sha, '''\
        [test]
        imports = ["wf_dep._speed"]
        ''')
    # setup.py imports the other recipe's package: the build fails unless its wheel is installed.
    needs = tiny_files(setup_py="import wf_dep  # from the wf-dep recipe's wheel\n" + TINY_SETUP)
    url, sha = _serve(sdist_server, f"needsdep-{isolation}", needs, "wf-tiny")
    requires = "" if isolation else 'requires = ["setuptools>=68"]'
    _url_recipe(root, "wf-tiny", url, sha, f'''\
        [build]
        depends = ["wf-dep"]
        isolation = {str(isolation).lower()}
        {requires}
        [test]
        imports = ["wf_tiny._speed"]
        ''')
    dep = _build(root, "wf-dep")
    assert dep.status == "built", dep.message
    without = _build(root, "wf-tiny")
    assert without.status == "failed" and "No module named 'wf_dep'" in without.message, without.message

    first = _build(root, "wf-tiny", dependency_wheels=dep.wheels)
    assert first.status == "built", first.message
    assert _build(root, "wf-tiny", dependency_wheels=dep.wheels).status == "skipped"
    # A new build of the dependency (other bytes) changes the dependent's key: rebuilt, next build tag.
    dep2 = _build(root, "wf-dep", force=True)
    assert dep2.status == "built" and sha256_file(dep2.wheels[0]) != sha256_file(dep.wheels[0])
    second = _build(root, "wf-tiny", dependency_wheels=dep2.wheels)
    assert second.status == "built", second.message
    assert parse_wheel_filename(second.wheels[0].name)[2] == (1, "")


IN_TREE_BACKEND = '''\
# Like aio-libs' pep517_backend: an in-tree backend that imports a package its
# build-system.requires forgot (expandvars), and keeps the config settings it got.
import json
import os

import expandvars  # noqa: F401  (undeclared: the recipe's build.requires must bring it)
from setuptools import build_meta as _orig
from setuptools.build_meta import *  # noqa: F401,F403


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open(os.path.join("wf_tiny", "_settings.json"), "w") as f:
        json.dump(config_settings or {}, f, sort_keys=True)
    return _orig.build_wheel(wheel_directory, None, metadata_directory)
'''


def test_extra_requires_reach_the_isolated_env_and_config_settings_the_backend(tmp_path, shared_cache,
                                                                              sdist_server):
    files = tiny_files()
    files["pyproject.toml"] = files["pyproject.toml"].replace(
        'build-backend = "setuptools.build_meta"', 'build-backend = "backend"\nbackend-path = ["."]'
    ) + '[tool.setuptools.package-data]\nwf_tiny = ["_settings.json"]\n'
    files["backend.py"] = IN_TREE_BACKEND
    url, sha = _serve(sdist_server, "backend", files, "wf-tiny")
    root = make_project(tmp_path / "p", shared_cache)
    check = ("python -c \"import json, importlib.resources as r; "
             "print(json.loads(r.files('wf_tiny').joinpath('_settings.json').read_text()))\"")

    def recipe(requires: str) -> None:
        write_recipe(root, "wf-tiny", f'''\
            [package]
            name = "wf-tiny"
            version = "1.0"
            [source]
            url = "{url}"
            sha256 = "{sha}"
            [build]
            {requires}
            config-settings = {{ setup-args = ["-Dblas=openblas", "-Dlapack=openblas"], build-args = "--profile=release --locked" }}
            [test]
            commands = {json.dumps([check])}
            ''')

    recipe("")
    res = _build(root)
    assert res.status == "failed" and "No module named 'expandvars'" in res.message, res.message
    recipe('requires = ["expandvars"]')
    res = _build(root)
    assert res.status == "built", res.message
    log = res.logs[0].read_text()
    assert "{'build-args': '--profile=release --locked', 'setup-args': ['-Dblas=openblas', '-Dlapack=openblas']}" in log


def test_verify_installs_our_dependency_wheel_not_the_index_build(tmp_path, shared_cache, sdist_server):
    """A recipe's dependency is on PyPI too (newer releases, manylinux wheels): the
    verify venv must get our wheel of it, the one the dependent was built against."""
    root = make_project(tmp_path / "p", shared_cache, recipes=["multidict"])
    dep = _build(root, "multidict")
    assert dep.status == "built", dep.message
    files = tiny_files()
    files["pyproject.toml"] = files["pyproject.toml"].replace(
        'requires-python = ">=3.8"', 'requires-python = ">=3.8"\ndependencies = ["multidict"]')
    url, sha = _serve(sdist_server, "needs-multidict", files, "wf-tiny")
    _url_recipe(root, "wf-tiny", url, sha, '''\
        [runtime]
        depends = ["multidict"]
        [test]
        imports = ["wf_tiny._speed", "multidict"]
        ''')
    res = _build(root, "wf-tiny", dependency_wheels=dep.wheels)
    assert res.status == "built", res.message
    log = res.logs[-1].read_text()
    ours = dep.wheels[0].name
    assert "+ multidict==7.2.1 (from file://" in log and f"/deps/{ours})" in log, log[-3000:]
