"""Writes build_keys.json and record.json from the code BEFORE the layout change.

Run once, with the flat layout of commit 1e6efda on the path (``/work/main``):

    PYTHONPATH=/work/main python3 tests/unit/build_fixtures/make_fixtures.py

The values it writes are what dist/ already holds; test_build_record.py
recomputes them with today's code, so a change to a key or a record byte
(which would rebuild every wheel) fails there. Never run this with the new code.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from fixture_inputs import (DEPENDENCIES, GIT_COMMIT, PATCH, PYTHONS, RECORD_ARGS, RECORD_RECIPE, TARGETS, WHEEL,
                            write_wheel)
from wheelfactory import pipeline, repair, store  # the flat layout: this script must fail on the new one
from wheelfactory.config import load_config
from wheelfactory.recipe import load_all, load_recipe

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
                sid = f"git:{GIT_COMMIT}" if recipe.source_kind == "git" else f"sha256:{recipe['source']['sha256']}"
                for arch, policy in TARGETS:
                    policy = recipe["repair"]["policy"] or policy
                    for v in PYTHONS:
                        for deps in DEPENDENCIES:
                            out.append({
                                "recipe": name, "patched": patched, "source_id": sid, "python": v, "target": arch,
                                "policy": policy, "dependencies": deps,
                                "fingerprint": recipe.fingerprint(root),
                                "key": store.build_key(recipe_fingerprint=recipe.fingerprint(root), source_id=sid,
                                                       python=v, target=arch, policy=policy, dependencies=deps),
                            })
        # The config's own policy, as the pipeline reads it (repair.policy_for).
        for name, recipe in sorted(load_all(REPO / "recipes").items()):
            out.append({"recipe": name, "config_policy": repair.policy_for(config, recipe)})
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
        rec = pipeline.make_record(config, recipe, wheel, **RECORD_ARGS)
        dest = store.store_wheel(root / "dist", wheel, rec)
        text = store.record_path(root / "dist", dest.name).read_text()
    return {"wheel": WHEEL, "wheel_sha256": store.sha256_file(wheel), "metadata": pipeline.wheel_metadata(wheel),
            "record_json": text}


if __name__ == "__main__":
    if (Path(pipeline.__file__).parent / "build").is_dir():
        sys.exit("run this with the flat layout (PYTHONPATH=/work/main), not the new code")
    rows = build_keys()  # one row a line: a diff names the recipe that moved
    (HERE / "build_keys.json").write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")
    (HERE / "record.json").write_text(json.dumps(record(), indent=1, ensure_ascii=False) + "\n")
    print("wrote", HERE / "build_keys.json", HERE / "record.json", HERE / WHEEL)
