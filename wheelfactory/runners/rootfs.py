"""The Debian root filesystem that emulated builds run in: create, update, remove, describe, enter.

One rootfs per (arch, suite), by default ``<cache>/rootfs/<arch>-<suite>``,
made with ``mmdebstrap --arch=<debian arch>`` from the ``[emulation]`` settings
and reused by every build until it is updated or removed.

Trust comes from one rule: a rootfs is used only when its folder holds the
stamp file (``.wheelfactory-rootfs.json``). Creation happens in a temporary
folder beside the final place and is renamed into place, stamp included, only
when every step succeeded; a failed or interrupted creation (mirror error,
disk full, Ctrl-C, kill -9) leaves at most a ``.NAME.creating-*`` folder that
the next creation deletes. An update removes the stamp first (leaving an
``updating`` marker) and writes it back only on success, so a half-updated
rootfs is never trusted: ``update`` (or the next build) finishes the update,
and when the build cannot finish it, the build makes the rootfs afresh and
swaps it in.

Commands enter the rootfs through ``unshare --mount --pid``: every mount
(/proc, /dev, /sys, the project's build/ and cache/ folders at the same
absolute paths, resolv.conf, the CA bundle, a private /tmp) lives in a mount
namespace of its own that the kernel tears down when the command ends, however
it ends, and never appears in the host's mount table. Two builds at once get two
namespaces.

Locks (``fcntl.flock`` files beside the rootfs): an *admin* lock serializes
everything that changes the rootfs (create, update, remove, package installs);
a *use* lock is held shared by every running command and exclusively by update
and remove, so a rootfs is never swapped or deleted under a running build.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gzip
import json
import lzma
import os
import re
import secrets
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from .. import ui
from .._util.fs import (
    atomic_write_text,
    flock,
    human_size,
    remove_tree,
    tree_size,
    utcnow,
)
from .._util.proc import Env, environment, run_streamed
from ..errors import EnvironmentProblem, FactoryError
from ..settings.factory import Config
from ..settings.target import host_arch
from .binfmt import host_problem

STAMP = ".wheelfactory-rootfs.json"
UPDATING = ".wheelfactory-rootfs.updating"
STAMP_SCHEMA = 1

# The clean system (runners/clean.py) is what a user's fresh board holds: mmdebstrap's
# ``apt`` variant, CLEAN_PACKAGES and, for each wanted Python the suite offers,
# clean_python_packages(X.Y). A build rootfs of the same variant is made on top of
# exactly that (its "clean stage"), and a copy of the stage is left beside it as the
# clean system's seed, so the clean system is not made twice (see Rootfs._keep_seed).
CLEAN_VARIANT = "apt"
CLEAN_PACKAGES = ("ca-certificates",)
SEED = ".wheelfactory-seed.json"
SEED_MAX_AGE = 24 * 3600  # seconds; sid moves daily: an older stage is not what mmdebstrap makes today

# What every build needs. ccache because build.ccache is on by default and
# re-builds under emulation are where it pays most.
BASE_PACKAGES = (
    "python3", "python3-venv", "python3-dev", "python3-pip",
    "gcc", "g++", "patchelf", "ca-certificates", "ccache",
)

# dpkg path filters of a "slim" rootfs: nothing a PEP 517 build of an extension
# module reads. Static libpython (~180 MB) is for embedding, lto-dump and the
# sanitizer/experimental archives are for debugging; docs, man pages and
# locales are for people.
SLIM_PATH_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
    "/usr/lib/python3*/config-*/libpython3*.a",
    "/usr/bin/*lto-dump*",
    "/usr/lib/gcc/*/*/libasan*.a",
    "/usr/lib/gcc/*/*/libtsan*.a",
    "/usr/lib/gcc/*/*/liblsan*.a",
    "/usr/lib/gcc/*/*/libhwasan*.a",
    "/usr/lib/gcc/*/*/libubsan*.a",
    "/usr/lib/gcc/*/*/libstdc++exp.a",
)
SLIM_PATH_INCLUDES = ("/usr/share/doc/*/copyright",)

# A layer's apt-get update runs only when the shared package lists are older than this (seconds).
LISTS_MAX_AGE = 6 * 3600

# Below this much free space a creation is refused up front (it needs ~1 GiB).
MIN_FREE_BYTES = 2 * 1024**3

# uname -m -> Debian architecture name.
DEBIAN_ARCH = {
    "riscv64": "riscv64",
    "aarch64": "arm64",
    "x86_64": "amd64",
    "ppc64le": "ppc64el",
    "s390x": "s390x",
    "armv7l": "armhf",
    "i686": "i386",
    "loongarch64": "loong64",
}

# The environment every command starts from inside the rootfs (nothing of the
# host's leaks in: its PATH, pip.conf indexes and find-links do not exist there).
CA_PATH = "/etc/ssl/certs/ca-certificates.crt"
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "DEBIAN_FRONTEND": "noninteractive",
    "SSL_CERT_FILE": CA_PATH,
    "SSL_CERT_DIR": "/etc/ssl/certs",
    "PIP_CERT": CA_PATH,
    "REQUESTS_CA_BUNDLE": CA_PATH,
    "CURL_CA_BUNDLE": CA_PATH,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}
# Host variables that still mean the same inside (proxies, reproducibility, timeouts).
PASS_ENV = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
            "SOURCE_DATE_EPOCH", "PIP_DEFAULT_TIMEOUT", "UV_HTTP_TIMEOUT")


def clean_python_packages(version: str) -> list[str]:
    """What a user installs to run Python ``version`` (X.Y) in a venv: no headers, no compiler."""
    return [f"python{version}", f"python{version}-venv"]


def clean_system_path(build: Path) -> Path:
    """Where the clean system of the build rootfs at ``build`` lives: ``<build>-clean`` beside it."""
    return build.with_name(f"{build.name}-clean")


def debian_arch(arch: str) -> str:
    try:
        return DEBIAN_ARCH[arch]
    except KeyError:
        raise EnvironmentProblem(
            f"no Debian architecture is known for target.arch {arch!r}; "
            f"emulated builds support {', '.join(sorted(DEBIAN_ARCH))}"
        ) from None


def apt_option(opt: str) -> str:
    """``Key=value`` (the config's short form) -> an apt.conf line; apt.conf lines pass as they are."""
    if "=" in opt and not opt.rstrip().endswith(";") and '"' not in opt:
        key, value = opt.split("=", 1)
        return f'{key.strip()} "{value.strip()}";'
    return opt


def seconds_since(utc_time: str) -> float:
    """Seconds from a stamp's ISO time (``2025-01-01T00:00:00Z``, as ``utcnow`` writes it) to now."""
    then = _dt.datetime.fromisoformat(utc_time.replace("Z", "+00:00"))
    return (_dt.datetime.now(_dt.timezone.utc) - then).total_seconds()


# --- the rootfs ----------------------------------------------------------------------

class Rootfs:
    """The build rootfs the ``[emulation]`` settings describe (it need not exist yet)."""

    # What this kind of system is called in messages, what mmdebstrap includes, and
    # the Debian packages that make a Python X.Y usable in it (see python_packages).
    label = "rootfs"
    base_packages: Sequence[str] = BASE_PACKAGES
    makes_clean_stage = True  # the build rootfs; not the clean system itself, not the cross compilers' half

    def __init__(self, config: Config):
        em = config.emulation
        self.config = config
        self.arch = config.arch
        self.debian_arch = debian_arch(self.arch)
        self.suite = em.suite
        self.mirror = em.mirror
        self.apt_options = list(em.apt_options)
        self.extra_packages = list(em.packages)
        self.variant = em.variant
        self.slim = em.slim
        self.max_age_days = em.max_age_days
        self.ca_bundle = Path(em.ca_bundle) if em.ca_bundle else None
        self.wanted_pythons = list(config.pythons)
        if em.rootfs:
            p = Path(em.rootfs).expanduser()
            self.path = p if p.is_absolute() else config.root / p
        else:
            self.path = config.paths.cache / "rootfs" / f"{self.arch}-{self.suite}"
        self.path = Path(os.path.abspath(self.path))
        self.name = self.path.name
        self.parent = self.path.parent
        clean = clean_system_path(self.path)
        self.seed_path = clean.parent / f".{clean.name}.seed"  # the clean stage the build rootfs leaves

    @staticmethod
    def python_packages(version: str) -> list[str]:
        """The Debian packages a build needs for Python ``version`` (X.Y): interpreter, headers, venv."""
        return [f"python{version}", f"python{version}-dev", f"python{version}-venv"]

    @staticmethod
    def python_files(version: str) -> list[str]:
        """Files (relative to the root) whose presence means python_packages(version) are installed."""
        return [f"usr/include/python{version}/Python.h", f"usr/lib/python{version}/ensurepip/__init__.py"]

    @property
    def apt_cache(self) -> Path:
        """apt's package lists and downloaded .debs, shared by every throwaway layer of this arch and suite."""
        return self.config.paths.cache / "apt" / f"{self.debian_arch}-{self.suite}"

    # where things are
    @property
    def stamp_path(self) -> Path:
        return self.path / STAMP

    @property
    def log_path(self) -> Path:
        """The log of the last creation/update/install (kept; a failure points at it)."""
        return self.parent / f"{self.name}.log"

    def _admin_lock(self):
        return flock(self.parent / f".{self.name}.lock",
                     waiting=f"waiting for another process that is changing the rootfs {self.path}")

    def _use_lock(self, shared: bool):
        what = "waiting for the rootfs to be free" if shared else "waiting for builds using the rootfs to finish"
        return flock(self.parent / f".{self.name}.use.lock", shared=shared, waiting=f"{what} ({self.path})")

    # state
    def stamp(self) -> dict | None:
        """The stamp of a complete rootfs, or None (missing, half-made, half-updated)."""
        try:
            data = json.loads(self.stamp_path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("schema") != STAMP_SCHEMA:
            return None
        return data

    @property
    def ready(self) -> bool:
        return self.stamp() is not None

    def check_matches(self, stamp: dict) -> None:
        """A rootfs made for another arch or suite is not silently used for this config."""
        if stamp.get("arch") != self.arch or stamp.get("suite") != self.suite:
            raise EnvironmentProblem(
                f"the rootfs at {self.path} is {stamp.get('arch')} {stamp.get('suite')}, but the config asks for "
                f"{self.arch} {self.suite}; recreate it (nox -s rootfs -- create --replace) or point "
                f"[emulation].rootfs somewhere else"
            )

    def info(self) -> dict:
        """What `nox -s rootfs -- info` shows (and describe() records): facts, size, age; ``emulated``:
        whether its programs run under QEMU (False for a rootfs of this host's arch)."""
        stamp = self.stamp()
        out = {"path": str(self.path), "ready": stamp is not None, "arch": self.arch, "suite": self.suite,
               "mirror": self.mirror, "emulated": self.arch != host_arch()}
        if stamp is None:
            out["state"] = ("half-updated (an update was interrupted; `nox -s rootfs -- update` or the next "
                            "build finishes it)"
                            if (self.path / UPDATING).exists() else
                            "missing" if not self.path.exists() else "not a wheelfactory rootfs")
            return out
        age = seconds_since(stamp["created_at"])
        out.update(stamp)
        out.update(state="ready", size=tree_size(self.path), age_seconds=round(age))
        return out

    # --- entering it ---------------------------------------------------------------
    def enter_argv(self, argv: Sequence[str], *, cwd: str, env: Env, root: Path | None = None,
                   binds: Sequence[Path] = (), tmp: Path | None = None, ca_bundle: bool = True,
                   layer: Layer | None = None, extra: Sequence[str] = ()) -> list[str]:
        """The host command that runs ``argv`` inside the rootfs (see the module docstring).

        With ``layer``, inside a throwaway overlay of the rootfs (mounted in the command's own
        namespace, so it never outlives the command), with apt's lists and downloads shared.
        ``extra``: shell lines run after the mounts, before the chroot (the root is "$R").
        """
        r = str(layer.merged if layer else (root or self.path))
        files = str(self.path) if layer else r  # where the host can look at the rootfs's files
        q = shlex.quote
        lines = ["set -eu", f"R={q(r)}"]
        if layer:
            lines += [layer.mount_line(), 'mount -t proc proc "$R/proc"']
            lines += [f'mount --bind {q(str(src))} "$R{dest}"' for src, dest in layer.apt_mounts()]
        lines += ['mount --rbind /dev "$R/dev"', 'mount --rbind /sys "$R/sys"']
        if tmp is not None:
            lines.append(f'mount --bind {q(str(tmp))} "$R/tmp"')
        if os.path.isfile("/etc/resolv.conf") and os.path.isfile(os.path.join(files, "etc/resolv.conf")) \
                and not os.path.islink(os.path.join(files, "etc/resolv.conf")):
            lines.append('mount --bind -o ro /etc/resolv.conf "$R/etc/resolv.conf"')
        # Read-only, so nothing inside (update-ca-certificates) can write the host's bundle.
        if ca_bundle and self.ca_bundle and self.ca_bundle.is_file() and os.path.isfile(os.path.join(files, CA_PATH[1:])):
            lines.append(f'mount --bind -o ro {q(str(self.ca_bundle))} "$R{CA_PATH}"')
        for d in binds:
            lines.append(f'mkdir -p "$R"{q(str(d))} && mount --bind {q(str(d))} "$R"{q(str(d))}')
        for h in self.hidden(binds, root=Path(r)):
            lines.append(f'mount -t tmpfs -o ro,size=16k,mode=0755 wheelfactory-hidden "$R"{q(str(h))}')
        lines += extra
        full_env = environment(env, base={**BASE_ENV, **{k: os.environ[k] for k in PASS_ENV if k in os.environ}})
        inner = ["/usr/bin/env", "-i", "-C", cwd, "--", *(f"{k}={v}" for k, v in full_env.items()), *argv]
        lines.append(f'exec chroot "$R" {" ".join(q(str(a)) for a in inner)}')
        proc = [] if layer else [f"--mount-proc={r}/proc"]
        return ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
                *proc, "--", "/bin/sh", "-c", "\n".join(lines)]

    def hidden(self, binds: Sequence[Path], root: Path | None = None) -> list[Path]:
        """Folders to cover inside: where a bound folder holds the rootfs itself (cache/rootfs)."""
        root = Path(os.path.abspath(root or self.path))
        out = []
        for d in binds:
            d = Path(os.path.abspath(d))
            if d == root or root in d.parents:
                raise EnvironmentProblem(f"{d} lies inside the rootfs {root}; move [paths] build/cache out of it")
            if d in root.parents:
                out.append(d / root.relative_to(d).parts[0])
        return out

    def exec(self, argv: Sequence[str], *, log: IO[str], root: Path | None = None, check: bool = True,
             echo=None, timeout: float | None = None, layer: Layer | None = None) -> subprocess.CompletedProcess:
        """Run an administrative command (apt, dpkg, probes) inside the rootfs, as root, in /.

        With ``check``, a non-zero exit raises EnvironmentProblem naming the command, its error
        line and the log (a FactoryError, so ``ensure`` falls back to making the rootfs afresh).
        """
        cmd = self.enter_argv(argv, cwd="/", env={}, root=root, tmp=None, ca_bundle=False, layer=layer)
        proc = run_streamed(cmd, display=f"[{self.arch} {self.suite} rootfs] {shlex.join(map(str, argv))}",
                            cwd="/", log=log, check=False, echo=echo, timeout=timeout)
        if check and proc.returncode != 0:
            where = f"; full log: {log.name}" if isinstance(getattr(log, "name", None), str) else ""
            raise EnvironmentProblem(
                f"`{shlex.join(map(str, argv))}` failed (exit {proc.returncode}) in the {self.arch} {self.suite} "
                f"{self.label} at {root or self.path}: {_error_line(proc.stdout)}{where}"
            )
        return proc

    # --- what is installed / available ----------------------------------------------
    def missing(self, packages: Sequence[str], root: Path | None = None) -> list[str]:
        """Of ``packages``, those not installed in the rootfs (read from its dpkg database on the host)."""
        if not packages:
            return []
        admindir = Path(root or self.path) / "var/lib/dpkg"
        names = [p.split(":")[0] for p in packages]
        out = subprocess.run(["dpkg-query", f"--admindir={admindir}", "-W", "-f=${Package} ${db:Status-Status}\n",
                              *names], capture_output=True, text=True).stdout
        installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
        return [p for p, n in zip(packages, names) if n not in installed]

    @staticmethod
    def available(root: Path, lists: Path | None = None) -> set[str]:
        """Package names (and virtual names) the rootfs's apt lists (or ``lists``) offer; needs fresh lists."""
        names: set[str] = set()
        lists = lists or root / "var/lib/apt/lists"
        for f in lists.glob("*_Packages*"):
            if f.name.endswith(".gz"):
                text = gzip.open(f, "rt", errors="replace").read()
            elif f.name.endswith(".xz"):
                text = lzma.open(f, "rt", errors="replace").read()
            elif f.name.endswith("_Packages"):
                text = f.read_text(errors="replace")
            else:
                continue
            names.update(re.findall(r"^Package: (\S+)", text, re.M))
            for line in re.findall(r"^Provides: (.+)$", text, re.M):
                names.update(p.split("(")[0].strip() for p in line.split(","))
        return names

    @staticmethod
    def _clean_apt(root: Path, *, lists: bool = True) -> None:
        """Drop downloaded .debs and (``lists``) package lists: they are most of an apt-using rootfs's growth."""
        folder = root / "var/lib/apt/lists"
        if lists and folder.is_dir():
            for f in folder.iterdir():
                if f.is_file() and f.name != "lock":
                    f.unlink()
        for f in (root / "var/cache/apt").glob("*.bin"):
            f.unlink()
        for f in (root / "var/cache/apt/archives").glob("*.deb"):
            f.unlink()

    def pythons_in(self, root: Path) -> dict[str, str]:
        """X.Y -> interpreter of the Pythons a build can use there (interpreter, venv and headers)."""
        found = {}
        for exe in sorted((root / "usr/bin").glob("python3.*")):
            m = re.fullmatch(r"python(3\.\d+)", exe.name)
            if not m:
                continue
            v = m[1]
            if all((root / f).is_file() for f in self.python_files(v)):
                found[v] = f"/usr/bin/python{v}"
        return found

    def _facts(self, root: Path) -> dict:
        """glibc, gcc and Python versions, read from the rootfs's dpkg database (no emulation needed)."""
        def version(pkg: str) -> str:
            return re.sub(r"^\d+:", "", self._dpkg_version(root, pkg))

        glibc = re.match(r"[\d.]+", version("libc6") or "")
        gcc_link = root / "usr/bin/gcc"
        gcc_pkg = os.readlink(gcc_link) if gcc_link.is_symlink() else "gcc"
        gcc = re.match(r"[\d.]+", version(Path(gcc_pkg).name) or version("gcc") or "")
        pythons = self.pythons_in(root)
        return {
            "glibc": glibc[0].rstrip(".") if glibc else "",
            "gcc": gcc[0].rstrip(".") if gcc else "",
            "pythons": {v: version(f"python{v}") for v in pythons},
        }

    @staticmethod
    def _dpkg_version(root: Path, package: str) -> str:
        """The installed version of ``package`` in the rootfs at ``root`` ("" when not installed)."""
        return subprocess.run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f=${Version}", package],
                              capture_output=True, text=True).stdout.strip()

    def _write_stamp(self, root: Path, base: dict | None = None, **fields) -> dict:
        old = base or {}
        if base is None:
            try:
                old = json.loads((root / STAMP).read_text())
            except (OSError, ValueError):
                pass
        stamp = {
            **old,
            "schema": STAMP_SCHEMA,
            "arch": self.arch,
            "debian_arch": self.debian_arch,
            "suite": self.suite,
            "mirror": self.mirror,
            "variant": self.variant,
            "slim": self.slim,
            "apt_options": self.apt_options,
            **self._facts(root),
            **fields,
        }
        atomic_write_text(root / STAMP, json.dumps(stamp, indent=2, sort_keys=True) + "\n")
        return stamp

    def _copy_host_files(self, root: Path) -> None:
        """The host's CA bundle (TLS through the local proxy) and resolver settings."""
        if self.ca_bundle:
            if not self.ca_bundle.is_file():
                raise EnvironmentProblem(
                    f"[emulation].ca-bundle {self.ca_bundle} does not exist; point it at the host's CA bundle "
                    f"(Debian: /etc/ssl/certs/ca-certificates.crt from the ca-certificates package)"
                )
            dest = root / CA_PATH[1:]
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_symlink():
                dest.unlink()
            shutil.copyfile(self.ca_bundle, dest)
        for name in ("etc/resolv.conf", "etc/hosts"):
            src, dest = Path("/") / name, root / name
            if src.is_file():
                if dest.is_symlink():
                    dest.unlink()
                shutil.copyfile(src, dest)

    # --- install on demand ------------------------------------------------------------
    def _install(self, root: Path, packages: Sequence[str], *, log: IO[str], why: str,
                 lists_fresh: bool = False, keep_lists: bool = False) -> None:
        """apt-get install ``packages`` inside ``root``; one clear error for those riscv64 Debian lacks.
        ``keep_lists``: leave apt's package lists for the next install (a creation's next stage)."""
        if not lists_fresh:
            self.exec(["sh", "-c", "dpkg --configure -a && apt-get update -q"], root=root, log=log,
                      echo=_apt_progress)
        try:
            self._apt_install(self.available(root), packages, log=log, why=why, root=root)
        finally:
            self._keep_debs(root)  # before _clean_apt: a creation's second apt run downloads the most
            self._clean_apt(root, lists=not keep_lists)
            self._copy_host_files(root)  # a ca-certificates trigger may have rewritten the bundle

    def install(self, packages: Sequence[str], *, log: IO[str] | None = None, why: str = "needed by a build") -> list[str]:
        """Install what of ``packages`` is missing (on demand, under the admin lock); returns what was installed."""
        if not self.missing(packages):
            return []
        with self._admin_lock(), self._log(log) as lg:
            stamp = self.stamp()
            if stamp is None:
                raise EnvironmentProblem(f"the rootfs at {self.path} is not ready; run: nox -s rootfs -- create")
            todo = self.missing(packages)
            if not todo:
                return []
            ui.info(f"installing {', '.join(todo)} in the {self.arch} {self.suite} rootfs ({why})")
            t0 = time.monotonic()
            self._install(self.path, todo, log=lg, why=why)
            on_demand = sorted(set(stamp.get("installed_on_demand", [])) | set(todo))
            self._write_stamp(self.path, installed_on_demand=on_demand)
            ui.info(f"installed {', '.join(todo)} in {time.monotonic() - t0:.0f}s")
            return todo

    # --- throwaway layers -----------------------------------------------------------------
    @contextlib.contextmanager
    def layer(self, *, log: IO[str] | None = None) -> Iterator[Layer]:
        """A throwaway overlay over the (ready) rootfs, held in use while it lives and deleted after.

        The folder is a ``.NAME.run-PID-*`` one: the sweep of dead processes' folders removes
        it after a kill -9, and update/remove wait for it (the use lock).
        """
        with self.in_use(log=log):
            d = self.parent / f".{self.name}.run-{os.getpid()}-{secrets.token_hex(4)}"
            for sub in ("root", "upper", "work"):
                (d / sub).mkdir(parents=True)
            try:
                yield Layer(self.path, d, self.apt_cache)
            finally:
                remove_tree(d)

    def install_in_layer(self, layer: Layer, packages: Sequence[str], *, log: IO[str], why: str) -> dict[str, str]:
        """apt-get install ``packages`` into ``layer`` only (the base stays as it is).

        Returns package -> version of every package the layer added (dependencies included).
        The package lists are refreshed at most every LISTS_MAX_AGE seconds, and .debs are
        downloaded once, both in ``apt_cache``. Raises EnvironmentProblem naming a package
        Debian lacks for the arch (with ``why``: which setting asked for it).
        """
        if not packages:
            return {}
        cache = self.apt_cache
        for sub in ("lists/partial", "archives/partial"):
            (cache / sub).mkdir(parents=True, exist_ok=True)
        with flock(cache.parent / f".{cache.name}.lock", waiting=f"waiting for apt in another layer ({cache})"):
            updated = cache / "updated"  # apt sets the lists' mtimes from the mirror, so a stamp of our own
            if not updated.is_file() or time.time() - updated.stat().st_mtime > LISTS_MAX_AGE \
                    or not any((cache / "lists").glob("*_Packages*")):
                self.exec(["apt-get", "update", "-q"], log=log, layer=layer, echo=_apt_progress)
                updated.touch()
            self._apt_install(self.available(self.path, cache / "lists"), packages, log=log, why=why, layer=layer)
        base = _dpkg_versions(self.path / "var/lib/dpkg")
        return {p: v for p, v in _dpkg_versions(layer.upper / "var/lib/dpkg").items() if base.get(p) != v}

    def _apt_install(self, offered: set[str], packages: Sequence[str], *, log: IO[str], why: str,
                     root: Path | None = None, layer: Layer | None = None) -> None:
        """apt-get install into ``root`` or ``layer``: ONE message for packages the arch lacks (``offered``
        are the names apt's lists have) or a failed install, naming ``why`` (the setting asking for them)."""
        absent = [p for p in packages if p.split(":")[0].split("=")[0] not in offered]
        if absent:
            raise EnvironmentProblem(
                f"Debian package{'s' if len(absent) > 1 else ''} {', '.join(absent)} "
                f"({why}) do{'es' if len(absent) == 1 else ''} not exist for {self.debian_arch} in Debian "
                f"{self.suite} ({self.mirror}); check the name on packages.debian.org, remove it, or build with "
                f"another [emulation].suite"
            )
        proc = self.exec(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], root=root,
                         layer=layer, log=log, check=False, echo=_apt_progress)
        if proc.returncode != 0:
            where = f"a layer of the {self.label}" if layer else f"the {self.label}"
            raise EnvironmentProblem(
                f"installing {', '.join(packages)} ({why}) in {where} ({self.arch} {self.suite}) failed: "
                f"{_error_line(proc.stdout, fallback=False)}"
            )

    @contextlib.contextmanager
    def _log(self, log: IO[str] | None):
        if log is not None:
            yield log
            return
        self.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8", errors="replace") as f:
            f.write(f"\n# {utcnow()}\n")
            yield f

    # --- create / update / remove ----------------------------------------------------
    def _leftovers(self) -> list[Path]:
        return [p for p in self.parent.glob(f".{self.name}.*-*") if p.is_dir()]

    def _discard_leftovers(self) -> None:
        """Half-made folders of interrupted creations (only ever called under the admin lock)."""
        for p in self._leftovers():
            if p.name.startswith(f".{self.name}.run-"):
                continue  # per-command /tmp folders of running builds
            ui.info(f"removing {p} (left by an interrupted rootfs creation)")
            remove_tree(p)

    def ensure(self, *, log: IO[str] | None = None) -> dict:
        """The stamp of a ready rootfs, creating it (or recreating a half-updated one) first if needed."""
        stamp = self.stamp()
        if stamp is None and (self.path / UPDATING).is_file():
            ui.warn(f"the rootfs at {self.path} was left half-updated by an interrupted update; finishing it")
            try:
                stamp = self.update()
            except FactoryError as e:
                ui.warn(f"finishing the update failed ({e}); the rootfs is made afresh")
        if stamp is None:
            with self._admin_lock():
                stamp = self.stamp()
                if stamp is None:
                    self._create_locked(log=log)
                    stamp = self.stamp()
        self.check_matches(stamp)
        missing = self.missing(self.extra_packages)
        if missing:
            self.install(missing, log=log, why="[emulation].packages")
            stamp = self.stamp()
        return stamp

    def create(self, *, replace: bool = False) -> dict:
        with self._admin_lock():
            if self.ready and not replace:
                ui.info(f"the {self.arch} {self.suite} {self.label} at {self.path} exists already "
                        f"(recreate it with: nox -s rootfs -- create --replace)")
                return self.stamp()
            self._create_locked(log=None)
            return self.stamp()

    def _create_locked(self, *, log: IO[str] | None) -> None:
        """Make the rootfs in a temporary folder, then swap it in for whatever is at the path (a ready or
        half-updated rootfs); a folder that is not a wheelfactory rootfs is refused. Under the admin lock."""
        self._discard_leftovers()
        if self.path.exists() and not self.ready:
            if (self.path / UPDATING).exists():
                ui.warn(f"the rootfs at {self.path} was left half-updated by an interrupted update; recreating it")
            else:
                raise EnvironmentProblem(
                    f"{self.path} exists but is not a wheelfactory rootfs (no {STAMP}); remove it or point "
                    f"[emulation].rootfs at another folder"
                )
        problem = host_problem(self.arch, making_rootfs=True)
        if problem:
            raise EnvironmentProblem(problem)
        self.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.parent).free
        if free < MIN_FREE_BYTES:
            raise EnvironmentProblem(
                f"only {human_size(free)} free in {self.parent}; a {self.arch} rootfs needs about "
                f"{human_size(MIN_FREE_BYTES)} while it is made. Free some space or set [emulation].rootfs "
                f"to a folder on a bigger disk"
            )
        tmp = self.parent / f".{self.name}.creating-{os.getpid()}-{secrets.token_hex(4)}"
        t0 = time.monotonic()
        ui.info(f"creating the {self.arch} Debian {self.suite} {self.label} at {self.path} "
                f"(mmdebstrap from {self.mirror}; takes a few minutes)")
        try:
            with self._log(log) as lg:
                steps, offered_pythons, facts = self._make(tmp, lg)
                seconds = round(time.monotonic() - t0, 1)
                now = utcnow()
                self._write_stamp(tmp, created_at=now, updated_at=now, creation_seconds=seconds,
                                  mmdebstrap=_tool_version(["mmdebstrap", "--version"]),
                                  packages=sorted(set(self.base_packages) | set(self.extra_packages)),
                                  installed_on_demand=[], suite_pythons=offered_pythons, creation_steps=steps,
                                  **facts)
            with self._use_lock(shared=False):
                trash = None
                if self.path.exists():
                    trash = self.parent / f".{self.name}.trash-{secrets.token_hex(4)}"
                    os.rename(self.path, trash)
                os.rename(tmp, self.path)
            if trash:
                remove_tree(trash)
        except BaseException as e:
            remove_tree(tmp)
            if isinstance(e, KeyboardInterrupt):
                ui.error("rootfs creation interrupted; nothing half-made was left behind")
            raise
        info = self.info()
        facts = [human_size(info["size"]), f"glibc {info['glibc']}",
                 *([f"gcc {info['gcc']}"] if info.get("gcc") else []),  # the clean system has none
                 *([f"Python {', '.join(info['pythons'])}"] if info["pythons"] else [])]  # the native rootfs none
        ui.info(f"{self.label} ready in {seconds:.0f}s: {', '.join(facts)}")

    @property
    def _staged(self) -> bool:
        """Whether this creation makes the clean stage first (a build rootfs of the clean system's variant)."""
        return self.makes_clean_stage and self.variant == CLEAN_VARIANT

    def _make(self, target: Path, log: IO[str]) -> tuple[dict[str, float], list[str], dict]:
        """Make the system in the empty folder ``target``: the seconds each step took, the Pythons the
        suite offers (X.Y), and facts for the stamp. A staged build rootfs is mmdebstrap with the clean
        system's packages, the clean system's Pythons (then kept as the seed), then the build packages."""
        steps = self._mmdebstrap(target, log, include=CLEAN_PACKAGES if self._staged else self.base_packages)
        facts = {}
        if self._staged:
            t = time.monotonic()
            offered = self.available(target)
            want = [p for v in self.wanted_pythons if all(p in offered for p in clean_python_packages(v))
                    for p in clean_python_packages(v)]
            want = self.missing(want, root=target)
            self._copy_host_files(target)
            if want:
                ui.info(f"  clean stage: installing {', '.join(want)}")
                self._install(target, want, log=log, why="target.pythons", lists_fresh=True, keep_lists=True)
            steps["clean stage: the clean system's Pythons"] = round(time.monotonic() - t, 1)
            stage = round(sum(steps.values()), 1)
            t = time.monotonic()
            self._keep_seed(target, stage_seconds=stage, suite_pythons=suite_pythons(offered))
            steps["clean stage: kept for the clean system"] = round(time.monotonic() - t, 1)
            facts["clean_stage_seconds"] = stage
        t = time.monotonic()
        offered_pythons = self._finish(target, log, base=self._staged)
        steps["after mmdebstrap (Pythons, packages, clean-up)"] = round(time.monotonic() - t, 1)
        return steps, offered_pythons, facts

    def _keep_seed(self, root: Path, **facts) -> None:
        """Copy the clean stage at ``root`` to ``seed_path`` (replacing an older one), for the next
        creation of the clean system to take instead of running mmdebstrap again (CleanSystem._make)."""
        tmp = self.parent / f".{self.name}.seeding-{os.getpid()}-{secrets.token_hex(4)}"  # our leftovers
        try:
            subprocess.run(["cp", "-a", "--reflink=auto", str(root), str(tmp)], check=True, capture_output=True)
            self._clean_apt(tmp)  # lists and debs are not part of a system
            atomic_write_text(tmp / SEED, json.dumps(
                {"made_at": time.time(), "arch": self.arch, "suite": self.suite, "mirror": self.mirror,
                 "variant": self.variant, "slim": self.slim, "apt_options": self.apt_options, **facts},
                indent=2, sort_keys=True) + "\n")
            if self.seed_path.exists():
                remove_tree(self.seed_path)
            os.rename(tmp, self.seed_path)
        except BaseException:
            remove_tree(tmp)
            raise

    def _mmdebstrap(self, target: Path, log: IO[str], *, include: Sequence[str]) -> dict[str, float]:
        """Run mmdebstrap into ``target``; returns the seconds each of its steps took (its "I:" lines)."""
        archives = "$1/var/cache/apt/archives"
        # .debs already in the shared apt cache (those the build rootfs, an earlier creation or a
        # layer downloaded) are hard-linked in, so apt downloads only what it lacks: mmdebstrap's
        # documented sync-in pattern (it keeps and never unlinks debs it found there); apt checks
        # each one against the package lists' hashes, so a stale one is downloaded again.
        # _finish gives the debs (kept by the --skip's) back to the cache and removes them.
        setup = (f'mkdir -p "{archives}" && '
                 f'for f in {shlex.quote(str(self.apt_cache / "archives"))}/*.deb; do [ -f "$f" ] || continue; '
                 f'ln -f "$f" "{archives}/" 2>/dev/null || cp "$f" "{archives}/"; done')
        cmd = ["mmdebstrap", "--mode=root", "--format=directory", f"--arch={self.debian_arch}",
               f"--variant={self.variant}", "--skip=cleanup/apt/lists,cleanup/apt/cache,essential/unlink",
               f"--setup-hook={setup}",
               '--aptopt=APT::Install-Recommends "false"', '--aptopt=Acquire::Languages "none"',
               *(f"--aptopt={apt_option(o)}" for o in self.apt_options),
               f"--include={','.join(include)}"]
        excludes, includes = self.path_filters()
        cmd += [f"--dpkgopt=path-exclude={p}" for p in excludes]
        cmd += [f"--dpkgopt=path-include={p}" for p in includes]
        cmd += [self.suite, str(target), self.mirror]
        # Its own mount namespace: mounts mmdebstrap makes in the target vanish with it, even on kill -9.
        # Its own PID namespace: apt and dpkg below it die with it too.
        full = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--mount-proc",
                "--", *cmd]
        steps: dict[str, float] = {}
        last = [time.monotonic(), "setting up"]

        def progress(line: str) -> None:  # each "I: ..." line starts a step and ends the one before
            _mmdebstrap_progress(line)
            if line.startswith("I: ") and not line.startswith("I: automatically chosen"):
                now = time.monotonic()
                steps[last[1]] = round(steps.get(last[1], 0) + now - last[0], 1)
                last[:] = [now, line[3:].split(":")[0].strip().rstrip(".")]

        proc = run_streamed(full, display=shlex.join(cmd), cwd="/", log=log, check=False, echo=progress)
        if proc.returncode != 0:
            raise EnvironmentProblem(self._creation_failure(proc.stdout))
        return {k: v for k, v in steps.items() if v >= 0.5}

    def path_filters(self) -> tuple[list[str], list[str]]:
        """dpkg's path-exclude and path-include patterns for this rootfs (none unless ``slim``)."""
        return (list(SLIM_PATH_EXCLUDES), list(SLIM_PATH_INCLUDES)) if self.slim else ([], [])

    def _creation_failure(self, output: str) -> str:
        lines = [l.strip() for l in output.splitlines() if l.strip()]
        errors = [l for l in lines if l.startswith(("E:", "W: Failed", "Err:"))] or lines[-3:]
        text = " | ".join(errors[:3])[:700].rstrip(".")
        hint = ""
        low = output.lower()
        if "no space left" in low:
            hint = f" The disk holding {self.parent} is full: free some space or set [emulation].rootfs elsewhere."
        elif any(s in low for s in ("failed to fetch", "could not connect", "connection refused", "temporary failure",
                                    "does not have a release file", "404", "unable to connect", "could not resolve")):
            hint = (f" Check [emulation].mirror ({self.mirror}) and [emulation].suite ({self.suite}); a suite whose "
                    f"package list is inconsistent for {self.debian_arch} can fail too (sid and forky are known to "
                    f"work; apt-options = [\"Acquire::Check-Valid-Until=false\"] accepts an older mirror snapshot).")
        return (f"creating the {self.arch} {self.suite} rootfs with mmdebstrap failed: {text}.{hint} "
                f"Nothing was left half-made. Full log: {self.log_path}")

    def _finish(self, root: Path, log: IO[str], *, base: bool = False) -> list[str]:
        """After mmdebstrap (apt lists still there): wanted Pythons, extra packages (and the base packages
        when ``base``: mmdebstrap made only the clean stage), host files, cleanup."""
        try:
            offered = self.available(root)
            want = list(self.base_packages) if base else []
            have = self.pythons_in(root)
            for v in self.wanted_pythons:
                pkgs = self.python_packages(v)
                if v not in have and all(p in offered for p in pkgs):
                    want += pkgs
            want += [p for p in self.extra_packages if p not in want]
            want = self.missing(want, root=root)
            self._copy_host_files(root)
            if want:
                ui.info(f"  installing {', '.join(want)}")
                self._install(root, want, log=log, lists_fresh=True,
                              why=f"{'base packages, ' if base else ''}target.pythons and [emulation].packages")
        finally:
            self._keep_debs(root)
            self._clean_apt(root)
        self._copy_host_files(root)
        return suite_pythons(offered)

    def _keep_debs(self, root: Path) -> None:
        """Hard-link (else copy) the .debs apt left in ``root`` into the shared apt cache, for the next
        creation (the clean system after the build rootfs) and the throwaway layers."""
        dest = self.apt_cache / "archives"
        debs = list((root / "var/cache/apt/archives").glob("*.deb"))
        if debs:
            (dest / "partial").mkdir(parents=True, exist_ok=True)  # apt in a layer wants it
        for deb in debs:
            if (dest / deb.name).exists():
                continue
            tmp = dest / f".{deb.name}.{secrets.token_hex(4)}"  # apt reads only *.deb; renamed when whole
            try:
                os.link(deb, tmp)
            except OSError:
                shutil.copyfile(deb, tmp)
            os.replace(tmp, dest / deb.name)

    def update(self) -> dict:
        """apt-get full-upgrade inside, packages completed, facts refreshed; untrusted while it runs.

        The stamp becomes the ``updating`` marker first (one rename), so an interrupted
        update leaves a rootfs no build trusts; running ``update`` again finishes it.
        """
        marker = self.path / UPDATING
        with self._admin_lock():
            if not self.ready and not marker.is_file():
                self._create_locked(log=None)
                return self.stamp()
            with self._use_lock(shared=False), self._log(None) as lg:
                if self.stamp_path.is_file():
                    os.replace(self.stamp_path, marker)
                else:
                    ui.info("finishing an update that was interrupted")
                try:
                    old = json.loads(marker.read_text())
                except ValueError:
                    old = None
                if not isinstance(old, dict) or old.get("schema") != STAMP_SCHEMA:
                    raise EnvironmentProblem(f"{marker} holds no stamp to finish the update from; "
                                             f"recreate the rootfs: nox -s rootfs -- create --replace")
                self.check_matches(old)
                ui.info(f"updating the {self.arch} {self.suite} {self.label} at {self.path}")
                t0 = time.monotonic()
                self._copy_host_files(self.path)
                try:
                    self.exec(["sh", "-c", "dpkg --configure -a && apt-get update -q && "
                               "apt-get -y -q -o Dpkg::Options::=--force-confold full-upgrade"],
                              log=lg, echo=_apt_progress)
                    want = list(self.base_packages) + list(self.extra_packages)
                    have = self.pythons_in(self.path)
                    offered = self.available(self.path)
                    for v in self.wanted_pythons:
                        pkgs = self.python_packages(v)
                        if v not in have and all(p in offered for p in pkgs):
                            want += pkgs
                    want = self.missing(want)
                    if want:
                        self._install(self.path, want, log=lg, lists_fresh=True,
                                      why="base packages, target.pythons, [emulation].packages")
                except EnvironmentProblem as e:
                    raise EnvironmentProblem(f"{e}. The rootfs stays untrusted: run `nox -s rootfs -- update` again, "
                                             f"or make it afresh with `nox -s rootfs -- create --replace`") from None
                finally:
                    self._clean_apt(self.path)
                stamp = self._write_stamp(self.path, base=old, updated_at=utcnow(),
                                          suite_pythons=suite_pythons(offered))
                marker.unlink()
                ui.info(f"rootfs updated in {time.monotonic() - t0:.0f}s: glibc {stamp['glibc']}, gcc {stamp['gcc']}, "
                        f"Python {', '.join(stamp['pythons'])}")
                return stamp

    def remove(self) -> bool:
        """Delete the rootfs (waits for running builds); True when there was one."""
        with self._admin_lock(), self._use_lock(shared=False):
            self._discard_leftovers()
            for p in self.parent.glob(f".{self.name}.run-*"):
                remove_tree(p)  # nobody runs: we hold the use lock exclusively
            if self.seed_path.exists():
                remove_tree(self.seed_path)
            if not self.path.exists():
                return False
            if not self.ready and not (self.path / UPDATING).exists():
                raise EnvironmentProblem(f"{self.path} is not a wheelfactory rootfs (no {STAMP}); not deleting it")
            trash = self.parent / f".{self.name}.trash-{secrets.token_hex(4)}"
            os.rename(self.path, trash)
            remove_tree(trash)
            return True

    @contextlib.contextmanager
    def in_use(self, *, log: IO[str] | None = None) -> Iterator[dict]:
        """Hold the rootfs for one command (shared lock), creating it first when needed."""
        while True:
            self.ensure(log=log)
            with self._use_lock(shared=True):
                stamp = self.stamp()
                if stamp is not None:
                    yield stamp
                    return
            # removed or being recreated between ensure() and the lock: go round again



