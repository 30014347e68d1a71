"""The build command's own errors: each one clear message and a non-zero exit, nothing built."""

from __future__ import annotations

import pytest

from conftest import write_project
from support.cli import run_build
from wheelfactory import cli
from wheelfactory.build import attempt
from wheelfactory.cli import build as build_cli
from wheelfactory.settings.target import host_arch


def _run(root, *argv):
    with pytest.raises(SystemExit) as e:
        cli.run(build_cli.build_command, list(argv), root=root)
    return e.value.code


def test_a_host_that_cannot_build_the_target_says_what_to_do(tmp_path, capsys):
    other = "riscv64" if host_arch() != "riscv64" else "x86_64"
    root = write_project(tmp_path / "p", recipes=["multidict"], host_target=False,
                         config=f'[target]\narch = "{other}"\n')
    assert _run(root, "multidict", "--runner", "native") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert f"this host is {host_arch()} but the target arch is {other}" in err
    assert "--runner emulated" in err and "--target host" in err
    assert not (root / "dist").exists() and not (root / "logs").exists()


def test_unknown_recipe_is_named_with_a_suggestion(tmp_path, capsys):
    root = write_project(tmp_path / "p", recipes=["multidict"])
    assert _run(root, "multidcit") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "no recipe 'multidcit'" in err and "did you mean 'multidict'" in err


def test_a_python_the_runner_lacks_is_an_error_naming_it(tmp_path, capsys):
    root = write_project(tmp_path / "p", recipes=["multidict"])
    assert _run(root, "multidict", "--python", "3.99") == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "Python 3.99 not found on the native runner" in err
    assert not (root / "dist").exists()


def test_no_recipe_named_is_a_usage_error(tmp_path, capsys):
    root = write_project(tmp_path / "p")
    assert build_cli.build_command([], root=root) == 2
    assert "name at least one recipe, or --all" in capsys.readouterr().err


def test_a_python_that_is_no_version_is_a_usage_error_before_anything_runs(tmp_path):
    """Not a search for Python "3.x" (on the emulated runner, after a rootfs is made): argparse says no."""
    root = write_project(tmp_path / "p", recipes=["multidict"])
    r = run_build(root, "multidict", "--python", "3.x")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    [line] = [x for x in r.stderr.splitlines() if "error:" in x]
    assert line.endswith("error: argument --python: '3.x' is not a CPython version X.Y; write e.g. --python 3.12")
    assert sorted(p.name for p in root.iterdir()) == ["factory.toml", "patches", "recipes"]


@pytest.mark.parametrize("filename, python, fits", [
    ("a-1-cp311-cp311-manylinux_2_17_x86_64.whl", "3.11", True),
    ("a-1-cp311-cp311-manylinux_2_17_x86_64.whl", "3.12", False),
    ("a-1-cp39-abi3-manylinux_2_17_x86_64.whl", "3.11", True),
    ("a-1-cp312-abi3-manylinux_2_17_x86_64.whl", "3.11", False),
    ("a-1-py3-none-any.whl", "3.13", True),
])
def test_dependency_wheels_are_matched_to_each_python(filename, python, fits):
    from pathlib import Path

    assert attempt.wheel_fits(Path(filename), python) is fits
