"""A local stand-in for GitHub's release endpoints, on 127.0.0.1 (GitHub is not reachable here).

It speaks the real wire format of the endpoints publishing uses, on three hosts
like GitHub's (separate ports):

  api      GET  /repos/O/R                                  repository (404 {"message": "Not Found"})
           GET  /repos/O/R/releases?per_page&page            releases (with their assets), Link rel="next"
           GET  /repos/O/R/releases/tags/TAG                release or 404
           POST /repos/O/R/releases                         201 release; 422 already_exists
           GET  /repos/O/R/releases/ID
           GET  /repos/O/R/releases/ID/assets?per_page&page  list, with a Link header (rel="next")
           GET|DELETE /repos/O/R/releases/assets/ID          asset JSON / 204; Accept:
                                                            application/octet-stream -> 302 to the bytes
  uploads  POST /repos/O/R/releases/ID/assets?name&label     201 asset; 422 already_exists
                                                            (the release's upload_url is the RFC 6570
                                                            template "…/assets{?name,label}")
  web      GET|HEAD /O/R/releases/download/TAG/NAME         302 -> /objects/ID/NAME -> 200 bytes

           GET  /repos/O/R/pages                            Pages site (build_type, source) or 404
           GET  /repos/O/R/immutable-releases               200 {"enabled": true} or 404
           PATCH /repos/O/R/releases/ID                     {"draft": false} publishes a draft
  pages    GET  /PATH                                       the Pages branch as deployed (see below)

Assets carry id, name, label, content_type, state ("uploaded", or "starter" for
a failed upload, as GitHub leaves them), size, digest ("sha256:…", switchable
off like older GitHub Enterprise), created_at/updated_at, url and
browser_download_url. Asset names are renamed as GitHub does it
(https://docs.github.com/en/rest/releases/assets#upload-a-release-asset: "special
characters, non-alphanumeric characters, and leading or trailing periods"; as
observed in travis-ci/dpl#821 and github/rest-api-description#2968: each run of
characters other than letters, digits, '_', '-', '+' and '@' (dots included)
becomes one '.', leading and trailing dots are dropped).
Authentication: ``Authorization: Bearer TOKEN`` (or ``token TOKEN``), else 401;
a repository in ``public`` may be read without a token.

As strict as GitHub where publishing can trip:

* uploads need ``Content-Length`` (411 without), at most ``max_asset_size``
  bytes (2 GiB) and ``max_assets`` assets per release (1000, enforced since July
  2025): 422 ``Validation Failed`` with ``errors[].field`` ``size`` / ``file_count``;
* immutable releases (``immutable=True``): a published release is locked, uploads
  and deletes answer 422; drafts are not locked until published (PATCH);
* the primary rate limit (``rate_limit`` requests per ``rate_window`` seconds per
  token, 60 without one) with ``x-ratelimit-*`` headers on every API and upload
  answer and 403 when exhausted; secondary limits by :meth:`FakeGitHub.inject`
  ``("secondary", seconds=N)`` (403 with ``Retry-After: N``) or ``"secondary-429"``;
* the download host (objects) refuses HEAD (403), as presigned storage URLs do;
* Pages (:meth:`FakeGitHub.attach_pages`): a push to the Pages branch is
  deployed ``deploy_delay`` seconds later (a separate run on GitHub, up to ~10
  minutes), and every answer is cached by URL (query string included, as
  GitHub's CDN does) for ``max_age`` seconds and sent with
  ``Cache-Control: max-age=600``. The delays default to GitHub's; tests shorten them.

Faults are injected with :meth:`FakeGitHub.inject`: HTTP 500/502 answers (a
502 on upload leaves a "starter" asset, as GitHub's documentation warns),
connection resets (before or in the middle of reading an upload), stalls longer
than the client's timeout, and "hang" (hold the request until released, for
killing a client mid-upload).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import re
import socket
import struct
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def github_asset_name(name: str) -> str:
    """GitHub's renaming of uploaded asset names (see the module docstring)."""
    return re.sub(r"(?:[^A-Za-z0-9_+@-]|\.)+", ".", name).strip(".") or "default"


