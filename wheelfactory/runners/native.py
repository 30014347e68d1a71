"""The native runner: build commands run on this machine, as they are."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from .._util.proc import Env, run_streamed
from ..errors import EnvironmentProblem


class NativeRunner:
    """Runs commands on this machine (see ``runners.Runner`` for the contract)."""

    name = "native"

    @property
    def id(self) -> str:
        return f"native-{platform.machine()}"

    def arch(self) -> str:
        return platform.machine()

    def pythons(self, wanted: Sequence[str]) -> dict[str, str]:
        """Of the wanted X.Y, those found on PATH as ``pythonX.Y`` that really are X.Y."""
        found = {}
        for v in wanted:
            exe = shutil.which(f"python{v}")
            if exe and _python_version(exe) == v:
                found[v] = exe
        return found

    def run(self, argv: Sequence[str], *, cwd: Path, env: Env | None = None, log: IO[str], check: bool = True,
            timeout: float | None = None, network: bool = True) -> subprocess.CompletedProcess:
        """``run_streamed`` on this machine; the base environment is this process's.

        ``network=False``: in a new network namespace (``unshare --net``: only a loopback that is
        down, so every connection fails at once) when :meth:`cuts_network`; else as it is."""
        if not network and self.cuts_network():
            argv = ["unshare", "--net", "--", *argv]
        return run_streamed(argv, cwd=cwd, env=env, log=log, check=check, timeout=timeout)

    def cuts_network(self) -> bool:
        """Whether ``run(network=False)`` really cuts the network: as root, with util-linux's unshare
        (a network namespace needs CAP_SYS_ADMIN; unprivileged user namespaces would change the build's uid)."""
        return os.geteuid() == 0 and shutil.which("unshare") is not None

    def missing_debian(self, packages: Sequence[str]) -> list[str]:
        """Asks dpkg; raises EnvironmentProblem on a host without dpkg-query."""
        if not packages:
            return []
        if not shutil.which("dpkg-query"):
            raise EnvironmentProblem(
                "the recipe needs Debian packages but dpkg-query is not available on this host; "
                "build on Debian or use the emulated runner (--runner emulated)"
            )
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *packages],
            capture_output=True, text=True, check=False,
        ).stdout
        installed = {line.split()[0].split(":")[0] for line in out.splitlines() if line.endswith(" installed")}
        return [p for p in packages if p.split(":")[0] not in installed]

    def describe(self) -> dict:
        libc = platform.libc_ver()
        return {
            "runner": self.name,
            "system": "own system",  # no rootfs: whatever this machine has installed (build.own_system)
            "hostname": platform.node(),
            "arch": self.arch(),
            "kernel": platform.release(),
            "libc": f"{libc[0]} {libc[1]}".strip(),
        }


def _python_version(exe: str) -> str:
    """X.Y of the interpreter ``exe`` ("" when it does not start within a minute)."""
    try:
        proc = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""
