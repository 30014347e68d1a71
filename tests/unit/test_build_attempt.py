"""The attempt both build strategies share: the keys and the skip, the log that waits for the
build to start, one message per failure, and the attempt record written whatever happens.

No build runs here: the strategy is the test's own code inside ``with Attempt(...)``;
a stand-in runner answers which Pythons it has.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import write_recipe
from wheelfactory.build import attempt as attempt_mod
from wheelfactory.build.attempt import Attempt
from wheelfactory.build.attempt import wheel_fits
from wheelfactory.errors import BuildError
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.recipe import load_recipe

SHA = "e8af3e6f1bdbc31fd762b094133b478b89988eaebc63cbe82b1d9e3bbd15cede"


class StandInRunner:
    name = "native"
    id = "stand-in"

    def __init__(self, pythons=("3.11", "3.12")):
        self.have = pythons
        self.asked = 0

    def pythons(self, wanted):
        self.asked += 1
        return {v: f"/usr/bin/python{v}" for v in wanted if v in self.have}

    def describe(self):
        return {"runner": self.name}


@pytest.fixture
def setup(project):
    write_recipe(project, "wf-a", f'[package]\nname = "wf-a"\nversion = "1.0"\n[source]\nsha256 = "{SHA}"\n')
    config = load_config(project).replace(target={"pythons": ["3.11", "3.12"]})
    return config, load_recipe(config.paths.recipes, "wf-a")


def _attempts(config):
    return sorted((config.paths.logs / "wf-a").glob("*.json")) if (config.paths.logs / "wf-a").exists() else []


def test_a_stored_key_is_skipped_without_asking_the_runner_or_leaving_files(setup):
    config, recipe = setup
    runner = StandInRunner()
    with Attempt(config, recipe, runner) as first:
        plan = first.plan(None, [])
    assert plan.todo == ["3.11", "3.12"] and runner.asked == 1 and first.result.status == "failed"
    # Pretend both were built: a record per key in dist/.
    config.paths.dist.mkdir(parents=True)
    for v, key in plan.keys.items():
        name = f"wf_a-1.0-cp{v.replace('.', '')}-cp{v.replace('.', '')}-manylinux_2_17_x86_64.whl"
        (config.paths.dist / name).write_bytes(b"x")
        (config.paths.dist / f"{name}.json").write_text(json.dumps(
            {"filename": name, "build_key": key, "build_tag": None, "name": "wf-a", "version": "1.0", "tags": [],
             "sha256": "0" * 64, "size": 1, "metadata_sha256": "0" * 64, "built_at": "2026-01-01T00:00:00Z"}))
    shutil.rmtree(config.paths.logs)  # the first attempt built nothing: its record said "failed"
    with Attempt(config, recipe, runner) as second:
        again = second.plan(None, [])
    assert again.keys == plan.keys and again.todo == [] and runner.asked == 1
    assert second.result.status == "skipped" and "already built (same build key)" in second.result.message
    assert sorted(p.name for p in second.result.wheels) == sorted(p.name for p in config.paths.dist.glob("*.whl"))
    assert _attempts(config) == [] and second.log_path is None
    with Attempt(config, recipe, runner) as forced:
        assert forced.plan(None, [], force=True).todo == ["3.11", "3.12"]


def test_a_failure_is_one_message_and_a_kept_log_and_record(setup):
    config, recipe = setup
    with Attempt(config, recipe, StandInRunner()) as at:
        plan = at.plan(["3.12"], [])
        at.begin(plan, "on stand-in")
        at.stage_done("fetch", "x")
        raise BuildError("the compiler said no")
    assert at.result.status == "failed" and at.result.message == "wf-a: the compiler said no"
    assert "# FAILED: wf-a: the compiler said no" in at.log_path.read_text()
    [path] = _attempts(config)
    record = json.loads(path.read_text())
    assert record["status"] == "failed" and record["build_keys"] == {"3.12": plan.keys["3.12"]}
    assert set(record["stages"]) == {"fetch"} and record["log"].startswith("logs/wf-a/")


def test_a_bug_is_an_internal_error_line_with_the_traceback_in_the_log(setup):
    config, recipe = setup
    with Attempt(config, recipe, StandInRunner()) as at:
        at.plan(None, [])
        {}["missing"]
    assert at.result.message == "wf-a: internal error: KeyError: 'missing' (traceback in the log)"
    assert "Traceback" in at.log_path.read_text() and len(_attempts(config)) == 1


def test_an_interrupt_goes_through_and_is_recorded(setup):
    config, recipe = setup
    attempt_mod.CANCELLED.set()
    with pytest.raises(KeyboardInterrupt):
        with Attempt(config, recipe, StandInRunner()) as at:
            plan = at.plan(None, [])
            at.begin(plan, "on stand-in")
            at.stage_done("fetch")  # the stage boundary notices Ctrl-C
    [path] = _attempts(config)
    assert json.loads(path.read_text())["status"] == "interrupted" and at.result.message == "wf-a: interrupted"


def test_an_asked_for_python_the_runner_lacks_is_an_error_naming_it(setup):
    config, recipe = setup
    with Attempt(config, recipe, StandInRunner(pythons=("3.11",))) as at:
        at.plan(["3.11", "3.13"], [])
    assert at.result.status == "failed"
    assert "Python 3.13 not found on the native runner" in at.result.message


def test_an_abi3_wheel_serving_a_later_python_keeps_both_keys_stored_once(setup):
    """As cibuildwheel does, an abi3 (or py3) wheel built with Python 3.11 is not built again for 3.12:
    its one record lists 3.12's key under served_pythons, so the next plan skips both."""
    config, recipe = setup
    runner = StandInRunner()
    with Attempt(config, recipe, runner) as first:
        plan = first.plan(None, [])
    name = "wf_a-1.0-cp39-abi3-manylinux_2_17_x86_64.whl"
    assert wheel_fits(Path(name), "3.12") and wheel_fits(Path(name), "3.11")
    config.paths.dist.mkdir(parents=True)
    (config.paths.dist / name).write_bytes(b"x")
    (config.paths.dist / f"{name}.json").write_text(json.dumps(
        {"filename": name, "build_key": plan.keys["3.11"], "served_pythons": {"3.12": plan.keys["3.12"]},
         "build_tag": None, "name": "wf-a", "version": "1.0", "tags": [], "sha256": "0" * 64, "size": 1,
         "metadata_sha256": "0" * 64, "built_at": "2026-01-01T00:00:00Z"}))
    shutil.rmtree(config.paths.logs, ignore_errors=True)
    with Attempt(config, recipe, runner) as second:
        again = second.plan(None, [])
    assert again.todo == [] and second.result.status == "skipped"
    assert [p.name for p in second.result.wheels] == [name], "listed once"


