"""The clean system: a pristine riscv64 Debian that every wheel is verified on (real builds under QEMU).

Shares the build rootfs of tests/runners/test_emulated.py (support.emulation) and
adds the clean system beside it once per session; WHEELFACTORY_TEST_EMULATION_CACHE
keeps both between runs.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, write_project
from support.emulation import emu_project
from wheelfactory._util.fs import mounts_under
from wheelfactory.audit.clean_install import CleanInstallError, clean_install
from wheelfactory.cli import build as build_cli
from wheelfactory.cli import rootfs as rootfs_cli
from wheelfactory.errors import EnvironmentProblem
from wheelfactory.index import build_index
from wheelfactory.runners.clean import CLEAN_VARIANT, CleanSystem, clean_layer
from wheelfactory.runners.emulated import EmulatedRunner
from wheelfactory.runners.rootfs import Rootfs
from wheelfactory.settings.factory import load_config

pytestmark = [pytest.mark.emulation, pytest.mark.slow]

# PyYAML's _yaml extension links libyaml; PYYAML_FORCE_LIBYAML makes a build without it fail
# instead of quietly shipping the pure-Python fallback.
PYYAML = """\
[package]
name = "pyyaml"
version = "6.0.4"

[source]
sha256 = "{sha256}"

[build]
debian = ["libyaml-dev"]
env = {{ PYYAML_FORCE_LIBYAML = "1" }}

