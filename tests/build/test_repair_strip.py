"""repair.strip: ``auditwheel repair --strip`` takes the symbols and debug info out of the
wheel's shared objects (grpcio's setup.py compiles with -g: 194 MB unstripped).

Real builds of a tiny C extension on the native runner, compiled with -g (CFLAGS), one recipe
with repair.strip and one without; the .so sections are read with pyelftools (auditwheel's own
ELF reader)."""

from __future__ import annotations

import io
import zipfile

from elftools.elf.elffile import ELFFile
from support.build import make_project, make_sdist, tiny_files

from conftest import write_recipe
from wheelfactory.build import store
from wheelfactory.cli import build as build_cli


def _sections(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        (so,) = [n for n in z.namelist() if n.endswith(".so")]
        return {s.name for s in ELFFile(io.BytesIO(z.read(so))).iter_sections()}


def test_strip_takes_debug_info_and_symbols_out_of_the_extension(tmp_path, shared_cache, sdist_server):
    root = make_project(tmp_path / "p", shared_cache)
    for name, strip in (("wf-keep", "false"), ("wf-strip", "true")):
        sdist, sha = make_sdist(sdist_server.folder / name, tiny_files(name=name), name=name)
        write_recipe(root, name, f'''\
            [package]
            name = "{name}"
            version = "1.0"

            [source]
            url = "{sdist_server.url}/{name}/{sdist.name}"
            sha256 = "{sha}"

            [build]
            env = {{ CFLAGS = "-g" }}

            [repair]
            strip = {strip}

            [test]
            imports = ["{name.replace("-", "_")}._speed"]
            ''')
    assert build_cli.build_command(["wf-keep", "wf-strip", "--target", "host", "--python", "3.11"], root=root) == 0
    wheels = {r["name"]: root / "dist" / r["filename"] for r in store.load_records(root / "dist")}
    kept, stripped = _sections(wheels["wf-keep"]), _sections(wheels["wf-strip"])
    assert {".debug_info", ".symtab"} <= kept, kept
    assert not {".debug_info", ".symtab"} & stripped, stripped
    assert wheels["wf-strip"].stat().st_size < wheels["wf-keep"].stat().st_size
