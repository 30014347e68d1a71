"""The cibuildwheel strategy: the recipes as cibuildwheel options, checked by cibuildwheel itself.

A real container build needs a Docker or Podman engine (and, off riscv64, QEMU
in binfmt_misc); ``test_real_container_build`` runs one where that exists and
is skipped, with the reason, where it does not. Everything else runs anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from support.build import make_project
from conftest import REPO, write_recipe
from wheelfactory._util.fs import sha256_file
from wheelfactory.build import cibuildwheel, pipeline, store
from wheelfactory.runners import container
from wheelfactory.settings.factory import load_config
from wheelfactory.errors import BuildError, RecipeError, RepairError
from wheelfactory.settings.recipe import load_all, load_recipe

ALL = sorted(p.parent.name for p in (REPO / "recipes").glob("*/recipe.toml"))


def cibw_build_options(config_file: Path, package: Path, ident: str):
    """cibuildwheel's own reading of the options, for one build identifier (no container needed)."""
    from cibuildwheel.options import CommandLineArguments, compute_options

    args = CommandLineArguments.defaults()
    args.platform = "linux"
    args.config_file = str(config_file)
    args.package_dir = package
    opts = compute_options("linux", args, cibuildwheel.cibuildwheel_env())
    return opts.build_options(ident)


def write_options(tmp_path: Path, options: dict) -> tuple[Path, Path]:
    package = tmp_path / "pkg"
    package.mkdir(exist_ok=True)
    (package / "pyproject.toml").write_text('[project]\nname = "pkg"\nversion = "1"\n')
    config_file = tmp_path / "cibuildwheel.toml"
    config_file.write_text(cibuildwheel.options_toml(options))
    return config_file, package


