"""The container runner: which engine can run the manylinux image, and what it says when none can.

The recipes' cibuildwheel options and a real container build are in
tests/build/test_cibuildwheel.py.
"""

from __future__ import annotations

import io
import os
import subprocess

import pytest

from conftest import write_project
from wheelfactory.cli import build as build_cli
from wheelfactory.runners.container import ContainerRunner
from wheelfactory.errors import ConfigError, EnvironmentProblem
from wheelfactory.settings.factory import load_config


def test_no_engine_is_one_clear_error_and_nothing_changes(tmp_path, monkeypatch):
    root = write_project(tmp_path / "p", recipes=["multidict"], config='[container]\nengine = "podman"\n')
    (root / "dist").mkdir()
    (root / "dist" / "keep.txt").write_text("x")
    stub = tmp_path / "bin"
    stub.mkdir()
    monkeypatch.setenv("PATH", str(stub))  # nothing but the stand-ins below
    with pytest.raises(EnvironmentProblem, match="podman is not installed"):
        build_cli.build_command(["multidict", "--runner", "container"], root)
    # An engine that is there but cannot run containers (no daemon): its own words, and the fix.
    (stub / "podman").write_text("#!/bin/sh\necho 'Error: cannot connect to Podman socket' >&2\nexit 125\n")
    (stub / "podman").chmod(0o755)
    with pytest.raises(EnvironmentProblem) as e:
        build_cli.build_command(["multidict", "--runner", "container"], root)
    assert "podman is installed but cannot run containers (Error: cannot connect to Podman socket)" in str(e.value)
    assert sorted(p.name for p in (root / "dist").iterdir()) == ["keep.txt"]
    bad = write_project(tmp_path / "q", config='[container]\nengine = "lxc"\n')
    with pytest.raises(ConfigError, match="must be docker or podman"):  # checked when factory.toml loads
        load_config(bad)


def test_one_command_runs_in_the_image_with_its_folder_mounted(tmp_path, monkeypatch):
    """run() through a stand-in engine that answers `info` and echoes the rest of its command line."""
    root = write_project(tmp_path / "p", config='[container]\nengine = "podman"\nimage = "quay.io/pypa/img:1"\n')
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "podman").write_text('#!/bin/sh\n[ "$1" = info ] && exit 0\necho "engine got: $*"\n'
                                 'case "$*" in *fail*) exit 3;; esac\n')
    (stub / "podman").chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub}{os.pathsep}{os.environ['PATH']}")
    runner = ContainerRunner(load_config(root))
    log = io.StringIO()
    proc = runner.run(["python", "-c", "print(1)"], cwd=tmp_path, env={"A": "1 2", "UNSET": None}, log=log)
    said = proc.stdout.strip()
    assert said == (f"engine got: run --rm -v {tmp_path}:{tmp_path} -w {tmp_path} -e A=1 2 "
                    f"quay.io/pypa/img:1 python -c print(1)")
    assert f"$ podman run --rm -v {tmp_path}:{tmp_path}" in log.getvalue() and "[exit 0]" in log.getvalue()
    with pytest.raises(subprocess.CalledProcessError):
        runner.run(["fail"], cwd=tmp_path, log=log)
    assert runner.run(["fail"], cwd=tmp_path, log=log, check=False).returncode == 3
    assert runner.pythons(["3.12"]) == {"3.12": "/opt/python/cp312-cp312/bin/python"}
    assert runner.id.endswith("-img") and runner.describe()["image"] == "quay.io/pypa/img:1"
