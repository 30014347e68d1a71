"""`nox -s clean-install --target host`: a bare venv, real pip, real PyPI plus a local index on 127.0.0.1.

(The default, on the target's clean system, is tested in tests/runners/test_clean.py.)

The local index serves packages built here: an sdist-only dependency (pip
really builds it) and a wheel whose extension links a shared library that is
neither bundled nor installed (the import really fails).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from conftest import REPO, write_project
from wheelfactory.audit import clean_install as cleaninstall
from wheelfactory.cli import audit as audit_cli
from wheelfactory.settings.factory import load_config

# Sonames Debian ships (and the package-name prefix it uses) that a fresh Debian host does not have.
CANDIDATE_LIBS = [("libgeos_c.so.1", "libgeos-c1"), ("libsnappy.so.1", "libsnappy1"), ("libzmq.so.5", "libzmq5"),
                  ("libnuma.so.1", "libnuma1"), ("libopenblas.so.0", "libopenblas0")]


class LocalIndex:
    """A PEP 503 index on 127.0.0.1 serving files from a folder."""

    def __init__(self, root: Path):
        self.root = root
        (root / "files").mkdir(parents=True, exist_ok=True)
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)  # noqa: E731
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.RequestHandlerClass.log_message = lambda *a: None
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/simple"

    def add(self, project: str, *files: Path) -> None:
        page = self.root / "simple" / project
        page.mkdir(parents=True, exist_ok=True)
        links = []
        for f in files:
            shutil.copy(f, self.root / "files" / f.name)
            sha = hashlib.sha256(f.read_bytes()).hexdigest()
            links.append(f'<a href="../../files/{f.name}#sha256={sha}">{f.name}</a>')
        (page / "index.html").write_text("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")

    def close(self):
        self.server.shutdown()


def _write_project_src(folder: Path, name: str, *, deps=(), setup_py: str = "", files: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "1.0"
        dependencies = {json.dumps(list(deps))}
        """))
    if setup_py:
        (folder / "setup.py").write_text(textwrap.dedent(setup_py))
    for rel, text in (files or {}).items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return folder


def _build(folder: Path, out: Path, *, sdist: bool) -> Path:
    out.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--sdist" if sdist else "--wheel",
                    "--outdir", str(out), str(folder)], check=True, capture_output=True)
    return max(out.iterdir(), key=lambda p: p.stat().st_mtime)


def _installed_sonames() -> str:
    return subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def local_index(tmp_path_factory):
    """wf-ci-app (pure wheel) needs wf-ci-sdistonly (sdist only); wf-ci-missinglib links a missing library."""
    tmp = tmp_path_factory.mktemp("clean-install-index")
    index = LocalIndex(tmp / "www")
    dist = tmp / "dist"
    sdistonly = _write_project_src(tmp / "src-sdistonly", "wf-ci-sdistonly",
                                   files={"wf_ci_sdistonly/__init__.py": "VALUE = 1\n"})
    index.add("wf-ci-sdistonly", _build(sdistonly, dist, sdist=True))
    app = _write_project_src(tmp / "src-app", "wf-ci-app", deps=["wf-ci-sdistonly"],
                             files={"wf_ci_app/__init__.py": "import wf_ci_sdistonly\n"})
    index.add("wf-ci-app", _build(app, dist, sdist=False))

    # A library with a real Debian soname, built here and left out of the wheel and the system.
    ldconfig = _installed_sonames()
    soname, debian_prefix = next(((s, d) for s, d in CANDIDATE_LIBS if s not in ldconfig), (None, None))
    assert soname, f"every candidate library is installed on this host: {CANDIDATE_LIBS}"
    libdir = tmp / "lib"
    libdir.mkdir()
    (libdir / "wfmiss.c").write_text("int wf_missing_answer(void) { return 42; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(libdir / soname),
                    str(libdir / "wfmiss.c")], check=True)
    missing = _write_project_src(tmp / "src-missinglib", "wf-ci-missinglib", setup_py=f"""\
        from setuptools import Extension, setup
        setup(packages=["wf_ci_missinglib"], ext_modules=[Extension("wf_ci_missinglib._answer",
              ["src/answer.c"], extra_link_args=["-L{libdir}", "-l:{soname}"])])
        """, files={
        "wf_ci_missinglib/__init__.py": "from ._answer import answer\n",
        "src/answer.c": """\
            #include <Python.h>
            int wf_missing_answer(void);
            static PyObject *answer(PyObject *s, PyObject *a) { return PyLong_FromLong(wf_missing_answer()); }
            static PyMethodDef m[] = {{"answer", answer, METH_NOARGS, ""}, {0}};
            static struct PyModuleDef d = {PyModuleDef_HEAD_INIT, "_answer", 0, -1, m};
            PyMODINIT_FUNC PyInit__answer(void) { return PyModule_Create(&d); }
            """,
    })
    index.add("wf-ci-missinglib", _build(missing, dist, sdist=False))
    yield {"url": index.url, "soname": soname, "debian_prefix": debian_prefix}
    index.close()