@pytest.mark.parametrize("name", ALL)
def test_every_recipe_maps_onto_options_cibuildwheel_accepts(tmp_path, name):
    config = load_config(REPO)  # riscv64, manylinux_2_39, the configured Pythons
    recipe = load_recipe(config.paths.recipes, name)
    options = cibuildwheel.cibuildwheel_options(config, recipe, config.pythons, engine="podman")
    config_file, package = write_options(tmp_path, options)
    assert tomllib.loads(config_file.read_text())["tool"]["cibuildwheel"] == options  # the TOML round-trips

    proc = subprocess.run([sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", "linux",
                           "--config-file", str(config_file), str(package)], capture_output=True, text=True,
                          env=cibuildwheel.cibuildwheel_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    wanted = [f"cp{v.replace('.', '')}-manylinux_riscv64" for v in config.pythons]
    assert proc.stdout.split() == wanted

    b = cibw_build_options(config_file, package, wanted[0])
    env = b.environment.as_dictionary(prev_environment={})
    assert {k: env[k] for k in recipe.build.env} == recipe.build.env  # literal values
    assert env["PIP_INDEX_URL"] == config.indexes.install[0]
    assert b.manylinux_images["riscv64"] == config.container.image
    assert b.container_engine.name == "podman"
    assert b.repair_command.startswith("auditwheel repair --plat manylinux_2_39_riscv64 ")
    assert b.repair_command.endswith(" -w {dest_dir} {wheel}")
    for module in recipe.test.imports:
        assert f"import {module}" in b.test_command
    for command in recipe.test.commands:
        assert command in b.test_command
    # config-settings: every key=value the recipe gives, lists repeated
    settings = recipe.build.config_settings
    for key, value in settings.items():
        for v in [value] if isinstance(value, str) else value:
            assert f"{key}={v}" in b.config_settings or f"{key}='{v}'" in b.config_settings
    extra_build_env = recipe.build.requires or not recipe.build.isolation
    assert (b.build_frontend.name, "--no-isolation" in b.build_frontend.args) == ("build", bool(extra_build_env))
    assert ("before_build.py" in (b.before_build or "")) == bool(extra_build_env)
    if recipe.build.debian or recipe.build.dnf:
        assert b.before_all.startswith("dnf install -y ")


def test_numpy_and_grpcio_details(tmp_path):
    config = load_config(REPO)
    recipes = load_all(config.paths.recipes)
    numpy = cibuildwheel.cibuildwheel_options(config, recipes["numpy"], ["3.12"], engine="docker")
    assert numpy["before-all"] == "dnf install -y openblas-devel gcc-gfortran pkgconf-pkg-config"
    config_file, package = write_options(tmp_path, numpy)
    b = cibw_build_options(config_file, package, "cp312-manylinux_riscv64")
    assert b.config_settings == ("setup-args=-Dblas=openblas setup-args=-Dlapack=openblas "
                                 "setup-args=-Dallow-noblas=false")
    grpcio = cibuildwheel.cibuildwheel_options(config, recipes["grpcio"], ["3.12"], engine="docker")
    config_file, package = write_options(tmp_path, grpcio)
    env = cibw_build_options(config_file, package, "cp312-manylinux_riscv64").environment.as_dictionary({})
    assert env["GRPC_BUILD_WITH_BORING_SSL_ASM"] == "" and env["GRPC_PYTHON_BUILD_SYSTEM_OPENSSL"] == "1"


def test_awkward_values_stay_literal(tmp_path, project):
    write_recipe(project, "odd", '''
        [package]
        name = "odd"
        version = "1.0"
        [source]
        sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
        [build]
        env = { DOLLAR = "$HOME/x", QUOTES = "it's \\"quoted\\" $HOME \\\\", SPACES = "a  b", EMPTY = "", BACKTICK = "`id`" }
        dnf = ["libffi-devel"]
        config-settings = { "--build-option" = ["--x=1 2", "--y"] }
        [repair]
        exclude = ["libfoo.so.1"]
        [test]
        imports = ["odd"]
        commands = ["python -c \\"import odd; assert odd.f({'a': 1}) == 1\\""]
        requires = ["pytest>=8"]
    ''')
    config = load_config(project)
    options = cibuildwheel.cibuildwheel_options(config, load_recipe(config.paths.recipes, "odd"), ["3.11"],
                                             engine="docker")
    config_file, package = write_options(tmp_path, options)
    ident = f"cp311-manylinux_{config.arch}"
    b = cibw_build_options(config_file, package, ident)
    env = b.environment.as_dictionary(prev_environment={"HOME": "/root"})
    assert env["DOLLAR"] == "$HOME/x" and env["QUOTES"] == 'it\'s "quoted" $HOME \\' and env["SPACES"] == "a  b"
    assert env["EMPTY"] == "" and env["BACKTICK"] == "`id`"
    assert b.before_all == "dnf install -y libffi-devel"
    assert "--exclude libfoo.so.1" in b.repair_command and "--plat auto" in b.repair_command  # host target: best
    assert b.test_requires == ["pytest>=8"]
    assert "odd.f({'a': 1})" in b.test_command  # braces survive cibuildwheel's placeholder expansion
    # The test command is one shell command that runs the imports and then the commands.
    (tmp_path / "odd.py").write_text("def f(d):\n    return d['a']\n")
    run = lambda: subprocess.run(["sh", "-c", b.test_command], cwd=tmp_path, capture_output=True, text=True)  # noqa: E731
    assert run().returncode == 0, run().stderr
    (tmp_path / "odd.py").write_text("def f(d):\n    return 2\n")
    assert run().returncode != 0 and "AssertionError" in run().stderr


def test_debian_packages_map_to_dnf_or_say_what_to_add(project):
    write_recipe(project, "x", '''
        [package]
        name = "x"
        version = "1.0"
        [source]
        sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
        [build]
        debian = ["libssl-dev", "libfrobnicate-dev"]
    ''')
    recipe = load_recipe(project / "recipes", "x")
    with pytest.raises(RecipeError) as e:
        cibuildwheel.dnf_packages(recipe)
    assert "libfrobnicate-dev" in str(e.value) and "build.dnf" in str(e.value) and "recipe.toml" in str(e.value)
    cffi = load_recipe(REPO / "recipes", "cffi")
    assert cibuildwheel.dnf_packages(cffi) == ["libffi-devel", "pkgconf-pkg-config"]


def test_a_build_env_name_no_shell_can_set_names_the_recipe_key(project):
    path = write_recipe(project, "x", '''
        [build]
        env = { "CFLAGS-EXTRA" = "-O2" }
        [package]
        name = "x"
        version = "1.0"
        [source]
        sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
    ''')
    config = load_config(project)
    with pytest.raises(RecipeError) as e:
        cibuildwheel.cibuildwheel_options(config, load_recipe(config.paths.recipes, "x"), ["3.11"], engine="docker")
    msg = str(e.value)
    assert msg.startswith(f"{path}: build.env names the variable 'CFLAGS-EXTRA'") and "rename or remove it" in msg, msg


def test_options_cibuildwheel_refuses_carry_its_reason_and_the_recipe(tmp_path):
    config_file, package = write_options(tmp_path, {"archs": ["sparc"]})
    with pytest.raises(BuildError) as e:
        cibuildwheel.print_build_identifiers(config_file, str(package), tmp_path, recipe=Path("recipes/x/recipe.toml"),
                                             config=Path("factory.toml"))
    msg = str(e.value)
    assert f"options written to {config_file}: cibuildwheel: error: Invalid architecture 'sparc'" in msg, msg
    assert "in recipes/x/recipe.toml, environment is build.env" in msg, msg
    assert "in factory.toml, archs is target.arch" in msg, msg


def test_dependency_wheels_reach_the_container(tmp_path):
    config = load_config(REPO)
    torch = load_recipe(config.paths.recipes, "torch")
    options = cibuildwheel.cibuildwheel_options(config, torch, ["3.12"], engine="docker",
                                             dependency_wheels=["numpy-2.5.5-cp312-cp312-manylinux_2_39_riscv64.whl"])
    config_file, package = write_options(tmp_path, options)
    b = cibw_build_options(config_file, package, "cp312-manylinux_riscv64")
    env = b.environment.as_dictionary({})
    assert env["PIP_FIND_LINKS"] == "/project/.wheelfactory/deps" == env["UV_FIND_LINKS"]
    assert b.build_frontend.args == ["--no-isolation", "--skip-dependency-check"]  # torch: isolation = false


def test_before_build_helper_installs_what_isolation_would(tmp_path):
    """The helper that runs in the container, run here in a venv with real pip against PyPI."""
    project = tmp_path / "proj"
    (project / ".wheelfactory").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=68"]\n'
                                            'build-backend = "setuptools.build_meta"\n'
                                            '[project]\nname = "p"\nversion = "1"\n')
    shutil.copyfile(cibuildwheel.BEFORE_BUILD, project / ".wheelfactory/before_build.py")
    (project / ".wheelfactory/before-build.json").write_text(json.dumps(
        {"isolation": True, "requires": ["expandvars"], "install": [], "config_settings": {}}))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    proc = subprocess.run([py, str(project / ".wheelfactory/before_build.py"),
                           str(project / ".wheelfactory/before-build.json"), str(project)],
                          capture_output=True, text=True, cwd=project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    have = subprocess.run([py, "-m", "pip", "list", "--format=json"], capture_output=True, text=True).stdout
    names = {p["name"].lower() for p in json.loads(have)}
    assert {"setuptools", "expandvars", "build"} <= names


# --- into dist/, like every runner ----------------------------------------------------------


@pytest.fixture(scope="module")
def riscv_wheel(tmp_path_factory):
    """A real manylinux riscv64 wheel from PyPI, standing in for cibuildwheel's output."""
    d = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                    "--platform", "manylinux_2_39_riscv64", "--python-version", "3.11", "-d", str(d),
                    "markupsafe==3.0.4"], check=True)
    [wheel] = d.glob("*.whl")
    return wheel


