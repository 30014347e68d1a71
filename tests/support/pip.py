"""pip and uv as a user runs them: no user or site configuration, a fresh pip from PyPI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


def clean_env(tmp: Path) -> dict[str, str]:
    """No user/site pip or uv configuration (this machine's adds local indexes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1",
               UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp / "uv-cache"), UV_PYTHON_DOWNLOADS="never")
    return env


_MADE: dict[str, Path] = {}  # once per session, whichever test module asks first


@pytest.fixture(scope="session")
def pip_venv(tmp_path_factory) -> Path:
    """A bare venv with the current pip from PyPI (its --dry-run downloads no wheels)."""
    if "pip" not in _MADE:
        _MADE["pip"] = _make_pip_venv(tmp_path_factory.mktemp("pip-venv"))
    return _MADE["pip"]


def _make_pip_venv(d: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(d / "venv")], check=True)
    py = d / "venv" / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True, env=clean_env(d))
    return py


def pip(py: Path, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(py), "-m", "pip", *args], capture_output=True, text=True, env=env)
