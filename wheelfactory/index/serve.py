"""``invoke serve``: the generated index on 127.0.0.1, for trying installs.

A static file server over ``index/`` (which holds the files too when they are
co-hosted) that does what a static host cannot: PEP 691 content negotiation.
A request for a ``simple/`` folder gets ``index.json`` as
``application/vnd.pypi.simple.v1+json`` when the Accept header prefers it (pip
and uv do), ``index.html`` otherwise, with ``Vary: Accept``; ``?format=TYPE``
overrides the header, and a request that accepts neither gets 406.
Directory listings are off: a published index never shows them either.
"""

from __future__ import annotations

import os
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .. import ui
from .render import HTML_TYPE, JSON_TYPE

# Media types we can answer a simple/ folder with -> (the file, the Content-Type sent).
# "latest" is an alias that PEP 691 answers with the concrete version.
_OFFERS = {
    JSON_TYPE: ("index.json", JSON_TYPE),
    "application/vnd.pypi.simple.latest+json": ("index.json", JSON_TYPE),
    HTML_TYPE: ("index.html", HTML_TYPE),
    "application/vnd.pypi.simple.latest+html": ("index.html", HTML_TYPE),
    "text/html": ("index.html", "text/html; charset=utf-8"),
}


def _parse_accept(header: str) -> list[tuple[str, float, int]]:
    """(media range, q, position) for each entry of an Accept header."""
    out = []
    for pos, part in enumerate(header.split(",")):
        fields = [f.strip() for f in part.split(";")]
        if not fields[0]:
            continue
        q = 1.0
        for param in fields[1:]:
            k, _, v = param.partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        out.append((fields[0].lower(), q, pos))
    return out


def negotiate(accept: str | None, fmt: str | None = None) -> str | None:
    """The media type to answer with, or None when nothing acceptable is offered.

    Highest q wins; among equals the client's order decides. ``*/*`` and
    ``text/*`` get plain HTML, the safe default for browsers and old clients.
    """
    if fmt:
        return fmt if fmt in _OFFERS else None
    if not accept:
        return "text/html"
    best: tuple[float, int, str] | None = None
    for media, q, pos in _parse_accept(accept):
        if q <= 0:
            continue
        if media in _OFFERS:
            offer = media
        elif media in ("*/*", "text/*", "application/*"):
            offer = "text/html" if media != "application/*" else JSON_TYPE
        else:
            continue
        key = (q, -pos, offer)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None


class IndexRequestHandler(SimpleHTTPRequestHandler):
    server_version = "wheelfactory-serve"
    extensions_map = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".whl": "application/octet-stream",
        ".metadata": "text/plain; charset=utf-8",
        ".log": "text/plain; charset=utf-8",
        ".json": "application/json",
        ".html": "text/html; charset=utf-8",
    }

    def send_head(self):
        parts = urlsplit(self.path)
        path = self.translate_path(parts.path)
        if os.path.isdir(path) and parts.path.endswith("/") and os.path.isfile(os.path.join(path, "index.json")):
            fmt = parse_qs(parts.query).get("format", [None])[0]
            fmt = fmt.replace(" ", "+") if fmt else fmt  # an unescaped '+' arrives as a space
            chosen = negotiate(self.headers.get("Accept"), fmt)
            if chosen is None:
                self.send_error(HTTPStatus.NOT_ACCEPTABLE, "offers: " + ", ".join(_OFFERS))
                return None
            filename, ctype = _OFFERS[chosen]
            target = os.path.join(path, filename)
            try:
                f = open(target, "rb")
            except OSError:
                self.send_error(HTTPStatus.NOT_FOUND)
                return None
            st = os.fstat(f.fileno())
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("Vary", "Accept")
            self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
            self.end_headers()
            return f
        return super().send_head()

    def send_header(self, keyword, value):
        if keyword.lower() == "content-type":
            self._content_type = value
        super().send_header(keyword, value)

    def list_directory(self, path):
        self.send_error(HTTPStatus.NOT_FOUND, "no directory listings")
        return None

    def log_request(self, code="-", size="-"):
        self._status = int(getattr(code, "value", code))  # logged in end_headers, once the type is known

    def end_headers(self):
        super().end_headers()
        status = getattr(self, "_status", 0)
        served = getattr(self, "_content_type", "")
        self.server.access.append((self.command, self.path, status, self.headers.get("Accept", ""), served))
        if not self.server.quiet:
            ui.info(f"{self.address_string()} {self.command} {self.path} {status} {served}")

    def log_message(self, format, *args):  # errors only; requests go through log_request
        if not self.server.quiet:
            ui.info(format % args)


class IndexServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = False):
        self.directory = Path(directory)
        self.access: list[tuple[str, str, int, str, str]] = []  # (method, path, status, Accept, Content-Type)
        self.quiet = quiet
        super().__init__((host, port), partial(IndexRequestHandler, directory=str(self.directory)))

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "IndexServer":
        """Serve in a background thread (tests, check-index); stop with ``shutdown()``."""
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="wheelfactory-serve",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
