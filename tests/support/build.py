"""Helpers for the build tests: tiny real sdists, a local HTTP server, a real git repo.

The tiny project is a genuine setuptools C extension (so auditwheel has
something to repair); its C code and a compile-time "flavor" are parameters,
which lets tests make builds that fail to compile, fail to repair or fail to
import, and rebuilds whose output really differs.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import subprocess
import tarfile
import textwrap
import threading
from pathlib import Path

TINY_SETUP = '''\
import os
from setuptools import Extension, setup

flavor = os.environ.get("WF_TINY_FLAVOR", "plain")
setup(ext_modules=[Extension("{module}._speed", ["src/speed.c"],
                             define_macros=[("FLAVOR", '"%s"' % flavor)])])
'''

TINY_C = '''\
#include <Python.h>
#include <string.h>
{extra_c}
static PyObject *flavor(PyObject *self, PyObject *args) {{ {call} return PyUnicode_FromString(FLAVOR); }}
static PyMethodDef methods[] = {{{{"flavor", flavor, METH_NOARGS, NULL}}, {{NULL, NULL, 0, NULL}}}};
static struct PyModuleDef mod = {{PyModuleDef_HEAD_INIT, "_speed", NULL, -1, methods}};
PyMODINIT_FUNC PyInit__speed(void) {{ return PyModule_Create(&mod); }}
'''


# A build that links the extension against a shared library it makes itself and
# leaves outside every library path: auditwheel cannot find it to bundle.
MISSING_LIB_SETUP = '''\
import os
from setuptools import Extension, setup
from setuptools._distutils.ccompiler import new_compiler

out = os.path.abspath("wflib")
cc = new_compiler()
objs = cc.compile(["src/wfhelper.c"], output_dir=out, extra_preargs=["-fPIC"])
cc.link_shared_object(objs, os.path.join(out, "libwfhelper.so"))
setup(ext_modules=[Extension("{module}._speed", ["src/speed.c"], define_macros=[("FLAVOR", '"x"')],
                             libraries=["wfhelper"], library_dirs=[out])])
'''


# An extension that links the system's libffi (libffi-dev): auditwheel bundles libffi.so.8
# unless repair.exclude keeps it out.
FFI_SETUP = '''\
from setuptools import Extension, setup

setup(ext_modules=[Extension("{module}._speed", ["src/speed.c"], define_macros=[("FLAVOR", '"ffi"')],
                             libraries=["ffi"])])
'''
FFI_C = "#include <ffi.h>"
FFI_CALL = "ffi_cif cif; if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 0, &ffi_type_void, NULL) != FFI_OK) return NULL;"


# A build that says it has started (writes $WF_TINY_MARK) and then takes minutes: a test
# interrupts it (SIGINT to the build's process group) while it runs.
SLOW_SETUP = '''\
import os, time
from setuptools import Extension, setup

if os.environ.get("WF_TINY_MARK"):
    open(os.environ["WF_TINY_MARK"], "w").close()
    time.sleep(600)
setup(ext_modules=[Extension("{module}._speed", ["src/speed.c"], define_macros=[("FLAVOR", '"slow"')])])
'''


def tiny_files(name: str = "wf-tiny", version: str = "1.0", *, extra_c: str = "", call: str = "",
               init_py: str | None = None, setup_py: str = TINY_SETUP) -> dict[str, str]:
    module = name.replace("-", "_")
    files = {
        "pyproject.toml": textwrap.dedent(f'''\
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "{version}"
            requires-python = ">=3.8"

            [tool.setuptools]
            packages = ["{module}"]
            '''),
        "setup.py": setup_py.format(module=module),
        "src/speed.c": TINY_C.format(extra_c=extra_c, call=call),
        f"{module}/__init__.py": init_py if init_py is not None else "from ._speed import flavor\n",
    }
    if setup_py is MISSING_LIB_SETUP:
        files["src/wfhelper.c"] = "int wf_helper(void) { return 42; }\n"
    return files


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def make_sdist(dest_dir: Path, files: dict[str, str], *, name: str = "wf-tiny", version: str = "1.0",
               extra_members: list[tarfile.TarInfo] = ()) -> tuple[Path, str]:
    """A .tar.gz sdist with one top folder NAME-VERSION/; returns (path, sha256)."""
    top = f"{name.replace('-', '_')}-{version}"
    dest_dir.mkdir(parents=True, exist_ok=True)
    path = dest_dir / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for rel, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
        for info in extra_members:
            tf.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class LocalServer:
    """A static HTTP server for one folder on 127.0.0.1 (an ephemeral port)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def make_git_repo(root: Path, files: dict[str, str], *, tag: str = "v1.0") -> tuple[Path, str]:
    """A bare repository holding ``files`` in one commit tagged ``tag``; returns (bare path, commit)."""
    work = root / "work"
    write_tree(work, files)
    git("init", "-q", "-b", "main", cwd=work)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "initial", cwd=work)
    git("tag", "-a", tag, "-m", tag, cwd=work)
    commit = git("rev-parse", "HEAD", cwd=work)
    bare = root / "repo.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=root)
    return bare, commit


