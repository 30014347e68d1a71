"""index/render.py: page entries -> PEP 503/691 and human pages (pure: no files, no network)."""

from __future__ import annotations

import json

from pypi_simple import ProjectPage

from wheelfactory.index.render import (Settings, human_root_row, latest_version, render_human_project,
                                       render_human_root, render_simple_project, render_simple_root, sort_files,
                                       supersede)

CO_HOSTED = Settings(title="riscv64 <wheels>", url="", files_base="", copy_logs=True)
ABSOLUTE = Settings(title="t", url="https://w.example.org/simple/", files_base="https://f.example.org/x",
                    copy_logs=True)


def entry(filename: str, version: str, *, build_tag=None, yanked=None, requires_python=">=3.9", has_log=False,
          debian_runtime=(), size=1000, built_at="2025-01-02T03:04:05Z") -> dict:
    return {
        "filename": filename, "name": filename.split("-")[0], "version": version, "build_tag": build_tag,
        "sha256": "a" * 64, "size": size, "tags": [filename.split("-", 2 + bool(build_tag))[-1][:-4]],
        "requires_python": requires_python, "metadata_sha256": "b" * 64, "built_at": built_at,
        "debian_runtime": list(debian_runtime), "recipe": "demo", "yanked": yanked, "has_log": has_log,
        "python_abi": (filename.split("-")[-3] + "-" + filename.split("-")[-2],),
    }


def test_simple_root_lists_the_projects_in_html_and_json():
    page, doc = render_simple_root(["a-b", "demo"])
    assert page == (b'<!DOCTYPE html>\n<html>\n<head>\n<meta name="pypi:repository-version" content="1.1">\n'
                    b'<title>Simple index</title>\n</head>\n<body>\n<a href="a-b/">a-b</a><br>\n'
                    b'<a href="demo/">demo</a><br>\n</body>\n</html>\n')
    assert json.loads(doc) == {"meta": {"api-version": "1.1"}, "projects": [{"name": "a-b"}, {"name": "demo"}]}


def test_files_sort_by_version_then_build_tag_without_tag_first():
    files = [entry("demo-1.10-py3-none-any.whl", "1.10"),
             entry("demo-1.9-2-py3-none-any.whl", "1.9", build_tag=[2, ""]),
             entry("demo-1.9-py3-none-any.whl", "1.9"),
             entry("demo-1.9-10-py3-none-any.whl", "1.9", build_tag=[10, ""])]
    sort_files(files)
    assert [f["filename"] for f in files] == ["demo-1.9-py3-none-any.whl", "demo-1.9-2-py3-none-any.whl",
                                              "demo-1.9-10-py3-none-any.whl", "demo-1.10-py3-none-any.whl"]


def test_project_page_carries_every_attribute_in_html_and_json():
    files = [entry("demo-1.0-py3-none-any.whl", "1.0", yanked='broken <"x"> & more', requires_python="<4,>=3.8"),
             entry("demo-1.1+rv64-py3-none-any.whl", "1.1+rv64", yanked=""),
             entry("demo-2.0-py3-none-any.whl", "2.0", requires_python=None)]
    page, doc = render_simple_project("demo", files, ABSOLUTE)
    text = page.decode()
    assert 'data-requires-python="&lt;4,&gt;=3.8"' in text
    assert 'data-yanked="broken &lt;&quot;x&quot;&gt; &amp; more"' in text and 'data-yanked=""' in text
    assert text.count(f'data-core-metadata="sha256={"b" * 64}"') == text.count("data-dist-info-metadata=") == 3
    assert "https://f.example.org/x/demo-1.1%2Brv64-py3-none-any.whl#sha256=" in text  # (quoted: a +)
    url = "https://w.example.org/simple/demo/"
    for parsed in (ProjectPage.from_html("demo", text, url), ProjectPage.from_json_data(json.loads(doc), url)):
        assert [(p.filename, p.is_yanked, p.yanked_reason or None, p.requires_python) for p in parsed.packages] == [
            ("demo-1.0-py3-none-any.whl", True, 'broken <"x"> & more', "<4,>=3.8"),
            ("demo-1.1+rv64-py3-none-any.whl", True, None, ">=3.9"),
            ("demo-2.0-py3-none-any.whl", False, None, None)]
        assert all(p.metadata_digests == {"sha256": "b" * 64} and p.digests == {"sha256": "a" * 64}
                   for p in parsed.packages)
    data = json.loads(doc)
    assert data["versions"] == ["1.0", "1.1+rv64", "2.0"]
    assert [f["yanked"] for f in data["files"]] == ['broken <"x"> & more', True, False]
    assert "requires-python" not in data["files"][2] and data["files"][0]["size"] == 1000
    assert data["files"][0]["upload-time"] == "2025-01-02T03:04:05Z"


