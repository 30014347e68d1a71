"""A recipe that lists several versions ([versions."X.Y"]): the schema, its checks at load,
which versions a build command takes, the build keys, and the audit's match rule."""

from __future__ import annotations

import pytest

from conftest import REPO, write_recipe
from wheelfactory.audit.classify import Pin, classify
from wheelfactory.build import catalog
from wheelfactory.ci.plan import _plan_key
from wheelfactory.errors import RecipeError
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.recipe import load_all, load_recipe
from wheelfactory.settings.target import Target

A = "a" * 64
B = "b" * 64
C = "c" * 64
SDIST = f'''\
[package]
name = "wf-multi"
version = "2.5.5"  # the newest
[source]
sha256 = "{A}"
[build]
env = {{ JOBS = "2" }}
'''
GIT = '''\
[package]
name = "wf-git"
version = "2.15.0"
[source]
git = "https://example.invalid/wf-git"
rev = "v2.15.0"
[build]
env = { BUILD_VERSION = "2.15.0", JOBS = "8" }
'''


def _load(project, name, text):
    write_recipe(project, name, text)
    return load_recipe(project / "recipes", name)


def test_each_listed_version_reads_as_a_recipe_written_for_it_alone(project):
    multi = _load(project, "wf-multi", SDIST + f'[versions."2.3.5"]\nsha256 = "{C}"\n'
                                               f'[versions."2.4.6"]\nsha256 = "{B}"\n')
    assert multi.all_versions == ["2.5.5", "2.4.6", "2.3.5"]  # newest first, whatever the file's order
    old = multi.at("2.4.6")
    assert (old.version, old.source.sha256, old.all_versions, old.build.env) == ("2.4.6", B, ["2.4.6"], {"JOBS": "2"})
    assert multi.at("2.4.6.0").version == "2.4.6"  # PEP 440 spelling
    patches = project / "patches"
    # Listing versions moves no key, and each version's key is that of a recipe written for it alone.
    alone = _load(project, "wf-multi", SDIST)
    assert multi.fingerprint(patches) == multi.at("2.5.5").fingerprint(patches) == alone.fingerprint(patches)
    written = _load(project, "wf-multi", SDIST.replace("2.5.5", "2.4.6").replace(A, B))
    assert old.fingerprint(patches) == written.fingerprint(patches) != alone.fingerprint(patches)

    git = _load(project, "wf-git", GIT + '[versions."2.14.0"]\nrev = "v2.14.0"\nenv = { BUILD_VERSION = "2.14.0" }\n')
    g = git.at("2.14.0")
    assert (g.source.rev, g.source.git, g.build.env) == ("v2.14.0", "https://example.invalid/wf-git",
                                                         {"BUILD_VERSION": "2.14.0", "JOBS": "8"})
    written = _load(project, "wf-git", GIT.replace("2.15.0", "2.14.0"))
    assert g.fingerprint(patches) == written.fingerprint(patches)


def test_the_ci_plan_sees_a_version_added(project):
    target = {"arch": "riscv64"}
    before = _plan_key(_load(project, "wf-multi", SDIST), project / "patches", target, "2")
    after = _load(project, "wf-multi", SDIST + f'[versions."2.4.6"]\nsha256 = "{B}"\n')
    assert _plan_key(after, project / "patches", target, "2") != before


