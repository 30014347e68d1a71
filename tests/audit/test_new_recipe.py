"""`invoke new-recipe`: real sdists of real PyPI projects with different build backends."""

from __future__ import annotations

import os
import re
import subprocess
import textwrap
from pathlib import Path

import pytest
import requests
from packaging.utils import parse_sdist_filename
from packaging.version import Version

from conftest import REPO
from support.build import LocalServer, make_git_repo, make_project, make_sdist
from conftest import write_recipe
from wheelfactory.build.pipeline import build_recipe
from wheelfactory.runners import select_runner
from wheelfactory.settings.recipe import load_recipe
from wheelfactory.cli import build as build_cli
from wheelfactory.audit import scaffold
from wheelfactory.cli import upkeep
from wheelfactory.settings.factory import load_config
from wheelfactory.errors import RecipeError
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
    assert recipe.test.imports == ["simplejson", "simplejson._speedups"]  # the compiled module, verified
    # What `nox -s build -- simplejson` runs, aimed at this project root.
    status = build_cli.build_command(["simplejson", "--runner", "native"], root=project)
    records = load_records(project / "dist") if (project / "dist").is_dir() else []
    assert status == 0 and [rec["name"] for rec in records] == ["simplejson"]
    assert records[0]["version"] == recipe.version


