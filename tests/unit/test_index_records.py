"""index/records.py and the Report's words: a record -> a checked page entry (pure)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from wheelfactory.index import IndexProblem, Report, entry_from_record, metadata_bytes
from wheelfactory.index.records import project_of

META = "Metadata-Version: 2.1\nName: zope.interface\nVersion: 7.0\n"


def record(**changes) -> dict:
    rec = {
        "name": "zope.interface", "version": "7.0", "filename": "zope.interface-7.0-2-cp312-cp312-linux_riscv64.whl",
        "build_tag": 2, "sha256": "a" * 64, "size": 10, "tags": ["cp312-cp312-linux_riscv64"], "metadata": META,
        "metadata_sha256": hashlib.sha256(META.encode()).hexdigest(), "built_at": "2025-01-02T03:04:05Z",
        "recipe": "zope-interface", "policy": "best", "achieved_policy": "manylinux_2_39", "yanked": None,
    }
    rec.update(changes)
    return rec


def test_an_entry_holds_the_normalized_name_and_build_tag():
    e = entry_from_record(record(), "dist/x.json")
    assert (e["name"], e["build_tag"], e["policy"], e["record_yanked"], e["log"]) == (
        "zope-interface", [2, ""], "manylinux_2_39", None, None)
    assert project_of(e["filename"]) == "zope-interface"


@pytest.mark.parametrize("value, want", [
    ("2025-01-05T09:30:00+02:00", "2025-01-05T07:30:00Z"),
    ("2025-02-10T12:00:00.123456+00:00", "2025-02-10T12:00:00.123456Z"),
    ("2025-02-10T12:00:00", "2025-02-10T12:00:00Z"),
])
def test_build_times_become_pep_700_utc(value, want):
    assert entry_from_record(record(built_at=value), "r")["built_at"] == want


@pytest.mark.parametrize("changes, message", [
    ({"name": "zope-other"}, "'name' 'zope-other' does not match the wheel file name"),
    ({"version": "7.1"}, "'version' '7.1' does not match"),
    ({"build_tag": 3}, "'build_tag' 3 does not match"),
    ({"sha256": "A" * 64}, "'sha256' must be 64 lowercase hex digits"),
    ({"size": -1}, "'size' must be a byte count"),
    ({"filename": "x y.whl"}, "'filename' 'x y.whl' is not a valid wheel file name"),
    ({"built_at": "yesterday"}, "'built_at' 'yesterday' is not an ISO 8601 time"),
])
def test_a_record_that_disagrees_with_its_file_name_is_named(changes, message):
    with pytest.raises(IndexProblem, match=r"^dist/x.json: damaged dist record \(" + message.replace("(", r"\(")):
        entry_from_record(record(**changes), "dist/x.json")


def test_a_record_without_a_field_names_it():
    rec = record()
    del rec["sha256"], rec["tags"]
    # The fix names both files: a build meets the damaged record before it could rebuild.
    with pytest.raises(IndexProblem, match=r"^dist/z-1-py3-none-any.whl.json: damaged dist record \(record lacks "
                       r"sha256, tags\); fix: delete it and its wheel \(`rm dist/z-1-py3-none-any.whl.json "
                       r"dist/z-1-py3-none-any.whl`\), then rebuild \(`nox -s build-z`\)"):
        entry_from_record(rec, "dist/z-1-py3-none-any.whl.json")


def test_metadata_bytes_are_checked_against_their_hash():
    assert metadata_bytes(record(), "r") == META.encode()
    with pytest.raises(IndexProblem, match="'metadata' does not match 'metadata_sha256'"):
        metadata_bytes(record(metadata=META + "x"), "r")
    with pytest.raises(IndexProblem, match="lacks the core metadata text"):
        metadata_bytes(record(metadata=""), "r")


def test_the_report_in_words():
    r = Report(index=Path("/i"), mode="co-hosted", added=["a.whl"], removed=["b.whl"], duplicates=[["c.whl", "d.whl"]],
               replaced=[{"filename": "e.whl", "old_sha256": "1" * 64, "new_sha256": "2" * 64}], projects=3, wheels=4)
    assert r.lines() == [
        ("info", "  [green]added[/green]     a.whl"),
        ("warn", "e.whl: same file name, different content (sha256 111111111111… -> 222222222222…); "
                 "the index now serves the newer build"),
        ("info", "  [red]removed[/red]   b.whl"),
        ("warn", "same content under 2 names: c.whl, d.whl"),
        ("info", "index updated: /i — 3 projects, 4 wheels; 1 added, 1 replaced, 1 removed; "
                 "0 project pages written in 0.00s (links: co-hosted)"),
    ]
