"""The rootfs runner: build commands run in a Debian rootfs of the target arch, under QEMU when foreign.

``rootfs.Rootfs`` provides the Debian root filesystem of the target arch, and
``binfmt`` makes sure the kernel hands its ELF files to QEMU user mode. On a
machine of the target arch itself (a board) the same rootfs, layers and clean
system are used natively: no QEMU, no cross compilers (the rootfs's own gcc is
already native), and the runner is called ``rootfs`` instead of ``emulated``
(``EmulatedRunner.emulated``; the class keeps its name, its callers are many). Each
command runs in a fresh mount + PID namespace, chrooted into the rootfs, with
the project's build/ and cache/ folders bound at the same absolute paths, so
the pipeline passes host paths through unchanged and finds its results where
it expects them.

``emulation_problem(config)`` is what ``runners.select_runner`` asks before
choosing this runner: None when emulation works, else one message that says
what to install or run.
"""

from __future__ import annotations

import contextlib
import io
import os
import platform
import secrets
import shlex
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from .. import ui
from .._util.fs import human_age, remove_tree
from .._util.proc import Env, run_streamed
from ..errors import EnvironmentProblem, FactoryError
from ..settings.factory import Config
from ..settings.target import host_arch
from .binfmt import host_problem, qemu_version
from .cross import CROSS_BIN, NativeHalf
from .rootfs import BASE_ENV, Layer, Rootfs, seconds_since


def emulation_problem(config: Config) -> str | None:
    """None when rootfs builds for ``config`` can run here (emulated, or native on a machine of the target
    arch); else ONE message saying what to install or run.

    mmdebstrap is asked for only while the rootfs is not ready (it makes it).
    """
    try:
        rootfs = Rootfs(config)
    except EnvironmentProblem as e:
        return str(e)
    return host_problem(rootfs.arch, making_rootfs=not rootfs.ready)


# --- the runner -------------------------------------------------------------------------