@pytest.mark.parametrize("text, message", [
    (SDIST + f'[versions."2.6.0"]\nsha256 = "{B}"\n',
     r'\[versions\."2\.6\.0"\]: each \[versions\] key must be a distinct PEP 440 version older than package.version '
     r'2\.5\.5; fix: list the newest in package.version'),
    (SDIST + f'[versions."two"]\nsha256 = "{B}"\n', r'\[versions\."two"\]: each \[versions\] key must be'),
    (SDIST + f'[versions."2.4"]\nsha256 = "{B}"\n[versions."2.4.0"]\nsha256 = "{C}"\n',
     r'\[versions\."2\.4\.0"\]: each \[versions\] key must be a distinct'),
    (SDIST + f'[versions."2.5.5"]\nsha256 = "{B}"\n', r'\[versions\."2\.5\.5"\]: each'),
    (SDIST + '[versions."2.4.6"]\nrev = "v2.4.6"\n',
     r'\[versions\."2\.4\.6"\] of a sdist source takes sha256, not rev; fix: sha256 = '),
    (SDIST + '[versions."2.4.6"]\nenv = { A = "1" }\n', r'\[versions\."2\.4\.6"\] of a sdist source takes sha256;'),
    (SDIST + '[versions."2.4.6"]\nsha256 = "ABC"\n', r"'versions\.\"2\.4\.6\"\.sha256' must be 64 lowercase hex"),
    (SDIST + f'[versions."2.4.6"]\nsha265 = "{B}"\n',
     r"unknown key 'versions\.\"2\.4\.6\"\.sha265' \(did you mean 'sha256'\?\)"),
    (SDIST + '[versions]\n"2.4.6" = "abc"\n', r'\[versions\] holds one table per version'),
    (GIT + f'[versions."2.14.0"]\nsha256 = "{B}"\n',
     r'\[versions\."2\.14\.0"\] of a git source takes rev, not sha256; fix: rev = '),
    (GIT + '[versions."2.14.0"]\nrev = "v2.14.0"\nenv = { X = 1 }\n',
     r"'versions\.\"2\.14\.0\"\.env' must be a table of string values"),
])
def test_a_bad_versions_entry_is_one_message_naming_file_and_key(project, text, message):
    name = "wf-git" if "git =" in text else "wf-multi"
    write_recipe(project, name, text)
    with pytest.raises(RecipeError, match=message) as e:
        load_recipe(project / "recipes", name)
    assert str(e.value).startswith(str(project / "recipes" / name / "recipe.toml") + ": ")
    assert "\n" not in str(e.value)


def test_named_recipes_build_every_version_dependencies_their_newest(project):
    _load(project, "wf-multi", SDIST + f'[versions."2.4.6"]\nsha256 = "{B}"\n')
    write_recipe(project, "wf-app", f'[package]\nname = "wf-app"\nversion = "1.0"\n[source]\nsha256 = "{C}"\n'
                                    f'[build]\ndepends = ["wf-multi"]\n')
    config = load_config(project)
    assert catalog.choose(config, ["wf-multi"])["wf-multi"].all_versions == ["2.5.5", "2.4.6"]
    assert catalog.choose(config, every=True)["wf-multi"].all_versions == ["2.5.5", "2.4.6"]
    chosen = catalog.choose(config, ["wf-app"])
    assert chosen["wf-multi"].all_versions == ["2.5.5"]  # what wf-app builds with, nothing more
    picked = catalog.choose(config, ["wf-multi"], version="2.4.6")["wf-multi"]
    assert (picked.all_versions, picked.source.sha256) == (["2.4.6"], B)
    with pytest.raises(RecipeError, match=r"wf-multi 2\.4\.7 is not listed .* it builds 2\.5\.5, 2\.4\.6; add "
                                          r'\[versions\."2\.4\.7"\]'):
        catalog.choose(config, ["wf-multi"], version="2.4.7")
    with pytest.raises(RecipeError, match="--version 2.4.6 picks a version of one recipe; name exactly one"):
        catalog.choose(config, ["wf-multi", "wf-app"], version="2.4.6")


def test_the_audit_matches_when_any_listed_version_is_the_resolved_one(project):
    _load(project, "wf-multi", SDIST + f'[versions."2.4.6"]\nsha256 = "{B}"\n[versions."2.3.5"]\nsha256 = "{C}"\n')
    config = load_config(project)
    target = Target.of(config)

    def recipe_for(version):
        return classify(Pin("wf-multi", version, "", ["(requested)"]), ["3.13"], target, [], [],
                        project / "recipes", []).recipe

    for resolved, shown in (("2.3.5", "2.3.5"), ("2.4.6", "2.4.6"), ("2.4.6.0", "2.4.6"), ("2.5.5", "2.5.5")):
        assert recipe_for(resolved) | {"path": ""} == {"path": "", "version": shown, "matches": True,
                                                        "versions": ["2.5.5", "2.4.6", "2.3.5"]}
    assert recipe_for("2.4.7")["matches"] is False and recipe_for("2.4.7")["version"] == "2.5.5"


def test_the_shipped_recipes_list_what_vllms_cpu_tree_resolves_to():
    recipes = load_all(REPO / "recipes")
    assert {"2.4.6", "2.3.5"} <= set(recipes["numpy"].all_versions)
    torch = recipes["torch"].at("2.14.0")
    assert torch.source.rev == "v2.14.0" and torch.build.env["PYTORCH_BUILD_VERSION"] == "2.14.0"