def test_wheels_enter_dist_with_the_same_records(tmp_path, riscv_wheel, shared_cache):
    root = make_project(tmp_path / "p", shared_cache, config='[target]\narch = "riscv64"\n'
                        'policy = "manylinux_2_39"\npythons = ["3.11"]\n')
    # conftest wrote a host [target] first; keep the riscv64 one only.
    text = (root / "factory.toml").read_text()
    (root / "factory.toml").write_text(text[text.index("[paths]"):])
    write_recipe(root, "markupsafe", '''
        [package]
        name = "markupsafe"
        version = "3.0.4"
        [source]
        sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
        [runtime]
        debian = ["libexample1"]
        [test]
        imports = ["markupsafe"]
    ''')
    config = load_config(root)
    assert config.arch == "riscv64"
    recipe = load_recipe(config.paths.recipes, "markupsafe")
    wheelhouse = tmp_path / "wheelhouse"

    def store_one(key: str) -> Path:
        wheelhouse.mkdir(exist_ok=True)
        shutil.copyfile(riscv_wheel, wheelhouse / riscv_wheel.name)
        with open(tmp_path / "log.txt", "a") as log:
            ready = cibuildwheel.collect_wheels(
                config, recipe, wheelhouse, todo=["3.11"], keys={"3.11": key}, policy="manylinux_2_39",
                source={"kind": "sdist"}, patches=[], host={"runner": "container"}, stages={"cibuildwheel": 1.0},
                start=0.0, log=log, log_rel="logs/markupsafe/x.log", note="test")
            [dest] = [store.store_wheel(config.paths.dist, wheel, record) for wheel, record in ready.values()]
        shutil.rmtree(wheelhouse)
        return dest

    first = store_one("k1")
    rec = json.loads((first.parent / f"{first.name}.json").read_text())
    for key in ("name", "version", "filename", "build_tag", "sha256", "size", "tags", "requires_python", "metadata",
                "metadata_sha256", "build_key", "python", "target", "policy", "achieved_policy", "recipe", "source",
                "debian_runtime", "auditwheel", "host", "duration", "stages", "status", "log", "built_at", "yanked"):
        assert key in rec, key
    assert rec["sha256"] == sha256_file(first) and rec["build_tag"] is None
    assert rec["achieved_policy"] == "manylinux_2_31" and rec["debian_runtime"] == ["libexample1"]
    assert "manylinux_2_31_riscv64" in rec["auditwheel"]
    assert rec["metadata"].startswith("Metadata-Version") and rec["target"] == "riscv64"
    # A new key at the same version: the next build tag, never the same file name.
    second = store_one("k2")
    assert second.name.startswith("markupsafe-3.0.4-1-cp311") and second != first
    assert json.loads((second.parent / f"{second.name}.json").read_text())["build_tag"] == 1
    assert sorted(r["build_key"] for r in store.load_records(config.paths.dist)) == ["k1", "k2"]