def bare_venv(path: Path, python: str = "python3.11") -> Path:
    """A venv without system site-packages (with pip), for installing built wheels like a user."""
    subprocess.run([python, "-m", "venv", str(path)], check=True)
    return path / "bin" / "python"


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)


def tree_snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (name -> bytes): compare to prove nothing changed."""
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- pytest fixtures shared by the build tests (import them into a test module) ---

import pytest  # noqa: E402

from conftest import write_project, write_recipe  # noqa: E402

RECENT_SYMBOL_C = "#include <string.h>\n"  # explicit_bzero: GLIBC_2.25, newer than manylinux_2_17


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One cache/ for all build tests: the tools venv and downloads are made once per session."""
    return tmp_path_factory.mktemp("wf-cache")


@pytest.fixture(scope="session")
def sdist_server(tmp_path_factory):
    """A 127.0.0.1 HTTP server with the tiny sdists: good, broken C, too-recent symbol."""
    folder = tmp_path_factory.mktemp("served")
    server = LocalServer(folder)
    server.sdists = {}
    variants = {
        "tiny": tiny_files(),
        "broken": tiny_files(extra_c="this is not C;"),
        "recent": tiny_files(call="char buf[8]; explicit_bzero(buf, sizeof buf);"),
        "noinit": tiny_files(init_py="raise ImportError('wf_tiny is broken on purpose')\n"),
        "missinglib": tiny_files(extra_c="int wf_helper(void);", call="(void)wf_helper();",
                                 setup_py=MISSING_LIB_SETUP),
        "ffi": tiny_files(extra_c=FFI_C, call=FFI_CALL, setup_py=FFI_SETUP),
        "slow": tiny_files(setup_py=SLOW_SETUP),
    }
    for key, files in variants.items():
        path, sha = make_sdist(folder / key, files)
        server.sdists[key] = (f"{server.url}/{key}/{path.name}", sha)
    # A hostile archive: one member climbs out of the build folder.
    evil = tarfile.TarInfo("wf_tiny-1.0/../../escaped.txt")
    evil.size = 4
    path, sha = make_sdist(folder / "unsafe", tiny_files(), extra_members=[evil])
    server.sdists["unsafe"] = (f"{server.url}/unsafe/{path.name}", sha)
    yield server
    server.close()


def make_project(root: Path, cache: Path, *, recipes: list[str] = (), config: str = "") -> Path:
    return write_project(root, recipes=list(recipes), config=f'[paths]\ncache = "{cache}"\n' + config)


def tiny_recipe(root: Path, server, *, variant: str = "tiny", extra: str = "", name: str = "wf-tiny",
                imports: str = '["wf_tiny", "wf_tiny._speed"]') -> Path:
    url, sha = server.sdists[variant]
    return write_recipe(root, name, f'''\
        [package]
        name = "{name}"
        version = "1.0"

        [source]
        url = "{url}"
        sha256 = "{sha}"
        {extra}
        [test]
        imports = {imports}
        ''')


def one_build_error(root: Path, name: str, capsys) -> str:
    """`build NAME --target host` that fails: exit 1, one "error:" line, no traceback; the whole
    stderr with its whitespace collapsed (rich wraps long lines)."""
    from wheelfactory import cli
    from wheelfactory.cli import build as build_cli

    with pytest.raises(SystemExit) as exit_info:
        cli.run(build_cli.build_command, [name, "--target", "host"], root=root)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    return " ".join(err.split())
