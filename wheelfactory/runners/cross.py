"""Native cross compilers inside the emulated build: the "native half" of the target's build rootfs.

Under QEMU user mode every instruction of gcc is emulated, which makes C/C++
builds 8-12x slower than native. pmbootstrap's "crossdirect" shows the way out,
adapted here to Debian: a second, *native* Debian rootfs of the same suite
(``NativeHalf``, made once by mmdebstrap for the host's arch) holds Debian's
x86_64 -> target cross compilers (``gcc-16-riscv64-linux-gnu`` ...), binutils
and ccache. Each emulated build command gets it bound read-only at ``/native``
inside the target rootfs, the x86_64 loader and libraries reachable at their
usual paths, and a folder of wrappers (``CROSS_BIN``) first on PATH named like
the compilers the rootfs has (``cc``, ``gcc``, ``riscv64-linux-gnu-gcc``,
``g++-16``, ``gfortran`` ...). A wrapper is a native shell script that runs
native ccache (when the build uses ccache) and the native cross compiler.
The kernel runs those x86_64 programs natively; Python, pip, meson, cmake and
ninja stay emulated.

The rootfs is the cross compiler's sysroot: Debian's cross gcc is relocatable
(it finds cc1, as and ld under /native) and searches ``/usr/include``,
``/usr/include/<triplet>`` and ``/usr/lib/<triplet>``, which inside the chroot
are the target rootfs's own headers and libraries (so the recipe's ``-dev``
packages are found). The cross toolchain's own copy of glibc is left out of the
native half (dpkg path filters), so objects are compiled and linked against the
rootfs's glibc, exactly as on a board; gcc's runtime libraries and C++ headers
stay (the same gcc version). Linking runs natively too.

Same compilers: the cross gcc must have the upstream version of the rootfs's
gcc (Debian revisions may differ: the cross packages are rebuilt from the same
sources a few days later); else ``problem`` says so and how to fix it.

The native half is a ``Rootfs``: created, updated, removed, described and
trusted (the stamp rule: an interrupted creation is never used) like the build
rootfs, by ``nox -s rootfs -- create|update|remove|info``.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from ..settings.factory import Config
from ..settings.target import host_arch
from .rootfs import SLIM_PATH_EXCLUDES, SLIM_PATH_INCLUDES, Rootfs, debian_arch

# Debian architecture -> GNU triplet of its cross toolchain packages (Debian's multiarch tuples).
GNU_TRIPLET = {
    "riscv64": "riscv64-linux-gnu",
    "arm64": "aarch64-linux-gnu",
    "ppc64el": "powerpc64le-linux-gnu",
    "s390x": "s390x-linux-gnu",
    "armhf": "arm-linux-gnueabihf",
    "loong64": "loongarch64-linux-gnu",
    "i386": "i686-linux-gnu",
}

NATIVE = "/native"  # where the native half appears inside the target rootfs
CROSS_BIN = "/usr/lib/wheelfactory-cross"  # the wrappers' folder inside, first on PATH
WRAPPERS = "wheelfactory-cross/bin"  # the wrapper scripts, inside the native half
HOST_LOADER = {"x86_64": ("lib64", "ld-linux-x86-64.so.2"), "aarch64": ("lib", "ld-linux-aarch64.so.1")}

# The cross toolchain's copy of glibc (headers, crt files, libc.so) is left out: the
# target rootfs's own is used. gcc's runtime libraries and C++ headers stay.
GCC_RUNTIME = ("stdc++", "gcc_s", "atomic", "gomp", "itm", "asan", "lsan", "tsan", "ubsan", "hwasan", "gfortran")


def cross_filters(triplet: str) -> tuple[list[str], list[str]]:
    """dpkg path-exclude and path-include patterns of the native half."""
    excludes = [f"/usr/{triplet}/include/*", f"/usr/{triplet}/lib/*"]
    includes = [f"/usr/{triplet}/include/c++/*", *(f"/usr/{triplet}/lib/lib{n}.*" for n in GCC_RUNTIME)]
    return excludes, includes


def upstream_version(debian_version: str) -> str:
    """``16.2.0-3cross1`` -> ``16.2.0`` (epoch and Debian revision dropped)."""
    m = re.match(r"(?:\d+:)?([\d.]+)", debian_version or "")
    return m[1].rstrip(".") if m else ""


class NativeHalf(Rootfs):
    """The host-arch Debian rootfs with the cross compilers for the ``[emulation]`` target (need not exist yet).

    ``gcc_major``: the gcc version whose cross compilers it holds, e.g. "16" (from the build
    rootfs's stamp; None until the build rootfs exists, then no packages are known).
    """

    label = "native rootfs (cross compilers)"
    makes_clean_stage = False

    def __init__(self, config: Config, *, gcc_major: str | None = None):
        super().__init__(config)
        build = Rootfs(config)
        self.target_arch = config.arch
        self.triplet = GNU_TRIPLET.get(debian_arch(config.arch), "")
        self.arch = host_arch()
        self.debian_arch = debian_arch(self.arch)
        if config.emulation.cross_rootfs:
            p = Path(config.emulation.cross_rootfs).expanduser()
            self.path = Path(os.path.abspath(p if p.is_absolute() else config.root / p))
        else:
            self.path = build.path.with_name(f"{build.path.name}-cross")
        self.name, self.parent = self.path.name, self.path.parent
        self.variant = "apt"
        self.slim = True
        self.wanted_pythons = []
        if gcc_major is None:
            gcc_major = (build.stamp() or {}).get("gcc", "").split(".")[0] or None
        self.gcc_major = gcc_major
        self.extra_packages = self.cross_packages() if gcc_major else []

    def cross_packages(self) -> list[str]:
        v, t = self.gcc_major, self.triplet
        return [f"gcc-{v}-{t}", f"g++-{v}-{t}", f"gfortran-{v}-{t}", f"binutils-{t}", "ccache"]

    @property
    def base_packages(self) -> list[str]:
        return self.extra_packages

    def compilers(self) -> dict[str, str]:
        """wrapper name -> the native program it runs (C, C++, Fortran names build systems call)."""
        v, t = self.gcc_major, self.triplet
        out = {}
        for lang, prog in (("gcc", "gcc"), ("g++", "g++"), ("gfortran", "gfortran")):
            target = f"{NATIVE}/usr/bin/{t}-{prog}-{v}"
            for name in (lang, f"{lang}-{v}", f"{t}-{lang}", f"{t}-{lang}-{v}"):
                out[name] = target
        out["cc"], out["c++"] = out["gcc"], out["g++"]
        return out

    # --- creation hooks (Rootfs calls them) ---------------------------------------------
    def path_filters(self) -> tuple[list[str], list[str]]:
        excludes, includes = cross_filters(self.triplet)
        return [*SLIM_PATH_EXCLUDES, *excludes], [*SLIM_PATH_INCLUDES, *includes]

    def _facts(self, root: Path) -> dict:
        facts = super()._facts(root)
        versions = {p: self._dpkg_version(root, p) for p in self.cross_packages()} if self.gcc_major else {}
        facts.update(gcc=upstream_version(versions.get(f"gcc-{self.gcc_major}-{self.triplet}", "")),
                     compilers=versions, target_arch=self.target_arch, triplet=self.triplet,
                     gcc_major=self.gcc_major)
        return facts

    def _write_stamp(self, root: Path, base: dict | None = None, **fields) -> dict:
        self._write_wrappers(root)  # before the stamp: a stamped native half always has its wrappers
        return super()._write_stamp(root, base, **fields)

    def _write_wrappers(self, root: Path) -> None:
        """One native shell script per compiler name (``WRAPPERS``): native ccache when the build
        uses ccache (CCACHE_DIR set, ``build.compcache``), then the cross compiler."""
        folder = root / WRAPPERS
        folder.mkdir(parents=True, exist_ok=True)
        for name, prog in self.compilers().items():
            text = (f"#!{NATIVE}/bin/sh\n"
                    f"# {name} -> the native cross compiler (wheelfactory runners/cross.py)\n"
                    f'[ -z "${{CCACHE_DIR:-}}" ] || exec {NATIVE}/usr/bin/ccache {prog} "$@"\n'
                    f'exec {prog} "$@"\n')
            (folder / name).write_text(text)
            os.chmod(folder / name, 0o755)

    # --- use ------------------------------------------------------------------------
    def problem(self, build_gcc: str) -> str | None:
        """None when the (ready) native half has cross compilers of the build rootfs's gcc ``build_gcc``
        (upstream version, e.g. "16.2.0"); else ONE message saying what to do."""
        stamp = self.stamp()
        if stamp is None:
            return (f"the {self.label} at {self.path} is not ready; create it with: nox -s rootfs -- create")
        if not self.gcc_major:
            return "the build rootfs has no gcc; recreate it: nox -s rootfs -- create --replace"
        missing = self.missing(self.cross_packages())
        if missing:
            return (f"the {self.label} at {self.path} lacks {', '.join(missing)}; "
                    f"run: nox -s rootfs -- update")
        have = stamp.get("gcc", "")
        if have != build_gcc:
            pkg = f"gcc-{self.gcc_major}-{self.triplet}"
            return (f"the cross compilers at {self.path} are gcc {have} ({pkg} "
                    f"{stamp.get('compilers', {}).get(pkg, '?')}) but the {self.target_arch} rootfs's gcc is "
                    f"{build_gcc}: their objects would differ from a board's. Update both: nox -s rootfs -- update "
                    f"(Debian rebuilds the cross compilers some days after gcc; until the versions match, set "
                    f"[emulation].cross-compilers = \"off\")")
        return None

    def mount_lines(self, names_wanted: dict[str, str]) -> list[str]:
        """Shell lines for ``Rootfs.enter_argv`` (after the layer is mounted at "$R"): the native half
        read-only at /native, the host's loader and libraries at their paths, and a wrapper in
        CROSS_BIN for each compiler name the rootfs itself has (so no build finds a compiler that
        the rootfs lacks, e.g. gfortran)."""
        q = shlex.quote
        loader_dir, loader = HOST_LOADER.get(self.arch, ("lib64", ""))
        multiarch = f"{self.arch}-linux-gnu"
        lines = [
            f'mkdir -p "$R{NATIVE}" "$R{CROSS_BIN}" "$R/{loader_dir}"',
            f'mount --bind -o ro {q(str(self.path))} "$R{NATIVE}"',
            _link_unless_there(f"{NATIVE}/usr/lib/{multiarch}", f"/usr/lib/{multiarch}"),
        ]
        if loader:
            lines.append(_link_unless_there(f"{NATIVE}/usr/lib/{multiarch}/{loader}", f"/{loader_dir}/{loader}"))
        names = " ".join(q(n) for n in names_wanted)
        lines.append(f'for n in {names}; do if [ -e "$R/usr/bin/$n" ] || [ -L "$R/usr/bin/$n" ]; then '
                     f'ln -sfn {NATIVE}/{WRAPPERS}/$n "$R{CROSS_BIN}/$n"; fi; done')
        return lines


def _link_unless_there(target: str, path: str) -> str:
    """A shell line: symlink ``path`` (inside "$R") to ``target`` unless something (even a dangling link) is there."""
    return f'[ -e "$R{path}" ] || [ -L "$R{path}" ] || ln -s {target} "$R{path}"'
