"""The Debian systems the rootfs tests share, made once per session.

``emu_cache``/``clean_cache``: the riscv64 build rootfs and clean system (emulated here).
``native_cache``: the build rootfs and clean system of this host's own arch, as a board
of that arch makes them (no QEMU).

Made from scratch in a temporary cache, or reused from the cache folder that
WHEELFACTORY_TEST_EMULATION_CACHE (riscv64) or WHEELFACTORY_TEST_NATIVE_CACHE (this
host's arch) names (kept between runs to iterate locally).
Not skipped when the host cannot run them: the fixture fails with the runner's message.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from conftest import write_project
from wheelfactory.runners.clean import CleanSystem, systems
from wheelfactory.runners.emulated import emulation_problem
from wheelfactory.runners.rootfs import Rootfs
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.target import host_arch

CACHE_ENV = "WHEELFACTORY_TEST_EMULATION_CACHE"
NATIVE_CACHE_ENV = "WHEELFACTORY_TEST_NATIVE_CACHE"


def emu_project(root: Path, cache: Path, *, recipes=(), config: str = "") -> Path:
    """A project with the DEFAULT target (riscv64, manylinux_2_39) sharing the session's cache/rootfs."""
    return write_project(root, recipes=list(recipes), host_target=False,
                         config=f'[paths]\ncache = "{cache}"\n' + textwrap.dedent(config))


@pytest.fixture(scope="session")
def emu_cache(tmp_path_factory) -> Path:
    """The cache folder holding the session's riscv64 build rootfs (made first when missing)."""
    # from scratch, unless CACHE_ENV points at a cache that has one
    return _made_cache(tmp_path_factory, CACHE_ENV, ("emulation-cache", "emu-setup"), emu_project,
                       "emulated builds", lambda config: Rootfs(config).create())


def _made_cache(tmp_path_factory, env: str, names: tuple[str, str], make_project, what: str, create) -> Path:
    """The cache folder ``env`` names (else a new one), after ``create(config)`` of a project using it."""
    cache = Path(os.environ.get(env) or tmp_path_factory.mktemp(names[0]))
    config = load_config(make_project(tmp_path_factory.mktemp(names[1]), cache))
    problem = emulation_problem(config)
    if problem:
        pytest.fail(f"{what} cannot run on this machine: {problem}")
    create(config)
    return cache


@pytest.fixture(scope="session")
def clean_cache(emu_cache, tmp_path_factory) -> Path:
    """``emu_cache`` with the clean system of the target beside the build rootfs."""
    CleanSystem(load_config(emu_project(tmp_path_factory.mktemp("clean-setup"), emu_cache))).create()
    return emu_cache


def native_project(root: Path, cache: Path, *, recipes=(), config: str = "") -> Path:
    """A project as a board of this host's arch sees it: that arch, manylinux_2_39, Python 3.13 (Debian sid has
    glibc >= 2.39 on every arch), sharing the session's cache/rootfs. Builds run in a native rootfs."""
    target = f'[target]\narch = "{host_arch()}"\npolicy = "manylinux_2_39"\npythons = ["3.13"]\n'
    return write_project(root, recipes=list(recipes), host_target=False,
                         config=f'{target}[paths]\ncache = "{cache}"\n' + textwrap.dedent(config))


@pytest.fixture(scope="session")
def native_cache(tmp_path_factory) -> Path:
    """The cache folder holding the session's build rootfs and clean system of this host's arch."""
    # from scratch, unless NATIVE_CACHE_ENV points at a cache that has them
    return _made_cache(tmp_path_factory, NATIVE_CACHE_ENV, ("native-cache", "native-setup"), native_project,
                       "builds in a native rootfs", lambda config: [s.create() for s in systems(config)])
