"""invoke index: pages, attributes, yanks, incremental and atomic updates, stale detection.

The pages are parsed with pypi-simple, an independent client library, and every
attribute is compared with the records (which were filled from real wheels).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from pypi_simple import IndexPage, ProjectPage, RepositoryPage
from support.wheels import store_wheel, wheel_metadata

from conftest import REPO, write_project, write_recipe
from wheelfactory._util.fs import sha256_file
from wheelfactory.build import store
from wheelfactory.index.check import check_index
from wheelfactory.settings.factory import load_config
from wheelfactory.index import DIGEST, STATE, IndexProblem, build_index, load_state

HTML = "text/html"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
BASE = "https://files.example.org/wheels"


def snapshot(*dirs: Path) -> dict[str, bytes]:
    """Every file under ``dirs`` with its bytes (to prove nothing changed)."""
    out = {}
    for d in dirs:
        for p in sorted(d.rglob("*")) if d.exists() else []:
            if p.is_file():
                out[str(p)] = p.read_bytes()
    return out


def make(tmp_path, real_wheels, config="", *, rebuilt=True, log=True) -> tuple:
    root = write_project(tmp_path / "p", config=config)
    dist = root / "dist"
    (root / "logs" / "markupsafe").mkdir(parents=True)
    (root / "logs" / "markupsafe" / "build.log").write_text("gcc -O2 … ok\n")
    store_wheel(dist, real_wheels["jinja2"])
    store_wheel(dist, real_wheels["markupsafe"], debian_runtime=["libopenblas0", "libnuma1"],
                log="logs/markupsafe/build.log" if log else None, built_at="2025-01-02T03:04:05Z")
    if rebuilt:
        store_wheel(dist, real_wheels["markupsafe_rebuilt"], debian_runtime=["libopenblas0"],
                    log="logs/markupsafe/build.log" if log else None, built_at="2025-02-03T04:05:06Z")
    return root, load_config(root)


def records(root: Path) -> dict[str, dict]:
    return {r["filename"]: r for r in store.load_records(root / "dist")}


@pytest.mark.parametrize("mode", ["co-hosted", "absolute"])
def test_pages_carry_every_attribute(tmp_path, real_wheels, mode):
    config = f'[index]\nfiles-base-url = "{BASE}/"\n' if mode == "absolute" else ""
    root, cfg = make(tmp_path, real_wheels, config)
    report = build_index(cfg)
    idx = root / "index"
    recs = records(root)
    assert sorted(report.added) == sorted(recs) and report.projects == 2 and report.wheels == 3

    # The root, HTML and JSON.
    base_url = "https://index.example.org/simple/"
    root_html = (idx / "simple/index.html").read_text()
    index_html = IndexPage.from_html(root_html)
    assert index_html.projects == ["jinja2", "markupsafe"] and index_html.repository_version == "1.1"
    links = RepositoryPage.from_html(root_html, base_url).links
    assert {(ln.text, ln.url) for ln in links} == {("jinja2", base_url + "jinja2/"),
                                                  ("markupsafe", base_url + "markupsafe/")}
    index_json = IndexPage.from_json_data(json.loads((idx / "simple/index.json").read_bytes()))
    assert index_json.projects == ["jinja2", "markupsafe"] and index_json.repository_version == "1.1"

    for name in ("jinja2", "markupsafe"):
        page_url = f"{base_url}{name}/"
        html_page = ProjectPage.from_html(name, (idx / f"simple/{name}/index.html").read_text(), page_url)
        json_page = ProjectPage.from_json_data(json.loads((idx / f"simple/{name}/index.json").read_bytes()), page_url)
        assert html_page.repository_version == json_page.repository_version == "1.1"
        # (markupsafe's first build is superseded by its rebuild: on the human page, not here)
        expected = sorted(fn for fn, r in recs.items() if r["name"] == name and fn != real_wheels["markupsafe"].name)
        assert [p.filename for p in html_page.packages] == [p.filename for p in json_page.packages]
        assert sorted(p.filename for p in html_page.packages) == expected
        versions = sorted({r["version"] for r in recs.values() if r["name"] == name})
        assert json_page.versions == versions
        for html_pkg, json_pkg in zip(html_page.packages, json_page.packages):
            rec = recs[html_pkg.filename]
            for pkg in (html_pkg, json_pkg):
                want_url = (f"{BASE}/{rec['filename']}" if mode == "absolute"
                            else f"https://index.example.org/files/{rec['filename']}")
                assert pkg.url == want_url
                assert canonicalize_name(pkg.project) == name and pkg.version == rec["version"]
                assert pkg.package_type == "wheel"
                assert pkg.digests == {"sha256": rec["sha256"]}
                assert pkg.requires_python == rec["requires_python"] == ">=3.7"
                assert pkg.has_metadata is True
                assert pkg.metadata_url == want_url + ".metadata"
                assert pkg.metadata_digests == {"sha256": rec["metadata_sha256"]}
                assert pkg.is_yanked is False and pkg.yanked_reason is None
                assert pkg.has_sig is None or pkg.has_sig is False
            assert json_pkg.size == rec["size"]
            assert json_pkg.upload_time.strftime("%Y-%m-%dT%H:%M:%SZ") == rec["built_at"]
            # PEP 658: the .metadata file is the wheel's own METADATA, byte for byte.
            meta = (idx / "files" / f"{rec['filename']}.metadata").read_bytes()
            assert hashlib.sha256(meta).hexdigest() == rec["metadata_sha256"]
            wheel = next(w for w in real_wheels.values() if w.name == rec["filename"])
            assert meta == wheel_metadata(wheel)
    # Both attribute spellings (PEP 714) are on the links.
    page = (idx / "simple/markupsafe/index.html").read_text()
    assert page.count("data-core-metadata=") == page.count("data-dist-info-metadata=") == 1
    assert 'data-requires-python="&gt;=3.7"' in page

    # Co-hosted: the wheels are beside the index; absolute: they are not.
    wheel_in_index = idx / "files" / real_wheels["jinja2"].name
    assert wheel_in_index.is_file() is (mode == "co-hosted")
    # The build log lives beside the wheel, wherever the wheels are.
    assert (idx / "files" / f"{real_wheels['markupsafe'].name}.log").read_text() == "gcc -O2 … ok\n"
    if mode == "co-hosted":
        assert check_index(str(idx)).problems == []


def test_yanks_from_recipe_and_config(tmp_path, real_wheels):
    root, _ = make(tmp_path, real_wheels, f"""
        [index]
        yanked = {{ "{real_wheels['markupsafe_rebuilt'].name}" = "miscompiled: <see #12> & \\"more\\"" }}
    """)
    write_recipe(root, "jinja2", """
        [package]
        name = "jinja2"
        version = "3.1.4"
        [source]
        sha256 = "4a3aee7acbbe7303aede8e9648d13b8bf88a429282aa6122a993f0ac800cb369"
        [yanked]
        "3.1.4" = "CVE-2024-56201"
    """)
    build_index(load_config(root))
    idx = root / "index"
    url = "https://x.org/simple/markupsafe/"
    for page in (ProjectPage.from_html("markupsafe", (idx / "simple/markupsafe/index.html").read_text(), url),
                 ProjectPage.from_json_data(json.loads((idx / "simple/markupsafe/index.json").read_bytes()), url)):
        states = {p.filename: (p.is_yanked, p.yanked_reason) for p in page.packages}
        assert states == {
            real_wheels["markupsafe"].name: (False, None),
            real_wheels["markupsafe_rebuilt"].name: (True, 'miscompiled: <see #12> & "more"'),
        }
    jpage = ProjectPage.from_html("jinja2", (idx / "simple/jinja2/index.html").read_text(), url)
    assert [(p.is_yanked, p.yanked_reason) for p in jpage.packages] == [(True, "CVE-2024-56201")]
    human = (idx / "project/markupsafe/index.html").read_text()
    assert "yanked: miscompiled: &lt;see #12&gt;" in human


def test_bad_yank_key_is_one_clear_message(tmp_path, real_wheels):
    root, cfg = make(tmp_path, real_wheels, '[index]\nyanked = { "markupsafe-2.1.5" = "x" }\n')
    with pytest.raises(IndexProblem, match=r"index.yanked key 'markupsafe-2.1.5' must be a wheel file name or NAME==VERSION"):
        build_index(cfg)
    assert not (root / "index").exists()


def test_human_pages(tmp_path, real_wheels):
    root, cfg = make(tmp_path, real_wheels, '[index]\nurl = "https://wheels.example.org/simple"\n')
    build_index(cfg)
    idx = root / "index"
    home = (idx / "index.html").read_text()
    assert '<a href="project/markupsafe/">markupsafe</a></td><td>2.1.5</td><td class="n">2</td><td class="d">2025-02-03 04:05 UTC' in home
    assert "pip install --prefer-binary --extra-index-url https://wheels.example.org/simple/ PACKAGE" in home
    page = (idx / "project/markupsafe/index.html").read_text()
    assert "pip install --prefer-binary --extra-index-url https://wheels.example.org/simple/ markupsafe" in page
    assert "uv pip install --index-strategy unsafe-best-match --index https://wheels.example.org/simple/ markupsafe" in page
    # The Debian runtime packages of the latest version's wheels, as one apt-get line.
    assert "sudo apt-get install libnuma1 libopenblas0" in page
    for tag in records(root)[real_wheels["markupsafe"].name]["tags"]:
        assert f'class="tag">{tag}</span>' in page
    assert "2025-01-02 03:04 UTC" in page and "2025-02-03 04:05 UTC" in page
    size = real_wheels["markupsafe"].stat().st_size
    assert f"{size / 1024:.1f} KiB" in page
    log_link = f'<a href="../../files/{real_wheels["markupsafe"].name}.log">log</a>'
    assert log_link in page
    # Every link of the human pages resolves, logs included.
    assert check_index(str(idx)).problems == []


def test_project_pages_say_how_to_verify_provenance_when_published_to_github(tmp_path, real_wheels):
    """Issue #15: the human project page gives the `gh attestation verify` line for the repository whose
    workflow attests the wheels (publish.repository); a directory target has no attestations to check."""
    verify = "gh attestation verify FILE --repo octo/wheels"
    root, cfg = make(tmp_path, real_wheels, '[index]\nurl = "https://octo.github.io/wheels/simple/"\n'
                     '[publish]\ntarget = "github"\nrepository = "octo/wheels"\n')
    build_index(cfg)
    assert verify in (root / "index/project/markupsafe/index.html").read_text()
    root, cfg = make(tmp_path / "dir", real_wheels, '[index]\nurl = "https://wheels.example.org/simple"\n')
    build_index(cfg)
    assert "gh attestation" not in (root / "index/project/markupsafe/index.html").read_text()


def test_incremental_rewrites_only_changed_projects(tmp_path, real_wheels):
    root, cfg = make(tmp_path, real_wheels, rebuilt=False)
    idx = root / "index"
    build_index(cfg)
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in idx.rglob("*") if p.is_file()}

    again = build_index(cfg)
    assert not again.changed and again.projects_written == []
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in idx.rglob("*") if p.is_file()
            if ".wheelfactory" not in p.parts} == {p: v for p, v in before.items() if ".wheelfactory" not in p.parts}

    store_wheel(root / "dist", real_wheels["markupsafe_rebuilt"])
    report = build_index(cfg)
    assert report.added == [real_wheels["markupsafe_rebuilt"].name]
    assert report.projects_written == ["markupsafe"] and not report.replaced and not report.removed
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in idx.rglob("*") if p.is_file()}
    untouched = [p for p in before if "jinja2" in p.as_posix()]
    assert untouched and all(after[p] == before[p] for p in untouched)
    assert after[idx / "simple/markupsafe/index.html"] != before[idx / "simple/markupsafe/index.html"]
    assert real_wheels["markupsafe_rebuilt"].name in (idx / "simple/markupsafe/index.html").read_text()
    assert check_index(str(idx)).problems == []

    # Removal: the record goes, its files and (here) nothing else.
    rb = real_wheels["markupsafe_rebuilt"].name
    (root / "dist" / f"{rb}.json").unlink()
    (root / "dist" / rb).unlink()
    report = build_index(cfg)
    assert report.removed == [rb] and report.projects_written == ["markupsafe"]
    assert not (idx / "files" / rb).exists() and not (idx / "files" / f"{rb}.metadata").exists()
    assert check_index(str(idx)).problems == []


def test_stale_same_name_is_flagged_and_replaced(tmp_path, real_wheels, capsys):
    root, cfg = make(tmp_path, real_wheels, rebuilt=False)
    build_index(cfg)
    name = real_wheels["markupsafe"].name
    old_sha = records(root)[name]["sha256"]
    # A rebuild lands under the same file name (what the seed report's torch did).
    (root / "dist" / f"{name}.json").unlink()
    (root / "dist" / name).unlink()
    store_wheel(root / "dist", real_wheels["markupsafe_stale"])
    new_sha = records(root)[name]["sha256"]
    report = build_index(cfg)
    assert report.replaced == [{"filename": name, "old_sha256": old_sha, "new_sha256": new_sha}]
    assert "same file name, different content" in capsys.readouterr().err
    idx = root / "index"
    assert f"#sha256={new_sha}" in (idx / "simple/markupsafe/index.html").read_text()
    assert sha256_file(idx / "files" / name) == new_sha
    assert check_index(str(idx)).problems == []


def test_duplicates_are_reported(tmp_path, real_wheels):
    root, cfg = make(tmp_path, real_wheels, rebuilt=False)
    # The same bytes under a second name (a build tag added by hand, content unchanged).
    twin = tmp_path / "twin" / real_wheels["markupsafe"].name.replace("2.1.5-", "2.1.5-7-")
    twin.parent.mkdir()
    twin.write_bytes(real_wheels["markupsafe"].read_bytes())
    store_wheel(root / "dist", twin)
    report = build_index(cfg)
    assert report.duplicates == [sorted([real_wheels["markupsafe"].name, twin.name])]


def test_record_without_wheel_changes_nothing(tmp_path, real_wheels):
    root, cfg = make(tmp_path, real_wheels, rebuilt=False)
    build_index(cfg)
    store_wheel(root / "dist", real_wheels["markupsafe_rebuilt"])
    (root / "dist" / real_wheels["markupsafe_rebuilt"].name).unlink()
    before = snapshot(root / "dist", root / "index")
    r = subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "index"],
                       env={**os.environ, "WHEELFACTORY_ROOT": str(root)}, capture_output=True, text=True)
    assert r.returncode == 1
    assert "1 dist record(s) without their wheel" in r.stderr
    assert f"{real_wheels['markupsafe_rebuilt'].name}.json" in r.stderr and "Traceback" not in r.stderr
    assert snapshot(root / "dist", root / "index") == before


def test_damaged_record_leaves_previous_index(tmp_path, real_wheels):
    root, cfg = make(tmp_path, real_wheels, rebuilt=False)
    build_index(cfg)
    store_wheel(root / "dist", real_wheels["markupsafe_rebuilt"], metadata="Metadata-Version: 2.1\nName: x\n")
    before = snapshot(root / "index")
    with pytest.raises(IndexProblem, match="'metadata' does not match 'metadata_sha256'"):
        build_index(cfg)
    assert snapshot(root / "index") == before
    assert not (root / ".index.staging").exists()


def test_interrupted_apply_is_consistent_and_completed(tmp_path, real_wheels, monkeypatch):
    """Kill the swap-in after some renames: every link still resolves; the next run finishes it."""
    root, cfg = make(tmp_path, real_wheels, rebuilt=False)
    build_index(cfg)
    store_wheel(root / "dist", real_wheels["markupsafe_rebuilt"])
    (root / "dist" / f"{real_wheels['jinja2'].name}.json").unlink()  # and one removal
    real_replace = os.replace
    for crash_after in (1, 3, 5):
        calls = []

        def crashing_replace(src, dst, *a, **kw):
            calls.append(dst)
            if len(calls) > crash_after:
                raise KeyboardInterrupt("killed")
            return real_replace(src, dst, *a, **kw)

        monkeypatch.setattr(os, "replace", crashing_replace)
        with pytest.raises(KeyboardInterrupt):
            build_index(cfg)
        monkeypatch.setattr(os, "replace", real_replace)
        # Mid-swap the live index mixes old and new pages, but every link resolves and
        # matches (only the HTML and JSON twins of one page may be one update apart).
        problems = check_index(str(root / "index")).problems
        assert [p for p in problems if "JSON" not in p] == []
        # The next run (the next iteration) first rolls this journal forward.
    report = build_index(cfg)
    assert report.recovered
    assert check_index(str(root / "index")).problems == []
    page = (root / "index/simple/markupsafe/index.html").read_text()
    assert real_wheels["markupsafe_rebuilt"].name in page
    assert not (root / "index/simple/jinja2").exists()


def test_foreign_index_folder_is_refused(tmp_path, real_wheels):
    root, cfg = make(tmp_path, real_wheels, rebuilt=False)
    (root / "index").mkdir()
    (root / "index" / "notes.txt").write_text("mine")
    with pytest.raises(IndexProblem, match="was not written by `invoke index`"):
        build_index(cfg)
    assert (root / "index" / "notes.txt").read_text() == "mine"


def test_files_base_url_must_be_absolute(tmp_path, real_wheels):
    root, cfg = make(tmp_path, real_wheels, '[index]\nfiles-base-url = "releases/download/wheels"\n', rebuilt=False)
    with pytest.raises(IndexProblem, match="must be an absolute http"):
        build_index(cfg)


def test_full_rebuild_after_settings_change(tmp_path, real_wheels):
    root, cfg = make(tmp_path, real_wheels, rebuilt=False)
    build_index(cfg)
    (root / "factory.toml").write_text((root / "factory.toml").read_text() + f'[index]\nfiles-base-url = "{BASE}"\n')
    report = build_index(load_config(root))
    assert report.full and sorted(report.projects_written) == ["jinja2", "markupsafe"]
    assert f'href="{BASE}/{real_wheels["jinja2"].name}#sha256=' in (root / "index/simple/jinja2/index.html").read_text()
    # The wheels are no longer co-hosted: their copies left the index.
    assert not (root / "index/files" / real_wheels["jinja2"].name).exists()
    assert (root / "index/files" / f"{real_wheels['jinja2'].name}.metadata").exists()


def test_parallel_generation_writes_the_same_index(tmp_path, real_wheels, monkeypatch):
    """Big generations run in worker processes; the result must be byte-identical to a serial run."""
    from wheelfactory.index import update as update_mod

    root, cfg = make(tmp_path, real_wheels)
    serial = build_index(cfg, out=tmp_path / "serial", quiet=True, workers=1)
    monkeypatch.setattr(update_mod, "PARALLEL_MIN_RECORDS", 1)
    forked = []
    real_pool = update_mod.ProcessPoolExecutor

    def counting_pool(*a, **kw):
        forked.append(kw.get("mp_context"))
        return real_pool(*a, **kw)

    monkeypatch.setattr(update_mod, "ProcessPoolExecutor", counting_pool)
    parallel = build_index(cfg, out=tmp_path / "parallel", quiet=True, workers=2)
    assert forked, "the worker processes were not used"
    assert parallel.added == serial.added and parallel.projects_written == serial.projects_written

    def files(d: Path) -> dict[str, bytes]:
        return {p.relative_to(d).as_posix(): p.read_bytes() for p in d.rglob("*")
                if p.is_file() and ".wheelfactory" not in p.parts}

    assert files(tmp_path / "parallel") == files(tmp_path / "serial")
    # A bad record fails the same way from a worker, and the index stays as it was.
    before = files(tmp_path / "parallel")
    (root / "dist" / f"{real_wheels['jinja2'].name}.json").write_text('{"filename": 3}')
    with pytest.raises(IndexProblem, match="record lacks"):
        build_index(cfg, out=tmp_path / "parallel", full=True, quiet=True, workers=2)
    assert files(tmp_path / "parallel") == before


def test_a_full_rebuild_after_a_wheel_left_dist(tmp_path):
    """(The code before the split failed here with a KeyError.)"""
    root, recs, cfg = _three_projects(tmp_path)
    dist = root / "dist"
    gone = recs[1]["filename"]
    (dist / f"{gone}.json").unlink()
    (dist / gone).unlink()
    report = build_index(cfg, full=True, quiet=True)
    assert report.removed == [gone] and report.wheels == 2 and not report.added
    assert not (root / "index/simple/pkg-1").exists() and not (root / f"index/files/{gone}.metadata").exists()
    assert json.loads((root / "index/simple/index.json").read_bytes())["projects"] == [{"name": "pkg-0"},
                                                                                       {"name": "pkg-2"}]


def test_a_new_yank_rewrites_only_that_project(tmp_path, real_wheels):
    root, cfg = make(tmp_path, real_wheels)
    build_index(cfg)
    idx = root / "index"
    jinja_page = idx / "simple/jinja2/index.html"
    before = jinja_page.stat().st_ino
    text = (root / "factory.toml").read_text()
    (root / "factory.toml").write_text(text + '[index]\nyanked = { "markupsafe==2.1.5" = "bad" }\n')
    report = build_index(load_config(root))
    assert report.projects_written == ["markupsafe"] and not report.added and not report.full
    assert jinja_page.stat().st_ino == before
    # (both builds yanked: the newest is offered, yanked; the first stays superseded)
    assert (idx / "simple/markupsafe/index.html").read_text().count('data-yanked="bad"') == 1
    # And back: the yank is lifted.
    (root / "factory.toml").write_text(text)
    report = build_index(load_config(root))
    assert report.projects_written == ["markupsafe"]
    assert "data-yanked" not in (idx / "simple/markupsafe/index.html").read_text()


def _synthetic_record(name: str, version: str, py: str, build: int | None, salt: str, *, log: str | None,
                      yanked: str | None = None) -> dict:
    """A dist record in the store's format (the index reads records only, never wheels)."""
    tag = f"cp{py}-cp{py}-manylinux_2_39_riscv64"
    stem = f"{name.replace('-', '_')}-{version}" + (f"-{build}" if build else "")
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Python: >=3.9\n\n{salt}\n"
    return {
        "schema": 1, "name": name, "version": version, "filename": f"{stem}-{tag}.whl", "build_tag": build,
        "sha256": hashlib.sha256(f"{stem}-{tag}-{salt}".encode()).hexdigest(), "size": 1000 + len(salt),
        "tags": [tag], "requires_python": ">=3.9", "metadata": meta,
        "metadata_sha256": hashlib.sha256(meta.encode()).hexdigest(), "recipe": name,
        "debian_runtime": ["libgomp1"] if len(name) % 2 else [], "log": log, "yanked": yanked,
        "built_at": f"2026-01-{1 + len(salt) % 28:02d}T10:00:00Z", "python": f"3.{py[1:]}",
        "policy": "manylinux_2_39", "achieved_policy": "manylinux_2_39", "status": "ok",
    }


