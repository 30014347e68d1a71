"""The clean system's costs, each side measured in the same run and printed as a ratio.

    python benchmarks/bench_clean.py [--cache DIR] [--workdir DIR] [--repeat 3] [--skip-create] [--only-create]

Needs root, qemu-user-static, binfmt-support and mmdebstrap (as the emulated runner does).

1. creation: the build rootfs and the clean system made from scratch, one after the other,
   in a fresh cache folder (time and size); target: clean <= 40% of build in both.
   The build rootfs makes the clean stage first and leaves it for the clean system
   (runners/clean.py), so the clean system is then made a third time apart from
   the build rootfs (mmdebstrap, as without a stage to take) and that time is printed too.
   ``--skip-create`` takes both from ``--cache`` instead (their recorded creation times).
2. verify: the same repaired multidict wheel (Python 3.13) verified ``--repeat`` times
   on a throwaway layer of the clean system and in the build rootfs itself, alternating;
   the fastest of each is compared; target <= 1.3.
3. hermetic build: multidict built ``--repeat`` times through the pipeline (ccache off,
   force) on a throwaway layer of the build rootfs (layer set-up included) and without
   one, alternating; the fastest of each is compared; target <= 1.1.

Prints every run and a JSON summary.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def project(root: Path, cache: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "factory.toml").write_text(f'[target]\npythons = ["3.13"]\n\n[paths]\ncache = "{cache}"\n\n'
                                       f'[build]\nccache = false\n')
    shutil.rmtree(root / "recipes", ignore_errors=True)
    shutil.copytree(REPO / "recipes" / "multidict", root / "recipes" / "multidict")
    return root


def creation(cache: Path, skip: bool) -> dict:
    from wheelfactory._util.fs import remove_tree, tree_size
    from wheelfactory.runners.clean import systems
    from wheelfactory.settings.factory import load_config

    config = load_config(project(Path(tempfile.mkdtemp(prefix="bench-clean-")), cache))
    out = {}

    def record(rootfs, label: str) -> None:
        stamp = rootfs.stamp()
        out[label] = {"seconds": stamp["creation_seconds"], "bytes": tree_size(rootfs.path),
                      "steps": stamp.get("creation_steps", {})}  # where the time went (mmdebstrap's steps)
        print(f"{label}: created in {stamp['creation_seconds']:.0f}s, {out[label]['bytes'] / 2**20:.0f} MiB",
              flush=True)
        for step, seconds in out[label]["steps"].items():
            print(f"    {seconds:6.1f}s  {step}", flush=True)

    build, clean = systems(config)
    for rootfs in (build, clean):
        if not skip:
            rootfs.create(replace=True)
        record(rootfs, rootfs.label)
    b, c = out["rootfs"], out["clean system"]
    result = {**out, "time_ratio": round(c["seconds"] / b["seconds"], 3),
              "size_ratio": round(c["bytes"] / b["bytes"], 3)}
    if not skip:
        # The same clean system made apart from the build rootfs (no clean stage to take: mmdebstrap).
        if clean.seed_path.exists():
            remove_tree(clean.seed_path)
        clean.create(replace=True)
        record(clean, "clean system made apart")
        result["apart_time_ratio"] = round(out["clean system made apart"]["seconds"] / b["seconds"], 3)
    return result


def verify(root: Path, repeat: int) -> dict:
    from wheelfactory.build import pipeline
    from wheelfactory.build.pep517 import ensure_tools
    from wheelfactory.build.verify import clean_interpreter, verify_place, verify_wheel
    from wheelfactory.runners import select_runner
    from wheelfactory.settings.factory import load_config
    from wheelfactory.settings.recipe import load_recipe

    config = load_config(root)
    runner = select_runner(config)
    recipe = load_recipe(config.paths.recipes, "multidict")
    result = pipeline.build_recipe(config, recipe, runner, force=True)
    assert result.status == "built", result.message
    wheel = root / "build" / "bench" / result.wheels[0].name
    wheel.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result.wheels[0], wheel)
    log = io.StringIO()
    tools = ensure_tools(config, runner, "3.13", "/usr/bin/python3.13", log)
    times: dict[str, list[float]] = {"clean": [], "build rootfs": []}
    for _ in range(repeat):
        for where in times:
            t = time.monotonic()
            place = verify_place(config, runner, recipe, log=log) if where == "clean" \
                else contextlib.nullcontext(runner)
            with place as p:
                verify_wheel(config, p, tools, recipe=recipe, version="3.13",
                             interpreter=clean_interpreter(p, "3.13", "/usr/bin/python3.13"), wheel=wheel,
                             find_links=None, workdir=root / "build" / "bench", log=log)
            times[where].append(round(time.monotonic() - t, 2))
            print(f"verify on the {where}: {times[where][-1]:.1f}s", flush=True)
    best = {k: min(v) for k, v in times.items()}
    return {"runs": times, "ratio": round(best["clean"] / best["build rootfs"], 3)}


def hermetic(root: Path, repeat: int) -> dict:
    from wheelfactory.build import pipeline
    from wheelfactory.runners import select_runner
    from wheelfactory.settings.factory import load_config
    from wheelfactory.settings.recipe import load_recipe

    config = load_config(root)
    runner = select_runner(config)
    recipe = load_recipe(config.paths.recipes, "multidict")
    layered = pipeline._hermetic
    times: dict[str, list[float]] = {"hermetic": [], "plain": []}
    try:
        for _ in range(repeat):
            for kind in times:
                pipeline._hermetic = layered if kind == "hermetic" else contextlib.nullcontext
                t = time.monotonic()
                result = pipeline.build_recipe(config, recipe, runner, force=True)
                times[kind].append(round(time.monotonic() - t, 2))
                assert result.status == "built", result.message
                print(f"{kind} build of multidict: {times[kind][-1]:.1f}s", flush=True)
    finally:
        pipeline._hermetic = layered
    best = {k: min(v) for k, v in times.items()}
    return {"runs": times, "ratio": round(best["hermetic"] / best["plain"], 3)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache", type=Path, help="cache folder (default: a fresh temporary one)")
    p.add_argument("--workdir", type=Path, help="where the throwaway project goes")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-create", action="store_true", help="reuse the systems in --cache")
    p.add_argument("--only-create", action="store_true", help="measure creation only")
    args = p.parse_args()
    cache = (args.cache or Path(tempfile.mkdtemp(prefix="bench-clean-cache-"))).resolve()
    root = project((args.workdir or Path(tempfile.mkdtemp(prefix="bench-clean-project-"))).resolve(), cache)
    summary = {"creation": creation(cache, args.skip_create)}
    c = summary["creation"]
    print(f"clean system / build rootfs: creation time {c['time_ratio']:.2f} (target <= 0.40), "
          f"size {c['size_ratio']:.2f} (target <= 0.40)")
    if "apart_time_ratio" in c:
        print(f"clean system made apart from the build rootfs (mmdebstrap) / build rootfs: "
              f"{c['apart_time_ratio']:.2f}")
    if args.only_create:
        print(json.dumps(summary, indent=2))
        return 0
    summary["verify"] = verify(root, args.repeat)
    summary["hermetic_build"] = hermetic(root, args.repeat)
    print(f"verify of multidict, clean system / build rootfs: {summary['verify']['ratio']:.2f} (target <= 1.30)")
    print(f"build of multidict, hermetic layer / none: {summary['hermetic_build']['ratio']:.2f} (target <= 1.10)")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
