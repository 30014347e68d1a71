"""Self-hosted runners on the boards: ``invoke runners.register / status / drain / restart``.

One registration per board, for this repository (or the organization), never
one per package:

* **register** fetches a registration token from the REST API right before it
  is used (tokens expire after an hour), hands it to the runner's configure
  command through the environment (``ACTIONS_RUNNER_INPUT_TOKEN``, which both
  actions/runner's config.sh and github-act-runner read like ``--token``), and
  forgets it: it is never on a command line, in a file, a log or the terminal.
  ``--jit`` instead asks for a just-in-time configuration and runs one
  ephemeral runner with it (``ACTIONS_RUNNER_INPUT_JITCONFIG``), for a service
  that re-runs the command after each job. Afterwards the API, not the exit
  status, says whether it ran a job: actions/runner's run.sh exits 0 even when
  its listener fails, so a registration still listed and idle is deleted.
* the board registers its **custom** labels: the factory's own label
  (``[runners].factory-label``, ``wheelfactory``) and ``[runners].labels``.
  ``self-hosted``, the OS and the arch are the runner program's read-only
  system labels; the build jobs ask for those plus the factory label.
* the runner's **name** is the hostname plus the start of ``/etc/machine-id``:
  two boards cloned from one image, both called ``bananapif3-1``, still get
  different names — and if a clone also copied the machine-id, registration
  refuses to take over the other board's runner and says how to regenerate it.
* **status** lists the runners with online/offline and busy/idle, and warns when
  no online runner carries the labels the workflow's jobs ask for (jobs would
  queue forever).
* **drain** / **restart** never stop a runner that is running a job: they take
  the factory's label away first (every self-hosted job asks for it, so no new
  job can match; the system labels cannot be removed and match every job),
  poll the API until it is idle (bounded by ``[runners].drain-timeout``), and
  only then call the service manager. ``drain`` leaves the label off (a service
  started again by a reboot gets no job); ``restart`` puts it back once the
  runner is online. On a timeout the label is put back and nothing is stopped.

The API base URL (``[runners].api-url``) and the service manager command are
settings, so tests point them at a local server and a fake ``systemctl``.
Requests go through the one GitHub client (:class:`wheelfactory._util.github.Runners`).
Label shapes, the scope's shape and the commands' placeholders are checked when
factory.toml is loaded (``settings/factory.py:check_values``). These functions
return reports; ``wheelfactory/cli/runners.py`` prints them.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from .. import ui
from .._util.github import Runners
from ..errors import ConfigError, EnvironmentProblem, FactoryError
from ..settings.factory import RUNNER_KINDS, RUNNER_PLACEHOLDERS, Config

# The default configure / just-in-time commands of each runner kind. Both read the registration
# token from ACTIONS_RUNNER_INPUT_TOKEN and the JIT config from ACTIONS_RUNNER_INPUT_JITCONFIG
# (actions/runner: config.sh/run.sh; github-act-runner: main.go, runnerconfiguration/common.go,
# where `run --jitconfig` defaults to that variable), so neither secret is ever on a command line.
KINDS: dict[str, dict[str, list[str]]] = {
    "official": {
        "configure": ["{runner_dir}/config.sh", "--unattended", "--url", "{url}", "--name", "{name}",
                      "--labels", "{labels}", "--work", "{work}"],
        "jit": ["{runner_dir}/run.sh"],
    },
    "github-act-runner": {
        "configure": ["github-act-runner", "configure", "--unattended", "--url", "{url}", "--name", "{name}",
                      "--labels", "{labels}"],
        "jit": ["github-act-runner", "run"],
    },
}
assert tuple(KINDS) == RUNNER_KINDS, "factory.toml's [runners].kind choices are these kinds"


class RunnerBusy(FactoryError):
    """The runner did not become idle in time; its service was left running."""


# --- settings, names, the API ------------------------------------------------------------


def scope_of(config: Config) -> str:
    """``[runners].scope`` (its shape is checked at load); a clear error when it is not set."""
    if not config.runners.scope:
        raise ConfigError(f"{config.where}: set [runners].scope to the repository (\"OWNER/REPO\") or the "
                          f"organization the boards run jobs for")
    return config.runners.scope


def server_url(api_url: str) -> str:
    """The web URL runners register against: api.github.com -> github.com, HOST/api/v3 -> HOST."""
    parts = urlsplit(api_url.rstrip("/"))
    if parts.netloc == "api.github.com":
        return "https://github.com"
    path = parts.path.removesuffix("/api/v3")
    return f"{parts.scheme}://{parts.netloc}{path}"


def api_for(config: Config, http: requests.Session | None = None) -> Runners:
    """The runner endpoints of ``[runners].scope``, with the admin token from ``[runners].token-env``."""
    r = config.runners
    scope = scope_of(config)
    token = os.environ.get(r.token_env, "")
    if not token:
        raise EnvironmentProblem(
            f"${r.token_env} is not set: export a token with admin rights on {scope} "
            f"([runners].token-env names the variable); it is only used to ask GitHub for runner tokens"
        )
    return Runners(r.api_url, scope, token, token_env=r.token_env, http=http)


def read_machine_id(path: Path) -> str:
    """The 32 hex digits of ``/etc/machine-id`` (lower case); EnvironmentProblem with the fix otherwise."""
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
    """This board's runner name (``hostname``: instead of this machine's)."""
    return runner_name(hostname or socket.gethostname(), read_machine_id(Path(config.runners.machine_id_file)))




# --- the runner's own programs and the service manager ---------------------------------


def _fill(template: list[str], values: dict[str, str]) -> list[str]:
    return [part.format(**values) for part in template]  # placeholders checked at load


def _command(config: Config, which: str) -> list[str]:
    """The configure or jit command: ``[runners].{which}-command``, else the kind's default."""
    command = list(getattr(config.runners, f"{which}_command")) or list(KINDS[config.runner_kind][which])
    if not command:
        raise ConfigError(f"{config.where}: [runners].{which}-command is empty and [runners].kind "
                          f"{config.runner_kind!r} has no default; set [runners].{which}-command")
    return command


