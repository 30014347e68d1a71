"""The clean machine, automated: ``nox -s clean-install -- REQUIREMENT...``.

By default on a fresh throwaway layer of the target's clean system
(``runners.clean``: what a user's new riscv64 board holds, emulated on another
host), with our index made from dist/ served on 127.0.0.1 for the run;
``--target host`` runs on this machine. There: a bare venv (no system site-packages, and ``_util.venv.bare_env``: no user
site, no pip or uv config; an empty wheel cache), then ``pip install --prefer-binary`` from PyPI plus our index,
exactly as a user on a board would. It fails when

* anything was compiled from source: every ``Building wheel for …`` line is
  listed (the numpy that cost a board 25 minutes shows up here), or
* an import fails because a shared library is missing
  (``libopenblas.so.0: cannot open shared object file``): the Debian package
  that provides it is named, from ``apt-file`` where it is set up, else from
  Debian's Contents index on the configured mirror (cached in cache/debian/).

Every top-level module and every compiled extension module of every installed
distribution is imported, each distribution in its own isolated interpreter,
so a library needed only by a submodule is found too. pip's output is streamed
into logs/clean-install/ by ``_util.proc.run_streamed``. The argument parsing
and the printed report are in ``cli/audit.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from packaging.utils import canonicalize_name

from .. import ui
from .._util.proc import run_streamed
from .._util.simple_api import Client
from .._util.venv import bare_env
from ..errors import EnvironmentProblem, FactoryError
from ..index import build_index
from ..index.serve import IndexServer
from ..runners.clean import clean_layer
from ..runners.emulated import EmulatedRunner
from ..runners.debian import DIST_IMPORT_CHECK, debian_packages_for, import_results, missing_library, packages_for
from ..settings.factory import Config
from .cache import audit_indexes
from .requirements import AuditError, read_requirements

BUILDING = re.compile(r"(?:Building wheel for|Running setup\.py install for|Building editable for) "
                      r"([A-Za-z0-9][A-Za-z0-9._-]*)")

class CleanInstallError(FactoryError):
    """The clean install could not run (bad arguments, no interpreter, pip unusable)."""


@dataclass
class ImportFailure:
    """A module of a distribution that did not import; ``library`` when a shared library is missing."""

    dist: str
    module: str
    error: str
    library: str = ""  # the missing soname, when that is the cause
    debian: list[str] = field(default_factory=list)


@dataclass
class CleanInstallReport:
    """What a clean install showed: source builds, missing libraries, pip's failure, the log."""

    requirements: list[str]
    python: str
    built_from_source: list[str]  # the "Building wheel for …" lines
    built_packages: list[str]
    installed: dict[str, str]  # name -> version
    missing_libraries: list[ImportFailure]
    other_import_failures: list[ImportFailure]
    pip_failed: str  # pip's error tail when the install itself failed
    log: str
    seconds: float

    @property
    def ok(self) -> bool:
        return not (self.built_from_source or self.missing_libraries or self.pip_failed)


# --- the bare environment ---------------------------------------------------------------


def find_interpreter(python: str | None) -> str:
    """The interpreter for ``--python X.Y`` (``pythonX.Y`` on PATH) or a path; this one by default."""
    if not python:
        return sys.executable
    if os.sep in python:
        exe = python
    else:
        exe = shutil.which(f"python{python}") or shutil.which(python)
    if not exe or not Path(exe).exists():
        raise EnvironmentProblem(f"no Python {python} found on PATH (python{python}); install it or choose "
                                 f"another with --python X.Y")
    return exe


