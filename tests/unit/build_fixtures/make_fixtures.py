"""Writes build_keys.json and record.json: the keys and the record dist/ holds.

History: first written from the flat layout of commit 1e6efda, so that the layout
change provably rebuilt nothing. Remade deliberately once, with
BUILD_LOGIC_VERSION 2 (the recipe fingerprint became the parsed TOML's content
instead of the file's bytes: every key changed on purpose, once).

Run it only for such a deliberate change, or to add rows for a new recipe
(``--add``: the rows of recipes already in build_keys.json must come out
unchanged, or it refuses):

    PYTHONPATH=$PWD python3 tests/unit/build_fixtures/make_fixtures.py [--add]

test_build_record.py recomputes the values, so an accidental change to a key or
a record byte (which would rebuild every wheel) fails there.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from fixture_inputs import (DEPENDENCIES, GIT_COMMIT, PATCH, PYTHONS, RECORD_ARGS, RECORD_RECIPE, TARGETS, WHEEL,
                            write_wheel)
from wheelfactory._util.fs import sha256_file
from wheelfactory.build import store
from wheelfactory.build.record import build_key, make_record, wheel_metadata
from wheelfactory.build.source import source_id
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.recipe import load_all, load_recipe
from wheelfactory.settings.target import Target

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
def build_keys() -> list[dict]:
    config = load_config(REPO)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        patches_root = Path(tmp) / "patches"
        for rel, text in PATCH.items():
            (patches_root / rel).parent.mkdir(parents=True, exist_ok=True)
            (patches_root / rel).write_text(text)
        for patched in (False, True):
            root = patches_root if patched else REPO / "patches"
            for name, recipe in sorted(load_all(REPO / "recipes").items()):
                if patched and name != "cffi":
                    continue
                sid = f"git:{GIT_COMMIT}" if recipe.source_kind == "git" else source_id(recipe)
                for arch, policy in TARGETS:
                    policy = recipe.repair.policy or policy
                    for v in PYTHONS:
                        for deps in DEPENDENCIES:
                            out.append({
                                "recipe": name, "patched": patched, "source_id": sid, "python": v, "target": arch,
                                "policy": policy, "dependencies": deps,
                                "fingerprint": recipe.fingerprint(root),
                                "key": build_key(recipe_fingerprint=recipe.fingerprint(root), source_id=sid,
                                                       python=v, target=arch, policy=policy, dependencies=deps),
                            })
        # The config's own policy, as the pipeline reads it.
        for name, recipe in sorted(load_all(REPO / "recipes").items()):
            out.append({"recipe": name, "config_policy": Target.of(config, recipe).policy})
    return out


def record() -> dict:
    wheel = HERE / WHEEL
    write_wheel(wheel)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "recipes" / "wf-fixture").mkdir(parents=True)
        (root / "recipes" / "wf-fixture" / "recipe.toml").write_text(RECORD_RECIPE)
        config = load_config(REPO)
        recipe = load_recipe(root / "recipes", "wf-fixture")
        rec = make_record(config, recipe, wheel, **RECORD_ARGS)
        dest = store.store_wheel(root / "dist", wheel, rec)
        text = store.record_path(root / "dist", dest.name).read_text()
    return {"wheel": WHEEL, "wheel_sha256": sha256_file(wheel), "metadata": wheel_metadata(wheel),
            "record_json": text}


if __name__ == "__main__":
    rows = build_keys()
    if "--add" in sys.argv[1:]:
        old = json.loads((HERE / "build_keys.json").read_text())
        kept = {r["recipe"] for r in old}
        moved = [r for r in rows if r["recipe"] in kept and r not in old]
        if moved or len([r for r in rows if r["recipe"] in kept]) != len(old):
            sys.exit(f"--add: rows of existing recipes changed ({moved[:1]}…); that rebuilds wheels")  # one row a line: a diff names the recipe that moved
    (HERE / "build_keys.json").write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")
    (HERE / "record.json").write_text(json.dumps(record(), indent=1, ensure_ascii=False) + "\n")
    print("wrote", HERE / "build_keys.json", HERE / "record.json", HERE / WHEEL)
