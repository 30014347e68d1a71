"""`invoke audit`: the real tree of vllm from real PyPI, checked against PyPI's own data fetched here.

No expectation about which packages have riscv64 wheels is written down: the
test reads each package's PEP 691 page itself and decides, with its own tag
rules, what the audit must have said.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from packaging.specifiers import SpecifierSet
from packaging.utils import parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from conftest import REPO, write_project
from wheelfactory.audit import classify, report, requirements
from wheelfactory.cli import audit as audit_cli
from wheelfactory.settings.factory import load_config
from wheelfactory.errors import FactoryError
from wheelfactory.settings.recipe import parse_recipe

PYPI = "https://pypi.org/simple"
PEP691 = "application/vnd.pypi.simple.v1+json"
PYTHONS = ["3.11", "3.12", "3.13"]


def _project(tmp_path: Path, config: str = "", pythons=PYTHONS) -> Path:
    target = f'[target]\narch = "riscv64"\npolicy = "manylinux_2_39"\npythons = {json.dumps(pythons)}\n'
    return write_project(tmp_path / "project", config=target + config, host_target=False)


# --- the test's own reading of PyPI -----------------------------------------------------


def _riscv64_accepts(tag, py: str) -> bool:
    """Would CPython ``py`` on a riscv64 glibc-2.39 machine install a wheel with this tag?"""
    minor = int(py.split(".")[1])
    m = re.fullmatch(r"manylinux_2_(\d+)_riscv64", tag.platform)
    if tag.platform != "any" and not (m and 17 <= int(m.group(1)) <= 39):
        return False
    i, a = tag.interpreter, tag.abi
    cp = f"cp3{minor}"
    if i == cp and a in (cp, "abi3", "none"):
        return True
    if a == "abi3" and re.fullmatch(r"cp3\d+", i) and int(i[3:]) <= minor:
        return True
    return a == "none" and (i == "py3" or (re.fullmatch(r"py3\d+", i) is not None and int(i[3:]) <= minor))


def expected_status(name: str, version: str, pythons: list[str], session: requests.Session) -> str:
    page = session.get(f"{PYPI}/{name}/", headers={"Accept": PEP691}, timeout=60).json()
    files = []
    for f in page["files"]:
        fn = f["filename"]
        try:
            v = parse_wheel_filename(fn)[1] if fn.endswith(".whl") else parse_sdist_filename(fn)[1]
        except ValueError:
            continue
        if v == Version(version):
            files.append(f)
    sdist = any(not f["filename"].endswith(".whl") for f in files)
    kinds = []
    for py in pythons:
        got = set()
        for f in files:
            if not f["filename"].endswith(".whl") or f.get("yanked"):
                continue
            rp = f.get("requires-python")
            if rp and not SpecifierSet(rp).contains(f"{py}.0", prereleases=True):
                continue
            for tag in parse_wheel_filename(f["filename"])[3]:
                if _riscv64_accepts(tag, py):
                    got.add("pure" if tag.platform == "any" else "riscv64")
        kinds.append("riscv64" if "riscv64" in got else "pure" if got else None)
    if None in kinds:
        return "needs-recipe" if sdist else "needs-git-recipe"
    return "pure" if set(kinds) == {"pure"} else "pypi-wheel"


# --- the real tree of vllm ----------------------------------------------------------------


@pytest.mark.slow
def test_vllm_tree_is_classified_as_pypi_says(tmp_path):
    root = _project(tmp_path)
    config = load_config(root)
    reqs = requirements.read_requirements(["vllm"])
    result = report.run_audit(config, reqs)
    names = {p.name for p in result.packages}
    assert len(names) > 100, names  # the whole transitive tree, not the direct requirements
    # The tree holds the packages a riscv64 user meets; the resolver did not stop at torch.
    assert {"vllm", "torch", "numpy"} <= names

    with requests.Session() as s, ThreadPoolExecutor(16) as pool:
        expected = list(pool.map(lambda p: expected_status(p.name, p.version, p.pythons, s), result.packages))
    wrong = [(p.name, p.version, p.status, e) for p, e in zip(result.packages, expected) if p.status != e]
    assert not wrong, wrong
    missing = {p.name for p in result.packages if p.needs_recipe}
    assert missing == {p.name for p, e in zip(result.packages, expected) if e.startswith("needs")}
    assert missing  # torch has never shipped an sdist or a riscv64 wheel

    # The JSON report says the same, and the command exits non-zero while anything needs a recipe.
    out = subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "audit", "vllm", "--json"], cwd=root,
                         env={**os.environ, "WHEELFACTORY_ROOT": str(root)}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == report.EXIT_MISSING, out.stderr
    doc = json.loads(out.stdout)
    assert sorted(set(doc["needs_recipe"])) == sorted(missing)
    assert {p["name"]: p["status"] for p in doc["packages"]} == {p.name: p.status for p in result.packages}

    # Warm: resolution and pages come from cache/, nothing is asked of the network.
    warm = report.run_audit(config, reqs)
    assert warm.cached_resolution and warm.network_requests == 0
    assert [(p.name, p.version, p.status) for p in warm.packages] == \
        [(p.name, p.version, p.status) for p in result.packages]


# --- our own index: PEP 691 JSON with ETags --------------------------------------------------


class JsonIndex:
    """A PEP 691 index on 127.0.0.1 that sends ETags and answers If-None-Match with 304."""

    def __init__(self):
        self.pages: dict[str, bytes] = {}
        self.files: dict[str, bytes] = {}
        self.log: list[tuple[str, int]] = []
        index = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                body = index.pages.get(self.path)
                ctype = PEP691
                if body is None:
                    body, ctype = index.files.get(self.path), "application/octet-stream"
                if body is None:
                    index.log.append((self.path, 404))
                    self.send_response(404)
                    self.end_headers()
                    return
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    index.log.append((self.path, 304))
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                index.log.append((self.path, 200))
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"

    def close(self):
        self.server.shutdown()


def test_our_index_wheel_and_etag_revalidation(tmp_path):
    """numpy's riscv64 builds in our index: the best build is reported; a stale page is revalidated (304)."""
    with requests.Session() as s:
        page = s.get(f"{PYPI}/numpy/", headers={"Accept": PEP691}, timeout=60).json()
    # The newest numpy release that supports CPython 3.12: our index claims riscv64 builds of it.
    version = str(max(v for v in map(Version, page["versions"]) if not v.is_prerelease and any(
        f["filename"].startswith(f"numpy-{v}-cp312-") for f in page["files"])))
    metadata = f"Metadata-Version: 2.1\nName: numpy\nVersion: {version}\nRequires-Python: >=3.11\n".encode()
    index = JsonIndex()
    try:
        files = []
        for build in ("1", "2"):
            fn = f"numpy-{version}-{build}-cp312-cp312-manylinux_2_39_riscv64.whl"
            index.files[f"/files/{fn}.metadata"] = metadata
            files.append({"filename": fn, "url": f"../../files/{fn}", "hashes": {"sha256": "0" * 64},
                          "requires-python": ">=3.11", "core-metadata": {"sha256": hashlib.sha256(metadata).hexdigest()}})
        index.pages["/simple/numpy/"] = json.dumps({"meta": {"api-version": "1.1"}, "name": "numpy",
                                                    "files": files, "versions": [version]}).encode()
        root = _project(tmp_path, f'[audit]\nour-index = "{index.url}"\nmax-age = 0\n', pythons=["3.12"])
        config = load_config(root)
        reqs = requirements.read_requirements([f"numpy=={version}"])
        first = report.run_audit(config, reqs)
        (numpy,) = [p for p in first.packages if p.name == "numpy"]
        with requests.Session() as s:
            upstream = expected_status("numpy", version, ["3.12"], s)
        if upstream == "pypi-wheel":  # upstream ships riscv64 now: that wins, as it does for pip
            assert numpy.status == "pypi-wheel"
        else:
            assert numpy.status == "our-wheel", numpy
            assert numpy.per_python["3.12"].build == "2"  # the newest build, as pip picks it
            assert f"numpy-{version}-2-cp312" in numpy.detail
        assert ("/simple/numpy/", 200) in index.log

        index.log.clear()
        second = report.run_audit(config, reqs)  # max-age 0: every page is stale
        assert ("/simple/numpy/", 304) in index.log, index.log
        assert [(p.name, p.status) for p in second.packages] == [(p.name, p.status) for p in first.packages]
    finally:
        index.close()


