"""The container strategy: a recipe built, repaired and tested by cibuildwheel in the manylinux image.

``manylinux_2_39_riscv64`` is the reference environment of the policy the
wheels claim, so building in it (with Docker or Podman, natively on a board or
under QEMU elsewhere) is the most faithful build there is. cibuildwheel does
the build, repair and test stages at once, so this is a build strategy of the
pipeline (``pipeline.strategy_for`` picks it for a ContainerRunner) rather
than a runner; it shares the attempt (keys, skip, log, record) with the
stage-by-stage strategy. The recipe maps onto the cibuildwheel options people
already know:

    recipe / config                      cibuildwheel option
    -----------------------------------  -------------------------------------------
    the prepared source (fetched,        the package folder (always the prepared
      sha256-checked, unpacked, patched)   tree, so patches and subdirectory apply)
    target.pythons                       build = "cp311-manylinux_riscv64 …"
    target.arch                          archs
    [container].image                    manylinux-<arch>-image, container-engine
    build.env + the install indexes      environment (values single-quoted: literal)
    build.dnf (or build.debian mapped)   before-all = "dnf install -y …"
    build.requires, isolation = false,   before-build (_cibw_before_build.py) with
      dependency wheels                    build-frontend "build; args: --no-isolation"
    build.config-settings                config-settings
    policy + repair.exclude              repair-wheel-command = auditwheel repair --plat …
    test.imports / commands / requires   test-command / test-requires

The wheels then enter dist/ through store.py with the same records as every
other strategy (build key, build tag, auditwheel show, core metadata …); the
cibuildwheel test run in the image is the verify stage.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import IO, Any

from packaging.utils import parse_wheel_filename

from .._util.proc import environment, run_streamed
from ..errors import BuildError, RecipeError
from ..runners import NativeRunner
from ..settings.factory import Config
from ..settings.recipe import Recipe
from ..settings.target import Target, reached_policy
from .attempt import Attempt, Plan
from .pep517 import ensure_tools, excerpt, index_env
from .record import make_record
from .repair import excluded_libraries, repair_options, show, unlisted_runtime_packages, with_next_build_tag
from .source import SourceTree, check_wheel_version

BEFORE_BUILD = Path(__file__).parent / "scripts" / "_cibw_before_build.py"
IN_TREE = ".wheelfactory"  # our files inside the copied project: helper, request, dependency wheels
CONTAINER_PROJECT = "/project"  # where cibuildwheel copies the project inside the container


# --- the recipe as cibuildwheel options ---------------------------------------------------

# Debian build packages -> their names in the manylinux (RHEL-family) image, for
# recipes that list build.debian but no build.dnf.
DEBIAN_TO_DNF = {
    "build-essential": ["gcc", "gcc-c++", "make"],
    "g++": ["gcc-c++"],
    "gcc": ["gcc"],
    "gfortran": ["gcc-gfortran"],
    "make": ["make"],
    "cmake": ["cmake"],
    "ninja-build": ["ninja-build"],
    "pkg-config": ["pkgconf-pkg-config"],
    "pkgconf": ["pkgconf-pkg-config"],
    "git": ["git"],
    "cargo": ["cargo"],
    "rustc": ["rust"],
    "libffi-dev": ["libffi-devel"],
    "libssl-dev": ["openssl-devel"],
    "zlib1g-dev": ["zlib-devel"],
    "libbz2-dev": ["bzip2-devel"],
    "liblzma-dev": ["xz-devel"],
    "libopenblas-dev": ["openblas-devel"],
    "liblapack-dev": ["lapack-devel"],
    "libnuma-dev": ["numactl-devel"],
    "libomp-dev": ["libomp-devel"],
    "libc-ares-dev": ["c-ares-devel"],
    "libre2-dev": ["re2-devel"],
    "libjpeg-dev": ["libjpeg-turbo-devel"],
    "libpng-dev": ["libpng-devel"],
    "libxml2-dev": ["libxml2-devel"],
    "libxslt1-dev": ["libxslt-devel"],
    "libyaml-dev": ["libyaml-devel"],
    "libsqlite3-dev": ["sqlite-devel"],
    "libcurl4-openssl-dev": ["libcurl-devel"],
    "libhdf5-dev": ["hdf5-devel"],
    "protobuf-compiler": ["protobuf-compiler"],
    "libprotobuf-dev": ["protobuf-devel"],
    "swig": ["swig"],
}


# --- the recipe as cibuildwheel options ---------------------------------------------------


def identifier(version: str, arch: str) -> str:
    """cibuildwheel's build identifier of CPython X.Y on manylinux ``arch`` (``cp312-manylinux_riscv64``)."""
    major, minor = version.split(".")[:2]
    return f"cp{major}{minor}-manylinux_{arch}"


