"""The native runner: commands stream into the log as they run, env changes, and timeouts kill the whole tree."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import write_project
from wheelfactory.errors import EnvironmentProblem
from wheelfactory.runners import select_runner
from wheelfactory.runners.emulated import EmulatedRunner, emulation_problem
from wheelfactory.runners.native import NativeRunner
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.target import host_arch


def _wait_for(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_output_reaches_the_log_file_while_the_command_runs_and_ends_with_the_exit_line(tmp_path):
    log_path, stop = tmp_path / "attempt.log", tmp_path / "STOP"
    script = f"echo first; while [ ! -e {stop} ]; do sleep 0.05; done; echo second >&2; exit 3"
    result: dict = {}
    with open(log_path, "w") as log:
        worker = threading.Thread(target=lambda: result.update(
            proc=NativeRunner().run(["sh", "-c", script], cwd=tmp_path, log=log, check=False)))
        worker.start()
        try:
            # Still running, yet its first line is on disk: a crash or a kill from here on keeps it.
            assert _wait_for(lambda: "first" in log_path.read_text()), log_path.read_text()
            assert worker.is_alive()
        finally:
            stop.touch()
            worker.join(60)
    proc = result["proc"]
    assert proc.returncode == 3 and proc.stdout.split() == ["first", "second"]
    text = log_path.read_text()
    assert text.startswith(f"\n$ sh -c {script}\n") and text.endswith("first\nsecond\n[exit 3]\n"), text
    with open(log_path, "a") as log, pytest.raises(subprocess.CalledProcessError) as e:
        NativeRunner().run(["sh", "-c", "echo to-the-log; exit 7"], cwd=tmp_path, log=log)
    assert e.value.returncode == 7 and "to-the-log" in e.value.output
    assert log_path.read_text().endswith("to-the-log\n[exit 7]\n")


def test_env_changes_the_host_environment_and_none_unsets(tmp_path, monkeypatch):
    monkeypatch.setenv("WF_TEST_KEPT", "kept")
    monkeypatch.setenv("WF_TEST_GONE", "still here")
    with open(tmp_path / "log", "w") as log:
        proc = NativeRunner().run(["sh", "-c", 'echo "$WF_TEST_KEPT ${WF_TEST_GONE-unset} $WF_TEST_NEW"'],
                                  cwd=tmp_path, env={"WF_TEST_GONE": None, "WF_TEST_NEW": "new"}, log=log)
    assert proc.stdout.split() == ["kept", "unset", "new"]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie waiting for its reaper is dead


def test_a_timeout_kills_the_command_and_what_it_started(tmp_path):
    log_path = tmp_path / "log"
    with open(log_path, "w") as log, pytest.raises(subprocess.TimeoutExpired):
        NativeRunner().run(["sh", "-c", "sleep 300 & echo $!; wait"], cwd=tmp_path, log=log, timeout=1)
    text = log_path.read_text()
    assert "[timed out after 1s]" in text
    background = int(text.splitlines()[2])
    assert _wait_for(lambda: not _alive(background)), "the background sleep outlived the timeout"


def test_pythons_finds_this_interpreter_by_version():
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    found = NativeRunner().pythons([version, "2.1"])
    if found:  # this interpreter may not be on PATH as pythonX.Y
        assert list(found) == [version] and os.access(found[version], os.X_OK)
    assert "2.1" not in found


def test_select_runner_native_on_a_foreign_target_says_what_to_do(tmp_path):
    config = load_config(write_project(tmp_path / "p", host_target=False))
    if config.arch == os.uname().machine:
        pytest.skip("this host is the default target")
    with pytest.raises(EnvironmentProblem) as e:
        select_runner(config, "native")
    assert "a native build cannot produce" in str(e.value) and "--runner emulated" in str(e.value)


def test_a_native_build_for_the_target_runs_in_a_native_rootfs_and_on_its_own_system_only_if_allowed(tmp_path):
    """A board (host arch = target arch, a manylinux policy) builds in a native rootfs of its arch: the
    emulated runner's rootfs without QEMU, named "rootfs" and recorded as not emulated. Its own system
    only when build.own-system allows it, recorded so. --target host (policy best) needs nothing."""
    arch = host_arch()
    target = f'[target]\narch = "{arch}"\npolicy = "manylinux_2_28"\n'
    root = write_project(tmp_path / "p", host_target=False, config=target)
    config = load_config(root)
    problem = emulation_problem(config)  # None as root with mmdebstrap (as CI runs): no QEMU asked for
    if problem:
        with pytest.raises(EnvironmentProblem) as e:
            select_runner(config)
        assert problem in str(e.value) and f"native {arch} Debian rootfs" in str(e.value)
        assert "own-system = true" in str(e.value) and "--target host" in str(e.value)
    else:
        runner = select_runner(config)
        assert isinstance(runner, EmulatedRunner) and runner.name == "rootfs" and not runner.emulated
        assert runner.id == f"rootfs-{arch}-sid" and runner.arch() == arch
        host = runner.describe()
        assert host["runner"] == "rootfs" and host["emulated"] is False and "emulator" not in host, host
        assert host["rootfs"]["suite"] == "sid" and host["rootfs"]["path"].endswith(f"/rootfs/{arch}-sid")
        assert not runner.rootfs.path.exists(), "choosing the runner makes nothing"
    with pytest.raises(EnvironmentProblem) as e:
        select_runner(config, "native")  # the machine's own system, asked for by name: still needs the setting
    assert "own-system = true" in str(e.value) and str(root / "factory.toml") in str(e.value)
    assert "--target host" in str(e.value)
    assert select_runner(config.for_host()).name == "native"
    (root / "factory.toml").write_text(target + "[build]\nown-system = true\n")
    runner = select_runner(load_config(root))
    assert runner.name == "native" and runner.describe()["system"] == "own system"
