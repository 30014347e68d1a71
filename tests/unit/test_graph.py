"""The build graph: dependency order, parallel jobs, exclusive recipes, skips and cycles.

The scheduling tests drive run_graph with a build function that records when
each recipe ran (the scheduler is what is under test); test_graph_real_builds
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
from wheelfactory.build.pipeline import RecipeResult
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


# --- a real graph, built in parallel through the pipeline ------------------------------

from support.build import LocalServer, make_sdist, make_project, shared_cache, tiny_files  # noqa: E402,F401

PLUS_SETUP = '''\
from setuptools import Extension, setup

import multidict  # only there if the build got our multidict wheel (build.depends)
from importlib.metadata import distribution

# Installed from a local file (our dist/ wheel), not from an index: direct_url.json says which.
print("wf-plus builds against multidict from", distribution("multidict").read_text("direct_url.json"), flush=True)

setup(ext_modules=[Extension("wf_plus._speed", ["src/speed.c"],
                             define_macros=[("FLAVOR", '"multidict %s"' % multidict.__version__)])])
'''


def _recipe(name, url, sha, extra=""):
    module = name.replace("-", "_")
    return f'''\
[package]
name = "{name}"
version = "1.0"
{extra}
[source]
url = "{url}"
sha256 = "{sha}"

[test]
imports = ["{module}", "{module}._speed"]
'''


def _run(root, argv, capture):
    from wheelfactory.build import pipeline
    from wheelfactory import ui

    old = ui.console._file  # None: "the current sys.stderr"; restore exactly that
    with open(capture, "w") as f:
        ui.console.file = f
        try:
            rc = pipeline.build_command(argv, root=root)
        finally:
            ui.console._file = old
    return rc, capture.read_text()


def _records(root, name):
    from wheelfactory.build import store

    return [r for r in store.load_records(root / "dist") if r["recipe"] == name]


def _attempts(root, name):
    import json

    return [json.loads(p.read_text()) for p in sorted((root / "logs" / name).glob("*.json"))]


@pytest.fixture(scope="module")
def real_graph(tmp_path_factory, shared_cache):  # noqa: F811
    """multidict (real PyPI sdist) + wf-plus that needs it, a broken recipe with a dependent,
    a disabled one and an independent one: `build-all --jobs 2`, then a change to an
    unrelated field of multidict's recipe and `build-all` again."""
    served = tmp_path_factory.mktemp("graph-served")
    server = LocalServer(served)
    plus = tiny_files("wf-plus")
    plus["setup.py"] = PLUS_SETUP
    plus["pyproject.toml"] = plus["pyproject.toml"].replace(
        'requires-python = ">=3.8"', 'requires-python = ">=3.8"\ndependencies = ["multidict"]')
    sdists = {
        "wf-plus": make_sdist(served, plus, name="wf-plus"),
        "wf-free": make_sdist(served, tiny_files("wf-free"), name="wf-free"),
        "wf-broken": make_sdist(served, tiny_files("wf-broken", extra_c="this is not C;"), name="wf-broken"),
        "wf-after": make_sdist(served, tiny_files("wf-after"), name="wf-after"),
        "wf-off": make_sdist(served, tiny_files("wf-off"), name="wf-off"),
    }
    root = make_project(tmp_path_factory.mktemp("graph") / "project", shared_cache, recipes=["multidict"],
                        config='[build]\nccache-dir = "ccache-private"\n')
    extra = {
        "wf-plus": '',
        "wf-after": '',
        "wf-off": 'disabled = "upstream ships riscv64 wheels now"\n',
    }
    for name, (path, sha) in sdists.items():
        text = _recipe(name, f"{server.url}/{path.name}", sha, extra.get(name, ""))
        if name == "wf-plus":
            text += '\n[build]\ndepends = ["multidict"]\n\n[runtime]\ndepends = ["multidict"]\n'
        if name == "wf-after":
            text += '\n[build]\ndepends = ["wf-broken"]\n'
        (root / "recipes" / name).mkdir(parents=True)
        (root / "recipes" / name / "recipe.toml").write_text(text)
    out_dir = tmp_path_factory.mktemp("graph-out")
    try:
        first = _run(root, ["--all", "--target", "host", "--jobs", "2"], out_dir / "first.txt")
        snapshot = {n: _records(root, n) for n in sdists.keys() | {"multidict"}}
        # An unrelated field: one more import test. The compiled inputs are the same.
        recipe = root / "recipes" / "multidict" / "recipe.toml"
        recipe.write_text(recipe.read_text().replace('imports = ["multidict", "multidict._multidict"]',
                                                     'imports = ["multidict", "multidict._multidict", "multidict._abc"]'))
        second = _run(root, ["--all", "--target", "host", "--jobs", "2"], out_dir / "second.txt")
    finally:
        server.close()
    return root, first, second, snapshot


@pytest.mark.slow
def test_graph_builds_in_parallel_and_skips_only_what_is_blocked(real_graph):
    root, (rc, out), _, first = real_graph
    assert rc == 1, out  # wf-broken failed
    assert "build summary" in out
    assert "wf-after: skipped — needs wf-broken, which failed" in out
    assert "wf-off: disabled — upstream ships riscv64 wheels now" in out
    for name in ("multidict", "wf-plus", "wf-free"):
        assert len(first[name]) == 1, (name, out)
    for name in ("wf-broken", "wf-after", "wf-off"):
        assert first[name] == [] == _records(root, name)
    assert _attempts(root, "wf-broken")[0]["status"] == "failed"
    assert not (root / "logs" / "wf-after").exists() and not (root / "logs" / "wf-off").exists()
    # wf-plus was built after multidict, against our multidict wheel (its setup.py imports it).
    md, plus = _attempts(root, "multidict")[0], _attempts(root, "wf-plus")[0]
    assert md["finished_at"] <= plus["started_at"]
    log = (root / plus["log"]).read_text()
    line = next(l for l in log.splitlines() if l.startswith("wf-plus builds against multidict from"))
    assert first["multidict"][0]["filename"] in line, line
    # Two jobs: some builds overlapped in time.
    spans = [(a["started_at"], a["finished_at"]) for n in ("multidict", "wf-free", "wf-broken")
             for a in _attempts(root, n)[:1]]
    assert any(s1 < f2 and s2 < f1 for i, (s1, f1) in enumerate(spans) for (s2, f2) in spans[i + 1:]), spans


@pytest.mark.slow
def test_changed_dependency_rebuilds_dependents_with_ccache_hits(real_graph):
    root, _, (rc, out), before = real_graph
    assert rc == 1, out  # wf-broken still fails; nothing else does
    md = sorted(_records(root, "multidict"), key=lambda r: r["build_tag"] or 0)
    assert len(md) == 2 and md[1]["build_tag"] == 1 and md[1]["build_key"] != md[0]["build_key"]
    # The first build compiled everything; the rebuild's compiled inputs did not change.
    assert md[0]["compiler_cache"]["misses"] >= 1 and md[0]["compiler_cache"]["hits"] == 0
    cc = md[1]["compiler_cache"]
    assert cc["tool"] == "ccache" and cc["misses"] == 0 and cc["hits"] == md[0]["compiler_cache"]["misses"], cc
    assert cc["hit_rate"] == 1.0
    assert "ccache" in out and "hits (100%)" in out
    # The dependent's key changed with its dependency's new wheel, so it rebuilt …
    plus = sorted(_records(root, "wf-plus"), key=lambda r: r["build_tag"] or 0)
    assert len(plus) == 2 and plus[1]["build_key"] != plus[0]["build_key"]
    # … and nothing else did.
    assert _records(root, "wf-free") == before["wf-free"]
