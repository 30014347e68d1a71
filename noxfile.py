"""Nox sessions: thin wrappers that parse arguments and call the engine.

Build sessions run in the current interpreter (python=False): the engine is
installed there with `pip install -e .`, and a no-op build must stay instant.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

# The project root; WHEELFACTORY_ROOT points the sessions at another checkout's
# recipes, dist/ and index/ (the tests use it for throwaway projects).
ROOT = Path(os.environ.get("WHEELFACTORY_ROOT") or Path(__file__).parent).resolve()
nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "uv|virtualenv"


def _engine():
    from wheelfactory import cli

    return cli


# --- tests -------------------------------------------------------------------

@nox.session
def tests(session: nox.Session) -> None:
    """The test suite: real sdists, real pip/uv/auditwheel, local HTTP servers."""
    # pip too: the tests run the real pip of this venv (uv-made venvs have none).
    session.install("pip", "-e", ".[test]")
    session.run("pytest", "-ra", "--durations=30", *session.posargs)


# --- build (issue: recipes to verified wheels) ----------------------------------

def _build_args(session: nox.Session) -> list[str]:
    return list(session.posargs)


@nox.session(name="build", python=False)
def build(session: nox.Session) -> None:
    """Build the recipes named after `--` (and what they need): nox -s build -- numpy cffi."""
    from wheelfactory.cli import build as build_cli

    _engine().run(build_cli.build_command, _build_args(session), root=ROOT)


@nox.session(name="build-all", python=False)
def build_all(session: nox.Session) -> None:
    """Build every recipe, dependency-ordered."""
    from wheelfactory.cli import build as build_cli

    _engine().run(build_cli.build_command, ["--all", *_build_args(session)], root=ROOT)


def _make_build_session(name: str) -> None:
    def session_fn(session: nox.Session) -> None:
        from wheelfactory.cli import build as build_cli

        _engine().run(build_cli.build_command, [name, *_build_args(session)], root=ROOT)

    session_fn.__doc__ = f"Build, repair and verify the {name} recipe."
    nox.session(name=f"build-{name}", python=False)(session_fn)


for _recipe in sorted(p.parent.name for p in (ROOT / "recipes").glob("*/recipe.toml")):
    _make_build_session(_recipe)


# --- emulation (issue: emulated riscv64 runner) ------------------------------------

@nox.session(name="rootfs", python=False)
def rootfs(session: nox.Session) -> None:
    """The build rootfs and clean system: nox -s rootfs -- create [--replace] | update | remove | info [--json]."""
    from wheelfactory.cli import rootfs as rootfs_cli

    _engine().run(rootfs_cli.rootfs_command, list(session.posargs), root=ROOT)


# --- audit / clean install (issue: find what is missing) --------------------------

@nox.session(name="clean-install", python=False)
def clean_install(session: nox.Session) -> None:
    """Install requirements in a bare venv as a user would (on the target's clean system; --target host: here);
    fail on source builds and missing libraries: nox -s clean-install -- numpy [-r FILE] [--index URL] [--target host]."""
    from wheelfactory.cli import audit as audit_cli

    _engine().run(audit_cli.clean_install_command, list(session.posargs), root=ROOT)