def test_a_missing_python_stores_nothing(tmp_path, riscv_wheel, shared_cache):
    root = make_project(tmp_path / "p", shared_cache)
    write_recipe(root, "markupsafe", '''
        [package]
        name = "markupsafe"
        version = "3.0.4"
        [source]
        sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
    ''')
    config = load_config(root)
    (tmp_path / "wh").mkdir()
    shutil.copyfile(riscv_wheel, tmp_path / "wh" / riscv_wheel.name)
    with pytest.raises(BuildError, match="no wheel for Python 3.12"):
        cibuildwheel.collect_wheels(config, load_recipe(config.paths.recipes, "markupsafe"), tmp_path / "wh",
                                    todo=["3.11", "3.12"], keys={"3.11": "a", "3.12": "b"}, policy="best",
                                    source={}, patches=[], host={}, stages={}, start=0.0, log=open(os.devnull, "w"),
                                    log_rel=None, note="")
    assert not config.paths.dist.exists() or not any(config.paths.dist.iterdir())


@pytest.fixture(scope="module")
def ffi_wheel(riscv_wheel, tmp_path_factory):
    """What cibuildwheel's `auditwheel repair --exclude libffi.so.8` leaves: the riscv64 wheel, its
    extension needing libffi.so.8 (patchelf), which is not in the wheel."""
    d = tmp_path_factory.mktemp("ffi")
    subprocess.run([sys.executable, "-m", "wheel", "unpack", str(riscv_wheel), "-d", str(d / "u")], check=True,
                   capture_output=True)
    [ext] = (d / "u").glob("*/markupsafe/_speedups*.so")
    subprocess.run(["patchelf", "--add-needed", "libffi.so.8", str(ext)], check=True)
    [tree] = (d / "u").iterdir()
    (d / "out").mkdir()
    subprocess.run([sys.executable, "-m", "wheel", "pack", str(tree), "-d", str(d / "out")], check=True,
                   capture_output=True)
    [wheel] = (d / "out").glob("*.whl")
    return wheel


