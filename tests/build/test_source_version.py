"""The recipe's package.version is checked against the source's own metadata and the built wheel,
for every source kind, cached or not (issue #16)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from conftest import write_project
from support.build import git, make_git_repo, make_project, tiny_files, tree_snapshot, write_recipe

from wheelfactory import cli
from wheelfactory.build import cibuildwheel, source
from wheelfactory.build.attempt import Attempt, Plan
from wheelfactory.cli import build as build_cli
from wheelfactory.errors import SourceError
from wheelfactory.runners import NativeRunner
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.recipe import load_recipe

MULTIDICT_SHA = "e8af3e6f1bdbc31fd762b094133b478b89988eaebc63cbe82b1d9e3bbd15cede"


def _recipe(root: Path, src: str, version: str, name: str = "wf-tiny"):
    write_recipe(root, name, f'[package]\nname = "{name}"\nversion = "{version}"\n[source]\n{src}\n')
    return load_recipe(root / "recipes", name)


def _failed_git_build(tmp_path: Path, cache: Path, files: dict[str, str], version: str) -> dict:
    """``nox -s build-wf-tiny -- --target host`` of a git source tagged v<version>, which must fail and
    leave dist/ empty; returns the attempt's record."""
    bare, _ = make_git_repo(tmp_path / "g", files, tag=f"v{version}")
    root = make_project(tmp_path / "p", cache)
    write_recipe(root, "wf-tiny", f'[package]\nname = "wf-tiny"\nversion = "{version}"\n'
                                  f'[source]\ngit = "{bare}"\nrev = "v{version}"\n[test]\nimports = ["wf_tiny"]\n')
    with pytest.raises(SystemExit) as exit_info:
        cli.run(build_cli.build_command, ["wf-tiny", "--target", "host"], root=root)
    assert exit_info.value.code == 1
    assert not (root / "dist").exists() or tree_snapshot(root / "dist") == {}
    return json.loads(next((root / "logs").rglob("*.json")).read_text())


def _prepare(recipe, root: Path):
    return source.prepare(recipe, commit=None, cache=root / "cache", patches_root=root / "patches",
                          workdir=root / "build" / recipe.name, log=io.StringIO(),
                          index_url="https://pypi.org/simple")


def test_the_issue_case_a_cached_sdist_and_a_changed_version(tmp_path, capsys):
    # recipes/multidict with only package.version changed to 0.0.99, the 7.2.1 sdist already in
    # cache/sources: the PyPI lookup is skipped, so the source's PKG-INFO is what catches it.
    root = write_project(tmp_path / "p", recipes=["multidict"])
    good = load_recipe(root / "recipes", "multidict")
    source.fetch_archive(good, source.sdist_url(good, "https://pypi.org/simple"), root / "cache", io.StringIO())
    path = root / "recipes" / "multidict" / "recipe.toml"
    path.write_text(path.read_text().replace('version = "7.2.1"', 'version = "0.0.99"'))
    (root / "dist").mkdir()
    (root / "dist" / "keep.txt").write_text("untouched")
    before = tree_snapshot(root / "dist")
    capsys.readouterr()

    with pytest.raises(SystemExit) as exit_info:
        cli.run(build_cli.build_command, ["multidict", "--target", "host"], root=root)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1, err
    flat = " ".join(err.split())
    assert (f'multidict: the source is version 7.2.1 (PKG-INFO Version) while {path} says package.version = "0.0.99"; '
            f'set package.version = "7.2.1" there, or point source.sha256 at the source of 0.0.99') in flat, err
    assert "Traceback" not in err and len(re.findall(r"(?m)^\s*error\b", err, re.IGNORECASE)) <= 1, err
    assert tree_snapshot(root / "dist") == before
    attempt = json.loads(next((root / "logs").rglob("*.json")).read_text())
    assert attempt["status"] == "failed"


def test_a_static_pyproject_version_is_compared_as_pep_440(tmp_path, sdist_server):
    root = write_project(tmp_path / "p")
    url, sha = sdist_server.sdists["tiny"]  # pyproject.toml [project].version = "1.0", no PKG-INFO
    with pytest.raises(SourceError) as e:
        _prepare(_recipe(root, f'url = "{url}"\nsha256 = "{sha}"', "2.0"), root)
    assert str(e.value).startswith("wf-tiny: the source is version 1.0 (pyproject.toml [project].version) while ")
    assert 'point source.url and source.sha256 at the source of 2.0' in str(e.value)
    tree = _prepare(_recipe(root, f'url = "{url}"\nsha256 = "{sha}"', "1.0.0"), root)  # 1.0 == 1.0.0
    assert (tree.project / "setup.py").is_file()


def test_a_git_source_is_checked_by_its_metadata_and_names_source_rev(tmp_path):
    bare, _ = make_git_repo(tmp_path / "g", tiny_files(version="1.0"), tag="v1.1")
    root = write_project(tmp_path / "p")
    with pytest.raises(SourceError, match=r"the source is version 1\.0 \(pyproject.toml \[project\]\.version\) .* "
                                          r"point source\.rev at the source of 1\.1"):
        _prepare(_recipe(root, f'git = "{bare}"\nrev = "v1.1"', "1.1"), root)


