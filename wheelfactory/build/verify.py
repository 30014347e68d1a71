"""Stage 4: install the repaired wheel into a bare venv and run the recipe's tests.

Where: after a build in a rootfs of the target arch (emulated, or native on a
board; ``verify_place``) on a throwaway layer of the target's clean system
(``runners.clean``), with the recipe's ``runtime.debian`` and nothing else
installed, so a run-time library the wheel neither bundles nor declares fails
here, not on a user's fresh board.
``--target host`` verifies on this machine.

Besides ``test.imports`` and ``test.commands``, every top-level and extension
module in the wheel's file list is imported (``runners.debian.DIST_IMPORT_CHECK``),
so a wheel whose compiled code is missing or cannot load never passes. An import
that misses a shared library names the soname and the Debian package of the
target arch that ships it (the mirror's Contents index).

Bare means: a fresh venv of the target interpreter, no system site-packages, no
user site, no PYTHONPATH, no pip or uv configuration of this machine
(``_util.venv.bare_env``: what a user's fresh board gives pip), run from an
empty folder (so nothing is imported from the source tree). Dependencies come from the configured indexes with
binaries preferred, plus the wheels of dependency recipes (a --find-links
folder under build/). A failure here keeps the wheel out of dist/.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Sequence

from packaging.utils import parse_wheel_filename

from .._util.venv import bare_env
from ..errors import EnvironmentProblem, VerifyError
from ..runners import Runner
from ..runners.clean import clean_layer
from ..runners.debian import DIST_IMPORT_CHECK, import_results, missing_library, packages_for, stdlib_gaps
from ..runners.emulated import EmulatedRunner
from ..runners.rootfs import debian_arch
from ..settings.recipe import Recipe
from .pep517 import excerpt, index_env

# Imports each module in one interpreter; prints one line per failure.
_IMPORT_CHECK = r"""
import importlib, sys, traceback
failed = 0
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        print(f"import {name}: ok")
    except BaseException as e:
        failed += 1
        traceback.print_exc()
        print(f"IMPORT FAILED {name}: {type(e).__name__}: {e}")
