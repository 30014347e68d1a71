"""Compiler caches for builds: ccache for C/C++, sccache or a kept cargo target dir for Rust.

``prepare(config, runner, recipe_name)`` returns the environment a build runs
with; the pipeline passes it as ``extra_env``. Nothing here is recipe-specific:
a pure-Python build simply never calls a compiler.

C/C++: a masquerade folder (``cc``, ``gcc``, ``c++`` … symlinked to ccache, the
way Debian's /usr/lib/ccache works) goes first on PATH, so every build system
— setuptools, meson, cmake, Rust's cc crate — compiles through ccache without
knowing. Builds unpack into fresh scratch folders and build isolation makes a
new venv each time, so the settings make cached objects reusable across folders:
``base_dir`` (absolute paths under the project root become relative), no
hashing of the working directory, the isolated venv's random include folder
left out of the hash, and the mtime/ctime "sloppiness" freshly unpacked files
need. Direct-mode hits then skip even the preprocessor.

Each build attempt gets its own ccache stats log (``CCACHE_STATSLOG``): ccache
appends one entry per compiler call, so the hits of one build (even of one
Python version, via ``stats_mark``/``read_stats``) are exact while other builds
run beside it. ``--print-stats`` of the shared cache would mix them.

Rust: a cargo target folder kept per recipe and arch (``CARGO_TARGET_DIR``):
the crates a project depends on compile once; with sccache installed,
``RUSTC_WRAPPER=sccache`` as well.

Everything runs through the runner, so inside an emulated rootfs the rootfs's own
ccache is used (and when the rootfs has none, builds simply run uncached).
"""

from __future__ import annotations

import io
import os
import shlex
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .. import ui
from ..settings.target import host_arch

# Compiler names build systems call; each becomes a ccache symlink when the
# runner has a compiler of that name. The arch-prefixed ones are what Debian's
# Python reports in sysconfig (CC = "x86_64-linux-gnu-gcc").
_BASE_COMPILERS = ("cc", "c++", "gcc", "g++", "clang", "clang++")

# "Sloppiness" that freshly unpacked sources need: their ctime is always "now",
# and __DATE__/__TIME__ in a few projects must not prevent caching.
SLOPPINESS = "include_file_ctime,include_file_mtime,time_macros,pch_defines,file_stat_matches,locale"

ENV_MARKER = "WHEELFACTORY_COMPILER_CACHE"  # which tools prepare() set up, for read_stats


@dataclass
class Probe:
    """What the runner has: ccache/sccache paths, compilers found, its PATH."""

    ccache: str = ""
    sccache: str = ""
    compilers: list[str] = field(default_factory=list)
    path: str = ""
    tmpdir: str = "/tmp"


_probes: dict[tuple, Probe] = {}
_probe_lock = threading.Lock()


def _compiler_names(arches: set[str]) -> list[str]:
    names = list(_BASE_COMPILERS)
    for arch in sorted(arches):
        names += [f"{arch}-linux-gnu-gcc", f"{arch}-linux-gnu-g++"]
    return names


def _runner_id(runner, arches: set[str]) -> str:
    """The runner's stable id ("native-x86_64", "emulated-riscv64-sid" …)."""
    rid = getattr(runner, "id", "")
    return rid or f"{getattr(runner, 'name', 'runner')}-{'-'.join(sorted(arches))}"


def probe(runner, arches: set[str], cwd: Path) -> Probe:
    """Ask the runner (once per runner and arch) what it has; runs one small shell command."""
    key = (_runner_id(runner, arches), tuple(sorted(arches)))
    with _probe_lock:
        if key in _probes:
            return _probes[key]
        names = _compiler_names(arches)
        script = (
            'echo "PATH=$PATH"; echo "TMPDIR=${TMPDIR:-/tmp}"; '
            'echo "ccache=$(command -v ccache)"; echo "sccache=$(command -v sccache)"; '
            f"for n in {' '.join(shlex.quote(n) for n in names)}; do "
            'command -v "$n" >/dev/null 2>&1 && echo "compiler=$n"; done; true'
        )
        out = ""
        try:
            log = io.StringIO()
            cwd.mkdir(parents=True, exist_ok=True)
            proc = runner.run(["sh", "-c", script], cwd=cwd, log=log, check=False, timeout=300)
            out = proc.stdout or ""
        except Exception as e:  # a broken runner shows up in the build itself; here: no cache
            ui.warn(f"could not check the {getattr(runner, 'name', 'build')} runner for ccache: {e}")
        found = Probe()
        for line in out.splitlines():
            k, _, v = line.partition("=")
            if k == "PATH":
                found.path = v.strip()
            elif k == "TMPDIR" and v.strip():
                found.tmpdir = v.strip().rstrip("/") or "/"
            elif k == "ccache":
                found.ccache = v.strip()
            elif k == "sccache":
                found.sccache = v.strip()
            elif k == "compiler" and v.strip():
                found.compilers.append(v.strip())
        _probes[key] = found
        return found


