"""Native cross compilers in emulated riscv64 builds (issue #17): the same wheels, faster.

Real builds of real PyPI sdists in the session's riscv64 rootfs (see support.emulation),
with the native half (``runners.cross.NativeHalf``, made once per cache by mmdebstrap)
mounted at /native: multidict (C) and editdistance (C++, Cython-generated) are built
once with the cross compilers and once with the rootfs's own emulated ones, and every
assert reuses those four builds. The fault tests need no build.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from elftools.elf.elffile import ELFFile

from conftest import write_recipe
from support.build import make_sdist, tiny_files, tiny_recipe
from support.emulation import emu_project
from wheelfactory.cli import build as build_cli
from wheelfactory.cli import rootfs as rootfs_cli
from wheelfactory.errors import EnvironmentProblem
from wheelfactory.runners.cross import CROSS_BIN, NativeHalf
from wheelfactory.runners.emulated import EmulatedRunner
from wheelfactory.runners.rootfs import STAMP
from wheelfactory.settings.factory import load_config

pytestmark = [pytest.mark.emulation, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EM_RISCV = "EM_RISCV"

# A real C++ extension: a few hundred lines of C++ plus a Cython-made .cpp, built by pdm-backend.
EDITDISTANCE = """
[package]
name = "editdistance"
version = "0.8.1"

[source]
sha256 = "d1cdf80a5d5014b0c9126a69a42ce55a457b457f6986ff69ca98e4fe4d2d8fed"

