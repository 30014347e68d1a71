"""The emulated runner: build commands run in a Debian rootfs of the target arch under QEMU.

The kernel's binfmt_misc hands every riscv64 ELF file to ``qemu-riscv64-static``
(registered with the F flag, so the interpreter is found even inside a chroot),
and ``rootfs.Rootfs`` provides the Debian riscv64 root filesystem. Each command
runs in a fresh mount + PID namespace, chrooted into the rootfs, with the
project's build/ and cache/ folders bound at the same absolute paths, so the
pipeline passes host paths through unchanged and finds its results where it
expects them.

``emulation_problem(config)`` is what ``runner.select_runner`` asks before
choosing this runner: None when emulation works (after mounting binfmt_misc
and enabling the qemu entry where that is all that is missing), else one
message that says what to install or run.
"""

from __future__ import annotations

import os
import platform
import secrets
import shlex
import shutil
import subprocess
import threading
from pathlib import Path
from typing import IO, Sequence

from .. import ui
from ..settings.target import host_arch
from ..errors import EnvironmentProblem
from .rootfs import Rootfs, human_age, remove_tree, run_streamed

BINFMT = Path("/proc/sys/fs/binfmt_misc")
INSTALL_HINT = "apt-get install -y qemu-user-static binfmt-support mmdebstrap arch-test"

# uname -m -> the qemu-user name of that arch (binfmt entry "qemu-<name>").
QEMU_NAME = {
    "riscv64": "riscv64",
    "aarch64": "aarch64",
    "x86_64": "x86_64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "armv7l": "arm",
    "i686": "i386",
    "loongarch64": "loongarch64",
}


# --- is emulation usable here? --------------------------------------------------------

def _binfmt_entry(qemu: str) -> dict | None:
    """The binfmt_misc registration of qemu-<arch>: {"enabled": bool, "interpreter": str, "flags": str}."""
    path = BINFMT / f"qemu-{qemu}"
    try:
        text = path.read_text()
    except OSError:
        return None
    entry = {"enabled": text.startswith("enabled"), "interpreter": "", "flags": ""}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key in ("interpreter", "flags:"):
            entry[key.rstrip(":")] = value.strip()
    return entry


def _binfmt_problem(arch: str) -> str | None:
    """Mount binfmt_misc and enable qemu-<arch> when that is all that is missing; else say what to do."""
    qemu = QEMU_NAME.get(arch)
    if qemu is None:
        return f"no QEMU user-mode emulator is known for {arch}"
    if not (BINFMT / "status").exists():
        proc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], capture_output=True, text=True)
        if proc.returncode != 0 or not (BINFMT / "status").exists():
            return (f"binfmt_misc is not mounted and mounting it failed ({proc.stderr.strip() or 'no error text'}): run "
                    f"`mount -t binfmt_misc binfmt_misc {BINFMT}` as root (in a container: on the host, or start the "
                    f"container with --privileged)")
    entry = _binfmt_entry(qemu)
    if entry is None or not entry["enabled"]:
        static = shutil.which(f"qemu-{qemu}-static") or Path(f"/usr/libexec/qemu-binfmt/{qemu}-binfmt-P").exists()
        if not static:
            return f"QEMU user-mode emulation is not installed: {INSTALL_HINT}"
        if not shutil.which("update-binfmts"):
            return f"qemu-{qemu} is not registered with binfmt_misc and update-binfmts is missing: {INSTALL_HINT}"
        proc = subprocess.run(["update-binfmts", "--enable", f"qemu-{qemu}"], capture_output=True, text=True)
        entry = _binfmt_entry(qemu)
        if entry is None or not entry["enabled"]:
            return (f"enabling qemu-{qemu} in binfmt_misc failed ({(proc.stderr or proc.stdout).strip() or 'no output'}): "
                    f"run `update-binfmts --enable qemu-{qemu}` as root (and `{INSTALL_HINT}` if it says the "
                    f"format is unknown)")
    if "F" not in entry["flags"]:
        return (f"qemu-{qemu} is registered with binfmt_misc without the F (fix-binary) flag, so its interpreter "
                f"{entry['interpreter']} cannot be found inside a chroot: install qemu-user-static (which registers "
                f"with F) and run `update-binfmts --enable qemu-{qemu}`")
    return None


