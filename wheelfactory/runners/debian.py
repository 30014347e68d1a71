"""Which Debian package ships a shared library: ``apt-file`` where it is set up, else
Debian's Contents index of the configured mirror (``audit.debian-mirror``,
``audit.debian-suite``), cached a day in cache/debian/.

Used by the clean-install check (a library an import misses) and by the repair
stage (a library ``repair.exclude`` leaves to the system must be in
``runtime.debian``).
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

CONTENTS_MAX_AGE = 24 * 3600


class DebianLookupError(EnvironmentProblem):
    """The Contents index cannot be fetched."""


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


def _contents_index(config: Config, suite: str, arch: str) -> bytes:
    """Debian's Contents-ARCH.gz of ``suite`` (main), cached a day and revalidated after."""
    mirror = config.audit.debian_mirror.rstrip("/")
    url = f"{mirror}/dists/{suite}/main/Contents-{arch}.gz"
    path = config.paths.cache / "debian" / f"Contents-{suite}-{arch}.gz"
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() and path.is_file() else {}
    if meta and time.time() - meta.get("fetched", 0) < CONTENTS_MAX_AGE:
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
        raise DebianLookupError(f"cannot fetch {url} (audit.debian-mirror): {e}") from None
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
        raise DebianLookupError(f"{url} answered HTTP {r.status_code}; check audit.debian-mirror / "
                                f"audit.debian-suite in factory.toml")
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


def debian_packages_for(config: Config, sonames: Iterable[str], arch: str | None = None) -> dict[str, list[str]]:
    """soname -> the Debian packages that ship it (apt-file, else the mirror's Contents index).

    ``arch``: a Debian architecture name (default: this host's); apt-file answers for
    the host only, so another arch goes straight to the Contents index. When the
    index cannot be fetched, the sonames map to [] and a warning says why.
    """
    sonames = sorted(set(sonames))
    result: dict[str, list[str]] = {}
    todo = []
    for so in sonames:
        via_apt_file = _apt_file(so) if arch in (None, host_debian_arch()) else None
        if via_apt_file is None:
            todo.append(so)
        else:
            result[so] = via_apt_file
    if todo:
        suite, arch = host_debian_suite(config), arch or host_debian_arch()
        try:
            contents = _contents_index(config, suite, arch)
        except DebianLookupError as e:
            ui.warn(f"cannot name the Debian packages: {e}")
            return {**result, **{so: [] for so in todo}}
        for so in todo:
            result[so] = search_contents(contents, so)
    return result
