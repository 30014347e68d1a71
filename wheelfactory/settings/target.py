"""The target machine: its arch, the policy wheels are repaired to, and the wheel tags it accepts.

The one place that knows these rules:

* **Arch** is spelled as wheel tags and ``uname -m`` spell it (``riscv64``,
  ``x86_64``; Debian's ``amd64`` and ``arm64`` are aliases).
* **Policies** are auditwheel's names: ``manylinux_X_Y`` (PEP 600: glibc X.Y),
  or ``best`` (``--target host``: whatever policy auditwheel finds for the
  wheel, repaired with ``--plat auto``). A recipe's ``repair.policy`` overrides
  ``target.policy``.
* **Accepted tags** are what pip (through ``packaging.tags``) accepts on a
  machine of that arch with that glibc: for each CPython, ``cpython_tags`` then
  ``compatible_tags`` (pip's preference order) over the platforms
  ``manylinux_2_Y_ARCH`` down to ``manylinux_2_17_ARCH`` (``manylinux_2_5`` on
  x86), each followed by its PEP 513/571/599 legacy alias where one exists
  (``manylinux2014`` = 2.17, ``manylinux2010`` = 2.12, ``manylinux1`` = 2.5),
  as ``packaging.tags.platform_tags()`` lists them on such a machine; then
  ``linux_ARCH`` only where asked for (PyPI refuses ``linux_*`` uploads, our own
  index may still hold one). A ``best`` policy on this host's own arch means
  this host's glibc (``os.confstr``); elsewhere the newest policy auditwheel
  knows for the arch.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from collections.abc import Iterable
from dataclasses import dataclass

from packaging.tags import Tag, compatible_tags, cpython_tags

# uname -m spellings of the arches we may target, and their wheel-tag spelling.
ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}
BEST = "best"
# auditwheel's policy names (PEP 600) and platform tags; the only copies of these patterns.
POLICY = re.compile(r"^manylinux_(\d+)_(\d+)$")
PLATFORM = re.compile(r"^manylinux_(\d+)_(\d+)_(.+)$")
# PEP 513/571/599 names of glibc 2.5, 2.12 and 2.17 (packaging's _LEGACY_MANYLINUX_MAP).
LEGACY = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
# The oldest glibc packaging lists manylinux tags for (_manylinux.platform_tags).
OLDEST_GLIBC = {"x86_64": (2, 5), "i686": (2, 5)}
DEFAULT_OLDEST = (2, 17)
# The newest manylinux policy auditwheel (6.4) knows for riscv64, for "best" off-host.
NEWEST_KNOWN = (2, 39)


def host_arch() -> str:
    """This machine's arch as wheel tags spell it (``uname -m``, amd64 -> x86_64)."""
    m = platform.machine().lower()
    return ARCH_ALIASES.get(m, m)


def host_glibc() -> tuple[int, int]:
    """This machine's glibc version (2, Y); (2, 17) when it cannot be read (not glibc)."""
    text = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else None
    m = re.search(r"(\d+)\.(\d+)", text or "")
    return (int(m[1]), int(m[2])) if m else (2, 17)


def parse_policy(policy: str) -> tuple[int, int] | None:
    """``manylinux_2_39`` -> (2, 39); None for anything else (``best``, ``linux``)."""
    m = POLICY.match(policy)
    return (int(m[1]), int(m[2])) if m else None


def platform_glibc(platform_tag: str) -> tuple[int, int] | None:
    """The glibc of a manylinux platform tag (``manylinux_2_17_x86_64``, ``manylinux2014_x86_64``)."""
    m = PLATFORM.match(platform_tag)
    if m:
        return int(m[1]), int(m[2])
    for glibc, name in LEGACY.items():
        if platform_tag.startswith(name + "_"):
            return glibc
    return None


def reached_policy(platform_tags: Iterable[str]) -> str | None:
    """The most compatible manylinux policy among wheel platform tags (``manylinux_2_17``), or None."""
    found = [g for g in map(platform_glibc, platform_tags) if g]
    return f"manylinux_{min(found)[0]}_{min(found)[1]}" if found else None


@dataclass(frozen=True)
class Target:
    """An arch and a policy: what wheels are repaired to and which wheel tags the machine accepts."""

    arch: str
    policy: str  # manylinux_X_Y or "best"

    @classmethod
    def of(cls, config, recipe=None) -> "Target":
        """The config's target; a recipe's ``repair.policy`` overrides ``target.policy``."""
        policy = (recipe.repair.policy if recipe is not None else "") or config.target.policy
        return cls(config.target.arch, policy)

    @property
    def is_host(self) -> bool:
        return self.arch == host_arch()

    @property
    def glibc(self) -> tuple[int, int]:
        """The glibc a target machine has: the policy's, or for ``best`` this host's (on its arch)."""
        parsed = parse_policy(self.policy)
        if parsed:
            return parsed
        return host_glibc() if self.is_host else NEWEST_KNOWN

    @property
    def resolved_policy(self) -> str:
        """The policy as ``manylinux_X_Y`` (``best`` resolved through :attr:`glibc`)."""
        major, minor = self.glibc
        return f"manylinux_{major}_{minor}"

    def plat(self) -> str:
        """``auditwheel repair --plat``: ``manylinux_2_39_riscv64``, or ``auto`` for ``best``."""
        return "auto" if self.policy == BEST else f"{self.policy}_{self.arch}"

    def platforms(self, *, allow_linux: bool = False) -> list[str]:
        """The platform tags the target accepts, most specific first (packaging's order)."""
        major, newest = self.glibc
        oldest = OLDEST_GLIBC.get(self.arch, DEFAULT_OLDEST)[1]
        plats = []
        for minor in range(newest, oldest - 1, -1):
            plats.append(f"manylinux_{major}_{minor}_{self.arch}")
            if (major, minor) in LEGACY:
                plats.append(f"{LEGACY[(major, minor)]}_{self.arch}")
        return plats + ([f"linux_{self.arch}"] if allow_linux else [])

    @functools.cache
    def supported_tags(self, python: str, *, allow_linux: bool = False) -> tuple[Tag, ...]:
        """Tags a CPython ``python`` (``"3.12"``) on the target accepts, in pip's preference order."""
        major, minor = (int(x) for x in python.split(".")[:2])
        abi = f"cp{major}{minor}"
        plats = self.platforms(allow_linux=allow_linux)
        tags = [*cpython_tags((major, minor), abis=[abi], platforms=plats),
                *compatible_tags((major, minor), abi, plats)]
        return tuple(dict.fromkeys(tags))

    @functools.cache
    def tag_priority(self, python: str, *, allow_linux: bool = False) -> dict[Tag, int]:
        """:meth:`supported_tags` as tag -> rank (0 = the one pip prefers)."""
        return {t: i for i, t in enumerate(self.supported_tags(python, allow_linux=allow_linux))}

    def marker_env(self, python: str) -> dict[str, str]:
        """PEP 508 environment markers of a CPython ``python`` on the target (for resolving requirements)."""
        return {
            "implementation_name": "cpython",
            "implementation_version": f"{python}.0",
            "os_name": "posix",
            "platform_machine": self.arch,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": f"{python}.0",
            "python_version": python,
            "sys_platform": "linux",
            "extra": "",
        }
