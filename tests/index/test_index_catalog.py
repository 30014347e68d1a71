"""The index's front page shows `invoke prove`'s catalog status (docs/catalog-status.json):
written when the status changes, byte-identical when nothing did, and a damaged status
file is one message with the index left as it was."""

from __future__ import annotations

import json

import pytest

from test_index_identical import assert_identical, make, manifest
from wheelfactory.index import IndexProblem, build_index
from wheelfactory.settings.factory import load_config

ROW = {"recipe": "numpy", "version": "2.4.6", "backend": "meson-python", "level": "host", "reached": False,
       "runner": "native", "wheel": "", "size": 0, "seconds": 27.2, "date": "2026-11-30",
       "reason": "building the wheel for Python 3.11 failed"}


def test_the_front_page_follows_the_catalog_status(tmp_path):
    root = make(tmp_path, "cohosted")
    config = load_config(root)
    build_index(config, quiet=True)
    assert_identical(root / "index", "cohosted")  # no status file: the page is what it always was
    status = root / "docs" / "catalog-status.json"
    status.parent.mkdir()
    status.write_text(json.dumps([ROW]))
    build_index(config, quiet=True)
    page = (root / "index" / "index.html").read_text()
    assert "host: 0 of 1 reached." in page and "<td>building the wheel for Python 3.11 failed</td>" in page
    before = manifest(root / "index")
    mtimes = {p: p.stat().st_mtime_ns for p in (root / "index").rglob("*") if p.is_file()}
    report = build_index(config, quiet=True)
    assert not report.changed and manifest(root / "index") == before
    assert {p: p.stat().st_mtime_ns for p in (root / "index").rglob("*") if p.is_file()} == mtimes

    status.write_text(json.dumps([ROW | {"reached": True, "reason": ""}]))
    build_index(config, quiet=True)
    after = manifest(root / "index")
    assert {rel for rel in after if after[rel] != before.get(rel)} == {"index.html", "index-digest.json"}


@pytest.mark.parametrize("text", ["{not json", '{"recipe": "numpy"}', '[{"recipe": "numpy"}]'])
def test_a_damaged_status_file_is_one_message_and_the_index_is_unchanged(tmp_path, text):
    root = make(tmp_path, "cohosted")
    config = load_config(root)
    build_index(config, quiet=True)
    before = manifest(root / "index")
    (root / "docs").mkdir()
    (root / "docs" / "catalog-status.json").write_text(text)
    with pytest.raises(IndexProblem, match=r"docs/catalog-status\.json: not the list of rows `invoke prove` "
                                           r"writes .*; run `invoke prove` again"):
        build_index(config, quiet=True)
    assert manifest(root / "index") == before