def emulation_problem_for_rootfs(rootfs: Rootfs, *, creating: bool = False) -> str | None:
    if platform.system() != "Linux":
        return "emulated builds need a Linux host (binfmt_misc, chroot and mount namespaces)"
    if os.geteuid() != 0:
        return ("emulated builds need root (mmdebstrap, chroot and bind mounts): run the command as root, "
                "e.g. `sudo -E nox -s build-NAME`")
    for tool, package in (("unshare", "util-linux"), ("chroot", "coreutils"), ("dpkg-query", "dpkg")):
        if not shutil.which(tool):
            return f"{tool} is missing: apt-get install -y {package}"
    if rootfs.arch != host_arch():
        problem = _binfmt_problem(rootfs.arch)
        if problem:
            return problem
    if (creating or not rootfs.ready) and not shutil.which("mmdebstrap"):
        return f"mmdebstrap is missing (it makes the {rootfs.arch} rootfs): {INSTALL_HINT}"
    return None


def emulation_problem(config) -> str | None:
    """None when emulated builds can run here; else ONE message saying what to install or run."""
    try:
        rootfs = Rootfs(config)
    except EnvironmentProblem as e:
        return str(e)
    return emulation_problem_for_rootfs(rootfs)


def qemu_version(arch: str) -> str:
    exe = shutil.which(f"qemu-{QEMU_NAME.get(arch, arch)}-static")
    if not exe:
        return ""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.splitlines()[0].strip() if out else ""


# --- the runner -------------------------------------------------------------------------