def test_links_are_relative_when_the_files_are_co_hosted():
    assert CO_HOSTED.file_url("demo-1.0-py3-none-any.whl") == "../../files/demo-1.0-py3-none-any.whl"
    assert ABSOLUTE.file_url("demo-1.0-py3-none-any.whl.log") == "https://f.example.org/x/demo-1.0-py3-none-any.whl.log"
    assert CO_HOSTED.key() != Settings("riscv64 <wheels>", "", "", False).key()


def test_the_latest_version_is_the_newest_not_yanked():
    files = [entry("demo-1.0-py3-none-any.whl", "1.0"), entry("demo-2.0-py3-none-any.whl", "2.0", yanked="x")]
    assert latest_version(files) == "1.0"
    assert latest_version([files[1]]) == "2.0"


def test_human_project_page():
    files = [entry("demo-1.0-cp312-cp312-linux_riscv64.whl", "1.0", debian_runtime=["libold1"]),
             entry("demo-2.0-cp312-cp312-linux_riscv64.whl", "2.0", debian_runtime=["libz1", "libb2"],
                   has_log=True, size=5 * 1024 * 1024 + 1, built_at="2025-02-03T04:05:06Z"),
             entry("demo-2.0-1-cp312-cp312-linux_riscv64.whl", "2.0", build_tag=[1, ""], yanked="",
                   debian_runtime=["libz1"], size=600)]
    text = render_human_project("demo", files, CO_HOSTED).decode()
    assert "<title>demo - riscv64 &lt;wheels&gt;</title>" in text
    assert "Latest version 2.0 &middot; 3 wheels &middot; last built 2025-02-03 04:05 UTC" in text
    assert "sudo apt-get install libb2 libz1" in text and "libold1</td>" in text
    assert '<span data-rel="../../simple/">../../simple/</span> demo' in text  # (URL filled in by the page)
    assert '<a href="../../files/demo-2.0-cp312-cp312-linux_riscv64.whl.log">log</a>' in text
    assert text.count(">log</a>") == 1
    assert "yanked: no reason given" in text and "5.0 MiB" in text and "600 B" in text
    # Newest version first; within it, the newest build first.
    assert (text.index("Version 2.0") < text.index("demo-2.0-1-cp312") < text.index("demo-2.0-cp312")
            < text.index("Version 1.0"))


def test_human_root_page():
    rows = [human_root_row("a-b", "1.0", "2025-01-02T03:04:05Z", 2), human_root_row("demo", "2.0<", "2025-02-03T04:05:06Z", 1)]
    assert rows[1] == ('<tr><td><a href="project/demo/">demo</a></td><td>2.0&lt;</td><td class="n">1</td>'
                       '<td class="d">2025-02-03 04:05 UTC</td></tr>\n')
    text = render_human_root(rows, 3, ABSOLUTE).decode()
    assert "2 projects, 3 wheels." in text and "".join(rows) in text
    assert "pip install --prefer-binary --extra-index-url https://w.example.org/simple/ PACKAGE" in text


