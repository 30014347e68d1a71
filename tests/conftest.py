"""Shared fixtures: a throwaway project root so tests never touch the repo's dist/ or index/."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Session fixtures, registered once here: imported into each test module instead, each module would
# make its own (one build rootfs and clean system, one tools venv and download cache, one set of real
# wheels per session).
pytest_plugins = ["support.build", "support.emulation", "support.wheels"]


def write_project(root: Path, *, recipes: list[str] = (), config: str = "", host_target: bool = True) -> Path:
    """A project root with factory.toml and copies of the named repo recipes.

    A copy drops ``package.retired`` (multidict, propcache): the tests use them as
    ordinary, small recipes that build-all and the workflow build.

    ``host_target`` aims the config at this machine's arch (policy "best") so
    the whole pipeline runs natively on any host.
    """
    from wheelfactory.settings.target import host_arch

    root.mkdir(parents=True, exist_ok=True)
    target = (
        f'[target]\narch = "{host_arch()}"\npolicy = "best"\npythons = ["3.11"]\n' if host_target else ""
    )
    (root / "factory.toml").write_text(target + textwrap.dedent(config))
    (root / "recipes").mkdir(exist_ok=True)
    (root / "patches").mkdir(exist_ok=True)
    for name in recipes:
        shutil.copytree(REPO / "recipes" / name, root / "recipes" / name)
        copy = root / "recipes" / name / "recipe.toml"
        copy.write_text(re.sub(r"^retired = .*\n", "", copy.read_text(), flags=re.M))
        if (REPO / "patches" / name).is_dir():
            shutil.copytree(REPO / "patches" / name, root / "patches" / name)
    return root


@pytest.fixture
def project(tmp_path):
    """An empty project root aimed at the host arch; add recipes with write_project."""
    return write_project(tmp_path / "project")


def write_recipe(root: Path, name: str, text: str) -> Path:
    path = root / "recipes" / name / "recipe.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(autouse=True)
def _reset_build_cancellation():
    """An interrupted build_command leaves attempt.CANCELLED set for its worker
    threads; later tests in this process must start uncancelled."""
    yield
    from wheelfactory.build import attempt

    attempt.CANCELLED.clear()
