"""invoke check-index: every link of a published index fetched and compared; failures listed."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support.wheels import store_wheel

from conftest import REPO, write_project
from wheelfactory.cli.index import check_index_command
from wheelfactory.index.check import IndexCheckFailed, check_index
from wheelfactory.settings.factory import load_config
from wheelfactory.index import build_index
from wheelfactory.index.serve import IndexServer


@pytest.fixture
def site(tmp_path, real_wheels):
    root = write_project(tmp_path / "p")
    (root / "logs").mkdir()
    (root / "logs" / "ms.log").write_text("log\n")
    store_wheel(root / "dist", real_wheels["jinja2"])
    store_wheel(root / "dist", real_wheels["markupsafe_rebuilt"], log="logs/ms.log")
    build_index(load_config(root))
    return root


def invoke_check(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "check-index", *args],
                          env={**os.environ, "WHEELFACTORY_ROOT": str(root)}, capture_output=True, text=True)


def test_a_true_index_passes_locally_and_over_http(site):
    r = invoke_check(site)  # default target: the local index/
    assert r.returncode == 0, r.stderr
    assert "every link resolves and matches (2 projects, 2 files" in r.stderr
    server = IndexServer(site / "index", quiet=True).start()
    try:
        result = check_index(server.url + "simple/")
        assert result.ok and result.projects == 2 and result.files == 2 and result.links > 0
        fetched = {a[1] for a in server.access}
        assert any(p.endswith(".whl") for p in fetched) and any(p.endswith(".whl.log") for p in fetched)
    finally:
        server.stop()


def test_relative_links_without_cohosted_files_are_caught(site, tmp_path, real_wheels):
    """The seed report's cffi 404: relative links published where the files are not."""
    pages_only = tmp_path / "pages"
    shutil.copytree(site / "index", pages_only, ignore=shutil.ignore_patterns("files", ".wheelfactory"))
    server = IndexServer(pages_only, quiet=True).start()
    try:
        r = invoke_check(site, "--target", server.url + "simple/")
    finally:
        server.stop()
    assert r.returncode == 1
    for key in ("jinja2", "markupsafe_rebuilt"):
        assert f"/files/{real_wheels[key].name}: answered 404" in r.stderr
        assert f"/files/{real_wheels[key].name}.metadata: answered 404" in r.stderr
    assert "broken link(s)" in r.stderr and "Traceback" not in r.stderr


def test_metadata_that_is_not_the_wheels_own(tmp_path, real_wheels):
    """A record whose metadata text is not the wheel's: its hash is consistent, the bytes are not."""
    root = write_project(tmp_path / "p")
    fake_meta = "Metadata-Version: 2.1\nName: jinja2\nVersion: 3.1.4\nRequires-Python: >=3.7\n\n"
    import hashlib

    store_wheel(root / "dist", real_wheels["jinja2"], metadata=fake_meta,
                metadata_sha256=hashlib.sha256(fake_meta.encode()).hexdigest())
    build_index(load_config(root))
    result = check_index(str(root / "index"))
    assert result.problems == [
        f"{(root / 'index/files').as_uri()}/{real_wheels['jinja2'].name}.metadata: "
        "differs from the METADATA inside the wheel"
    ]


def test_each_kind_of_lie_is_listed(site, real_wheels):
    idx = site / "index"
    ms = real_wheels["markupsafe_rebuilt"].name
    # A missing .metadata, a JSON page that disagrees, a missing build log.
    (idx / "files" / f"{ms}.metadata").unlink()
    data = json.loads((idx / "simple/jinja2/index.json").read_bytes())
    data["files"][0]["size"] += 1
    data["files"][0]["hashes"]["sha256"] = "0" * 64
    (idx / "simple/jinja2/index.json").write_text(json.dumps(data))
    (idx / "files" / f"{ms}.log").unlink()
    with pytest.raises(IndexCheckFailed) as e:
        check_index_command(site)
    msg = str(e.value)
    assert f"{ms}.metadata: answered 404" in msg
    assert "the JSON sha256 differs from the HTML #sha256" in msg
    assert "bytes, the index says" in msg
    assert f"{ms}.log: linked from a human page, answered 404" in msg
    assert msg.count("\n  - ") == 4


def test_quick_mode_heads_the_wheels(site, real_wheels):
    server = IndexServer(site / "index", quiet=True).start()
    try:
        (site / "index" / "files" / real_wheels["jinja2"].name).unlink()
        result = check_index(server.url + "simple/", quick=True)
        heads = [a for a in server.access if a[0] == "HEAD" and a[1].endswith(".whl")]
        gets = [a for a in server.access if a[0] == "GET" and a[1].endswith(".whl")]
    finally:
        server.stop()
    assert heads and not gets
    assert result.problems == [f"{server.url}files/{real_wheels['jinja2'].name}: answered 404"]


def test_no_index_here_is_one_message(tmp_path):
    with pytest.raises(IndexCheckFailed, match="no index here"):
        check_index(str(tmp_path))


class _GetOnlyHost(http.server.SimpleHTTPRequestHandler):
    """A download host like a presigned S3 URL: HEAD answers 403, GET honours one byte range."""

    def do_HEAD(self):
        self.send_error(403, "SignatureDoesNotMatch")

    def do_GET(self):
        self.server.gets.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if self.headers.get("Range") != "bytes=0-0" or not path.is_file():
            return super().do_GET()
        data = path.read_bytes()
        self.send_response(206)
        self.send_header("Content-Range", f"bytes 0-0/{len(data)}")
        self.send_header("Content-Length", "1")
        self.end_headers()
        self.wfile.write(data[:1])

    def log_message(self, *args):
        pass


def test_quick_mode_falls_back_to_a_ranged_get_when_head_is_refused(tmp_path, real_wheels):
    files = tmp_path / "host" / "files"
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_GetOnlyHost, directory=str(files.parent)))
    httpd.gets = []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}/files"
        root = write_project(tmp_path / "p", config=f'[index]\nfiles-base-url = "{base}"\n')
        store_wheel(root / "dist", real_wheels["jinja2"])
        store_wheel(root / "dist", real_wheels["markupsafe_rebuilt"])
        build_index(load_config(root))
        files.mkdir(parents=True)
        for p in (root / "dist").glob("*.whl"):
            shutil.copyfile(p, files / p.name)
            (files / f"{p.name}.metadata").write_bytes((root / "index/files" / f"{p.name}.metadata").read_bytes())
        result = check_index(str(root / "index"), quick=True)
        assert result.problems == [] and result.files == 2
        ranged = sorted(path for path, rng in httpd.gets if rng == "bytes=0-0")
        assert ranged == sorted(f"/files/{p.name}" for p in (root / "dist").glob("*.whl"))
        # The size comes from Content-Range: a truncated file is caught without downloading it.
        jinja = files / real_wheels["jinja2"].name
        jinja.write_bytes(jinja.read_bytes()[:-10])
        (problem,) = check_index(str(root / "index"), quick=True).problems
        assert problem.startswith(f"{base}/{jinja.name}:") and "bytes" in problem
    finally:
        httpd.shutdown()