GiB = 1 << 30
SECONDARY = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again.")


@dataclass
class Fault:
    kind: str  # "500" | "502" | "reset" | "reset-mid-body" | "stall" | "hang" | "secondary" | "secondary-429"
    host: str | None = None  # "api" | "uploads" | "web" | None (any)
    method: str | None = None
    path: str | None = None  # regex searched in the path
    count: int = 1  # how many matching requests it hits
    after: int = 0  # let this many matching requests through first
    seconds: float = 3.0  # for "stall"; Retry-After for "secondary"
    hits: int = 0
    entered: threading.Event = field(default_factory=threading.Event)  # a request hit it
    release: threading.Event = field(default_factory=threading.Event)  # "hang": let it go

    def matches(self, host: str, method: str, path: str) -> bool:
        """Whether this request gets the fault (counting the ones let through first)."""
        if self.hits >= self.count:
            return False
        if not ((self.host is None or self.host == host)
                and (self.method is None or self.method == method)
                and (self.path is None or re.search(self.path, path) is not None)):
            return False
        if self.after > 0:
            self.after -= 1
            return False
        return True


class FakeGitHub:
    def __init__(self, *, token: str = "ghp_fakeTokenForTests0123456789abcdef", repositories=("octo/wheels",),
                 max_per_page: int = 100, digests: bool = True, public=(), immutable: bool = False,
                 max_assets: int = 1000, max_asset_size: int = 2 * GiB, rate_limit: int = 5000,
                 rate_window: float = 3600.0, deploy_delay: float = 60.0, max_age: float = 600.0):
        self.token = token
        self.repositories = {r: {"id": i + 1, "releases": {}} for i, r in enumerate(repositories)}
        self.max_per_page = max_per_page
        self.digests = digests
        self.public = set(public)
        self.immutable = immutable
        self.max_assets, self.max_asset_size = max_assets, max_asset_size
        self.rate_limit, self.rate_window = rate_limit, rate_window
        self._windows: dict[str, list] = {}  # token or "" -> [window start, used]
        self.pages: dict[str, dict] = {}  # repository -> GET /pages body
        self.deploy_delay, self.max_age = deploy_delay, max_age
        self._pages_git: tuple[str, str] | None = None  # (bare repository, branch)
        self._deployed: dict[str, bytes] | None = None  # path -> bytes of the live deployment
        self.deployed_sha: str | None = None
        self._cache: dict[str, tuple[float, int, bytes, str]] = {}
        self.write_times: list[float] = []  # monotonic times of API/upload writes
        self.lock = threading.RLock()
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, str, int]] = []  # (host, method, path, status)
        self.log_times: list[float] = []  # time.monotonic() of each log entry
        self._ids = iter(range(1000, 10**9))
        self.servers: dict[str, ThreadingHTTPServer] = {}

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> "FakeGitHub":
        self._stopping = threading.Event()
        for host in ("api", "uploads", "web", "pages"):
            server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, host))
            server.daemon_threads = True
            self.servers[host] = server
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for f in self.faults:
            f.release.set()
        for s in self.servers.values():
            s.shutdown()
            s.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def url(self, host: str) -> str:
        return f"http://127.0.0.1:{self.servers[host].server_address[1]}"

    @property
    def api_url(self) -> str:
        return self.url("api")

    def download_base(self, repository: str, tag: str) -> str:
        return f"{self.url('web')}/{repository}/releases/download/{tag}"

    @property
    def pages_url(self) -> str:
        return self.url("pages")

    def attach_pages(self, repository: str, bare: str, branch: str = "gh-pages", *,
                     build_type: str = "legacy") -> None:
        """Serve ``branch`` of the bare git repository ``bare`` as ``repository``'s Pages site,
        each push deployed ``deploy_delay`` seconds after it lands (a thread watches the branch)."""
        self.pages[repository] = {"url": f"{self.api_url}/repos/{repository}/pages", "status": "built",
                                  "cname": None, "custom_404": False, "html_url": f"{self.pages_url}/",
                                  "build_type": build_type, "source": {"branch": branch, "path": "/"},
                                  "public": True, "https_enforced": True}
        self._pages_git = (bare, branch)
        threading.Thread(target=self._deployer, daemon=True).start()

    def _deployer(self) -> None:
        seen, due = None, None  # the branch head last seen; (sha, time) of the next deployment
        while not self._stopping.wait(0.05):
            bare, branch = self._pages_git
            r = subprocess.run(["git", "--git-dir", bare, "rev-parse", "-q", "--verify", f"refs/heads/{branch}"],
                               capture_output=True, text=True)
            head = r.stdout.strip() or None
            if head and head != seen:
                seen, due = head, (head, time.monotonic() + self.deploy_delay)
            if due and time.monotonic() >= due[1]:
                self._deploy(bare, due[0])
                due = None

    def _deploy(self, bare: str, sha: str) -> None:
        tar = subprocess.run(["git", "--git-dir", bare, "archive", "--format=tar", sha], capture_output=True,
                             check=True).stdout
        files = {}
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            for m in t.getmembers():
                if m.isfile():
                    files["/" + m.name] = t.extractfile(m).read()
        with self.lock:
            self._deployed, self.deployed_sha = files, sha

    def inject(self, kind: str, **kw) -> Fault:
        f = Fault(kind, **kw)
        with self.lock:
            self.faults.append(f)
        return f

    # --- state helpers for tests --------------------------------------------------------

    def release(self, repository: str, tag: str) -> dict | None:
        with self.lock:
            for rel in self.repositories[repository]["releases"].values():
                if rel["tag_name"] == tag:
                    return rel
        return None

    def assets(self, repository: str, tag: str) -> dict[str, dict]:
        rel = self.release(repository, tag)
        return {} if rel is None else {a["name"]: a for a in rel["_assets"].values()}

    def asset_bytes(self, repository: str, tag: str, name: str) -> bytes:
        return self.assets(repository, tag)[name]["_data"]

    def put_asset(self, repository: str, tag: str, name: str, data: bytes, *, label: str = "",
                  state: str = "uploaded", updated_at: str | None = None) -> dict:
        """Place an asset directly (a test's "someone uploaded this earlier")."""
        with self.lock:
            rel = self.release(repository, tag) or self._create_release(repository, {"tag_name": tag})
            return self._add_asset(repository, rel, name, data, "application/octet-stream", label, state,
                                   updated_at)

    def snapshot(self) -> dict:
        """Every release and asset (name -> sha256, state), to prove nothing changed."""
        with self.lock:
            return {
                repo: {
                    rel["tag_name"]: {a["name"]: (hashlib.sha256(a["_data"]).hexdigest(), a["state"])
                                      for a in rel["_assets"].values()}
                    for rel in r["releases"].values()
                }
                for repo, r in self.repositories.items()
            }

    # --- JSON shapes -----------------------------------------------------------------

    def _public(self, obj: dict) -> dict:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _release_json(self, rel: dict) -> dict:
        out = self._public(rel)
        out["assets"] = [self._asset_json(a) for a in rel["_assets"].values()]
        return out

    def _asset_json(self, a: dict) -> dict:
        out = self._public(a)
        if not self.digests:
            out.pop("digest", None)
        return out

    def _create_release(self, repository: str, body: dict) -> dict:
        rid = next(self._ids)
        tag = body["tag_name"]
        rel = {
            "url": f"{self.api_url}/repos/{repository}/releases/{rid}",
            "assets_url": f"{self.api_url}/repos/{repository}/releases/{rid}/assets",
            "upload_url": f"{self.url('uploads')}/repos/{repository}/releases/{rid}/assets{{?name,label}}",
            "html_url": f"{self.url('web')}/{repository}/releases/tag/{tag}",
            "id": rid,
            "tag_name": tag,
            "target_commitish": body.get("target_commitish", "main"),
            "name": body.get("name") or tag,
            "body": body.get("body", ""),
            "draft": bool(body.get("draft", False)),
            "prerelease": bool(body.get("prerelease", False)),
            "immutable": self.immutable and not body.get("draft", False),
            "created_at": _now(),
            "published_at": _now(),
            "_assets": {},
            "_repo": repository,
        }
        self.repositories[repository]["releases"][rid] = rel
        return rel

    def _add_asset(self, repository: str, rel: dict, name: str, data: bytes, ctype: str, label: str,
                   state: str = "uploaded", updated_at: str | None = None) -> dict:
        aid = next(self._ids)
        name = github_asset_name(name)
        a = {
            "url": f"{self.api_url}/repos/{repository}/releases/assets/{aid}",
            "browser_download_url": f"{self.download_base(repository, rel['tag_name'])}/{quote(name)}",
            "id": aid,
            "name": name,
            "label": label or None,
            "state": state,
            "content_type": ctype,
            "size": len(data),
            "digest": f"sha256:{hashlib.sha256(data).hexdigest()}" if state == "uploaded" else None,
            "download_count": 0,
            "created_at": _now(),
            "updated_at": updated_at or _now(),
            "uploader": {"login": "fake"},
            "_data": data,
        }
        rel["_assets"][aid] = a
        return a


