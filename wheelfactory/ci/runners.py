"""Self-hosted runners on the boards: ``invoke runners.register / status / drain / restart``.

One registration per board, for this repository (or the organization), never
one per package:

* **register** fetches a registration token from the REST API right before it
  is used (tokens expire after an hour), hands it to the runner's configure
  command through the environment (``ACTIONS_RUNNER_INPUT_TOKEN``, which the
  official runner reads like ``--token``), and forgets it: it is never written
  to a file, a log or the terminal. ``--jit`` instead asks for a just-in-time
  configuration and runs one ephemeral runner with it (for a service that
  re-runs the command after each job).
* the runner's **name** is the hostname plus the start of ``/etc/machine-id``:
  two boards cloned from one image, both called ``bananapif3-1``, still get
  different names — and if a clone also copied the machine-id, registration
  refuses to take over the other board's runner and says how to regenerate it.
* **status** lists the runners with online/offline and busy/idle, and warns when
  no online runner carries the labels the workflow's jobs ask for (jobs would
  queue forever).
* **drain** / **restart** never stop a runner that is running a job: they take
  the runner's custom labels away (so no new job is assigned), poll the API
  until it is idle (bounded by ``[runners].drain-timeout``), and only then call
  the service manager. On a timeout the labels are put back and nothing is
  stopped.

The API base URL (``[runners].api-url``) and the service manager command are
settings, so tests point them at a local server and a fake ``systemctl``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import requests

from .. import ui
from ..settings.factory import Config, load_config
from ..errors import ConfigError, EnvironmentProblem, FactoryError
from .._util.http import DEFAULT_TIMEOUT, session

API_VERSION = "2022-11-28"
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SCOPE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$")

# The default configure / just-in-time commands of each runner kind. {token} is
# only for runners that cannot read it from the environment.
KINDS: dict[str, dict[str, list[str]]] = {
    "official": {
        "configure": ["{runner_dir}/config.sh", "--unattended", "--url", "{url}", "--name", "{name}",
                      "--labels", "{labels}", "--work", "{work}"],
        "jit": ["{runner_dir}/run.sh"],
    },
    "github-act-runner": {
        # It takes the token only as an argument (visible in `ps` while configure runs).
        "configure": ["github-act-runner", "configure", "--url", "{url}", "--name", "{name}",
                      "--labels", "{labels}", "--token", "{token}"],
        "jit": [],  # no default: set [runners].jit-command to how your version runs a JIT config
    },
}


class RunnerAPIError(FactoryError):
    """GitHub's runner API said no (or could not be reached)."""


class RunnerBusy(FactoryError):
    """The runner did not become idle in time; its service was left running."""


# --- the REST API ---------------------------------------------------------------------