class Layer:
    """A throwaway overlayfs layer: ``base`` read-only below, writes in ``upper``, seen at ``merged``.

    Mounted only inside each command's mount namespace (``mount_line``), never on the host.
    """

    def __init__(self, base: Path, folder: Path, apt_cache: Path):
        self.base, self.folder, self.apt_cache = base, folder, apt_cache
        self.merged, self.upper, self.work = folder / "root", folder / "upper", folder / "work"

    def mount_line(self) -> str:
        opts = f"lowerdir={self.base},upperdir={self.upper},workdir={self.work}"
        return f'mount -t overlay wheelfactory-layer -o {shlex.quote(opts)} "$R"'

    def apt_mounts(self) -> list[tuple[Path, str]]:
        """(host folder, path inside): apt's lists and downloads, shared by all layers of the arch and suite."""
        if not (self.apt_cache / "lists").is_dir():
            return []
        return [(self.apt_cache / "lists", "/var/lib/apt/lists"),
                (self.apt_cache / "archives", "/var/cache/apt/archives")]


def _dpkg_versions(admindir: Path) -> dict[str, str]:
    """package -> version of what a dpkg database holds as installed ({} when it has no status file)."""
    if not (admindir / "status").is_file():
        return {}
    out = subprocess.run(["dpkg-query", f"--admindir={admindir}", "-W", "-f=${Package} ${Version} ${db:Status-Status}\n"],
                         capture_output=True, text=True).stdout
    return {f[0]: f[1] for f in (line.split() for line in out.splitlines()) if len(f) == 3 and f[2] == "installed"}


def suite_pythons(offered: set[str]) -> list[str]:
    """The X.Y versions a suite offers with headers and venv (pythonX.Y-dev, pythonX.Y-venv)."""
    found = {m[1] for n in offered if (m := re.fullmatch(r"python(3\.\d+)-dev", n))}
    return sorted((v for v in found if f"python{v}-venv" in offered), key=lambda v: tuple(map(int, v.split("."))))


def _error_line(output: str, *, fallback: bool = True) -> str:
    """apt's first ``E:`` line; else (with ``fallback``) the last line of output; else "see the log"."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E:")]
    if errors:
        return errors[0]
    return lines[-1] if fallback and lines else "see the log"


def _tool_version(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return ""


def _mmdebstrap_progress(line: str) -> None:
    """mmdebstrap's own step lines ("I: downloading packages with apt...") are the progress."""
    if line.startswith("I: ") and not line.startswith("I: automatically chosen"):
        ui.info(f"  {line[3:].split(' in shell:')[0].rstrip()}")  # a hook's line: not its whole script


def _apt_progress(line: str) -> None:
    if line.startswith(("Setting up ", "E: ")):
        ui.info(f"  {line.rstrip()}")