def _put(dist: Path, rec: dict) -> None:
    (dist / rec["filename"]).write_bytes(b"\0" * rec["size"])
    tmp = dist / f".{rec['filename']}.json.tmp"
    tmp.write_text(json.dumps(rec))
    os.replace(tmp, dist / f"{rec['filename']}.json")  # as the store writes: atomically


def _three_projects(tmp_path: Path) -> tuple[Path, list[dict], object]:
    """A project root whose dist/ holds one synthetic record of pkg-0, pkg-1 and pkg-2, indexed."""
    root = write_project(tmp_path / "p", recipes=[])
    (root / "dist").mkdir()
    recs = [_synthetic_record(f"pkg-{i}", "1.0.0", "312", None, f"s{i}", log=None) for i in range(3)]
    for rec in recs:
        _put(root / "dist", rec)
    cfg = load_config(root)
    build_index(cfg, quiet=True)
    return root, recs, cfg


def test_a_damaged_state_is_named_and_a_full_rebuild_mends_it(tmp_path):
    root, _, cfg = _three_projects(tmp_path)
    dist = root / "dist"
    idx = root / "index"
    (idx / STATE).write_bytes(b"\xff not marshal")
    before = {p: p.read_bytes() for p in idx.rglob("*") if p.is_file()}
    newer = _synthetic_record("pkg-1", "1.1.0", "312", None, "s9", log=None)
    _put(dist, newer)
    with pytest.raises(IndexProblem, match=r"state\.marshal: damaged.*invoke index --full"):
        build_index(cfg, quiet=True)
    assert {p: p.read_bytes() for p in idx.rglob("*") if p.is_file()} == before  # nothing changed
    report = build_index(cfg, full=True, quiet=True)
    assert newer["filename"] in report.added and report.wheels == 4
    assert build_index(cfg, quiet=True).changed is False