class RunnersAPI:
    """The self-hosted runner endpoints of one repository or organization."""

    def __init__(self, api_url: str, scope: str, token: str, token_env: str = "GITHUB_TOKEN",
                 http: requests.Session | None = None):
        self.api_url = api_url.rstrip("/")
        self.scope = scope
        self.token_env = token_env
        kind = "repos" if "/" in scope else "orgs"
        self.base = f"{self.api_url}/{kind}/{scope}/actions/runners"
        self._token = token
        self.http = http or session(methods=frozenset({"GET", "PUT", "DELETE"}))  # POSTs are not replayed

    def _call(self, method: str, path: str = "", *, ok: tuple[int, ...] = (200,), what: str, **kw) -> Any:
        url = f"{self.base}{path}"
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": API_VERSION}
        try:
            r = self.http.request(method, url, headers=headers, timeout=DEFAULT_TIMEOUT, **kw)
        except requests.RequestException as e:
            raise RunnerAPIError(f"cannot reach the GitHub API at {self.api_url} to {what}: {type(e).__name__}; "
                                 f"check [runners].api-url and the network") from None
        if r.status_code in ok:
            return r.json() if r.content else None
        raise RunnerAPIError(self._explain(r, what))

    def _explain(self, r: requests.Response, what: str) -> str:
        try:
            body = r.json()
        except ValueError:
            body = {}
        said = body.get("message") or r.reason or ""
        errors = body.get("errors")
        if errors:
            said += ": " + "; ".join(e.get("message", str(e)) if isinstance(e, dict) else str(e) for e in errors)
        where = f"{'repository' if '/' in self.scope else 'organization'} {self.scope}"
        s = r.status_code
        if s == 401:
            return (f"GitHub rejected the token in ${self.token_env} ({s} {said}) when trying to {what}: it is "
                    f"expired, revoked or mistyped; create a new one and export it again")
        if s == 403 and r.headers.get("x-ratelimit-remaining") == "0":
            reset = r.headers.get("x-ratelimit-reset", "")
            when = _dt.datetime.fromtimestamp(int(reset), _dt.timezone.utc).isoformat() if reset.isdigit() else "later"
            return f"GitHub API rate limit exhausted when trying to {what}; it resets at {when}"
        if s == 403:
            return (f"the token in ${self.token_env} may not {what} ({s} {said}): it needs admin rights on the "
                    f"{where} (fine-grained token: 'Administration: read and write' for a repository, "
                    f"'Self-hosted runners: read and write' for an organization)")
        if s == 404:
            return (f"GitHub does not know the {where}, or the token in ${self.token_env} cannot see it "
                    f"({s} {said}) when trying to {what}; check [runners].scope")
        if s == 409:
            return f"GitHub refused to {what}: conflict ({said})"
        if s == 422:
            return f"GitHub refused to {what}: {said} (422)"
        return f"the GitHub API answered {s} {said} when trying to {what}"

    # endpoints

    def registration_token(self) -> tuple[str, _dt.datetime]:
        body = self._call("POST", "/registration-token", ok=(201,), what="create a runner registration token")
        token, expires = (body or {}).get("token"), (body or {}).get("expires_at")
        if not token or not expires:
            raise RunnerAPIError("the registration-token answer lacks 'token' or 'expires_at'")
        return token, _parse_time(expires)

    def jit_config(self, name: str, labels: list[str], group_id: int, work_folder: str) -> tuple[dict, str]:
        body = self._call("POST", "/generate-jitconfig", ok=(201,), what=f"create a just-in-time runner '{name}'",
                          json={"name": name, "runner_group_id": group_id, "labels": labels,
                                "work_folder": work_folder})
        if not body or "encoded_jit_config" not in body or "runner" not in body:
            raise RunnerAPIError("the generate-jitconfig answer lacks 'runner' or 'encoded_jit_config'")
        return body["runner"], body["encoded_jit_config"]

    def list(self) -> list[dict]:
        runners: list[dict] = []
        page = 1
        while True:
            body = self._call("GET", "", params={"per_page": 100, "page": page}, what="list runners")
            batch = body.get("runners", [])
            runners += batch
            if len(batch) < 100 or len(runners) >= body.get("total_count", 0):
                return runners
            page += 1

    def get(self, runner_id: int) -> dict:
        return self._call("GET", f"/{runner_id}", what=f"look at runner {runner_id}")

    def delete(self, runner_id: int) -> None:
        self._call("DELETE", f"/{runner_id}", ok=(204,), what=f"delete runner {runner_id}")

    def remove_custom_labels(self, runner_id: int) -> list[dict]:
        body = self._call("DELETE", f"/{runner_id}/labels", what=f"remove the custom labels of runner {runner_id}")
        return body.get("labels", [])

    def set_custom_labels(self, runner_id: int, labels: list[str]) -> list[dict]:
        body = self._call("PUT", f"/{runner_id}/labels", json={"labels": labels},
                          what=f"set the custom labels of runner {runner_id}")
        return body.get("labels", [])


def _parse_time(text: str) -> _dt.datetime:
    t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


# --- settings, names, labels ----------------------------------------------------------


def _where(config: Config) -> str:
    return str(config.source or config.root / "factory.toml")


