"""A board's hermetic build: a native rootfs of the target arch, without QEMU (real mmdebstrap, real build).

This x86_64 machine is exactly "a board" for an x86_64 target: with ``target.arch`` = this
host's arch, a manylinux policy and ``build.own-system`` off, ``select_runner`` builds in a
Debian rootfs of this arch made by mmdebstrap, on throwaway layers, and verifies on the
clean system of this arch: the emulated runner's machinery, run natively. The systems are
made once per session (``support.emulation.native_cache``).
"""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from packaging.utils import parse_wheel_filename

from support.emulation import native_project
from wheelfactory.audit.clean_install import clean_install
from wheelfactory.cli import build as build_cli
from wheelfactory.cli import rootfs as rootfs_cli
from wheelfactory.runners.clean import CleanSystem
from wheelfactory.runners.emulated import EmulatedRunner
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.target import host_arch

pytestmark = [pytest.mark.emulation, pytest.mark.slow]


def _comments(wheel: Path) -> set[str]:
    """The .comment sections of the wheel's shared objects: gcc writes its Debian version there."""
    out = set()
    with zipfile.ZipFile(wheel) as zf:
        for name in (n for n in zf.namelist() if n.endswith(".so")):
            section = ELFFile(io.BytesIO(zf.read(name))).get_section_by_name(".comment")
            out.add(section.data().decode(errors="replace") if section else "")
    return out


def test_a_board_builds_multidict_in_a_native_rootfs_and_verifies_it_on_the_native_clean_system(
        native_cache, tmp_path, capsys):
    arch = host_arch()
    root = native_project(tmp_path / "project", native_cache, recipes=["multidict"])
    # The recipe also asks for libyaml-dev: it goes into this build's layer only.
    recipe = root / "recipes" / "multidict" / "recipe.toml"
    recipe.write_text(recipe.read_text() + '\n[build]\ndebian = ["libyaml-dev"]\n')
    config = load_config(root)

    # nox -s rootfs -- info: both systems native; no rootfs of cross compilers.
    capsys.readouterr()
    assert rootfs_cli.rootfs_command(["info", "--json"], root=root) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ready"] and info["arch"] == arch and info["emulated"] is False, info
    assert info["clean_system"]["ready"] and info["clean_system"]["emulated"] is False
    assert "cross_compilers" not in info

    assert build_cli.build_command(["multidict"], root=root) == 0
    wheels = sorted((root / "dist").glob("multidict-*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    tags = {str(t) for t in parse_wheel_filename(wheel.name)[3]}
    assert f"cp313-cp313-manylinux_2_39_{arch}" in tags, tags
    record = json.loads((root / "dist" / f"{wheel.name}.json").read_text())
    host = record["host"]
    assert host["runner"] == "rootfs" and host["emulated"] is False and "emulator" not in host, host
    assert host["runner_id"] == f"rootfs-{arch}-sid" and host["arch"] == host["host_arch"] == arch
    rootfs = host["rootfs"]
    assert rootfs["system"] == "rootfs" and rootfs["suite"] == "sid" and rootfs["layer"], rootfs
    assert tuple(map(int, rootfs["glibc"].split(".")[:2])) >= (2, 39), rootfs["glibc"]
    assert "libyaml-dev" in rootfs["layer_packages"], rootfs["layer_packages"]
    compilers = host["compilers"]
    assert compilers["kind"] == "native" and compilers["gcc"] == rootfs["gcc"] and "natively" in compilers["why"]
    # Compiled by the rootfs's gcc (Debian sid's), not by this machine's own.
    gcc_version = compilers["packages"][compilers["name"]]
    comments = _comments(wheel)
    assert comments and all(f"GCC: (Debian {gcc_version}) {compilers['gcc']}" in c for c in comments), comments
    verified = record["verified"]
    assert verified["system"] == "clean system" and verified["arch"] == arch and verified["suite"] == "sid"
    assert verified["glibc"] == rootfs["glibc"] and verified["python"] == "3.13", verified

    # Nothing leaks: the next build's layer has no libyaml headers, and the base rootfs never got them.
    base = EmulatedRunner(config)
    assert base.rootfs.missing(["libyaml-dev"]) == ["libyaml-dev"]
    with base.hermetic() as next_build:
        probe = ["sh", "-c", "test -e /usr/include/yaml.h && echo present || echo absent"]
        assert next_build.run(probe, cwd=config.paths.build, log=io.StringIO()).stdout.strip() == "absent"

    # nox -s clean-install on the board: on a layer of the native clean system, our wheel from dist/.
    report = clean_install(config, ["multidict==7.2.1"], [], upgrade_pip=False)
    assert report.ok and report.installed.get("multidict") == "7.2.1", report
    assert "3.13" in report.python and arch in report.python, report.python
    assert wheel.name in (root / report.log).read_text(), "pip installed our wheel, served from dist/"


def _dpkg_versions(root: Path) -> dict[str, str]:
    out = subprocess.run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f=${Package} ${Version}\n"],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split() for line in out.splitlines())


def test_the_clean_stage_is_the_clean_system_mmdebstrap_makes_apart(native_cache, tmp_path):
    """The clean system a board's `rootfs create` makes by taking the build rootfs's clean stage holds
    exactly the packages (names and versions) of one made apart by mmdebstrap, and none of
    mmdebstrap's set-up files."""
    clean = CleanSystem(load_config(native_project(tmp_path / "project", native_cache)))
    if "clean_stage_seconds" not in clean.stamp():
        pytest.skip(f"the clean system in {native_cache} was made apart or by an older wheelfactory")
    assert list(clean.stamp()["creation_steps"]) == ["taking the clean stage the build rootfs made"]
    apart = CleanSystem(load_config(native_project(
        tmp_path / "apart", native_cache, config=f'[emulation]\nrootfs = "{tmp_path / "other"}"\n')))
    assert apart.path == tmp_path / "other-clean" and not apart.seed_path.exists()
    apart.create()
    try:
        assert "installing essential packages" in apart.stamp()["creation_steps"]
        assert _dpkg_versions(clean.path) == _dpkg_versions(apart.path)
        for leftover in ("usr/sbin/policy-rc.d", "etc/apt/apt.conf.d/00mmdebstrap", "usr/sbin/start-stop-daemon.REAL"):
            assert not (clean.path / leftover).exists(), leftover
    finally:
        apart.remove()