def cache_dir(config, value: str, default: str) -> Path:
    """A ``[build]`` folder setting's value, or ``default`` under ``[paths].cache``; relative to the root."""
    if not value:
        return config.paths.cache / default
    p = Path(value).expanduser()
    return p if p.is_absolute() else config.root / p


def _masquerade(folder: Path, ccache: str, compilers: list[str]) -> None:
    """Symlinks named like compilers pointing at ccache (rebuilt if ccache moved)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in compilers:
        link = folder / name
        if link.is_symlink() and os.readlink(link) == ccache:
            continue
        tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(ccache)
        os.replace(tmp, link)


class CacheEnv(Mapping):
    """The environment prepare() returns, worked out on first use.

    The pipeline reads it only when it really builds, so an attempt that turns
    out to be a no-op (every wheel already stored) never asks the runner
    anything: no emulator start, no rootfs check.
    """

    def __init__(self, compute: Callable[[], dict[str, str]]):
        self._compute = compute
        self._env: dict[str, str] | None = None
        self._lock = threading.Lock()

    @property
    def resolved(self) -> bool:
        return self._env is not None

    def _get(self) -> dict[str, str]:
        with self._lock:
            if self._env is None:
                self._env = self._compute()
            return self._env

    def __getitem__(self, key: str) -> str:
        return self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return f"CacheEnv({self._env!r})" if self.resolved else "CacheEnv(<not needed yet>)"


def prepare(config, runner, recipe_name: str, *, stats_log: Path | None = None) -> CacheEnv:
    """The environment for one build attempt of ``recipe_name`` (pass as ``extra_env``).

    ``stats_log`` is where ccache records this attempt's calls; default: a new
    file under ``<build>/ccache-stats/``. Empty when every cache is off.
    """
    return CacheEnv(lambda: _environment(config, runner, recipe_name, stats_log))


def _environment(config, runner, recipe_name: str, stats_log: Path | None) -> dict[str, str]:
    env: dict[str, str] = {}
    tools: list[str] = []
    build_root = config.paths.build
    arches = {host_arch(), config.arch}
    try:
        arches.add(runner.arch())
    except Exception:
        pass
    want_ccache = config.build.ccache
    want_sccache = config.build.sccache
    found = probe(runner, arches, build_root) if (want_ccache or want_sccache) else Probe()

    if want_ccache and found.ccache:
        ccdir = cache_dir(config, config.build.ccache_dir, "ccache")
        ccdir.mkdir(parents=True, exist_ok=True)
        # One masquerade folder per runner kind and arch: the symlink target is the
        # ccache of the machine the build runs on (host, rootfs or container).
        masq = ccdir / "bin" / _runner_id(runner, arches)
        _masquerade(masq, found.ccache, found.compilers)
        if stats_log is None:
            stamp = f"{os.getpid()}-{threading.get_ident()}-{os.urandom(4).hex()}"
            stats_log = build_root / "ccache-stats" / f"{recipe_name}-{stamp}.log"
        stats_log.parent.mkdir(parents=True, exist_ok=True)
        stats_log.touch()
        base = found.path or os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        env.update({
            "PATH": f"{masq}{os.pathsep}{base}",
            "CCACHE_DIR": str(ccdir),
            # Absolute paths under the project root (scratch folders, tool venvs) become
            # relative, and the working directory is not hashed: the same sources
            # unpacked into another folder hit the cache.
            "CCACHE_BASEDIR": str(config.root),
            "CCACHE_NOHASHDIR": "1",
            # setuptools adds the isolated build venv's (empty) include folder, whose
            # name is random, to every compile: leave it out of the direct-mode hash
            # (the manifest still checks every header actually included).
            "CCACHE_IGNOREOPTIONS": " ".join(
                f"-I{found.tmpdir}/{prefix}*" for prefix in ("build-env-", "pip-build-env-")
            ),
            "CCACHE_SLOPPINESS": SLOPPINESS,
            "CCACHE_MAXSIZE": config.build.ccache_max_size,
            "CCACHE_STATSLOG": str(stats_log),
        })
        tools.append("ccache")
    elif want_ccache and not found.ccache:
        _warn_once(f"ccache-missing-{getattr(runner, 'name', '')}",
                   f"ccache is not installed where builds run ({getattr(runner, 'name', 'runner')} runner); "
                   "C/C++ builds run uncached. Install it (Debian: apt-get install ccache; "
                   "emulated rootfs: add \"ccache\" to [emulation].packages)")

    # Rust: keep the target folder between builds of the same recipe and arch, so
    # dependency crates compile once. Cargo locks it, so parallel builds are safe.
    target = cache_dir(config, config.build.cargo_target_dir, "cargo-target") / config.arch / recipe_name
    env["CARGO_TARGET_DIR"] = str(target)
    cargo_home = config.build.cargo_home
    if cargo_home or getattr(runner, "name", "native") != "native":
        # Inside a rootfs or container the home folder is not kept: keep cargo's
        # registry and git checkouts in the cache folder instead.
        env["CARGO_HOME"] = str(cache_dir(config, config.build.cargo_home, f"cargo-home/{config.arch}"))
    tools.append("cargo-target-dir")
    if want_sccache and found.sccache:
        env["RUSTC_WRAPPER"] = found.sccache
        env["SCCACHE_DIR"] = str(cache_dir(config, config.build.sccache_dir, "sccache"))
        env["SCCACHE_CACHE_SIZE"] = config.build.ccache_max_size
        tools.append("sccache")
    env[ENV_MARKER] = ",".join(tools)
    return env


_warned: set[str] = set()


def _warn_once(key: str, msg: str) -> None:
    with _probe_lock:
        if key in _warned:
            return
        _warned.add(key)
    ui.warn(msg)


# --- reading the hit rate ------------------------------------------------------------

HIT_COUNTERS = ("direct_cache_hit", "preprocessed_cache_hit")
MISS_COUNTERS = ("cache_miss",)


def stats_mark(env: Mapping | None) -> int:
    """A position in this build's stats log; ``read_stats(env, since=mark)`` counts what came after."""
    path = (env or {}).get("CCACHE_STATSLOG")
    if not path:
        return 0
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def read_stats(env: Mapping | None, since: int = 0) -> dict | None:
    """The ccache hit counts of this build (after ``since``), or None when ccache was not used.

    {"tool": "ccache", "calls": N, "hits": H, "direct_hits": D, "preprocessed_hits": P,
     "misses": M, "uncacheable": U, "hit_rate": H / (H + M) or null}
    """
    env = env or {}
    path = env.get("CCACHE_STATSLOG")
    if not path or "ccache" not in env.get(ENV_MARKER, "ccache").split(","):
        return None
    try:
        with open(path, "rb") as f:
            f.seek(since)
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    counts = {"direct_hits": 0, "preprocessed_hits": 0, "misses": 0, "uncacheable": 0, "calls": 0}
    for entry in _entries(text):
        counts["calls"] += 1
        if "direct_cache_hit" in entry:
            counts["direct_hits"] += 1
        elif "preprocessed_cache_hit" in entry:
            counts["preprocessed_hits"] += 1
        elif "cache_miss" in entry:
            counts["misses"] += 1
        else:  # called for link, preprocessing only, unsupported option …
            counts["uncacheable"] += 1
    hits = counts["direct_hits"] + counts["preprocessed_hits"]
    cacheable = hits + counts["misses"]
    return {
        "tool": "ccache",
        **counts,
        "hits": hits,
        "hit_rate": round(hits / cacheable, 4) if cacheable else None,
    }


