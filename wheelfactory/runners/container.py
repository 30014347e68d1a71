"""The container runner: a recipe built by cibuildwheel in the manylinux image.

``manylinux_2_39_riscv64`` is the reference environment of the policy the
wheels claim, so building in it (with Docker or Podman, natively on a board or
under QEMU elsewhere) is the most faithful build there is. The recipe maps onto
the cibuildwheel options people already know:

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
other runner (build key, build tag, auditwheel show, core metadata …); the
cibuildwheel test run in the image is the verify stage.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Sequence

from filelock import Timeout
from packaging.utils import canonicalize_name, parse_wheel_filename

from ..build import store
from .. import ui
from ..build.pep517 import index_env
from ..errors import BuildError, EnvironmentProblem, FactoryError, RecipeError
from ..settings.recipe import Recipe

BEFORE_BUILD = Path(__file__).parents[1] / "build" / "scripts" / "_cibw_before_build.py"
IN_TREE = ".wheelfactory"  # our files inside the copied project: helper, request, dependency wheels
CONTAINER_PROJECT = "/project"  # where cibuildwheel copies the project inside the container

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


def _env_string(env: dict[str, str]) -> str:
    """cibuildwheel's environment syntax, every value single-quoted: taken literally."""
    for key in env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise RecipeError(f"environment variable name {key!r} is not valid in a shell")
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
    t = recipe.test
    parts = []
    if t.imports:
        parts.append("python -c " + shlex.quote("; ".join(f"import {m}" for m in t.imports)))
    parts += [f"( {c} )" for c in t.commands]
    return " && ".join(parts)