class Place:
    """Where the clean install runs: this host (``--target host``) or a fresh layer of the target's
    clean system (a ``runners.EmulatedRunner`` on it); every command streams into ``log``."""

    def __init__(self, log, cwd: Path, runner: EmulatedRunner | None = None):
        self.log, self.cwd, self.runner = log, cwd, runner

    def run(self, argv: list[str], env: dict[str, str | None], echo=None,
            timeout: float | None = None) -> tuple[int, str]:
        """(exit status, merged output) of ``argv`` with the environment changes ``env``."""
        argv = [str(a) for a in argv]
        if self.runner is None:
            proc = run_streamed(argv, cwd=self.cwd, log=self.log, env=env, check=False, echo=echo, timeout=timeout)
        else:
            proc = self.runner.run(argv, cwd=self.cwd, env=env, log=self.log, check=False, timeout=timeout)
            for line in proc.stdout.splitlines() if echo else ():
                echo(line)
        return proc.returncode, proc.stdout

    def debian_packages_for(self, config: Config, sonames: Iterable[str]) -> dict[str, list[str]]:
        """soname -> Debian packages of the arch the install ran on that ship it."""
        if self.runner is None:
            return debian_packages_for(config, sonames)
        rootfs = self.runner.rootfs
        return packages_for(config, sonames, mirror=rootfs.mirror, suite=rootfs.suite, arch=rootfs.debian_arch)


def make_venv(place: Place, interpreter: str, venv: Path) -> Path:
    """A fresh venv (``--clear``) made by ``interpreter``; returns its python. EnvironmentProblem if it fails."""
    code, out = place.run([interpreter, "-m", "venv", "--clear", str(venv)], {})
    if code != 0:
        raise EnvironmentProblem(f"cannot create a venv with {interpreter}: {out.strip()[-300:]} "
                                 f"(Debian: apt-get install python3-venv)")
    return venv / "bin" / "python"


# --- imports ------------------------------------------------------------------------------


def check_imports(place: Place, python: Path, dists: Iterable[str], env: dict[str, str | None]) -> list[ImportFailure]:
    """Every top-level and extension module of each distribution, imported in its own ``python -I``."""
    def one(dist: str) -> list[ImportFailure]:
        try:
            code, output = place.run([str(python), "-I", "-c", DIST_IMPORT_CHECK, dist], env, timeout=600)
        except subprocess.TimeoutExpired:
            return [ImportFailure(dist, "*", "importing took longer than 600 s")]
        out = import_results(output)
        if code != 0 or out is None:
            tail = output.strip()[-300:]
            why = f"the import check crashed (exit {code})" + (f": {tail}" if tail else "")
            return [ImportFailure(dist, "*", why, missing_library(output))]
        return [ImportFailure(dist, module, error, missing_library(error)) for module, error in out.items() if error]

    with ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2))) as pool:
        return [f for fs in pool.map(one, sorted(dists)) for f in fs]


def installed_distributions(place: Place, python: Path, env: dict[str, str | None]) -> dict[str, str]:
    """Canonical name -> version of what the venv holds."""
    code, out = place.run([str(python), "-I", "-c",
                           "import importlib.metadata as m, json; "
                           "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"], env)
    if code != 0:
        raise CleanInstallError(f"cannot list the venv's distributions: {out.strip()[-300:]}")
    return {canonicalize_name(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}


# --- which Debian package ships a library ----------------------------------------------------


# --- the command ------------------------------------------------------------------------------


def clean_install(config: Config, requirements: list[str], requirement_files: list[str], *,
                  python: str | None = None, indexes: list[str] | None = None, keep: bool = False,
                  upgrade_pip: bool = True, target: str = "default") -> CleanInstallReport:
    """Install the requirements in a bare venv with ``pip --prefer-binary``, then import everything.

    ``target``: "default" runs on a fresh layer of the target's clean system (emulated on
    another host) and, without ``indexes``, serves our index made from dist/ on 127.0.0.1
    beside audit.pypi-url; "host" runs on this machine with audit.pypi-url plus our
    configured index. ``indexes`` replaces those (the first is --index-url).
    The report lists source builds and imports that miss a shared library (with
    the Debian packages of the arch that ship it). Raises CleanInstallError for bad input
    or an unreachable index, EnvironmentProblem for a missing interpreter.
    """
    started = time.monotonic()
    try:
        reqs = read_requirements(requirements, requirement_files)  # one clear message for a bad requirement
    except AuditError as e:
        raise CleanInstallError(str(e)) from None
    on_clean = target != "host"
    interpreter = "" if on_clean else find_interpreter(python)
    pypi, ours, labels = audit_indexes(config)
    with contextlib.ExitStack() as stack:
        if indexes:
            index_list = [u.rstrip("/") for u in indexes]
        elif on_clean:
            served = stack.enter_context(_serve_dist(config))
            labels[served] = "our index, made from dist/ for this run"
            index_list = [pypi, served]
        else:
            index_list = [pypi, *ours]
        _check_reachable(index_list, labels, reqs.names[:1] or ["pip"])
        logs = config.paths.logs / "clean-install"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        log = stack.enter_context(open(log_path, "w"))
        if on_clean:
            # Under build/: the clean system sees it at the same path.
            (config.paths.build / "clean-install").mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix="run-", dir=config.paths.build / "clean-install"))
            runner = stack.enter_context(clean_layer(config, [], log=log, why="clean-install"))
            interpreter = clean_interpreter(runner, python, config.pythons)
            place = Place(log, work, runner)
        else:
            work = Path(tempfile.mkdtemp(prefix="wf-clean-install-"))
            place = Place(log, work)
        stack.callback(_discard, work, keep)
        runtime = _dist_runtime_debian(config) if on_clean and not indexes else {}
        return _install_and_import(config, place, interpreter, reqs, requirement_files, index_list, pypi,
                                   upgrade_pip, log_path, started, runtime)


