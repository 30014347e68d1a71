"""Which Debian package ships a shared library, and which modules of a distribution to import.

Shared by the verify stage (build/verify.py: a wheel on the clean system), the
repair stage (a library ``repair.exclude`` leaves to the system must be in
``runtime.debian``) and the clean install (audit/clean_install.py): one
Contents-index lookup, one import check.

``packages_for`` answers from Debian's ``Contents-ARCH.gz`` of a mirror and
suite (cached in cache/debian/ a day, then revalidated with ETag /
Last-Modified); ``debian_packages_for`` asks ``apt-file`` first for this host's
arch and picks the mirror and suite of the arch (``audit.debian-*`` for the
host, ``emulation.*`` for an emulated target). ``DIST_IMPORT_CHECK`` is a
script run inside a venv (``python -I -c DIST_IMPORT_CHECK DIST``) that imports
every top-level module and every extension module in the distribution's file
list (its RECORD: the wheel's own files) and prints
``@@IMPORTS@@{module: error-or-null}``, then ``@@STDLIB-GAPS@@{module: stdlib module}`` for
the extension modules that need a standard-library module this Python lacks (tkinter).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import requests

from .. import ui
from .._util import http
from ..errors import EnvironmentProblem
from ..settings.factory import Config
from ..settings.target import host_arch
from .rootfs import DEBIAN_ARCH

# "libyaml-0.so.2: cannot open shared object file" -> libyaml-0.so.2
MISSING_LIB = re.compile(r"([\w.+-]+\.so(?:\.[\w]+)*): cannot open shared object file")
CONTENTS_MAX_AGE = 24 * 3600


class DebianLookupError(EnvironmentProblem):
    """The Contents index cannot be fetched."""
IMPORTS_MARK = "\n@@IMPORTS@@"

DIST_IMPORT_CHECK = r"""
import importlib, importlib.machinery as m, importlib.metadata as md, json, os, sys
dist = md.distribution(sys.argv[1])
suffixes = tuple(m.EXTENSION_SUFFIXES)
tops, exts, paths = [], [], {}
for f in dist.files or []:
    parts = f.parts
    if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith((".dist-info", ".data", ".egg-info")):
        continue
    leaf = parts[-1]
    suffix = next((s for s in suffixes if leaf.endswith(s)), None)
    mod = leaf[: -len(suffix)] if suffix else (leaf[:-3] if leaf.endswith(".py") else None)
    if mod is None or not all(p.isidentifier() for p in (*parts[:-1], mod)):
        continue
    if len(parts) == 1:
        tops.append(mod)
    elif len(parts) == 2 and mod == "__init__":
        tops.append(parts[0])
    if suffix:
        exts.append(".".join((*parts[:-1], mod)) if mod != "__init__" else ".".join(parts[:-1]))
        paths[exts[-1]] = os.path.realpath(dist.locate_file(f))
results, gaps = {}, {}
for name in sorted(set(tops)) + sorted(set(exts) - set(tops)):
    with open("/proc/self/maps") as maps:  # the shared objects this process has loaded
        loaded = {os.path.realpath(l.split(None, 5)[5].strip()) for l in maps if len(l.split(None, 5)) == 6}
    if name not in tops and paths.get(name) in loaded:
        results[name] = None  # its package loaded it under another name (cv2/cv2*.so as cv2._native)
        continue
    try:
        importlib.import_module(name)
        results[name] = None
    except BaseException as e:
        if name not in tops and isinstance(e, ImportError) and "does not define module export function" in str(e):
            continue  # a plain shared library shipped in the package (llama_cpp/lib/libggml.so), not a module
        gap = e.name if isinstance(e, ModuleNotFoundError) and e.name else ""
        if name not in tops and gap.partition(".")[0] in sys.stdlib_module_names:
            gaps[name] = gap  # PIL._imagingtk needs tkinter, which Debian ships apart (python3-tk)
            continue
        results[name] = f"{type(e).__name__}: {e}"
