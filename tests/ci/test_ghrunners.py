"""Runner management against a local server speaking GitHub's runner API, with a fake service manager.

The fake ``systemctl`` asks the server, at the moment it is told to stop, whether
the runner is busy, and fails loudly (``STOPPED WHILE BUSY``) if it is: the
proof that drain/restart never kill an in-flight build.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, write_project
from fakes.github_runners import FakeGitHub
from wheelfactory.ci import runners as ghrunners
from wheelfactory.cli import runners as runners_cli
from wheelfactory.settings.factory import load_config
from wheelfactory.errors import ConfigError, EnvironmentProblem, FactoryError
from wheelfactory._util.http import session

FAKE = Path(__file__).parents[1] / "fakes" / "github_runners.py"
MACHINE_A = "4c1f0e2a9b3d4e5f8a7b6c5d4e3f2a1b"
MACHINE_B = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b"


@pytest.fixture
def gh():
    with FakeGitHub(scopes=("octo/wheels", "octo-org")) as fake:
        yield fake


def board(tmp_path: Path, gh: FakeGitHub, *, machine_id: str = MACHINE_A, name: str = "board",
          scope: str = "octo/wheels", extra: str = "") -> Path:
    """A project on one board: runner folder, machine-id, settings pointing at the fakes."""
    home = tmp_path / name
    (home / "runner").mkdir(parents=True)
    (home / "machine-id").write_text(machine_id + "\n")
    py = sys.executable
    configure = [py, str(FAKE), "config", "--unattended", "--url", "{url}", "--name", "{name}",
                 "--labels", "{labels}", "--work", "{work}"]
    settings = {
        "api-url": json.dumps(gh.url),
        "scope": json.dumps(scope),
        "service-command": json.dumps(f"{py} {FAKE} systemctl"),
        "service-name": '"github-runner"',
        "configure-command": json.dumps(configure),
        "jit-command": json.dumps([py, str(FAKE), "jit-run"]),
        "runner-dir": json.dumps(str(home / "runner")),
        "machine-id-file": json.dumps(str(home / "machine-id")),
        "drain-timeout": "3",
        "poll-interval": "1",
        "online-timeout": "5",
    }
    for line in filter(None, extra.splitlines()):  # "key = value" lines override the defaults
        key, value = line.split("=", 1)
        settings[key.strip()] = value.strip()
    body = "\n".join(f"{k} = {v}" for k, v in settings.items())
    return write_project(home / "project", config=f"[runners]\n{body}\n", host_target=False)  # a riscv64 board


@pytest.fixture
def env(gh, tmp_path, monkeypatch):
    log = tmp_path / "service.log"
    monkeypatch.setenv("FAKE_ARGV_LOG", str(tmp_path / "argv.log"))
    monkeypatch.setenv("GITHUB_TOKEN", gh.admin_token)
    monkeypatch.setenv("FAKE_GITHUB_URL", gh.url)
    monkeypatch.setenv("FAKE_SERVICE_LOG", str(log))
    monkeypatch.delenv("FAKE_LISTENER_EXIT", raising=False)
    return log


SYSTEM = [("self-hosted", "read-only"), ("linux", "read-only"), ("riscv64", "read-only")]


def labels_of(runner: dict) -> list[tuple[str, str]]:
    return [(lab["name"], lab["type"]) for lab in runner["labels"]]


def name_of(root: Path, hostname: str = "bananapif3-1") -> str:
    return ghrunners.this_runner_name(load_config(root), hostname)


def service_log(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def files_containing(top: Path, secret: str) -> list[Path]:
    return [p for p in top.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


# --- names -------------------------------------------------------------------------------


def test_boards_cloned_from_one_image_get_different_names(tmp_path):
    a = ghrunners.runner_name("bananapif3-1", MACHINE_A)
    b = ghrunners.runner_name("bananapif3-1", MACHINE_B)
    assert a != b and a.startswith("bananapif3-1-") and b.startswith("bananapif3-1-")
    assert ghrunners.runner_name("bananapif3-1.lan.example.org", MACHINE_A) == a  # stable, domain dropped
    bad = tmp_path / "machine-id"
    bad.write_text("uninitialized\n")
    with pytest.raises(EnvironmentProblem, match="does not hold a machine id.*systemd-machine-id-setup"):
        ghrunners.read_machine_id(bad)
    with pytest.raises(EnvironmentProblem, match="cannot read"):
        ghrunners.read_machine_id(tmp_path / "missing")


# --- register ----------------------------------------------------------------------------


def test_register_two_cloned_boards_once_each(gh, env, tmp_path, monkeypatch):
    a = board(tmp_path, gh, machine_id=MACHINE_A, name="a")
    b = board(tmp_path, gh, machine_id=MACHINE_B, name="b")
    for root in (a, b):
        monkeypatch.setenv("FAKE_RUNNER_NAME", name_of(root))
        assert runners_cli.register(root, hostname="bananapif3-1") == 0
    names = sorted(r["name"] for r in gh.runners.values())
    assert names == sorted([name_of(a), name_of(b)]) and names[0] != names[1]
    for r in gh.runners.values():
        # The runner program's read-only system labels, plus the one custom label the factory owns.
        assert labels_of(r) == [*SYSTEM, ("wheelfactory", "custom")]
        assert r["status"] == "online"  # the service was started
    assert service_log(env) == ["start github-runner busy=False"] * 2
    # Each registration used its own fresh token, and none was stored anywhere.
    assert len(gh.issued) == 2
    for token in gh.issued:
        assert files_containing(tmp_path, token) == []  # nor on any command line (the argv log)
    assert (tmp_path / "a/runner/.runner").is_file()


def test_register_via_invoke_never_shows_the_token(gh, env, tmp_path):
    root = board(tmp_path, gh)
    me = ghrunners.this_runner_name(load_config(root))  # the real hostname of this machine
    run_env = {**os.environ, "WHEELFACTORY_ROOT": str(root), "FAKE_RUNNER_NAME": me}
    proc = subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "runners.register"],
                          env=run_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"registered {me}" in proc.stderr
    assert "Runner successfully added" in proc.stderr  # the configure command's output is shown…
    [token] = gh.issued
    assert token not in proc.stdout + proc.stderr  # …without the token
    assert gh.admin_token not in proc.stdout + proc.stderr
    assert files_containing(tmp_path, token) == []


def test_a_copied_machine_id_never_takes_over_the_other_board(gh, env, tmp_path, monkeypatch):
    a = board(tmp_path, gh, machine_id=MACHINE_A, name="a")
    clone = board(tmp_path, gh, machine_id=MACHINE_A, name="clone")
    monkeypatch.setenv("FAKE_RUNNER_NAME", name_of(a))
    runners_cli.register(a, hostname="bananapif3-1")
    before = json.dumps(gh.runners, sort_keys=True)
    with pytest.raises(FactoryError) as e:
        runners_cli.register(clone, hostname="bananapif3-1")
    msg = str(e.value)
    assert "already registered" in msg and "cloned image" in msg and "systemd-machine-id-setup" in msg
    assert json.dumps(gh.runners, sort_keys=True) == before
    assert len(gh.issued) == 1  # no token was even asked for
    # The same board registering again says so explicitly.
    runners_cli.register(a, hostname="bananapif3-1", replace=True)
    assert [r["name"] for r in gh.runners.values()] == [name_of(a)]


def test_missing_token(gh, env, tmp_path, monkeypatch):
    root = board(tmp_path, gh)
    monkeypatch.delenv("GITHUB_TOKEN")
    with pytest.raises(EnvironmentProblem, match=r"\$GITHUB_TOKEN is not set.*admin rights on octo/wheels"):
        runners_cli.register(root, hostname="bananapif3-1")
    assert gh.requests == []


@pytest.mark.parametrize("setup, message", [
    (lambda gh, mp: mp.setenv("GITHUB_TOKEN", "ghp_" + "x" * 36), "rejected the token in $GITHUB_TOKEN (401 Bad credentials)"),
    (lambda gh, mp: mp.setenv("GITHUB_TOKEN", gh.read_token), "may not create a runner registration token (403"),
    (lambda gh, mp: setattr(gh, "scopes", {"someone/else"}), "does not know the repository octo/wheels"),
    (lambda gh, mp: gh.fail_next.append(("POST", "registration-token$", 422)), "refused to create a runner registration"),
])
def test_api_errors_have_one_clear_message(gh, env, tmp_path, monkeypatch, setup, message):
    root = board(tmp_path, gh)
    setup(gh, monkeypatch)
    with pytest.raises(FactoryError) as e:
        runners_cli.register(root, hostname="bananapif3-1")
    assert message in str(e.value)
    assert gh.runners == {} and service_log(env) == []
    assert not (tmp_path / "board/runner/.runner").exists()


def test_an_expired_token_is_never_used(gh, env, tmp_path):
    root = board(tmp_path, gh)
    gh.token_lifetime = dt.timedelta(seconds=-5)  # as if this board's clock were far ahead
    with pytest.raises(FactoryError, match="already expired here. Fix the clock"):
        runners_cli.register(root, hostname="bananapif3-1")
    assert gh.runners == {} and service_log(env) == []
    assert not (tmp_path / "board/runner/.runner").exists()


def test_configure_failure_leaves_nothing_started(gh, env, tmp_path, monkeypatch):
    root = board(tmp_path, gh)
    # The runner program presents a token the server does not accept (as after an hour's delay).
    real = ghrunners._run_secret

    def stale_token(argv, *, env, cwd, secret, what):
        return real(argv, env={**env, "ACTIONS_RUNNER_INPUT_TOKEN": "EXPIRED"}, cwd=cwd, secret=secret, what=what)

    monkeypatch.setattr(ghrunners, "_run_secret", stale_token)
    with pytest.raises(FactoryError, match=r"failed to register .* \(exit 1\)"):
        runners_cli.register(root, hostname="bananapif3-1")
    assert gh.runners == {} and service_log(env) == []


def test_retries_a_flaky_api_and_explains_a_dead_one(gh, env, tmp_path, capsys):
    root = board(tmp_path, gh)
    gh.add_runner("x")
    gh.fail_next += [("GET", "/actions/runners$", 502), ("GET", "/actions/runners$", 503)]
    runners_cli.status(root, as_json=True, http=session(retries=3, backoff=0))
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["x"]
    gh.fail_next += [("GET", "/actions/runners$", 500)] * 3
    with pytest.raises(FactoryError, match="answered 500 Server Error when trying to list runners"):
        runners_cli.status(root, http=session(retries=2, backoff=0))
    gh.server.shutdown()
    gh.server.server_close()
    with pytest.raises(FactoryError, match="cannot reach the GitHub API at http://127.0.0.1"):
        runners_cli.status(root, http=session(retries=0))


def test_an_exhausted_rate_limit_says_when_it_resets(gh, env, tmp_path):
    root = board(tmp_path, gh)
    api = ghrunners.api_for(load_config(root))
    api.list()
    assert api.rate_limit.remaining == gh.rate_remaining and api.rate_limit.limit == 5000
    gh.rate_remaining = 0
    with pytest.raises(FactoryError) as e:
        runners_cli.status(root)
    reset = dt.datetime.fromtimestamp(gh.rate_reset, dt.timezone.utc).isoformat()
    assert f"rate limit exhausted when trying to list runners; it resets at {reset}" in str(e.value)
    assert "rate-limits-for-the-rest-api" in str(e.value)  # GitHub's documentation_url


def test_bad_labels_and_scope_are_refused_before_any_request(gh, env, tmp_path):
    root = board(tmp_path, gh, extra='labels = ["self-hosted", "risc v"]')
    with pytest.raises(ConfigError, match="'risc v': labels are letters"):
        runners_cli.register(root, hostname="bananapif3-1")
    root = board(tmp_path, gh, name="b2", scope="not a/scope/at all")
    with pytest.raises(ConfigError, match="neither OWNER/REPO nor an organization"):
        runners_cli.register(root, hostname="bananapif3-1")
    root = board(tmp_path, gh, name="b3", extra='configure-command = ["./config.sh", "--tokn", "{tokn}"]')
    with pytest.raises(ConfigError, match=r"unknown placeholder \{tokn\}"):
        runners_cli.register(root, hostname="bananapif3-1")
    root = board(tmp_path, gh, name="b4", extra='configure-command = ["./config.sh", "--token", "{token}"]')
    with pytest.raises(ConfigError, match=r"\{token\} in '\{token\}' would put the registration token on the command"):
        runners_cli.register(root, hostname="bananapif3-1")
    root = board(tmp_path, gh, name="b5", extra='kind = "gitea"')
    with pytest.raises(ConfigError, match="kind 'gitea' is not one of official, github-act-runner"):
        runners_cli.register(root, hostname="bananapif3-1")
    assert gh.requests == []


def test_runner_settings_are_checked_when_factory_toml_loads(tmp_path):
    cases = {
        'scope = "octo/wheels/extra"': "[runners].scope 'octo/wheels/extra' is neither OWNER/REPO nor an organization",
        'jit-command = ["run.sh", "{jitconfig}"]': "[runners].jit-command: unknown placeholder {jitconfig} in "
                                                   "'{jitconfig}'; known: {runner_dir}, {url}, {name}",
        'configure-command = ["config.sh", "--url", "{url"]': "[runners].configure-command: '{url' is not a valid "
                                                              "template",
        'labels = ["self-hosted", "riscv64 "]': "[runners].labels has label 'riscv64 ': labels are letters",
    }
    for i, (line, message) in enumerate(cases.items()):
        root = write_project(tmp_path / f"p{i}", config=f"[runners]\n{line}\n")
        with pytest.raises(ConfigError) as e:
            load_config(root)
        assert str(e.value).startswith(f"{root / 'factory.toml'}: ") and message in str(e.value)
    # Only `register --jit` needs a jit command: a github-act-runner board loads fine without one.
    root = write_project(tmp_path / "act", config='[runners]\nkind = "github-act-runner"\nscope = "octo-org"\n')
    assert load_config(root).runners.jit_command == []


# --- just-in-time ------------------------------------------------------------------------------


def test_jit_runner_runs_one_job_and_github_removes_it(gh, env, tmp_path, capsys):
    root = board(tmp_path, gh, scope="octo-org")
    runners_cli.register(root, jit=True, hostname="bananapif3-1")
    [encoded] = gh.issued
    out = capsys.readouterr()
    assert "Connected to GitHub as " + name_of(root) in out.err
    assert encoded not in out.out + out.err and files_containing(tmp_path, encoded) == []
    assert any(p.endswith("/orgs/octo-org/actions/runners/generate-jitconfig") for _, p in gh.requests)
    assert gh.runners == {}  # it ran its job; GitHub removed the ephemeral runner, nothing to clean


def test_a_jit_command_that_cannot_run_names_its_setting_and_leaves_nothing(gh, env, tmp_path):
    root = board(tmp_path, gh, scope="octo-org", extra='jit-command = ["/nonexistent/run.sh"]')
    with pytest.raises(EnvironmentProblem) as e:
        runners_cli.register(root, jit=True, hostname="bananapif3-1")
    msg = str(e.value)
    assert msg.startswith("cannot run /nonexistent/run.sh in ") and "(No such file or directory)" in msg, msg
    assert "set [runners].runner-dir to the runner's folder, or [runners].jit-command to the program" in msg, msg
    assert "registration (id 1) was deleted" in msg and gh.runners == {}


def test_a_failing_service_manager_names_the_settings(gh, env, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_SERVICE_EXIT", "5")
    root = board(tmp_path, gh)
    with pytest.raises(FactoryError) as e:
        ghrunners.service(load_config(root), "start")
    assert "check [runners].service-name (the runner's service) and [runners].service-command in " \
        f"{root / 'factory.toml'}" in str(e.value)


def test_the_runner_stand_in_exits_0_when_its_listener_fails(gh, env, monkeypatch):
    """As actions/runner's run.sh does (src/Misc/layoutroot/run.sh): the cleanup below cannot lean on it."""
    monkeypatch.setenv("FAKE_LISTENER_EXIT", "5")
    proc = subprocess.run([sys.executable, str(FAKE), "jit-run"], capture_output=True, text=True)
    assert proc.returncode == 0 and "Exiting runner..." in proc.stdout and "exit code 5" in proc.stdout


