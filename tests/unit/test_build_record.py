"""Nothing rebuilds by accident: build keys and dist records are byte-for-byte the fixtures'.

The fixtures in build_fixtures/ were first written with the flat layout of commit
1e6efda and remade deliberately once, for BUILD_LOGIC_VERSION 2 (recipe
fingerprints from the parsed content; see make_fixtures.py); here today's code
recomputes them: the key of every shipped recipe (three Pythons, two targets, with and
without dependency wheels, with patches) and the stored record of a fixed wheel.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import REPO
from wheelfactory._util.fs import sha256_file
from wheelfactory.build import store
from wheelfactory.build.record import build_key, make_record, wheel_metadata
from wheelfactory.build.source import source_id
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.recipe import load_all, load_recipe
from wheelfactory.settings.target import Target

FIXTURES = Path(__file__).parent / "build_fixtures"
sys.path.insert(0, str(FIXTURES))
import fixture_inputs as made  # noqa: E402  (the inputs the fixtures were made from)

KEYS = [row for row in json.loads((FIXTURES / "build_keys.json").read_text()) if "key" in row]
POLICIES = {row["recipe"]: row["config_policy"]
            for row in json.loads((FIXTURES / "build_keys.json").read_text()) if "config_policy" in row}


@pytest.fixture(scope="module")
def patches_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("patches")
    for rel, text in made.PATCH.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_fixtures_cover_every_shipped_recipe():
    shipped = sorted(p.parent.name for p in (REPO / "recipes").glob("*/recipe.toml"))
    assert sorted({row["recipe"] for row in KEYS}) == shipped == sorted(POLICIES)
    assert len(KEYS) == len(shipped) * 3 * 2 * 2 + 12  # pythons x targets x dependencies, + patched cffi


@pytest.mark.parametrize("row", KEYS, ids=lambda r: f"{r['recipe']}-{r['python']}-{r['target']}"
                                                   f"-{len(r['dependencies'])}deps{'-patched' if r['patched'] else ''}")
def test_build_keys_are_unchanged(row, patches_root):
    recipe = load_all(REPO / "recipes")[row["recipe"]]
    root = patches_root if row["patched"] else REPO / "patches"
    assert recipe.fingerprint(root) == row["fingerprint"]
    sid = f"git:{made.GIT_COMMIT}" if recipe.source_kind == "git" else source_id(recipe)
    assert sid == row["source_id"]
    policy = recipe.repair.policy or row["policy"]
    key = build_key(recipe_fingerprint=recipe.fingerprint(root), source_id=sid, python=row["python"],
                    target=row["target"], policy=policy, dependencies=row["dependencies"])
    assert key == row["key"]


def test_the_policy_in_the_key_is_the_one_asked_for():
    config = load_config(REPO)
    recipes = load_all(REPO / "recipes")
    assert {name: Target.of(config, r).policy for name, r in recipes.items()} == POLICIES


def test_a_stored_record_is_byte_for_byte_unchanged(tmp_path):
    expected = json.loads((FIXTURES / "record.json").read_text())
    wheel = FIXTURES / expected["wheel"]
    assert sha256_file(wheel) == expected["wheel_sha256"]
    assert wheel_metadata(wheel) == expected["metadata"]
    (tmp_path / "recipes" / "wf-fixture").mkdir(parents=True)
    (tmp_path / "recipes" / "wf-fixture" / "recipe.toml").write_text(made.RECORD_RECIPE)
    recipe = load_recipe(tmp_path / "recipes", "wf-fixture")
    record = make_record(load_config(REPO), recipe, wheel, **made.RECORD_ARGS)
    dest = store.store_wheel(tmp_path / "dist", wheel, record)
    assert store.record_path(tmp_path / "dist", dest.name).read_text() == expected["record_json"]
    assert sha256_file(dest) == expected["wheel_sha256"]


def test_the_fixture_wheel_is_what_make_fixtures_writes(tmp_path):
    """The committed wheel is the script's, so the fixtures can be made again from scratch."""
    made.write_wheel(tmp_path / "w.whl")
    assert (tmp_path / "w.whl").read_bytes() == (FIXTURES / made.WHEEL).read_bytes()
