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
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..build.store import load_records
from ..errors import ConfigError, EnvironmentProblem
from ..settings.factory import Config
from ..settings.recipe import Recipe
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
        return applies_to(self.marker, target, pythons)


def applies_to(marker: str | Marker | None, target: Target, pythons: Iterable[str]) -> list[str]:
    """The Pythons (X.Y) for which a PEP 508 marker holds on the target (all of them for no marker)."""
    if not marker:
        return list(pythons)
    m = marker if isinstance(marker, Marker) else Marker(marker)
    return [py for py in pythons if m.evaluate(target.marker_env(py))]


def for_target(reqs: RequirementsInput, target: Target,
               pythons: Iterable[str]) -> tuple[RequirementsInput, list[str]]:
    """The requirements that apply on the target for at least one of ``pythons``, and those that do not.

    Evaluated before resolving, so a requirement for another machine never
    reaches uv: vLLM's ``torch==2.14.0+cpu; platform_machine == "x86_64"`` (a
    local version only PyTorch's index has) or a direct URL to an x86_64 wheel
    would break a universal resolution that riscv64 does not need.
    """
    pys = list(pythons)

    def keep(texts: list[str]) -> list[str]:
        return [t for t in texts if applies_to(Requirement(t).marker, target, pys)]

    kept = RequirementsInput(keep(reqs.requirements), keep(reqs.constraints))
    dropped = [t for t in reqs.requirements if t not in kept.requirements]
    return kept, dropped


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


def resolution_key(reqs: RequirementsInput, pythons: tuple[str, ...], indexes: list[str],
                   metadata: list[dict] = ()) -> str:
    """What decides a resolution: requirements, constraints, the lowest Python, indexes, the
    metadata given for recipes (``dependency_metadata``), uv's version."""
    try:
        uv_version = importlib_metadata.version("uv")
    except importlib_metadata.PackageNotFoundError:
        uv_version = "?"
    blob = json.dumps([reqs.requirements, reqs.constraints, pythons[0], indexes, uv_version, list(metadata)],
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def dependency_metadata(config: Config, recipes: Iterable[Recipe]) -> list[dict]:
    """What uv resolves with instead of the index's metadata, for recipes that build something else.

    PyPI's torch is a CUDA build whose metadata pulls nvidia-*, cuda-* and triton
    into any Linux tree; our torch (from git, ``USE_CUDA=0``) needs none of them.
    A recipe says so with ``runtime.requires-dist``. Its Requires-Dist then comes
    from our build of a version the recipe lists (the newest dist/ record of
    one for the target, parsed with ``packaging.metadata``) or, before the first build,
    from that declaration. The entry has no version: uv applies it to every
    version of the package, since a recipe for another version builds it the
    same way. Shape: uv's ``dependency-metadata`` entries
    (``{"name", "requires-dist", "requires-python"?}``).
    """
    overridden = {r.name: r for r in recipes if r.runtime.requires_dist}
    built: dict[str, dict] = {}
    for rec in load_records(config.paths.dist) if overridden else []:
        r = overridden.get(canonicalize_name(rec.get("recipe", "")))
        if r and rec.get("target") == config.arch and rec.get("version") in r.all_versions and rec.get("metadata"):
            if rec.get("built_at", "") >= built.get(r.name, {}).get("built_at", ""):
                built[r.name] = rec
    entries = []
    for name, r in sorted(overridden.items()):
        entry = {"name": name, "requires-dist": list(r.runtime.requires_dist)}
        if name in built:
            meta = Metadata.from_email(built[name]["metadata"], validate=False)
            entry["requires-dist"] = [str(req) for req in meta.requires_dist or []]
            if meta.requires_python:
                entry["requires-python"] = str(meta.requires_python)
        entries.append(entry)
    return entries


def _uv_config(metadata: list[dict]) -> str:
    """A uv.toml holding ``dependency-metadata`` (JSON strings are TOML basic strings)."""
    lines = []
    for entry in metadata:
        lines.append("[[dependency-metadata]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
    return "\n".join(lines) + "\n"


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
            metadata: list[dict] = (), on_name: Callable[[str], None] | None = None,
            abort: threading.Event | None = None) -> str:
    """``uv pip compile --universal`` of the requirements; returns its requirements.txt output.

    ``metadata``: ``dependency_metadata`` entries, used instead of the indexes' metadata.

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
        if metadata:
            (tmpd / "uv.toml").write_text(_uv_config(list(metadata)))
            argv += ["--config-file", str(tmpd / "uv.toml")]  # read despite --no-config
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
        m = re.search(r"Failed to fetch: `?([^\s`]+)", text)
        url = m.group(1) if m else indexes[0]
        base = next((b for b in indexes if url.startswith(b.rstrip("/"))), None)
        why = "connection refused" if "refused" in text else "dns error" if "dns error" in text else "network error"
        if base is None:  # not an index page: a direct URL, or a file an index links to on another host
            host = urllib.parse.urlsplit(url).netloc or url
            return (f"cannot reach {host} while resolving (fetching {url}): {why}; check the network, or "
                    f"give the requirement a marker that excludes the target if it is for another machine")
        return (f"cannot reach {base} ({labels.get(base, 'index in factory.toml')}) while resolving: "
                f"{why}; check the URL and the network")
    if "No solution found" in text:
        causes = [ln.strip() for ln in text.splitlines()
                  if ln.strip().startswith(("cause:", "╰─▶", "Because", "And because"))]
        detail = " ".join(c.removeprefix("cause:").removeprefix("╰─▶").strip() for c in causes) or text
        return f"the requirements cannot be satisfied: {detail}"
    tail = "\n  ".join(text.splitlines()[-15:])
    return f"uv pip compile failed:\n  {tail}"
