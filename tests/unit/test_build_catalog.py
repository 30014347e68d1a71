"""Which recipes a build command takes: the named ones and what they need, through the one
dependency walk (graph.select), reading no recipe it does not need."""

from __future__ import annotations

import pytest

from conftest import write_recipe
from wheelfactory.build import catalog
from wheelfactory.errors import RecipeError
from wheelfactory.settings.factory import load_config

SHA = "e8af3e6f1bdbc31fd762b094133b478b89988eaebc63cbe82b1d9e3bbd15cede"


def recipe(project, name, *, depends=(), runtime=()):
    write_recipe(project, name, f'[package]\nname = "{name}"\nversion = "1.0"\n[source]\nsha256 = "{SHA}"\n'
                                f'[build]\ndepends = {list(depends)!r}\n[runtime]\ndepends = {list(runtime)!r}\n'
                 .replace("'", '"'))


def test_named_recipes_come_with_what_they_need_and_nothing_else_is_read(project):
    recipe(project, "lib")
    recipe(project, "mid", depends=["lib"])
    recipe(project, "app", runtime=["mid"])
    write_recipe(project, "broken", "[package]\nname = 'broken'\nversionn = '1'\n")  # a typo elsewhere
    config = load_config(project)
    assert sorted(catalog.choose(config, ["App"])) == ["app", "lib", "mid"]
    with pytest.raises(RecipeError, match="versionn"):
        catalog.choose(config, every=True)  # --all reads every recipe


def test_an_unknown_name_is_named_with_a_suggestion_and_the_fix(project):
    recipe(project, "multidict")
    with pytest.raises(RecipeError) as e:
        catalog.choose(load_config(project), ["multidcit"])
    msg = str(e.value)
    assert "no recipe 'multidcit'" in msg and "did you mean 'multidict'" in msg
    assert "invoke new-recipe multidcit" in msg


def test_a_cycle_is_refused_before_anything_runs(project):
    recipe(project, "x", depends=["y"])
    recipe(project, "y", runtime=["x"])
    with pytest.raises(RecipeError, match=r"cycle: .*remove one of these dependencies"):
        catalog.choose(load_config(project), ["x"])


def test_a_missing_dependency_names_the_recipe_and_the_fix(project):
    recipe(project, "app", depends=["ghost"])
    with pytest.raises(RecipeError, match=r"depends on 'ghost', which has no recipe; add recipes/ghost/recipe.toml"):
        catalog.choose(load_config(project), ["app"])


def test_a_dependency_that_came_along_builds_the_versions_its_dependents_specifiers_need(project):
    """numba's "numpy<2.5" beside numpy 2.5.5, 2.4.6, 2.3.5: named alone, numba brings numpy
    2.5.5 (package.version) and 2.4.6 (the newest that matches), not 2.3.5; named, numpy builds all."""
    write_recipe(project, "numpy", f'[package]\nname = "numpy"\nversion = "2.5.5"\n[source]\nsha256 = "{SHA}"\n'
                                   f'[versions."2.4.6"]\nsha256 = "{SHA}"\n[versions."2.3.5"]\nsha256 = "{SHA}"\n')
    write_recipe(project, "numba", f'[package]\nname = "numba"\nversion = "1.0"\n[source]\nsha256 = "{SHA}"\n'
                                   '[build]\ndepends = ["numpy<2.5"]\n'
                                   '[runtime]\ndepends = ["llvmlite; platform_machine == \'riscv64\'"]\n')
    recipe(project, "llvmlite")
    config = load_config(project).replace(target={"arch": "riscv64"})
    chosen = catalog.choose(config, ["numba"])
    assert chosen["numpy"].all_versions == ["2.5.5", "2.4.6"]
    assert sorted(chosen) == ["llvmlite", "numba", "numpy"]
    assert sorted(catalog.choose(config.replace(target={"arch": "x86_64"}), ["numba"])) == ["numba", "numpy"]
    assert catalog.choose(config, ["numba", "numpy"])["numpy"].all_versions == ["2.5.5", "2.4.6", "2.3.5"]