# --- requirements input ------------------------------------------------------------------------


def test_requirement_arguments_and_files(tmp_path):
    assert requirements.split_requirement_args(["numpy>=2,<3 torch", "six,requests"]) == \
        ["numpy>=2,<3", "torch", "six", "requests"]
    (tmp_path / "base.txt").write_text("six  # a comment\nrequests>=2 \\\n  ,<3\n")
    (tmp_path / "pins.txt").write_text("urllib3<3\n")
    (tmp_path / "req.txt").write_text("# top\n-r base.txt\n--constraint pins.txt\n\nidna\n")
    got = requirements.read_requirements(["numpy"], [tmp_path / "req.txt"])
    assert got.requirements == ["numpy", "six", "requests<3,>=2", "idna"]
    assert got.constraints == ["urllib3<3"]
    # A file alone may be the positional argument (invoke needs one).
    assert requirements.read_requirements([str(tmp_path / "req.txt")]).requirements == ["six", "requests<3,>=2", "idna"]


# --- bad input: one clear message, non-zero exit, nothing written -----------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / "recipes").rglob("*")) if p.is_file()}


def _invoke_audit(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["invoke", "--search-root", str(REPO), "audit", *args], cwd=root,
                          env={**os.environ, "WHEELFACTORY_ROOT": str(root)}, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("case", ["unknown", "unsatisfiable", "malformed", "unreachable"])
def test_bad_input_is_one_clear_message(tmp_path, case):
    config = f'[audit]\npypi-url = "http://127.0.0.1:{_free_port()}/simple"\n' if case == "unreachable" else ""
    root = _project(tmp_path, config)
    (root / "requirements.txt").write_text("six\n--index-url https://example.invalid/simple\n")
    before = _snapshot(root)
    args, message = {
        "unknown": (["wf-no-such-project-3f9c2", "--write-recipes"], "unknown package 'wf-no-such-project-3f9c2'"),
        "unsatisfiable": (["numpy>=9999", "--write-recipes"], "cannot be satisfied"),
        "malformed": (["requirements.txt", "--write-recipes"], "requirements.txt:2: option '--index-url'"),
        "unreachable": (["six", "--write-recipes"], "cannot reach http://127.0.0.1:"),
    }[case]
    r = _invoke_audit(root, *args)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert message in r.stderr, r.stderr
    assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr, r.stderr
    assert _snapshot(root) == before


# --- --write-recipes -----------------------------------------------------------------------------------


def test_write_recipes_is_all_or_nothing(tmp_path):
    """torch has no sdist: its recipe needs a git source, so numpy's recipe is not written either."""
    root = _project(tmp_path, pythons=["3.12"])
    before = _snapshot(root)
    with pytest.raises(FactoryError) as err:
        audit_cli.audit_command(["numpy torch"], root=root, write_recipes=True)
    assert "no recipes written" in str(err.value) and "torch" in str(err.value)
    assert _snapshot(root) == before


def test_write_recipes_scaffolds_every_missing_package(tmp_path):
    # Releases from before riscv64 wheels existed: whatever PyPI says, the audit must agree.
    wanted = "pyyaml==6.0.1 cffi==1.15.1"
    root = _project(tmp_path, pythons=["3.11"])
    config = load_config(root)
    reqs = requirements.read_requirements([wanted])
    missing = {p.name for p in report.run_audit(config, reqs).packages if p.needs_recipe}
    assert missing, "nothing to scaffold: pick older releases"
    status = audit_cli.audit_command([wanted], root=root, write_recipes=True)
    assert status == 0  # every package now has a recipe
    written = {p.parent.name for p in (root / "recipes").glob("*/recipe.toml")}
    assert written == missing
    for name in written:
        recipe = parse_recipe(root / "recipes" / name / "recipe.toml")
        assert recipe.source_kind == "sdist" and len(recipe.source.sha256) == 64
    # Those packages now count as covered by a recipe.
    again = report.run_audit(config, reqs)
    assert not again.missing and all(p.recipe for p in again.packages if p.status in classify.NEEDS)
