"""Shared by the benchmarks: a throwaway project aimed at this machine, and a timed build-all."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_project(root: Path, recipes: list[str], *, config: str = "", python: str | None = None) -> Path:
    """factory.toml for the host arch + copies of the repo's recipes (and patches)."""
    from wheelfactory.settings.target import host_arch

    python = python or f"{sys.version_info[0]}.{sys.version_info[1]}"
    root.mkdir(parents=True, exist_ok=True)
    (root / "factory.toml").write_text(
        f'[target]\narch = "{host_arch()}"\npolicy = "best"\npythons = ["{python}"]\n\n{config}'
    )
    for name in recipes:
        dest = root / "recipes" / name
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(REPO / "recipes" / name, dest)
        if (REPO / "patches" / name).is_dir():
            shutil.rmtree(root / "patches" / name, ignore_errors=True)
            shutil.copytree(REPO / "patches" / name, root / "patches" / name)
    return root


def set_build_config(root: Path, text: str) -> None:
    """Replace the [build] table of the project's factory.toml."""
    config = (root / "factory.toml").read_text().split("\n[build]\n")[0].rstrip("\n")
    (root / "factory.toml").write_text(f"{config}\n\n[build]\n{text}\n")


def clear_outputs(root: Path) -> None:
    for d in ("dist", "logs", "build"):
        shutil.rmtree(root / d, ignore_errors=True)


def timed_build(root: Path, argv: list[str]) -> float:
    from wheelfactory.cli import build as build_cli

    start = time.monotonic()
    rc = build_cli.build_command([*argv, "--target", "host"], root=root)
    seconds = time.monotonic() - start
    if rc != 0:
        raise SystemExit(f"build {' '.join(argv)} failed (exit {rc}); see {root / 'logs'}")
    return seconds
