"""The inputs the fixtures were made from: shared by make_fixtures.py and
tests/unit/test_build_record.py. Changing any of them means making the fixtures
again (see make_fixtures.py), which is a deliberate change of build keys."""

from __future__ import annotations

import zipfile
from pathlib import Path

# Inputs that do not come from the recipe: fixed, so the keys are reproducible.
GIT_COMMIT = "0123456789abcdef0123456789abcdef01234567"
DEPENDENCIES = [[], ["f" * 64, "0" * 64, "a" * 64]]  # unsorted on purpose: the key sorts them
PYTHONS = ["3.11", "3.12", "3.13"]
TARGETS = [("riscv64", "manylinux_2_39"), ("x86_64", "best")]
PATCH = {"cffi/0001-fixture.patch": "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n",
         "cffi/2.1.1/0002-versioned.patch": "--- a/y\n+++ b/y\n@@ -1 +1 @@\n-c\n+d\n"}

WHEEL = "wf_fixture-1.0-2-cp312-cp312-manylinux_2_17_riscv64.manylinux2014_riscv64.whl"
METADATA = ("Metadata-Version: 2.1\nName: wf-fixture\nVersion: 1.0\nSummary: a fixture – not on PyPI\n"
            "Requires-Python: >=3.9\nRequires-Dist: numpy>=2\n\nA description with ünïcode.\n")
RECORD_RECIPE = """\
[package]
name = "wf-fixture"
version = "1.0"

[source]
sha256 = "1111111111111111111111111111111111111111111111111111111111111111"

[runtime]
debian = ["libexample1", "libfoo2"]
"""
RECORD_ARGS = dict(
    build_key="k" * 64, python="3.12", policy="manylinux_2_39", achieved="manylinux_2_17",
    source={"kind": "sdist", "url": "https://example.invalid/wf_fixture-1.0.tar.gz", "sha256": "1" * 64,
            "git": None, "rev": None, "commit": None, "subdirectory": None},
    patches=["wf-fixture/0001-x.patch"], auditwheel="wf_fixture-1.0 is consistent with manylinux_2_17_riscv64",
    host={"runner": "native", "hostname": "h", "arch": "riscv64", "runner_id": "native-riscv64",
          "tools": {"auditwheel": "6.4.2", "build": "1.3.0"}},
    duration=12.345678, stages={"fetch": 0.5, "build": 10.25, "repair": 1.0, "verify": 0.5},
    log="logs/wf-fixture/20250101T000000000000Z.log", notes=["a note"],
    compiler_cache={"tool": "ccache", "calls": 3, "hits": 2, "direct_hits": 2, "preprocessed_hits": 0,
                    "misses": 1, "uncacheable": 0, "hit_rate": 0.6667},
    built_at="2025-01-01T00:00:00Z",
)


def write_wheel(path: Path) -> None:
    """A tiny wheel, stored uncompressed with fixed times: the same bytes on every machine."""
    files = {"wf_fixture/__init__.py": "",
             "wf_fixture-1.0.dist-info/METADATA": METADATA,
             "wf_fixture-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: false\n"
                                               "Build: 2\nTag: cp312-cp312-manylinux_2_17_riscv64\n"
                                               "Tag: cp312-cp312-manylinux2014_riscv64\n",
             "wf_fixture-1.0.dist-info/RECORD": ""}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, text in files.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, text.encode("utf-8"))
