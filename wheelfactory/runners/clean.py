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

It is not made twice. A build rootfs of the same variant is made on top of
exactly this package set: mmdebstrap with ``ca-certificates``, then the Pythons
(its "clean stage"), then the build packages. A copy of the stage is left beside
it (``.<clean system>.seed``), and the next creation of the clean system takes it
with one rename instead of running mmdebstrap again, when it was made for the
same arch, suite, mirror, variant, path filters, apt options and Pythons less
than a day ago (``CleanSystem._usable_seed``). Otherwise (the clean system made
apart, an old or foreign seed) mmdebstrap makes it from scratch.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from .. import ui
from .._util.fs import remove_tree
from ..settings.factory import Config
from .emulated import EmulatedRunner
from .rootfs import (
    CLEAN_PACKAGES,
    CLEAN_VARIANT,
    SEED,
    SEED_MAX_AGE,
    Rootfs,
    clean_python_packages,
    clean_system_path,
)


class CleanSystem(Rootfs):
    """The clean system of the ``[emulation]`` target (it need not exist yet)."""

    label = "clean system"
    makes_clean_stage = False

    @property
    def base_packages(self) -> list[str]:
        """ca-certificates, and the wanted Pythons when the build rootfs says the suite has them: then they
        go into mmdebstrap's one apt run (else _finish adds them after; a second apt run costs minutes)."""
        offered = (Rootfs(self.config).stamp() or {}).get("suite_pythons") or []
        return [*CLEAN_PACKAGES, *(p for v in self.wanted_pythons if v in offered for p in self.python_packages(v))]

    def __init__(self, config: Config):
        super().__init__(config)
        self.path = clean_system_path(self.path)
        self.name = self.path.name
        self.variant = CLEAN_VARIANT
        self.extra_packages = []  # [emulation].packages are for builds

    python_packages = staticmethod(clean_python_packages)

    @staticmethod
    def python_files(version: str) -> list[str]:
        return [f"usr/bin/python{version}", f"usr/lib/python{version}/ensurepip/__init__.py"]

    def _make(self, target: Path, log: IO[str]) -> tuple[dict[str, float], list[str], dict]:
        """Take the clean stage the build rootfs left (one rename) when it is usable, else mmdebstrap."""
        seed = self._usable_seed()
        if seed is None:
            return super()._make(target, log)
        t = time.monotonic()
        ui.info(f"  taking the clean stage the build rootfs made {(time.time() - seed['made_at']) / 60:.0f} min ago "
                f"({self.seed_path})")
        os.rename(self.seed_path, target)
        (target / SEED).unlink()
        self._copy_host_files(target)
        steps = {"taking the clean stage the build rootfs made": round(time.monotonic() - t, 1)}
        return steps, seed["suite_pythons"], {"clean_stage_seconds": seed["stage_seconds"]}

    def _usable_seed(self) -> dict | None:
        """The facts of the seed (Rootfs._keep_seed) when it is what mmdebstrap would make for this
        config now: same arch, suite, mirror, variant, path filters and apt options, every wanted
        Python the suite offers, made less than SEED_MAX_AGE ago. An unusable one is removed."""
        try:
            seed = json.loads((self.seed_path / SEED).read_text())
        except (OSError, ValueError):
            seed = None
        if seed is None:
            if self.seed_path.exists():
                remove_tree(self.seed_path)  # half-written or foreign: never trusted
            return None
        want = {"arch": self.arch, "suite": self.suite, "mirror": self.mirror, "variant": self.variant,
                "slim": self.slim, "apt_options": self.apt_options}
        differs = [k for k, v in want.items() if seed.get(k) != v]
        missing = [v for v in self.wanted_pythons if v in seed.get("suite_pythons", [])
                   and v not in self.pythons_in(self.seed_path)]
        age = time.time() - float(seed.get("made_at", 0))
        why = (f"it was made with another {', '.join(differs)}" if differs else
               f"it lacks Python {', '.join(missing)}" if missing else
               f"it is {age / 3600:.0f} h old" if age > SEED_MAX_AGE else "")
        if why:
            ui.info(f"  not using the clean stage at {self.seed_path} ({why}); making the clean system afresh")
            remove_tree(self.seed_path)
            return None
        return seed


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
