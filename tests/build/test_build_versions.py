"""A recipe listing two versions, built on the host from the real PyPI sdists of
markupsafe (a small setuptools C extension): each version's wheel and record in
dist/, then ``--version`` building one of them (already built: skipped)."""

from __future__ import annotations

import pytest
from packaging.utils import parse_wheel_filename

from support.build import make_project, write_recipe
from wheelfactory.build import store
from wheelfactory.cli import build as build_cli

pytestmark = pytest.mark.slow

RECIPE = '''\
    [package]
    name = "markupsafe"
    version = "3.0.3"

    [source]
    sha256 = "722695808f4b6457b320fdc131280796bdceb04ab50fe1795cd540799ebe1698"

    [versions."3.0.2"]
    sha256 = "ee55d3edf80167e48ea11a923c7386f4669df67d7994554387f84e7d8b0a2bf0"

    [test]
    imports = ["markupsafe._speedups"]
    commands = ["python -c \\"import markupsafe; assert markupsafe.escape('<a>') == '&lt;a&gt;'\\""]
    '''


def test_every_listed_version_is_built_and_version_picks_one(tmp_path, shared_cache, capsys):
    root = make_project(tmp_path / "p", shared_cache)
    write_recipe(root, "markupsafe", RECIPE)
    assert build_cli.build_command(["markupsafe", "--target", "host", "--python", "3.11"], root=root) == 0
    records = {r["version"]: r for r in store.load_records(root / "dist")}
    assert sorted(records) == ["3.0.2", "3.0.3"]
    for version, rec in records.items():
        name, wheel_version, build, tags = parse_wheel_filename(rec["filename"])
        assert (str(wheel_version), build, {t.interpreter for t in tags}) == (version, (), {"cp311"})
        assert (root / "dist" / rec["filename"]).is_file()
    assert records["3.0.2"]["source"]["sha256"].startswith("ee55d3ed")
    assert records["3.0.2"]["build_key"] != records["3.0.3"]["build_key"]
    capsys.readouterr()
    before = sorted(p.name for p in (root / "dist").iterdir())
    assert build_cli.build_command(["markupsafe", "--target", "host", "--python", "3.11", "--version", "3.0.2"],
                                   root=root) == 0
    out = capsys.readouterr().err
    assert "already built" in out and "3.0.3" not in out.replace(records["3.0.2"]["filename"], "")
    assert sorted(p.name for p in (root / "dist").iterdir()) == before
