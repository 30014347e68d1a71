"""A recipe listing two versions, built on the host from the real PyPI sdists of
markupsafe (a small setuptools C extension): each version's wheel and record in
dist/, then ``--version`` building one of them (already built: skipped)."""

from __future__ import annotations

import pytest
from packaging.utils import parse_wheel_filename

from support.build import make_project, make_sdist, tiny_files, tree_snapshot, write_recipe
from wheelfactory import cli
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


def _wf_base_2_and_1(root, sdist_server, folder: str, requires_python: dict[str, str]) -> None:
    """recipes/wf-base: package.version 2.0 and [versions] 1.0, tiny C extensions served from
    ``sdist_server`` (``requires_python``: version -> its Requires-Python)."""
    urls = {}
    for version in ("2.0", "1.0"):
        files = tiny_files(name="wf-base", version=version)
        files["pyproject.toml"] = files["pyproject.toml"].replace(
            'requires-python = ">=3.8"', f'requires-python = "{requires_python.get(version, ">=3.8")}"')
        path, sha = make_sdist(sdist_server.folder / folder / version, files, name="wf-base", version=version)
        urls[version] = (f"{sdist_server.url}/{folder}/{version}/{path.name}", sha)
    write_recipe(root, "wf-base", f'''\
        [package]
        name = "wf-base"
        version = "2.0"

        [source]
        url = "{urls["2.0"][0]}"
        sha256 = "{urls["2.0"][1]}"

        [versions."1.0"]
        url = "{urls["1.0"][0]}"
        sha256 = "{urls["1.0"][1]}"

        [test]
        imports = ["wf_base._speed"]
        ''')


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


def test_a_dependent_gets_the_other_versions_wheel_where_package_version_has_none(tmp_path, shared_cache,
                                                                                    sdist_server, capsys):
    """As numpy 2.5.5 (Python >= 3.12) and 2.4.6 for torch on a 3.11 host: the dependency's
    package.version cannot build for 3.11, its listed older version can; the dependent builds and
    verifies with that one (its runtime.depends) instead of being skipped as "needs wf-base,
    which failed"."""
    root = make_project(tmp_path / "p", shared_cache)
    _wf_base_2_and_1(root, sdist_server, "versions", {"2.0": ">=3.99"})
    user_url, user_sha = sdist_server.sdists["tiny"]
    write_recipe(root, "wf-tiny", f'''\
        [package]
        name = "wf-tiny"
        version = "1.0"

        [source]
        url = "{user_url}"
        sha256 = "{user_sha}"

        [runtime]
        depends = ["wf-base"]

        [test]
        imports = ["wf_tiny._speed", "wf_base._speed"]
        requires = ["wf-base"]  # offered from the dependency wheels only: PyPI has no wf-base
        commands = ["python -c \\"import importlib.metadata as m; assert m.version('wf-base') == '1.0'\\""]
        ''')
    capsys.readouterr()
    # Both named, as build-all and `invoke prove` name them: every listed version of wf-base builds.
    assert build_cli.build_command(["wf-base", "wf-tiny", "--target", "host", "--python", "3.11"], root=root) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "wf-base 2.0 requires Python >=3.99" in err, err
    assert "needs wf-base, which failed" not in err, err
    records = {(r["name"], r["version"]) for r in store.load_records(root / "dist")}
    assert records == {("wf-base", "1.0"), ("wf-tiny", "1.0")}, records


def test_a_depends_specifier_picks_the_older_version_and_brings_it_along(tmp_path, shared_cache, sdist_server,
                                                                          capsys):
    """As numba's "numpy<2.5" beside numpy 2.5.5 and 2.4.6: both versions build for the Python,
    and the dependent, named alone, gets package.version's wheel without a specifier (its check
    fails) and the older one with it, which the build brings along."""
    root = make_project(tmp_path / "p", shared_cache)
    _wf_base_2_and_1(root, sdist_server, "specifier", {})
    user_url, user_sha = sdist_server.sdists["tiny"]
    dependent = f'''\
        [package]
        name = "wf-tiny"
        version = "1.0"

        [source]
        url = "{user_url}"
        sha256 = "{user_sha}"

        [build]
        depends = [DEPENDS]

        [runtime]
        depends = [DEPENDS, "wf-missing; platform_machine == 'no-such-arch'"]

        [test]
        imports = ["wf_tiny._speed", "wf_base._speed"]
        requires = ["wf-base"]  # offered from the dependency wheels only: PyPI has no wf-base
        commands = ["python -c \\"import importlib.metadata as m; assert m.version('wf-base') == '1.0'\\""]
        '''
    build = ["wf-tiny", "--target", "host", "--python", "3.11"]
    write_recipe(root, "wf-tiny", dependent.replace("DEPENDS", '"wf-base"'))
    capsys.readouterr()
    assert build_cli.build_command(build, root=root) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "AssertionError" in err, err  # it got wf-base 2.0
    assert {(r["name"], r["version"]) for r in store.load_records(root / "dist")} == {("wf-base", "2.0")}

    write_recipe(root, "wf-tiny", dependent.replace("DEPENDS", '"wf-base<2"'))
    assert build_cli.build_command(build, root=root) == 0, capsys.readouterr().err
    records = {(r["name"], r["version"]): r for r in store.load_records(root / "dist")}
    assert set(records) == {("wf-base", "2.0"), ("wf-base", "1.0"), ("wf-tiny", "1.0")}, set(records)
    assert "wf-missing" not in capsys.readouterr().err  # its marker is false for this arch: never looked for


def test_a_depends_specifier_no_listed_version_matches_is_refused_before_anything_runs(tmp_path, shared_cache,
                                                                                       capsys):
    root = make_project(tmp_path / "p", shared_cache)
    write_recipe(root, "markupsafe", RECIPE)
    write_recipe(root, "wf-user", '''\
        [package]
        name = "wf-user"
        version = "1.0"

        [source]
        sha256 = "722695808f4b6457b320fdc131280796bdceb04ab50fe1795cd540799ebe1698"

        [build]
        depends = ["markupsafe<3"]
        ''')
    (root / "dist").mkdir(exist_ok=True)
    (root / "dist" / "keep.txt").write_text("untouched")
    before = tree_snapshot(root / "dist")
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        cli.run(build_cli.build_command, ["wf-user", "--target", "host"], root=root)
    err = " ".join(capsys.readouterr().err.split())
    assert e.value.code != 0
    assert "wf-user/recipe.toml: depends on 'markupsafe<3', and recipes/markupsafe builds 3.0.3, 3.0.2" in err, err
    assert "add a [versions] entry to" in err, err
    assert tree_snapshot(root / "dist") == before