def test_stat_keys_know_each_record_and_a_gone_one(tmp_path):
    """The stat key of each record: distinct per file, None for a record that went away
    between listing and stat."""
    from wheelfactory.index.state import stat_keys

    dist = tmp_path / "dist"
    dist.mkdir()
    names = [f"p{i}-1.0-py3-none-any.whl.json" for i in range(50)]
    for i, n in enumerate(names):
        (dist / n).write_text("x" * i)
    names.insert(40, "gone-1.0-py3-none-any.whl.json")
    fd = os.open(dist, os.O_RDONLY)
    try:
        here = stat_keys(names, fd)
    finally:
        os.close(fd)
    assert here[40] is None and None not in here[:40] + here[41:]
    assert len(set(here) - {None}) == 50


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_updates_equal_a_full_rebuild(tmp_path, monkeypatch, seed):
    """Random changes to dist/ (new wheels, rebuilds under the same name, removals,
    yanks in the config and in recipes, exclusions, build logs appearing and going):
    after each, the incrementally updated index is byte for byte the one a full
    rebuild writes, serially or in worker processes."""
    import random

    from wheelfactory.index import update as update_mod
    from wheelfactory.index.state import Summaries

    monkeypatch.setattr(update_mod, "PARALLEL_MIN_RECORDS", 1)
    rng = random.Random(seed)
    names = [f"pkg-{i:02d}" for i in range(12)]
    root = write_project(tmp_path / "p", recipes=[])
    dist, logs = root / "dist", root / "logs"
    dist.mkdir()
    logs.mkdir()
    base_config = (root / "factory.toml").read_text()
    live: dict[str, dict] = {}
    config_yanks: dict[str, str] = {}

    def files(d: Path) -> dict[str, bytes]:
        return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
                if p.is_file() and ".wheelfactory" not in p.parts}

    def state(d: Path) -> dict:
        held = load_state(d)
        del held["generator"]
        held["summaries"] = {name: Summaries(held["summaries"]).project(name) for name in held["summaries"]}
        # The copies' stat keys differ between two indexes; each must know every file it wrote.
        assert sorted(held["copies"]) == sorted(p.name for p in (d / "files").glob("*"))
        held["copies"] = sorted(held["copies"])
        return held

    for step in range(14):
        for _ in range(rng.randint(1, 6)):
            op = rng.choice(["add", "add", "rebuild-same-name", "remove", "yank-config", "yank-recipe", "log"])
            name = rng.choice(names)
            if op == "add" or not live:
                rec = _synthetic_record(name, f"1.{rng.randint(0, 3)}.0", rng.choice(["311", "312", "313"]),
                                        rng.choice([None, None, 1, 2]), f"s{step}-{rng.random()}", log=None)
                live[rec["filename"]] = rec
                _put(dist, rec)
            elif op == "rebuild-same-name":
                rec = dict(live[rng.choice(sorted(live))])
                salt = f"rebuilt-{step}-{rng.random()}"
                rec["sha256"] = hashlib.sha256(salt.encode()).hexdigest()
                rec["size"] += 1
                _put(dist, rec)
                live[rec["filename"]] = rec
            elif op == "remove":
                fn = rng.choice(sorted(live))
                del live[fn]
                (dist / f"{fn}.json").unlink()
                (dist / fn).unlink()
            elif op == "yank-config":
                fn = rng.choice(sorted(live))
                if fn in config_yanks:
                    del config_yanks[fn]
                else:
                    config_yanks[fn] = f"broken in step {step}"
            elif op == "yank-recipe":
                rec = live[rng.choice(sorted(live))]
                write_recipe(root, rec["recipe"], f'[package]\nname = "{rec["recipe"]}"\nversion = "{rec["version"]}"\n'
                             f'[source]\nsha256 = "{"0" * 64}"\n[yanked]\n"{rec["version"]}" = "recipe says no ({step})"\n')
            else:  # a build log appears, or goes away
                rec = dict(live[rng.choice(sorted(live))])
                log = logs / f"{rec['filename']}.log"
                if rec["log"]:
                    rec["log"] = None
                else:
                    log.write_text(f"build log {step}\n")
                    rec["log"] = f"logs/{log.name}"
                _put(dist, rec)
                live[rec["filename"]] = rec
        yanked = "".join(f'"{fn}" = "{why}"\n' for fn, why in sorted(config_yanks.items()))
        (root / "factory.toml").write_text(base_config + (f"[index.yanked]\n{yanked}" if yanked else ""))
        cfg = load_config(root)
        exclude = [rng.choice(sorted(live))] if live and rng.random() < 0.25 else []

        build_index(cfg, out=root / "inc", exclude=exclude, quiet=True, workers=2 if step % 2 else 1,
                    pack_summaries=step % 3 != 0)  # (a state holds both forms after a switch)
        full = build_index(cfg, out=root / f"full-{step}", exclude=exclude, quiet=True, workers=2)
        assert full.full and full.wheels == len(live) - len(exclude)
        assert files(root / "inc") == files(root / f"full-{step}"), f"step {step}: the incremental index differs"
        assert state(root / "inc") == state(root / f"full-{step}"), f"step {step}: the incremental state differs"


