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
        missing = [p for p in packages if p.split(":")[0] not in installed]
        absent = _without_candidate(missing)
        if absent:
            rest = [p for p in missing if p not in absent]
            raise EnvironmentProblem(
                f"Debian package{'s' * (len(absent) > 1)} {', '.join(absent)} (the recipe's build.debian) "
                f"{'are' if len(absent) > 1 else 'is'} not in this host's Debian ({_os_name()}: apt-cache policy "
                f"has no candidate): build for the target instead (the emulated runner's Debian has its own "
                f"packages), or add an apt source that has {'them' if len(absent) > 1 else 'it'}"
                + (f"; the others install with: apt-get install -y {' '.join(rest)}" if rest else ""))
        return missing

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


def _without_candidate(packages: Sequence[str]) -> list[str]:
    """Those of ``packages`` that apt on this host cannot install: ``apt-cache policy`` prints no block
    for them, or "Candidate: (none)". Empty when apt-cache is not there (nothing can be said)."""
    if not packages or not shutil.which("apt-cache"):
        return []
    out = subprocess.run(["apt-cache", "policy", *packages], capture_output=True, text=True, check=False).stdout
    candidates: dict[str, str] = {}
    name = ""
    for line in out.splitlines():
        if line and not line[0].isspace() and line.endswith(":"):
            name = line[:-1].split(":")[0]
        elif name and line.strip().startswith("Candidate:"):
            candidates[name] = line.split(":", 1)[1].strip()
    return [p for p in packages if candidates.get(p.split(":")[0], "(none)") == "(none)"]


def _os_name() -> str:
    """PRETTY_NAME of /etc/os-release ("this system" without it)."""
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "this system")
    except OSError:
        return "this system"


def _python_version(exe: str) -> str:
    """X.Y of the interpreter ``exe`` ("" when it does not start within a minute)."""
    try:
        proc = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""
