"""The clean system: a pristine Debian rootfs of the target arch that wheels are checked on.

Beside the build rootfs (``rootfs.Rootfs``) each target has a second rootfs made
by mmdebstrap with its smallest variant that has apt (``apt``: the Essential:yes
set plus apt; ``minbase`` adds every Priority:required package) plus, for each configured Python the
suite offers, ``pythonX.Y`` and ``pythonX.Y-venv``, and ``ca-certificates``:
nothing else, never a build package. It is what a user's fresh board holds, so a
wheel that needs a library it neither bundles nor declares fails here as it
would fail there (the torch/libopenblas story of the field report).

It is a ``Rootfs`` with other packages and another folder
(``<build rootfs>-clean``): created, updated, removed, described and trusted
(the stamp rule: an interrupted creation is never used) exactly as the build
rootfs. Nothing ever runs in it directly: each verify or clean install works on
a throwaway overlay layer above it (``Rootfs.layer``) and installs only the
recipe's ``runtime.debian`` there, so nothing one run installs is seen by the next.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import IO

from ..settings.factory import Config
from .emulated import EmulatedRunner
from .rootfs import Rootfs

CLEAN_PACKAGES = ("ca-certificates",)
CLEAN_VARIANT = "apt"


class CleanSystem(Rootfs):
    """The clean system of the ``[emulation]`` target (it need not exist yet)."""

    label = "clean system"

    @property
    def base_packages(self) -> list[str]:
        """ca-certificates, and the wanted Pythons when the build rootfs says the suite has them: then they
        go into mmdebstrap's one apt run (else _finish adds them after; a second apt run costs minutes)."""
        offered = (Rootfs(self.config).stamp() or {}).get("suite_pythons") or []
        return [*CLEAN_PACKAGES, *(p for v in self.wanted_pythons if v in offered for p in self.python_packages(v))]

    def __init__(self, config: Config):
        super().__init__(config)
        self.path = self.path.with_name(f"{self.path.name}-clean")
        self.name = self.path.name
        self.variant = CLEAN_VARIANT
        self.extra_packages = []  # [emulation].packages are for builds

    @staticmethod
    def python_packages(version: str) -> list[str]:
        """What a user installs to run Python ``version`` (X.Y) in a venv: no headers, no compiler."""
        return [f"python{version}", f"python{version}-venv"]

    @staticmethod
    def python_files(version: str) -> list[str]:
        return [f"usr/bin/python{version}", f"usr/lib/python{version}/ensurepip/__init__.py"]


def systems(config: Config) -> list[Rootfs]:
    """The build rootfs and the clean system of the target, in that order (created, updated, removed together)."""
    return [Rootfs(config), CleanSystem(config)]


@contextlib.contextmanager
def clean_layer(config: Config, debian: Sequence[str], *, log: IO[str], why: str) -> Iterator[EmulatedRunner]:
    """A runner on a fresh throwaway layer of the clean system, with only ``debian`` installed into it.

    ``why`` names the setting the packages come from (for the message when one does not exist).
    The runner's ``installed`` maps each package the layer added to its version.
    """
    clean = CleanSystem(config)
    with clean.layer(log=log) as layer:
        runner = EmulatedRunner(config, rootfs=clean, layer=layer)
        runner.installed = clean.install_in_layer(layer, list(debian), log=log, why=why)
        yield runner
