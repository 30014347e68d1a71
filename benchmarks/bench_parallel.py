"""build-all of four independent small recipes: 2 parallel jobs vs. one at a time.

    python benchmarks/bench_parallel.py [--recipes multidict,propcache,frozenlist,cffi]
                                        [--jobs 2] [--rounds 1] [--max-ratio 0.65]

The compiler cache is off (each timed run compiles everything) and a warm-up
build fills the download, tools-venv and build-requirement caches first, so both
modes do the same work. Each round times a serial build-all (--jobs 1) and a
parallel one (--jobs N) from an empty dist/; the best of each is compared.
Exits 1 when parallel/serial is above --max-ratio (target: 0.65 on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

from _project import clear_outputs, make_project, set_build_config, timed_build


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", default="multidict,propcache,frozenlist,cffi")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--max-ratio", type=float, default=0.65)
    args = p.parse_args()
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-parallel-"))
    root = make_project(work / "project", names)
    set_build_config(root, "ccache = false")
    print(f"warm-up build-all of {', '.join(names)} (not timed) …", flush=True)
    clear_outputs(root)
    timed_build(root, ["--all", "--jobs", str(args.jobs)])

    serial, parallel = [], []
    for i in range(args.rounds):
        for jobs, times in ((1, serial), (args.jobs, parallel)):
            clear_outputs(root)
            print(f"round {i + 1}: build-all --jobs {jobs} …", flush=True)
            times.append(timed_build(root, ["--all", "--jobs", str(jobs)]))

    ratio = min(parallel) / min(serial)
    result = {
        "benchmark": "parallel-build-all",
        "recipes": names,
        "cores": len(os.sched_getaffinity(0)),
        "jobs": args.jobs,
        "serial_seconds": [round(t, 1) for t in serial],
        "parallel_seconds": [round(t, 1) for t in parallel],
        "ratio": round(ratio, 3),
        "target_ratio": args.max_ratio,
        "ok": ratio <= args.max_ratio,
    }
    print(json.dumps(result, indent=2))
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
