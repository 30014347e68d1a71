"""_util.simple_api: PEP 691 JSON and PEP 503 HTML project pages read the same way (no network)."""

from __future__ import annotations

import json

import pytest

from wheelfactory._util import simple_api
from wheelfactory._util.simple_api import ProjectFile

BASE = "https://index.example/simple/wf-demo/"
FILES = [
    ("wf_demo-1.0.tar.gz", "../../files/wf_demo-1.0.tar.gz", "a" * 64, ">=3.9", None),
    ("wf_demo-1.0-cp312-cp312-manylinux_2_39_riscv64.whl",
     "https://files.example/wf_demo-1.0-cp312-cp312-manylinux_2_39_riscv64.whl", "b" * 64, "", None),
    ("wf_demo-1.1-2-py3-none-any.whl", "../../files/wf_demo-1.1-2-py3-none-any.whl", "", "", "broken build"),
    ("WF.Demo-1.2.zip", "../../files/WF.Demo-1.2.zip", "c" * 64, "", ""),
    ("wf_demo-1.3.tar.bz2", "../../files/wf_demo-1.3.tar.bz2", "", "", None),
]
# Not files of wf-demo (another project, an egg, a name packaging refuses): left out, as pip does.
OTHERS = ["other-1.0.tar.gz", "wf_demo-1.0-py2.7.egg", "wf_demo-notaversion.tar.gz", "wf_demo-1.0.exe"]

EXPECTED = [
    ProjectFile("wf_demo-1.0.tar.gz", "https://index.example/files/wf_demo-1.0.tar.gz", "a" * 64, ">=3.9", None,
                "sdist", "1.0"),
    ProjectFile("wf_demo-1.0-cp312-cp312-manylinux_2_39_riscv64.whl",
                "https://files.example/wf_demo-1.0-cp312-cp312-manylinux_2_39_riscv64.whl", "b" * 64, "", None,
                "wheel", "1.0"),
    ProjectFile("wf_demo-1.1-2-py3-none-any.whl", "https://index.example/files/wf_demo-1.1-2-py3-none-any.whl", "",
                "", "broken build", "wheel", "1.1"),
    ProjectFile("WF.Demo-1.2.zip", "https://index.example/files/WF.Demo-1.2.zip", "c" * 64, "", "", "sdist", "1.2"),
    ProjectFile("wf_demo-1.3.tar.bz2", "https://index.example/files/wf_demo-1.3.tar.bz2", "", "", None, "sdist",
                "1.3"),
]


def _json_page(versions=None) -> bytes:
    files = [{"filename": fn, "url": url, "hashes": {"sha256": sha} if sha else {}, "requires-python": rp or None,
              "yanked": False if yanked is None else (yanked or True)} for fn, url, sha, rp, yanked in FILES]
    files += [{"filename": fn, "url": fn, "hashes": {}} for fn in OTHERS]
    page = {"meta": {"api-version": "1.1"}, "name": "wf-demo", "files": files}
    if versions:
        page["versions"] = versions
    return json.dumps(page).encode()


def _html_page() -> bytes:
    links = []
    for fn, url, sha, rp, yanked in FILES:
        attrs = f' data-requires-python="{rp.replace(">", "&gt;")}"' if rp else ""
        attrs += "" if yanked is None else f' data-yanked="{yanked}"'
        links.append(f'<a href="{url}{"#sha256=" + sha if sha else ""}"{attrs}>{fn}</a>')
    links += [f'<a href="{fn}">{fn}</a>' for fn in OTHERS]
    return ("<!DOCTYPE html><html><body>" + "<br>".join(links) + "</body></html>").encode()


def test_json_and_html_pages_give_the_same_files():
    files, versions = simple_api.parse_json_page("WF_Demo", _json_page(), BASE)
    assert files == EXPECTED
    assert versions == ["1.0", "1.1", "1.2", "1.3"]
    html_files, html_versions = simple_api.parse_html_page("wf-demo", _html_page(), BASE)
    assert html_files == EXPECTED and html_versions == versions


def test_pep700_versions_are_taken_as_listed():
    _, versions = simple_api.parse_json_page("wf-demo", _json_page(versions=["1.0", "1.1", "2.0rc1"]), BASE)
    assert versions == ["1.0", "1.1", "2.0rc1"]


@pytest.mark.parametrize("project, filename, parsed", [
    ("numpy", "numpy-2.3.5-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl", ("wheel", "2.3.5")),
    ("torch", "torch-2.10.0+cpu-cp312-cp312-linux_x86_64.whl", ("wheel", "2.10.0+cpu")),
    ("numpy", "numpy-2.3.5.tar.gz", ("sdist", "2.3.5")),
    ("numpy", "numpy-2.3.5.TGZ", ("sdist", "2.3.5")),
    ("numpy", "numpy-2.0.0.zip", ("sdist", "2.0.0")),  # spelled as packaging spells it, not canonicalized
    ("numpy", "numpy-1.0-py2.7.egg", None),
    ("numpy", "scipy-1.0.tar.gz", None),
])
def test_file_version(project, filename, parsed):
    assert simple_api.file_version(project, filename) == parsed


def test_project_url_and_cache_control():
    assert simple_api.project_url("https://pypi.org/simple/", "Foo_Bar.baz") == "https://pypi.org/simple/foo-bar-baz/"
    assert simple_api.cache_max_age({"Cache-Control": "max-age=600, public"}) == 600
    assert simple_api.cache_max_age({"Cache-Control": "no-cache"}) == 0
    assert simple_api.cache_max_age({}) is None


def test_a_file_index_is_read_from_its_folder(tmp_path):
    (tmp_path / "wf-demo").mkdir()
    (tmp_path / "wf-demo" / "index.html").write_bytes(_html_page())
    with simple_api.Client() as client:
        page = client.page(tmp_path.as_uri(), "WF_Demo")
        missing = client.page(tmp_path.as_uri(), "wf-other")
    assert page.status == 200 and [f.filename for f in page.files] == [f.filename for f in EXPECTED]
    # Relative links are resolved against the page file: ../../files/ from ROOT/wf-demo/index.html.
    assert page.files[0].url == (tmp_path.parent / "files" / "wf_demo-1.0.tar.gz").as_uri()
    assert missing.status == 404 and client.requests == 0
