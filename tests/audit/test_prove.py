"""`invoke prove`: real host builds of tiny recipes, their proof written to docs/catalog-status.md
from docs/catalog-status.json, merged with earlier runs."""

from __future__ import annotations

import json

from support.build import make_project, tiny_recipe
from wheelfactory.audit import prove
from wheelfactory.cli import upkeep


def test_prove_writes_what_each_recipe_reached(tmp_path, shared_cache, sdist_server):
    root = make_project(tmp_path / "p", shared_cache)
    tiny_recipe(root, sdist_server, name="wf-tiny")
    tiny_recipe(root, sdist_server, variant="broken", name="wf-broken")
    assert upkeep.prove_command(root, ["wf-tiny", "wf-broken"], target="host") == 1  # one fell short
    page = (root / "docs" / "catalog-status.md").read_text()
    rows = {r["recipe"]: r for r in json.loads((root / "docs" / "catalog-status.json").read_text())}
    tiny, broken = rows["wf-tiny"], rows["wf-broken"]
    assert tiny["reached"] and tiny["level"] == "host" and tiny["wheel"].startswith("wf_tiny-1.0-")
    assert tiny["size"] == (root / "dist" / tiny["wheel"]).stat().st_size and tiny["backend"] == "setuptools"
    assert not broken["reached"] and broken["wheel"] == "" and "wf-broken" in broken["reason"]
    assert f"| wf-tiny | 1.0 | setuptools | host | yes | native | {tiny['wheel']} |" in page
    assert "| wf-broken | 1.0 | setuptools | host | no |" in page

    # A recipe that is gone loses its row; an up-to-date wheel keeps its recorded build time.
    (root / "recipes" / "wf-broken" / "recipe.toml").unlink()
    (root / "recipes" / "wf-broken").rmdir()
    assert upkeep.prove_command(root, ["wf-tiny"], target="host") == 0
    again = json.loads((root / "docs" / "catalog-status.json").read_text())
    assert [r["recipe"] for r in again] == ["wf-tiny"] and again[0]["seconds"] == tiny["seconds"] > 0


def test_merge_replaces_only_the_same_recipe_version_and_level():
    def row(recipe, level, reached, version="1.0"):
        return prove.Proof(recipe, version, "setuptools", level, reached, "native", "", 0, 1.0, "2026-11-30", "")

    old = [row("a", "host", False), row("a", "riscv64", True), row("gone", "host", True),
           row("a", "host", True, "0.9"), row("a", "host", True, "0.8")]  # 0.8 is no longer listed
    merged = prove.merge(old, [row("a", "host", True)], known={"a": ["1.0", "0.9"], "b": ["1.0"]})
    assert [(p.recipe, p.version, p.level, p.reached) for p in merged] == [
        ("a", "0.9", "host", True), ("a", "1.0", "host", True), ("a", "1.0", "riscv64", True)]


def test_a_reason_keeps_its_later_lines(tmp_path, shared_cache, sdist_server):
    """The missing-package message ends with the command on its own line: the row keeps it."""
    import subprocess

    import pytest

    policy = subprocess.run(["apt-cache", "policy", "sl"], capture_output=True, text=True).stdout
    installed = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", "sl"], capture_output=True,
                               text=True).stdout
    if "Candidate:" not in policy or "Candidate: (none)" in policy or installed == "installed":
        pytest.skip("needs apt lists that offer sl, not installed")
    root = make_project(tmp_path / "p", shared_cache)
    tiny_recipe(root, sdist_server, name="wf-tiny", extra='[build]\ndebian = ["sl"]\n')
    assert upkeep.prove_command(root, ["wf-tiny"], target="host") == 1
    (row,) = json.loads((root / "docs" / "catalog-status.json").read_text())
    assert row["reason"].endswith("Install them with: apt-get install -y sl"), row["reason"]