def _install_and_import(config: Config, place: Place, interpreter: str, reqs, requirement_files: list[str],
                        index_list: list[str], pypi: str, upgrade_pip: bool, log_path: Path,
                        started: float, runtime_debian: dict[tuple[str, str], list[str]]) -> CleanInstallReport:
    """``runtime_debian``: (name, version) -> Debian packages, for the wheels of ours served for the run."""
    work = place.cwd
    pip_cache = config.paths.cache / "clean-install" / "pip"
    # Keep downloaded files between runs, never wheels built from sdists: a cached local build
    # would print "Using cached …" instead of "Building wheel for …" and hide a source build.
    shutil.rmtree(pip_cache / "wheels", ignore_errors=True)
    building: list[str] = []
    with ui.console.status("creating a bare venv") as status:
        venv_python = make_venv(place, interpreter, work / "venv")
        env = bare_env(work / "venv")  # the one bare-venv policy (verify uses it too)
        before = installed_distributions(place, venv_python, env)
        pip = [str(venv_python), "-I", "-m", "pip"]
        if upgrade_pip:
            status.update("upgrading pip in the venv")
            code, out = place.run([*pip, "install", "--upgrade", "pip", "--index-url", pypi,
                                   "--cache-dir", str(pip_cache), "--progress-bar", "off"], env)
            if code != 0:
                raise CleanInstallError(f"pip could not upgrade itself from {pypi}: {_pip_error(out.splitlines())}"
                                        f"\n  log: {log_path}")
            before = installed_distributions(place, venv_python, env)
        argv = [*pip, "install", "--prefer-binary", "--index-url", index_list[0]]
        for extra in index_list[1:]:
            argv += ["--extra-index-url", extra]
        argv += ["--cache-dir", str(pip_cache), "--progress-bar", "off", *reqs.requirements]
        for n, f in enumerate(requirement_files):
            local = work / f"requirements-{n}.txt"  # inside the work folder: the clean system sees it
            shutil.copyfile(f, local)
            argv += ["-r", str(local)]

        def on_line(line: str) -> None:
            line = line.rstrip("\n")
            if BUILDING.search(line):
                building.append(line.strip())
                ui.warn(f"source build: {line.strip()}")
            elif line.startswith(("Collecting", "Downloading", "Installing collected")):
                status.update(line.strip()[:100])

        status.update("pip install --prefer-binary " + " ".join(reqs.requirements))
        code, out = place.run(argv, env, echo=on_line)
        pip_failed = _pip_error(out.splitlines()) if code != 0 else ""
        after = installed_distributions(place, venv_python, env)
        new = {n: v for n, v in after.items() if before.get(n) != v}
        failures: list[ImportFailure] = []
        if not pip_failed and place.runner is not None and place.runner.layer is not None:
            # What our index page tells a user to apt-get install for the wheels of ours they got.
            declared = sorted({d for n, v in new.items() for d in runtime_debian.get((n, v), ())})
            if declared:
                status.update(f"apt-get install {' '.join(declared)} (runtime.debian of our wheels)")
                place.runner.rootfs.install_in_layer(place.runner.layer, declared, log=place.log,
                                                     why="runtime.debian of our wheels in dist/")
        if not pip_failed:
            status.update(f"importing the modules of {len(new)} distributions")
            failures = check_imports(place, venv_python, new, env)
        label = _python_label(place, venv_python, env)
    missing = [f for f in failures if f.library]
    if missing:
        names = place.debian_packages_for(config, [f.library for f in missing])
        for f in missing:
            f.debian = names.get(f.library, [])
    return CleanInstallReport(reqs.requirements + [f"-r {f}" for f in requirement_files], label, building,
                              _built_packages(building), new, missing, [f for f in failures if not f.library],
                              pip_failed, _rel(config, log_path), time.monotonic() - started)


