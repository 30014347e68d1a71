"""nox turns on DEBUG logging for the whole process; every engine command keeps the HTTP and lock
libraries' chatter out of the terminal (each request would otherwise print a line)."""

from __future__ import annotations

import io
import logging
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import urllib3

from wheelfactory import cli


def test_a_command_under_nox_debug_logging_prints_no_urllib3_lines(tmp_path):
    (tmp_path / "hello.txt").write_text("hi\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 lambda *a: SimpleHTTPRequestHandler(*a, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # what nox does
    try:
        def command() -> int:
            body = urllib3.PoolManager().request("GET", f"http://127.0.0.1:{server.server_port}/hello.txt").data
            assert body == b"hi\n"
            logging.getLogger("wheelfactory.example").debug("the engine's own debug line")
            return 0

        cli.run(command)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for name in ("urllib3", "filelock"):
            logging.getLogger(name).setLevel(logging.NOTSET)
        server.shutdown()
    out = stream.getvalue()
    assert "the engine's own debug line" in out  # the handler really saw DEBUG records
    assert "Starting new HTTP connection" not in out and "hello.txt" not in out, out
