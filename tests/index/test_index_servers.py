"""The nginx and Caddy rules of docs/index.md, run for real: PEP 691 negotiation on a static host.

The rules are read from the documentation itself (its ```nginx and ```caddy
blocks), so the documented configuration is the tested one. Needs Debian's
nginx-light and caddy packages (installed by .ci/run).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from support.pip import JSON_TYPE, clean_env, pip, pip_venv  # noqa: F401 (fixture)
from support.wheels import store_wheel

from conftest import REPO, write_project
from wheelfactory.index.check import check_index
from wheelfactory.settings.factory import load_config
from wheelfactory.publish import publish

DOC = REPO / "docs" / "index.md"


def doc_block(lang: str) -> str:
    m = re.search(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)
    assert m, f"docs/index.md has no ```{lang} block"
    return m.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, proc: subprocess.Popen) -> None:
    for _ in range(100):
        if proc.poll() is not None:
            raise AssertionError(f"the server exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the server did not start")


@pytest.fixture
def site(tmp_path, real_wheels):
    root = write_project(tmp_path / "p", config=f'[publish]\ndirectory = "{tmp_path / "www"}"\n')
    store_wheel(root / "dist", real_wheels["jinja2"])
    store_wheel(root / "dist", real_wheels["markupsafe"])
    store_wheel(root / "dist", real_wheels["markupsafe_rebuilt"])
    publish(load_config(root))
    return tmp_path / "www"


def nginx(tmp_path: Path, www: Path, port: int) -> subprocess.Popen:
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(exe), "Debian's nginx-light package is needed: apt-get install nginx-light"
    rules = doc_block("nginx").replace("listen 80;", f"listen 127.0.0.1:{port};").replace("/srv/wheels", str(www))
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")  # workers that can read pytest's 0700 folders
        + f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/nginx-error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\naccess_log {tmp_path}/nginx-access.log;\ninclude /etc/nginx/mime.types;\n"
        + "".join(f"{kind}_temp_path {tmp_path}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        + f"{rules}\n}}\n"
    )
    return subprocess.Popen([exe, "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.PIPE, text=True)


def caddy(tmp_path: Path, www: Path, port: int) -> subprocess.Popen:
    exe = shutil.which("caddy")
    assert exe, "Debian's caddy package is needed: apt-get install caddy"
    rules = doc_block("caddy").replace(":80 {", f":{port} {{\n\tbind 127.0.0.1").replace("/srv/wheels", str(www))
    conf = tmp_path / "Caddyfile"
    conf.write_text("{\n\tadmin off\n\tauto_https off\n"
                    f"\tstorage file_system {tmp_path}/caddy-data\n}}\n{rules}")
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    return subprocess.Popen([exe, "run", "--config", str(conf), "--adapter", "caddyfile"], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


@pytest.mark.parametrize("server", [nginx, caddy], ids=["nginx", "caddy"])
def test_documented_server_rule_negotiates(server, site, tmp_path, pip_venv, real_wheels):  # noqa: F811
    port = free_port()
    proc = server(tmp_path, site, port)
    try:
        wait_for(port, proc)
        base = f"http://127.0.0.1:{port}/simple/"
        for url in (base, base + "markupsafe/"):
            r = requests.get(url, headers={"Accept": f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.1"})
            assert r.status_code == 200 and r.headers["Content-Type"] == JSON_TYPE
            assert r.headers["Vary"] == "Accept" and r.json()["meta"]["api-version"] == "1.1"
            r = requests.get(url, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
            assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
            assert r.text.startswith("<!DOCTYPE html>")
        assert check_index(base).problems == []
        r = pip(pip_venv, "install", "--dry-run", "--report", "-", "--quiet", "--index-url", base, "jinja2",
                env=clean_env(tmp_path))
        assert r.returncode == 0, r.stderr
        assert real_wheels["markupsafe_rebuilt"].name in r.stdout
    finally:
        proc.terminate()
        proc.wait(timeout=20)
