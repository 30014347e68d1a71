"""The newest build wins on every machine (issue 14): the issue's tb_demo, with real pip and uv.

First build ``tb_demo-1.0-CP-CP-manylinux_2_35_x86_64.manylinux_2_39_x86_64.whl``, rebuild
``tb_demo-1.0-1-CP-CP-manylinux_2_31_x86_64.manylinux_2_39_x86_64.whl`` (x86_64 tags, so this
host can install them; CP is the running Python's tag). Installers rank platform tags
before build tags: on glibc 2.35-2.38 they would take the first build. The index offers only
the rebuild; the first build stays in files/ and on the human page, marked superseded.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support.pip import clean_env, pip, pip_venv  # noqa: F401 (fixture)
from support.wheels import store_wheel

from conftest import write_project
from wheelfactory.index import build_index
from wheelfactory.index.check import check_index
from wheelfactory.index.serve import IndexServer
from wheelfactory.settings.factory import load_config

CP = f"cp{sys.version_info[0]}{sys.version_info[1]}"


def tb_demo(out: Path, build: str, floor: str) -> Path:
    """A real wheel made by ``wheel pack``: tb_demo 1.0, build ``build`` ("" for none), tagged
    manylinux_{floor}_x86_64 and manylinux_2_39_x86_64; ``tb_demo.BUILD`` says which build it is."""
    src = out / f"src-{build or 0}"
    (src / "tb_demo").mkdir(parents=True)
    (src / "tb_demo" / "__init__.py").write_text(f"BUILD = {build or '0'!r}\n")
    info = src / "tb_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tb_demo\nVersion: 1.0\nRequires-Python: >=3.8\n")
    tags = "".join(f"Tag: {CP}-{CP}-manylinux_{p}_x86_64\n" for p in (floor, "2_39"))
    (info / "WHEEL").write_text(f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n{tags}"
                                + (f"Build: {build}\n" if build else ""))
    dest = out / f"whl-{build or 0}"
    dest.mkdir()
    subprocess.run([sys.executable, "-m", "wheel", "pack", *(["--build-number", build] if build else []),
                    "-d", str(dest), str(src)], check=True, capture_output=True)
    (wheel,) = dest.glob("*.whl")
    return wheel


@pytest.fixture
def site(tmp_path):
    first = tb_demo(tmp_path, "", "2_35")
    rebuild = tb_demo(tmp_path, "1", "2_31")
    assert first.name == f"tb_demo-1.0-{CP}-{CP}-manylinux_2_35_x86_64.manylinux_2_39_x86_64.whl"
    assert rebuild.name == f"tb_demo-1.0-1-{CP}-{CP}-manylinux_2_31_x86_64.manylinux_2_39_x86_64.whl"
    root = write_project(tmp_path / "p")
    store_wheel(root / "dist", first)
    store_wheel(root / "dist", rebuild)
    build_index(load_config(root))
    server = IndexServer(root / "index", quiet=True).start()
    yield root, server, first.name, rebuild.name
    server.stop()


def chosen_build(site_packages: Path) -> str:
    """The build the installer put there, as tb_demo.BUILD says."""
    return (site_packages / "tb_demo" / "__init__.py").read_text().split("=")[1].strip().strip("'")


@pytest.mark.parametrize("glibc", ["2_33", "2_36", "2_39"])
def test_pip_and_uv_take_the_rebuild_on_every_glibc(site, tmp_path, glibc, pip_venv):  # noqa: F811
    """Below the first build's floor (2.33), between the floors (2.36: the issue's case), and
    where both carry the same top tag (2.39)."""
    root, server, first, rebuild = site
    env, url = clean_env(tmp_path), server.url + "simple/"
    got = tmp_path / "pip-download"
    # A machine with glibc 2.N supports manylinux_2_N down to 2_17, best first (pip expands no
    # manylinux_2_N --platform by itself).
    level = int(glibc.split("_")[1])
    platforms = [arg for n in range(level, 16, -1) for arg in ("--platform", f"manylinux_2_{n}_x86_64")]
    r = pip(pip_venv, "download", "--no-deps", "--only-binary", ":all:", *platforms,
            "--python-version", sys.version.split()[0], "--implementation", "cp", "--abi", CP, "-d", str(got),
            "--index-url", url, "tb_demo", env=env)
    assert r.returncode == 0, r.stderr
    target = tmp_path / "uv-target"
    u = subprocess.run(["uv", "pip", "install", "--python", sys.executable, "--python-platform",
                        f"x86_64-manylinux_{glibc}", "--target", str(target), "--index-url", url, "tb_demo"],
                       capture_output=True, text=True, env=env)
    assert u.returncode == 0, u.stderr
    assert ([p.name for p in got.iterdir()], chosen_build(target)) == ([rebuild], "1")  # (pip, uv)


def test_a_real_install_here_takes_the_rebuild(site, tmp_path, pip_venv):  # noqa: F811
    root, server, first, rebuild = site
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    r = pip(venv / "bin/python", "install", "--index-url", server.url + "simple/", "tb_demo", env=clean_env(tmp_path))
    assert r.returncode == 0, r.stderr
    (site_packages,) = venv.glob("lib/python*/site-packages")
    assert chosen_build(site_packages) == "1"


def test_the_first_build_stays_reachable_and_is_listed_as_superseded(site):
    root, server, first, rebuild = site
    index = root / "index"
    simple = (index / "simple/tb-demo/index.html").read_text()
    assert rebuild in simple and first not in simple
    assert first not in (index / "simple/tb-demo/index.json").read_text()
    human = (index / "project/tb-demo/index.html").read_text()
    row = human[human.index(f">{first}</a>"):]
    assert row[:row.index("</tr>")].count("superseded by build 1") == 1
    assert (index / "files" / first).is_file() and (root / "dist" / first).is_file()
    with zipfile.ZipFile(index / "files" / first) as z:
        assert z.read("tb_demo/__init__.py") == b"BUILD = '0'\n"
    assert check_index(server.url + "simple/").problems == []  # the human page's link to it resolves
    assert any(a[1] == f"/files/{first}" and a[2] == 200 for a in server.access)