def test_the_newest_build_of_a_version_and_python_abi_supersedes_the_older_ones():
    old = entry("demo-1.0-cp313-cp313-manylinux_2_35_riscv64.whl", "1.0")
    new = entry("demo-1.0-1-cp313-cp313-manylinux_2_31_riscv64.whl", "1.0", build_tag=[1, ""])
    new_x = entry("demo-1.0-1-cp313-cp313-linux_riscv64.whl", "1.0", build_tag=[1, ""])  # same build, other platform
    other_python = entry("demo-1.0-cp312-cp312-manylinux_2_35_riscv64.whl", "1.0")
    other_version = entry("demo-0.9-cp313-cp313-manylinux_2_35_riscv64.whl", "0.9")
    files = [other_version, old, other_python, new, new_x]
    assert supersede(files) == [other_version, other_python, new, new_x]
    assert [f["superseded_by"] for f in files] == [None, "1", None, None, None]
    page, doc = render_simple_project("demo", supersede(files), CO_HOSTED)
    assert old["filename"] not in page.decode() and old["filename"] not in doc.decode()
    human = render_human_project("demo", files, CO_HOSTED).decode()
    assert human.count("superseded by build 1") == 1 and old["filename"] in human


def test_a_yanked_rebuild_supersedes_nothing():
    old = entry("demo-1.0-py3-none-any.whl", "1.0")
    bad = entry("demo-1.0-2-py3-none-any.whl", "1.0", build_tag=[2, ""], yanked="broken rebuild")
    mid = entry("demo-1.0-1-py3-none-any.whl", "1.0", build_tag=[1, ""])
    assert supersede([old, mid, bad]) == [mid, bad]
    assert [f["superseded_by"] for f in (old, mid, bad)] == ["1", None, None]
    all_yanked = [entry("demo-1.0-py3-none-any.whl", "1.0", yanked=""),
                  entry("demo-1.0-1-py3-none-any.whl", "1.0", build_tag=[1, ""], yanked="")]
    assert supersede(all_yanked) == all_yanked[1:]


def test_a_files_base_with_project_links_each_file_to_its_project_release():
    """index.files-base-url / publish.release-tag with {project}: one release per project."""
    s = Settings(title="t", url="", files_base="https://github.com/o/r/releases/download/wheels-{project}",
                 copy_logs=True)
    wheel = "MarkupSafe-2.1.5-1-cp313-cp313-manylinux_2_39_riscv64.whl"
    base = "https://github.com/o/r/releases/download/wheels-markupsafe/"
    assert s.file_url(wheel) == base + wheel
    assert s.file_url(wheel + ".metadata") == base + wheel + ".metadata"
    assert s.file_url("zope.interface-7.0-cp313-cp313-linux_riscv64.whl.log").startswith(
        "https://github.com/o/r/releases/download/wheels-zope-interface/")


def _proof(recipe, level="host", reached=True, reason=""):
    return {"recipe": recipe, "version": "1.0", "backend": "setuptools", "level": level, "reached": reached,
            "runner": "native", "wheel": f"{recipe}-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "size": 2_500_000,
            "seconds": 61.4, "date": "2026-11-30", "reason": reason}


def test_the_front_page_shows_the_catalog_status_counts_and_rows():
    rows = [_proof("cffi"), _proof("numpy", reached=False, reason="needs <gfortran>"), _proof("cffi", "riscv64")]
    plain = render_human_root([], 0, CO_HOSTED).decode()
    page = render_human_root([], 0, CO_HOSTED, rows).decode()
    assert "Catalog status" not in plain and render_human_root([], 0, CO_HOSTED, []).decode() == plain
    assert "host: 1 of 2 reached; riscv64: 1 of 1 reached." in page
    assert ('<tr><td>numpy</td><td>1.0</td><td>host</td><td>no</td><td class="n">2.4 MiB</td>'
            '<td class="n">61 s</td><td class="d">2026-11-30</td><td>needs &lt;gfortran&gt;</td></tr>') in page
    assert page.count("<tr><td>cffi</td>") == 2


def test_a_large_catalog_status_shows_its_counts_and_a_link_to_the_page():
    rows = [_proof(f"p{i}") for i in range(201)]
    page = render_human_root([], 0, Settings("t", "", "", True, attested_by="acme/wheels"), rows).decode()
    assert "host: 201 of 201 reached." in page and "<td>p0</td>" not in page
    assert '<a href="https://github.com/acme/wheels/blob/HEAD/docs/catalog-status.md">' in page
    assert "<td>p0</td>" in render_human_root([], 0, CO_HOSTED, rows[:200]).decode()
