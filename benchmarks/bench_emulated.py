"""Emulated riscv64 builds: the factory's overhead, the rootfs's cost, and emulation's slowdown.

    python benchmarks/bench_emulated.py [--recipe multidict [--version V]] [--cache DIR] [--workdir DIR] [--repeat 3] [--max-ratio 1.1]

Needs root, qemu-user-static, binfmt-support and mmdebstrap (as the emulated runner does).

1. rootfs: created from scratch (timed; size measured) — or, with --cache pointing at a
   cache folder that holds one already, its recorded creation time and size are reported;
2. warm-up (not timed): one factory build, so the sdist, the tools venv and the pip/uv
   caches exist for both timed runs;
3. factory: the recipe built again through the whole pipeline (build, auditwheel repair,
   verify in a bare riscv64 venv, store), with the compiler cache OFF so it really compiles;
4. bare: `pip wheel --no-deps` of the same sdist, inside the same rootfs, with the same
   Python (a plain venv, pip's own build isolation);
5. emulated compilers: the recipe through the factory once more with
   ``[emulation].cross-compilers = "off"`` (every gcc call emulated), for the gain of the
   native cross compilers (steps 3 and 4 use them: the default);
6. native: the same recipe through the factory on this machine (--target host, ccache off),
   for the emulated/native slowdown: the build stage with cross compilers should be at most
   2x native (issue #17), against ~9x with emulated compilers.

Steps 3 and 4 alternate ``--repeat`` times (default 3): each is one build, and under
emulation the same compile varies by +-15% from run to run, so the fastest of each
is compared (every run is printed). Prints the numbers and a JSON summary; exits 1
when factory/bare is above --max-ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def project(root: Path, cache: Path, recipe: str, *, python: str, host: bool = False, cross: str = "auto") -> Path:
    from wheelfactory.settings.target import host_arch

    root.mkdir(parents=True, exist_ok=True)
    target = (f'arch = "{host_arch()}"\npolicy = "best"\n' if host else "")
    (root / "factory.toml").write_text(
        f'[target]\n{target}pythons = ["{python}"]\n\n[paths]\ncache = "{cache}"\n\n[build]\nccache = false\n'
        f'\n[emulation]\ncross-compilers = "{cross}"\n'
    )
    shutil.rmtree(root / "recipes" / recipe, ignore_errors=True)
    shutil.copytree(REPO / "recipes" / recipe, root / "recipes" / recipe)
    if (REPO / "patches" / recipe).is_dir():
        shutil.rmtree(root / "patches" / recipe, ignore_errors=True)
        shutil.copytree(REPO / "patches" / recipe, root / "patches" / recipe)
    return root


def factory_build(root: Path, recipe: str, *extra: str) -> float:
    from wheelfactory.cli import build as build_cli

    for d in ("dist", "logs", "build"):
        shutil.rmtree(root / d, ignore_errors=True)
    start = time.monotonic()
    rc = build_cli.build_command([recipe, *extra], root=root)
    seconds = time.monotonic() - start
    if rc != 0:
        raise SystemExit(f"factory build of {recipe} failed (exit {rc}); see {root / 'logs'}")
    return seconds


def bare_pip_wheel(base, root: Path, cache: Path, recipe: str, python: str) -> float:
    """``pip wheel --no-deps`` of the cached sdist in a new venv inside the rootfs (on a layer, with the
    cross compilers as the factory's builds have them); the seconds it took."""
    with base.hermetic() as runner:
        return _bare_pip_wheel(runner, root, cache, recipe, python)


def _bare_pip_wheel(runner, root: Path, cache: Path, recipe: str, python: str) -> float:
    sdists = sorted((cache / "sources").rglob(f"{recipe}-*.tar.gz")) or sorted(cache.rglob(f"{recipe}-*.tar.gz"))
    if not sdists:
        raise SystemExit(f"the {recipe} sdist is not in {cache}; the factory build should have cached it")
    bare_dir = root / "build" / "bare"
    shutil.rmtree(bare_dir, ignore_errors=True)
    bare_dir.mkdir(parents=True)
    sdist = bare_dir / sdists[0].name
    shutil.copyfile(sdists[0], sdist)
    log = io.StringIO()
    runner.run([f"python{python}", "-m", "venv", str(bare_dir / "venv")], cwd=bare_dir, log=log)
    t = time.monotonic()
    proc = runner.run([str(bare_dir / "venv/bin/pip"), "wheel", "--no-deps", "-w", str(bare_dir / "out"), str(sdist)],
                      cwd=bare_dir, log=log, check=False)
    seconds = time.monotonic() - t
    if proc.returncode != 0:
        print(log.getvalue()[-3000:])
        raise SystemExit("pip wheel failed inside the rootfs")
    return seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="multidict")
    p.add_argument("--version", default=None,
                   help="the one version of a multi-version recipe to build (numpy: 2.4.6 also builds for Python 3.11)")
    p.add_argument("--python", default="3.13", help="X.Y the rootfs has (default 3.13)")
    p.add_argument("--cache", type=Path, default=None,
                   help="cache folder holding (or to hold) the rootfs; default: a fresh one (from-scratch rootfs)")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--max-ratio", type=float, default=1.1)
    p.add_argument("--repeat", type=int, default=3, help="timed factory/bare pairs; the fastest of each counts")
    p.add_argument("--no-native", action="store_true", help="skip the native build (slowdown factor)")
    p.add_argument("--no-emulated-compilers", action="store_true",
                   help="skip step 5 (a build with every compiler call emulated; the slow side)")
    p.add_argument("--no-warmup", action="store_true",
                   help="skip step 2 and the native warm-up (numpy: each build is minutes; both sides start cold)")
    p.add_argument("--no-bare", action="store_true", help="skip step 4 (numpy: the comparison that counts is native)")
    args = p.parse_args()
    ver = ["--version", args.version] if args.version else []

    from wheelfactory._util.fs import human_size, tree_size
    from wheelfactory.runners.emulated import EmulatedRunner, emulation_problem
    from wheelfactory.runners.rootfs import Rootfs
    from wheelfactory.settings.factory import load_config

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-emulated-"))
    cache = (args.cache or work / "cache").resolve()
    root = project(work / "emulated", cache, args.recipe, python=args.python)
    config = load_config(root)
    problem = emulation_problem(config)
    if problem:
        raise SystemExit(f"emulation is not available: {problem}")
    rootfs = Rootfs(config)
    result: dict = {"recipe": args.recipe, "python": args.python}

    # 1. the rootfs
    if rootfs.ready:
        stamp = rootfs.stamp()
        result["rootfs_created_seconds"] = stamp.get("creation_seconds")
        result["rootfs_reused"] = True
        print(f"rootfs exists ({rootfs.path}); its creation took {stamp.get('creation_seconds')}s")
    else:
        t = time.monotonic()
        rootfs.create()
        result["rootfs_created_seconds"] = round(time.monotonic() - t, 1)
        result["rootfs_reused"] = False
    result["rootfs_size_bytes"] = tree_size(rootfs.path)
    print(f"rootfs: {human_size(result['rootfs_size_bytes'])}, created in {result['rootfs_created_seconds']}s")

    # 2. warm-up
    if not args.no_warmup:
        print("warm-up factory build (not timed) …", flush=True)
        result["warmup_seconds"] = round(factory_build(root, args.recipe, *ver), 1)

    # 3 and 4, alternating: the factory, and a bare pip wheel of the same sdist (same rootfs and Python)
    runner = EmulatedRunner(config)
    factory_runs, bare_runs, stage_runs = [], [], []
    for i in range(args.repeat):
        print(f"factory build (timed, {i + 1}/{args.repeat}) …", flush=True)
        factory_runs.append(factory_build(root, args.recipe, *ver))
        attempt = json.loads(next((root / "logs" / args.recipe).glob("*.json")).read_text())
        stage_runs.append(attempt.get("stages") or {})
        if not args.no_bare:
            print(f"bare pip wheel in the same rootfs (timed, {i + 1}/{args.repeat}) …", flush=True)
            bare_runs.append(bare_pip_wheel(runner, root, cache, args.recipe, args.python))
    best = min(range(len(factory_runs)), key=factory_runs.__getitem__)
    factory = factory_runs[best]
    result["factory_seconds"] = round(factory, 1)
    result["factory_stages"] = stage_runs[best]
    result["runs"] = {"factory": [round(x, 1) for x in factory_runs], "bare": [round(x, 1) for x in bare_runs]}
    if bare_runs:
        bare = min(bare_runs)
        result["bare_pip_wheel_seconds"] = round(bare, 1)
        result["factory_over_bare"] = round(factory / bare, 3)
        result["factory_build_stage_over_bare"] = round(min(st.get("build", 0) for st in stage_runs) / bare, 3)

    result["compilers"] = attempt.get("host", {}).get("compilers") or (
        json.loads(next((root / "dist").rglob("*.whl.json")).read_text())["host"].get("compilers"))

    # 5. the same build with every compiler call emulated
    if not args.no_emulated_compilers:
        emu_root = project(work / "emulated-compilers", cache, args.recipe, python=args.python, cross="off")
        print("factory build with emulated compilers (timed) …", flush=True)
        result["emulated_compilers_seconds"] = round(factory_build(emu_root, args.recipe, *ver), 1)
        eattempt = json.loads(next((emu_root / "logs" / args.recipe).glob("*.json")).read_text())
        result["emulated_compilers_stages"] = eattempt.get("stages")
        result["emulated_compilers_over_cross_build_stage"] = round(
            eattempt["stages"]["build"] / min(st["build"] for st in stage_runs), 2)

    # 6. native, for the slowdown factor
    if not args.no_native:
        from wheelfactory.settings.target import host_arch

        # The same Python version natively when this machine has it.
        from wheelfactory.runners.native import NativeRunner

        native_py = args.python if NativeRunner().pythons([args.python]) else f"{sys.version_info[0]}.{sys.version_info[1]}"
        native_root = project(work / "native", work / "native-cache", args.recipe, python=native_py, host=True)
        result["native_python"] = native_py
        print(f"native warm-up + build on {host_arch()} …", flush=True)
        if not args.no_warmup:
            factory_build(native_root, args.recipe, *ver, "--target", "host")
        native = factory_build(native_root, args.recipe, *ver, "--target", "host")
        nattempt = json.loads(next((native_root / "logs" / args.recipe).glob("*.json")).read_text())
        result["native_factory_seconds"] = round(native, 1)
        result["native_stages"] = nattempt.get("stages")
        result["emulated_over_native"] = round(factory / native, 1)
        if (result["factory_stages"] or {}).get("build") and (nattempt.get("stages") or {}).get("build"):
            result["emulated_over_native_build_stage"] = round(
                result["factory_stages"]["build"] / nattempt["stages"]["build"], 1)
            if result.get("emulated_compilers_stages"):
                result["emulated_compilers_over_native_build_stage"] = round(
                    result["emulated_compilers_stages"]["build"] / nattempt["stages"]["build"], 1)

    print(json.dumps(result, indent=2))
    print(f"\nrootfs: created in {result['rootfs_created_seconds']}s, {human_size(result['rootfs_size_bytes'])}")
    if bare_runs:
        print(f"factory {result['factory_seconds']}s vs bare pip wheel {result['bare_pip_wheel_seconds']}s: "
              f"{result['factory_over_bare']}x (target <= {args.max_ratio}x); the build stage alone: "
              f"{result['factory_build_stage_over_bare']}x")
    print(f"every run (s): factory {result['runs']['factory']}, bare {result['runs']['bare']}")
    print(f"compilers of the timed runs: {(result.get('compilers') or {}).get('kind')}")
    if "emulated_over_native" in result:
        print(f"emulated (cross compilers)/native: {result['emulated_over_native']}x for the whole factory run "
              f"({result.get('emulated_over_native_build_stage')}x for the build stage; targets: multidict's build "
              f"stage <= 2x, numpy's whole run <= 1.5x)")
    if "emulated_compilers_over_native_build_stage" in result:
        print(f"emulated compilers/native build stage: {result['emulated_compilers_over_native_build_stage']}x; "
              f"emulated compilers/cross compilers: {result['emulated_compilers_over_cross_build_stage']}x")
    return 0 if not bare_runs or result["factory_over_bare"] <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