[repair]
exclude = ["libyaml-0.so.2"]
{runtime}
[test]
imports = ["yaml"]
"""
PYYAML_SHA256 = "e24bf71af8a432d7808fabff134d38dfe16d3cbb41f2873bb4b1e42422de0a1a"


def _pyyaml_project(tmp_path: Path, cache: Path, runtime: str = "") -> Path:
    root = emu_project(tmp_path / "project", cache)
    _write_pyyaml(root, runtime)
    return root


def _write_pyyaml(root: Path, runtime: str) -> None:
    path = root / "recipes" / "pyyaml" / "recipe.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(PYYAML.format(sha256=PYYAML_SHA256, runtime=runtime))


def _files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()} \
        if path.exists() else {}


def _dpkg_names(root: Path) -> set[str]:
    out = subprocess.run(["dpkg-query", f"--admindir={root}/var/lib/dpkg", "-W", "-f=${Package}\n"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


# --- the system ---------------------------------------------------------------------------

def test_the_clean_system_holds_python_and_nothing_to_build_with(clean_cache, tmp_path, capsys):
    root = emu_project(tmp_path / "project", clean_cache)
    clean = CleanSystem(load_config(root))
    assert clean.ready and clean.stamp()["variant"] == CLEAN_VARIANT
    names = _dpkg_names(clean.path)
    assert {"python3.13", "python3.13-venv", "ca-certificates"} <= names
    assert not names & {"gcc", "g++", "libc6-dev", "python3.13-dev", "libpython3.13-dev", "patchelf", "ccache",
                        "libffi-dev"}, "never a build package"
    capsys.readouterr()
    assert rootfs_cli.rootfs_command(["info", "--json"], root=root) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["clean_system"]["path"] == str(clean.path) and info["clean_system"]["ready"]
    assert info["clean_system"]["size"] < info["size"] and info["clean_system"]["glibc"] == info["glibc"]
    assert "3.13" in info["clean_system"]["pythons"] and info["path"] != str(clean.path)


def test_the_clean_system_is_the_build_rootfs_clean_stage_and_the_debs_stay_cached(clean_cache, tmp_path):
    """The clean system was not made twice: the build rootfs made it first (mmdebstrap with
    ca-certificates, then the Pythons), left a copy, and the clean system's creation took it and left
    nothing behind. The shared apt cache holds the .deb of every package the clean system has (so
    the next creation and the layers do not download them again), none is left in either system,
    and the stamps say how long each step took."""
    config = load_config(emu_project(tmp_path / "project", clean_cache))
    clean, build = CleanSystem(config), Rootfs(config)
    if "clean_stage_seconds" not in build.stamp():
        pytest.skip(f"the systems in {clean_cache} were made by an older wheelfactory; "
                    f"recreate them (nox -s rootfs -- create --replace) to check their creation")
    for system in (clean, build):
        assert not list((system.path / "var/cache/apt/archives").glob("*.deb"))
        assert not list((system.path / "var/lib/apt/lists").glob("*_Packages*"))
    assert list(clean.stamp()["creation_steps"]) == ["taking the clean stage the build rootfs made"]
    assert clean.stamp()["clean_stage_seconds"] == build.stamp()["clean_stage_seconds"] > 0
    assert not clean.seed_path.exists() and not list(clean.parent.glob(f".{build.name}.seeding-*"))
    assert not (clean.path / ".wheelfactory-seed.json").exists()
    steps = build.stamp()["creation_steps"]
    assert steps["installing essential packages"] > 0 and steps["clean stage: the clean system's Pythons"] > 0
    assert _dpkg_names(clean.path) < _dpkg_names(build.path), "the build rootfs is the clean system plus more"
    cached = {p.name for p in (clean.apt_cache / "archives").glob("*.deb")}
    out = subprocess.run(["dpkg-query", f"--admindir={clean.path}/var/lib/dpkg", "-W",
                          "-f=${Package}_${Version}_${Architecture}.deb\n"], capture_output=True, text=True, check=True)
    debs = {name.replace(":", "%3a") for name in out.stdout.split()}
    assert "python3.13-minimal" in " ".join(debs) and debs <= cached, sorted(debs - cached)


def test_layers_are_thrown_away_and_leave_no_mount(clean_cache, tmp_path):
    config = load_config(emu_project(tmp_path / "project", clean_cache))
    clean = CleanSystem(config)
    base = _dpkg_names(clean.path)
    work = config.paths.build
    work.mkdir(parents=True)
    log = io.StringIO()
    probe = ["sh", "-c", "ls /usr/lib/riscv64-linux-gnu/libyaml-0.so.2 2>/dev/null || echo absent; touch /etc/x"]
    with clean_layer(config, ["libyaml-0-2"], log=log, why="the test") as runner:
        assert runner.installed.get("libyaml-0-2"), runner.installed
        assert runner.run(probe, cwd=work, log=log).stdout.strip() == "/usr/lib/riscv64-linux-gnu/libyaml-0.so.2"
        layer_dir = runner.layer.folder
    assert not layer_dir.exists()
    with clean_layer(config, [], log=log, why="the test") as runner:
        assert runner.run(probe, cwd=work, log=log).stdout.strip() == "absent", "nothing leaks to the next layer"
    assert _dpkg_names(clean.path) == base and not (clean.path / "etc/x").exists()
    assert [m for m in mounts_under(clean.parent) if m != str(clean.parent)] == []
    assert not list(clean.parent.glob(f".{clean.name}.run-*"))


def test_a_build_layer_sees_only_its_own_build_packages(emu_cache, tmp_path):
    """Hermetic builds: what one build's layer installs (libyaml-dev) is gone for the next, and the base
    build rootfs never gets it."""
    config = load_config(emu_project(tmp_path / "project", emu_cache))
    base = EmulatedRunner(config)
    base._ready()
    assert base.rootfs.missing(["libyaml-dev"]) == ["libyaml-dev"], "the base build rootfs holds no recipe package"
    before = _dpkg_names(base.rootfs.path)
    work = config.paths.build
    work.mkdir(parents=True)
    log = io.StringIO()
    probe = ["sh", "-c", "test -e /usr/include/yaml.h && echo present || echo absent"]
    with base.hermetic() as recipe_a:
        assert recipe_a.missing_debian(["libyaml-dev"]) == []
        assert "libyaml-dev" in recipe_a.installed and "libyaml-0-2" in recipe_a.installed, recipe_a.installed
        assert recipe_a.run(probe, cwd=work, log=log).stdout.strip() == "present"
        described = recipe_a.describe()["rootfs"]
        assert described["layer"] and described["layer_packages"]["libyaml-dev"] == recipe_a.installed["libyaml-dev"]
    with base.hermetic() as recipe_b:
        assert recipe_b.run(probe, cwd=work, log=log).stdout.strip() == "absent"
    assert base.run(probe, cwd=work, log=log).stdout.strip() == "absent"
    assert _dpkg_names(base.rootfs.path) == before


def test_a_runtime_package_the_arch_lacks_is_named_with_the_recipe(clean_cache, tmp_path):
    root = emu_project(tmp_path / "project", clean_cache, recipes=["multidict"])
    recipe = root / "recipes/multidict/recipe.toml"
    recipe.write_text(recipe.read_text() + '\n[runtime]\ndebian = ["cpuid"]\n')  # amd64/i386 only
    assert build_cli.build_command(["multidict"], root=root) == 1
    rec = json.loads(next((root / "logs/multidict").glob("*.json")).read_text())
    assert "cpuid" in rec["message"] and "riscv64" in rec["message"] and "runtime.debian" in rec["message"]
    assert str(recipe) in rec["message"]
    assert _files(root / "dist") == {}


def test_clean_system_mirror_error_leaves_nothing_trusted(tmp_path):
    root = write_project(tmp_path / "p", host_target=False,
                         config=f'[paths]\ncache = "{tmp_path / "cache"}"\n'
                                f'[emulation]\nmirror = "http://127.0.0.1:9/debian"\n')
    clean = CleanSystem(load_config(root))
    with pytest.raises(EnvironmentProblem) as e:
        clean.create()
    assert "127.0.0.1:9" in str(e.value)
    assert not clean.path.exists() and not clean.ready
    assert [p.name for p in clean.parent.glob(f".{clean.name}.*") if p.is_dir()] == []


def test_an_interrupted_clean_system_creation_is_never_trusted(tmp_path):
    """kill -9 in the middle of mmdebstrap: the half-made clean system is never used; the next
    clean-install throws it away and makes it afresh (here failing fast on a dead mirror, one message)."""
    cache = tmp_path / "cache"
    root = write_project(tmp_path / "p", host_target=False, config=f'[paths]\ncache = "{cache}"\n')
    clean = CleanSystem(load_config(root))
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from wheelfactory.settings.factory import load_config;"
            f"from wheelfactory.runners.clean import CleanSystem; CleanSystem(load_config({str(root)!r})).create()")
    child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    for line in child.stderr:  # mmdebstrap's progress: it is busy inside the half-made folder
        if "downloading packages" in line or "extracting" in line:
            break
    else:
        raise AssertionError("mmdebstrap never got going")
    child.kill()
    child.wait()
    deadline = time.monotonic() + 30
    while any(str(clean.parent) in " ".join(p) for p in _cmdlines()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not clean.ready and not clean.path.exists()
    assert list(clean.parent.glob(f".{clean.name}.creating-*")), "kill -9 leaves the half-made folder"

    with (root / "factory.toml").open("a") as f:
        f.write('[emulation]\nmirror = "http://127.0.0.1:9/debian"\n')
    code = ("import sys; from wheelfactory import cli; from wheelfactory.cli import audit;"
            f"cli.run(audit.clean_install_command, ['six', '--no-upgrade-pip'], root={str(root)!r})")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 1, r.stderr
    assert "127.0.0.1:9" in r.stderr and "[emulation].mirror" in r.stderr, r.stderr
    assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr, r.stderr
    assert not clean.ready and not clean.path.exists()
    assert [p.name for p in clean.parent.glob(f".{clean.name}.*") if p.is_dir()] == [], "the half-made one is gone"
    assert _files(root / "dist") == {} and _files(root / "index") == {}


def _cmdlines() -> list[list[str]]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                out.append((p / "cmdline").read_bytes().decode(errors="replace").split("\0"))
            except OSError:
                continue
    return out


# --- the field report's torch failure, reproduced with pyyaml/libyaml ----------------------------

def test_an_undeclared_runtime_library_fails_verify_and_a_declared_one_passes(clean_cache, tmp_path):
    """The torch failure (verify) and the numpy failure (clean-install), reproduced with pyyaml."""
    root = _pyyaml_project(tmp_path, clean_cache)
    config = load_config(root)
    # PyPI has no riscv64 wheel of PyYAML: on the clean riscv64 system pip builds it from source.
    rep = clean_install(config, ["pyyaml==6.0.4"], [], upgrade_pip=False)
    assert not rep.ok and rep.built_packages == ["pyyaml"], rep
    assert "riscv64" in rep.python, rep.python
    assert build_cli.build_command(["pyyaml"], root=root) == 1
    rec = json.loads(next((root / "logs/pyyaml").glob("*.json")).read_text())
    msg = rec["message"]
    # test.imports names only "yaml" (which falls back to pure Python by itself): the check of every
    # extension module of the wheel is what finds yaml._yaml unloadable.
    assert "yaml._yaml" in msg and "libyaml-0.so.2" in msg and "libyaml-0-2" in msg, msg
    assert "runtime.debian" in msg and "clean riscv64 sid system" in msg, msg
    assert _files(root / "dist") == {} and _files(root / "index") == {}
    assert Rootfs(config).missing(["libyaml-dev"]) == ["libyaml-dev"], "build.debian went into the build's layer"

    # The same wheel imports in the build rootfs: the build machine would have hidden the failure.
    wheel = next((root / "build/pyyaml/repaired/py3.13").glob("*.whl"))
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if "libyaml" in n], "libyaml is not bundled"
    runner = EmulatedRunner(config)
    work = root / "build" / "check"
    work.mkdir()
    log = io.StringIO()
    runner.run(["python3.13", "-m", "venv", "--without-pip", str(work / "venv")], cwd=work, log=log)
    tools_py = str(config.paths.cache / "tools" / runner.id / "py3.13" / "bin" / "python")
    runner.run([tools_py, "-m", "pip", "--python", str(work / "venv/bin/python"), "install", "--no-index",
                "--no-deps", str(wheel)], cwd=work, log=log)
    with runner.hermetic() as place:
        place.missing_debian(["libyaml-dev"])  # what the build had
        proc = place.run([str(work / "venv/bin/python"), "-c", "import yaml._yaml; print('ok')"], cwd=work,
                         log=log, check=False)
    assert proc.stdout.strip().endswith("ok"), log.getvalue()[-2000:]

    # Declared in runtime.debian: verified on the clean system with it installed, stored, shown on the page.
    _write_pyyaml(root, '\n[runtime]\ndebian = ["libyaml-0-2"]\n')
    assert build_cli.build_command(["pyyaml"], root=root) == 0
    wheels = list((root / "dist").glob("PyYAML-*.whl")) + list((root / "dist").glob("pyyaml-*.whl"))
    assert len(wheels) == 1, list((root / "dist").iterdir())
    record = json.loads((root / "dist" / f"{wheels[0].name}.json").read_text())
    verified = record["verified"]
    assert verified["system"] == "clean system" and verified["suite"] == "sid" and verified["glibc"]
    assert "libyaml-0-2" in verified["runtime_debian"] and "gcc" not in verified["runtime_debian"]
    assert any("yaml._yaml" in n for n in record["notes"]), record["notes"]
    layer = record["host"]["rootfs"]["layer_packages"]
    assert layer["libyaml-dev"] and layer["libyaml-0-2"], "the build layer's packages, with versions"
    build_index(load_config(root))
    page = (root / "index" / "project" / "pyyaml" / "index.html").read_text()
    assert "apt-get install libyaml-0-2" in page

    # Our wheel in dist/ (served for the run): the same clean install builds nothing and imports yaml._yaml.
    rep = clean_install(config, ["pyyaml==6.0.4"], [], upgrade_pip=False)
    assert rep.ok and not rep.built_from_source and not rep.missing_libraries, rep
    assert "pyyaml" in rep.installed and not rep.other_import_failures, rep
    assert "yaml._yaml" in (root / rep.log).read_text()


def test_clean_install_with_an_index_that_does_not_answer_is_one_message(tmp_path):
    root = write_project(tmp_path / "p", host_target=False, config=f'[paths]\ncache = "{tmp_path / "cache"}"\n')
    with pytest.raises(CleanInstallError) as e:
        clean_install(load_config(root), ["six"], [], indexes=["http://127.0.0.1:9/simple"])
    assert "127.0.0.1:9" in str(e.value) and "--index" in str(e.value)
    assert not (tmp_path / "cache" / "rootfs").exists(), "nothing was made before the index answered"
