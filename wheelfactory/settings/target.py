"""The target machine: its arch, the policy wheels are repaired to, and the wheel tags it accepts.

The one place that knows arch spellings and manylinux policy names.
"""

from __future__ import annotations

import platform

# uname -m spellings of the arches we may target, and their wheel-tag spelling.
ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def host_arch() -> str:
    """This machine's arch as wheel tags spell it (``uname -m``, amd64 -> x86_64)."""
    m = platform.machine().lower()
    return ARCH_ALIASES.get(m, m)
