"""A damaged dist/ record met by any command: one message naming the record and a fix
that works, exit 1, no traceback, dist/ and index/ as they were.

Every command runs as the user runs it (`invoke …` / the build command behind
`nox -s build-NAME`, in a subprocess), on a project whose dist/ holds real wheels
(jinja2 and markupsafe from PyPI) and a published directory; then one record is
damaged three ways: truncated JSON, a JSON array, a required field missing.
The fix the message gives (delete the record and its wheel, then rebuild or
`invoke fetch-dist`) is then followed, and must work.
"""

from __future__ import annotations

import json
import shutil

import pytest
from support.build import make_project, tiny_recipe, tree_snapshot
from support.cli import one_error, run_build, run_invoke
from support.wheels import store_wheel

DAMAGES = {
    "truncated": lambda data: data[: len(data) // 2],
    "array": lambda data: b"[" + data + b"]",
    "missing-key": lambda data: json.dumps({k: v for k, v in json.loads(data).items() if k != "sha256"}).encode(),
}
WHY = {"truncated": "not JSON", "array": "a JSON list, not an object", "missing-key": "record lacks sha256"}


COMMANDS = {
    "build": lambda root: run_build(root, "wf-tiny", "--target", "host"),
    "index": lambda root: run_invoke(root, "index"),
    "publish": lambda root: run_invoke(root, "publish"),
    "fetch-dist": lambda root: run_invoke(root, "fetch-dist"),
}


@pytest.fixture(scope="module")
def published(tmp_path_factory, shared_cache, sdist_server, real_wheels):
    """A project with two real wheels in dist/, indexed and published to a directory."""
    root = make_project(tmp_path_factory.mktemp("damaged") / "p", shared_cache)
    tiny_recipe(root, sdist_server)
    store_wheel(root / "dist", real_wheels["jinja2"])
    store_wheel(root / "dist", real_wheels["markupsafe"])
    r = run_invoke(root, "publish")
    assert r.returncode == 0, r.stderr
    return root


@pytest.mark.parametrize("damage", sorted(DAMAGES))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_names_the_damaged_record_and_the_fix(command, damage, published, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(published, root, symlinks=True)
    wheel = root / "dist" / "jinja2-3.1.4-py3-none-any.whl"
    record = wheel.with_name(wheel.name + ".json")
    record.write_bytes(DAMAGES[damage](record.read_bytes()))
    before = {d: tree_snapshot(root / d) for d in ("dist", "index", "publish")}

    line = one_error(COMMANDS[command](root))

    assert f"{record}: damaged dist record ({WHY[damage]}" in line
    assert f"fix: delete it and its wheel (`rm {record} {wheel}`), then rebuild (`nox -s build-jinja2`) " \
           f"or restore the published copy (`invoke fetch-dist`)" in line
    assert {d: tree_snapshot(root / d) for d in ("dist", "index", "publish")} == before
    if command == "build":  # stopped before it built anything, with its log and attempt record kept
        (log,) = (root / "logs" / "wf-tiny").glob("*.log")
        attempt = json.loads(log.with_suffix(".json").read_text())
        assert attempt["status"] == "failed" and attempt["stages"] == {} and "damaged dist record" in attempt["message"]


def test_the_fix_works(published, tmp_path):
    """Follow the message: delete both files, `invoke fetch-dist` restores them, the index is whole again."""
    root = tmp_path / "p"
    shutil.copytree(published, root, symlinks=True)
    wheel = root / "dist" / "jinja2-3.1.4-py3-none-any.whl"
    record = wheel.with_name(wheel.name + ".json")
    good = {p: p.read_bytes() for p in (wheel, record)}
    record.write_bytes(record.read_bytes()[:100])
    assert run_invoke(root, "index").returncode == 1
    wheel.unlink()
    record.unlink()
    r = run_invoke(root, "fetch-dist")
    assert r.returncode == 0, r.stderr
    assert {p: p.read_bytes() for p in (wheel, record)} == good
    r = run_invoke(root, "index")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("command", [("audit", "six"), ("outdated",)], ids=["audit", "outdated"])
def test_commands_that_do_not_read_dist_are_not_stopped_by_it(command, published, tmp_path):
    """audit and outdated ask package indexes, never dist/: a damaged record changes nothing for them."""
    root = tmp_path / "p"
    shutil.copytree(published, root, symlinks=True)
    shutil.rmtree(root / "recipes" / "wf-tiny")  # outdated would ask PyPI about it
    record = root / "dist" / "jinja2-3.1.4-py3-none-any.whl.json"
    record.write_bytes(record.read_bytes()[:100])
    r = run_invoke(root, *command)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr


def test_index_and_publish_leave_nothing_in_the_project_root(published):
    """The index lock lives in build/.locks (git ignores build/), not beside index/."""
    assert sorted(p.name for p in published.iterdir()) == [
        "build", "dist", "factory.toml", "index", "patches", "publish", "recipes"]
    assert {p.name.partition("-")[0] for p in (published / "build" / ".locks").glob("*.lock")} == {"index", "publish"}