def scope_of(config: Config) -> str:
    scope = config.runners.scope
    if not scope:
        raise ConfigError(f"{_where(config)}: set [runners].scope to the repository (\"OWNER/REPO\") or the "
                          f"organization the boards run jobs for")
    if not _SCOPE.match(scope):
        raise ConfigError(f"{_where(config)}: [runners].scope {scope!r} is neither OWNER/REPO nor an organization")
    return scope


def server_url(api_url: str) -> str:
    """The web URL runners register against: api.github.com -> github.com, HOST/api/v3 -> HOST."""
    parts = urlsplit(api_url.rstrip("/"))
    if parts.netloc == "api.github.com":
        return "https://github.com"
    path = parts.path.removesuffix("/api/v3")
    return f"{parts.scheme}://{parts.netloc}{path}"


def api_for(config: Config, http: requests.Session | None = None) -> RunnersAPI:
    r = config.runners
    scope = scope_of(config)
    token = os.environ.get(r.token_env, "")
    if not token:
        raise EnvironmentProblem(
            f"${r.token_env} is not set: export a token with admin rights on {scope} "
            f"([runners].token-env names the variable); it is only used to ask GitHub for runner tokens"
        )
    return RunnersAPI(r.api_url, scope, token, r.token_env, http=http)


def read_machine_id(path: Path) -> str:
    try:
        mid = path.read_text().strip().lower()
    except OSError as e:
        raise EnvironmentProblem(f"cannot read {path} ({e.strerror}): the runner name needs this machine's id; "
                                 f"create it with `systemd-machine-id-setup`") from None
    if not re.fullmatch(r"[0-9a-f]{32}", mid):
        raise EnvironmentProblem(f"{path} does not hold a machine id ({mid[:40]!r}); regenerate it with "
                                 f"`rm {path} && systemd-machine-id-setup`")
    return mid


def runner_name(hostname: str, machine_id: str) -> str:
    """``bananapif3-1-4c1f0e2a9b3d``: unique per machine even when hostnames repeat."""
    host = re.sub(r"[^A-Za-z0-9._-]+", "-", hostname.split(".")[0]).strip("-.") or "board"
    return f"{host[:50]}-{machine_id[:12]}"


def this_runner_name(config: Config, hostname: str | None = None) -> str:
    return runner_name(hostname or socket.gethostname(), read_machine_id(Path(config.runners.machine_id_file)))


def check_labels(config: Config) -> list[str]:
    labels = list(config.runners.labels)
    if not labels:
        raise ConfigError(f"{_where(config)}: [runners].labels is empty; boards need at least the labels the "
                          f"workflow asks for ([ci].runner-labels)")
    for label in labels:
        if not _LABEL.match(label):
            raise ConfigError(f"{_where(config)}: [runners].labels has {label!r}: labels are letters, digits, "
                              f"'.', '_' and '-' (no spaces or commas)")
    return labels


# --- the runner's own programs and the service manager ---------------------------------


def _fill(template: list[str], values: dict[str, str]) -> list[str]:
    out = []
    for part in template:
        try:
            out.append(part.format(**values))
        except KeyError as e:
            raise ConfigError(f"unknown placeholder {{{e.args[0]}}} in {part!r}; known: "
                              f"{', '.join('{' + k + '}' for k in values)}") from None
    return out


def _command(config: Config, which: str) -> list[str]:
    r = config.runners
    if r.kind not in KINDS:
        raise ConfigError(f"{_where(config)}: [runners].kind {r.kind!r} is not one of {', '.join(KINDS)}")
    command = list(getattr(r, f"{which}_command")) or list(KINDS[r.kind][which])
    if not command:
        raise ConfigError(f"{_where(config)}: [runners].kind {r.kind!r} has no default {which} command; "
                          f"set [runners].{which}-command")
    return command


def _runner_dir(config: Config) -> Path:
    d = config.runners.runner_dir
    return Path(d) if d else Path.cwd()