def dnf_packages(recipe: Recipe) -> list[str]:
    """build.dnf, or build.debian translated; an unknown Debian name is an error naming the fix."""
    b = recipe.build
    if b.dnf:
        return list(b.dnf)
    out: list[str] = []
    unknown = []
    for deb in b.debian:
        names = DEBIAN_TO_DNF.get(deb.split(":")[0])
        if names is None:
            unknown.append(deb)
        else:
            out += [n for n in names if n not in out]
    if unknown:
        raise RecipeError(
            f"{recipe.path}: build.debian lists {', '.join(unknown)}, which the container runner cannot "
            f"translate to the manylinux image's dnf packages; list them all in build.dnf "
            f"(e.g. dnf = [\"openssl-devel\"])"
        )
    return out


def _env_string(env: dict[str, str], recipe: Recipe) -> str:
    """cibuildwheel's environment syntax, every value single-quoted: taken literally."""
    for key in env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise RecipeError(f"{recipe.path}: build.env names the variable {key!r}, which cibuildwheel's "
                              f"environment cannot set (a shell name: letters, digits and _, not starting with "
                              f"a digit); rename or remove it")
    return " ".join(f"{k}={_literal(v)}" for k, v in env.items())


def _literal(value: str) -> str:
    """A word cibuildwheel's environment parser reads back as exactly ``value``.

    Single quotes where possible; its parser does not join quoted pieces
    (shlex.quote's '"'"'), so a value holding a single quote is double-quoted
    with \\, ", $ and ` escaped.
    """
    if "'" not in value:
        return f"'{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    return f'"{escaped}"'


def test_command(recipe: Recipe) -> str:
    """test.imports and test.commands as one shell command for cibuildwheel's test venv ("" when none)."""
    t = recipe.test
    parts = []
    if t.imports:
        parts.append("python -c " + shlex.quote("; ".join(f"import {m}" for m in t.imports)))
    parts += [f"( {c} )" for c in t.commands]
    return " && ".join(parts)


