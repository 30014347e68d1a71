"""Rebuild after an unrelated recipe change vs. the cold build: the compiler cache's gain.

    python benchmarks/bench_rebuild.py [--recipe numpy] [--python 3.12] [--workdir DIR] [--max-ratio 0.4]

(numpy 2.5 needs Python >= 3.12: python3.12 must be on PATH; with pyenv, e.g.
PYENV_VERSION=3.11.7:3.12.1.)

1. warm-up: one build with a throwaway ccache folder, so downloads, the tools
   venv and the build requirements are cached for both timed runs;
2. cold: dist/ and the ccache folder empty, the recipe built (timed);
3. rebuild: one more entry in the recipe's [test].imports (the build key
   changes, so the build really runs; the compiled inputs do not), built (timed).

Prints both times, the ratio and the ccache counts from the rebuild's record;
exits 1 when the ratio is above --max-ratio (target: 0.4).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
from pathlib import Path

from _project import clear_outputs, make_project, set_build_config, timed_build


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="numpy", help="a C-heavy recipe from recipes/ (default: numpy)")
    p.add_argument("--workdir", type=Path, default=None, help="project folder (default: a temporary one)")
    p.add_argument("--python", default="3.12", help="the one Python X.Y to build for (default: 3.12)")
    p.add_argument("--max-ratio", type=float, default=0.4)
    p.add_argument("--no-warmup", action="store_true", help="skip step 1 (caches already warm)")
    args = p.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-rebuild-"))
    root = make_project(work / "project", [args.recipe], python=args.python)
    from wheelfactory.build.store import load_records

    if not args.no_warmup:
        set_build_config(root, 'ccache-dir = "cache/ccache-warmup"')
        print(f"warm-up build of {args.recipe} (not timed) …", flush=True)
        timed_build(root, [args.recipe])
        shutil.rmtree(root / "cache" / "ccache-warmup", ignore_errors=True)

    clear_outputs(root)
    shutil.rmtree(root / "cache" / "ccache-bench", ignore_errors=True)
    set_build_config(root, 'ccache-dir = "cache/ccache-bench"')
    cold = timed_build(root, [args.recipe])

    recipe = root / "recipes" / args.recipe / "recipe.toml"
    text = recipe.read_text()
    changed = re.sub(r'(imports = \[)', r'\1"sys", ', text, count=1)
    if changed == text:
        changed = text + '\n[test]\nimports = ["sys"]\n'
    recipe.write_text(changed)  # an unrelated field: the build key changes, the compiled inputs do not
    warm = timed_build(root, [args.recipe])

    records = sorted((r for r in load_records(root / "dist") if r["recipe"] == args.recipe),
                     key=lambda r: r["build_tag"] or 0)
    ratio = warm / cold
    result = {
        "benchmark": "rebuild-with-compiler-cache",
        "recipe": args.recipe,
        "python": args.python,
        "cold_seconds": round(cold, 1),
        "rebuild_seconds": round(warm, 1),
        "ratio": round(ratio, 3),
        "target_ratio": args.max_ratio,
        "cold_ccache": records[0].get("compiler_cache"),
        "rebuild_ccache": records[-1].get("compiler_cache"),
        "rebuild_stages": records[-1].get("stages"),
        "ok": ratio <= args.max_ratio,
    }
    print(json.dumps(result, indent=2))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