def test_declared_version_reads_pkg_info_first_and_skips_dynamic(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndynamic = ["version"]\n')
    assert source.declared_version(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "3.0"\n')
    assert source.declared_version(tmp_path) == ("3.0", "pyproject.toml [project].version")
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: x\nVersion: 3.0.post1\n")
    assert source.declared_version(tmp_path) == ("3.0.post1", "PKG-INFO Version")


@pytest.mark.slow
def test_a_git_source_with_a_computed_version_is_checked_by_the_built_wheel(tmp_path, shared_cache):
    # No PKG-INFO, no static version: the backend computes it, so the wheel's name is checked.
    files = tiny_files(version="0")
    files["pyproject.toml"] = files["pyproject.toml"].replace('version = "0"', 'dynamic = ["version"]')
    files["setup.py"] = files["setup.py"].replace("setup(", 'setup(version="1.2", ')
    attempt = _failed_git_build(tmp_path, shared_cache, files, "1.3")
    assert re.search(r"the source is version 1\.2 \(the built wheel wf_tiny-1\.2-.*\.whl\) while .* "
                     r'package.version = "1.3".*point source.rev at the source of 1.3', attempt["message"]), attempt


def test_cibuildwheel_wheels_are_checked_too(tmp_path, shared_cache):
    # collect_wheels looks at the name before anything else: a wheelhouse file of 3.0.4 for a recipe of 3.0.5.
    root = make_project(tmp_path / "p", shared_cache)
    write_recipe(root, "markupsafe", f'[package]\nname = "markupsafe"\nversion = "3.0.5"\n'
                                     f'[source]\nsha256 = "{"0" * 64}"\n')
    config = load_config(root)
    (tmp_path / "wh").mkdir()
    (tmp_path / "wh" / "markupsafe-3.0.4-cp311-cp311-manylinux_2_39_riscv64.whl").write_bytes(b"")
    with pytest.raises(SourceError, match=r"the source is version 3\.0\.4 \(the built wheel markupsafe-3\.0\.4-"):
        cibuildwheel.collect_wheels(config, load_recipe(config.paths.recipes, "markupsafe"), tmp_path / "wh",
                                    todo=["3.11"], keys={"3.11": "a"}, policy="best", source={}, patches=[],
                                    host={}, stages={}, start=0.0, log=io.StringIO(), log_rel=None, note="")
    assert not config.paths.dist.exists()


# --- Requires-Python: the Pythons a version is built for (as cibuildwheel selects them) ------------

def test_a_version_whose_requires_python_admits_no_target_python_fails_before_the_compile(tmp_path, shared_cache):
    files = tiny_files()
    files["pyproject.toml"] = files["pyproject.toml"].replace('requires-python = ">=3.8"', 'requires-python = ">=3.99"')
    attempt = _failed_git_build(tmp_path, shared_cache, files, "1.0")  # target: this host, Python 3.11
    assert ("wf-tiny 1.0 requires Python >=3.99 (pyproject.toml [project].requires-python), and the Pythons to "
            "build are 3.11: build another version") in attempt["message"], attempt["message"]
    assert "build" not in attempt["stages"], "it stopped before the compile"


def test_pythons_the_source_excludes_are_left_out_and_named(tmp_path):
    root = write_project(tmp_path / "p")
    config = load_config(root)
    recipe = _recipe(root, f'sha256 = "{"0" * 64}"', "2.5.5", name="numpy")
    tree = source.SourceTree(root=tmp_path / "src", project=tmp_path / "src")
    tree.project.mkdir()
    (tree.project / "PKG-INFO").write_text("Metadata-Version: 2.4\nName: numpy\nVersion: 2.5.5\n"
                                           "Requires-Python: >=3.12\n")

    def plan(pythons, kept=()):
        return Plan("best", "sha256:x", {v: v for v in pythons}, [], {}, {v: f"/py{v}" for v in pythons}, list(kept))

    attempt = Attempt(config, recipe, NativeRunner())
    some = plan(["3.11", "3.12", "3.13"])
    attempt.drop_pythons_outside(some, tree)
    assert some.todo == ["3.12", "3.13"]
    why = "numpy 2.5.5 requires Python >=3.12 (PKG-INFO Requires-Python)"
    assert attempt.record["pythons"] == {"3.11": {"status": "skipped", "reason": why}}

    # Only the excluded Python left to build, the others stored: nothing to do, not a failure.
    attempt = Attempt(config, recipe, NativeRunner())
    rest = plan(["3.11"], kept=[tmp_path / "numpy-2.5.5-cp312-cp312-linux_x86_64.whl"])
    attempt.drop_pythons_outside(rest, tree)
    assert rest.todo == [] and attempt.result.status == "skipped"
    assert f"Python 3.11 left out: {why}" in attempt.result.message

    # As cibuildwheel tests it, X.Y stands for its newest patch release.
    assert source.python_fits(SpecifierSet(">=3.11.2"), "3.11")
    assert not source.python_fits(SpecifierSet("<3.11"), "3.11")
    assert source.python_fits(SpecifierSet("!=3.11.0"), "3.11")
