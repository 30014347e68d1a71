"""The source stage on real archives, a real git repository, real PyPI and a local HTTP server."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from support.build import git, make_git_repo, tiny_files, write_recipe
from conftest import write_project
from wheelfactory.build import source
from wheelfactory.errors import SourceError
from wheelfactory.settings.recipe import load_recipe

MULTIDICT_SHA = "e8af3e6f1bdbc31fd762b094133b478b89988eaebc63cbe82b1d9e3bbd15cede"


def _recipe(root: Path, src: str, name: str = "wf-tiny", version: str = "1.0"):
    write_recipe(root, name, f'[package]\nname = "{name}"\nversion = "{version}"\n[source]\n{src}\n')
    return load_recipe(root / "recipes", name)


def _prepare(recipe, root: Path, index="https://pypi.org/simple"):
    log = io.StringIO()
    tree = source.prepare(recipe, commit=None, cache=root / "cache", patches_root=root / "patches",
                          workdir=root / "build" / recipe.name, log=log, index_url=index)
    return tree, log.getvalue()


def test_pypi_sdist_url_comes_from_the_simple_json_api(tmp_path):
    root = write_project(tmp_path / "p")
    r = _recipe(root, f'sha256 = "{MULTIDICT_SHA}"', name="multidict", version="7.2.1")
    url = source.sdist_url(r, "https://pypi.org/simple")
    assert url.startswith("https://files.pythonhosted.org/") and url.endswith("/multidict-7.2.1.tar.gz")


def test_a_wrong_sha256_is_caught_from_the_index_before_downloading(tmp_path):
    root = write_project(tmp_path / "p")
    r = _recipe(root, f'sha256 = "{"1" * 64}"', name="multidict", version="7.2.1")
    with pytest.raises(SourceError, match=f"recipe says {'1' * 64} but .* lists {MULTIDICT_SHA}"):
        source.sdist_url(r, "https://pypi.org/simple")


def test_url_download_is_cached_and_verified(tmp_path, sdist_server):
    root = write_project(tmp_path / "p")
    url, sha = sdist_server.sdists["tiny"]
    r = _recipe(root, f'url = "{url}"\nsha256 = "{sha}"')
    tree, log = _prepare(r, root)
    assert (tree.project / "setup.py").is_file() and tree.root == tree.project
    assert tree.root.name == "wf_tiny-1.0"
    assert tree.info["url"] == url and tree.info["sha256"] == sha
    cached = root / "cache" / "sources" / sha / "wf_tiny-1.0.tar.gz"
    assert cached.is_file()
    # A second prepare uses the cache, even with the server gone.
    sdist_server_files = Path(sdist_server.folder)
    moved = sdist_server_files / "tiny" / "wf_tiny-1.0.tar.gz"
    moved.rename(moved.with_suffix(".away"))
    try:
        _, log2 = _prepare(r, root)
    finally:
        moved.with_suffix(".away").rename(moved)
    assert "using cached" in log2
    # A corrupted cache entry is fetched again, not used.
    cached.write_bytes(b"garbage")
    _, log3 = _prepare(r, root)
    assert "downloading" in log3 and source.sha256_file(cached) == sha


def test_sha256_mismatch_unpacks_nothing_and_caches_nothing(tmp_path, sdist_server):
    root = write_project(tmp_path / "p")
    url, sha = sdist_server.sdists["tiny"]
    r = _recipe(root, f'url = "{url}"\nsha256 = "{"0" * 64}"')
    with pytest.raises(SourceError, match=f"the download is {sha}"):
        _prepare(r, root)
    assert not any((root / "build" / "wf-tiny" / "src").rglob("*"))
    assert not list((root / "cache" / "sources").rglob("*.tar.gz"))


def test_http_errors_name_the_url(tmp_path, sdist_server):
    root = write_project(tmp_path / "p")
    r = _recipe(root, f'url = "{sdist_server.url}/nope/wf_tiny-1.0.tar.gz"\nsha256 = "{"0" * 64}"')
    with pytest.raises(SourceError, match=r"wf-tiny: downloading http://127\.0\.0\.1:\d+/nope/wf_tiny-1\.0\.tar\.gz failed: HTTP 404"):
        _prepare(r, root)


@pytest.mark.parametrize("member, kind", [
    ("../../evil.txt", "file"),
    ("wf_tiny-1.0/link", "symlink-out"),
])
def test_unpack_refuses_anything_that_would_land_outside(tmp_path, member, kind):
    archive = tmp_path / "x.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo(member)
        if kind == "symlink-out":
            info.type, info.linkname = tarfile.SYMTYPE, "../../../../etc"
            tf.addfile(info)
        else:
            info.size = 3
            tf.addfile(info, io.BytesIO(b"bad"))
    root = write_project(tmp_path / "p")
    r = _recipe(root, f'sha256 = "{"0" * 64}"')
    with pytest.raises(SourceError, match="cannot unpack x.tar.gz safely: .*nothing was unpacked"):
        source.unpack(archive, tmp_path / "dest" / "src", r)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_an_absolute_member_is_refused_naming_it(tmp_path):
    # Issue #16: the "data" filter used to strip the leading / silently; the docs promise no absolute paths.
    archive = tmp_path / "x.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name in ("wf_tiny-1.0/setup.py", "/opt/escaped.txt"):
            info = tarfile.TarInfo(name)
            info.size = 3
            tf.addfile(info, io.BytesIO(b"bad"))
    root = write_project(tmp_path / "p")
    r = _recipe(root, f'sha256 = "{"0" * 64}"')
    dest = tmp_path / "dest"
    with pytest.raises(SourceError) as e:
        source.unpack(archive, dest, r)
    assert str(e.value) == (
        f"wf-tiny: cannot unpack x.tar.gz safely: member '/opt/escaped.txt' is an absolute path; nothing was unpacked. "
        f"Fix: check that source.url and source.sha256 in {r.path} point at the project's real release; "
        f"an archive with such a member is never built")
    assert list(dest.iterdir()) == []


def test_zip_slip_is_refused_and_good_zips_unpack(tmp_path):
    root = write_project(tmp_path / "p")
    r = _recipe(root, f'sha256 = "{"0" * 64}"')
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("pkg-1.0/setup.py", "")
        zf.writestr("../escape.py", "")
    with pytest.raises(SourceError, match=r"cannot unpack bad.zip safely: member '\.\./escape.py' has '\.\.' and would land outside"):
        source.unpack(bad, tmp_path / "d1", r)
    assert not (tmp_path / "escape.py").exists()
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("pkg-1.0/setup.py", "")
    assert source.unpack(good, tmp_path / "d2", r) == tmp_path / "d2" / "pkg-1.0"


def test_subdirectory_must_exist_and_stay_inside(tmp_path):
    root = write_project(tmp_path / "p")
    tree = tmp_path / "tree"
    (tree / "src" / "python" / "grpcio").mkdir(parents=True)
    (tree / "src" / "python" / "grpcio" / "setup.py").write_text("")
    (tree / "docs").mkdir()
    (tree / "sneaky").symlink_to(tmp_path)  # a link that leads out of the tree
    ok = _recipe(root, f'sha256 = "{"0" * 64}"\nsubdirectory = "src/python/grpcio"')
    assert source.project_dir(ok, tree) == (tree / "src/python/grpcio").resolve()
    missing = _recipe(root, f'sha256 = "{"0" * 64}"\nsubdirectory = "src/python/grpc"')
    with pytest.raises(SourceError, match=r"'src/python/grpc' does not exist in the source \(the top folder holds: docs/, sneaky/, src/\)"):
        source.project_dir(missing, tree)
    escaping = _recipe(root, f'sha256 = "{"0" * 64}"\nsubdirectory = "sneaky/p"')
    with pytest.raises(SourceError, match="escapes the source tree"):
        source.project_dir(escaping, tree)
    not_a_project = _recipe(root, f'sha256 = "{"0" * 64}"\nsubdirectory = "docs"')
    with pytest.raises(SourceError, match="holds no pyproject.toml or setup.py"):
        source.project_dir(not_a_project, tree)


def test_patches_apply_in_order_general_then_version_specific(tmp_path, sdist_server):
    root = write_project(tmp_path / "p")
    url, sha = sdist_server.sdists["tiny"]
    r = _recipe(root, f'url = "{url}"\nsha256 = "{sha}"')
    pdir = root / "patches" / "wf-tiny"
    (pdir / "1.0").mkdir(parents=True)
    # The version patch edits a line the general patch adds: order matters.
    (pdir / "0001-add.patch").write_text(
        "--- a/wf_tiny/__init__.py\n+++ b/wf_tiny/__init__.py\n@@ -1 +1,2 @@\n"
        " from ._speed import flavor\n+PATCHED = 'general'\n")
    (pdir / "1.0" / "0001-edit.patch").write_text(
        "--- a/wf_tiny/__init__.py\n+++ b/wf_tiny/__init__.py\n@@ -1,2 +1,2 @@\n"
        " from ._speed import flavor\n-PATCHED = 'general'\n+PATCHED = 'general+1.0'\n")
    tree, log = _prepare(r, root)
    assert (tree.root / "wf_tiny" / "__init__.py").read_text().endswith("PATCHED = 'general+1.0'\n")
    assert tree.patches == ["wf-tiny/0001-add.patch", "wf-tiny/1.0/0001-edit.patch"]


def test_a_patch_for_a_missing_file_names_itself_and_the_file(tmp_path, sdist_server):
    root = write_project(tmp_path / "p")
    url, sha = sdist_server.sdists["tiny"]
    r = _recipe(root, f'url = "{url}"\nsha256 = "{sha}"')
    pdir = root / "patches" / "wf-tiny"
    pdir.mkdir(parents=True)
    (pdir / "0001-gone.patch").write_text("--- a/src/gone.c\n+++ b/src/gone.c\n@@ -1 +1 @@\n-a\n+b\n")
    with pytest.raises(SourceError, match=r"patch patches/wf-tiny/0001-gone.patch does not apply: src/gone.c does not exist"):
        _prepare(r, root)


def test_git_rev_resolution_tags_branches_and_commits(tmp_path):
    bare, commit = make_git_repo(tmp_path / "g", tiny_files(), tag="v1.0")
    root = write_project(tmp_path / "p")
    for rev in ("v1.0", "main", commit):
        r = _recipe(root, f'git = "{bare}"\nrev = "{rev}"')
        assert source.resolve_git_rev(r) == commit, rev
    r = _recipe(root, f'git = "{bare}"\nrev = "v9.9"')
    with pytest.raises(SourceError, match=r"has no tag or branch 'v9.9'"):
        source.resolve_git_rev(r)
    r = _recipe(root, f'git = "{bare}"\nrev = "{commit[:10]}"')
    with pytest.raises(SourceError, match="abbreviated commit"):
        source.resolve_git_rev(r)
    r = _recipe(root, f'git = "{tmp_path}/no-such-repo.git"\nrev = "v1.0"')
    with pytest.raises(SourceError, match="cannot reach git repository"):
        source.resolve_git_rev(r)


def test_git_checkout_is_at_the_commit_and_reuses_the_mirror(tmp_path):
    files = {f"python/{k}": v for k, v in tiny_files().items()}
    bare, first = make_git_repo(tmp_path / "g", files, tag="v1.0")
    work = tmp_path / "g" / "work"
    (work / "python" / "NEWS").write_text("second commit\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "second", cwd=work)
    git("push", "-q", str(bare), "main", cwd=work)
    root = write_project(tmp_path / "p")
    r = _recipe(root, f'git = "{bare}"\nrev = "v1.0"\nsubdirectory = "python"')
    tree, _ = _prepare(r, root)
    assert tree.info["commit"] == first and tree.project == (tree.root / "python").resolve()
    assert not (tree.project / "NEWS").exists()  # the tag's commit, not the branch head
    r = _recipe(root, f'git = "{bare}"\nrev = "main"\nsubdirectory = "python"')
    tree, log = _prepare(r, root)
    assert (tree.project / "NEWS").is_file() and tree.info["commit"] != first
    assert "clone --mirror" not in log  # the cached mirror was fetched, not cloned again
