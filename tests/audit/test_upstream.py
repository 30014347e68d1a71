"""Upstream tracking: `outdated` against a PEP 691 index (a local one on 127.0.0.1 and
real PyPI), recipe text edits that keep comments, and bumps that really build."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from support.build import git, make_project, make_sdist, tiny_files, tree_snapshot
from conftest import REPO, write_project, write_recipe
from wheelfactory._util import simple_api
from wheelfactory.audit import upstream
from wheelfactory.cli import upkeep
from wheelfactory.settings import edit
from wheelfactory.settings.factory import load_config
from wheelfactory.errors import RecipeError
from wheelfactory.settings.recipe import load_recipe, parse_recipe


@pytest.fixture(autouse=True)
def console_to_current_stderr(monkeypatch):
    """Rich's console writes to whatever sys.stderr is now (capsys), even if an earlier
    test left it pointing at an old stream."""
    from wheelfactory import ui

    monkeypatch.setattr(ui.console, "_file", None)

SHA = "a" * 64


class Index:
    """A PEP 691 JSON simple index on 127.0.0.1: /simple/NAME/ pages plus files under /files/."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.pages: dict[str, list[dict]] = {}
        index = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(folder), **kw)

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.startswith("/simple/"):
                    name = self.path.split("/")[2]
                    if name not in index.pages:
                        self.send_error(404)
                        return
                    body = json.dumps({"meta": {"api-version": "1.1"}, "name": name,
                                       "files": index.pages[name]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", simple_api.PEP691_JSON)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, name: str, filename: str, *, sha256: str = SHA, yanked=False) -> None:
        self.pages.setdefault(name, []).append(
            {"filename": filename, "url": f"{self.url}/files/{filename}", "hashes": {"sha256": sha256},
             "yanked": yanked})

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def index(tmp_path):
    idx = Index(tmp_path / "served")
    (tmp_path / "served" / "files").mkdir(parents=True)
    yield idx
    idx.close()


def riscv64_project(tmp_path, index):
    """A project targeting riscv64 (3.11, 3.12) whose upstream PyPI is the local ``index``."""
    return write_project(tmp_path / "p", host_target=False, config=f"""
        [target]
        arch = "riscv64"
        policy = "manylinux_2_39"
        pythons = ["3.11", "3.12"]

        [upstream]
        pypi-url = "{index.url}/simple"
    """)


def simple_recipe(name, version="1.0", extra=""):
    return f'[package]\nname = "{name}"\nversion = "{version}"\n{extra}\n[source]\nsha256 = "{SHA}"\n'


# --- outdated -----------------------------------------------------------------------

def test_outdated_reports_newer_releases_and_riscv64_wheels(tmp_path, index, capsys):
    root = riscv64_project(tmp_path, index)
    write_recipe(root, "wf-demo", simple_recipe("wf-demo"))
    for f in ["wf_demo-1.0.tar.gz", "wf_demo-1.1.tar.gz", "wf_demo-2.0rc1.tar.gz"]:
        index.add("wf-demo", f)
    index.add("wf-demo", "wf_demo-1.5.tar.gz", yanked="broken release")
    # Native riscv64 wheels for both our Pythons: a candidate to retire.
    write_recipe(root, "wf-native", simple_recipe("wf-native"))
    index.add("wf-native", "wf_native-1.0.tar.gz")
    index.add("wf-native", "wf_native-1.0-cp311-cp311-manylinux_2_31_riscv64.whl")
    index.add("wf-native", "wf_native-1.0-cp312-abi3-manylinux_2_27_riscv64.manylinux_2_28_riscv64.whl")
    # Only one Python covered; the other wheels do not fit the target (newer glibc, musl, x86_64).
    write_recipe(root, "wf-partial", simple_recipe("wf-partial"))
    index.add("wf-partial", "wf_partial-1.0-cp312-cp312-manylinux_2_39_riscv64.whl")
    index.add("wf-partial", "wf_partial-1.0-cp311-cp311-manylinux_2_41_riscv64.whl")
    index.add("wf-partial", "wf_partial-1.0-cp311-cp311-musllinux_1_2_riscv64.whl")
    index.add("wf-partial", "wf_partial-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")
    # A pure-Python fallback wheel is not a reason to retire (no C extension in it).
    write_recipe(root, "wf-pure", simple_recipe("wf-pure"))
    index.add("wf-pure", "wf_pure-1.0-py3-none-any.whl")
    write_recipe(root, "wf-gone", simple_recipe("wf-gone", extra='disabled = "moved"\n'))

    assert upkeep.outdated_command(root, json_out=True) == 0
    report = {s["name"]: s for s in json.loads(capsys.readouterr().out)}

    demo = report["wf-demo"]
    assert (demo["latest"], demo["newer"], demo["retire"]) == ("1.1", True, False)  # no rc, no yanked 1.5
    native = report["wf-native"]
    assert native["retire"] and native["newer"] is False
    assert native["wheels"] == {"3.11": "cp311-cp311-manylinux_2_31_riscv64", "3.12": "cp312-abi3-manylinux_2_28_riscv64"}
    partial = report["wf-partial"]
    assert partial["wheels"] == {"3.12": "cp312-cp312-manylinux_2_39_riscv64"} and not partial["retire"]
    pure = report["wf-pure"]
    assert pure["wheels"] == {} and pure["pure"] == "py3-none-any" and not pure["retire"]
    assert report["wf-gone"]["note"].startswith("not on ") and report["wf-gone"]["disabled"] == "moved"

    # The table form names the tags and counts.
    assert upkeep.outdated_command(root, ["wf-native", "wf-demo"]) == 0
    err = capsys.readouterr().err
    assert "retire?" in err and "cp311-cp311-manylinux_2_31_riscv64" in err
    assert "1 recipe(s) behind upstream; 1 candidate(s) to retire" in err

    # Pre-releases when asked for.
    (root / "factory.toml").write_text((root / "factory.toml").read_text() + "prereleases = true\n")
    assert upstream.check(load_config(root), load_recipe(root / "recipes", "wf-demo")).latest == "2.0rc1"


def test_outdated_against_real_pypi(tmp_path):
    root = write_project(tmp_path / "p")
    write_recipe(root, "propcache", """\
        [package]
        name = "propcache"
        version = "0.2.0"

        [source]
        sha256 = "df81779732feb9d01e5d513fad0122efb3d53bbc75f61b2a4f29a020bc985e70"
    """)
    (st,) = upstream.outdated(load_config(root))
    from packaging.version import Version

    assert st.newer and Version(st.latest) > Version("0.2.0")


def test_outdated_retire_marks_the_candidates_only(tmp_path, index, capsys):
    root = riscv64_project(tmp_path, index)
    native = write_recipe(root, "wf-native", "# a comment that stays\n" + simple_recipe("wf-native"))
    index.add("wf-native", "wf_native-1.0-cp311-cp311-manylinux_2_31_riscv64.whl")
    index.add("wf-native", "wf_native-1.0-cp312-abi3-manylinux_2_28_riscv64.whl")
    partial = write_recipe(root, "wf-partial", simple_recipe("wf-partial"))
    index.add("wf-partial", "wf_partial-1.0-cp312-cp312-manylinux_2_39_riscv64.whl")
    before_partial = partial.read_bytes()
    key = load_recipe(root / "recipes", "wf-native").fingerprint(root / "patches")

    assert upkeep.outdated_command(root) == 0  # proposes, writes nothing
    assert "`invoke outdated --retire` marks them" in capsys.readouterr().err
    assert "retired" not in native.read_text()
    assert upkeep.outdated_command(root, retire=True) == 0
    recipe = load_recipe(root / "recipes", "wf-native")
    assert recipe.package.retired == "1.0: cp311-cp311-manylinux_2_31_riscv64, cp312-abi3-manylinux_2_28_riscv64"
    assert native.read_text().startswith("# a comment that stays\n")
    assert recipe.fingerprint(root / "patches") == key  # its wheels stay valid
    assert partial.read_bytes() == before_partial
    with pytest.raises(upstream.UpstreamError, match="leave out --target"):
        upkeep.outdated_command(root, retire=True, target="host")


def test_the_shipped_retired_recipes_agree_with_real_pypi():
    """`invoke outdated` against real PyPI: every recipe marked retired has riscv64 wheels upstream
    for every target Python, and no unmarked recipe does (or the marker is due)."""
    config = load_config(REPO)
    statuses = upstream.outdated(config)
    retired = {s.name for s in statuses if s.retired}
    candidates = {s.name for s in statuses if s.retire}
    assert retired and retired <= candidates, (retired, candidates)
    assert candidates <= retired, f"run `invoke outdated --retire`: {sorted(candidates - retired)}"


def test_unknown_index_or_recipe_is_one_clear_error(tmp_path, index):
    root = write_project(tmp_path / "p", config=f'[upstream]\npypi-url = "{index.url}/nothing-here"\n')
    write_recipe(root, "wf-demo", simple_recipe("wf-demo"))
    with pytest.raises(RecipeError, match="no recipe 'wf-dmo'.*did you mean 'wf-demo'"):
        upstream.outdated(load_config(root), ["wf-dmo"])
    # A server that is not a PEP 691 index.
    (index.folder / "plain").mkdir()
    (index.folder / "plain" / "wf-demo").mkdir()
    (index.folder / "plain" / "wf-demo" / "index.html").write_text("<html></html>")
    (root / "factory.toml").write_text((root / "factory.toml").read_text().replace("nothing-here", "plain"))
    with pytest.raises(upstream.UpstreamError, match="does not serve the PEP 691 JSON simple API"):
        upstream.outdated(load_config(root))


# --- editing the recipe text ----------------------------------------------------------

RECIPE_TEXT = """\
# wf-demo: a comment that must survive
[package]
name = "wf-demo"   # trailing comment
version = '1.0'

[source]
# the archive
sha256 = "{sha}"

[build]
env = {{ DEMO_VERSION = "1.0", OTHER = "1.0.1" }}
"""


def test_set_string_keeps_everything_else():
    text = RECIPE_TEXT.format(sha=SHA)
    out = edit.set_string(text, "package", "version", "1.1")
    assert out == text.replace("version = '1.0'", "version = '1.1'")
    out = edit.set_string(out, "source", "sha256", "b" * 64)
    assert out.count("b" * 64) == 1 and "# the archive" in out and "# trailing comment" in out
    # A key that is not there goes after the table's last key; a missing table is appended.
    out2 = edit.set_string(out, "package", "disabled", "reason")
    assert 'version = \'1.1\'\ndisabled = "reason"\n\n[source]' in out2
    out3 = edit.set_string(out, "test", "imports", "x")
    assert out3.endswith('\n[test]\nimports = "x"\n')
    # Windows line endings stay as they are.
    crlf = text.replace("\n", "\r\n")
    assert edit.set_string(crlf, "package", "version", "2") == crlf.replace("version = '1.0'", "version = '2'")
    with pytest.raises(RecipeError, match="not a simple one-line string"):
        edit.set_string('[package]\nversion = """1.0"""\n', "package", "version", "2")


def test_plan_for_git_source_moves_rev_and_build_env(tmp_path):
    root = write_project(tmp_path / "p")
    write_recipe(root, "wf-demo", """\
        # built from git
        [package]
        name = "wf-demo"
        version = "2.15.0"

        [source]
        git = "https://example.invalid/wf-demo.git"
        rev = "v2.15.0"  # the release tag

        [build]
        env = { DEMO_BUILD_VERSION = "2.15.0", JOBS = "8" }
    """)
    recipe = load_recipe(root / "recipes", "wf-demo")
    plan = upstream.plan_bump(load_config(root), recipe, "2.16.0")
    text = plan.text.decode()
    assert 'rev = "v2.16.0"  # the release tag' in text and 'DEMO_BUILD_VERSION = "2.16.0", JOBS = "8"' in text
    assert text.startswith("# built from git\n")
    assert plan.changes == ["package.version: 2.15.0 -> 2.16.0", "source.rev: v2.15.0 -> v2.16.0",
                            "build.env.DEMO_BUILD_VERSION: 2.15.0 -> 2.16.0"]
    assert upstream.plan_bump(load_config(root), recipe, "2.15.0") is None  # already there


def test_plan_for_sdist_takes_sha256_from_the_install_index(tmp_path, index):
    root = write_project(tmp_path / "p", config=f'[indexes]\ninstall = ["{index.url}/simple"]\n')
    write_recipe(root, "wf-demo", RECIPE_TEXT.format(sha=SHA))
    index.add("wf-demo", "wf_demo-1.1.zip", sha256="c" * 64)
    index.add("wf-demo", "wf_demo-1.1.tar.gz", sha256="d" * 64)
    recipe = parse_recipe(root / "recipes" / "wf-demo" / "recipe.toml")
    plan = upstream.plan_bump(load_config(root), recipe, "1.1")
    new = plan.text.decode()
    assert new == RECIPE_TEXT.format(sha="d" * 64).replace("version = '1.0'", "version = '1.1'").replace(
        'DEMO_VERSION = "1.0"', 'DEMO_VERSION = "1.1"')
    with pytest.raises(upstream.UpstreamError, match="has no sdist of wf-demo 9.9"):
        upstream.plan_bump(load_config(root), recipe, "9.9")
    with pytest.raises(upstream.UpstreamError, match="not a valid version"):
        upstream.plan_bump(load_config(root), recipe, "one.two")


# --- bumps that build -------------------------------------------------------------------

@pytest.mark.slow
def test_bumps_keep_only_what_builds_and_respect_the_cap(tmp_path, index, shared_cache, capsys,
                                                          monkeypatch):
    for var in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(var, "wheelfactory test")
    for var in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(var, "test@example.invalid")
    files = index.folder / "files"
    shas = {}
    for version, extra_c in [("1.0", ""), ("1.1", ""), ("1.2", "this is not C;")]:
        for name in ("wf-good", "wf-later"):
            path, shas[name, version] = make_sdist(files, tiny_files(name, version, extra_c=extra_c),
                                                   name=name, version=version)
            index.add(name, path.name, sha256=shas[name, version])
    root = make_project(tmp_path / "p", shared_cache, config=f"""
        [upstream]
        pypi-url = "{index.url}/simple"
        max-bumps = 1
    """)
    for name in ("wf-good", "wf-later"):
        module = name.replace("-", "_")
        sha = shas[name, "1.0"]
        write_recipe(root, name, f"""\
            # {name}: served from the test's index
            [package]
            name = "{name}"
            version = "1.0"   # bumped by `invoke bump`

            [source]
            url = "{index.url}/files/{module}-1.0.tar.gz"
            sha256 = "{sha}"

            [test]
            imports = ["{module}._speed"]
        """)
    # The newest release (1.2) does not compile: the bump fails and nothing changes.
    good = root / "recipes" / "wf-good" / "recipe.toml"
    before_text, before_dist = good.read_bytes(), tree_snapshot(root / "dist")
    assert upkeep.bump_command(root, ["wf-good"], target="host") == 1
    err = capsys.readouterr().err
    assert good.read_bytes() == before_text
    assert tree_snapshot(root / "dist") == before_dist
    assert "failed" in err and "error" in err and "restored" in err

    # An explicit good version is kept: version, url and sha256 change, comments stay;
    # with commit, the recipe (and only it) is committed.
    git("init", "-q", "-b", "main", cwd=root)
    git("add", "recipes", "factory.toml", cwd=root)
    git("commit", "-q", "-m", "recipes", cwd=root)
    assert upkeep.bump_command(root, ["wf-good"], version="1.1", target="host", json_out=True,
                                 commit=True) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["status"] == "bumped" and (result["old"], result["new"]) == ("1.0", "1.1")
    text = good.read_text()
    assert 'version = "1.1"   # bumped by `invoke bump`' in text and text.startswith("# wf-good: served")
    assert "wf_good-1.1.tar.gz" in text
    assert parse_recipe(good).version == "1.1"
    assert [p.name for p in (root / "dist").glob("wf_good-1.1-*.whl")]
    assert git("log", "-1", "--format=%s", cwd=root) == "wf-good: bump 1.0 -> 1.1"
    assert git("show", "--name-only", "--format=", "HEAD", cwd=root) == "recipes/wf-good/recipe.toml"
    assert git("status", "--porcelain", "--", "recipes", cwd=root) == ""

    # Every outdated recipe, at most max-bumps = 1 attempts: wf-good's (failing) 1.2
    # is tried, wf-later is not.
    later = root / "recipes" / "wf-later" / "recipe.toml"
    later_text = later.read_bytes()
    assert upkeep.bump_command(root, (), target="host", json_out=True) == 1
    results = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert results["wf-good"]["status"] == "failed" and results["wf-good"]["new"] == "1.2"
    assert results["wf-later"]["status"] == "capped" and "max-bumps = 1" in results["wf-later"]["message"]
    assert later.read_bytes() == later_text and parse_recipe(good).version == "1.1"
