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
    DELETE …/actions/runners/ID/labels/NAME  200 {"total_count", "labels"} | 404 not a custom label
    PUT    …/actions/runners/ID/labels 200 {"total_count", "labels"}  (replaces the custom labels)
    POST   …/actions/runners/ID/labels 200 {"total_count", "labels"}  (adds custom labels)

Labels are objects ``{"id", "name", "type": "read-only" | "custom"}`` as GitHub sends them. The
*system* labels a runner program registers by itself (``self-hosted``, the OS, the arch; for
github-act-runner on a board ``self-hosted, linux, riscv64``) are read-only: removing all custom
labels leaves them, so a job asking only for them still matches. A custom label that repeats a
system label is refused (422; the stand-in is stricter than documented here).

Jobs: ``queue_job(labels)`` queues a job; at every API request a queued job goes to the first
online, idle runner carrying all its labels (case-insensitively, as GitHub matches), which is
then busy for ``job_gets`` looks at it; ``jobs`` shows where each landed.

Errors: 401 "Bad credentials" for a wrong token, 403 for a read-only token,
404 for an unknown repository, and any status injected with ``fail_next``.
Every API answer carries GitHub's ``x-ratelimit-*`` headers; with
``rate_remaining = 0`` the API answers 403 "API rate limit exceeded" like GitHub.

Beside the API, ``/_fake/…`` stands for what GitHub does behind the runner
programs: ``/_fake/register`` is what ``config.sh`` does with a registration
token, ``/_fake/runners/ID`` shows or sets a runner's state.