def _run_secret(argv: list[str], *, env: dict[str, str], cwd: Path, secret: str, what: str) -> None:
    """Run a runner program that receives ``secret``; its output is shown with the secret masked."""
    shown = " ".join(shlex.quote(a.replace(secret, "***")) for a in argv)
    ui.info(f"$ {shown}")
    try:
        proc = subprocess.run(argv, cwd=cwd, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as e:
        raise EnvironmentProblem(f"cannot run {argv[0]} to {what} ({e.strerror}); set [runners].runner-dir to the "
                                 f"runner's folder or [runners].configure-command") from None
    output = proc.stdout.replace(secret, "***")
    for line in output.splitlines()[-40:]:
        ui.info(f"  {line}")
    if proc.returncode != 0:
        raise FactoryError(f"{argv[0]} failed to {what} (exit {proc.returncode}); its output is above")


def service(config: Config, action: str) -> None:
    r = config.runners
    argv = [*shlex.split(r.service_command), action, r.service_name]
    ui.info(f"$ {shlex.join(argv)}")
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as e:
        raise EnvironmentProblem(f"cannot run the service manager {argv[0]!r} ({e.strerror}); "
                                 f"set [runners].service-command") from None
    if proc.returncode != 0:
        raise FactoryError(f"`{shlex.join(argv)}` failed (exit {proc.returncode}): {proc.stdout.strip()[-500:]}")


# --- commands ---------------------------------------------------------------------------


def find_runner(runners: list[dict], name: str) -> dict | None:
    return next((r for r in runners if r.get("name") == name), None)


def _clone_hint(config: Config, name: str, existing: dict) -> str:
    mid = config.runners.machine_id_file
    return (f"a runner named {name} is already registered (id {existing['id']}, {existing.get('status')}). "
            f"If that is this board registering again, pass --replace. If it is another board, this board's "
            f"{mid} is a copy of that board's (cloned image): regenerate it with "
            f"`rm {mid} && systemd-machine-id-setup`, reboot, and register again")


def register(root: Path | str | None = None, *, jit: bool = False, replace: bool = False, name: str = "",
             start: bool = True, hostname: str | None = None, http: requests.Session | None = None) -> int:
    """Register this board once (or, with ``jit``, run one just-in-time runner)."""
    config = load_config(root)
    r = config.runners
    labels = check_labels(config)
    api = api_for(config, http)
    name = name or this_runner_name(config, hostname)
    url = f"{server_url(r.api_url)}/{api.scope}"
    argv_t = _command(config, "jit" if jit else "configure")  # settings errors before any request
    _fill(argv_t, dict.fromkeys(("runner_dir", "name", "url", "labels", "work", "token"), ""))
    existing = find_runner(api.list(), name)

    if jit:
        if existing:
            if existing.get("status") == "online" or existing.get("busy"):
                raise FactoryError(_clone_hint(config, name, existing).replace("pass --replace", "drain it first"))
            api.delete(existing["id"])  # a leftover of this board's previous ephemeral run
        argv = _fill(argv_t, {"runner_dir": str(_runner_dir(config)), "name": name, "url": url,
                              "labels": ",".join(labels), "work": r.work_folder, "token": ""})
        runner, encoded = api.jit_config(name, labels, r.runner_group_id, r.work_folder)
        ui.info(f"just-in-time runner {name} (id {runner.get('id')}) created for {api.scope}")
        try:
            _run_secret(argv, env={"ACTIONS_RUNNER_INPUT_JITCONFIG": encoded}, cwd=_runner_dir(config),
                        secret=encoded, what="run the just-in-time runner")
        except FactoryError:
            # Nothing half-done: a runner that never ran must not stay registered.
            try:
                current = api.get(runner["id"])
                if not current.get("busy"):
                    api.delete(runner["id"])
            except RunnerAPIError:
                pass
            raise
        return 0

    if existing and not replace:
        raise FactoryError(_clone_hint(config, name, existing))
    if existing and existing.get("busy"):
        raise FactoryError(f"runner {name} is running a job; `invoke runners.drain` first, then register again")

    if existing:
        # --replace: this board's old registration goes first (it is idle: checked above).
        api.delete(existing["id"])
        ui.info(f"removed the old registration of {name} (id {existing['id']})")
    # The token is fetched last, right before the one command that uses it.
    token, expires = api.registration_token()
    now = _dt.datetime.now(_dt.timezone.utc)
    if expires <= now + _dt.timedelta(seconds=30):
        raise FactoryError(
            f"the registration token GitHub just issued expires at {expires.isoformat()}, but this board's clock "
            f"says {now.replace(microsecond=0).isoformat()}: the token is already expired here. Fix the clock "
            f"(timedatectl set-ntp true) and register again"
        )
    values = {"runner_dir": str(_runner_dir(config)), "url": url, "name": name, "labels": ",".join(labels),
              "work": r.work_folder, "token": token}
    argv = _fill(argv_t, values)
    _run_secret(argv, env={"ACTIONS_RUNNER_INPUT_TOKEN": token}, cwd=_runner_dir(config), secret=token,
                what=f"register {name}")
    del token, values, argv  # not kept, not stored
    mine = find_runner(api.list(), name)
    if not mine:
        raise FactoryError(f"the configure command succeeded but GitHub lists no runner named {name} in {api.scope}; "
                           f"check that [runners].scope matches the URL it registered against ({url})")
    ui.info(f"registered {name} (id {mine['id']}) for {api.scope} with labels {', '.join(labels)}")
    if start:
        service(config, "start")
    return 0


def _labels_of(runner: dict) -> list[str]:
    return [lab["name"] for lab in runner.get("labels", [])]


def covered(runners: list[dict], wanted: list[str]) -> list[dict]:
    """Online runners that carry every label in ``wanted`` (case-insensitively, like GitHub)."""
    want = {w.lower() for w in wanted}
    return [r for r in runners if r.get("status") == "online" and want <= {x.lower() for x in _labels_of(r)}]


def status(root: Path | str | None = None, *, as_json: bool = False, hostname: str | None = None,
           http: requests.Session | None = None) -> int:
    config = load_config(root)
    api = api_for(config, http)
    runners = sorted(api.list(), key=lambda x: x.get("name", ""))
    try:
        me = this_runner_name(config, hostname)
    except EnvironmentProblem:
        me = ""
    if as_json:
        print(json.dumps([{"id": x["id"], "name": x["name"], "status": x.get("status"),
                           "busy": bool(x.get("busy")), "labels": _labels_of(x), "this_board": x["name"] == me}
                          for x in runners], indent=2))
    else:
        from rich.table import Table

        table = Table(title=f"runners of {api.scope}", title_justify="left")
        for col in ("name", "id", "status", "busy", "labels"):
            table.add_column(col, overflow="fold")
        for x in runners:
            state = "[yellow]busy[/]" if x.get("busy") else "idle"
            online = "[green]online[/]" if x.get("status") == "online" else "[dim]offline[/]"
            mark = " (this board)" if x["name"] == me else ""
            table.add_row(x["name"] + mark, str(x["id"]), online, state, ", ".join(_labels_of(x)))
        ui.console.print(table)
        ui.info(f"{len(runners)} runners: {sum(1 for x in runners if x.get('status') == 'online')} online, "
                f"{sum(1 for x in runners if x.get('busy'))} busy")
    # Jobs that ask for labels no online runner has would wait forever.
    base = list(config.ci.runner_labels)
    sets = {"[ci].runner-labels": base}
    for recipe, extra in config.ci.recipe_labels.items():
        extra = [extra] if isinstance(extra, str) else list(extra)
        sets[f"[ci].recipe-labels.{recipe}"] = base + [x for x in extra if x not in base]
    for key, wanted in sets.items():
        if "self-hosted" in [w.lower() for w in wanted] and not covered(runners, wanted):
            ui.warn(f"no online runner carries all of {', '.join(wanted)} ({key}): those build jobs would "
                    f"queue until one does")
    return 0


@dataclass
class _Paused:
    runner_id: int
    labels: list[str]  # the custom labels taken away


def _wait_idle(config: Config, api: RunnersAPI, runner: dict, *, sleep: Callable[[float], None],
               clock: Callable[[], float]) -> None:
    r = config.runners
    timeout, interval = r.drain_timeout, max(r.poll_interval, 0)
    start = last_note = clock()
    current = runner
    while True:
        if not current.get("busy"):
            return
        waited = clock() - start
        if waited >= timeout:
            raise RunnerBusy(
                f"runner {runner['name']} is still running a job after {int(waited)} s "
                f"([runners].drain-timeout = {timeout}); its service was NOT stopped and its labels are back. "
                f"Wait for the job to finish (see the repository's Actions tab) and run the command again, "
                f"or raise [runners].drain-timeout"
            )
        if clock() - last_note >= 60 or waited == 0:
            ui.info(f"{runner['name']} is running a job; waiting for it to finish "
                    f"({int(waited)} s of at most {timeout} s)")
            last_note = clock()
        sleep(min(interval, max(timeout - waited, 0)))
        current = api.get(runner["id"])


def _drain(config: Config, api: RunnersAPI, name: str, *, sleep, clock) -> tuple[dict, _Paused]:
    runner = find_runner(api.list(), name)
    if not runner:
        raise FactoryError(f"GitHub lists no runner named {name} in {api.scope}; `invoke runners.status` shows "
                           f"the registered ones (pass --name to pick one)")
    custom = [lab["name"] for lab in runner.get("labels", []) if lab.get("type") == "custom"]
    if custom:
        # Without its custom labels the runner gets no new job while the current one finishes.
        api.remove_custom_labels(runner["id"])
        ui.info(f"{name}: custom labels {', '.join(custom)} removed for now, so no new job lands here")
    paused = _Paused(runner["id"], custom)
    try:
        _wait_idle(config, api, runner, sleep=sleep, clock=clock)
        # Last look right before stopping: idle, per GitHub.
        if api.get(runner["id"]).get("busy"):
            _wait_idle(config, api, api.get(runner["id"]), sleep=sleep, clock=clock)
    except BaseException:
        _restore(api, paused)
        raise
    return runner, paused


def _restore(api: RunnersAPI, paused: _Paused) -> None:
    if paused.labels:
        api.set_custom_labels(paused.runner_id, paused.labels)
        ui.info(f"custom labels {', '.join(paused.labels)} restored")


def drain(root: Path | str | None = None, *, name: str = "", hostname: str | None = None,
          http: requests.Session | None = None, sleep=time.sleep, clock=time.monotonic) -> int:
    """Wait until this board's runner is idle, then stop its service."""
    config = load_config(root)
    api = api_for(config, http)
    name = name or this_runner_name(config, hostname)
    runner, paused = _drain(config, api, name, sleep=sleep, clock=clock)
    try:
        service(config, "stop")
    finally:
        # Stopped (offline) runners get no jobs; the labels must be there when it starts again.
        _restore(api, paused)
    ui.info(f"{name} is idle and its service ({config.runners.service_name}) is stopped")
    return 0


def restart(root: Path | str | None = None, *, name: str = "", hostname: str | None = None,
            http: requests.Session | None = None, sleep=time.sleep, clock=time.monotonic) -> int:
    """Drain, restart the service, and wait (bounded) until the runner is back online."""
    config = load_config(root)
    api = api_for(config, http)
    name = name or this_runner_name(config, hostname)
    runner, paused = _drain(config, api, name, sleep=sleep, clock=clock)
    try:
        service(config, "stop")
        service(config, "start")
    finally:
        _restore(api, paused)
    limit = config.runners.online_timeout
    start = clock()
    while True:
        if api.get(runner["id"]).get("status") == "online":
            ui.info(f"{name} restarted and online again")
            return 0
        if clock() - start >= limit:
            raise FactoryError(f"{name} was restarted but is not online after {limit} s "
                               f"([runners].online-timeout); look at `{config.runners.service_command} "
                               f"status {config.runners.service_name}` and the runner's _diag logs")
        sleep(min(max(config.runners.poll_interval, 0), 5) or 0.1)