def _project(tmp_path: Path, index_url: str = "") -> Path:
    config = f'[audit]\nour-index = "{index_url}"\n' if index_url else ""
    return write_project(tmp_path / "project", config=config)


def test_source_build_is_listed_and_fails(tmp_path, local_index):
    """Through nox, as CI runs it: the sdist-only dependency is compiled, so the check fails and says so."""
    root = _project(tmp_path, local_index["url"])
    r = subprocess.run(["nox", "-f", str(REPO / "noxfile.py"), "-s", "clean-install", "--", "wf-ci-app", "--target", "host"],
                       cwd=root, env={**os.environ, "WHEELFACTORY_ROOT": str(root)}, capture_output=True,
                       text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "FAILED" in out
    assert "Building wheel for wf-ci-sdistonly" in out, out
    assert "built from source (1: wf-ci-sdistonly)" in out, out
    log = next((root / "logs" / "clean-install").glob("*.log"))
    assert "Building wheel for wf-ci-sdistonly" in log.read_text()


def test_missing_shared_library_names_the_debian_package(tmp_path, local_index):
    root = _project(tmp_path, local_index["url"])
    config = load_config(root)
    rep = cleaninstall.clean_install(config, ["wf-ci-missinglib"], [], upgrade_pip=False, target="host")
    assert not rep.ok
    assert not rep.built_from_source
    libs = {f.library: f for f in rep.missing_libraries}
    assert local_index["soname"] in libs, rep
    failure = libs[local_index["soname"]]
    assert failure.dist == "wf-ci-missinglib"
    assert failure.debian and all(p.startswith(local_index["debian_prefix"]) for p in failure.debian), failure
    # And the command's exit status and printed report.
    status = audit_cli.clean_install_command(["wf-ci-missinglib", "--no-upgrade-pip", "--target", "host"], root=root)
    assert status == 1


def test_wheels_only_install_passes(tmp_path):
    root = _project(tmp_path)
    rep = cleaninstall.clean_install(load_config(root), ["six"], [], upgrade_pip=False, target="host")
    assert rep.ok, rep
    assert "six" in rep.installed and not rep.built_from_source and not rep.missing_libraries


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    """The command as a user runs it: cli.run turns errors into one message and an exit status."""
    code = ("import sys; from wheelfactory import cli; from wheelfactory.cli import audit as audit_cli; "
            f"cli.run(audit_cli.clean_install_command, sys.argv[1:], root={str(root)!r})")
    return subprocess.run([sys.executable, "-c", code, *args], cwd=root, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("args, message", [
    (["numpy=="], "is not a valid requirement"),
    (["-r", "bad-requirements.txt"], "bad-requirements.txt:2"),
    # Valid, but nothing on the indexes resolves it: pip's answer names it, with the fix.
    (["wf-no-such-project-x13", "--target", "host", "--no-upgrade-pip"],
     "No matching distribution found for wf-no-such-project-x13"),
    (["six==0.0.1", "--target", "host", "--no-upgrade-pip"], "correct the requirement's name or version"),
])
def test_bad_requirements_are_one_clear_message(tmp_path, args, message):
    root = _project(tmp_path)
    (root / "bad-requirements.txt").write_text("six\nnot a requirement!!\n")
    r = _run_cli(root, *args)
    assert r.returncode == 1
    assert message in r.stderr
    assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr


def test_unreachable_index_is_one_clear_message(tmp_path):
    root = write_project(tmp_path / "project", config=f'[audit]\npypi-url = "http://127.0.0.1:{_free_port()}/simple"\n')
    r = _run_cli(root, "six", "--no-upgrade-pip")
    assert r.returncode == 1
    assert "cannot reach http://127.0.0.1:" in r.stderr and "audit.pypi-url" in r.stderr, r.stderr
    assert r.stderr.count("error:") == 1 and "Traceback" not in r.stderr