def _handler(gh: FakeGitHub, host: str):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        # --- plumbing ---------------------------------------------------------------

        def _send(self, status: int, body=None, headers: dict | None = None, raw: bytes | None = None):
            data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
            self.send_response(status)
            if raw is None and body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            for k, v in {**getattr(self, "_limit_headers", {}), **(headers or {})}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            with gh.lock:
                gh.log.append((host, self.command, self.path, status))
                gh.log_times.append(time.monotonic())

        def _reset(self):
            """Drop the connection with a TCP RST (SO_LINGER 0), answering nothing."""
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            with gh.lock:
                gh.log.append((host, self.command, self.path, 0))
                gh.log_times.append(time.monotonic())

        def _body(self, limit: int | None = None) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n if limit is None else min(n, limit))

        def _fault(self) -> Fault | None:
            path = urlsplit(self.path).path
            with gh.lock:
                for f in gh.faults:
                    if f.matches(host, self.command, path):
                        f.hits += 1
                        f.entered.set()
                        return f
            return None

        def _authorized(self) -> bool:
            """A good token, or none for reading a public repository; then the primary rate limit."""
            auth = self.headers.get("Authorization", "")
            scheme, _, value = auth.partition(" ")
            if scheme.lower() in ("bearer", "token") and value == gh.token:
                return self._counted(gh.token, gh.rate_limit)
            m = re.match(r"/repos/([^/]+/[^/]+)", urlsplit(self.path).path)
            if not auth and self.command == "GET" and m and m.group(1) in gh.public:
                return self._counted("", 60)
            self._body()
            self._send(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"})
            return False

        def _counted(self, who: str, limit: int) -> bool:
            """Count the request against ``who``'s window; 403 with the headers GitHub sends when it is used up
            (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api)."""
            with gh.lock:
                now = time.time()
                window = gh._windows.setdefault(who, [now, 0])
                if now >= window[0] + gh.rate_window:
                    window[:] = [now, 0]
                exhausted = window[1] >= limit
                if not exhausted:
                    window[1] += 1
                    if self.command in ("POST", "PATCH", "PUT", "DELETE"):
                        gh.write_times.append(time.monotonic())
                self._limit_headers = {
                    "x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(limit - window[1]),
                    "x-ratelimit-used": str(window[1]), "x-ratelimit-reset": str(int(window[0] + gh.rate_window)),
                    "x-ratelimit-resource": "core"}
            if exhausted:
                self._body()
                self._send(403, {"message": "API rate limit exceeded for installation. If you reach out to GitHub "
                                            "Support for help, please include the request ID.",
                                 "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-"
                                                      "rest-api#about-the-primary-rate-limit"})
                return False
            return True

        def _dispatch(self):
            self._limit_headers = {}
            fault = self._fault()
            if fault is not None:
                if fault.kind in ("500", "502"):
                    body = self._body()
                    if fault.kind == "502" and host == "uploads":
                        self._upload(body, state="starter")  # GitHub: "may leave an empty asset"
                        return
                    self._send(int(fault.kind), {"message": "Server Error"})
                    return
                if fault.kind == "reset":
                    self._body()
                    self._reset()
                    return
                if fault.kind == "reset-mid-body":
                    self._body(limit=1024)
                    if host == "uploads":
                        self._upload(b"", state="starter", accept_partial=True)
                    self._reset()
                    return
                if fault.kind in ("secondary", "secondary-429"):
                    self._body()
                    return self._send(403 if fault.kind == "secondary" else 429,
                                      {"message": SECONDARY, "documentation_url": "https://docs.github.com/rest/"
                                       "overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"},
                                      {"Retry-After": str(int(fault.seconds))})
                if fault.kind == "stall":
                    time.sleep(fault.seconds)
                if fault.kind == "hang":
                    fault.release.wait(120)
                    self._reset()
                    return
            getattr(self, f"_{host}")()

        do_GET = do_POST = do_DELETE = do_HEAD = do_PATCH = lambda self: self._dispatch()

        # --- api ----------------------------------------------------------------------

        def _api(self):
            if not self._authorized():
                return
            parts = urlsplit(self.path)
            path, query = parts.path, parse_qs(parts.query)
            m = re.fullmatch(r"/repos/([^/]+/[^/]+)(/.*)?", path)
            if not m or m.group(1) not in gh.repositories:
                self._body()
                self._send(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
                return
            repo, rest = m.group(1), m.group(2) or ""
            with gh.lock:
                if rest == "/pages" and self.command == "GET":
                    body = gh.pages.get(repo)
                    return self._send(200, body) if body else self._send(404, {
                        "message": "Not Found",
                        "documentation_url": "https://docs.github.com/rest/pages/pages#get-a-apiname-pages-site"})
                if rest == "/immutable-releases" and self.command == "GET":
                    return (self._send(200, {"enabled": True, "enforced_by_owner": False}) if gh.immutable
                            else self._send(404, {"message": "Not Found"}))
                if rest == "" and self.command == "GET":
                    r = gh.repositories[repo]
                    owner, name = repo.split("/")
                    return self._send(200, {"id": r["id"], "name": name, "full_name": repo,
                                            "owner": {"login": owner}, "permissions": {"push": True}})
                if rest == "/releases" and self.command == "GET":  # newest first, as GitHub lists them
                    rels = sorted(gh.repositories[repo]["releases"].values(), key=lambda r: -r["id"])
                    return self._send_page([gh._release_json(r) for r in rels], parts, query)
                if rest == "/releases" and self.command == "POST":
                    body = json.loads(self._body() or b"{}")
                    if "tag_name" not in body:
                        return self._send(422, {"message": "Validation Failed",
                                                "errors": [{"resource": "Release", "code": "missing_field",
                                                            "field": "tag_name"}]})
                    if gh.release(repo, body["tag_name"]) is not None:
                        return self._send(422, {"message": "Validation Failed",
                                                "errors": [{"resource": "Release", "code": "already_exists",
                                                            "field": "tag_name"}]})
                    return self._send(201, gh._release_json(gh._create_release(repo, body)))
                m2 = re.fullmatch(r"/releases/tags/(.+)", rest)
                if m2 and self.command == "GET":
                    rel = gh.release(repo, unquote(m2.group(1)))
                    return self._send(200, gh._release_json(rel)) if rel else self._send(404, {"message": "Not Found"})
                m2 = re.fullmatch(r"/releases/(\d+)", rest)
                if m2 and self.command == "PATCH":
                    rel = gh.repositories[repo]["releases"].get(int(m2.group(1)))
                    if rel is None:
                        return self._send(404, {"message": "Not Found"})
                    body = json.loads(self._body() or b"{}")
                    if rel["immutable"]:
                        return self._send(422, _immutable("Release", "Cannot modify an immutable release."))
                    if "draft" in body and rel["draft"] and not body["draft"]:
                        rel["draft"], rel["published_at"] = False, _now()
                        rel["immutable"] = gh.immutable
                    rel.update({k: body[k] for k in ("name", "body") if k in body})
                    return self._send(200, gh._release_json(rel))
                m2 = re.fullmatch(r"/releases/(\d+)(/assets)?", rest)
                if m2 and self.command == "GET":
                    rel = gh.repositories[repo]["releases"].get(int(m2.group(1)))
                    if rel is None:
                        return self._send(404, {"message": "Not Found"})
                    if not m2.group(2):
                        return self._send(200, gh._release_json(rel))
                    return self._send_page([gh._asset_json(a) for a in rel["_assets"].values()], parts, query)
                m2 = re.fullmatch(r"/releases/assets/(\d+)", rest)
                if m2:
                    aid = int(m2.group(1))
                    rel = next((r for r in gh.repositories[repo]["releases"].values() if aid in r["_assets"]), None)
                    if rel is None:
                        return self._send(404, {"message": "Not Found"})
                    a = rel["_assets"][aid]
                    if self.command == "DELETE":
                        if rel["immutable"]:
                            return self._send(422, _immutable("ReleaseAsset",
                                                              "Cannot delete an asset of an immutable release."))
                        del rel["_assets"][aid]
                        return self._send(204)
                    if self.command == "GET":
                        if self.headers.get("Accept") == "application/octet-stream":
                            return self._send(302, headers={"Location": f"{gh.url('web')}/objects/{aid}/{a['name']}"})
                        return self._send(200, gh._asset_json(a))
            self._body()
            self._send(404, {"message": "Not Found"})

        # --- uploads --------------------------------------------------------------------

        def _uploads(self):
            if not self._authorized():
                return
            if self.headers.get("Content-Length") is None:  # GitHub's upload host needs the length up front
                self.close_connection = True
                return self._send(411, {"message": "Length Required"})
            size = int(self.headers["Content-Length"])
            rel = self._upload_release()
            if rel is not None:
                refusal = None
                if rel["immutable"]:
                    refusal = _immutable("ReleaseAsset", "Cannot upload assets to an immutable release.")
                elif size > gh.max_asset_size:
                    refusal = _invalid("size", f"size must be less than {gh.max_asset_size} bytes")
                elif len(rel["_assets"]) >= gh.max_assets:
                    refusal = _invalid("file_count", f"A release may hold at most {gh.max_assets} assets.")
                if refusal is not None:
                    self.close_connection = True  # the body is not read (it may be gigabytes)
                    return self._send(422, refusal)
            self._upload(self._body())

        def _upload_release(self) -> dict | None:
            m = re.fullmatch(r"/repos/([^/]+/[^/]+)/releases/(\d+)/assets", urlsplit(self.path).path)
            with gh.lock:
                return gh.repositories.get(m.group(1), {}).get("releases", {}).get(int(m.group(2))) if m else None

        def _upload(self, data: bytes, *, state: str = "uploaded", accept_partial: bool = False):
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            m = re.fullmatch(r"/repos/([^/]+/[^/]+)/releases/(\d+)/assets", parts.path)
            with gh.lock:
                rel = gh.repositories.get(m.group(1), {}).get("releases", {}).get(int(m.group(2))) if m else None
                if rel is None or self.command != "POST":
                    return None if accept_partial else self._send(404, {"message": "Not Found"})
                name = query.get("name", [""])[0]
                if not name:
                    return None if accept_partial else self._send(
                        422, {"message": "Validation Failed",
                              "errors": [{"resource": "ReleaseAsset", "code": "missing_field", "field": "name"}]})
                if any(a["name"] == github_asset_name(name) for a in rel["_assets"].values()):
                    return None if accept_partial else self._send(
                        422, {"message": "Validation Failed",
                              "errors": [{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}]})
                a = gh._add_asset(m.group(1), rel, name, data if state == "uploaded" else b"",
                                  self.headers.get("Content-Type", "application/octet-stream"),
                                  query.get("label", [""])[0], state)
            if accept_partial:
                return None
            if state != "uploaded":
                return self._send(502, {"message": "Bad Gateway"})
            return self._send(201, gh._asset_json(a))

        # --- web (downloads) --------------------------------------------------------------

        def _web(self):
            path = unquote(urlsplit(self.path).path)
            m = re.fullmatch(r"/([^/]+/[^/]+)/releases/download/([^/]+)/([^/]+)", path)
            if m and m.group(1) in gh.repositories:
                a = gh.assets(m.group(1), m.group(2)).get(m.group(3))
                if a is not None and a["state"] == "uploaded":
                    return self._send(302, headers={"Location": f"{gh.url('web')}/objects/{a['id']}/{quote(a['name'])}"})
                return self._send(404, raw=b"Not Found", headers={"Content-Type": "text/plain"})
            m = re.fullmatch(r"/objects/(\d+)/(.+)", path)
            if m and self.command == "HEAD":  # a presigned storage URL is signed for GET only
                return self._send(403, raw=b"", headers={"Content-Type": "application/xml"})
            if m:
                with gh.lock:
                    for r in gh.repositories.values():
                        for rel in r["releases"].values():
                            a = rel["_assets"].get(int(m.group(1)))
                            if a is not None:
                                return self._object(a["_data"])
            self._send(404, raw=b"Not Found", headers={"Content-Type": "text/plain"})

        def _object(self, data: bytes):
            """The bytes, or the first ``Range: bytes=A-B`` of them (206, as storage hosts answer)."""
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if m is None or int(m.group(1)) >= len(data):
                return self._send(200, raw=data, headers={"Content-Type": "application/octet-stream"})
            first = int(m.group(1))
            last = min(int(m.group(2) or len(data) - 1), len(data) - 1)
            return self._send(206, raw=data[first:last + 1], headers={
                "Content-Type": "application/octet-stream", "Content-Range": f"bytes {first}-{last}/{len(data)}"})

        # --- pages --------------------------------------------------------------------------

        def _send_page(self, items: list, parts, query: dict):
            """One page of a list endpoint (``per_page`` default 30, at most 100; ``Link: rel="next"``)."""
            per_page = min(int(query.get("per_page", ["30"])[0]), gh.max_per_page)
            page = int(query.get("page", ["1"])[0])
            headers = {}
            if page * per_page < len(items):
                headers["Link"] = f'<{gh.api_url}{parts.path}?per_page={per_page}&page={page + 1}>; rel="next"'
            return self._send(200, items[(page - 1) * per_page: page * per_page], headers)

        def _pages(self):
            """The deployed site, through a cache keyed by the whole URL (query included)."""
            now = time.monotonic()
            with gh.lock:
                hit = gh._cache.get(self.path)
                if hit is None or now - hit[0] >= gh.max_age:
                    hit = gh._cache[self.path] = (now, *self._deployed_file())
            _, status, data, ctype = hit
            self._send(status, raw=data, headers={"Content-Type": ctype, "Cache-Control": "max-age=600",
                                                  "Age": str(int(now - hit[0]))})

        def _deployed_file(self) -> tuple[int, bytes, str]:
            path = unquote(urlsplit(self.path).path)
            files = gh._deployed or {}
            for p in (path, path.rstrip("/") + "/index.html"):
                if p in files:
                    ctype = {"json": "application/json", "html": "text/html; charset=utf-8"}.get(
                        p.rsplit(".", 1)[-1], "application/octet-stream")
                    return 200, files[p], ctype
            return 404, b"<h1>404</h1>", "text/html; charset=utf-8"

    return Handler


def _invalid(field: str, message: str) -> dict:
    return {"message": "Validation Failed", "errors": [{"resource": "ReleaseAsset", "code": "custom",
                                                        "field": field, "message": message}],
            "documentation_url": "https://docs.github.com/rest/releases/assets#upload-a-release-asset",
            "status": "422"}


def _immutable(resource: str, message: str) -> dict:
    return {"message": "Validation Failed", "errors": [{"resource": resource, "code": "custom",
                                                        "field": "immutable", "message": message}],
            "documentation_url": "https://docs.github.com/rest/releases", "status": "422"}
