"""Where build commands run: the host itself, an emulated riscv64 rootfs, or a container.

The pipeline never calls subprocess directly for build, repair or verify steps;
it asks a Runner. A runner sees host paths under its work folder at the same
absolute path, so the pipeline passes paths through unchanged.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO, Protocol, Sequence

from .._util.proc import environment
from ..errors import EnvironmentProblem


class Runner(Protocol):
    name: str  # "native", "emulated", "container"
    # Stable identity of the machine the commands run on, e.g. "native-x86_64",
    # "emulated-riscv64-sid": keys per-runner caches such as the tools venvs.
    id: str

    def arch(self) -> str:
        """uname -m of the machine the commands run on."""

    def pythons(self, wanted: Sequence[str]) -> dict[str, str]:
        """Of the wanted X.Y versions, those this runner has: version -> interpreter path."""

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        log: IO[str],
        check: bool = True,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess:
        """Run argv; stdout+stderr go to ``log`` (and are returned in ``.stdout``)."""

    def missing_debian(self, packages: Sequence[str]) -> list[str]:
        """The Debian packages of ``packages`` that are not installed where builds run."""

    def describe(self) -> dict:
        """Facts for the build record (host, kernel, glibc, rootfs, …)."""


def _run_logged(argv, *, cwd, env, log, check, timeout, prefix=()) -> subprocess.CompletedProcess:
    """Run a command, teeing its output into the log file; raise on failure if check."""
    cmd = [*prefix, *map(str, argv)]
    log.write(f"\n$ {' '.join(cmd)}\n")
    log.flush()
    full_env = environment(env)  # a None value unsets a variable
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    log.write(proc.stdout)
    log.write(f"[exit {proc.returncode}]\n")
    log.flush()
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout)
    return proc


class NativeRunner:
    """Runs commands on this machine."""

    name = "native"

    @property
    def id(self) -> str:
        return f"native-{platform.machine()}"

    def arch(self) -> str:
        return platform.machine()

    def pythons(self, wanted: Sequence[str]) -> dict[str, str]:
        found = {}
        for v in wanted:
            exe = shutil.which(f"python{v}")
            if exe:
                try:
                    real = subprocess.run(
                        [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                        capture_output=True, text=True, timeout=60,
                    )
                except (OSError, subprocess.TimeoutExpired):
                    continue
                if real.returncode == 0 and real.stdout.strip() == v:
                    found[v] = exe
        return found

    def run(self, argv, *, cwd, env=None, log, check=True, timeout=None):
        return _run_logged(argv, cwd=cwd, env=env, log=log, check=check, timeout=timeout)

    def missing_debian(self, packages: Sequence[str]) -> list[str]:
        if not packages:
            return []
        if not shutil.which("dpkg-query"):
            raise EnvironmentProblem(
                "the recipe needs Debian packages but dpkg-query is not available on this host; "
                "build on Debian or use the emulated runner (--runner emulated)"
            )
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *packages],
            capture_output=True, text=True,
        ).stdout
        installed = {line.split()[0].split(":")[0] for line in out.splitlines() if line.endswith(" installed")}
        return [p for p in packages if p.split(":")[0] not in installed]

    def describe(self) -> dict:
        libc = platform.libc_ver()
        return {
            "runner": self.name,
            "hostname": platform.node(),
            "arch": self.arch(),
            "kernel": platform.release(),
            "libc": f"{libc[0]} {libc[1]}".strip(),
        }


class Timer:
    """Elapsed seconds since creation (for the one-line-per-stage progress)."""

    def __init__(self):
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start


def select_runner(config, choice: str | None = None) -> Runner:
    """The runner for this config: native when the host is the target, emulated otherwise.

    ``choice`` (or ``build.runner`` in factory.toml): auto | native | emulated | container.
    """
    from ..settings.target import host_arch

    choice = choice or config.build.runner
    host, target = host_arch(), config.arch
    if choice == "native" or (choice == "auto" and host == target):
        if host != target:
            raise EnvironmentProblem(
                f"this host is {host} but the target arch is {target}: a native build cannot produce "
                f"{target} wheels. Use the emulated runner (--runner emulated), build on a {target} "
                f"machine, or build for this machine with --target host"
            )
        return NativeRunner()
    if choice in ("auto", "emulated"):
        from .emulated import EmulatedRunner, emulation_problem

        problem = emulation_problem(config)
        if problem:
            hint = "" if choice == "emulated" else " Or build for this machine with --target host."
            raise EnvironmentProblem(f"this host is {host} and the target is {target}; {problem}{hint}")
        return EmulatedRunner(config)
    if choice == "container":
        from .container import ContainerRunner

        return ContainerRunner(config)
    raise EnvironmentProblem(f"unknown runner {choice!r}; use auto, native, emulated or container")
