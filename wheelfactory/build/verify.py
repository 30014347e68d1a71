"""Stage 4: install the repaired wheel into a bare venv and run the recipe's tests.

Bare means: a fresh venv of the target interpreter, no system site-packages, no
user site, no PYTHONPATH, no pip or uv configuration of this machine
(``_util.venv.bare_env``: what a user's fresh board gives pip), run from an
empty folder (so nothing is imported from the source tree). Dependencies come from the configured indexes with
binaries preferred, plus the wheels of dependency recipes (a --find-links
folder under build/). A failure here keeps the wheel out of dist/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import IO, Sequence

from packaging.utils import parse_wheel_filename

from .._util.venv import bare_env
from ..errors import VerifyError
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

    imports: Sequence[str] = recipe.test.imports
    if imports:
        proc = runner.run([py, "-c", _IMPORT_CHECK, *imports], cwd=cwd, env=bare_env(venv), log=log, check=False)
        if proc.returncode != 0:
            failed = [l.removeprefix("IMPORT FAILED ") for l in proc.stdout.splitlines() if l.startswith("IMPORT FAILED")]
            raise VerifyError(
                f"{recipe.name}: import test failed in a bare venv (Python {version}): "
                f"{failed[0] if failed else excerpt(proc.stdout)}; the wheel was not stored. A missing shared "
                f"library belongs in runtime.debian (and repair.exclude), a missing module in test.requires "
                f"or the project's dependencies"
            )
    for command in recipe.test.commands:
        proc = runner.run(["sh", "-c", command], cwd=cwd, env=bare_env(venv), log=log, check=False)
        if proc.returncode != 0:
            raise VerifyError(
                f"{recipe.name}: test command failed in a bare venv (Python {version}, exit {proc.returncode}): "
                f"{command!r}: {excerpt(proc.stdout)}; the wheel was not stored. Fix: correct the command in "
                f"test.commands of {recipe.path}, or patch the source (patches/{recipe.name}/) if the wheel is wrong"
            )
    if not imports and not recipe.test.commands:
        notes.append("the recipe has no test.imports or test.commands: only installation was checked")
    return notes