def _entries(text: str) -> list[set[str]]:
    """ccache's stats log: '# <input file>' then one counter name per line, per call."""
    entries: list[set[str]] = []
    current: set[str] | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            current = set()
            entries.append(current)
        elif line.strip() and current is not None:
            current.add(line.strip())
    return entries


def merge(stats: list[dict | None]) -> dict | None:
    """Sum several read_stats results (e.g. of each Python version) into one."""
    present = [s for s in stats if s]
    if not present:
        return None
    keys = ("calls", "direct_hits", "preprocessed_hits", "misses", "uncacheable", "hits")
    total = {"tool": "ccache", **{k: sum(s.get(k, 0) for s in present) for k in keys}}
    cacheable = total["hits"] + total["misses"]
    total["hit_rate"] = round(total["hits"] / cacheable, 4) if cacheable else None
    return total


def describe(stats: dict | None) -> str:
    """One short phrase for the summary line/table: 'ccache 41/42 hits (98%)'."""
    if not stats:
        return ""
    cacheable = stats["hits"] + stats["misses"]
    if not cacheable:
        return "ccache: no C/C++ compiled"
    return f"ccache {stats['hits']}/{cacheable} hits ({100 * stats['hits'] / cacheable:.0f}%)"


def finish(env: Mapping | None) -> None:
    """Remove this attempt's stats log once its numbers are in the records."""
    if isinstance(env, CacheEnv) and not env.resolved:
        return  # nothing was built, nothing was made
    path = (env or {}).get("CCACHE_STATSLOG")
    if path:
        Path(path).unlink(missing_ok=True)
