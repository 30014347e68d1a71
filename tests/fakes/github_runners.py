"""A stand-in for GitHub's self-hosted runner REST API, on 127.0.0.1 (GitHub is unreachable here).

It speaks the real wire format of the endpoints wheelfactory.ci.runners uses —
JSON bodies, status codes, ``Authorization: Bearer`` checks, pagination — for
``/repos/OWNER/REPO/actions/runners`` and ``/orgs/ORG/actions/runners``:

    POST   …/registration-token        201 {"token", "expires_at"}
    POST   …/generate-jitconfig        201 {"runner", "encoded_jit_config"}  (409 name taken, 422 bad labels)
    GET    …/actions/runners           200 {"total_count", "runners": [...]}  (per_page, page; a Link
                                       header rel="next" while pages follow, as GitHub sends)
    GET    …/actions/runners/ID        200 runner | 404
    DELETE …/actions/runners/ID        204 | 422 while busy
    DELETE …/actions/runners/ID/labels 200 {"total_count", "labels"} (read-only ones left)
    PUT    …/actions/runners/ID/labels 200 {"total_count", "labels"}

Errors: 401 "Bad credentials" for a wrong token, 403 for a read-only token,
404 for an unknown repository, and any status injected with ``fail_next``.
Every API answer carries GitHub's ``x-ratelimit-*`` headers; with
``rate_remaining = 0`` the API answers 403 "API rate limit exceeded" like GitHub.

Beside the API, ``/_fake/…`` stands for what GitHub does behind the runner
programs: ``/_fake/register`` is what ``config.sh`` does with a registration
token, ``/_fake/runners/ID`` shows or sets a runner's state.

Run as a script it is also those runner-side programs, for tests to put in the
settings: ``config`` (a config.sh that reads ACTIONS_RUNNER_INPUT_TOKEN),
``jit-run`` (a run.sh that reads ACTIONS_RUNNER_INPUT_JITCONFIG) and
``systemctl ACTION NAME`` — a service manager that refuses, loudly, to stop a
runner GitHub says is busy, and logs every call to $FAKE_SERVICE_LOG.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import secrets
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SCOPE = re.compile(r"^/(?:repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)|orgs/(?P<org>[^/]+))/actions/runners(?P<rest>/.*)?$")
READ_ONLY = {"self-hosted", "linux", "x64", "arm64", "riscv64-system"}  # what the runner adds by itself


class FakeGitHub:
    def __init__(self, *, scopes=("octo/wheels",), admin_token="ghp_" + "a" * 36, read_token="ghp_" + "r" * 36):
        self.scopes = set(scopes)
        self.default_scope = scopes[0]  # where add_runner puts runners unless told otherwise
        self.admin_token = admin_token
        self.read_token = read_token
        self.runners: dict[int, dict] = {}
        self.registration_tokens: dict[str, dt.datetime] = {}
        self.issued: list[str] = []  # every registration token and JIT config handed out (secrets to look for)
        self.token_lifetime = dt.timedelta(hours=1)
        self.requests: list[tuple[str, str]] = []  # (method, path) in arrival order
        self.fail_next: list[tuple[str, str, int]] = []  # (method, path regex, status), consumed
        self.busy_for_gets: dict[int, int] = {}  # runner id -> GETs of it that still answer busy
        self.rate_remaining = 5000  # requests left in the rate-limit window (x-ratelimit-remaining)
        self.rate_reset = int(dt.datetime.now(dt.timezone.utc).timestamp()) + 3600
        self.next_id = 1
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # state helpers for tests

    def add_runner(self, name, *, status="online", busy=False, labels=("self-hosted", "linux", "riscv64"), scope=None):
        with self.lock:
            rid = self.next_id
            self.next_id += 1
            self.runners[rid] = {
                "id": rid, "name": name, "os": "linux", "status": status, "busy": busy, "ephemeral": False,
                "labels": [self._label(i, n) for i, n in enumerate(labels)], "_scope": scope or self.default_scope,
            }
            return rid

    def _label(self, i, name):
        return {"id": i + 1, "name": name, "type": "read-only" if name.lower() in READ_ONLY else "custom"}

    def by_name(self, name):
        return next((r for r in self.runners.values() if r["name"] == name), None)

    @staticmethod
    def public(r):
        return {k: v for k, v in r.items() if not k.startswith("_")}

    # HTTP

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, status, body=None, headers=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if not self.path.startswith("/_fake/"):
                    self.send_header("x-ratelimit-limit", "5000")
                    self.send_header("x-ratelimit-remaining", str(max(fake.rate_remaining, 0)))
                    self.send_header("x-ratelimit-reset", str(fake.rate_reset))
                    self.send_header("x-ratelimit-resource", "core")
                if body is not None:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                return json.loads(raw) if raw else {}

            def _dispatch(self, method):
                parts = urlsplit(self.path)
                path = parts.path
                with fake.lock:
                    fake.requests.append((method, path))
                    for i, (m, pattern, status) in enumerate(fake.fail_next):
                        if m == method and re.search(pattern, path):
                            del fake.fail_next[i]
                            return self._send(status, {"message": "Server Error" if status >= 500 else "Injected",
                                                       "documentation_url": "https://docs.github.com/rest"})
                if path.startswith("/_fake/"):
                    return self._fake(method, path, parts.query)
                with fake.lock:
                    limited = fake.rate_remaining <= 0
                    fake.rate_remaining -= 0 if limited else 1
                if limited:
                    return self._send(403, {"message": "API rate limit exceeded for user ID 1.",
                                            "documentation_url": "https://docs.github.com/rest/overview/"
                                                                 "rate-limits-for-the-rest-api"})
                m = SCOPE.match(path)
                if not m:
                    return self._send(404, {"message": "Not Found"})
                auth = self.headers.get("Authorization", "")
                if auth not in (f"Bearer {fake.admin_token}", f"Bearer {fake.read_token}"):
                    return self._send(401, {"message": "Bad credentials",
                                            "documentation_url": "https://docs.github.com/rest"})
                if self.headers.get("Accept") != "application/vnd.github+json":
                    return self._send(415, {"message": "Unsupported Media Type"})
                scope = f"{m['owner']}/{m['repo']}" if m["owner"] else m["org"]
                if scope not in fake.scopes:
                    return self._send(404, {"message": "Not Found"})
                admin = auth == f"Bearer {fake.admin_token}"
                if method != "GET" and not admin:
                    return self._send(403, {"message": "Resource not accessible by personal access token"})
                return self._api(method, scope, m["rest"] or "", parse_qs(parts.query))

            def _api(self, method, scope, rest, query):
                mine = sorted((r for r in fake.runners.values() if r["_scope"] == scope), key=lambda r: r["id"])
                if method == "POST" and rest == "/registration-token":
                    token = "A" + secrets.token_hex(14).upper()
                    expires = dt.datetime.now(dt.timezone.utc) + fake.token_lifetime
                    with fake.lock:
                        fake.registration_tokens[token] = expires
                        fake.issued.append(token)
                    return self._send(201, {"token": token, "expires_at": expires.isoformat()})
                if method == "POST" and rest == "/generate-jitconfig":
                    body = self._body()
                    labels = body.get("labels") or []
                    if not body.get("name") or not labels or not isinstance(body.get("runner_group_id"), int):
                        return self._send(422, {"message": "Invalid request.",
                                                "errors": ["name, runner_group_id and labels are required"]})
                    if any(not re.fullmatch(r"[A-Za-z0-9._-]+", x) for x in labels):
                        return self._send(422, {"message": "Validation Failed", "errors": ["invalid label"]})
                    if any(r["name"] == body["name"] for r in mine):
                        return self._send(409, {"message": f"Already exists - A runner with the name "
                                                           f"{body['name']} already exists."})
                    rid = fake.add_runner(body["name"], status="offline", labels=labels, scope=scope)
                    fake.runners[rid]["ephemeral"] = True
                    encoded = base64.b64encode(json.dumps({"runner_id": rid, "secret": secrets.token_hex(16)})
                                               .encode()).decode()
                    fake.issued.append(encoded)
                    return self._send(201, {"runner": fake.public(fake.runners[rid]), "encoded_jit_config": encoded})
                if method == "GET" and rest == "":
                    per_page = int(query.get("per_page", ["30"])[0])
                    page = int(query.get("page", ["1"])[0])
                    chunk = mine[(page - 1) * per_page: page * per_page]
                    headers = {}
                    if page * per_page < len(mine):
                        nxt = f"{fake.url}{urlsplit(self.path).path}?per_page={per_page}&page={page + 1}"
                        headers["Link"] = f'<{nxt}>; rel="next"'
                    return self._send(200, {"total_count": len(mine), "runners": [fake.public(r) for r in chunk]},
                                      headers)
                m = re.fullmatch(r"/(\d+)(/labels)?", rest)
                if not m:
                    return self._send(404, {"message": "Not Found"})
                r = fake.runners.get(int(m[1]))
                if not r or r["_scope"] != scope:
                    return self._send(404, {"message": "Not Found"})
                if m[2] is None:
                    if method == "GET":
                        with fake.lock:
                            left = fake.busy_for_gets.get(r["id"])
                            if left is not None:
                                r["busy"] = left > 0
                                fake.busy_for_gets[r["id"]] = left - 1
                        return self._send(200, fake.public(r))
                    if method == "DELETE":
                        if r["busy"]:
                            return self._send(422, {"message": f"Bad request - Runner \"{r['name']}\" is still "
                                                               f"running a job\""})
                        del fake.runners[r["id"]]
                        return self._send(204)
                    return self._send(404, {"message": "Not Found"})
                if method == "DELETE":
                    r["labels"] = [lab for lab in r["labels"] if lab["type"] == "read-only"]
                elif method == "PUT":
                    names = self._body().get("labels") or []
                    keep = [lab for lab in r["labels"] if lab["type"] == "read-only"]
                    r["labels"] = keep + [fake._label(len(keep) + i, n) for i, n in enumerate(names)
                                          if n.lower() not in READ_ONLY]
                else:
                    return self._send(404, {"message": "Not Found"})
                return self._send(200, {"total_count": len(r["labels"]), "labels": r["labels"]})

            def _fake(self, method, path, query):
                if method == "POST" and path == "/_fake/register":
                    body = self._body()
                    expires = fake.registration_tokens.pop(body.get("token", ""), None)
                    if expires is None:
                        return self._send(401, {"message": "invalid registration token"})
                    if expires <= dt.datetime.now(dt.timezone.utc):
                        return self._send(401, {"message": "registration token expired"})
                    existing = fake.by_name(body["name"])
                    if existing and not body.get("replace"):
                        return self._send(409, {"message": "a runner with this name exists"})
                    if existing:
                        del fake.runners[existing["id"]]
                    rid = fake.add_runner(body["name"], status="offline", labels=body["labels"], scope=body["scope"])
                    return self._send(201, fake.public(fake.runners[rid]))
                if method == "POST" and path == "/_fake/jit":
                    body = self._body()
                    cfg = json.loads(base64.b64decode(body.get("jitconfig", "")))
                    r = fake.runners.get(cfg["runner_id"])
                    if not r:
                        return self._send(404, {"message": "no such runner"})
                    return self._send(200, fake.public(r))
                m = re.fullmatch(r"/_fake/runners/(\d+)", path)
                byname = parse_qs(query).get("name", [None])[0]
                r = fake.by_name(byname) if byname else (fake.runners.get(int(m[1])) if m else None)
                if not r:
                    return self._send(404, {"message": "no such runner"})
                if method == "POST":
                    r.update({k: v for k, v in self._body().items() if k in ("status", "busy")})
                return self._send(200, fake.public(r))

            def do_GET(self):
                self._dispatch("GET")

            def do_POST(self):
                self._dispatch("POST")

            def do_PUT(self):
                self._dispatch("PUT")

            def do_DELETE(self):
                self._dispatch("DELETE")

        return Handler


# --- the runner-side programs (for the settings of the tests) -------------------------------


def _post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _config(argv):
    """A config.sh: --url URL --name NAME --labels a,b [--replace]; the token comes from the environment."""
    import argparse

    p = argparse.ArgumentParser()
    for opt in ("--url", "--name", "--labels", "--work", "--token"):
        p.add_argument(opt, default="")
    p.add_argument("--unattended", action="store_true")
    p.add_argument("--replace", action="store_true")
    args = p.parse_args(argv)
    token = os.environ.get("ACTIONS_RUNNER_INPUT_TOKEN") or args.token
    parts = urlsplit(args.url)
    server = f"{parts.scheme}://{parts.netloc}"
    scope = parts.path.strip("/")
    try:
        runner = _post(f"{server}/_fake/register", {"token": token, "name": args.name,
                                                     "labels": args.labels.split(","), "scope": scope,
                                                     "replace": args.replace})
    except urllib.error.HTTPError as e:
        print(f"Http response code: {e.code} from 'POST {server}/_fake/register' ({e.read().decode()})")
        return 1
    # Like config.sh: the runner's own settings file (never the registration token).
    with open(".runner", "w") as f:
        json.dump({"agentId": runner["id"], "agentName": runner["name"], "gitHubUrl": args.url}, f)
    print(f"√ Runner successfully added\n√ Settings Saved. (runner {runner['name']})")
    return 0


def _jit_run(argv):
    """A run.sh --jitconfig: checks the config with the server, 'runs' one job, exits."""
    encoded = os.environ.get("ACTIONS_RUNNER_INPUT_JITCONFIG", "")
    server = os.environ["FAKE_GITHUB_URL"]
    if os.environ.get("FAKE_JIT_FAIL"):
        print("Runner listener exited with error code 1")
        return 1
    runner = _post(f"{server}/_fake/jit", {"jitconfig": encoded})
    print(f"√ Connected to GitHub as {runner['name']}\nListening for Jobs\nJob done; ephemeral runner exits")
    return 0


def _systemctl(argv):
    """systemctl ACTION NAME, logged; `stop` asks the server whether the runner is busy first."""
    action, unit = argv[0], argv[1]
    log = os.environ["FAKE_SERVICE_LOG"]
    server = os.environ["FAKE_GITHUB_URL"]
    runner = os.environ["FAKE_RUNNER_NAME"]
    state = _get(f"{server}/_fake/runners/0?name={runner}")
    with open(log, "a") as f:
        f.write(f"{action} {unit} busy={state['busy']}\n")
    if action == "stop" and state["busy"]:
        with open(log, "a") as f:
            f.write("STOPPED WHILE BUSY\n")
        return 3
    if action in ("stop", "start"):
        _post(f"{server}/_fake/runners/{state['id']}", {"status": "offline" if action == "stop" else "online"})
    return int(os.environ.get("FAKE_SERVICE_EXIT", "0"))


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    sys.exit({"config": _config, "jit-run": _jit_run, "systemctl": _systemctl}[cmd](rest))