def _runner_dir(config: Config) -> Path:
    d = config.runners.runner_dir
    return Path(d) if d else Path.cwd()


def _run_secret(argv: list[str], *, env: dict[str, str], cwd: Path, secret: str, what: str,
                key: str = "[runners].configure-command") -> None:
    """Run a runner program that receives ``secret``; its output is shown with the secret masked.

    ``key``: the setting that names the program (``[runners].configure-command``), for the message.
    """
    shown = " ".join(shlex.quote(a.replace(secret, "***")) for a in argv)
    ui.info(f"$ {shown}")
    try:
        proc = subprocess.run(argv, cwd=cwd, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as e:
        raise EnvironmentProblem(f"cannot run {argv[0]} in {cwd} to {what} ({e.strerror}); set [runners].runner-dir "
                                 f"to the runner's folder, or {key} to the program") from None
    output = proc.stdout.replace(secret, "***")
    for line in output.splitlines()[-40:]:
        ui.info(f"  {line}")
    if proc.returncode != 0:
        raise FactoryError(f"{argv[0]} failed to {what} (exit {proc.returncode}); its output is above")


def service(config: Config, action: str) -> None:
    """``[runners].service-command ACTION [runners].service-name`` (stop, start)."""
    r = config.runners
    argv = [*shlex.split(r.service_command), action, r.service_name]
    ui.info(f"$ {shlex.join(argv)}")
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    except OSError as e:
        raise EnvironmentProblem(f"cannot run the service manager {argv[0]!r} ({e.strerror}); "
                                 f"set [runners].service-command in {config.where}") from None
    if proc.returncode != 0:
        raise FactoryError(f"`{shlex.join(argv)}` failed (exit {proc.returncode}): {proc.stdout.strip()[-500:]}; "
                           f"check [runners].service-name (the runner's service) and [runners].service-command "
                           f"in {config.where}")


# --- register ------------------------------------------------------------------------------


@dataclass
class Registration:
    """What ``register`` did: the runner ``name`` (its GitHub id) in ``scope``, with the custom ``labels``."""

    name: str
    runner_id: int | None
    scope: str
    labels: list[str]
    jit: bool = False


def find_runner(runners: list[dict], name: str) -> dict | None:
    """The runner called ``name`` in an API listing, or None."""
    return next((r for r in runners if r.get("name") == name), None)


def _clone_hint(config: Config, name: str, existing: dict) -> str:
    mid = config.runners.machine_id_file
    return (f"a runner named {name} is already registered (id {existing['id']}, {existing.get('status')}). "
            f"If that is this board registering again, pass --replace. If it is another board, this board's "
            f"{mid} is a copy of that board's (cloned image): regenerate it with "
            f"`rm {mid} && systemd-machine-id-setup`, reboot, and register again")


def register(config: Config, *, jit: bool = False, replace: bool = False, name: str = "", start: bool = True,
             hostname: str | None = None, http: requests.Session | None = None) -> Registration:
    """Register this board once (or, with ``jit``, run one just-in-time runner).

    Raises FactoryError, and changes nothing on GitHub, when the name is taken
    (a cloned machine-id) or the runner is busy; a just-in-time runner that
    fails to run is deleted again.
    """
    labels = config.board_labels  # custom ones: the runner program adds its system labels itself
    api = api_for(config, http)
    name = name or this_runner_name(config, hostname)
    argv_t = _command(config, "jit" if jit else "configure")  # settings errors before any request
    values = {"runner_dir": str(_runner_dir(config)), "url": f"{server_url(config.runners.api_url)}/{api.scope}",
              "name": name, "labels": ",".join(labels), "work": config.runners.work_folder}
    assert set(values) == set(RUNNER_PLACEHOLDERS)
    existing = find_runner(api.list(), name)
    if jit:
        return _run_jit(config, api, existing, _fill(argv_t, values), Registration(name, None, api.scope, labels,
                                                                                   jit=True))
    if existing and not replace:
        raise FactoryError(_clone_hint(config, name, existing))
    if existing and existing.get("busy"):
        raise FactoryError(f"runner {name} is running a job; `invoke runners.drain` first, then register again")
    if existing:
        # --replace: this board's old registration goes first (it is idle: checked above).
        api.delete(existing["id"])
        ui.info(f"removed the old registration of {name} (id {existing['id']})")
    _configure(config, api, argv_t, values)
    mine = find_runner(api.list(), name)
    if not mine:
        raise FactoryError(f"the configure command succeeded but GitHub lists no runner named {name} in {api.scope}; "
                           f"check that [runners].scope matches the URL it registered against ({values['url']})")
    if start:
        service(config, "start")
    return Registration(name, mine["id"], api.scope, labels)


def _configure(config: Config, api: Runners, argv_t: list[str], values: dict[str, str]) -> None:
    """Fetch a registration token last, right before the one command that uses it, and forget it."""
    token, expires = api.registration_token()
    now = _dt.datetime.now(_dt.timezone.utc)
    if expires <= now + _dt.timedelta(seconds=30):
        raise FactoryError(
            f"the registration token GitHub just issued expires at {expires.isoformat()}, but this board's clock "
            f"says {now.replace(microsecond=0).isoformat()}: the token is already expired here. Fix the clock "
            f"(timedatectl set-ntp true) and register again"
        )
    _run_secret(_fill(argv_t, values), env={"ACTIONS_RUNNER_INPUT_TOKEN": token}, cwd=_runner_dir(config),
                secret=token, what=f"register {values['name']}")
    del token  # not kept, not stored


def _run_jit(config: Config, api: Runners, existing: dict | None, argv: list[str],
             reg: Registration) -> Registration:
    if existing:
        if existing.get("status") == "online" or existing.get("busy"):
            raise FactoryError(_clone_hint(config, reg.name, existing).replace("pass --replace", "drain it first"))
        api.delete(existing["id"])  # a leftover of this board's previous ephemeral run
    r = config.runners
    runner, encoded = api.jit_config(reg.name, [*config.system_labels, *reg.labels], r.runner_group_id,
                                     r.work_folder)
    reg.runner_id = runner.get("id")
    ui.info(f"just-in-time runner {reg.name} (id {reg.runner_id}) created for {api.scope}")
    failed: FactoryError | None = None
    try:
        _run_secret(argv, env={"ACTIONS_RUNNER_INPUT_JITCONFIG": encoded}, cwd=_runner_dir(config),
                    secret=encoded, what="run the just-in-time runner", key="[runners].jit-command")
    except FactoryError as e:
        failed = e
    # The exit status proves nothing (run.sh exits 0 when its listener fails): ask GitHub. An
    # ephemeral runner that ran its job is removed by GitHub; one still listed and idle never ran.
    left = api.lookup(runner["id"])
    if left is not None and not left.get("busy"):
        api.delete(runner["id"])
        if isinstance(failed, EnvironmentProblem):  # it never started: why, not "ended without a job"
            raise EnvironmentProblem(f"{failed}; the unused just-in-time registration (id {runner['id']}) "
                                     f"was deleted") from None
        status = "a nonzero exit status" if failed else "exit status 0, which run.sh returns even when its listener fails"
        raise FactoryError(
            f"the just-in-time runner {reg.name} ended without running a job ({status}); its unused "
            f"registration (id {runner['id']}) was deleted. Its output is above (the official runner's "
            f"listener log is in {_runner_dir(config) / '_diag'})")
    if failed:
        raise failed
    return reg


# --- status --------------------------------------------------------------------------------


def _labels_of(runner: dict) -> list[str]:
    return [lab["name"] for lab in runner.get("labels", [])]


def covered(runners: list[dict], wanted: list[str]) -> list[dict]:
    """Online runners that carry every label in ``wanted`` (case-insensitively, like GitHub)."""
    want = {w.lower() for w in wanted}
    return [r for r in runners if r.get("status") == "online" and want <= {x.lower() for x in _labels_of(r)}]


@dataclass
class Status:
    """The runners of ``scope`` (sorted by name), which one is this board, and the self-hosted label
    sets of the workflow's build jobs that no online runner carries (``{key: labels}``)."""

    scope: str
    runners: list[dict]
    this_board: str
    uncovered: dict[str, list[str]] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """One plain dict per runner: id, name, status, busy, labels, this_board."""
        return [{"id": x["id"], "name": x["name"], "status": x.get("status"), "busy": bool(x.get("busy")),
                 "labels": _labels_of(x), "this_board": x["name"] == self.this_board} for x in self.runners]


def status(config: Config, *, hostname: str | None = None, http: requests.Session | None = None) -> Status:
    """Every runner of ``[runners].scope``, and the build jobs' label sets no online runner covers."""
    api = api_for(config, http)
    runners = sorted(api.list(), key=lambda x: x.get("name", ""))
    try:
        me = this_runner_name(config, hostname)
    except EnvironmentProblem:
        me = ""
    # Jobs that ask for labels no online runner has would wait forever.
    base = config.build_runs_on
    sets = {"[ci].runner-labels": base}
    for recipe, extra in config.ci.recipe_labels.items():
        extra = [extra] if isinstance(extra, str) else list(extra)
        sets[f"[ci].recipe-labels.{recipe}"] = base + [x for x in extra if x not in base]
    uncovered = {key: wanted for key, wanted in sets.items()
                 if "self-hosted" in [w.lower() for w in wanted] and not covered(runners, wanted)}
    return Status(api.scope, runners, me, uncovered)


# --- drain / restart: a busy runner is never stopped ---------------------------------------


def _wait(done: Callable[[], bool], *, timeout: float, interval: float, sleep: Callable[[float], None],
          clock: Callable[[], float], note: Callable[[float], None] | None = None) -> bool:
    """Ask ``done()`` every ``interval`` seconds until it is true (True) or ``timeout`` seconds passed (False).

    ``note(seconds waited)`` is called at the first wait and then once a minute.
    """
    start, last_note = clock(), None
    while not done():
        waited = clock() - start
        if waited >= timeout:
            return False
        if note and (last_note is None or clock() - last_note >= 60):
            note(waited)
            last_note = clock()
        sleep(min(interval, max(timeout - waited, 0)))
    return True


def _drain(config: Config, api: Runners, name: str, *, sleep, clock) -> tuple[dict, bool]:
    """Take the factory's label off the runner, then wait until it is idle: (runner, whether the label was
    taken now). Every self-hosted job asks for that label, so no new job lands while the current one ends
    (the system labels self-hosted/OS/arch cannot be removed and would match every job).

    On a timeout (RunnerBusy) or any error the label is put back.
    """
    runner = find_runner(api.list(), name)
    if not runner:
        raise FactoryError(f"GitHub lists no runner named {name} in {api.scope}; `invoke runners.status` shows "
                           f"the registered ones (pass --name to pick one)")
    own = config.runners.factory_label
    taken = api.remove_label(runner["id"], own) is not None
    ui.info(f"{name}: label {own} removed, so no new job lands here" if taken else
            f"{name}: carries no label {own} (drained before?), so no new job lands here")
    timeout = config.runners.drain_timeout
    try:
        idle = _wait(lambda: not api.get(runner["id"]).get("busy"), timeout=timeout,
                     interval=max(config.runners.poll_interval, 0), sleep=sleep, clock=clock,
                     note=lambda waited: ui.info(f"{name} is running a job; waiting for it to finish "
                                                 f"({int(waited)} s of at most {timeout} s)"))
        if not idle:
            raise RunnerBusy(
                f"runner {name} is still running a job after {timeout} s "
                f"([runners].drain-timeout = {timeout}); its service was NOT stopped and its label is back. "
                f"Wait for the job to finish (see the repository's Actions tab) and run the command again, "
                f"or raise [runners].drain-timeout"
            )
    except BaseException:
        if taken:
            _restore(api, runner["id"], own)
        raise
    return runner, taken


def _restore(api: Runners, runner_id: int, label: str) -> None:
    api.add_labels(runner_id, [label])
    ui.info(f"label {label} restored")


def drain(config: Config, *, name: str = "", hostname: str | None = None, http: requests.Session | None = None,
          sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> str:
    """Take the factory's label off the runner (default: this board's), wait until it is idle, then stop its
    service; returns its name. The label stays off until ``restart``.

    Raises RunnerBusy, with nothing stopped and the label back, after ``[runners].drain-timeout`` seconds.
    """
    api = api_for(config, http)
    name = name or this_runner_name(config, hostname)
    runner, taken = _drain(config, api, name, sleep=sleep, clock=clock)
    try:
        service(config, "stop")
    except BaseException:
        if taken:  # still running: it may take jobs again
            _restore(api, runner["id"], config.runners.factory_label)
        raise
    return name


def restart(config: Config, *, name: str = "", hostname: str | None = None, http: requests.Session | None = None,
            sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> str:
    """Drain, restart the service, wait (``[runners].online-timeout``) until the runner is online, and put
    the factory's label back (also when an earlier ``drain`` took it)."""
    api = api_for(config, http)
    name = name or this_runner_name(config, hostname)
    runner, _ = _drain(config, api, name, sleep=sleep, clock=clock)
    r = config.runners
    try:
        service(config, "stop")
        service(config, "start")
        if not _wait(lambda: api.get(runner["id"]).get("status") == "online", timeout=r.online_timeout,
                     interval=min(max(r.poll_interval, 0), 5) or 0.1, sleep=sleep, clock=clock):
            raise FactoryError(f"{name} was restarted but is not online after {r.online_timeout} s "
                               f"([runners].online-timeout); look at `{r.service_command} "
                               f"status {r.service_name}` and the runner's _diag logs")
    finally:
        # An offline runner gets no job, so the label can always go back.
        _restore(api, runner["id"], r.factory_label)
    return name
