"""The compiler cache: real PEP 517 builds (isolated, via `build` + uv) of a small C
extension through ccache, from fresh folders each time, as the pipeline does."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wheelfactory.build import compcache
from wheelfactory.settings.factory import load_config
from wheelfactory.runners import NativeRunner



@pytest.fixture(autouse=True)
def console_to_current_stderr(monkeypatch):
    """Rich's console writes to whatever sys.stderr is now (capsys), even if an earlier
    test left it pointing at an old stream."""
    from wheelfactory import ui

    monkeypatch.setattr(ui.console, "_file", None)

C_SOURCE = """
#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* Enough code that compiling it is not free. */
#define F(n) static long f##n(long x) { long s = 0; for (long i = 0; i < x; i++) s += (i * n) ^ (s >> 3); return s; }
F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8)
static PyObject *calc(PyObject *self, PyObject *arg) {
    long x = PyLong_AsLong(arg);
    return PyLong_FromLong(f1(x) + f2(x) + f3(x) + f4(x) + f5(x) + f6(x) + f7(x) + f8(x) + VALUE);
}
static PyMethodDef methods[] = {{"calc", calc, METH_O, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "_ccdemo", NULL, -1, methods};
PyMODINIT_FUNC PyInit__ccdemo(void) { return PyModule_Create(&mod); }
"""


def write_package(dest: Path, value: int = 1) -> Path:
    dest.mkdir(parents=True)
    (dest / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "ccdemo"
        version = "1.0"
    """))
    (dest / "setup.py").write_text(
        "from setuptools import setup, Extension\n"
        "setup(ext_modules=[Extension('_ccdemo', ['src/ccdemo.c'], include_dirs=['include'])])\n"
    )
    (dest / "src").mkdir()
    (dest / "include").mkdir()
    (dest / "include" / "value.h").write_text(f"#define VALUE {value}\n")
    (dest / "src" / "ccdemo.c").write_text('#include "value.h"\n' + C_SOURCE)
    return dest


def pep517_build(runner, project: Path, env: dict, log_path: Path) -> Path:
    """An isolated PEP 517 build through the runner, like the pipeline's build stage."""
    out = project / "dist"
    with open(log_path, "a") as log:
        runner.run([sys.executable, "-m", "build", "--wheel", "--installer", "uv", "-o", str(out), "."],
                   cwd=project, env=env, log=log)
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture
def cfg(project):
    return load_config(project)


def test_rebuild_from_fresh_folders_is_all_direct_hits(cfg, project, tmp_path):
    runner = NativeRunner()
    scratch = cfg.paths.build

    env1 = compcache.prepare(cfg, runner, "ccdemo")
    assert Path(env1["PATH"].split(":")[0], "cc").resolve() == Path(shutil.which("ccache")).resolve()
    assert env1["CCACHE_DIR"] == str(project / "cache" / "ccache")
    pep517_build(runner, write_package(scratch / "first" / "ccdemo"), env1, tmp_path / "build.log")
    cold = compcache.read_stats(env1)
    assert cold["misses"] >= 1 and cold["hits"] == 0, cold
    assert cold["uncacheable"] >= 1  # the link step

    # A new attempt: a new folder, a new isolated build env, the same sources.
    env2 = compcache.prepare(cfg, runner, "ccdemo")
    assert env2["CCACHE_STATSLOG"] != env1["CCACHE_STATSLOG"]
    shutil.rmtree(scratch / "first")
    pep517_build(runner, write_package(scratch / "second" / "deeper" / "ccdemo"), env2, tmp_path / "build.log")
    warm = compcache.read_stats(env2)
    assert warm["misses"] == 0 and warm["hits"] == cold["misses"], warm
    assert warm["direct_hits"] == warm["hits"]  # not even the preprocessor ran
    assert warm["hit_rate"] == 1.0
    assert compcache.describe(warm) == f"ccache {warm['hits']}/{warm['hits']} hits (100%)"

    # A changed header is a miss, never a stale object; the mark separates two builds in one log.
    mark = compcache.stats_mark(env2)
    project3 = write_package(scratch / "third" / "ccdemo", value=2)
    wheel = pep517_build(runner, project3, env2, tmp_path / "build.log")
    changed = compcache.read_stats(env2, since=mark)
    assert changed["misses"] >= 1 and changed["hits"] == 0
    assert compcache.merge([warm, changed])["calls"] == warm["calls"] + changed["calls"]

    # And the cached build's wheel works.
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True)
    out = subprocess.run([sys.executable, "-c", "import _ccdemo; print(_ccdemo.calc(0))"],
                         env={"PYTHONPATH": str(site)}, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2"
    compcache.finish(env2)
    assert not Path(env2["CCACHE_STATSLOG"]).exists()


def test_settings_turn_caches_off_and_move_folders(project):
    (project / "factory.toml").write_text((project / "factory.toml").read_text() + textwrap.dedent("""
        [build]
        ccache = false
        cargo-target-dir = "/var/tmp/wf-cargo"
        cargo-home = "cargo-home"
    """))
    cfg = load_config(project)
    env = compcache.prepare(cfg, NativeRunner(), "orjson")
    assert not any(k.startswith("CCACHE_") for k in env) and "PATH" not in env
    assert env["CARGO_TARGET_DIR"] == f"/var/tmp/wf-cargo/{cfg.arch}/orjson"
    assert env["CARGO_HOME"] == str(project / "cargo-home")
    assert compcache.read_stats(env) is None and compcache.describe(None) == ""


class BareRunner(NativeRunner):
    """A native runner whose machine has a shell and gcc but no ccache (like a bare rootfs)."""

    id = "native-bare-test"

    def __init__(self, bindir: Path):
        self.bindir = bindir

    def run(self, argv, *, cwd, env=None, log, check=True, timeout=None):
        return super().run(argv, cwd=cwd, env={**(env or {}), "PATH": str(self.bindir)}, log=log,
                           check=check, timeout=timeout)


def test_runner_without_ccache_builds_uncached(cfg, tmp_path, capsys):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("sh", "gcc"):
        (bindir / tool).symlink_to(shutil.which(tool))
    env = compcache.prepare(cfg, BareRunner(bindir), "multidict")
    assert "CCACHE_DIR" not in env and "PATH" not in env
    assert "CARGO_TARGET_DIR" in env and "CARGO_HOME" not in env  # native: cargo's own home is kept
    assert "ccache is not installed where builds run" in capsys.readouterr().err


class CountingRunner(NativeRunner):
    """A native runner that counts the commands it runs."""

    id = "native-counting-test"

    def __init__(self):
        self.commands = []

    def run(self, argv, **kw):
        self.commands.append(list(argv))
        return super().run(argv, **kw)


def test_the_runner_is_asked_only_when_a_build_really_runs(cfg):
    runner = CountingRunner()
    env = compcache.prepare(cfg, runner, "multidict")
    compcache.finish(env)  # a no-op attempt: everything already stored
    assert runner.commands == [] and not (cfg.paths.build / "ccache-stats").exists()

    env = compcache.prepare(cfg, runner, "multidict")
    assert env["CCACHE_DIR"] and len(runner.commands) == 1  # the first real build probes once …
    log = Path(env["CCACHE_STATSLOG"])
    assert log.is_file()
    other = compcache.prepare(cfg, runner, "frozenlist")
    assert dict(other)["CCACHE_STATSLOG"] != str(log) and len(runner.commands) == 1  # … per runner
    compcache.finish(env)
    assert not log.exists()