def _collect_with_exclude(tmp_path, wheel: Path, cache, repair: str):
    """collect_wheels (the cibuildwheel path into dist/) for a recipe with ``repair`` (TOML lines)."""
    root = make_project(tmp_path / "p", cache)
    write_recipe(root, "markupsafe", f'''
        [package]
        name = "markupsafe"
        version = "3.0.4"
        [source]
        sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
{repair}
    ''')
    config = load_config(root)
    (tmp_path / "wh").mkdir()
    shutil.copyfile(wheel, tmp_path / "wh" / wheel.name)
    with open(tmp_path / "log.txt", "w") as log:
        return config, cibuildwheel.collect_wheels(
            config, load_recipe(config.paths.recipes, "markupsafe"), tmp_path / "wh", todo=["3.11"],
            keys={"3.11": "k"}, policy="best", source={}, patches=[], host={}, stages={}, start=0.0, log=log,
            log_rel=None, note="by cibuildwheel")


def test_cibuildwheel_path_refuses_a_repair_exclude_that_matches_nothing(tmp_path, ffi_wheel, shared_cache):
    with pytest.raises(RepairError) as e:
        _collect_with_exclude(tmp_path, ffi_wheel, shared_cache, '        [repair]\n        exclude = ["libffi.so.7"]')
    msg = str(e.value)
    assert "repair.exclude 'libffi.so.7'" in msg and "matches no library" in msg and "libffi.so.8" in msg, msg
    assert "Fix: write the soname to keep out (e.g. 'libffi.so.8')" in msg, msg


def test_cibuildwheel_path_names_the_debian_package_runtime_debian_lacks(tmp_path, ffi_wheel, shared_cache,
                                                                         capsys):
    _, ready = _collect_with_exclude(tmp_path / "a", ffi_wheel, shared_cache,
                                     '        [repair]\n        exclude = ["libffi.so.8"]')
    want = "repair.exclude leaves libffi.so.8 to the system, but its Debian package libffi8 is not in runtime.debian"
    [(_, record)] = ready.values()
    assert any(n.startswith(want) for n in record["notes"]), record["notes"]
    assert f"warning: markupsafe: {want}" in " ".join(capsys.readouterr().err.split())
    _, ready = _collect_with_exclude(tmp_path / "b", ffi_wheel, shared_cache,
                                     '        [repair]\n        exclude = ["libffi.so.*"]\n'
                                     '        [runtime]\n        debian = ["libffi8"]')
    [(_, record)] = ready.values()
    assert record["notes"] == ["by cibuildwheel"] and "warning" not in capsys.readouterr().err


def test_real_container_build(tmp_path, shared_cache):
    """multidict through cibuildwheel in a manylinux container, for this host's arch, into dist/."""
    root = make_project(tmp_path / "p", shared_cache, recipes=["multidict"])
    config = load_config(root)
    problem = container.engine_problem(config)
    if problem:
        pytest.skip(f"no container build possible on this machine: {problem}")
    runner = container.ContainerRunner(config)
    result = pipeline.build_recipe(config, load_recipe(config.paths.recipes, "multidict"), runner)
    assert result.status == "built", result.message
    [rec] = store.load_records(config.paths.dist)
    assert rec["host"]["runner"] == "container" and rec["recipe"] == "multidict"
    assert "cibuildwheel" in rec["notes"][0]
