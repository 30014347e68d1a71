"""The clean-system import check (runners.debian.DIST_IMPORT_CHECK) on a real installed layout:
a plain shared library shipped inside a package (llama-cpp-python's llama_cpp/lib/libggml.so)
is not a module and is skipped; a library that cannot load is still reported with its soname."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

from wheelfactory.runners.debian import DIST_IMPORT_CHECK, import_results, missing_library, stdlib_gaps


def _gcc(args: list[str], cwd: Path) -> None:
    subprocess.run(["gcc", "-shared", "-fPIC", *args], cwd=cwd, check=True)


def _check(tmp_path: Path, site: Path, dist: str, files: list[str]) -> str:
    """Install ``files`` (under ``site``) as the distribution ``dist`` 1.0 and run the check on it."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))
    return subprocess.run([sys.executable, "-c", DIST_IMPORT_CHECK, dist], cwd=tmp_path, text=True,
                          capture_output=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}).stdout


def test_a_plain_shared_library_is_skipped_and_a_missing_soname_is_named(tmp_path):
    site = tmp_path / "site"
    lib = site / "demo_pkg" / "lib"
    lib.mkdir(parents=True)
    (site / "demo_pkg" / "__init__.py").write_text("")
    (tmp_path / "dep.c").write_text("int dep(void) { return 1; }\n")
    (tmp_path / "ggml.c").write_text("int ggml(void) { return 2; }\n")
    (tmp_path / "user.c").write_text("int dep(void); int user(void) { return dep(); }\n")
    _gcc(["-o", str(lib / "libggml.so"), "ggml.c"], tmp_path)  # no PyInit_: not a module
    _gcc(["-o", str(tmp_path / "libdemodep.so"), "dep.c"], tmp_path)
    _gcc(["-o", str(lib / "libuser.so"), "user.c", f"-L{tmp_path}", "-ldemodep"], tmp_path)  # libdemodep.so not shipped
    out = _check(tmp_path, site, "demo-pkg", ["demo_pkg/__init__.py", "demo_pkg/lib/libggml.so",
                                              "demo_pkg/lib/libuser.so"])
    results = import_results(out)
    assert results is not None, out
    assert results["demo_pkg"] is None
    assert "demo_pkg.lib.libggml" not in results, json.dumps(results)
    assert missing_library(results["demo_pkg.lib.libuser"]) == "libdemodep.so"


def test_an_extension_needing_a_stdlib_module_this_python_lacks_is_a_gap_not_a_failure(tmp_path):
    """PIL._imagingtk imports tkinter, which Debian ships apart (python3-tk): on the clean system it
    is left out and named, not a broken wheel. Here the missing stdlib module is winreg (Windows only)."""
    site = tmp_path / "site"
    (site / "tk_pkg").mkdir(parents=True)
    (site / "tk_pkg" / "__init__.py").write_text("")
    (tmp_path / "tk.c").write_text(
        "#include <Python.h>\n"
        "static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, \"_tk\", NULL, -1, NULL};\n"
        "PyMODINIT_FUNC PyInit__tk(void) {\n"
        "    PyObject *winreg = PyImport_ImportModule(\"winreg\");\n"
        "    if (winreg == NULL) return NULL;\n"
        "    Py_DECREF(winreg);\n"
        "    return PyModule_Create(&mod);\n"
        "}\n")
    (tmp_path / "ok.c").write_text(
        "#include <Python.h>\n"
        "static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, \"_ok\", NULL, -1, NULL};\n"
        "PyMODINIT_FUNC PyInit__ok(void) { return PyModule_Create(&mod); }\n")
    include = f"-I{sysconfig.get_paths()['include']}"
    _gcc(["-o", str(site / "tk_pkg" / "_tk.so"), include, "tk.c"], tmp_path)
    _gcc(["-o", str(site / "tk_pkg" / "_ok.so"), include, "ok.c"], tmp_path)
    out = _check(tmp_path, site, "tk-pkg", ["tk_pkg/__init__.py", "tk_pkg/_tk.so", "tk_pkg/_ok.so"])
    assert import_results(out) == {"tk_pkg": None, "tk_pkg._ok": None}, out
    assert stdlib_gaps(out) == {"tk_pkg._tk": "winreg"}


def test_an_extension_its_package_loaded_under_another_name_counts_as_imported(tmp_path):
    """opencv's cv2/__init__.py loads cv2/cv2*.so as the module cv2, keeps it as cv2._native and puts
    itself back; importing the file again as cv2.cv2 fails ("Bindings generation error"). The check
    sees the file already loaded in the process and counts it."""
    site = tmp_path / "site"
    (site / "cvpkg").mkdir(parents=True)
    (site / "cvpkg" / "__init__.py").write_text(
        "import importlib, os, sys\n"
        "sys.path.insert(0, os.path.dirname(__file__))\n"
        "package = sys.modules.pop('cvpkg')\n"
        "native = importlib.import_module('cvpkg')\n"
        "sys.path.pop(0)\n"
        "sys.modules['cvpkg'] = package\n"
        "_native = native\n")
    (tmp_path / "cv.c").write_text(
        "#include <Python.h>\n"
        "static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, \"cvpkg\", NULL, -1, NULL};\n"
        "static int done;\n"
        "PyMODINIT_FUNC PyInit_cvpkg(void) {\n"
        "    if (done++) { PyErr_SetString(PyExc_ImportError, \"Bindings generation error\"); return NULL; }\n"
        "    return PyModule_Create(&mod);\n"
        "}\n")
    _gcc(["-o", str(site / "cvpkg" / "cvpkg.so"), f"-I{sysconfig.get_paths()['include']}", "cv.c"], tmp_path)
    out = _check(tmp_path, site, "cvpkg", ["cvpkg/__init__.py", "cvpkg/cvpkg.so"])
    assert import_results(out) == {"cvpkg": None, "cvpkg.cvpkg": None}, out