def cibuildwheel_options(config: Config, recipe: Recipe, pythons: Sequence[str], *, engine: str,
                         dependency_wheels: Sequence[str] = ()) -> dict[str, Any]:
    """The ``[tool.cibuildwheel]`` table (option name -> value) that builds ``recipe`` for ``pythons`` (X.Y).

    ``dependency_wheels``: file names of the wheels copied to ``.wheelfactory/deps`` in the tree.
    Raises RecipeError for build.debian names without a dnf translation.
    """
    target = Target.of(config, recipe)
    arch = config.arch
    b = recipe.build
    c = config.container
    env = {**index_env(config), **b.env}
    if dependency_wheels:
        # Dependency recipes' wheels, for the isolated build env, before-build and the test venv.
        links = f"{CONTAINER_PROJECT}/{IN_TREE}/deps"
        env.update({"PIP_FIND_LINKS": links, "UV_FIND_LINKS": links})
    opts: dict[str, Any] = {
        "build": " ".join(identifier(v, arch) for v in pythons),
        "archs": [arch],
        "container-engine": engine,
        "build-verbosity": c.build_verbosity,
        "environment": _env_string(env, recipe),
        "config-settings": dict(b.config_settings),
    }
    image = c.image
    image_arch = re.search(r"_(x86_64|i686|aarch64|ppc64le|s390x|armv7l|riscv64)(?=$|[:@])", image.split("/")[-1])
    if image and (image_arch is None or image_arch.group(1) == arch):
        opts[f"manylinux-{arch}-image"] = image
    # else: the configured image is for another arch (a --target host build): cibuildwheel's pinned one.
    before_all = []
    dnf = dnf_packages(recipe)
    if dnf:
        before_all.append("dnf install -y " + " ".join(shlex.quote(p) for p in dnf))
    before_all += list(c.before_all)
    if before_all:
        opts["before-all"] = " && ".join(before_all)
    if b.requires or not b.isolation or dependency_wheels:
        opts["before-build"] = (f"python {{project}}/{IN_TREE}/before_build.py "
                                f"{{project}}/{IN_TREE}/before-build.json {{package}}")
        args = ["--no-isolation"] + ([] if b.isolation else ["--skip-dependency-check"])
        opts["build-frontend"] = {"name": "build", "args": args}
    repair = ["auditwheel", "repair", "--plat", target.plat(), *repair_options(recipe)]
    opts["repair-wheel-command"] = " ".join(shlex.quote(x) for x in repair) + " -w {dest_dir} {wheel}"
    tc = test_command(recipe)
    if tc:
        opts["test-command"] = tc
    if recipe.test.requires:
        opts["test-requires"] = list(recipe.test.requires)
    return opts


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        # A JSON string is a TOML basic string, once DEL (which TOML wants escaped) is.
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def options_toml(options: dict[str, Any]) -> str:
    """The options as a cibuildwheel ``--config-file`` (TOML text)."""
    lines = ["# Written by wheelfactory's container runner: the recipe as cibuildwheel options.",
             "[tool.cibuildwheel]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in options.items()]
    return "\n".join(lines) + "\n"


def _no_cibw_variables() -> dict[str, None]:
    """CIBW_* variables unset (``_util.proc`` environment changes): the recipe is the only source of options."""
    return {k: None for k in os.environ if k.startswith("CIBW_")}


def cibuildwheel_env() -> dict[str, str]:
    """This process's environment without CIBW_* variables."""
    return environment(_no_cibw_variables())


def print_build_identifiers(config_file: Path, package: str, cwd: Path, *, recipe: Path | str | None = None,
                            config: Path | str | None = None) -> list[str]:
    """What cibuildwheel itself makes of the options (needs no container).

    ``recipe``, ``config``: the recipe file and factory.toml the options come from, for the message
    (BuildError, with cibuildwheel's reason) when cibuildwheel refuses them.
    """
    proc = subprocess.run([sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", "linux",
                           "--config-file", str(config_file), package], cwd=cwd, env=cibuildwheel_env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines()
        reason = said[-1] if said else f"exit {proc.returncode}"
        raise BuildError(f"cibuildwheel rejected the options written to {config_file}: {reason}; fix the key "
                         f"behind the option it names: in {recipe or 'the recipe'}, environment is build.env, "
                         f"config-settings build.config-settings, test-command test.imports/commands, "
                         f"before-all build.dnf; in {config or 'factory.toml'}, archs is target.arch, the image "
                         f"[container].image, before-all also [container].before-all, build-verbosity "
                         f"[container].build-verbosity")
    return proc.stdout.split()


# --- the strategy -------------------------------------------------------------------------


def build_in_container(attempt: Attempt, plan: Plan, *, extra_env: Mapping[str, str] | None = None) -> None:
    """cibuildwheel builds, repairs and tests ``plan.todo`` in the runner's image; the wheels go to dist/.

    ``extra_env`` (the host's compiler caches) does not reach the container and is not used.
    """
    config, recipe, runner = attempt.config, attempt.recipe, attempt.runner
    attempt.begin(plan, f"with cibuildwheel in {runner.image}")
    tree = attempt.prepare_source(plan)
    package, config_file = _write_request(attempt, plan, tree)
    idents = print_build_identifiers(config_file, package, tree.root, recipe=recipe.path, config=config.where)
    missing = [identifier(v, config.arch) for v in plan.todo if identifier(v, config.arch) not in idents]
    if missing:
        raise BuildError(f"{recipe.name}: cibuildwheel {dist_version('cibuildwheel')} cannot build "
                         f"{', '.join(missing)} (it offers: {', '.join(idents) or 'nothing'}); drop those Pythons "
                         f"from target.pythons in {config.where} (or pass --python), or upgrade cibuildwheel "
                         f"(pip install -U cibuildwheel)")
    attempt.restart_clock()
    wheelhouse = attempt.workdir / "wheelhouse"
    _run_cibuildwheel(attempt, config_file, package, tree.root, wheelhouse)
    attempt.stage_done("cibuildwheel", f"built, repaired and tested in {runner.image}")
    ready = collect_wheels(
        config, recipe, wheelhouse, todo=plan.todo, keys=plan.keys, policy=plan.policy, source=tree.info,
        patches=tree.patches, host=attempt.host(), start=attempt.start, log=attempt.log,
        stages=attempt.stage_seconds(("fetch", "unpack", "patch", "cibuildwheel")), log_rel=attempt.log_rel(),
        note=(f"built, repaired (auditwheel) and tested (test-command) by cibuildwheel "
              f"{dist_version('cibuildwheel')} in {runner.image}"))
    attempt.store_all(plan, ready)


def _write_request(attempt: Attempt, plan: Plan, tree: SourceTree) -> tuple[str, Path]:
    """Our files inside the tree cibuildwheel copies into the container, and the options file.

    Returns (the package folder relative to the tree, the options file).
    """
    recipe, b = attempt.recipe, attempt.recipe.build
    ours = tree.root / IN_TREE
    (ours / "deps").mkdir(parents=True)
    deps = sorted({w for v in plan.todo for w in plan.dependencies[v]})
    for w in deps:
        shutil.copyfile(w, ours / "deps" / w.name)
    shutil.copyfile(BEFORE_BUILD, ours / "before_build.py")
    (ours / "before-build.json").write_text(json.dumps({
        "isolation": b.isolation, "requires": list(b.requires),
        "install": [f"deps/{w.name}" for w in deps], "config_settings": b.config_settings,
    }, indent=2))
    options = cibuildwheel_options(attempt.config, recipe, plan.todo, engine=attempt.runner.engine,
                                   dependency_wheels=[w.name for w in deps])
    config_file = attempt.workdir / "cibuildwheel.toml"
    config_file.write_text(options_toml(options))
    attempt.log.write(f"\n# cibuildwheel options ({config_file}):\n{config_file.read_text()}")
    return tree.project.relative_to(tree.root).as_posix() or ".", config_file


def _run_cibuildwheel(attempt: Attempt, config_file: Path, package: str, cwd: Path, wheelhouse: Path) -> None:
    runner, name = attempt.runner, attempt.name
    timeout = attempt.config.container.timeout or None
    argv = [sys.executable, "-m", "cibuildwheel", "--platform", "linux", "--output-dir", str(wheelhouse),
            "--config-file", str(config_file), package]
    try:
        proc = run_streamed(argv, cwd=cwd, env=_no_cibw_variables(), log=attempt.log, check=False,
                            timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BuildError(f"{name}: cibuildwheel did not finish within {timeout:g} s in {runner.image}; "
                         f"see the log, and raise [container].timeout in {attempt.config.where} "
                         f"(0: no limit) if the build was still making progress") from None
    if proc.returncode != 0:
        raise BuildError(f"{name}: cibuildwheel failed in {runner.image} (exit {proc.returncode}): "
                         f"{excerpt(proc.stdout[-20000:])}")


def collect_wheels(config: Config, recipe: Recipe, wheelhouse: Path, *, todo: Sequence[str],
                   keys: Mapping[str, str], policy: str, source: dict, patches: list[str], host: dict,
                   stages: dict, start: float, log: IO[str], log_rel: str | None,
                   note: str) -> dict[str, tuple[Path, dict]]:
    """cibuildwheel's repaired wheels -> X.Y -> (wheel with its build tag, its dist record).

    Every wanted Python (``todo``, X.Y) must have its wheel, and none may be a
    bare ``linux_*`` one, else BuildError. ``start``: time.monotonic() when the
    attempt began; the other fields go into the records as make_record says.
    """
    built = sorted(wheelhouse.glob("*.whl"))
    by_python = {v: w for w in built if (v := _python_of(w)) in todo}
    lacking = [v for v in todo if v not in by_python]
    if lacking:
        raise BuildError(f"{recipe.name}: cibuildwheel produced no wheel for Python {', '.join(lacking)} "
                         f"(got {', '.join(w.name for w in built) or 'none'}); see the log")
    for v in todo:
        check_wheel_version(recipe, by_python[v])
    # Build tags and `auditwheel show` run on this host (both work on any arch's wheels).
    host_runner = NativeRunner()
    tools = ensure_tools(config, host_runner, f"{sys.version_info[0]}.{sys.version_info[1]}", sys.executable, log)
    records = {}
    for v in todo:
        platforms = sorted({t.platform for t in parse_wheel_filename(by_python[v].name)[3]})
        if any(p.startswith("linux_") for p in platforms):
            raise BuildError(f"{recipe.name}: cibuildwheel left a bare {platforms[0]} wheel ({by_python[v].name}); "
                             f"it is not stored")
        wheel, _ = with_next_build_tag(host_runner, tools, config.paths.dist, recipe.project, by_python[v], log)
        show_text, report = show(host_runner, tools, wheel, log)
        # The same repair.exclude checks as the stage-by-stage repair, on the wheel cibuildwheel repaired.
        excluded = excluded_libraries(recipe, wheel, report)
        notes = unlisted_runtime_packages(config, recipe, excluded, config.arch)
        records[v] = (wheel, make_record(
            config, recipe, wheel, build_key=keys[v], python=v, policy=policy,
            achieved=reached_policy(platforms) or policy, source=source, patches=patches, auditwheel=show_text,
            host=host, duration=time.monotonic() - start, stages=stages, log=log_rel, notes=[note, *notes]))
    return records


def _python_of(wheel: Path) -> str | None:
    """X.Y of a CPython wheel (its cpXY interpreter tag), else None."""
    for t in parse_wheel_filename(wheel.name)[3]:
        m = re.fullmatch(r"cp(\d)(\d+)", t.interpreter)
        if m:
            return f"{m[1]}.{m[2]}"
    return None
