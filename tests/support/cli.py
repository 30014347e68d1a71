"""Running the commands as a user does (`invoke …`, the build behind `nox -s build-NAME`) in a
subprocess against a throwaway project, and checking the one error line they print."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def run_invoke(root: Path, *argv: str) -> subprocess.CompletedProcess:
    """`invoke ARGV…` on the project ``root`` (WHEELFACTORY_ROOT)."""
    return subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), *argv],
                          env={**env(), "WHEELFACTORY_ROOT": str(root)}, capture_output=True, text=True, timeout=600)


# What `nox -s build-NAME` runs (noxfile: cli.run(build_command, …)), without nox's venv:
# argv = [python, -c, BUILD, ROOT, build arguments…]
BUILD = ("import sys; from pathlib import Path; from wheelfactory import cli; from wheelfactory.cli import build; "
         "cli.run(build.build_command, sys.argv[2:], root=Path(sys.argv[1]))")


def env() -> dict[str, str]:
    """This process's environment with this checkout first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def run_build(root: Path, *argv: str) -> subprocess.CompletedProcess:
    """The build command on the project ``root`` (``argv``: its arguments)."""
    return subprocess.run([sys.executable, "-c", BUILD, str(root), *argv], env=env(),
                          capture_output=True, text=True, timeout=600)


def one_error(r: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line of a command that failed as bad input must: exit 1, no traceback."""
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]