@pytest.mark.parametrize("listener_exit", ["1", "5", "6"])
def test_a_jit_runner_that_never_ran_a_job_is_deleted_whatever_its_exit_status(gh, env, tmp_path, monkeypatch,
                                                                              listener_exit):
    root = board(tmp_path, gh, scope="octo-org")
    monkeypatch.setenv("FAKE_LISTENER_EXIT", listener_exit)
    with pytest.raises(FactoryError) as e:
        runners_cli.register(root, jit=True, hostname="bananapif3-1")
    assert f"the just-in-time runner {name_of(root)} ended without running a job (exit status 0" in str(e.value)
    assert "unused registration (id 1) was deleted" in str(e.value)
    assert gh.runners == {}  # nothing half-done
    assert ("DELETE", "/orgs/octo-org/actions/runners/1") in gh.requests


def test_github_act_runner_defaults_keep_secrets_off_the_command_line(gh, env, tmp_path, monkeypatch, capsys):
    """The default kind on riscv64: `github-act-runner configure` / `run`, token and JIT config in the
    ACTIONS_RUNNER_INPUT_* variables (a stand-in with github-act-runner's flags on PATH)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "github-act-runner"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} act \"$@\"\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    root = board(tmp_path, gh, extra="configure-command = []\njit-command = []")
    config = load_config(root)
    assert config.runner_kind == "github-act-runner"
    monkeypatch.setenv("FAKE_RUNNER_NAME", name_of(root))
    runners_cli.register(root, hostname="bananapif3-1")
    [runner] = gh.runners.values()
    assert labels_of(runner) == [*SYSTEM, ("wheelfactory", "custom")]
    runners_cli.register(root, jit=True, hostname="bananapif3-1", name="jit-1")
    assert gh.by_name("jit-1") is None  # ran its job
    monkeypatch.setenv("FAKE_LISTENER_EXIT", "1")
    with pytest.raises(FactoryError, match="ended without running a job"):
        runners_cli.register(root, jit=True, hostname="bananapif3-1", name="jit-2")
    assert gh.by_name("jit-2") is None
    argvs = [json.loads(line) for line in (tmp_path / "argv.log").read_text().splitlines()]
    assert [a[:2] for a in argvs] == [["github-act-runner", "configure"], ["github-act-runner", "run"],
                                      ["github-act-runner", "run"]]
    assert "--token" not in argvs[0] and "--unattended" in argvs[0]
    for secret in gh.issued:  # the registration token and both JIT configs
        assert secret not in json.dumps(argvs)
    assert all(secret not in capsys.readouterr().err for secret in gh.issued)


# --- status ------------------------------------------------------------------------------------


def test_status_lists_busy_and_idle_and_pages(gh, env, tmp_path, capsys):
    root = board(tmp_path, gh)
    gh.add_runner(name_of(root), busy=True)
    gh.add_runner("old-board", status="offline", labels=(), system=("self-hosted", "linux"))
    for i in range(149):
        gh.add_runner(f"pool-{i:03d}", labels=(), system=("self-hosted", "linux", "X64"))
    runners_cli.status(root, as_json=True, hostname="bananapif3-1")
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert len(rows) == 151  # two pages of 100
    assert rows[name_of(root)] | {"id": 0} == {"id": 0, "name": name_of(root), "status": "online", "busy": True,
                                               "labels": ["self-hosted", "linux", "riscv64", "wheelfactory"],
                                               "this_board": True}
    assert rows["old-board"]["busy"] is False and rows["old-board"]["status"] == "offline"

    runners_cli.status(root, hostname="bananapif3-1")
    err = capsys.readouterr().err
    assert "(this board)" in err and "busy" in err and "idle" in err and "151 runners: 150 online, 1 busy" in err
    assert "no online runner carries" not in err
    gh.runners[gh.by_name(name_of(root))["id"]]["status"] = "offline"
    runners_cli.status(root, hostname="bananapif3-1")
    assert "no online runner carries all of self-hosted, linux, riscv64, wheelfactory" in capsys.readouterr().err


# --- drain / restart: a busy runner is never stopped ------------------------------------------


def registered(gh, root, monkeypatch, *, busy=False) -> dict:
    name = name_of(root)
    monkeypatch.setenv("FAKE_RUNNER_NAME", name)
    rid = gh.add_runner(name, busy=busy)
    return gh.runners[rid]


def test_drain_an_idle_runner_stops_it_and_restart_puts_the_label_back(gh, env, tmp_path, monkeypatch):
    root = board(tmp_path, gh)
    runner = registered(gh, root, monkeypatch)
    assert runners_cli.drain(root, hostname="bananapif3-1") == 0
    assert service_log(env) == ["stop github-runner busy=False"]
    assert runner["status"] == "offline"
    # The factory's label stays off: a service started again (a reboot) gets no job until `restart`.
    assert labels_of(runner) == SYSTEM
    assert runners_cli.restart(root, hostname="bananapif3-1") == 0
    assert runner["status"] == "online" and labels_of(runner) == [*SYSTEM, ("wheelfactory", "custom")]


def test_drain_waits_for_the_job_to_finish(gh, env, tmp_path, monkeypatch):
    root = board(tmp_path, gh, extra="drain-timeout = 30")
    runner = registered(gh, root, monkeypatch, busy=True)
    gh.busy_for_gets[runner["id"]] = 2  # the job ends after two more looks
    start = time.monotonic()
    runners_cli.drain(root, hostname="bananapif3-1")
    assert time.monotonic() - start >= 1.5  # it polled (poll-interval = 1), it did not stop at once
    assert service_log(env) == ["stop github-runner busy=False"]
    calls = [(m, p.rsplit("/", 1)[-1]) for m, p in gh.requests if not p.startswith("/_fake")]
    # the factory's label off first (no new job lands) -> wait until idle -> stop
    assert calls[1] == ("DELETE", "wheelfactory") and calls.count(("GET", str(runner["id"]))) >= 2
    assert labels_of(runner) == SYSTEM


def test_a_queued_job_never_lands_on_a_draining_runner(gh, env, tmp_path, monkeypatch):
    """The workflow's jobs ask for the system labels plus the factory's label. While the board finishes
    its job, the next job is queued: it must wait (the runner lost the factory label), not land on the
    board that is about to stop. System labels cannot be removed, so taking only those away would fail."""
    root = board(tmp_path, gh, extra="drain-timeout = 30")
    runner = registered(gh, root, monkeypatch)
    wanted = load_config(root).build_runs_on
    assert wanted == ["self-hosted", "linux", "riscv64", "wheelfactory"]
    first = gh.queue_job(wanted)
    assert first["runner"] == runner["name"] and runner["busy"]
    queued = []

    def sleep(seconds):  # while drain waits for the first job, the next one is queued
        if not queued:
            queued.append(gh.queue_job(wanted))
        time.sleep(0.05)

    runners_cli.drain(root, hostname="bananapif3-1", sleep=sleep)
    assert service_log(env) == ["stop github-runner busy=False"]  # never stopped while busy
    assert queued and queued[0]["runner"] is None  # the next job still waits for a runner
    # Stripping custom labels leaves the read-only ones, which every job asks for.
    assert [lab for lab in runner["labels"] if lab["type"] == "read-only"] == runner["labels"]
    runners_cli.restart(root, hostname="bananapif3-1")
    api = ghrunners.api_for(load_config(root))
    api.list()  # any request: GitHub hands out queued jobs
    assert queued[0]["runner"] == runner["name"]  # back in service, it takes the waiting job


def test_a_runner_that_stays_busy_is_never_stopped(gh, env, tmp_path, monkeypatch):
    root = board(tmp_path, gh, extra="drain-timeout = 2")
    runner = registered(gh, root, monkeypatch, busy=True)
    me = name_of(root, hostname="bananapif3-1")
    run_env = {**os.environ, "WHEELFACTORY_ROOT": str(root)}
    for task in ("runners.drain", "runners.restart"):
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), task, "--name", me],
                              env=run_env, capture_output=True, text=True)
        assert proc.returncode == 1
        assert "still running a job after 2 s" in proc.stderr and "was NOT stopped" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert time.monotonic() - start < 20  # bounded
    assert service_log(env) == []  # the service manager was never even called
    assert runner["busy"] is True and runner["status"] == "online"
    assert labels_of(runner) == [*SYSTEM, ("wheelfactory", "custom")]  # put back


def test_the_fake_service_manager_does_catch_a_stop_while_busy(gh, env, tmp_path, monkeypatch):
    """The proof above can fail: stopping a busy runner directly is flagged by the fake."""
    root = board(tmp_path, gh)
    registered(gh, root, monkeypatch, busy=True)
    with pytest.raises(FactoryError, match="exit 3"):
        ghrunners.service(load_config(root), "stop")
    assert service_log(env) == ["stop github-runner busy=True", "STOPPED WHILE BUSY"]


def test_restart_waits_then_restarts_and_sees_it_online(gh, env, tmp_path, monkeypatch):
    root = board(tmp_path, gh, extra="drain-timeout = 30")
    runner = registered(gh, root, monkeypatch, busy=True)
    gh.busy_for_gets[runner["id"]] = 1
    assert runners_cli.restart(root, hostname="bananapif3-1") == 0
    assert service_log(env) == ["stop github-runner busy=False", "start github-runner busy=False"]
    assert runner["status"] == "online"
    assert labels_of(runner) == [*SYSTEM, ("wheelfactory", "custom")]


def test_drain_an_unknown_runner(gh, env, tmp_path):
    root = board(tmp_path, gh)
    with pytest.raises(FactoryError, match="lists no runner named bananapif3-1-"):
        runners_cli.drain(root, hostname="bananapif3-1")
    assert service_log(env) == []


def test_service_manager_failure_is_reported_and_labels_return(gh, env, tmp_path, monkeypatch):
    root = board(tmp_path, gh)
    runner = registered(gh, root, monkeypatch)
    monkeypatch.setenv("FAKE_SERVICE_EXIT", "5")
    with pytest.raises(FactoryError, match=r"systemctl stop github-runner` failed \(exit 5\)"):
        runners_cli.drain(root, hostname="bananapif3-1")
    assert labels_of(runner) == [*SYSTEM, ("wheelfactory", "custom")]  # still running: the label is back
    bad = board(tmp_path, gh, name="nosvc", extra='service-command = "/nonexistent/systemctl"')
    with pytest.raises(EnvironmentProblem, match="cannot run the service manager '/nonexistent/systemctl'"):
        ghrunners.service(load_config(bad), "stop")


def test_server_url_for_github_and_enterprise():
    assert ghrunners.server_url("https://api.github.com") == "https://github.com"
    assert ghrunners.server_url("https://ghe.example.org/api/v3") == "https://ghe.example.org"
    assert ghrunners.server_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
