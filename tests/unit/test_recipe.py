"""Recipes: every shipped one validates; what decides the build key is in the fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO, write_project, write_recipe
from wheelfactory.errors import RecipeError
from wheelfactory.settings.recipe import load_all, load_recipe

SHIPPED = ["multidict", "frozenlist", "propcache", "numpy", "orjson", "grpcio", "cffi", "torch"]
SHA = "e8af3e6f1bdbc31fd762b094133b478b89988eaebc63cbe82b1d9e3bbd15cede"


def test_every_shipped_recipe_validates():
    recipes = load_all(REPO / "recipes")
    assert set(SHIPPED) <= set(recipes)
    for name, r in recipes.items():
        assert r.name == name and r.version
        assert r.source.sha256 or r.source.git, name


def test_the_quirks_the_factory_exists_for_are_expressed():
    recipes = load_all(REPO / "recipes")
    assert "expandvars" in recipes["frozenlist"].build.requires
    assert "expandvars" in recipes["propcache"].build.requires
    torch = recipes["torch"]
    assert torch.source_kind == "git" and torch.source.rev
    assert torch.build.env["USE_DISTRIBUTED"] == "1" and torch.build.env["USE_GLOO"] == "1"
    assert torch.build.isolation is False and "numpy" in torch.build.depends
    assert "-Dblas=openblas" in recipes["numpy"].build.config_settings["setup-args"]
    assert "libopenblas-dev" in recipes["numpy"].build.debian
    assert "--locked" in recipes["orjson"].build.config_settings["build-args"]
    assert recipes["grpcio"].build.exclusive is True


def test_unknown_recipe_name_suggests_the_close_one(tmp_path):
    root = write_project(tmp_path / "p", recipes=["multidict"])
    with pytest.raises(RecipeError, match=r"no recipe 'multidcit'.*did you mean 'multidict'"):
        load_recipe(root / "recipes", "multidcit")


def _tiny(root: Path, extra: str = "") -> Path:
    return write_recipe(root, "wf-tiny", f'''\
        [package]
        name = "wf-tiny"
        version = "1.0"
        [source]
        sha256 = "{SHA}"
        {extra}
        ''')


def test_fingerprint_covers_recipe_text_and_patches_in_order(tmp_path):
    root = write_project(tmp_path / "p")
    _tiny(root)
    base = load_recipe(root / "recipes", "wf-tiny").fingerprint(root / "patches")
    patches = root / "patches" / "wf-tiny"
    (patches / "1.0").mkdir(parents=True)
    (patches / "0002-b.patch").write_text("b")
    (patches / "0001-a.patch").write_text("a")
    (patches / "1.0" / "0001-c.patch").write_text("c")
    (patches / "0.9").mkdir()
    (patches / "0.9" / "0001-old.patch").write_text("old")  # another version's: not applied
    r = load_recipe(root / "recipes", "wf-tiny")
    assert [p.relative_to(patches).as_posix() for p in r.patches(root / "patches")] == [
        "0001-a.patch", "0002-b.patch", "1.0/0001-c.patch"]
    with_patches = r.fingerprint(root / "patches")
    assert with_patches != base
    (patches / "0002-b.patch").write_text("b2")
    assert r.fingerprint(root / "patches") != with_patches
    _tiny(root, "subdirectory = \"python\"")
    assert load_recipe(root / "recipes", "wf-tiny").fingerprint(root / "patches") != r.fingerprint(root / "patches")


def test_config_settings_take_strings_and_lists(tmp_path):
    root = write_project(tmp_path / "p")
    _tiny(root, '[build]\nconfig-settings = { setup-args = ["-Da=1", "-Db=2"], build-args = "--locked" }')
    r = load_recipe(root / "recipes", "wf-tiny")
    assert r.build.config_settings == {"setup-args": ["-Da=1", "-Db=2"], "build-args": "--locked"}
    _tiny(root, "[build]\nconfig-settings = { jobs = 4 }")
    with pytest.raises(RecipeError, match=r"'build.config-settings' must be a table whose values are strings"):
        load_recipe(root / "recipes", "wf-tiny")


@pytest.mark.parametrize(("written", "fix"), [
    ("sentencepiece/__init__", "write 'sentencepiece'"),
    ("yaml/_yaml.py", "write 'yaml._yaml'"),
    ("zstandard.backend_c.", "write 'zstandard.backend_c'"),
    ("pkg.class", "for example 'yaml._yaml'"),
    ("2fast", "for example 'yaml._yaml'"),
])
def test_import_names_are_dotted_module_names_at_load(tmp_path, written, fix):
    root = write_project(tmp_path / "p")
    path = _tiny(root, f'[test]\nimports = ["ok", "ok._ext", "{written}"]')
    with pytest.raises(RecipeError) as e:
        load_recipe(root / "recipes", "wf-tiny")
    assert str(e.value).startswith(f"{path}: 'test.imports' entry '{written}' is not a dotted module name")
    assert fix in str(e.value)


def test_depends_entries_take_a_version_specifier_and_an_arch_marker(tmp_path):
    root = write_project(tmp_path / "p")
    _tiny(root, '[build]\ndepends = ["NumPy<2.5"]\n'
                '[runtime]\ndepends = ["numpy>=2", "llvmlite; platform_machine == \'riscv64\'"]')
    r = load_recipe(root / "recipes", "wf-tiny")
    assert (r.build.depends, r.runtime.depends) == (["numpy"], ["numpy", "llvmlite"])
    assert str(r.depends_versions["numpy"]) in ("<2.5,>=2", ">=2,<2.5")  # both tables', intersected
    riscv, host = r.for_arch("riscv64"), r.for_arch("x86_64")
    assert riscv.runtime.depends == ["numpy", "llvmlite"]
    assert (host.build.depends, host.runtime.depends) == (["numpy"], ["numpy"])
    assert "llvmlite" not in host.needs


@pytest.mark.parametrize(("written", "says"), [
    ("numpy[blas]", "no extras or URLs"),
    ("numpy @ https://example.org/numpy.tar.gz", "no extras or URLs"),
    ("numpy; python_version < '3.12'", "its marker depends on the Python version"),
    ("numpy>>2", "is not a recipe name or a name with a version specifier"),
])
def test_a_depends_entry_beyond_name_specifier_and_arch_marker_is_refused_at_load(tmp_path, written, says):
    root = write_project(tmp_path / "p")
    path = _tiny(root, f'[build]\ndepends = ["{written}"]')
    with pytest.raises(RecipeError) as e:
        load_recipe(root / "recipes", "wf-tiny")
    assert str(e.value).startswith(f"{path}: 'build.depends' entry {written!r}"), e.value
    assert says in str(e.value)


def test_a_missing_dependency_behind_a_marker_is_found_on_every_arch(tmp_path):
    root = write_project(tmp_path / "p")
    path = _tiny(root, '[runtime]\ndepends = ["wf-nowhere; platform_machine == \'no-such-arch\'"]')
    for arch in (None, "x86_64", "riscv64"):
        with pytest.raises(RecipeError) as e:
            load_all(root / "recipes", arch)
        assert str(e.value).startswith(f"{path}: depends on 'wf-nowhere', which has no recipe"), e.value