Run as a script it is also those runner-side programs, for tests to put in the
settings: ``config`` (a config.sh that reads ACTIONS_RUNNER_INPUT_TOKEN),
``jit-run`` (actions/runner's run.sh with a JIT config: exits 0 even when its
listener fails), ``act`` (github-act-runner's ``configure`` and ``run``) and
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
SYSTEM = ("self-hosted", "linux", "riscv64")  # what github-act-runner on a riscv64 board registers by itself


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
        self.jobs: list[dict] = []  # {"labels", "runner": name or None}, in queue order
        self.job_gets = 2  # looks at a runner that still answer busy once a queued job landed on it
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

    def add_runner(self, name, *, status="online", busy=False, labels=("wheelfactory",), system=SYSTEM, scope=None):
        """A registered runner with read-only ``system`` labels and custom ``labels``."""
        with self.lock:
            rid = self.next_id
            self.next_id += 1
            self.runners[rid] = {
                "id": rid, "name": name, "os": "linux", "status": status, "busy": busy, "ephemeral": False,
                "labels": [self._label(i, n, "read-only") for i, n in enumerate(system)],
                "_scope": scope or self.default_scope,
            }
            self._add_custom(self.runners[rid], labels)
            return rid

    @staticmethod
    def _label(i, name, kind):
        return {"id": i + 1, "name": name, "type": kind}

    def _add_custom(self, r, names):
        """Add custom labels; a name that is already a label of the runner is refused (an error text)."""
        have = {lab["name"].lower(): lab["type"] for lab in r["labels"]}
        for n in names:
            if have.get(n.lower()) == "read-only":
                return f"label {n} is a read-only system label of the runner"
            if n.lower() not in have:
                r["labels"].append(self._label(len(r["labels"]), n, "custom"))
                have[n.lower()] = "custom"
        return None

    def queue_job(self, labels):
        """Queue a job asking for ``labels``; returns it (its "runner" is set when it lands)."""
        with self.lock:
            job = {"labels": list(labels), "runner": None}
            self.jobs.append(job)
            self._assign()
            return job

    def _assign(self):
        """Give queued jobs to online, idle runners that carry all their labels (call with the lock)."""
        for job in (j for j in self.jobs if j["runner"] is None):
            want = {x.lower() for x in job["labels"]}
            for r in sorted(self.runners.values(), key=lambda r: r["id"]):
                if r["status"] == "online" and not r["busy"] and want <= {lab["name"].lower() for lab in r["labels"]}:
                    r["busy"], job["runner"] = True, r["name"]
                    self.busy_for_gets[r["id"]] = self.job_gets
                    break

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
                    fake._assign()
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
                    system = [x for x in labels if x.lower() in SYSTEM]
                    rid = fake.add_runner(body["name"], status="offline", system=system,
                                          labels=[x for x in labels if x not in system], scope=scope)
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
                m = re.fullmatch(r"/(\d+)(/labels)?(?:/([^/]+))?", rest)
                if not m:
                    return self._send(404, {"message": "Not Found"})
                r = fake.runners.get(int(m[1]))
                if not r or r["_scope"] != scope:
                    return self._send(404, {"message": "Not Found"})
                if m[2] is None and m[3] is None:
                    if method == "GET":
                        with fake.lock:
                            left = fake.busy_for_gets.get(r["id"])
                            if left is not None:
                                r["busy"] = left > 0
                                fake.busy_for_gets[r["id"]] = left - 1
                            fake._assign()  # a runner whose job just ended takes the next queued one at once
                        return self._send(200, fake.public(r))
                    if method == "DELETE":
                        if r["busy"]:
                            return self._send(422, {"message": f"Bad request - Runner \"{r['name']}\" is still "
                                                               f"running a job\""})
                        del fake.runners[r["id"]]
                        return self._send(204)
                    return self._send(404, {"message": "Not Found"})
                if m[2] is None:
                    return self._send(404, {"message": "Not Found"})
                if m[3] is not None:
                    if method != "DELETE":
                        return self._send(404, {"message": "Not Found"})
                    hit = [lab for lab in r["labels"] if lab["type"] == "custom" and lab["name"] == m[3]]
                    if not hit:  # GitHub: 404 when the custom label is not present
                        return self._send(404, {"message": "Not Found"})
                    r["labels"].remove(hit[0])
                elif method == "DELETE":
                    r["labels"] = [lab for lab in r["labels"] if lab["type"] == "read-only"]
                elif method in ("PUT", "POST"):
                    names = self._body().get("labels") or []
                    if method == "PUT":
                        r["labels"] = [lab for lab in r["labels"] if lab["type"] == "read-only"]
                    refused = fake._add_custom(r, names)
                    if refused:
                        return self._send(422, {"message": "Validation Failed", "errors": [refused]})
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
                    system = body.get("system") or list(SYSTEM)
                    if any(x.lower() in {y.lower() for y in system} for x in body["labels"]):
                        return self._send(422, {"message": "a custom label repeats a system label"})
                    rid = fake.add_runner(body["name"], status="offline", labels=body["labels"], system=system,
                                          scope=body["scope"])
                    return self._send(201, fake.public(fake.runners[rid]))
                if method == "POST" and path in ("/_fake/jit", "/_fake/jit-done"):
                    body = self._body()
                    cfg = json.loads(base64.b64decode(body.get("jitconfig", "")))
                    r = fake.runners.get(cfg["runner_id"])
                    if not r:
                        return self._send(404, {"message": "no such runner"})
                    if path == "/_fake/jit-done":  # its one job ran: GitHub removes an ephemeral runner
                        del fake.runners[r["id"]]
                    else:
                        r["status"] = "online"
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


def _log_argv(argv):
    """Record the command line (what `ps` would show) to $FAKE_ARGV_LOG, for tests to search for secrets."""
    if os.environ.get("FAKE_ARGV_LOG"):
        with open(os.environ["FAKE_ARGV_LOG"], "a") as f:
            f.write(json.dumps(argv) + "\n")


def _config(argv, *, log=True):
    """A config.sh / `github-act-runner configure`: --url URL --name NAME --labels a,b [--replace]; the
    token comes from ACTIONS_RUNNER_INPUT_TOKEN (or --token). The runner adds its system labels itself
    ($FAKE_RUNNER_SYSTEM_LABELS, default self-hosted,linux,riscv64); --labels are custom labels."""
    import argparse

    if log:
        _log_argv(argv)
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
        system = os.environ.get("FAKE_RUNNER_SYSTEM_LABELS", ",".join(SYSTEM)).split(",")
        runner = _post(f"{server}/_fake/register", {"token": token, "name": args.name, "system": system,
                                                     "labels": [x for x in args.labels.split(",") if x],
                                                     "scope": scope, "replace": args.replace})
    except urllib.error.HTTPError as e:
        print(f"Http response code: {e.code} from 'POST {server}/_fake/register' ({e.read().decode()})")
        return 1
    # Like config.sh: the runner's own settings file (never the registration token).
    with open(".runner", "w") as f:
        json.dump({"agentId": runner["id"], "agentName": runner["name"], "gitHubUrl": args.url}, f)
    print(f"√ Runner successfully added\n√ Settings Saved. (runner {runner['name']})")
    return 0


def _listener():
    """The runner's listener with a JIT config: connects, runs one job, and GitHub removes the
    ephemeral runner; with $FAKE_LISTENER_EXIT it fails at start with that code (never connects)."""
    fail = os.environ.get("FAKE_LISTENER_EXIT")
    if fail:
        print(f"An error occurred: the runner listener failed to start (exit code {fail})")
        return int(fail)
    encoded = os.environ.get("ACTIONS_RUNNER_INPUT_JITCONFIG", "")
    server = os.environ["FAKE_GITHUB_URL"]
    runner = _post(f"{server}/_fake/jit", {"jitconfig": encoded})
    print(f"√ Connected to GitHub as {runner['name']}\nListening for Jobs")
    _post(f"{server}/_fake/jit-done", {"jitconfig": encoded})
    print("Job completed; the ephemeral runner exits")
    return 0


def _jit_run(argv):
    """run.sh of actions/runner (src/Misc/layoutroot/run.sh, `run()`): it runs the listener, restarts
    it on exit code 2, and on ANY other code prints "Exiting runner..." and exits 0, so a listener
    that failed looks like success to whoever started run.sh."""
    _log_argv(argv)
    code = _listener()
    while code == 2:
        print("Restarting runner...")
        code = _listener()
    print("Exiting runner...")
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


def _act(argv):
    """github-act-runner's CLI (main.go, cobra): `configure` takes --url --name --labels --unattended
    [--token]; `run` takes --jitconfig, whose default is $ACTIONS_RUNNER_INPUT_JITCONFIG, and exits 1
    when the runner fails (RunWithContext), 0 after its job. Unknown flags are errors, as in cobra."""
    import argparse

    _log_argv(["github-act-runner", *argv])
    if argv[:1] == ["configure"]:
        p = argparse.ArgumentParser(prog="github-act-runner configure")
        for opt in ("--url", "--name", "--labels", "--token", "--work", "--runnergroup"):
            p.add_argument(opt, default="")
        for flag in ("--unattended", "--replace", "--ephemeral", "--no-default-labels"):
            p.add_argument(flag, action="store_true")
        args = p.parse_args(argv[1:])
        forwarded = ["--url", args.url, "--name", args.name, "--labels", args.labels]
        if args.token:
            forwarded += ["--token", args.token]
        return _config(forwarded + (["--replace"] if args.replace else []), log=False)
    if argv[:1] == ["run"]:
        p = argparse.ArgumentParser(prog="github-act-runner run")
        p.add_argument("--jitconfig", default=os.environ.get("ACTIONS_RUNNER_INPUT_JITCONFIG", ""))
        p.add_argument("--once", action="store_true")
        args = p.parse_args(argv[1:])
        os.environ["ACTIONS_RUNNER_INPUT_JITCONFIG"] = args.jitconfig
        return 1 if _listener() else 0
    print(f"Error: unknown command {argv[:1]} for github-act-runner")
    return 1


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    sys.exit({"config": _config, "jit-run": _jit_run, "systemctl": _systemctl, "act": _act}[cmd](rest))