@pytest.mark.parametrize(("wheel", "python", "installs"), [
    ("x-1-cp36-abi3-manylinux_2_34_riscv64.manylinux_2_39_riscv64.whl", "3.14", True),
    ("x-1-cp310-abi3-linux_riscv64.whl", "3.13", True),
    ("x-1-cp314-abi3-linux_riscv64.whl", "3.13", False),  # abi3 from 3.14 on
    ("x-1-cp313-cp313-manylinux_2_39_riscv64.whl", "3.14", False),
    ("x-1-py3-none-manylinux_2_35_riscv64.whl", "3.14", True),  # llama-cpp-python's ctypes wheel
])
def test_which_later_python_a_wheelwheel_fits(wheel, python, installs):
    assert wheel_fits(Path(wheel), python) is installs


NUMPY = ["numpy-2.5.5-cp313-cp313-manylinux_2_39_riscv64.whl", "numpy-2.5.5-cp314-cp314-manylinux_2_39_riscv64.whl",
         "numpy-2.4.6-cp311-cp311-manylinux_2_39_riscv64.whl", "numpy-2.4.6-cp313-cp313-manylinux_2_39_riscv64.whl",
         "psutil-7.2.2-cp36-abi3-manylinux_2_39_riscv64.whl"]


@pytest.mark.parametrize(("depends", "python", "chosen"), [
    ('"numpy", "psutil"', "3.13", ["numpy-2.5.5-cp313", "psutil-7.2.2-cp36"]),  # package.version's first
    ('"numpy", "psutil"', "3.11", ["numpy-2.4.6-cp311", "psutil-7.2.2-cp36"]),  # 2.5.5 has none for 3.11
    ('"numpy<2.5", "psutil"', "3.13", ["numpy-2.4.6-cp313", "psutil-7.2.2-cp36"]),
])
def test_a_build_gets_per_project_the_first_fitting_wheel_its_specifier_admits(tmp_path, depends, python, chosen):
    root = tmp_path / "p"
    write_recipe(root, "wf-user", f'[package]\nname = "wf-user"\nversion = "1.0"\n[source]\nsha256 = "{SHA}"\n'
                                  f'[build]\ndepends = [{depends}]\n')
    recipe = load_recipe(root / "recipes", "wf-user")
    got = attempt_mod.choose_dependencies(recipe, [Path(w) for w in NUMPY], python)
    assert ["-".join(w.name.split("-")[:3]) for w in got] == chosen


def test_a_specifier_no_wheel_for_the_python_admits_is_one_error_naming_the_versions(tmp_path):
    root = tmp_path / "p"
    write_recipe(root, "wf-user", f'[package]\nname = "wf-user"\nversion = "1.0"\n[source]\nsha256 = "{SHA}"\n'
                                  '[build]\ndepends = ["numpy<2.5"]\n')
    recipe = load_recipe(root / "recipes", "wf-user")
    with pytest.raises(BuildError) as e:
        attempt_mod.choose_dependencies(recipe, [Path(w) for w in NUMPY], "3.14")
    assert "wf-user: depends on 'numpy<2.5', and the wheels of recipes/numpy for Python 3.14 are 2.5.5" in str(e.value)
    assert "nox -s build-numpy" in str(e.value)


def test_a_store_that_fails_for_one_python_leaves_dist_as_it_was(setup, tmp_path):
    """dist/ gets every Python's wheel or none: the second wheel's name is taken by other bytes
    (store_wheel refuses to overwrite), so the first one stored goes again."""
    from support.build import tree_snapshot

    config, recipe = setup
    config.paths.dist.mkdir(parents=True)
    taken = "wf_a-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"
    (config.paths.dist / taken).write_bytes(b"other bytes")
    before = tree_snapshot(config.paths.dist)
    records = {}
    for v in ("3.11", "3.12"):
        wheel = tmp_path / f"wf_a-1.0-cp{v.replace('.', '')}-cp{v.replace('.', '')}-manylinux_2_17_x86_64.whl"
        wheel.write_bytes(f"built with {v}".encode())
        records[v] = (wheel, {"name": "wf-a", "version": "1.0", "sha256": attempt_mod.sha256_file(wheel)})
    with Attempt(config, recipe, StandInRunner()) as at:
        plan = at.plan(None, [])
        at.store_all(plan, records)
    assert at.result.status == "failed" and "exists with different content" in at.result.message
    assert at.result.wheels == []
    assert tree_snapshot(config.paths.dist) == before
