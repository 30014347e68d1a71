"""The human pages in a real browser: headless Chromium renders them and takes a screenshot.

Needs Debian's ``chromium`` package (installed by .ci/run). The DOM Chromium
rendered is checked for the install command (with the index URL filled in by
the page's script), the apt-get line, the tags and the log link; the PNG is
checked to be a full-size screenshot. Set WHEELFACTORY_SCREENSHOTS=DIR to keep
the PNGs (docs/index.md shows how to look at them).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from support.wheels import store_wheel

from conftest import write_project
from wheelfactory.settings.factory import load_config
from wheelfactory.index import build_index
from wheelfactory.index.serve import IndexServer

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1280,900",
]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    assert exe, "Debian's chromium package is needed: apt-get install chromium"
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    profile.mkdir()  # a new, empty profile per run
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def site(tmp_path, real_wheels):
    root = write_project(tmp_path / "p", config="""
        [index]
        title = "riscv64 wheels (test)"
    """)
    (root / "logs").mkdir()
    (root / "logs" / "ms.log").write_text("build ok\n")
    store_wheel(root / "dist", real_wheels["jinja2"])
    store_wheel(root / "dist", real_wheels["markupsafe"], debian_runtime=["libopenblas0"], log="logs/ms.log")
    store_wheel(root / "dist", real_wheels["markupsafe_rebuilt"], debian_runtime=["libopenblas0", "libnuma1"],
                log="logs/ms.log")
    build_index(load_config(root))
    server = IndexServer(root / "index", quiet=True).start()
    yield server
    server.stop()


def test_pages_render_in_chromium(site, tmp_path, real_wheels):
    keep = os.environ.get("WHEELFACTORY_SCREENSHOTS")
    for page, name in (("project/markupsafe/", "project.png"), ("", "root.png")):
        shot = tmp_path / name
        r = chromium(tmp_path, f"--screenshot={shot}", site.url + page)
        assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
        assert png_size(shot) == (1280, 900)
        assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / name)

    dom = chromium(tmp_path, "--dump-dom", site.url + "project/markupsafe/").stdout
    text = html.unescape(re.sub(r"<[^>]+>", "", dom))  # what a reader sees
    # The script filled in this index's own URL in the install commands.
    assert f"pip install --prefer-binary --extra-index-url {site.url}simple/ markupsafe" in text
    assert f"uv pip install --index-strategy unsafe-best-match --index {site.url}simple/ markupsafe" in text
    assert "sudo apt-get install libnuma1 libopenblas0" in text
    rec = json.loads((site.directory.parent / "dist" / f"{real_wheels['markupsafe_rebuilt'].name}.json").read_text())
    assert all(tag in text for tag in rec["tags"])
    assert f'href="../../files/{real_wheels["markupsafe_rebuilt"].name}.log"' in dom
    root_dom = chromium(tmp_path, "--dump-dom", site.url).stdout
    assert '<a href="project/jinja2/">jinja2</a>' in root_dom and "riscv64 wheels (test)" in root_dom