def test_the_digest_marker_names_the_pages_on_any_machine(tmp_path):
    """index-digest.json: the same dist/ gives the same digest in another folder (a fresh CI
    checkout); it changes exactly when a page does, and it is the last file to go live."""
    root, recs, cfg = _three_projects(tmp_path)
    marker = root / "index" / DIGEST
    first = json.loads(marker.read_text())
    assert first["digest"].startswith("sha256:") and first["projects"] == 3 and first["wheels"] == 3
    elsewhere = build_index(cfg, out=tmp_path / "elsewhere", quiet=True)
    assert elsewhere.full and (tmp_path / "elsewhere" / DIGEST).read_bytes() == marker.read_bytes()
    before = marker.stat().st_ino
    build_index(cfg, quiet=True)
    assert marker.stat().st_ino == before  # nothing changed: not rewritten
    rec = _synthetic_record("pkg-1", "1.0.0", "312", 1, "rebuild", log=None)
    _put(root / "dist", rec)
    applied = []
    real_replace = os.replace
    with pytest.MonkeyPatch.context() as m:
        m.setattr(os, "replace", lambda src, dest: (applied.append(Path(dest).name), real_replace(src, dest))[1])
        build_index(cfg, quiet=True)
    second = json.loads(marker.read_text())
    assert second["digest"] != first["digest"] and second["wheels"] == 4
    assert applied[-2:] == [DIGEST, "state.marshal"]  # after every page, before only the unpublished state
    (root / "dist" / f"{rec['filename']}.json").unlink()
    (root / "dist" / rec["filename"]).unlink()
    build_index(cfg, quiet=True)
    assert json.loads(marker.read_text()) == first  # the same pages again: the same digest