class EmulatedRunner:
    """Runs commands in the ``[emulation]`` rootfs of the target arch (QEMU user mode when it is foreign).

    ``emulated``: whether QEMU runs the commands (the rootfs's arch is not this host's); ``name``
    is then "emulated", else "rootfs" (a native rootfs on a board: hermetic builds without QEMU).

    ``rootfs``: another system of the target (the clean system); ``layer``: run every
    command on that throwaway layer of it instead of on the rootfs itself, and install
    ``missing_debian`` packages into the layer only. ``cross``: the native half whose cross
    compilers the layer's commands use (``runners.cross``); ``compilers``: what the record
    says about the compilers (see ``compilers_record``).
    """

    name = "emulated"  # "rootfs" on an instance whose rootfs is of this host's arch

    def __init__(self, config: Config, *, rootfs: Rootfs | None = None, layer: Layer | None = None,
                 cross: NativeHalf | None = None, compilers: dict | None = None):
        self.config = config
        self.rootfs = rootfs or Rootfs(config)
        self.layer = layer
        self.cross = cross if layer is not None else None
        self.compilers = compilers or {}
        self._cross_decision: tuple[NativeHalf | None, dict] | None = None
        self.installed: dict[str, str] = {}  # package -> version: what missing_debian added to the layer
        self.emulated = self.rootfs.arch != host_arch()
        self.name = "emulated" if self.emulated else "rootfs"
        kind = self.name if type(self.rootfs) is Rootfs else self.rootfs.label.replace(" ", "-")
        self.id = f"{kind}-{self.rootfs.arch}-{self.rootfs.suite}"
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
                info_age = seconds_since(stamp.get("updated_at") or stamp["created_at"])
                if info_age > self.rootfs.max_age_days * 86400:
                    ui.warn(f"the {self.rootfs.arch} {self.rootfs.suite} rootfs was last updated "
                            f"{human_age(info_age)} ago; refresh it with: nox -s rootfs -- update")
                self._warned_age = True
            return stamp

    def pythons(self, wanted: Sequence[str]) -> dict[str, str]:
        """The wanted X.Y the rootfs has; ones the suite offers but the rootfs lacks are installed first."""
        stamp = self._ready()
        have = self.rootfs.pythons_in(self.rootfs.path)
        offered = stamp.get("suite_pythons") or []
        todo = [v for v in wanted if v not in have and v in offered]
        if todo:
            self.rootfs.install([p for v in todo for p in self.rootfs.python_packages(v)],
                                why=f"Python {', '.join(todo)} from target.pythons")
            have = self.rootfs.pythons_in(self.rootfs.path)
        return {v: have[v] for v in wanted if v in have}

    def run(self, argv: Sequence[str], *, cwd: Path, env: Env | None = None, log: IO[str],
            check: bool = True, timeout: float | None = None, network: bool = True) -> subprocess.CompletedProcess:
        """``run_streamed`` inside the rootfs; the base environment is ``rootfs.BASE_ENV`` (nothing of the
        host's but proxies and timeouts). ``cwd`` must lie under build/ or cache/ (else EnvironmentProblem)."""
        self._ready(log)
        cwd = Path(os.path.abspath(cwd))
        if not any(cwd == b or b in cwd.parents for b in self.binds):
            raise EnvironmentProblem(
                f"the {self.name} runner runs commands only in folders under {', '.join(map(str, self.binds))} "
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
                # Shared by the build rootfs and the clean system of the target: downloads only, no system state.
                xdg = self.config.paths.cache / "xdg" / f"{self.name}-{self.rootfs.arch}-{self.rootfs.suite}"
                full_env = {"XDG_CACHE_HOME": str(xdg), **(env or {})}
                extra: list[str] = []
                if self.cross is not None:
                    # The wrappers go before everything, the ccache masquerade folder included:
                    # they run the native ccache themselves.
                    full_env["PATH"] = f"{CROSS_BIN}:{full_env.get('PATH') or BASE_ENV['PATH']}"
                    # Named compilers: meson otherwise puts the rootfs's ccache in front of them,
                    # an emulated process hashing every preprocessed file (Meson's "Feature
                    # autodetection": a CC/CXX from the environment is used without ccache).
                    for var, name in CROSS_COMPILER_ENV.items():
                        full_env.setdefault(var, name)
                    extra = self.cross.mount_lines(self.cross.compilers())
                cmd = self.rootfs.enter_argv(argv, cwd=str(cwd), env=full_env, binds=self.binds, tmp=tmp,
                                             layer=self.layer, extra=extra)
                if not network:  # the command's namespaces get a network one too: no interface but a downed lo
                    cmd = [cmd[0], "--net", *cmd[1:]]
                display = f"[{self.id}] {shlex.join(map(str, argv))}"
                return run_streamed(cmd, display=display, cwd=cwd, log=log, check=check, timeout=timeout)
            finally:
                remove_tree(tmp)

    def cuts_network(self) -> bool:
        """``run(network=False)`` always cuts it: the command already runs in its own namespaces."""
        return True

    def missing_debian(self, packages: Sequence[str]) -> list[str]:
        """Installs the missing ones on demand (apt inside the rootfs), so nothing stays missing.

        A package Debian does not build for the target arch raises EnvironmentProblem naming it.
        """
        if not packages:
            return []
        self._ready()
        if self.layer is not None:
            with self.rootfs._log(None) as log:
                self.installed.update(self.rootfs.install_in_layer(self.layer, list(packages), log=log,
                                                                   why="the recipe's build.debian"))
            return []
        self.rootfs.install(list(packages), why="the recipe's build.debian")
        return self.rootfs.missing(list(packages))

    @contextlib.contextmanager
    def hermetic(self, *, cross: bool = True) -> Iterator[EmulatedRunner]:
        """This runner on a throwaway layer of its rootfs: what ``missing_debian`` installs lives in the
        layer and dies with it, so one recipe's build packages are never seen by another's build.

        ``cross``: the recipe's ``build.cross``; with it (and ``[emulation].cross-compilers`` not off)
        the layer's compiler calls of an emulated rootfs run the native cross compilers. When they
        cannot be had, "auto" falls back to the emulated compilers (warned, and said in
        ``describe()["compilers"]``), "required" raises EnvironmentProblem with the fix. A native
        rootfs needs none: its own gcc runs natively.
        """
        self._ready()  # the compilers record reads the rootfs's stamp
        if not self.emulated:
            native, compilers = None, self._own_compilers(NATIVE_WHY.format(arch=self.rootfs.arch))
        elif cross:
            native, compilers = self._cross_compilers()
        else:
            native, compilers = None, self._own_compilers("the recipe sets build.cross = false")
        with contextlib.ExitStack() as stack:
            if native is not None:
                stack.enter_context(native.in_use())
            layer = stack.enter_context(self.rootfs.layer())
            runner = EmulatedRunner(self.config, rootfs=self.rootfs, layer=layer, cross=native, compilers=compilers)
            if native is not None:
                problem = runner._wrapper_problem()
                if problem:
                    runner.cross, runner.compilers = None, self._fall_back(problem)
            yield runner

    def _cross_compilers(self) -> tuple[NativeHalf | None, dict]:
        """The native half to use and the compilers record (decided once per runner; see ``hermetic``)."""
        with self._lock:
            if self._cross_decision is not None:
                return self._cross_decision
        setting = self.config.emulation.cross_compilers
        if setting == "off" or type(self.rootfs) is not Rootfs:
            decision = (None, self._own_compilers('[emulation].cross-compilers = "off"'))
        else:
            stamp = self._ready()
            native = NativeHalf(self.config, gcc_major=(stamp.get("gcc") or "").split(".")[0] or None)
            try:
                native.ensure()
                problem = native.problem(stamp.get("gcc", ""))
            except FactoryError as e:
                problem = f"the native cross compilers cannot be made: {e}"
            decision = (None, self._fall_back(problem)) if problem else (native, compilers_record(native))
        with self._lock:
            self._cross_decision = decision
        return decision

    def _fall_back(self, problem: str) -> dict:
        """The compilers record of a build that cannot use the cross compilers (or EnvironmentProblem)."""
        if self.config.emulation.cross_compilers == "required":
            raise EnvironmentProblem(f"{problem}. ([emulation].cross-compilers = \"required\"; with \"auto\" "
                                     f"such builds fall back to the slower emulated compilers.)")
        if not self._warned_fallback:
            ui.warn(f"{problem}. Building with the emulated compilers (slower); the record says so")
            self._warned_fallback = True
        return self._own_compilers(problem)

    _warned_fallback = False

    def _own_compilers(self, why: str) -> dict:
        """The compilers record of a build with the rootfs's own compilers (kind "emulated", or "native"
        in a rootfs of this host's arch); ``why`` they were used."""
        gcc = (self.rootfs.stamp() or {}).get("gcc", "")
        major = gcc.split(".")[0]
        packages = {p: v for p in (f"gcc-{major}", f"g++-{major}", f"gfortran-{major}")
                    if (v := self.rootfs._dpkg_version(self.rootfs.path, p))} if gcc else {}
        return {"kind": "emulated" if self.emulated else "native", "name": f"gcc-{major}" if gcc else "",
                "gcc": gcc, "packages": packages, "why": why}

    def _wrapper_problem(self) -> str | None:
        """None when the cross C compiler answers through its wrapper inside the layer; else the message."""
        out = io.StringIO()
        try:
            proc = self.run(["sh", "-c", f"{CROSS_BIN}/gcc -dumpmachine && {CROSS_BIN}/gcc -dumpfullversion"],
                            cwd=self.config.paths.build, log=out, check=False, timeout=120)
            lines = (proc.stdout or "").split()
            ok = proc.returncode == 0 and lines[:1] == [self.cross.triplet] and \
                lines[1:2] == [self.compilers.get("gcc")]
        except (OSError, subprocess.SubprocessError) as e:
            ok, lines = False, [str(e)]
        if ok:
            return None
        return (f"the cross compiler wrapper {CROSS_BIN}/gcc inside the {self.rootfs.arch} rootfs could not run "
                f"{self.cross.triplet}-gcc-{self.cross.gcc_major} from the {self.cross.label} at {self.cross.path} "
                f"(it said: {' '.join(lines)[-300:] or 'nothing'}); remake it: nox -s rootfs -- update")

    def describe(self) -> dict:
        """The host facts of the record; ``compilers``: which compilers made the objects (on a layer).
        ``emulated`` and (when true) ``emulator``, the QEMU version, say whether QEMU ran the commands."""
        stamp = self.rootfs.stamp() or {}
        libc = f"glibc {stamp['glibc']}" if stamp.get("glibc") else ""
        return {
            "runner": self.name,
            "emulated": self.emulated,
            **({"emulator": qemu_version(self.rootfs.arch)} if self.emulated else {}),
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
                "system": self.rootfs.label,
                **({"layer": True, "layer_packages": dict(sorted(self.installed.items()))} if self.layer else {}),
            },
            **({"compilers": self._compilers_with_rust()} if self.layer is not None and self.compilers else {}),
        }

    def _compilers_with_rust(self) -> dict:
        """The compilers record, plus ``rust`` when the layer has rustc: Rust always runs emulated (natively
        in a native rootfs).

        Issue #17 asks for a native rustc only "if it pays": a native x86_64 rustc needs the
        riscv64 standard library of the same version (Debian's ``libstd-rust-dev:riscv64`` in a
        multiarch native half), and proc macros and build scripts then split between the two
        arches under cargo, while every Rust recipe here needs crates.io, which builds cannot reach.
        """
        rustc = self.installed.get("rustc") or self.rootfs._dpkg_version(self.rootfs.path, "rustc")
        if not rustc:
            return self.compilers
        if not self.emulated:
            return {**self.compilers, "rust": {"kind": "native", "rustc": rustc}}
        return {**self.compilers, "rust": {"kind": "emulated", "rustc": rustc, "why": RUST_EMULATED}}


NATIVE_WHY = "the rootfs is {arch}, as this host is: its own gcc runs natively (no QEMU, no cross compilers)"
# What build systems read as the compilers when the cross wrappers are on PATH (a recipe's env wins).
# Not FC: a gfortran wrapper exists only in layers whose build.debian has gfortran, and CMake
# fails on an FC it cannot find even where Fortran is optional.
CROSS_COMPILER_ENV = {"CC": "cc", "CXX": "c++"}

RUST_EMULATED = "no native cross rustc: rustc, cargo and the linker run under QEMU (issue #17: Rust stays emulated)"


def compilers_record(native: NativeHalf) -> dict:
    """What the record says about native cross compilers: name, gcc version, Debian package versions."""
    stamp = native.stamp() or {}
    return {
        "kind": "native-cross",
        "name": f"{native.triplet}-gcc-{native.gcc_major}",
        "gcc": stamp.get("gcc", ""),
        "packages": stamp.get("compilers", {}),
        "host_arch": native.arch,
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