sys.exit(1 if failed else 0)
"""


@contextlib.contextmanager
def verify_place(config, runner: Runner, recipe: Recipe, *, log: IO[str]) -> Iterator[Runner]:
    """Where ``recipe``'s wheels are verified: a fresh layer of the clean system when ``runner`` builds
    in a rootfs, emulated or native (``runtime.debian`` installed into it first), else ``runner`` itself
    (``--target host``, ``own-system``).

    Raises EnvironmentProblem naming the recipe file when a ``runtime.debian`` package does not
    exist for the target arch.
    """
    if not isinstance(runner, EmulatedRunner):
        yield runner
        return
    why = f"runtime.debian of {config.paths.recipes / recipe.name / 'recipe.toml'}"
    with clean_layer(config, recipe.runtime.debian, log=log, why=why) as clean:
        yield clean


def clean_interpreter(runner: Runner, version: str, interpreter: str) -> str:
    """The interpreter for Python ``version`` where ``runner`` verifies (the build's one on the host)."""
    if not isinstance(runner, EmulatedRunner) or runner.layer is None:
        return interpreter
    found = runner.rootfs.pythons_in(runner.rootfs.path)
    if version not in found:
        raise EnvironmentProblem(
            f"the {runner.rootfs.label} at {runner.rootfs.path} has no Python {version}; add it with: "
            f"nox -s rootfs -- update"
        )
    return found[version]


def verified_on(runner: Runner, version: str) -> dict:
    """The record's ``verified``: the system the wheel was verified on (suite, glibc, runtime packages)."""
    facts = runner.describe()
    system = facts.get("rootfs") or {}
    if not system.get("layer"):
        return {"system": "host" if runner.name == "native" else runner.name, "arch": facts.get("arch"),
                "libc": facts.get("libc"), "python": version}
    return {"system": system["system"], "arch": facts.get("arch"), "suite": system.get("suite"),
            "variant": system.get("variant"), "glibc": system.get("glibc"), "python": version,
            "runtime_debian": system.get("layer_packages") or {}}


def verify_wheel(config, runner, tools, *, recipe: Recipe, version: str, interpreter: str, wheel: Path,
                 find_links: Path | None, workdir: Path, log: IO[str], pinned: Sequence[Path] = ()) -> list[str]:
    """Install ``wheel`` in a bare venv and run imports and commands; return notes for the log/record.

    ``pinned``: our wheels of the recipe's dependencies (for this Python). With uv,
    when the wheel needs one of them, that very file is installed (a constraint
    naming it), never the index's build or a newer release; a requirement it cannot
    meet fails the verify. pip's constraints take no file names: there our wheels
    are only offered beside the index (--find-links).
    """
    vdir = workdir / "verify" / f"py{version}"
    shutil.rmtree(vdir, ignore_errors=True)
    cwd = vdir / "cwd"
    cwd.mkdir(parents=True)
    venv = vdir / "venv"
    runner.run([interpreter, "-m", "venv", "--without-pip", str(venv)], cwd=vdir, log=log)
    py = str(venv / "bin" / "python")

    # The tools venv's installer, as for build.requires: uv when it has it (under
    # emulation pip's own start-up costs ~3 s more than uv's whole install).
    install = tools.install_cmd(py, [], config)
    if find_links and any(find_links.glob("*.whl")):
        install += ["--find-links", str(find_links)]
    if pinned and tools.installer == "uv":
        # With --find-links alone uv took PyPI's newer release (or its build of the
        # same version) over ours; a constraint that names our file leaves it no choice.
        constraints = vdir / "constraints.txt"
        constraints.write_text("".join(f"{parse_wheel_filename(w.name)[0]} @ {Path(os.path.abspath(w)).as_uri()}\n"
                                       for w in pinned))
        install += ["--constraint", str(constraints)]
    install += [str(wheel), *recipe.test.requires]
    # The configured indexes, and nothing else of this machine's pip setup.
    # UV_LINK_MODE: the uv cache is on another filesystem; copy without a warning.
    env = {**bare_env(venv), **index_env(config), "UV_LINK_MODE": "copy"}
    if tools.installer == "uv":
        # uv has no --prefer-binary: resolve with wheels only first (an older release
        # with a wheel beats a newer sdist, as pip's --prefer-binary does), and only
        # when no wheel-only solution exists, allow source builds.
        proc = runner.run([*install, "--no-build"], cwd=cwd, env=env, log=log, check=False)
        if proc.returncode != 0:
            proc = runner.run(install, cwd=cwd, env=env, log=log, check=False)
    else:
        proc = runner.run(install, cwd=cwd, env=env, log=log, check=False)
    if proc.returncode != 0:
        raise VerifyError(
            f"{recipe.name}: installing {wheel.name} into a bare venv (Python {version}) failed: "
            f"{excerpt(proc.stdout)}"
        )
    notes = []
    # pip says "Building wheel for X", uv "Built X==1.0".
    built = [l.strip() for l in proc.stdout.splitlines() if l.strip().startswith(("Building wheel for", "Built "))]
    if built:
        notes.append("dependencies built from source during verify: " + "; ".join(built))

    where = _where(runner, version)
    imports: Sequence[str] = recipe.test.imports
    if imports:
        proc = runner.run([py, "-c", _IMPORT_CHECK, *imports], cwd=cwd, env=bare_env(venv), log=log, check=False)
        if proc.returncode != 0:
            failed = dict(l.removeprefix("IMPORT FAILED ").split(": ", 1) for l in proc.stdout.splitlines()
                          if l.startswith("IMPORT FAILED") and ": " in l)
            raise VerifyError(_import_failure(config, runner, recipe, where, failed or {"?": excerpt(proc.stdout)}))
    # Every module of the wheel itself, compiled ones above all (test.imports may name only the package).
    dist = str(parse_wheel_filename(wheel.name)[0])
    proc = runner.run([py, "-I", "-c", DIST_IMPORT_CHECK, dist], cwd=cwd, env=bare_env(venv), log=log, check=False)
    results = import_results(proc.stdout)
    if results is None:
        raise VerifyError(_import_failure(config, runner, recipe, where,
                                          {"(the modules of the wheel)": excerpt(proc.stdout)}))
    failed = {m: e for m, e in results.items() if e}
    if failed:
        raise VerifyError(_import_failure(config, runner, recipe, where, failed))
    notes.append(f"verified on {where}: imported {len(results)} modules of the wheel"
                 + (f" ({', '.join(sorted(results))})" if len(results) <= 12 else ""))
    notes += [f"not imported: {module} needs the standard-library module {gap}, which this Python lacks (Debian "
              f"ships some apart: tkinter in python3-tk); users who import it install that"
              for module, gap in stdlib_gaps(proc.stdout).items()]
    for command in recipe.test.commands:
        proc = runner.run(["sh", "-c", command], cwd=cwd, env=bare_env(venv), log=log, check=False)
        if proc.returncode != 0:
            raise VerifyError(
                # what it said first: a long command would push it out of a shortened message (the catalog's)
                f"{recipe.name}: test command failed in a bare venv (Python {version}, exit {proc.returncode}): "
                f"{excerpt(proc.stdout)}; the command: {command!r}; the wheel was not stored. Fix: correct the command in "
                f"test.commands of {recipe.path}, or patch the source (patches/{recipe.name}/) if the wheel is wrong"
            )
    if not imports and not recipe.test.commands:
        notes.append("the recipe has no test.imports or test.commands: only installation was checked")
    return notes


def _where(runner: Runner, version: str) -> str:
    """Words for where the verify runs: "the clean riscv64 sid system (Python 3.13)", "a bare venv (...)"."""
    if isinstance(runner, EmulatedRunner) and runner.layer is not None:
        return f"a bare venv on the clean {runner.rootfs.arch} {runner.rootfs.suite} system (Python {version})"
    return f"a bare venv (Python {version})"


def _import_failure(config, runner: Runner, recipe: Recipe, where: str, failed: Mapping[str, str]) -> str:
    """ONE message for failed imports: the module, the error, and for a missing library its soname and
    the Debian package of the target arch that ships it, to add to runtime.debian."""
    recipe_file = config.paths.recipes / recipe.name / "recipe.toml"
    # A missing library explains the rest (a shim module that re-exports the extension fails with it).
    module, error = min(failed.items(), key=lambda item: not missing_library(item[1]))
    more = f" (and {len(failed) - 1} more module{'s' if len(failed) > 2 else ''})" if len(failed) > 1 else ""
    head = f"{recipe.name}: import test failed in {where}: {module}: {error.strip()[:400]}{more}; the wheel was not stored"
    soname = next((lib for lib in map(missing_library, failed.values()) if lib), "")
    if not soname:
        return (f"{head}. A missing module belongs in test.requires or the project's dependencies; a compiled "
                f"module that is missing or cannot load means the build skipped or broke it (see the build log)")
    if isinstance(runner, EmulatedRunner):
        mirror, suite, arch = runner.rootfs.mirror, runner.rootfs.suite, runner.rootfs.debian_arch
    else:
        mirror, suite, arch = config.emulation.mirror, config.emulation.suite, debian_arch(runner.arch())
    debs = packages_for(config, [soname], mirror=mirror, suite=suite, arch=arch)[soname]
    provider = (f"Debian {suite} {arch} ships it in {' | '.join(debs[:3])}" if debs
                else f"no Debian {suite} {arch} package ships it")
    fix = f'runtime.debian = ["{debs[0]}"]' if debs else "runtime.debian"
    return (f"{head}. The wheel needs {soname} at run time and neither bundles nor declares it: {provider}. "
            f"Add {fix} to [runtime] in {recipe_file} (or let auditwheel bundle it: drop it from repair.exclude)")
