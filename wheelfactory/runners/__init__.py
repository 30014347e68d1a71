"""Where commands run: this machine, a rootfs of the target arch (emulated, or native on a board), or a container.

Owns the ``Runner`` Protocol and ``select_runner``, one module per runner
(``native``, ``emulated`` with its ``rootfs`` and ``binfmt``, ``container``).
``emulated.EmulatedRunner`` runs a Debian rootfs of the target arch: under QEMU
on another host (name "emulated"), natively on a machine of that arch (name
"rootfs").
The build steps never call subprocess for build, repair or verify commands;
they ask a Runner, and every runner runs its commands through
``_util.proc.run_streamed``.

May import: ``settings``, ``_util``, ``errors``, ``ui``. Nothing from ``build``
or anything above it (the cibuildwheel build strategy lives in ``build``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Protocol

from .._util.proc import Env
from ..errors import EnvironmentProblem
from ..settings.factory import Config
from ..settings.target import host_arch
from .container import ContainerRunner
from .emulated import EmulatedRunner, emulation_problem
from .native import NativeRunner

__all__ = ["Runner", "select_runner", "NativeRunner", "EmulatedRunner", "ContainerRunner"]


class Runner(Protocol):
    """Runs the build's commands on the machine the wheels are for (or one that behaves as it).

    Paths: a runner sees host paths under the project's build/ and cache/ folders
    at the same absolute paths, so callers pass host paths through unchanged.
    """

    name: str  # "native" (own system), "emulated" (rootfs under QEMU), "rootfs" (native rootfs), "container"
    # Stable identity of the machine the commands run on, e.g. "native-x86_64",
    # "emulated-riscv64-sid", "rootfs-x86_64-sid": keys per-runner caches such as the tools venvs.
    id: str

    def arch(self) -> str:
        """``uname -m`` of the machine the commands run on, e.g. "riscv64"."""

    def pythons(self, wanted: Sequence[str]) -> dict[str, str]:
        """Of the wanted "X.Y" versions, those this runner has: {"3.13": "/usr/bin/python3.13"}."""

    def run(self, argv: Sequence[str], *, cwd: Path, env: Env | None = None, log: IO[str], check: bool = True,
            timeout: float | None = None, network: bool = True) -> subprocess.CompletedProcess:
        """Run ``argv`` in ``cwd``: ``_util.proc.run_streamed`` where the runner runs commands.

        ``env``: variables changed on top of the runner's base environment (the
        host process's for native; a clean Debian one inside the rootfs for
        emulated); a None value unsets one (``_util.proc.environment``).
        stdout and stderr, merged, stream line by line into ``log`` (with a
        ``$ command`` line before and an ``[exit N]`` line after) and come back
        in ``.stdout``. ``timeout`` in seconds. ``network=False``: with the network cut off
        (a network namespace) where :meth:`cuts_network` says the runner can.

        Raises subprocess.CalledProcessError on a non-zero exit when ``check``,
        subprocess.TimeoutExpired after the timeout (the command's whole process
        tree killed), EnvironmentProblem when the runner itself cannot run it.
        """

    def cuts_network(self) -> bool:
        """Whether ``run(network=False)`` runs the command with the network cut off (native: as root only)."""

    def missing_debian(self, packages: Sequence[str]) -> list[str]:
        """The Debian packages of ``packages`` that are not installed where builds run.

        Raises EnvironmentProblem when that cannot be known or fixed (no dpkg,
        a package the target arch does not have).
        """

    def describe(self) -> dict:
        """Facts for the build record's ``host``: runner, hostname, arch, kernel, libc (and rootfs, emulator)."""


def select_runner(config: Config, choice: str | None = None) -> Runner:
    """The runner for this config: a rootfs of the target arch (under QEMU on another host), or this
    machine's own system where that is allowed.

    ``choice`` (or ``build.runner`` in factory.toml): auto | native | emulated | container.
    "auto" on a machine of the target arch (a board) builds in a native rootfs of that arch
    (``EmulatedRunner`` without QEMU, named "rootfs"), so nothing installed on the machine
    gets into the wheels; on its own system (``NativeRunner``) only for ``--target host``
    (policy "best") or where ``[build] own-system = true`` allows it. "native" is always the
    machine's own system; "emulated" the rootfs of the target arch (natively on a board).
    Raises EnvironmentProblem, saying what to do, when the chosen runner cannot work here.
    """
    choice = choice or config.build.runner
    host, target = host_arch(), config.arch
    own_system = config.policy == "best" or config.build.own_system
    if choice == "native" or (choice == "auto" and host == target and own_system):
        if host != target:
            raise EnvironmentProblem(
                f"this host is {host} but the target arch is {target}: a native build cannot produce "
                f"{target} wheels. Use the emulated runner (--runner emulated), build on a {target} "
                f"machine, or build for this machine with --target host"
            )
        if not own_system:
            raise EnvironmentProblem(
                f"--runner native builds {target} wheels for {config.policy} on this machine's own system, "
                f"where whatever is installed can get into the wheels. Allow it, recorded in each wheel's record, "
                f"with own-system = true in [build] of {config.where}; or leave the runner on auto to build in a "
                f"native {target} rootfs; or build for this machine with --target host"
            )
        return NativeRunner()
    if choice in ("auto", "emulated"):
        problem = emulation_problem(config)
        if problem and host == target:
            raise EnvironmentProblem(
                f"a build of {target} wheels for {config.policy} runs in a native {target} Debian rootfs, so "
                f"that nothing installed on this machine gets into the wheels; {problem}. Or build on this "
                f"machine's own system, recorded as such, with own-system = true in [build] of {config.where}, "
                f"or build for this machine with --target host"
            )
        if problem:
            hint = "" if choice == "emulated" else " Or build for this machine with --target host."
            raise EnvironmentProblem(f"this host is {host} and the target is {target}; {problem}{hint}")
        return EmulatedRunner(config)
    if choice == "container":
        return ContainerRunner(config)
    raise EnvironmentProblem(f"unknown runner {choice!r}; use auto, native, emulated or container")
