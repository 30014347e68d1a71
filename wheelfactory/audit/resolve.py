"""The audit's tree: the target it is resolved for, and ``uv pip compile --universal`` pins.

The numpy lesson: a package nobody listed (a transitive dependency that a dirty
build machine already had) cost a clean board 25 minutes of compiling. So the
audit never looks at an installed environment. It resolves the whole tree with
``uv pip compile --universal`` — a resolution that holds for every platform, so
it cannot stop or backtrack at the first package without a riscv64 wheel, as a
``pip --dry-run`` or a ``--python-platform`` resolve does — and then evaluates
each pin's environment marker for the target (``Target.marker_env``, each
audited CPython).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..errors import ConfigError, EnvironmentProblem
from ..settings.factory import Config
from ..settings.target import BEST, Target, parse_policy
from .requirements import AuditError, RequirementsInput

try:
    from uv import find_uv_bin
except ImportError:  # uv is a dependency, but a bare `uv` on PATH will do
    find_uv_bin = None


def audit_target(config: Config, pythons: Iterable[str] | None = None) -> tuple[Target, tuple[str, ...]]:
    """The target the audit checks (policy resolved to ``manylinux_2_NN``) and its CPythons, oldest first.

    The audit's own rules: each Python looks like 3.12, and the policy is a
    manylinux_2_NN one (``best`` only on this host's arch, where it means this
    host's glibc); otherwise ConfigError.
    """
    pys = tuple(pythons or config.pythons)
    for py in pys:
        if not re.fullmatch(r"3\.\d+", py):
            raise ConfigError(f"Python version {py!r} must look like 3.12 (target.pythons / --python)")
    target = Target.of(config)
    if not parse_policy(target.policy) and not (target.policy == BEST and target.is_host):
        raise ConfigError(
            f"target.policy is {config.policy!r}; the audit needs a manylinux_2_NN policy to know "
            f"which wheels a {config.arch} machine accepts; set target.policy (e.g. \"manylinux_2_39\") "
            f"in factory.toml"
        )
    ordered = tuple(sorted(set(pys), key=lambda v: tuple(map(int, v.split(".")))))
    return Target(target.arch, target.resolved_policy), ordered


@dataclass
class Pin:
    """One line of uv's output: a package pinned (or a direct URL), under a marker, and who wants it."""

    name: str  # canonical
    version: str  # "" for a direct URL reference
    marker: str  # "" when unconditional
    via: list[str]
    url: str = ""

    def pythons(self, target: Target, pythons: Iterable[str]) -> list[str]:
        """The audited Pythons this pin applies to on the target (its marker evaluated)."""
        if not self.marker:
            return list(pythons)
        m = Marker(self.marker)
        return [py for py in pythons if m.evaluate(target.marker_env(py))]


_SELECTING = re.compile(r"Selecting: ([A-Za-z0-9][A-Za-z0-9._-]*)==")


def uv_binary() -> str:
    """The uv executable: the uv package's, else the one on PATH; EnvironmentProblem if neither."""
    if find_uv_bin is not None:
        try:
            return find_uv_bin()
        except FileNotFoundError:
            pass
    found = shutil.which("uv")
    if not found:
        raise EnvironmentProblem("uv is not installed; `pip install uv` (it is a wheelfactory dependency)")
    return found


def _uv_env() -> dict[str, str]:
    """The environment minus uv settings that would change what is resolved (a bare resolve)."""
    keep = {"UV_CACHE_DIR", "UV_NATIVE_TLS", "UV_HTTP_TIMEOUT", "UV_CONCURRENT_DOWNLOADS",
            "UV_CONCURRENT_BUILDS", "UV_CONCURRENT_INSTALLS", "UV_OFFLINE"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_") or k in keep}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["NO_COLOR"] = "1"
    return env


def resolution_key(reqs: RequirementsInput, pythons: tuple[str, ...], indexes: list[str]) -> str:
    """What decides a resolution: requirements, constraints, the lowest Python, indexes, uv's version."""
    try:
        uv_version = importlib_metadata.version("uv")
    except importlib_metadata.PackageNotFoundError:
        uv_version = "?"
    blob = json.dumps([reqs.requirements, reqs.constraints, pythons[0], indexes, uv_version])
    return hashlib.sha256(blob.encode()).hexdigest()


def parse_compile_output(text: str) -> list[Pin]:
    """``uv pip compile --annotation-style line`` output as pins, with who wants each (``via``)."""
    pins = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("-"):
            continue
        body, _, note = line.partition("  # via ")
        if "#" in body:
            body, _, note2 = body.partition("#")
            note = note or note2.replace("via ", "", 1)
        req = Requirement(body.strip())
        version = ""
        for spec in req.specifier:
            if spec.operator in ("==", "==="):
                version = spec.version
        via = [v.strip() for v in note.split(",") if v.strip()]
        via = ["(requested)" if v.startswith("-r ") or v == "-r" else v for v in via]
        pins.append(Pin(canonicalize_name(req.name), version, str(req.marker) if req.marker else "", via,
                        req.url or ""))
    return pins


def resolve(reqs: RequirementsInput, pythons: tuple[str, ...], indexes: list[str], labels: dict[str, str], *,
            on_name: Callable[[str], None] | None = None, abort: threading.Event | None = None) -> str:
    """``uv pip compile --universal`` of the requirements; returns its requirements.txt output.

    ``on_name(name)`` is called for every package uv selects while it works, so
    index lookups start long before the resolution ends. ``abort`` set: uv is
    killed and "" returned. A failure is one AuditError (unknown package,
    unreachable index, unsatisfiable requirements, or uv's own last lines).
    """
    with tempfile.TemporaryDirectory(prefix="wf-audit-") as tmp:
        tmpd = Path(tmp)
        (tmpd / "requirements.in").write_text("\n".join(reqs.requirements) + "\n")
        argv = [uv_binary(), "pip", "compile", str(tmpd / "requirements.in"), "--universal",
                "--python-version", pythons[0], "--no-config", "--no-header", "--annotation-style",
                "line", "--color", "never", "--index-url", indexes[0], "-v"]
        for extra in indexes[1:]:
            argv += ["--extra-index-url", extra]
        if len(indexes) > 1:
            argv += ["--index-strategy", "unsafe-best-match"]  # pick across indexes as pip does
        if reqs.constraints:
            (tmpd / "constraints.txt").write_text("\n".join(reqs.constraints) + "\n")
            argv += ["-c", str(tmpd / "constraints.txt")]
        # Not _util.proc.run_streamed: stdout (the pins) and stderr (uv's progress) are read apart.
        proc = subprocess.Popen(argv, cwd=tmpd, env=_uv_env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        messages: list[str] = []

        def read_stderr():
            for line in proc.stderr:
                if line.startswith(("DEBUG", "TRACE", "INFO")):
                    m = _SELECTING.search(line)
                    if m and on_name:
                        on_name(m.group(1))
                    continue
                messages.append(line.rstrip())

        out_chunks: list[str] = []
        readers = [threading.Thread(target=read_stderr, daemon=True),
                   threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)]
        for t in readers:
            t.start()
        while True:
            if abort is not None and abort.is_set():
                proc.kill()
                proc.wait()
                return ""
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                continue
        for t in readers:
            t.join(timeout=10)
        if proc.returncode != 0:
            raise AuditError(_uv_failure(messages, indexes, labels))
        return "".join(out_chunks)


def _uv_failure(messages: list[str], indexes: list[str], labels: dict[str, str]) -> str:
    text = "\n".join(m for m in messages if m.strip() and not m.startswith("warning:"))
    m = re.search(r"Because ([A-Za-z0-9._-]+) was not found in the package registry", text)
    if m:
        return (f"unknown package '{m.group(1)}': no index has it ({', '.join(indexes)}); "
                f"check the spelling of the requirement")
    if "Connection refused" in text or "dns error" in text or "tcp connect error" in text or \
            "Failed to fetch" in text:
        m = re.search(r"Failed to fetch: (\S+)", text)
        url = m.group(1) if m else indexes[0]
        base = next((b for b in indexes if url.startswith(b.rstrip("/"))), indexes[0])
        return (f"cannot reach {base} ({labels.get(base, 'index in factory.toml')}) while resolving: "
                f"{'connection refused' if 'refused' in text else 'network error'}; check the URL and the network")
    if "No solution found" in text:
        causes = [ln.strip() for ln in text.splitlines()
                  if ln.strip().startswith(("cause:", "╰─▶", "Because", "And because"))]
        detail = " ".join(c.removeprefix("cause:").removeprefix("╰─▶").strip() for c in causes) or text
        return f"the requirements cannot be satisfied: {detail}"
    tail = "\n  ".join(text.splitlines()[-15:])
    return f"uv pip compile failed:\n  {tail}"
