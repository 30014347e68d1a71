"""`invoke audit targets/vllm-cpu.txt`: a target's requirements, evaluated for riscv64 before resolving,
resolved with our own metadata where a recipe builds something else than PyPI's wheels (issue 18).

Real PyPI and real uv; nothing about which packages have riscv64 wheels is written down here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest
import requests
from conftest import REPO, write_project
from packaging.requirements import Requirement
from test_audit import _free_port, _invoke_audit, _project, _snapshot

from wheelfactory.audit import report, requirements
from wheelfactory.build import store
from wheelfactory.settings.factory import load_config

TARGET = REPO / "targets" / "vllm-cpu.txt"
CUDA_ONLY = re.compile(r"^(nvidia-|cuda-|triton$)")


def test_the_target_file_names_a_published_sdist():
    """The header records the vLLM release and the sha256 of its sdist; PyPI says the same."""
    head = TARGET.read_text()
    version = re.search(r"vllm-(\d[^\s/]*)\.tar\.gz", head).group(1)
    sha = re.search(r"sha256 ([0-9a-f]{64})", head).group(1)
    page = requests.get("https://pypi.org/simple/vllm/", headers={"Accept": "application/vnd.pypi.simple.v1+json"},
                        timeout=60).json()
    (sdist,) = [f for f in page["files"] if f["filename"] == f"vllm-{version}.tar.gz"]
    assert sdist["hashes"]["sha256"] == sha


@pytest.mark.slow
def test_the_vllm_cpu_target_resolves_for_riscv64_without_cuda(tmp_path):
    root = write_project(tmp_path / "p", recipes=["torch", "numpy"], host_target=False,
                         config='[target]\narch = "riscv64"\npolicy = "manylinux_2_39"\n'
                                'pythons = ["3.11", "3.12", "3.13", "3.14"]\n')
    r = subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "audit", str(TARGET), "--json"],
                       cwd=root, env={**os.environ, "WHEELFACTORY_ROOT": str(root)}, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode in (0, report.EXIT_MISSING), r.stderr
    doc = json.loads(r.stdout)
    names = {p["name"] for p in doc["packages"]}
    assert len(names) > 100 and {"torch", "numpy", "transformers"} <= names
    # torch resolved with our recipe's metadata: none of PyPI's CUDA packages are in the tree.
    assert doc["own_metadata"] == ["torch"]
    assert not [n for n in names if CUDA_ONLY.match(n)], sorted(names)
    (torch,) = [p for p in doc["packages"] if p["name"] == "torch"]
    assert torch["version"] == "2.14.0" and torch["recipe"]["version"]  # riscv64's line of cpu.txt, not +cpu
    # The recipes list the versions this tree resolves to (numpy differs per Python: [versions]).
    matched = {(p["name"], p["version"]): p["recipe"]["matches"] for p in doc["packages"] if p["recipe"]}
    assert matched == {("torch", "2.14.0"): True, **{("numpy", v): True for n, v in matched if n == "numpy"}}
    assert len(matched) >= 2
    # Requirements for other machines were dropped before resolving (the +cpu local version, the
    # x86_64 triton URLs on github.com, torchvision), and only those.
    dropped = {Requirement(t).name for t in doc["not_for_target"]}
    assert {"torch", "triton", "torchvision", "torchaudio", "intel-openmp"} <= dropped
    assert all(not Requirement(t).marker.evaluate({"platform_machine": "riscv64", "python_version": py,
                                                   "python_full_version": f"{py}.0"})
               for t in doc["not_for_target"] for py in ("3.11", "3.12", "3.13", "3.14"))


def _record(dist, *, version: str, requires: list[str]) -> None:
    """A dist/ record of our torch build (store's format), holding its metadata."""
    filename = f"torch-{version}-0-cp312-cp312-manylinux_2_39_riscv64.whl"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / filename).write_bytes(b"")
    metadata = f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n" + \
        "".join(f"Requires-Dist: {r}\n" for r in requires)
    store.record_path(dist, filename).write_text(json.dumps({
        "name": "torch", "filename": filename, "recipe": "torch", "target": "riscv64", "version": version,
        "status": "ok", "sha256": hashlib.sha256(b"").hexdigest(), "size": 0,
        "tags": ["cp312-cp312-manylinux_2_39_riscv64"], "metadata": metadata,
        "metadata_sha256": hashlib.sha256(metadata.encode()).hexdigest(),
        "built_at": "2026-11-30T00:00:00Z", "yanked": None}))


def test_a_recipe_metadata_replaces_pypi_metadata_then_our_build_does(tmp_path):
    root = _project(tmp_path, pythons=["3.12"])
    root = write_project(root, recipes=["torch", "numpy"], host_target=False,
                         config=(root / "factory.toml").read_text())
    config = load_config(root)
    reqs = requirements.read_requirements(["torch==2.14.0"])

    declared = {p.name for p in report.run_audit(config, reqs).packages}
    assert {"torch", "sympy", "filelock"} <= declared  # recipes/torch: runtime.requires-dist
    assert not [n for n in declared if CUDA_ONLY.match(n)], sorted(declared)

    recipe = root / "recipes/torch/recipe.toml"
    version = re.search(r'^version = "([^"]+)"', recipe.read_text(), re.M).group(1)
    _record(config.paths.dist, version=version, requires=["six", "idna; python_version < '3'"])
    built = {p.name for p in report.run_audit(config, reqs).packages}
    assert built == {"torch", "six"}  # our build's Requires-Dist, its markers evaluated

    # Without the declaration, PyPI's (CUDA) metadata decides, as for any package.
    recipe.write_text(re.sub(r"^requires-dist = .*\n", "", recipe.read_text(), flags=re.M))
    pypi = {p.name for p in report.run_audit(load_config(root), reqs).packages}
    assert [n for n in pypi if CUDA_ONLY.match(n)]


def test_an_unreachable_direct_url_is_named_by_its_host(tmp_path):
    root = _project(tmp_path, pythons=["3.12"])
    port = _free_port()
    url = f"http://127.0.0.1:{port}/wf_x-1.0-py3-none-any.whl"
    (root / "req.txt").write_text(f"six\nwf-x @ {url}\n")
    before = _snapshot(root)
    r = _invoke_audit(root, "req.txt")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert f"cannot reach 127.0.0.1:{port} while resolving (fetching {url})" in r.stderr, r.stderr
    assert "pypi.org" not in r.stderr and r.stderr.count("error:") == 1 and "Traceback" not in r.stderr
    assert _snapshot(root) == before
    # The same URL for another machine never reaches uv: the audit runs.
    (root / "req.txt").write_text(f"six\nwf-x @ {url} ; platform_machine == 'x86_64'\n")
    r = _invoke_audit(root, "req.txt", "--json")
    assert r.returncode == 0, r.stderr
    assert [Requirement(t).url for t in json.loads(r.stdout)["not_for_target"]] == [url]