[test]
imports = ["editdistance", "editdistance.bycython"]
commands = ["python -c \\"import editdistance; assert editdistance.eval('banana', 'bahama') == 2\\""]
"""
RECIPES = ("multidict", "editdistance")


def project(root: Path, cache: Path, cross: str) -> Path:
    emu_project(root, cache, recipes=["multidict"],
                config=f'[target]\npythons = ["3.13"]\n[emulation]\ncross-compilers = "{cross}"\n')
    write_recipe(root, "editdistance", EDITDISTANCE)
    return root


@pytest.fixture(scope="module")
def built(emu_cache, clean_cache, tmp_path_factory) -> dict[str, Path]:
    """mode ("required" = native cross compilers, "off" = emulated) -> project root with both wheels in dist/."""
    roots = {}
    for mode in ("required", "off"):
        root = project(tmp_path_factory.mktemp(f"cross-{mode}"), emu_cache, mode)
        assert build_cli.build_command(list(RECIPES), root=root) == 0, f"the {mode} builds failed; see {root}/logs"
        roots[mode] = root
    return roots


def dist_record(root: Path, recipe: str) -> tuple[Path, dict]:
    (wheel,) = sorted((root / "dist").rglob(f"{recipe}-*.whl"))
    return wheel, json.loads(wheel.with_name(wheel.name + ".json").read_text())


def elf_facts(wheel: Path, tmp: Path) -> dict[str, tuple[str, set[str]]]:
    """Each ELF member of the wheel -> (e_machine, the global symbols it defines)."""
    out = {}
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            data = zf.read(name)
            if not data.startswith(b"\x7fELF"):
                continue
            path = tmp / Path(name).name
            path.write_bytes(data)
            with open(path, "rb") as f:
                elf = ELFFile(f)
                dynsym = elf.get_section_by_name(".dynsym")
                exported = {s.name for s in dynsym.iter_symbols()
                            if s["st_shndx"] != "SHN_UNDEF" and s["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")}
                out[name] = (elf["e_machine"], exported)
    return out


@pytest.mark.parametrize("recipe", RECIPES)
def test_cross_and_emulated_compilers_make_the_same_wheel(built, recipe, tmp_path):
    cross_wheel, cross = dist_record(built["required"], recipe)
    emu_wheel, emu = dist_record(built["off"], recipe)
    # The record says which compilers made the objects.
    assert cross["host"]["compilers"]["kind"] == "native-cross"
    assert cross["host"]["compilers"]["name"] == "riscv64-linux-gnu-gcc-16"
    assert emu["host"]["compilers"]["kind"] == "emulated"
    assert "cross-compilers" in emu["host"]["compilers"]["why"]
    assert cross["host"]["compilers"]["gcc"] == emu["host"]["compilers"]["gcc"] == emu["host"]["rootfs"]["gcc"]
    # Same policy, same wheel name, both verified on the clean system.
    assert cross_wheel.name == emu_wheel.name
    assert cross["achieved_policy"] == emu["achieved_policy"]
    for record in (cross, emu):
        assert record["status"] == "ok" and "verify" in record["stages"]
    # Every ELF is RISC-V and exports the same symbols.
    (tmp_path / "c").mkdir()
    (tmp_path / "e").mkdir()
    cross_elves, emu_elves = elf_facts(cross_wheel, tmp_path / "c"), elf_facts(emu_wheel, tmp_path / "e")
    assert cross_elves and set(cross_elves) == set(emu_elves)
    for name, (machine, exported) in cross_elves.items():
        assert machine == EM_RISCV, name
        assert emu_elves[name][0] == EM_RISCV, name
        assert exported == emu_elves[name][1], name
        assert any(s.startswith("PyInit_") for s in exported), name


@pytest.mark.parametrize("recipe", RECIPES)
def test_each_wheel_was_compiled_by_the_compiler_its_record_names(built, recipe):
    """Each object names its compiler: gcc writes its Debian version into .comment ("GCC: (Debian
    16.2.0-3) 16.2.0": the cross package's 16.2.0-3cross1 in the cross wheel, the rootfs's gcc-16 in
    the other), and the debug info names gcc's own include folder: /native/usr/lib/gcc-cross/... only
    when the native cross compiler ran (without the wrappers this test fails)."""
    for mode, package, gcc_include in (("required", "gcc-16-riscv64-linux-gnu", b"/native/usr/lib/gcc-cross/"),
                                       ("off", "gcc-16", b"/usr/lib/gcc/riscv64-linux-gnu/16/include")):
        wheel, record = dist_record(built[mode], recipe)
        version = record["host"]["compilers"]["packages"][package].split("cross")[0]
        with zipfile.ZipFile(wheel) as zf:
            objects = {n: zf.read(n) for n in zf.namelist() if n.endswith(".so")}
        assert objects
        for name, data in objects.items():
            assert f"(Debian {version})" in comment(data), (mode, name, version, comment(data))
            assert gcc_include in data, (mode, name)
            assert (b"/native/" in data) == (mode == "required"), (mode, name)


def comment(elf_bytes: bytes) -> str:
    section = ELFFile(io.BytesIO(elf_bytes)).get_section_by_name(".comment")
    return section.data().decode(errors="replace") if section else ""


# --- faults: one message with the fix, fallback only when the setting allows ---------------------

def fake_native_half(emu_cache: Path, folder: Path) -> Path:
    """A native half that looks ready (stamp, dpkg database, wrappers) but has no compilers in it."""
    real = NativeHalf(load_config(project(folder / "probe", emu_cache, "auto")))
    real.ensure()
    fake = folder / "native"
    (fake / "var/lib/dpkg").mkdir(parents=True)
    shutil.copyfile(real.path / "var/lib/dpkg/status", fake / "var/lib/dpkg/status")
    shutil.copytree(real.path / "wheelfactory-cross", fake / "wheelfactory-cross")
    shutil.copyfile(real.path / STAMP, fake / STAMP)
    return fake


@pytest.mark.parametrize("mode", ["auto", "required"])
def test_a_wrapper_that_cannot_reach_its_compiler_falls_back_only_when_allowed(emu_cache, tmp_path, mode):
    fake = fake_native_half(emu_cache, tmp_path)
    root = project(tmp_path / "p", emu_cache, mode)
    toml = root / "factory.toml"
    toml.write_text(toml.read_text().replace("[emulation]\n", f'[emulation]\ncross-rootfs = "{fake}"\n'))
    runner = EmulatedRunner(load_config(root))
    if mode == "required":
        with pytest.raises(EnvironmentProblem) as e:
            with runner.hermetic():
                pass
        msg = str(e.value)
        assert "could not run riscv64-linux-gnu-gcc-16" in msg and "nox -s rootfs -- update" in msg
        assert '"auto"' in msg
        return
    with runner.hermetic() as layered:
        assert layered.cross is None
        record = layered.describe()["compilers"]
    assert record["kind"] == "emulated" and "could not run riscv64-linux-gnu-gcc-16" in record["why"]


def test_a_folder_that_is_no_native_half_is_refused_with_the_fix(emu_cache, tmp_path):
    """An interrupted creation leaves no stamp: the folder is never trusted (and never deleted)."""
    junk = tmp_path / "native"
    (junk / "usr/bin").mkdir(parents=True)
    root = project(tmp_path / "p", emu_cache, "required")
    toml = root / "factory.toml"
    toml.write_text(toml.read_text().replace("[emulation]\n", f'[emulation]\ncross-rootfs = "{junk}"\n'))
    with pytest.raises(EnvironmentProblem, match="not a wheelfactory rootfs"):
        with EmulatedRunner(load_config(root)).hermetic():
            pass
    assert (junk / "usr/bin").is_dir()


def test_recipe_opt_out_uses_the_emulated_compilers(emu_cache, tmp_path):
    runner = EmulatedRunner(load_config(project(tmp_path / "p", emu_cache, "required")))
    with runner.hermetic(cross=False) as layered:
        assert layered.cross is None
        record = layered.describe()["compilers"]
    assert record["kind"] == "emulated" and record["name"] == "gcc-16"
    assert record["why"] == "the recipe sets build.cross = false"
    assert record["gcc"] == runner.rootfs.stamp()["gcc"] and record["packages"]["gcc-16"].startswith(record["gcc"])


def test_build_systems_are_handed_the_wrappers_by_name(emu_cache, tmp_path):
    """Meson puts a ccache it finds in front of the compilers unless CC/CXX name them (Meson's
    "Feature autodetection"); in the rootfs that ccache is an emulated process hashing every
    preprocessed file (numpy 2.4.6 configured "ccache cc" before). With the cross compilers, CC and CXX
    name the wrappers, which run the native ccache themselves; without them nothing is set."""
    runner = EmulatedRunner(load_config(project(tmp_path / "p", emu_cache, "required")))
    work = runner.config.paths.build
    work.mkdir(parents=True, exist_ok=True)
    probe = ['sh', '-c', 'for v in "$CC" "$CXX"; do command -v "$v"; done; command -v ccache; "$CC" -dumpmachine']
    with runner.hermetic() as layered:
        out = layered.run(probe, cwd=work, log=io.StringIO()).stdout.split()
    assert out == [f"{CROSS_BIN}/cc", f"{CROSS_BIN}/c++", "/usr/bin/ccache", "riscv64-linux-gnu"]
    with runner.hermetic(cross=False) as layered:
        unset = layered.run(["sh", "-c", 'echo "[${CC-}${CXX-}]"'], cwd=work, log=io.StringIO()).stdout.split()
    assert unset == ["[]"]


def test_rootfs_info_shows_the_native_rootfs_and_its_compiler_versions(emu_cache, tmp_path, capsys):
    root = project(tmp_path / "p", emu_cache, "auto")
    native = NativeHalf(load_config(root))
    native.ensure()
    capsys.readouterr()
    assert rootfs_cli.rootfs_command(["info", "--json"], root=root) == 0
    info = json.loads(capsys.readouterr().out)
    cross = info["cross_compilers"]
    assert cross["ready"] and cross["path"] == str(native.path) and cross["arch"] == "x86_64"
    assert cross["gcc"] == info["gcc"], "the cross gcc has the build rootfs's gcc version"
    assert cross["compilers"]["gcc-16-riscv64-linux-gnu"].startswith(info["gcc"])
    assert cross["size"] > 100 * 2**20 and cross["age_seconds"] >= 0
    # The cross toolchain's own glibc is left out: the build rootfs's is the one compiled and linked against.
    assert not (native.path / "usr/riscv64-linux-gnu/lib/libc.so.6").exists()
    assert (native.path / "usr/riscv64-linux-gnu/lib/libstdc++.so.6").exists()
    assert rootfs_cli.rootfs_command(["info"], root=root) == 0
    assert "cross compilers" in capsys.readouterr().err


def test_rust_runs_emulated_and_the_record_says_so(emu_cache, tmp_path):
    """A Rust recipe (textual-speedups, maturin) gets rustc and cargo in its layer; they run under
    QEMU beside the native C cross compilers, and the attempt record says which rustc and why.
    The build itself stops at crates.io, which no build here can reach."""
    root = project(tmp_path / "p", emu_cache, "required")
    shutil.copytree(REPO / "recipes" / "textual-speedups", root / "recipes" / "textual-speedups")
    assert build_cli.build_command(["textual-speedups"], root=root) == 1
    (attempt_path,) = (root / "logs" / "textual-speedups").glob("*.json")
    attempt = json.loads(attempt_path.read_text())
    compilers = attempt["host"]["compilers"]
    assert compilers["kind"] == "native-cross"  # C and C++ still native
    rust = compilers["rust"]
    assert rust["kind"] == "emulated" and rust["rustc"] == attempt["host"]["rootfs"]["layer_packages"]["rustc"]
    assert "QEMU" in rust["why"]
    # a download is not the compilers' fault: no build.cross hint on it
    assert "needs crates.io" in attempt["message"] and "build.cross" not in attempt["message"]
    assert "crates.io" in " ".join((root / "logs" / "textual-speedups").glob("*.log").__next__().read_text().split())


def test_one_recipes_build_package_is_unseen_by_the_next_and_a_failed_compile_names_the_switch(
        emu_cache, sdist_server, tmp_path):
    """Issue #13's leak proof with real builds: recipe A (build.debian = ["libyaml-dev"]) compiles
    against <yaml.h>; recipe B, the same source without it, is built next in the same project and
    cannot see the header. B's compile failure, under the native cross compilers, is one message
    that also names the per-recipe switch build.cross = false (issue #17)."""
    root = project(tmp_path / "p", emu_cache, "required")
    for name, debian in (("wf-yaml-a", '["libyaml-dev"]'), ("wf-yaml-b", "[]")):
        files = tiny_files(name=name, extra_c="#include <yaml.h>", call="yaml_char_t c = 0; (void)c;")
        path, sha = make_sdist(sdist_server.folder / name, files, name=name)
        served = SimpleNamespace(sdists={name: (f"{sdist_server.url}/{name}/{path.name}", sha)})
        module = name.replace("-", "_")
        tiny_recipe(root, served, variant=name, name=name, imports=f'["{module}", "{module}._speed"]',
                    extra=f"[build]\ndebian = {debian}\n")
    assert build_cli.build_command(["wf-yaml-a"], root=root) == 0, f"see {root}/logs"
    (_, record_a) = dist_record(root, "wf_yaml_a")
    assert "libyaml-dev" in record_a["host"]["rootfs"]["layer_packages"]
    assert build_cli.build_command(["wf-yaml-b"], root=root) == 1
    (attempt_path,) = (root / "logs" / "wf-yaml-b").glob("*.json")
    attempt = json.loads(attempt_path.read_text())
    assert "building the wheel" in attempt["message"] and "yaml.h" in attempt["message"], attempt["message"]
    assert attempt["message"].endswith("(compiled with native cross compilers; if they are the cause, set "
                                       "build.cross = false in the recipe)")
    assert attempt["host"]["compilers"]["kind"] == "native-cross"  # the record of the layer it failed in
    assert "libyaml-dev" not in attempt["host"]["rootfs"]["layer_packages"]
