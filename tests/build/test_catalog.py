"""A real graph of recipes built in parallel through the pipeline (catalog.build_recipes via the
build command): dependency wheels handed over, only what is blocked skipped, a changed
dependency rebuilding its dependents with compiler-cache hits.

The scheduler alone is tested in tests/unit/test_graph.py.
"""

from __future__ import annotations

import pytest

from support.build import LocalServer, make_sdist, make_project, tiny_files

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
    from wheelfactory import ui
    from wheelfactory.cli import build as build_cli

    old = ui.console._file  # None: "the current sys.stderr"; restore exactly that
    with open(capture, "w") as f:
        ui.console.file = f
        try:
            rc = build_cli.build_command(argv, root=root)
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
def real_graph(tmp_path_factory, shared_cache):
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
