"""The shared real wheels (tests/support/wheels.py) describe themselves truthfully."""

from __future__ import annotations

import sys

from support.wheels import store_wheel, wheel_metadata
from wheelfactory.build import store


def test_records_describe_the_real_wheels(real_wheels, tmp_path):
    """The helper's records are what the index trusts: check them against the wheels."""
    dist = tmp_path / "dist"
    rec = store_wheel(dist, real_wheels["markupsafe_rebuilt"])
    assert rec["build_tag"] == 1 and rec["filename"].startswith("MarkupSafe-2.1.5-1-")
    assert rec["requires_python"] == ">=3.7"
    assert rec["metadata"].encode() == wheel_metadata(real_wheels["markupsafe_rebuilt"])
    py = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    assert any(t.startswith(f"{py}-{py}-") for t in rec["tags"])  # a compiled wheel
    jrec = store_wheel(dist, real_wheels["jinja2"])
    assert jrec["tags"] == ["py3-none-any"] and "MarkupSafe>=2.0" in jrec["metadata"]
    assert [r["filename"] for r in store.load_records(dist)] == sorted([rec["filename"], jrec["filename"]])
