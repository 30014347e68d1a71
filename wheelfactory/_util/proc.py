"""Running commands: one way to stream a command into a log, and one way to run git.

Every build, repair, verify, rootfs and cibuildwheel command goes through
:func:`run_streamed`, so they all get the same guarantees:

* each output line reaches the log as it comes (a crash or a kill keeps it),
  with token-shaped strings and the given secrets masked (``ui.mask_secrets``);
* a log whose disk is full stops being written instead of failing the command;
* the command runs in a process group of its own: a timeout, Ctrl-C or any
  exception kills the whole group (compilers, ninja, pip's children), and
  ``setpriv --pdeathsig KILL`` kills it too when this Python dies (kill -9);
* the environment is this process's, changed by ``env`` (a None value unsets).

:func:`git` runs git without prompts and turns a failure into one message
naming what was being done and git's own error line.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from .. import ui
from ..errors import FactoryError

Env = Mapping[str, "str | None"]


def environment(env: Env | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with ``env`` applied; a None value unsets."""
    out = dict(os.environ if base is None else base)
    for key, value in (env or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


class SafeLog:
    """A log that stops writing (instead of failing the command) when its disk is full; masks secrets."""

    def __init__(self, log: IO[str], secrets: Sequence[str] = ()):
        self._log, self._broken = log, False
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def write(self, text: str) -> None:
        if self._broken:
            return
        for secret in self._secrets:
            text = text.replace(secret, "***")
        try:
            self._log.write(ui.mask_secrets(text))
        except OSError:
            self._broken = True

    def flush(self) -> None:
        if not self._broken:
            try:
                self._log.flush()
            except OSError:
                self._broken = True


_SETPRIV = shutil.which("setpriv")


def run_streamed(cmd: Sequence[str | os.PathLike], *, cwd: Path | str, log: IO[str], env: Env | None = None,
                 display: str | None = None, check: bool = True, timeout: float | None = None,
                 echo: Callable[[str], None] | None = None,
                 secrets: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """Run ``cmd``; stdout and stderr, merged, go line by line to ``log`` and are returned in ``.stdout``.

    ``display`` is what the log shows as the command (default: the command).
    ``echo(line)`` sees each line too (progress). ``timeout`` in seconds.
    Raises subprocess.TimeoutExpired after killing the process group on
    timeout, CalledProcessError on a non-zero exit when ``check``, and
    re-raises KeyboardInterrupt (and anything else) after killing the group;
    raises KeyboardInterrupt when ``interrupt_running`` killed it (Ctrl-C in the main thread).
    """
    argv = [str(c) for c in cmd]
    out = SafeLog(log, secrets)
    out.write(f"\n$ {display or ' '.join(argv)}\n")
    out.flush()
    # setpriv --pdeathsig: if this Python process dies (kill -9), the command is killed too.
    full = ["setpriv", "--pdeathsig", "KILL", "--", *argv] if _SETPRIV else argv
    proc = subprocess.Popen(full, cwd=cwd, env=environment(env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                            bufsize=1, start_new_session=True)
    timed_out, interrupted = threading.Event(), threading.Event()
    with _RUNNING_LOCK:
        _RUNNING[proc] = interrupted

    def kill() -> None:
        timed_out.set()
        _kill_group(proc)

    timer = threading.Timer(timeout, kill) if timeout else None
    if timer:
        timer.daemon = True
        timer.start()
    chunks: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            chunks.append(line)
            out.write(line)
            out.flush()
            if echo:
                echo(line)
        rc = proc.wait()
    except BaseException:
        _kill_group(proc)
        proc.wait()
        out.write("[interrupted]\n")
        out.flush()
        raise
    finally:
        with _RUNNING_LOCK:
            _RUNNING.pop(proc, None)
        if timer:
            timer.cancel()
        if proc.stdout:
            proc.stdout.close()
    text = "".join(chunks)
    if interrupted.is_set():
        out.write("[interrupted]\n")
        out.flush()
        raise KeyboardInterrupt
    if timed_out.is_set():
        out.write(f"[timed out after {timeout:g}s]\n")
        out.flush()
        raise subprocess.TimeoutExpired(argv, timeout or 0, output=text)
    out.write(f"[exit {rc}]\n")
    out.flush()
    if check and rc != 0:
        raise subprocess.CalledProcessError(rc, argv, text)
    return subprocess.CompletedProcess(argv, rc, text)


# The commands run_streamed is running (in any thread), and whether interrupt_running killed each.
_RUNNING: dict[subprocess.Popen, threading.Event] = {}
_RUNNING_LOCK = threading.Lock()


def interrupt_running() -> None:
    """Ctrl-C for the commands ``run_streamed`` runs in other threads. Each runs in its own
    session (so it can be killed as a group), which the terminal's SIGINT does not reach:
    kill every group, and each of those ``run_streamed`` calls raises KeyboardInterrupt."""
    with _RUNNING_LOCK:
        running = list(_RUNNING.items())
    for proc, interrupted in running:
        interrupted.set()
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


# --- git ---------------------------------------------------------------------------------------

_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}


def git(args: Sequence[str | os.PathLike], *, cwd: Path | None = None, what: str, log: IO[str] | None = None,
        env: Env | None = None, check: bool = True, error: type[FactoryError] = FactoryError,
        secrets: Sequence[str] = (), timeout: float | None = None) -> subprocess.CompletedProcess:
    """``git ARGS`` with no prompts (stdout and stderr captured, text); returns the CompletedProcess.

    With ``check``, a non-zero exit raises ``error("{what}: {git's error line}")``;
    a missing git raises it too, with the apt-get line. ``env`` changes the
    environment (a None value unsets; GIT_ASKPASS may be set there for tokens);
    ``secrets`` are masked wherever git's output is shown or logged.
    """
    argv = ["git", *map(str, args)]
    safe = SafeLog(log, secrets) if log else None
    if safe:
        safe.write(f"\n$ {' '.join(argv)}\n")
    try:
        proc = subprocess.run(argv, cwd=cwd, env=environment({**_GIT_ENV, **(env or {})}), capture_output=True,
                              text=True, errors="replace", stdin=subprocess.DEVNULL, timeout=timeout)
    except FileNotFoundError:
        raise error(f"{what}: git is not installed; apt-get install -y git") from None
    except subprocess.TimeoutExpired:
        raise error(f"{what}: git {argv[1]} did not finish within {timeout:g} s") from None
    if safe:
        safe.write(proc.stdout + proc.stderr)
        safe.flush()
    if check and proc.returncode != 0:
        raise error(f"{what}: {_masked(git_error_line(proc.stderr or proc.stdout), secrets)}")
    return proc


def git_error_line(output: str) -> str:
    """The line of git's output that says what went wrong (``fatal:``/``error:`` first, else the last)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    return next((ln for ln in lines if ln.startswith(("fatal:", "error:", "!"))), lines[-1] if lines else "(no output)")


def _masked(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return ui.mask_secrets(text)