@contextlib.contextmanager
def _serve_dist(config: Config) -> Iterator[str]:
    """Our index made from dist/ by the index generator into a temporary folder, served on 127.0.0.1."""
    out = Path(tempfile.mkdtemp(prefix="wf-clean-install-index-"))
    try:
        build_index(config, out=out / "index", quiet=True)
        server = IndexServer(out / "index", quiet=True).start()
        try:
            yield f"{server.url}simple"
        finally:
            server.stop()
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _dist_runtime_debian(config: Config) -> dict[tuple[str, str], list[str]]:
    """(canonical name, version) -> the record's debian_runtime, for each wheel record in dist/."""
    out: dict[tuple[str, str], list[str]] = {}
    for path in sorted(config.paths.dist.glob("*.whl.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if rec.get("debian_runtime"):
            out.setdefault((canonicalize_name(rec["name"]), rec["version"]), []).extend(rec["debian_runtime"])
    return out


def clean_interpreter(runner: EmulatedRunner, version: str | None, wanted: Sequence[str]) -> str:
    """The clean system's interpreter for Python ``version`` (X.Y; default: the first of ``wanted`` it has);
    EnvironmentProblem saying how to add it."""
    found = runner.rootfs.pythons_in(runner.rootfs.path)
    version = version or next((v for v in wanted if v in found), ", ".join(wanted))
    if version not in found:
        raise EnvironmentProblem(f"the {runner.rootfs.label} at {runner.rootfs.path} has no Python {version} "
                                 f"(it has {', '.join(found) or 'none'}); add it to target.pythons and run "
                                 f"nox -s rootfs -- update, or choose another with --python X.Y")
    return found[version]


def _discard(work: Path, keep: bool) -> None:
    if keep:
        ui.info(f"venv kept at {work / 'venv'}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def _built_packages(building: list[str]) -> list[str]:
    """The canonical names in "Building wheel for NAME" lines, once each, in order."""
    built: list[str] = []
    for line in building:
        m = BUILDING.search(line)
        if m and canonicalize_name(m.group(1)) not in built:
            built.append(canonicalize_name(m.group(1)))
    return built


def _check_reachable(indexes: list[str], labels: dict[str, str], names: list[str]) -> None:
    """One quick request per index, so a dead index is one clear message, not pip's retries."""
    sources = {base: labels.get(base, "--index") for base in indexes}
    with Client(sources=sources, retries=1, error=CleanInstallError) as client:
        for base in indexes:
            client.check_reachable(base, names[0])


def _pip_error(lines: list[str]) -> str:
    errs = [ln.strip() for ln in lines if ln.strip().startswith(("ERROR:", "error:"))]
    if errs:
        return " / ".join(errs[:4])
    return " / ".join(ln.strip() for ln in lines[-5:] if ln.strip())


def _python_label(place: Place, python: Path, env: dict[str, str | None]) -> str:
    code, out = place.run([str(python), "-I", "-c", "import platform; print(platform.python_implementation(), "
                           "platform.python_version(), platform.machine())"], env)
    lines = out.strip().splitlines()
    return lines[-1] if code == 0 and lines else str(python)


def _rel(config: Config, path: Path) -> str:
    return str(path.relative_to(config.root)) if path.is_relative_to(config.root) else str(path)
