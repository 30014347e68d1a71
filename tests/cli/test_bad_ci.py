"""Bad CI and board settings as a user meets them (`invoke ci.workflow`, `invoke ci.plan`,
`invoke runners.status`): exit 1, exactly one error line, no traceback, the file and key (or
argument) named, the fix named, and dist/ and index/ byte-for-byte unchanged. (More label
cases, checked in-process: tests/ci/test_workflow.py.)
"""

from __future__ import annotations

import socket

import pytest
from conftest import write_project
from support.build import tree_snapshot
from support.cli import one_error, run_invoke


def _project(tmp_path, config: str):
    root = write_project(tmp_path / "p", recipes=["multidict"], config=config, host_target=False)
    for d in ("dist", "index"):
        (root / d).mkdir()
        (root / d / "kept.txt").write_text(d)
    return root


def _unchanged(root, before) -> bool:
    return {d: tree_snapshot(root / d) for d in ("dist", "index")} == before


@pytest.mark.parametrize("config, what, fix", [
    ('[ci]\nrunner-labels = ["ubuntu-24.04-riscv", "linux"]\n',
     "'ci.runner-labels' = ['ubuntu-24.04-riscv', 'linux'] is neither a self-hosted set",
     "fix: give one of those labels, add the label to [ci].hosted-labels"),
    ('[ci]\nrecipe-labels = { multidikt = "big" }\n',
     "'ci.recipe-labels' names 'multidikt', which has no recipe (did you mean 'multidict'?)",
     "fix the name, or remove the entry"),
    ('[paths]\ndist = "/var/tmp/wheelfactory-dist"\n',
     "'paths.dist' is outside the project (/var/tmp/wheelfactory-dist)",
     "set it to a path under "),
], ids=["hosted-set", "recipe-labels-name", "path-outside"])
def test_a_bad_ci_setting_is_named_with_its_fix(tmp_path, config, what, fix):
    root = _project(tmp_path, config)
    before = {d: tree_snapshot(root / d) for d in ("dist", "index")}
    line = one_error(run_invoke(root, "ci.workflow"))
    assert line.startswith(f"error: {root / 'factory.toml'}: ") and what in line and fix in line, line
    assert not (root / ".github").exists() and _unchanged(root, before)


def test_an_unknown_recipe_for_the_plan_names_the_known_ones(tmp_path):
    root = _project(tmp_path, "")
    before = {d: tree_snapshot(root / d) for d in ("dist", "index")}
    line = one_error(run_invoke(root, "ci.plan", "--recipes", "multidikt"))
    assert "no recipe 'multidikt' (did you mean 'multidict'?)" in line, line
    assert "pass known recipes (or 'all'): multidict" in line, line
    assert _unchanged(root, before)


def test_an_unreachable_runner_api_carries_the_reason_and_the_key(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = _project(tmp_path, f'[runners]\nscope = "octo/wheels"\napi-url = "http://127.0.0.1:{port}"\n'
                              f'token-env = "WF_TEST_ADMIN_TOKEN"\n')
    monkeypatch.setenv("WF_TEST_ADMIN_TOKEN", "not-a-real-token")
    before = {d: tree_snapshot(root / d) for d in ("dist", "index")}
    line = one_error(run_invoke(root, "runners.status"))
    assert f"cannot reach the GitHub API at http://127.0.0.1:{port} to list runners (connection refused" in line, line
    assert "check [runners].api-url and the network" in line and "not-a-real-token" not in line, line
    assert _unchanged(root, before)


def test_a_missing_admin_token_names_the_variable(tmp_path, monkeypatch):
    root = _project(tmp_path, '[runners]\nscope = "octo/wheels"\ntoken-env = "WF_TEST_ADMIN_TOKEN"\n')
    monkeypatch.delenv("WF_TEST_ADMIN_TOKEN", raising=False)
    line = one_error(run_invoke(root, "runners.status"))
    assert "$WF_TEST_ADMIN_TOKEN is not set: export a token with admin rights on octo/wheels" in line, line
    assert "[runners].token-env names the variable" in line, line
