"""Can this host run programs of another arch? binfmt_misc and QEMU user mode, checked and fixed.

The kernel's binfmt_misc hands every foreign ELF file to ``qemu-<arch>-static``;
registered with the F (fix-binary) flag, the interpreter is found even inside
a chroot. :func:`host_problem` says whether emulated builds can run here: None,
after mounting binfmt_misc and enabling the qemu entry where that is all that
is missing, or one message saying what to install or run.

A leaf of ``runners``: it imports nothing of the package, so both ``rootfs.py``
(before making a rootfs) and ``emulated.py`` (before choosing the runner) use it.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

from ..settings.target import host_arch

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


def host_problem(arch: str, *, making_rootfs: bool) -> str | None:
    """None when commands of ``arch`` (uname -m) can run here in a rootfs; else ONE message saying what to do.

    Needs Linux, root, unshare/chroot/dpkg-query, and only for a foreign ``arch`` a
    binfmt_misc qemu entry with the F flag (fixed on the spot where it can be);
    ``making_rootfs``: mmdebstrap too (the rootfs does not exist yet, or is remade).
    """
    what = "emulated builds" if arch != host_arch() else f"builds in a native {arch} rootfs"
    if platform.system() != "Linux":
        return f"{what} need a Linux host (binfmt_misc, chroot and mount namespaces)"
    if os.geteuid() != 0:
        return (f"{what} need root (mmdebstrap, chroot and bind mounts): run the command as root, "
                "e.g. `sudo -E nox -s build-NAME`")
    for tool, package in (("unshare", "util-linux"), ("chroot", "coreutils"), ("dpkg-query", "dpkg")):
        if not shutil.which(tool):
            return f"{tool} is missing: apt-get install -y {package}"
    if arch != host_arch():
        problem = _binfmt_problem(arch)
        if problem:
            return problem
    if making_rootfs and not shutil.which("mmdebstrap"):
        hint = INSTALL_HINT if arch != host_arch() else "apt-get install -y mmdebstrap"
        return f"mmdebstrap is missing (it makes the {arch} rootfs): {hint}"
    return None


def qemu_version(arch: str) -> str:
    """The first line of ``qemu-<arch>-static --version`` ("" when there is none), for the build record."""
    exe = shutil.which(f"qemu-{QEMU_NAME.get(arch, arch)}-static")
    if not exe:
        return ""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.splitlines()[0].strip() if out else ""