class EmulatedRunner:
    """Runs commands in the ``[emulation]`` rootfs of the target arch (QEMU user mode)."""

    name = "emulated"

    def __init__(self, config):
        self.config = config
        self.rootfs = Rootfs(config)
        self.id = f"emulated-{self.rootfs.arch}-{self.rootfs.suite}"
        # build/ and cache/ appear inside at the same absolute paths.
        self.binds = _outermost([config.paths.build, config.paths.cache])
        self._warned_age = False
        self._lock = threading.Lock()

    def arch(self) -> str:
        return self.rootfs.arch

    def _ready(self, log: IO[str] | None = None) -> dict:
        with self._lock:
            stamp = self.rootfs.ensure(log=log)
            if not self._warned_age and self.rootfs.max_age_days:
                info_age = _age_seconds(stamp.get("updated_at") or stamp["created_at"])
                if info_age > self.rootfs.max_age_days * 86400:
                    ui.warn(f"the {self.rootfs.arch} {self.rootfs.suite} rootfs was last updated "
                            f"{human_age(info_age)} ago; refresh it with: nox -s rootfs -- update")
                self._warned_age = True
            return stamp

    def pythons(self, wanted: Sequence[str]) -> dict[str, str]:
        """The wanted X.Y the rootfs has; ones the suite offers but the rootfs lacks are installed first."""
        stamp = self._ready()
        have = self.rootfs._pythons_in(self.rootfs.path)
        offered = stamp.get("suite_pythons") or []
        todo = [v for v in wanted if v not in have and v in offered]
        if todo:
            self.rootfs.install([p for v in todo for p in (f"python{v}", f"python{v}-dev", f"python{v}-venv")],
                                why=f"Python {', '.join(todo)} from target.pythons")
            have = self.rootfs._pythons_in(self.rootfs.path)
        return {v: have[v] for v in wanted if v in have}

    def run(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None, log: IO[str],
            check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
        self._ready(log)
        cwd = Path(os.path.abspath(cwd))
        if not any(cwd == b or b in cwd.parents for b in self.binds):
            raise EnvironmentProblem(
                f"the emulated runner runs commands only in folders under {', '.join(map(str, self.binds))} "
                f"(they are shared with the rootfs); {cwd} is not one of them"
            )
        for b in self.binds:
            b.mkdir(parents=True, exist_ok=True)
        _sweep_run_dirs(self.rootfs)
        with self.rootfs.in_use(log=log):
            # A private /tmp per command: concurrent builds never meet, and nothing accumulates in the rootfs.
            tmp = self.rootfs.parent / f".{self.rootfs.name}.run-{os.getpid()}-{secrets.token_hex(4)}"
            tmp.mkdir(mode=0o1777)
            os.chmod(tmp, 0o1777)
            try:
                # pip's and uv's caches go to cache/, not into the rootfs (which stays small and disposable).
                full_env = {"XDG_CACHE_HOME": str(self.config.paths.cache / "xdg" / self.id), **(env or {})}
                cmd = self.rootfs.enter_argv(argv, cwd=str(cwd), env=full_env, binds=self.binds, tmp=tmp)
                display = f"[{self.id}] {shlex.join(map(str, argv))}"
                return run_streamed(cmd, display=display, cwd=cwd, log=log, check=check, timeout=timeout)
            finally:
                remove_tree(tmp)

    def missing_debian(self, packages: Sequence[str]) -> list[str]:
        """Installs the missing ones on demand (apt inside the rootfs), so nothing stays missing.

        A package Debian does not build for the target arch raises EnvironmentProblem naming it.
        """
        if not packages:
            return []
        self._ready()
        self.rootfs.install(list(packages), why="the recipe's build.debian")
        return self.rootfs.missing(list(packages))

    def describe(self) -> dict:
        stamp = self.rootfs.stamp() or {}
        libc = f"glibc {stamp['glibc']}" if stamp.get("glibc") else ""
        return {
            "runner": self.name,
            "emulated": True,
            "emulator": qemu_version(self.rootfs.arch),
            "hostname": platform.node(),
            "host_arch": host_arch(),
            "arch": self.rootfs.arch,
            "kernel": platform.release(),
            "libc": libc,
            "rootfs": {
                "suite": stamp.get("suite", self.rootfs.suite),
                "mirror": stamp.get("mirror", self.rootfs.mirror),
                "variant": stamp.get("variant"),
                "glibc": stamp.get("glibc"),
                "gcc": stamp.get("gcc"),
                "pythons": stamp.get("pythons"),
                "created_at": stamp.get("created_at"),
                "updated_at": stamp.get("updated_at"),
                "installed_on_demand": stamp.get("installed_on_demand"),
                "path": str(self.rootfs.path),
            },
        }


def _sweep_run_dirs(rootfs: Rootfs) -> None:
    """Remove the per-command /tmp folders of processes that died without cleaning up (kill -9)."""
    for d in rootfs.parent.glob(f".{rootfs.name}.run-*"):
        try:
            pid = int(d.name.split("-")[-2])
        except ValueError:
            continue
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            try:
                remove_tree(d)
            except Exception:  # someone else swept it first, or a mount is still there: leave it
                pass


def _outermost(paths: Sequence[Path]) -> list[Path]:
    """Absolute paths, without those inside another one (binding the outer one shows them)."""
    absolute = sorted({Path(os.path.abspath(p)) for p in paths}, key=lambda p: len(p.parts))
    out: list[Path] = []
    for p in absolute:
        if not any(p == o or o in p.parents for o in out):
            out.append(p)
    return out


def _age_seconds(stamp_time: str) -> float:
    import datetime as dt

    t = dt.datetime.fromisoformat(stamp_time.replace("Z", "+00:00"))
    return (dt.datetime.now(dt.timezone.utc) - t).total_seconds()