@pytest.mark.parametrize("name, backend, settings", [
    ("siphash24", "meson-python", "setup-args"),
    ("rpds-py", "maturin", "build-args"),
    # scikit-build-core: pyzmq, in test_a_scaffold_that_cannot_tell_its_modules_fails_validation_until_filled
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


@pytest.mark.parametrize("name, version, backend, debian, imports", [
    # setuptools C with modules for other systems (only Linux's is named)
    ("psutil", "7.2.2", "setuptools", [], ["psutil", "psutil._psutil_linux"]),
    # an in-tree backend; the Cython module sits in yaml/ beside the package in lib/yaml/
    ("pyyaml", "6.0.4", "in-tree (_pyyaml_pep517)", [], ["yaml", "yaml._yaml"]),
    # top_level.txt holds paths (sentencepiece/__init__): module names only; a pybind11 extension
    ("sentencepiece", "0.2.3", "setuptools", [], ["sentencepiece", "sentencepiece._sentencepiece"]),
    # the C backend found by its PyInit_ inside the package
    ("ijson", "3.6.0", "setuptools", [], ["ijson", "ijson.backends._yajl2"]),
    # setuptools-rust: cargo in build.debian
    ("tiktoken", "0.14.0", "setuptools-rust", ["cargo", "rustc"], ["tiktoken", "tiktoken_ext", "tiktoken._tiktoken"]),
    # Cython
    ("uvloop", "0.23.0", "setuptools", [], ["uvloop", "uvloop.loop"]),
    # Extension("_binding") under setup(ext_package="tree_sitter_bash")
    ("tree-sitter-bash", "0.25.1", "setuptools", [], ["tree_sitter_bash", "tree_sitter_bash._binding"]),
])
def test_scaffold_names_the_compiled_modules(project, name, version, backend, debian, imports):
    s = scaffold.plan_recipe(load_config(project), name, version=version)
    assert s.backend == backend
    scaffold.write_recipes(project / "recipes", [s])
    recipe = parse_recipe(project / "recipes" / s.name / "recipe.toml")
    assert recipe.test.imports == imports
    assert recipe.build.debian == debian
    if name == "uvloop":
        assert "with Cython" in s.text
    if backend == "setuptools-rust":
        assert any("crates.io" in n for n in s.notes)


def test_a_scaffold_that_cannot_tell_its_modules_fails_validation_until_filled(project):
    """pyzmq builds its extension through CMake: the scaffold says so, and the recipe refuses to load."""
    s = scaffold.plan_recipe(load_config(project), "pyzmq", version="27.3.0")
    assert s.backend == "scikit-build-core" and "cmake.define" in s.text
    (path,) = scaffold.write_recipes(project / "recipes", [s])
    assert f'sha256 = "{_pypi_sdist("pyzmq", "27.3.0")["hashes"]["sha256"]}"' in path.read_text()
    with pytest.raises(RecipeError, match=r"'test.imports' still holds 'TODO: the compiled modules'"):
        parse_recipe(path)
    path.write_text(path.read_text().replace('"TODO: the compiled modules"', '"zmq.backend.cython._zmq"'))
    assert parse_recipe(path).test.imports == ["zmq", "zmq.backend.cython._zmq"]
    assert parse_recipe(path).build.debian == ["cmake", "ninja-build"]


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
    (["--help"], "'--help' is not a project name"),  # invoke passes it as NAME; we point at its own help
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


# --- a wheel that comes out pure Python ---------------------------------------------------------

OPTIONAL_EXT_SETUP = '''\
import os, sys
from setuptools import Extension, setup
# Like ijson without yajl: the extension is left out when its library's header is missing.
have = any(os.path.exists(os.path.join(d, "wf_no_such_lib.h")) for d in ("/usr/include", "/usr/local/include"))
if not have:
    print("wf-opt-ext: wf_no_such_lib.h not found, the C extension is skipped", file=sys.stderr)
setup(ext_modules=[Extension("wf_opt_ext._speed", ["src/speed.c"])] if have else [])
'''


def test_a_pure_wheel_says_the_extension_was_skipped_and_where(tmp_path, shared_cache):
    project = make_project(tmp_path / "p", shared_cache)
    files = {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
                          '[project]\nname = "wf-opt-ext"\nversion = "1.0"\n[tool.setuptools]\npackages = ["wf_opt_ext"]\n',
        "setup.py": OPTIONAL_EXT_SETUP,
        "src/speed.c": "#include <wf_no_such_lib.h>\n",
        "wf_opt_ext/__init__.py": "",
    }
    path, sha = make_sdist(tmp_path / "served", files, name="wf-opt-ext")
    server = LocalServer(tmp_path / "served")
    try:
        write_recipe(project, "wf-opt-ext", f'''\
            [package]
            name = "wf-opt-ext"
            version = "1.0"
            [source]
            url = "{server.url}/{path.name}"
            sha256 = "{sha}"
            [test]
            imports = ["wf_opt_ext", "wf_opt_ext._speed"]
            ''')
        result = build_recipe(load_config(project), load_recipe(project / "recipes", "wf-opt-ext"),
                              select_runner(load_config(project), "native"))
    finally:
        server.close()
    assert result.status == "failed", result
    assert "its compiled extension was skipped" in result.message, result.message
    assert "PyPI has no pure wheel of 1.0" in result.message and "not needed" not in result.message
    # The line that says why, with its place in the log.
    m = re.search(r"(\S+\.log):(\d+): wf-opt-ext: wf_no_such_lib.h not found", result.message)
    assert m, result.message
    assert "wf_no_such_lib.h not found" in Path(m.group(1)).read_text().splitlines()[int(m.group(2)) - 1]


@pytest.mark.slow
def test_a_pure_wheel_of_a_release_pypi_has_pure_says_the_recipe_is_not_needed(tmp_path, shared_cache):
    project = make_project(tmp_path / "p", shared_cache)
    """simplejson ships a py3-none-any wheel of every release: without its speedups, the recipe is moot."""
    assert upkeep.new_recipe_command("simplejson", root=project) == 0
    path = project / "recipes" / "simplejson" / "recipe.toml"
    path.write_text(path.read_text().replace("[build]\n", '[build]\nenv = { DISABLE_SPEEDUPS = "1" }\n', 1))
    config = load_config(project)
    result = build_recipe(config, load_recipe(project / "recipes", "simplejson"), select_runner(config, "native"))
    assert result.status == "failed"
    version = parse_recipe(path).version
    assert f"PyPI has one of {version} too (simplejson-{version}-py3-none-any.whl)" in result.message, result.message
    assert "delete recipes/simplejson" in result.message
