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
import zipfile
from pathlib import Path

from wheelfactory import pipeline, repair, store  # the flat layout: this script must fail on the new one
from wheelfactory.config import load_config
from wheelfactory.recipe import load_all, load_recipe

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]

# Inputs that do not come from the recipe: fixed, so the keys are reproducible.
GIT_COMMIT = "0123456789abcdef0123456789abcdef01234567"
DEPENDENCIES = [[], ["f" * 64, "0" * 64, "a" * 64]]  # unsorted on purpose: the key sorts them
PYTHONS = ["3.11", "3.12", "3.13"]
TARGETS = [("riscv64", "manylinux_2_39"), ("x86_64", "best")]
PATCH = {"cffi/0001-fixture.patch": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n",
         "cffi/1.17.1/0002-versioned.patch": "--- a/y\n+++ b/y\n@@ -1 +1 @@\n-c\n+d\n"}

WHEEL = "wf_fixture-1.0-2-cp312-cp312-manylinux_2_17_riscv64.manylinux2014_riscv64.whl"
METADATA = ("Metadata-Version: 2.1\nName: wf-fixture\nVersion: 1.0\nSummary: a fixture – not on PyPI\n"
            "Requires-Python: >=3.9\nRequires-Dist: numpy>=2\n\nA description with ünïcode.\n")
RECORD_RECIPE = """\
[package]
name = "wf-fixture"
version = "1.0"

[source]
sha256 = "1111111111111111111111111111111111111111111111111111111111111111"

[runtime]
debian = ["libexample1", "libfoo2"]
"""
RECORD_ARGS = dict(
    build_key="k" * 64, python="3.12", policy="manylinux_2_39", achieved="manylinux_2_17",
    source={"kind": "sdist", "url": "https://example.invalid/wf_fixture-1.0.tar.gz", "sha256": "1" * 64,
            "git": None, "rev": None, "commit": None, "subdirectory": None},
    patches=["wf-fixture/0001-x.patch"], auditwheel="wf_fixture-1.0 is consistent with manylinux_2_17_riscv64",
    host={"runner": "native", "hostname": "h", "arch": "riscv64", "runner_id": "native-riscv64",
          "tools": {"auditwheel": "6.4.2", "build": "1.3.0"}},
    duration=12.345678, stages={"fetch": 0.5, "build": 10.25, "repair": 1.0, "verify": 0.5},
    log="logs/wf-fixture/20250101T000000000000Z.log", notes=["a note"],
    compiler_cache={"tool": "ccache", "calls": 3, "hits": 2, "direct_hits": 2, "preprocessed_hits": 0,
                    "misses": 1, "uncacheable": 0, "hit_rate": 0.6667},
    built_at="2025-01-01T00:00:00Z",
)


def write_wheel(path: Path) -> None:
    """A tiny wheel, stored uncompressed with fixed times: the same bytes on every machine."""
    files = {"wf_fixture/__init__.py": "",
             "wf_fixture-1.0.dist-info/METADATA": METADATA,
             "wf_fixture-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: false\n"
                                               "Build: 2\nTag: cp312-cp312-manylinux_2_17_riscv64\n"
                                               "Tag: cp312-cp312-manylinux2014_riscv64\n",
             "wf_fixture-1.0.dist-info/RECORD": ""}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, text.encode("utf-8"))


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
