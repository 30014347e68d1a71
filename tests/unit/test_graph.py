"""The build graph: dependency order, parallel jobs, exclusive recipes, skips and cycles.

The scheduling tests drive run_graph with a build function that records when
each recipe ran (the scheduler is what is under test); tests/build/test_catalog.py
builds a real graph of recipes through the pipeline.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from conftest import write_recipe
from wheelfactory.settings.factory import load_config
from wheelfactory.errors import RecipeError
from wheelfactory.build.graph import default_jobs, run_graph, select, topological_order
from wheelfactory.build.attempt import RecipeResult
from wheelfactory.settings.recipe import load_all

SHA = "0" * 64


def recipe_text(name, *, depends=(), runtime=(), disabled="", exclusive=False):
    lines = [f'[package]\nname = "{name}"\nversion = "1.0"\n']
    if disabled:
        lines.append(f'disabled = "{disabled}"\n')
    lines.append(f'[source]\nurl = "http://127.0.0.1:9/{name}-1.0.tar.gz"\nsha256 = "{SHA}"\n')
    lines.append(f"[build]\ndepends = {list(depends)!r}\nexclusive = {str(exclusive).lower()}\n".replace("'", '"'))
    lines.append(f"[runtime]\ndepends = {list(runtime)!r}\n".replace("'", '"'))
    return "".join(lines)


def make(project, **specs):
    for name, kw in specs.items():
        write_recipe(project, name, recipe_text(name, **kw))
    return load_config(project), load_all(project / "recipes")


class Recorder:
    """A build function that sleeps a little and records what ran when, with which wheels."""

    def __init__(self, fail=(), raise_in=(), seconds=0.15):
        self.fail, self.raise_in, self.seconds = set(fail), set(raise_in), seconds
        self.lock = threading.Lock()
        self.spans: dict[str, tuple[float, float]] = {}
        self.deps: dict[str, list[str]] = {}
        self.running = 0
        self.max_running = 0
        self.overlaps: dict[str, set[str]] = {}
        self.active: set[str] = set()

    def __call__(self, recipe, dependency_wheels):
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.overlaps[recipe.name] = set(self.active)
            for other in self.active:
                self.overlaps.setdefault(other, set()).add(recipe.name)
            self.active.add(recipe.name)
            self.deps[recipe.name] = [Path(w).name for w in dependency_wheels]
        start = time.monotonic()
        try:
            time.sleep(self.seconds)
            if recipe.name in self.raise_in:
                raise RuntimeError(f"{recipe.name} exploded")
            status = "failed" if recipe.name in self.fail else "built"
            wheels = [] if status == "failed" else [Path(f"/dist/{recipe.name}-1.0-cp311-cp311-linux_x86_64.whl")]
            return RecipeResult(recipe.name, status, wheels=wheels,
                                message=f"{recipe.name}: compile error" if status == "failed" else "")
        finally:
            with self.lock:
                self.running -= 1
                self.active.discard(recipe.name)
                self.spans[recipe.name] = (start, time.monotonic())


def by_name(results):
    return {r.name: r for r in results}


def test_dependencies_build_first_and_hand_over_their_wheels(project):
    config, recipes = make(project, a={}, b={"depends": ["a"]}, c={"depends": ["b"]}, d={}, r={},
                           e={"runtime": ["r"]}, f={"depends": ["e"]})
    rec = Recorder()
    results = by_name(run_graph(config, recipes, rec, jobs=2, keep_going=True))
    assert {n: r.status for n, r in results.items()} == dict.fromkeys("abcdefr", "built")
    for dep, user in [("a", "b"), ("b", "c"), ("r", "e"), ("e", "f")]:
        assert rec.spans[dep][1] <= rec.spans[user][0]
    whl = "{}-1.0-cp311-cp311-linux_x86_64.whl".format
    # c builds against b; a was only b's build dependency, not needed to install b.
    assert rec.deps["c"] == [whl("b")]
    # f builds against e, and installing e needs r (e's run-time dependency).
    assert sorted(rec.deps["f"]) == [whl("e"), whl("r")]
    assert rec.deps["a"] == [] and rec.deps["d"] == []
    assert rec.max_running == 2  # independent recipes run beside the chains


def test_jobs_caps_parallel_builds(project):
    config, recipes = make(project, **{f"p{i}": {} for i in range(6)})
    rec = Recorder(seconds=0.3)
    results = run_graph(config, recipes, rec, jobs=3, keep_going=True)
    assert len(results) == 6 and all(r.status == "built" for r in results)
    assert rec.max_running == 3


def test_exclusive_recipes_build_alone(project):
    config, recipes = make(project, big={"exclusive": True}, huge={}, s1={}, s2={}, s3={"depends": ["big"]})
    (project / "factory.toml").write_text((project / "factory.toml").read_text() + '\n[build]\nexclusive = ["huge"]\n')
    config = load_config(project)
    rec = Recorder()
    results = run_graph(config, recipes, rec, jobs=4, keep_going=True)
    assert all(r.status == "built" for r in results)
    assert rec.overlaps["big"] == set() and rec.overlaps["huge"] == set()
    assert rec.max_running >= 2  # the others still ran side by side


def test_failure_skips_only_its_dependents(project):
    config, recipes = make(project, base={}, mid={"depends": ["base"]}, top={"runtime": ["mid"]}, other={})
    rec = Recorder(fail={"base"})
    results = by_name(run_graph(config, recipes, rec, jobs=2, keep_going=True))
    assert results["base"].status == "failed"
    assert results["mid"].status == "skipped" and "needs base, which failed" in results["mid"].message
    assert results["top"].status == "skipped" and "base" in results["top"].message
    assert results["other"].status == "built"
    assert set(rec.spans) == {"base", "other"}  # the dependents never started


def test_an_exception_in_one_build_is_a_failure_not_a_crash(project):
    config, recipes = make(project, boom={}, fine={}, after={"depends": ["boom"]})
    results = by_name(run_graph(config, recipes, Recorder(raise_in={"boom"}), jobs=2, keep_going=True))
    assert results["boom"].status == "failed" and "exploded" in results["boom"].message
    assert results["fine"].status == "built"
    assert results["after"].status == "skipped"


def test_keep_going_off_starts_nothing_new_after_a_failure(project):
    config, recipes = make(project, x1={}, y1={}, y2={})
    rec = Recorder(fail={"x1"})
    results = by_name(run_graph(config, recipes, rec, jobs=1, keep_going=False))
    assert results["x1"].status == "failed"
    for n in ("y1", "y2"):
        assert results[n].status == "skipped" and "x1 failed and keep-going is off" in results[n].message
    assert set(rec.spans) == {"x1"}


def test_disabled_recipe_and_its_dependents_are_not_built(project):
    config, recipes = make(project, off={"disabled": "upstream ships riscv64 wheels since 2.0"},
                           user={"depends": ["off"]}, free={})
    rec = Recorder()
    results = by_name(run_graph(config, recipes, rec, jobs=2, keep_going=True))
    assert results["off"].status == "disabled" and "riscv64 wheels since 2.0" in results["off"].message
    assert results["user"].status == "skipped"
    assert "needs off, which is disabled (upstream ships riscv64 wheels since 2.0)" in results["user"].message
    assert results["free"].status == "built"
    assert set(rec.spans) == {"free"}


def test_cycle_is_a_clear_error_naming_it(project):
    config, recipes = make(project, x={"depends": ["y"]}, y={"runtime": ["z"]}, z={"depends": ["x"]}, w={})
    rec = Recorder()
    with pytest.raises(RecipeError) as e:
        run_graph(config, recipes, rec, jobs=2, keep_going=True)
    msg = str(e.value)
    assert "cycle" in msg and "remove one of these dependencies" in msg
    # Rotation of x -> y -> z -> x, in "needs" direction.
    chain = msg.split("cycle: ")[1].split(" (")[0].split(" -> ")
    assert chain[0] == chain[-1] and set(chain) == {"x", "y", "z"}
    i = chain.index("x")
    assert chain[i + 1] == "y"
    assert rec.spans == {}  # nothing started
    with pytest.raises(RecipeError):
        topological_order(recipes)


def test_selection_pulls_in_what_a_recipe_needs(project):
    config, recipes = make(project, lib={}, mid={"depends": ["lib"]}, app={"runtime": ["Mid"]}, other={})
    assert sorted(select(recipes, ["app"])) == ["app", "lib", "mid"]
    assert sorted(select(recipes, ["lib", "other"])) == ["lib", "other"]
    assert topological_order(select(recipes, ["app"])) == ["lib", "mid", "app"]
    with pytest.raises(RecipeError, match=r"no recipe 'ap'.*did you mean 'app'"):
        select(recipes, ["ap"])


def test_jobs_default_to_cores_unless_configured(project):
    config = load_config(project)
    assert default_jobs(config) >= 1
    (project / "factory.toml").write_text((project / "factory.toml").read_text() + "\n[build]\njobs = 7\n")
    assert default_jobs(load_config(project)) == 7
