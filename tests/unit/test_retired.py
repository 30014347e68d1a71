"""Retired recipes (package.retired): upstream ships the riscv64 wheels, so build-all and the
workflow leave the recipe out unless another needs it; by name it still builds; the marker is
not part of the build key."""

from __future__ import annotations

from conftest import write_recipe
from wheelfactory.build import catalog
from wheelfactory.ci import workflow
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.recipe import load_all, load_recipe

SHA = "0" * 64
TAGS = "1.0: cp311-cp311-manylinux_2_39_riscv64"


def recipe(project, name, *, retired="", runtime=()):
    write_recipe(project, name, f'[package]\nname = "{name}"\nversion = "1.0"\n'
                                + (f'retired = "{retired}"\n' if retired else "")
                                + f'[source]\nsha256 = "{SHA}"\n[runtime]\ndepends = {list(runtime)!r}\n'
                                .replace("'", '"'))


def test_build_all_skips_a_retired_recipe_unless_something_needs_it(project):
    recipe(project, "gone", retired=TAGS)
    recipe(project, "base", retired=TAGS)
    recipe(project, "app", runtime=["base"])
    config = load_config(project)
    assert sorted(catalog.choose(config, every=True)) == ["app", "base"]
    assert sorted(catalog.choose(config, ["gone"])) == ["gone"]  # by name: still built


def test_the_workflow_gives_a_retired_recipe_no_job_unless_something_needs_it(project):
    recipe(project, "gone", retired=TAGS)
    recipe(project, "base", retired=TAGS)
    recipe(project, "app", runtime=["base"])
    jobs, left_out = workflow.buildable(load_all(project / "recipes"))
    assert sorted(jobs) == ["app", "base"]
    assert left_out == {"gone": f"retired: {TAGS}"}


def test_the_retired_marker_is_not_part_of_the_build_key(project):
    recipe(project, "gone")
    before = load_recipe(project / "recipes", "gone").fingerprint(project / "patches")
    recipe(project, "gone", retired=TAGS)
    after = load_recipe(project / "recipes", "gone")
    assert after.package.retired == TAGS and after.fingerprint(project / "patches") == before