print("\n@@IMPORTS@@" + json.dumps(results))
print("@@STDLIB-GAPS@@" + json.dumps(gaps))
"""
GAPS_MARK = "\n@@STDLIB-GAPS@@"


def import_results(output: str) -> dict[str, str | None] | None:
    """DIST_IMPORT_CHECK's answer in a command's output (module -> error or None), or None when it crashed."""
    if IMPORTS_MARK not in output:
        return None
    try:
        return json.loads(output.rpartition(IMPORTS_MARK)[2].strip().splitlines()[0])
    except (ValueError, IndexError):
        return None


def stdlib_gaps(output: str) -> dict[str, str]:
    """Extension modules DIST_IMPORT_CHECK left out because they need a standard-library module this
    Python lacks (module -> that module: ``{"PIL._imagingtk": "tkinter"}``); not the wheel's fault,
    as Debian ships tkinter apart (python3-tk)."""
    if GAPS_MARK not in output:
        return {}
    try:
        return json.loads(output.rpartition(GAPS_MARK)[2].strip().splitlines()[0])
    except (ValueError, IndexError):
        return {}


def missing_library(error: str) -> str:
    """The soname an import error says cannot be opened ("" when that is not the cause)."""
    m = MISSING_LIB.search(error)
    return m.group(1) if m else ""


def contents_index(config: Config, mirror: str, suite: str, arch: str) -> bytes:
    """Debian's Contents-ARCH.gz of ``suite`` (main) on ``mirror``, cached a day and revalidated after.

    Raises DebianLookupError when it cannot be fetched and no copy is cached.
    """
    url = f"{mirror.rstrip('/')}/dists/{suite}/main/Contents-{arch}.gz"
    path = config.paths.cache / "debian" / f"Contents-{suite}-{arch}.gz"
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() and path.is_file() else {}
    if meta and meta.get("url", url) == url and time.time() - meta.get("fetched", 0) < CONTENTS_MAX_AGE:
        return gzip.decompress(path.read_bytes())
    headers = {}
    if meta.get("etag"):
        headers["If-None-Match"] = meta["etag"]
    if meta.get("last_modified"):
        headers["If-Modified-Since"] = meta["last_modified"]
    try:
        r = http.session(retries=3).get(url, headers=headers, timeout=(10, 300))
    except requests.RequestException as e:
        if path.is_file():
            return gzip.decompress(path.read_bytes())
        raise DebianLookupError(f"cannot fetch {url}: {e}") from None
    if r.status_code == 304 and path.is_file():
        meta["fetched"] = time.time()
    elif r.status_code == 200:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".part{os.getpid()}")
        tmp.write_bytes(r.content)
        os.replace(tmp, path)
        meta = {"fetched": time.time(), "etag": r.headers.get("ETag", ""),
                "last_modified": r.headers.get("Last-Modified", ""), "url": url}
    else:
        raise DebianLookupError(f"{url} answered HTTP {r.status_code}; check the mirror and suite in factory.toml "
                                f"(audit.debian-mirror / audit.debian-suite for this host's arch, "
                                f"emulation.mirror / emulation.suite for an emulated target)")
    meta_path.write_text(json.dumps(meta))
    return gzip.decompress(path.read_bytes())


def search_contents(contents: bytes, soname: str) -> list[str]:
    """Packages whose files end in /SONAME (library folders first), from a Contents index."""
    needle = b"/" + soname.encode()
    found: list[tuple[int, str]] = []
    pos = contents.find(needle)
    while pos != -1:
        end = pos + len(needle)
        if end < len(contents) and contents[end:end + 1] in (b" ", b"\t"):
            start = contents.rfind(b"\n", 0, pos) + 1
            stop = contents.find(b"\n", end)
            path, _, owners = contents[start:stop if stop != -1 else None].decode("utf-8", "replace").rpartition(" ")
            path = path.strip()
            rank = 0 if re.match(r"^(usr/)?lib/", path) else 1
            for owner in owners.split(","):
                found.append((rank, owner.strip().rsplit("/", 1)[-1]))
        pos = contents.find(needle, end)
    out: list[str] = []
    for _, pkg in sorted(found):
        if pkg not in out:
            out.append(pkg)
    return out


def packages_for(config: Config, sonames: Iterable[str], *, mirror: str, suite: str, arch: str) -> dict[str, list[str]]:
    """soname -> the Debian packages of ``arch`` that ship it; [] each (with a warning) when the index is out of reach."""
    sonames = sorted(set(sonames))
    if not sonames:
        return {}
    try:
        contents = contents_index(config, mirror, suite, arch)
    except EnvironmentProblem as e:
        ui.warn(f"cannot name the Debian packages: {e}")
        return {so: [] for so in sonames}
    return {so: search_contents(contents, so) for so in sonames}


def host_debian_suite(config: Config) -> str:
    """audit.debian-suite, else this host's Debian codename (/etc/os-release), else sid."""
    if config.audit.debian_suite:
        return config.audit.debian_suite
    try:
        fields = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    except OSError:
        return "sid"
    if fields.get("ID", "").strip('"') == "debian" and fields.get("VERSION_CODENAME"):
        return fields["VERSION_CODENAME"].strip('"')
    return "sid"


def host_debian_arch() -> str:
    """Debian's name for this host's arch (dpkg, else a table: x86_64 -> amd64)."""
    try:
        out = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
        if out:
            return out
    except OSError:
        pass
    return DEBIAN_ARCH.get(host_arch(), host_arch())


def _apt_file(soname: str) -> list[str] | None:
    """apt-file's answer, or None when apt-file is missing or has no Contents data."""
    if not shutil.which("apt-file"):
        return None
    r = subprocess.run(["apt-file", "search", "--regexp", f"/{re.escape(soname)}$"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode not in (0, 1) or "apt-file update" in r.stderr:
        return None
    pkgs = []
    for line in r.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        if pkg and pkg not in pkgs and "/lib" in path:
            pkgs.append(pkg)
    return pkgs if r.returncode == 0 else None


def debian_packages_for(config: Config, sonames: Iterable[str], arch: str | None = None) -> dict[str, list[str]]:
    """soname -> the Debian packages of ``arch`` that ship it.

    ``arch``: a Debian architecture name (default: this host's). For the host, apt-file
    answers where it is set up, else the Contents index of ``audit.debian-mirror`` /
    the host's suite; another arch is an emulated target, looked up in the suite and
    mirror of its rootfs (``emulation.suite``, ``emulation.mirror``). When the index
    cannot be fetched, the sonames map to [] and a warning says why.
    """
    sonames = sorted(set(sonames))
    host = host_debian_arch()
    result: dict[str, list[str]] = {}
    todo = []
    for so in sonames:
        via_apt_file = _apt_file(so) if arch in (None, host) else None
        if via_apt_file is None:
            todo.append(so)
        else:
            result[so] = via_apt_file
    if arch in (None, host):
        mirror, suite = config.audit.debian_mirror, host_debian_suite(config)
    else:
        mirror, suite = config.emulation.mirror, config.emulation.suite
    result.update(packages_for(config, todo, mirror=mirror, suite=suite, arch=arch or host))
    return result
