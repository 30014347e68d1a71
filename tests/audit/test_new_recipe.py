"""`invoke new-recipe`: real sdists of real PyPI projects with different build backends."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import requests
from packaging.utils import parse_sdist_filename
from packaging.version import Version

from conftest import REPO
from support.build import make_git_repo
from wheelfactory.cli import build as build_cli
from wheelfactory.audit import scaffold
from wheelfactory.cli import upkeep
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.recipe import parse_recipe
from wheelfactory.build.store import load_records

PEP691 = "application/vnd.pypi.simple.v1+json"


def _pypi_sdist(name: str, version: str) -> dict:
    page = requests.get(f"https://pypi.org/simple/{name}/", headers={"Accept": PEP691}, timeout=60).json()
    for f in page["files"]:
        if not f["filename"].endswith(".whl"):
            try:
                if parse_sdist_filename(f["filename"])[1] == Version(version):
                    return f
            except ValueError:
                continue
    raise AssertionError(f"{name} {version} has no sdist on PyPI")


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "recipes").rglob("*")) if p.is_file()}


def _invoke(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["invoke", "--search-root", str(REPO), "new-recipe", *args], cwd=root,
                          env={**os.environ, "WHEELFACTORY_ROOT": str(root)}, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_setuptools_c_package_scaffolds_and_builds_without_edits(project):
    """simplejson: a setuptools C extension. The recipe, as written, builds a verified wheel."""
    assert upkeep.new_recipe_command("simplejson", root=project) == 0
    path = project / "recipes" / "simplejson" / "recipe.toml"
    recipe = parse_recipe(path)
    sdist = _pypi_sdist("simplejson", recipe.version)
    assert recipe.source.sha256 == sdist["hashes"]["sha256"]
    text = path.read_text()
    assert "build backend setuptools" in text and "# env = {" in text
    assert recipe.test.imports == ["simplejson"]
    # What `nox -s build -- simplejson` runs, aimed at this project root.
    status = build_cli.build_command(["simplejson", "--runner", "native"], root=project)
    records = load_records(project / "dist") if (project / "dist").is_dir() else []
    assert status == 0 and [rec["name"] for rec in records] == ["simplejson"]
    assert records[0]["version"] == recipe.version


@pytest.mark.parametrize("name, backend, settings", [
    ("siphash24", "meson-python", "setup-args"),
    ("rpds-py", "maturin", "build-args"),
    ("pyzmq", "scikit-build-core", "cmake.define"),
])
def test_backend_is_read_from_the_sdist(project, name, backend, settings):
    s = scaffold.plan_recipe(load_config(project), name)
    assert s.backend == backend
    assert settings in s.text  # the backend's usual settings, commented
    path = project / "recipes" / s.name / "recipe.toml"
    scaffold.write_recipes(project / "recipes", [s])
    recipe = parse_recipe(path)
    assert recipe.version == s.version
    assert recipe.source.sha256 == _pypi_sdist(name, s.version)["hashes"]["sha256"]
    if backend == "maturin":
        assert recipe.build.debian == ["cargo", "rustc"]
        assert recipe.test.imports == ["rpds"]  # maturin's python-source package, not the dist name


def test_given_version_through_invoke(project):
    r = _invoke(project, "siphash24", "--version", "1.7")
    assert r.returncode == 0, r.stderr
    recipe = parse_recipe(project / "recipes" / "siphash24" / "recipe.toml")
    assert recipe.version == "1.7"
    assert recipe.source.sha256 == _pypi_sdist("siphash24", "1.7")["hashes"]["sha256"]


@pytest.mark.parametrize("args, message", [
    (["six"], "is pure Python"),
    (["wf-no-such-project-3f9c2"], "no project 'wf-no-such-project-3f9c2'"),
    (["simplejson", "--version", "0.0.0.1"], "has no version 0.0.0.1"),
    (["torch"], "has no sdist"),
])
def test_refusals_are_one_clear_message_and_write_nothing(project, args, message):
    before = _snapshot(project)
    r = _invoke(project, *args)
    assert r.returncode == 1
    assert message in r.stderr, r.stderr
    assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr
    assert _snapshot(project) == before


def test_existing_recipe_is_never_overwritten(project):
    path = project / "recipes" / "simplejson" / "recipe.toml"
    path.parent.mkdir(parents=True)
    path.write_text("# mine\n")
    r = _invoke(project, "simplejson")
    assert r.returncode == 1 and "already exists" in r.stderr
    assert path.read_text() == "# mine\n"


def _git_repo(folder: Path, files: dict[str, str]) -> str:
    bare, _ = make_git_repo(folder, {rel: textwrap.dedent(text) for rel, text in files.items()})
    return bare.as_uri()


def test_git_source(project, tmp_path):
    url = _git_repo(tmp_path / "repo", {
        "pkg/pyproject.toml": """\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "wf-git-demo"
            version = "1.0"
            """,
        "pkg/setup.py": "from setuptools import Extension, setup\n"
                        "setup(ext_modules=[Extension('wf_git_demo', ['demo.c'])])\n",
        "pkg/demo.c": "/* a C extension */\n",
    })
    assert upkeep.new_recipe_command("wf-git-demo", root=project, git=url, rev="v1.0", subdirectory="pkg") == 0
    recipe = parse_recipe(project / "recipes" / "wf-git-demo" / "recipe.toml")
    assert recipe.source_kind == "git" and recipe.source.rev == "v1.0"
    assert recipe.source.subdirectory == "pkg" and recipe.version == "1.0"

    pure = _git_repo(tmp_path / "pure", {"pyproject.toml": """\
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "wf-git-pure"
        version = "1.0"
        """, "wf_git_pure/__init__.py": ""})
    with pytest.raises(scaffold.ScaffoldError, match="pure Python"):
        upkeep.new_recipe_command("wf-git-pure", root=project, git=pure, rev="v1.0")
    with pytest.raises(scaffold.ScaffoldError, match="cannot check out 'v9'"):
        upkeep.new_recipe_command("wf-git-pure", root=project, git=pure, rev="v9")
    assert not (project / "recipes" / "wf-git-pure").exists()
