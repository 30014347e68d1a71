"""A simulated board: the code path a riscv64 board takes, run on riscv64 (under QEMU).

A throwaway layer of the riscv64 build rootfs stands in for a board's fresh
Debian: the engine is installed there as a board user would (a venv, ``pip
install`` of the checkout, every dependency as a wheel). Without
``build.own-system`` a board builds in a native rootfs of its arch: that is shown
cheaply (``nox -s rootfs -- info`` names it, to be made; making it by mmdebstrap
under QEMU would take long; ``tests/runners/test_native_rootfs.py`` runs the same
path for real on this host's arch). Then ``nox -s build-multidict`` runs there
with the native runner, building on that system as ``build.own-system`` allows,
and ``nox -s clean-install`` checks the result the same way. The layer dies with
the test, so the shared rootfs stays as it was.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from conftest import REPO
from support.build import LocalServer
from support.emulation import emu_project
from wheelfactory.runners.emulated import EmulatedRunner
from wheelfactory.settings.factory import load_config

pytestmark = [pytest.mark.emulation, pytest.mark.slow]

# What a board user's clone holds that the engine and `nox -s build-NAME` need.
CHECKOUT = ("pyproject.toml", "README.md", "noxfile.py", "tasks.py", "wheelfactory")


def _checkout(dest: Path, cache: Path) -> Path:
    """A copy of this checkout with one recipe and a factory.toml for Python 3.13, sharing the compiler cache."""
    dest.mkdir(parents=True)
    for name in CHECKOUT:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copyfile(src, dest / name)
    shutil.copytree(REPO / "recipes" / "multidict", dest / "recipes" / "multidict")
    (dest / "patches").mkdir()
    (dest / "factory.toml").write_text(
        '[target]\narch = "riscv64"\npolicy = "manylinux_2_39"\npythons = ["3.13"]\n\n'
        f'[build]\nccache-dir = "{cache / "ccache"}"\n')
    return dest


def test_a_riscv64_board_installs_the_engine_builds_and_checks_multidict(emu_cache, tmp_path):
    host = load_config(emu_project(tmp_path / "host", emu_cache))
    board_dir = host.paths.build / "board"
    src = _checkout(board_dir / "wheelfactory", emu_cache)
    venv = board_dir / "venv"
    log = io.StringIO()
    env = {"PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin", "WHEELFACTORY_ROOT": None}

    def on_board(argv, check=True):
        return board.run(argv, cwd=src, env=env, log=log, check=check)

    with EmulatedRunner(host).hermetic() as board:
        on_board(["python3.13", "-m", "venv", str(venv)])
        # Every dependency as a wheel (a board must not compile its own tools); only the checkout is built.
        pip = on_board(["pip", "install", "-q", "--only-binary=:all:", "--no-binary=wheelfactory", str(src)],
                       check=False)
        assert pip.returncode == 0, f"the engine does not install from wheels on riscv64:\n{pip.stdout[-3000:]}"

        # Without the setting a build for the target runs in a native riscv64 rootfs, made by mmdebstrap on
        # the board (not here: under QEMU that takes long). `nox -s rootfs -- info` names both systems, native
        # and still to be made, and no rootfs of cross compilers; the build says what it lacks or allows.
        proc = on_board(["nox", "-s", "rootfs", "--", "info", "--json"], check=False)
        text = proc.stdout
        assert proc.returncode == 0 and "{\n" in text, text[-3000:]
        info = json.loads(text[text.index("{\n"):text.rindex("\n}") + 2])
        for system in (info, info["clean_system"]):
            assert system["arch"] == "riscv64" and system["emulated"] is False, system
            assert not system["ready"] and system["state"] == "missing", system
        assert info["path"].endswith("/rootfs/riscv64-sid") and "cross_compilers" not in info, info
        proc = on_board(["nox", "-s", "build-multidict"], check=False)
        assert proc.returncode != 0 and "native riscv64 Debian rootfs" in proc.stdout, proc.stdout[-3000:]
        # (what is missing: mmdebstrap, or chroot itself on this PATH without /usr/sbin)
        assert "is missing: apt-get install -y" in proc.stdout and "own-system = true" in proc.stdout, \
            proc.stdout[-3000:]
        assert "Traceback" not in proc.stdout and not (src / "dist").exists()
        with (src / "factory.toml").open("a") as f:
            f.write("own-system = true\n")

        proc = on_board(["nox", "-s", "build-multidict"], check=False)
        assert proc.returncode == 0, log.getvalue()[-4000:]
        wheels = list((src / "dist").glob("multidict-*.whl"))
        assert len(wheels) == 1, list((src / "dist").iterdir())
        tags = {str(t) for t in parse_wheel_filename(wheels[0].name)[3]}
        assert "cp313-cp313-manylinux_2_39_riscv64" in tags, tags
        record = json.loads((src / "dist" / f"{wheels[0].name}.json").read_text())
        assert record["host"]["runner"] == "native" and record["host"]["arch"] == "riscv64", record["host"]
        assert record["host"]["system"] == "own system", "built on the board's own system, and recorded so"
        assert "emulated" not in record["host"], record["host"]
        assert record["verified"]["system"] == "host" and record["verified"]["arch"] == "riscv64"

        # The clean-install check the same way, on the board itself, against the index the board made
        # of its dist/ (served from here, as Pages would): our wheel installs, nothing is compiled.
        on_board(["invoke", "index"])
        server = LocalServer(src / "index")
        try:
            proc = on_board(["nox", "-s", "clean-install", "--", "multidict==7.2.1", "--target", "host",
                             "--index", f"{server.url}/simple/", "--no-upgrade-pip"], check=False)
        finally:
            server.close()
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert "Building wheel" not in proc.stdout, proc.stdout[-4000:]
        pip_log = next((src / "logs" / "clean-install").glob("*.log")).read_text()
        assert f"Looking in indexes: {server.url}/simple\n" in pip_log and "Downloading multidict-7.2.1-" in pip_log
