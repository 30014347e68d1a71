"""The riscv64 systems the emulation tests share: one build rootfs and one clean system per session.

Made from scratch in a temporary cache, or reused from the cache folder that
WHEELFACTORY_TEST_EMULATION_CACHE names (kept between runs to iterate locally).
Not skipped when the host cannot emulate: the fixture fails with the runner's message.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from conftest import write_project
from wheelfactory.runners.clean import CleanSystem
from wheelfactory.runners.emulated import emulation_problem
from wheelfactory.runners.rootfs import Rootfs
from wheelfactory.settings.factory import load_config

CACHE_ENV = "WHEELFACTORY_TEST_EMULATION_CACHE"


def emu_project(root: Path, cache: Path, *, recipes=(), config: str = "") -> Path:
    """A project with the DEFAULT target (riscv64, manylinux_2_39) sharing the session's cache/rootfs."""
    return write_project(root, recipes=list(recipes), host_target=False,
                         config=f'[paths]\ncache = "{cache}"\n' + textwrap.dedent(config))


@pytest.fixture(scope="session")
def emu_cache(tmp_path_factory) -> Path:
    """The cache folder holding the session's riscv64 build rootfs (made first when missing)."""
    cache = Path(os.environ.get(CACHE_ENV) or tmp_path_factory.mktemp("emulation-cache"))
    config = load_config(emu_project(tmp_path_factory.mktemp("emu-setup"), cache))
    problem = emulation_problem(config)
    if problem:
        pytest.fail(f"emulated builds cannot run on this machine: {problem}")
    Rootfs(config).create()  # from scratch, unless CACHE_ENV points at a cache that has one
    return cache


@pytest.fixture(scope="session")
def clean_cache(emu_cache, tmp_path_factory) -> Path:
    """``emu_cache`` with the clean system of the target beside the build rootfs."""
    CleanSystem(load_config(emu_project(tmp_path_factory.mktemp("clean-setup"), emu_cache))).create()
    return emu_cache
