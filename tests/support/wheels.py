"""Real wheels and their dist/ records, shared by the index, publish and check-index tests.

The wheels are real PyPI packages fetched with ``pip wheel --no-deps``: jinja2
(pure, depends on MarkupSafe) and markupsafe (compiled). A "rebuild" of
markupsafe carries build tag 1 (``wheel tags --build 1``), and a "stale twin"
has the same file name as the original but different bytes. Records are filled
from each wheel itself (zipfile + packaging's metadata parser), the way the
build stage fills them, and stored with ``store.store_wheel``.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.metadata import Metadata
from packaging.utils import canonicalize_name, parse_wheel_filename

from wheelfactory._util.fs import sha256_file, utcnow
from wheelfactory.build import store

JINJA2 = "jinja2==3.1.4"
MARKUPSAFE = "markupsafe==2.1.5"


def wheel_metadata(wheel: Path) -> bytes:
    """The bytes of the wheel's .dist-info/METADATA."""
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        return z.read(name)


def record_from_wheel(wheel: Path, **overrides) -> dict:
    """A dist record for ``wheel`` with every field the store docstring lists."""
    meta_bytes = wheel_metadata(wheel)
    text = meta_bytes.decode("utf-8")
    meta = Metadata.from_email(meta_bytes, validate=False)
    name, version, build, tags = parse_wheel_filename(wheel.name)
    # The raw header keeps the exact spelling of Requires-Python (the index copies it verbatim).
    raw = email.parser.Parser().parsestr(text, headersonly=True)
    record = {
        "name": canonicalize_name(meta.name),
        "version": str(meta.version),
        "filename": wheel.name,
        "build_tag": build[0] if build else None,
        "sha256": sha256_file(wheel),
        "size": wheel.stat().st_size,
        "tags": sorted(str(t) for t in tags),
        "requires_python": raw.get("Requires-Python"),
        "metadata": text,
        "metadata_sha256": hashlib.sha256(meta_bytes).hexdigest(),
        "build_key": hashlib.sha256(wheel.name.encode()).hexdigest(),
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "target": platform.machine(),
        "policy": "best",
        "achieved_policy": "manylinux_2_17",
        "recipe": canonicalize_name(meta.name),
        "source": {"kind": "sdist"},
        "debian_runtime": [],
        "auditwheel": "",
        "host": {"runner": "native", "hostname": "test"},
        "duration": 1.0,
        "stages": {},
        "status": "ok",
        "log": None,
        "built_at": utcnow(),
        "yanked": None,
    }
    assert name == record["name"] and version == meta.version
    record.update(overrides)
    return record


def store_wheel(dist: Path, wheel: Path, **overrides) -> dict:
    record = record_from_wheel(wheel, **overrides)
    store.store_wheel(dist, wheel, record)
    return json.loads(store.record_path(dist, wheel.name).read_text())


def _pip_wheel(req: str, dest: Path) -> Path:
    before = set(dest.glob("*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--prefer-binary", "-w", str(dest), req],
        check=True,
    )
    (new,) = set(dest.glob("*.whl")) - before
    return new


_MADE: dict[str, dict[str, Path]] = {}  # once per session, whichever test module asks first


@pytest.fixture(scope="session")
def real_wheels(tmp_path_factory) -> dict[str, Path]:
    """{'jinja2', 'markupsafe', 'markupsafe_rebuilt', 'markupsafe_stale'}: real wheel files."""
    if "wheels" not in _MADE:
        _MADE["wheels"] = _make_wheels(tmp_path_factory.mktemp("wheels"))
    return _MADE["wheels"]


def _make_wheels(d: Path) -> dict[str, Path]:
    jinja2 = _pip_wheel(JINJA2, d)
    markupsafe = _pip_wheel(MARKUPSAFE, d)
    # The rebuild: same version, build tag 1 (a new file name, new bytes).
    rebuilt_dir = d / "rebuilt"
    rebuilt_dir.mkdir()
    shutil.copy(markupsafe, rebuilt_dir)
    subprocess.run([sys.executable, "-m", "wheel", "tags", "--remove", "--build", "1",
                    str(rebuilt_dir / markupsafe.name)], check=True, capture_output=True)
    (rebuilt,) = rebuilt_dir.glob("*.whl")
    # The stale twin: the same file name as the original, different bytes (an extra file inside).
    stale_dir = d / "stale"
    unpacked = d / "unpacked"
    subprocess.run([sys.executable, "-m", "wheel", "unpack", "-d", str(unpacked), str(markupsafe)],
                   check=True, capture_output=True)
    (tree,) = unpacked.iterdir()
    (tree / "markupsafe" / "REBUILT.txt").write_text("built with different flags\n")
    stale_dir.mkdir()
    subprocess.run([sys.executable, "-m", "wheel", "pack", "-d", str(stale_dir), str(tree)],
                   check=True, capture_output=True)
    (packed,) = stale_dir.glob("*.whl")
    stale = packed.rename(stale_dir / markupsafe.name)  # `wheel pack` sorts the compressed tags
    assert stale.name == markupsafe.name and sha256_file(stale) != sha256_file(markupsafe)
    return {"jinja2": jinja2, "markupsafe": markupsafe, "markupsafe_rebuilt": rebuilt, "markupsafe_stale": stale}
