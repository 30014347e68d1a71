"""Build pipeline benchmarks (prints results; no asserts).

1. Overhead: multidict's sdist built + repaired by hand (`pip wheel` + `auditwheel
   repair`) against the factory's whole pipeline on the same sdist (fetch from
   cache, unpack, PEP 517 build, repair, bare-venv verify, store). Target: ≤ 1.15×.
2. No-op: `nox -s build-multidict -- --target host` on an unchanged recipe
   against its cold build through the same nox session. Target: ≤ 5 %.

Both sides get the same warm-ups (package caches, the factory's tools venv), the
compiler cache is off so neither side reuses objects, and each timed run is
made once, alternating. Run: python benchmarks/bench_build.py [--rounds N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import write_project  # noqa: E402

from wheelfactory.build import store  # noqa: E402

NAME = "multidict"


def _project(root: Path, cache: Path) -> Path:
    write_project(root, recipes=[NAME], config=f'[paths]\ncache = "{cache}"\n[build]\nccache = false\n')
    shutil.copy(REPO / "noxfile.py", root / "noxfile.py")
    return root


def _quiet_build(root: Path, *argv: str) -> float:
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", (
        "import sys; from pathlib import Path; from wheelfactory import cli; from wheelfactory.cli import build as build_cli; "
        f"cli.run(build_cli.build_command, sys.argv[1:], root=Path({str(root)!r}))"), *argv],
        capture_output=True, text=True)
    took = time.monotonic() - t
    if proc.returncode != 0:
        sys.exit(f"factory build failed:\n{proc.stderr[-3000:]}")
    return took


def _by_hand(sdist: Path, work: Path) -> float:
    wh, out = work / "wh", work / "out"
    t = time.monotonic()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wh, sdist], check=True)
    subprocess.run(["auditwheel", "repair", "-w", out, *wh.glob("*.whl")], check=True,
                   capture_output=True)
    return time.monotonic() - t


def _nox(root: Path) -> float:
    t = time.monotonic()
    proc = subprocess.run(["nox", "-f", str(root / "noxfile.py"), "-s", f"build-{NAME}", "--", "--target", "host"],
                          capture_output=True, text=True, cwd=root)
    took = time.monotonic() - t
    if proc.returncode != 0:
        sys.exit(f"nox build failed:\n{proc.stderr[-3000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=1, help="timed runs of each side (alternating)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="wf-bench-"))
    cache = tmp / "cache"
    try:
        # Warm-up: the factory's tools venv, the sdist in the cache, uv/pip caches.
        warm = _project(tmp / "warm", cache)
        _quiet_build(warm, NAME, "--target", "host")
        sdist = next((cache / "sources").rglob(f"{NAME}-*.tar.gz"))
        _by_hand(sdist, tmp / "hand-warm")

        factory, by_hand, stages = [], [], []
        for i in range(args.rounds):
            by_hand.append(_by_hand(sdist, tmp / f"hand{i}"))
            root = _project(tmp / f"factory{i}", cache)
            factory.append(_quiet_build(root, NAME, "--target", "host"))
            rec = store.load_records(root / "dist")[0]
            stages.append(rec["stages"])
        f, h = min(factory), min(by_hand)
        s = stages[factory.index(f)]
        print(f"overhead: factory {f:.2f}s (whole pipeline; stages "
              + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(s.items())) + ")")
        print(f"          by hand {h:.2f}s (pip wheel + auditwheel repair)")
        print(f"          ratio {f / h:.2f}x  (target <= 1.15x)  "
              f"[build+repair stages only: {(s['build'] + s['repair']) / h:.2f}x]")

        # No-op through nox, against the cold build through nox.
        nox_root = _project(tmp / "nox", cache)
        cold = _nox(nox_root)
        noop = min(_nox(nox_root) for _ in range(max(1, args.rounds)))
        print(f"no-op:    cold `nox -s build-{NAME}` {cold:.2f}s, unchanged {noop:.2f}s "
              f"= {100 * noop / cold:.1f}% (target <= 5%)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
