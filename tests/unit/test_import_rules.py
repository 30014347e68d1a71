"""The engine's import rules (.importlinter): stages import downward only, and no module cycles."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import REPO


def test_lint_imports_keeps_every_contract():
    exe = shutil.which("lint-imports")
    if exe is None:  # import-linter is a test extra everywhere but riscv64 (grimp has no riscv64 wheel)
        pytest.skip("lint-imports is not installed (pip install -e '.[test]')")
    # --no-cache: the suite may run as a user who cannot write to the checkout
    proc = subprocess.run([exe, "--config", str(REPO / ".importlinter"), "--no-cache"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_no_module_imports_inside_a_function_to_dodge_a_cycle():
    """An import inside a function is allowed only for start-up speed, and then says so."""
    import ast

    offenders = []
    for path in sorted((REPO / "wheelfactory").rglob("*.py")):
        if "scripts" in path.parts:  # run inside target environments, outside the package
            continue
        tree = ast.parse(path.read_text())
        lines = path.read_text().splitlines()
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.ImportFrom) and node.level > 0 or (
                        isinstance(node, (ast.Import, ast.ImportFrom)) and "wheelfactory" in ast.unparse(node)):
                    said = " ".join(lines[max(0, node.lineno - 3):node.end_lineno]).lower()
                    if "slow" not in said and "start-up" not in said and "startup" not in said:
                        offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []
