"""The container runner: commands in the manylinux image, through Docker or Podman.

``manylinux_2_39_riscv64`` is the reference environment of the policy the
wheels claim. Recipes are built there by cibuildwheel, which builds, repairs
and tests a whole recipe at once: that is a build strategy
(build/cibuildwheel.py, chosen by ``pipeline.strategy_for``), not this
module's business. Here: which engine can run the image (:func:`engine_problem`),
one command in the image (:meth:`ContainerRunner.run`) and the facts for the
records (:meth:`ContainerRunner.describe`).
"""

from __future__ import annotations

import platform
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import IO

from .._util.proc import Env, run_streamed
from ..errors import EnvironmentProblem
from ..settings.target import host_arch

ENGINES = ("docker", "podman")


def engine_problem(config) -> str | None:
    """Why no container build can run here (None when one can)."""
    wanted = config.container.engine
    if wanted and wanted not in ENGINES:
        return f"[container].engine must be docker or podman, not {wanted!r}"
    candidates = [wanted] if wanted else list(ENGINES)
    found = [e for e in candidates if shutil.which(e)]
    if not found:
        return (f"no container engine: {' or '.join(candidates)} is not installed "
                f"(apt-get install -y podman, or docker.io)")
    engine = found[0]
    try:
        proc = subprocess.run([engine, "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return f"`{engine} info` did not answer within 30 s: the engine is stuck"
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines()
        return (f"{engine} is installed but cannot run containers ({said[-1] if said else 'exit ' + str(proc.returncode)}); "
                f"start its daemon (systemctl start {engine}) or set [container].engine to another engine")
    if config.arch != host_arch():
        binfmt = Path(f"/proc/sys/fs/binfmt_misc/qemu-{config.arch}")
        if not binfmt.exists():
            return (f"this host is {host_arch()} and the image is {config.arch}: containers of that arch need "
                    f"QEMU registered with binfmt_misc (apt-get install -y qemu-user-static binfmt-support)")
    return None


def find_engine(config) -> str:
    """The engine to use (``[container].engine``, else docker or podman); EnvironmentProblem when none can."""
    problem = engine_problem(config)
    if problem:
        raise EnvironmentProblem(f"the container runner cannot build here: {problem}")
    wanted = config.container.engine
    return wanted or next(e for e in ENGINES if shutil.which(e))


class ContainerRunner:
    """The manylinux image of ``[container].image`` (``--runner container``)."""

    name = "container"

    def __init__(self, config):
        self.config = config
        self.engine = find_engine(config)
        self.image = config.container.image
        self.id = f"container-{config.arch}-{self.image.split('/')[-1].split(':')[0].split('@')[0]}"

    def arch(self) -> str:
        return self.config.arch

    def pythons(self, wanted: Sequence[str]) -> dict[str, str]:
        """The manylinux images hold every CPython cibuildwheel builds, under /opt/python."""
        out = {}
        for v in wanted:
            tag = "cp" + "".join(v.split(".")[:2])
            out[v] = f"/opt/python/{tag}-{tag}/bin/python"
        return out

    def run(self, argv, *, cwd: Path, env: Env | None = None, log: IO[str], check: bool = True,
            timeout: float | None = None) -> subprocess.CompletedProcess:
        """One command in the image, with ``cwd`` mounted at the same path.

        ``env`` sets variables in the container (a None value: left as the image has it).
        """
        cmd = [self.engine, "run", "--rm", "-v", f"{cwd}:{cwd}", "-w", str(cwd)]
        for k, v in (env or {}).items():
            if v is not None:
                cmd += ["-e", f"{k}={v}"]
        cmd += [self.image, *map(str, argv)]
        return run_streamed(cmd, cwd=cwd, log=log, display=shlex.join(cmd), check=check, timeout=timeout)

    def missing_debian(self, packages: Sequence[str]) -> list[str]:
        return []  # the image is not Debian: build.dnf (or the mapped names) go to before-all

    def describe(self) -> dict:
        return {"runner": self.name, "engine": self.engine, "image": self.image, "hostname": platform.node(),
                "arch": self.config.arch, "host_arch": host_arch(), "cibuildwheel": version("cibuildwheel")}
