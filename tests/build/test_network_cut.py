"""The backend's build step runs with the network cut off (a network namespace).

Real builds on the native runner (as root, as CI runs): a tiny setuptools sdist
whose setup.py downloads a file from a 127.0.0.1 server — the download works
while the build requirements are installed (setuptools runs setup.py to ask
for them) and fails in the build step, with one message naming the host and
the fix; with ``build.network = true`` the same recipe builds and its record
says the network was allowed. And the real textual-speedups recipe (maturin,
its sdist from PyPI vendors no crates): "needs crates.io, not reachable from
the build machine".
"""

from __future__ import annotations

import io
import json
import os
import shutil

import pytest
from support.build import make_project, make_sdist, one_build_error, tiny_files, tree_snapshot
from support.emulation import emu_project

from conftest import write_project, write_recipe
from wheelfactory.cli import build as build_cli
from wheelfactory.runners import select_runner
from wheelfactory.settings.factory import load_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the native runner cuts the network only as root")

DOWNLOAD_SETUP = '''\
import urllib.request
from setuptools import Extension, setup

print("downloading @FLAVOR_URL@")  # urllib's error names no host: the log line before it does
flavor = urllib.request.urlopen("@FLAVOR_URL@", timeout=20).read().decode().strip()
setup(ext_modules=[Extension("{module}._speed", ["src/speed.c"], define_macros=[("FLAVOR", '"%s"' % flavor)])])
'''


def _downloading_recipe(root, server, *, network: bool) -> str:
    """A recipe whose setup.py downloads its flavor from ``server``; returns the host it downloads from."""
    served = server.folder / "net"
    served.mkdir(exist_ok=True)
    (served / "flavor.txt").write_text("downloaded\n")
    setup = DOWNLOAD_SETUP.replace("@FLAVOR_URL@", f"{server.url}/net/flavor.txt")
    sdist, sha = make_sdist(served, tiny_files(name="wf-net", setup_py=setup), name="wf-net")
    write_recipe(root, "wf-net", f'''\
        [package]
        name = "wf-net"
        version = "1.0"

        [source]
        url = "{server.url}/net/{sdist.name}"
        sha256 = "{sha}"

        [build]
        network = {str(network).lower()}

        [test]
        imports = ["wf_net._speed"]
        commands = ["python -c \\"import wf_net; assert wf_net.flavor() == 'downloaded'\\""]
        ''')
    return server.url.removeprefix("http://")


def test_a_build_that_downloads_fails_naming_the_host(tmp_path, shared_cache, sdist_server, capsys):
    root = make_project(tmp_path / "p", shared_cache)
    host = _downloading_recipe(root, sdist_server, network=False)
    capsys.readouterr()
    flat = one_build_error(root, "wf-net", capsys)
    assert f"wf-net: needs {host}, not reachable from the build machine (builds run with the network cut off" in flat
    assert "Network is unreachable" in flat
    assert f"list what it downloads from {host} as an [extra-sources.NAME] entry" in flat
    assert "set build.network = true there" in flat
    assert tree_snapshot(root / "dist") == {}
    # The download before the cut (setuptools' get_requires runs setup.py) worked: only the build step is cut.
    log = next((root / "logs" / "wf-net").glob("*.log")).read_text()
    assert " prepare " in log and " build " in log


def test_build_network_true_lets_it_download_and_the_record_says_so(tmp_path, shared_cache,
                                                                     sdist_server):
    root = make_project(tmp_path / "p", shared_cache)
    _downloading_recipe(root, sdist_server, network=True)
    assert build_cli.build_command(["wf-net"], root=root) == 0
    (record,) = [json.loads(p.read_text()) for p in (root / "dist").glob("*.json")]
    assert record["host"]["network"] == "allowed (build.network = true in the recipe)"


@pytest.mark.skipif(not shutil.which("cargo"), reason="needs cargo (.ci/run installs Debian's)")
def test_a_rust_sdist_without_vendored_crates_needs_crates_io(tmp_path, shared_cache, capsys):
    root = write_project(tmp_path / "p", recipes=["textual-speedups"], config=f'[paths]\ncache = "{shared_cache}"\n')
    flat = one_build_error(root, "textual-speedups", capsys)
    assert "textual-speedups: needs crates.io, not reachable from the build machine" in flat
    assert "[extra-sources.crates]" in flat and "cargo vendor" in flat


@pytest.mark.emulation
def test_the_emulated_runner_cuts_the_network_of_one_command(emu_cache, tmp_path):
    """The riscv64 rootfs's python reaches PyPI, except in a command run with network=False."""
    runner = select_runner(load_config(emu_project(tmp_path / "project", emu_cache)))
    work = runner.config.paths.build / "work"
    work.mkdir(parents=True)
    fetch = ["python3", "-c", "import urllib.request; print(urllib.request.urlopen("
             "'https://pypi.org/simple/multidict/', timeout=60).status)"]
    assert runner.cuts_network()
    assert runner.run(fetch, cwd=work, log=io.StringIO()).stdout.strip().endswith("200")
    cut = runner.run(fetch, cwd=work, log=io.StringIO(), check=False, network=False)
    assert cut.returncode != 0, cut.stdout
    assert "Temporary failure in name resolution" in cut.stdout or "Network is unreachable" in cut.stdout, cut.stdout