def cibuildwheel_options(config, recipe: Recipe, pythons: Sequence[str], *, engine: str,
                         dependency_wheels: Sequence[str] = (), policy: str | None = None) -> dict[str, Any]:
    """The ``[tool.cibuildwheel]`` table that builds ``recipe`` for ``pythons``."""
    from ..build.repair import plat_for, policy_for

    arch = config.arch
    b = recipe.build
    c = config.container
    policy = policy or policy_for(config, recipe)
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
        "environment": _env_string(env),
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
    repair = ["auditwheel", "repair", "--plat", plat_for(policy, arch)]
    for soname in recipe.repair.exclude:
        repair += ["--exclude", soname]
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
    lines = ["# Written by wheelfactory's container runner: the recipe as cibuildwheel options.",
             "[tool.cibuildwheel]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in options.items()]
    return "\n".join(lines) + "\n"


def cibuildwheel_env() -> dict[str, str]:
    """This environment without CIBW_* variables: the recipe is the only source of options."""
    return {k: v for k, v in os.environ.items() if not k.startswith("CIBW_")}


def print_build_identifiers(config_file: Path, package: str, cwd: Path) -> list[str]:
    """What cibuildwheel itself makes of the options (needs no container)."""
    proc = subprocess.run([sys.executable, "-m", "cibuildwheel", "--print-build-identifiers", "--platform", "linux",
                           "--config-file", str(config_file), package], cwd=cwd, env=cibuildwheel_env(),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"cibuildwheel rejected the options in {config_file}: "
                         f"{(proc.stderr or proc.stdout).strip().splitlines()[-1] if (proc.stderr or proc.stdout).strip() else proc.returncode}")
    return proc.stdout.split()


# --- the engine -----------------------------------------------------------------------------


def engine_problem(config) -> str | None:
    """Why no container build can run here (None when one can)."""
    wanted = config.container.engine
    if wanted and wanted not in ("docker", "podman"):
        return f"[container].engine must be docker or podman, not {wanted!r}"
    candidates = [wanted] if wanted else ["docker", "podman"]
    found = [e for e in candidates if shutil.which(e)]
    if not found:
        return (f"no container engine: {' or '.join(candidates)} is not installed "
                f"(apt-get install -y podman, or docker.io)")
    engine = found[0]
    try:
        proc = subprocess.run([engine, "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return f"`{engine} info` did not answer within 30 s: the engine is stuck"
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines()
        return (f"{engine} is installed but cannot run containers ({said[-1] if said else 'exit ' + str(proc.returncode)}); "
                f"start its daemon (systemctl start {engine}) or set [container].engine to another engine")
    if config.arch != _host_arch():
        binfmt = Path(f"/proc/sys/fs/binfmt_misc/qemu-{config.arch}")
        if not binfmt.exists():
            return (f"this host is {_host_arch()} and the image is {config.arch}: containers of that arch need "
                    f"QEMU registered with binfmt_misc (apt-get install -y qemu-user-static binfmt-support)")
    return None


def _host_arch() -> str:
    from ..settings.target import host_arch

    return host_arch()


def find_engine(config) -> str:
    problem = engine_problem(config)
    if problem:
        raise EnvironmentProblem(f"the container runner cannot build here: {problem}")
    wanted = config.container.engine
    return wanted or next(e for e in ("docker", "podman") if shutil.which(e))


def _stream(argv: list[str], *, cwd: Path, env: dict[str, str], log: IO[str], timeout: float | None) -> int:
    """Run a long command, its output going to the log as it comes (builds take hours)."""
    log.write(f"\n$ {' '.join(map(str, argv))}\n")
    log.flush()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    timer = None
    if timeout:
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
        rc = proc.wait()
    finally:
        if timer:
            timer.cancel()
    log.write(f"[exit {rc}]\n")
    log.flush()
    return rc


# --- the runner -------------------------------------------------------------------------------


class ContainerRunner:
    """Builds whole recipes with cibuildwheel in the manylinux image (``--runner container``).

    The pipeline hands a recipe to :meth:`build_recipe` (``builds_whole_recipe``);
    :meth:`run` also runs single commands in the image, for tools that want one.
    """

    name = "container"
    builds_whole_recipe = True

    def __init__(self, config):
        self.config = config
        self.engine = find_engine(config)
        self.image = config.container.image
        self.id = f"container-{config.arch}-{self.image.split('/')[-1].split(':')[0].split('@')[0]}"

    # Runner protocol

    def arch(self) -> str:
        return self.config.arch

    def pythons(self, wanted: Sequence[str]) -> dict[str, str]:
        """The manylinux images hold every CPython cibuildwheel builds, under /opt/python."""
        out = {}
        for v in wanted:
            tag = identifier(v, self.config.arch).split("-")[0]
            out[v] = f"/opt/python/{tag}-{tag}/bin/python"
        return out

    def run(self, argv, *, cwd: Path, env=None, log, check=True, timeout=None) -> subprocess.CompletedProcess:
        """One command in the image, with ``cwd`` mounted at the same path."""
        cmd = [self.engine, "run", "--rm", "-v", f"{cwd}:{cwd}", "-w", str(cwd)]
        for k, v in (env or {}).items():
            cmd += ["-e", f"{k}={v}"]
        cmd += [self.image, *map(str, argv)]
        log.write(f"\n$ {shlex.join(cmd)}\n")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                              timeout=timeout)
        log.write(proc.stdout + f"[exit {proc.returncode}]\n")
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, cmd, proc.stdout)
        return proc

    def missing_debian(self, packages: Sequence[str]) -> list[str]:
        return []  # the image is not Debian: build.dnf (or the mapped names) go to before-all

    def describe(self) -> dict:
        from importlib.metadata import version

        return {"runner": self.name, "engine": self.engine, "image": self.image, "hostname": platform.node(),
                "arch": self.config.arch, "host_arch": _host_arch(), "cibuildwheel": version("cibuildwheel")}

    # the whole recipe

    def build_recipe(self, config, recipe: Recipe, *, pythons: Sequence[str] | None = None, force: bool = False,
                     dependency_wheels: Sequence[Path] = (), extra_env: dict[str, str] | None = None):
        """Same contract as pipeline.build_recipe: a RecipeResult, never a FactoryError."""
        from ..build.pipeline import RecipeResult

        start = time.monotonic()
        if recipe.package.disabled:
            return RecipeResult(recipe.name, "disabled", version=recipe.version,
                                message=f"disabled: {recipe.package.disabled}")
        lock = store.recipe_lock(config.paths.build / ".locks", recipe.name)
        try:
            lock.acquire(timeout=0.5)
        except Timeout:
            ui.info(f"{recipe.name}: another build of this recipe is running; waiting for it")
            lock.acquire()
        try:
            return _build_locked(self, config, recipe, pythons=pythons, force=force,
                                 dependency_wheels=list(dependency_wheels), start=start)
        finally:
            lock.release()


def _rel(config, path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.resolve().relative_to(config.root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _python_of(wheel: Path) -> str | None:
    for t in parse_wheel_filename(wheel.name)[3]:
        m = re.fullmatch(r"cp(\d)(\d+)", t.interpreter)
        if m:
            return f"{m[1]}.{m[2]}"
    return None


def _build_locked(runner: ContainerRunner, config, recipe: Recipe, *, pythons, force, dependency_wheels, start):
    from importlib.metadata import version as dist_version

    from ..build import pipeline
    from ..build.repair import policy_for
    from ..build.source import check_patches, prepare, source_id

    name = recipe.name
    dist, logs = config.paths.dist, config.paths.logs
    workdir = config.paths.build / name
    log = pipeline.AttemptLog()
    result = pipeline.RecipeResult(name, "failed", version=recipe.version)
    stages: dict[str, float] = {}
    attempt: dict = {"recipe": name, "version": recipe.version, "target": config.arch, "runner": runner.id,
                     "started_at": store.utcnow(), "pythons": {}}
    log_path = attempt_path = None
    clock = [time.monotonic()]

    def begin_attempt() -> None:
        nonlocal log_path, attempt_path
        if log_path is None:
            log_path, attempt_path = store.attempt_paths(logs, name)
            log.open(log_path)
            result.logs.append(log_path)

    def stage_done(stage: str, detail: str = "") -> None:
        now = time.monotonic()
        stages[stage] = stages.get(stage, 0.0) + (now - clock[0])
        ui.stage(name, stage, now - clock[0], detail)
        clock[0] = now

    try:
        log.write(f"# {name} {recipe.version} on {runner.id}, target {config.arch}, {store.utcnow()}\n")
        wanted = list(pythons) if pythons else config.pythons
        policy = policy_for(config, recipe)
        patches_root = config.paths.patches
        check_patches(recipe, patches_root)
        sid = source_id(recipe, log)
        fingerprint = recipe.fingerprint(patches_root)
        keys, deps_for, todo, kept = {}, {}, [], []
        for v in wanted:
            deps_for[v] = [w for w in dependency_wheels if pipeline.wheel_fits(w, v)]
            keys[v] = store.build_key(recipe_fingerprint=fingerprint, source_id=sid, python=v, target=config.arch,
                                      policy=policy, dependencies=[store.sha256_file(w) for w in deps_for[v]])
            stored = store.find_by_key(dist, keys[v])
            if stored and not force:
                kept += [dist / r["filename"] for r in stored]
            else:
                todo.append(v)
        if not todo:
            result.status, result.wheels = "skipped", kept
            result.message = (f"already built (same build key): {', '.join(p.name for p in kept)}; "
                              f"--force builds it again with the next build tag")
            ui.info(f"[bold]{name}[/bold] {recipe.version}: {result.message}")
            return result

        begin_attempt()
        ui.info(f"[bold]{name}[/bold] {recipe.version}: building for Python {', '.join(todo)} with cibuildwheel "
                f"in {runner.image} (log: {_rel(config, log_path)})")
        attempt["build_keys"] = {v: keys[v] for v in todo}
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        tree = prepare(recipe, commit=sid.removeprefix("git:") if sid.startswith("git:") else None,
                       cache=config.paths.cache, patches_root=patches_root, workdir=workdir, log=log,
                       index_url=config.indexes.install[0], on_stage=stage_done)
        attempt["source"] = tree.info

        # Our files go inside the tree cibuildwheel copies into the container.
        ours = tree.root / IN_TREE
        (ours / "deps").mkdir(parents=True)
        deps = sorted({w for v in todo for w in deps_for[v]})
        for w in deps:
            shutil.copyfile(w, ours / "deps" / w.name)
        shutil.copyfile(BEFORE_BUILD, ours / "before_build.py")
        b = recipe.build
        (ours / "before-build.json").write_text(json.dumps({
            "isolation": b.isolation, "requires": list(b.requires),
            "install": [f"deps/{w.name}" for w in deps], "config_settings": b.config_settings,
        }, indent=2))
        package = tree.project.relative_to(tree.root).as_posix() or "."
        options = cibuildwheel_options(config, recipe, todo, engine=runner.engine,
                                       dependency_wheels=[w.name for w in deps], policy=policy)
        config_file = workdir / "cibuildwheel.toml"
        config_file.write_text(options_toml(options))
        log.write(f"\n# cibuildwheel options ({config_file}):\n{config_file.read_text()}")
        idents = print_build_identifiers(config_file, package, tree.root)
        missing = [identifier(v, config.arch) for v in todo if identifier(v, config.arch) not in idents]
        if missing:
            raise BuildError(f"{name}: cibuildwheel {dist_version('cibuildwheel')} cannot build {', '.join(missing)} "
                             f"(it offers: {', '.join(idents) or 'nothing'}); drop those Pythons or update it")
        clock[0] = time.monotonic()

        wheelhouse = workdir / "wheelhouse"
        timeout = config.container.timeout or None
        rc = _stream([sys.executable, "-m", "cibuildwheel", "--platform", "linux", "--output-dir", str(wheelhouse),
                      "--config-file", str(config_file), package], cwd=tree.root, env=cibuildwheel_env(), log=log,
                     timeout=timeout)
        if rc != 0:
            from ..build.pep517 import excerpt

            tail = log_path.read_text(errors="replace")[-20000:] if log_path else ""
            raise BuildError(f"{name}: cibuildwheel failed in {runner.image} (exit {rc}): {excerpt(tail)}")
        stage_done("cibuildwheel", f"built, repaired and tested in {runner.image}")

        described = {**runner.describe(), "runner_id": runner.id}
        shared = {k: round(s, 3) for k, s in stages.items() if k in ("fetch", "unpack", "patch", "cibuildwheel")}
        result.wheels += store_built_wheels(
            config, recipe, wheelhouse, todo=todo, keys=keys, policy=policy, source=tree.info,
            patches=tree.patches, host=described, stages=shared, start=start, log=log,
            log_rel=_rel(config, log_path),
            note=(f"built, repaired (auditwheel) and tested (test-command) by cibuildwheel "
                  f"{dist_version('cibuildwheel')} in {runner.image}"))
        for v, dest in zip(todo, result.wheels):
            attempt["pythons"][v] = {"status": "built", "wheel": dest.name, "build_key": keys[v]}
        stage_done("store", ", ".join(p.name for p in result.wheels))
        result.wheels += kept
        result.status = "built"
        result.message = "built " + ", ".join(p.name for p in result.wheels)
        shutil.rmtree(workdir, ignore_errors=True)
        return result
    except FactoryError as e:
        msg = str(e.args[0])
        result.message = msg if msg.startswith(name) else f"{name}: {msg}"
        log.write(f"\n# FAILED: {result.message}\n")
        return result
    except Exception as e:  # a bug: keep the traceback in the log, say so in one line
        import traceback

        result.message = f"{name}: internal error: {type(e).__name__}: {e} (traceback in the log)"
        log.write("\n" + traceback.format_exc())
        return result
    finally:
        result.duration = time.monotonic() - start
        if result.status != "skipped":
            begin_attempt()
            attempt.update(status=result.status, message=result.message, duration=round(result.duration, 3),
                           stages={k: round(s, 3) for k, s in stages.items()}, log=_rel(config, log_path),
                           wheels=[p.name for p in result.wheels], host={**runner.describe(), "runner_id": runner.id},
                           finished_at=store.utcnow())
            store.atomic_write_text(attempt_path, json.dumps(attempt, indent=2, sort_keys=True) + "\n")
        log.close()


def store_built_wheels(config, recipe: Recipe, wheelhouse: Path, *, todo: Sequence[str], keys: dict[str, str],
                       policy: str, source: dict, patches: list[str], host: dict, stages: dict, start: float,
                       log: IO[str], log_rel: str | None, note: str) -> list[Path]:
    """cibuildwheel's repaired wheels -> dist/, with build tags and the records every runner writes.

    Nothing is stored unless every wanted Python has its wheel and all are ready.
    """
    from ..build.pep517 import ensure_tools
    from ..build.pipeline import make_record
    from ..build.repair import show, with_build_tag
    from . import NativeRunner

    name = recipe.name
    dist = config.paths.dist
    built = sorted(wheelhouse.glob("*.whl"))
    by_python = {}
    for w in built:
        v = _python_of(w)
        if v in todo:
            by_python[v] = w
    lacking = [v for v in todo if v not in by_python]
    if lacking:
        raise BuildError(f"{name}: cibuildwheel produced no wheel for Python {', '.join(lacking)} "
                         f"(got {', '.join(w.name for w in built) or 'none'}); see the log")
    # Build tags and `auditwheel show` run on this host (both work on any arch's wheels).
    host_runner = NativeRunner()
    tools = ensure_tools(config, host_runner, f"{sys.version_info[0]}.{sys.version_info[1]}", sys.executable, log)
    ready = []
    for v in todo:
        wheel = by_python[v]
        wname, wversion, _, wtags = parse_wheel_filename(wheel.name)
        platforms = sorted({t.platform for t in wtags})
        if any(p.startswith("linux_") for p in platforms):
            raise BuildError(f"{name}: cibuildwheel left a bare {platforms[0]} wheel ({wheel.name}); it is not stored")
        tag = store.next_build_tag(dist, canonicalize_name(recipe.project), str(wversion), [str(t) for t in wtags])
        if tag is not None:
            wheel = with_build_tag(host_runner, tools, wheel, tag, log)
        show_text, _ = show(host_runner, tools, wheel, log)
        ready.append((v, wheel, show_text, _reached(platforms) or policy))
    # Every Python is ready: now, and only now, dist/ changes.
    stored = []
    for v, wheel, show_text, achieved in ready:
        record = make_record(config, recipe, wheel, build_key=keys[v], python=v, policy=policy,
                                 achieved=achieved, source=source, patches=patches, auditwheel=show_text,
                                 host=host, duration=time.monotonic() - start, stages=stages, log=log_rel,
                                 notes=[note])
        stored.append(store.store_wheel(dist, wheel, record))
    return stored


def _reached(platforms: Sequence[str]) -> str | None:
    found = []
    for p in platforms:
        m = re.match(r"^manylinux_(\d+)_(\d+)_", p)
        if m:
            found.append((int(m[1]), int(m[2])))
    return f"manylinux_{min(found)[0]}_{min(found)[1]}" if found else None

