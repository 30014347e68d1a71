"""The factory config: ``factory.toml`` at the project root.

It holds the target (arch, policy, Pythons), the indexes dependencies come from,
where things live, and the settings of each stage. Every section is validated
strictly, like recipes. Paths are relative to the project root.
"""

from __future__ import annotations

import os
import platform
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .schema import Field, Schema, validate

CONFIG_NAME = "factory.toml"

SCHEMA: Schema = {
    "target": {
        "arch": Field("str", "riscv64", "machine arch of the wheels (uname -m spelling)"),
        "policy": Field("str", "manylinux_2_39", "auditwheel policy the wheels are repaired to"),
        "pythons": Field("list[str]", ["3.11", "3.12", "3.13"], "Python versions to build for"),
    },
    "indexes": {
        "install": Field(
            "list[str]",
            ["https://pypi.org/simple"],
            "indexes that build and test dependencies are installed from (first is the main one)",
        ),
    },
    "paths": {
        "recipes": Field("str", "recipes"),
        "patches": Field("str", "patches"),
        "dist": Field("str", "dist"),
        "index": Field("str", "index"),
        "logs": Field("str", "logs", "one log file and one JSON record per build attempt"),
        "build": Field("str", "build", "scratch folders of builds in progress"),
        "cache": Field("str", "cache", "downloaded sources, tool venvs, rootfs, compiler caches"),
    },
    "build": {
        "runner": Field("str", "auto", "auto | native | emulated | container"),
        "jobs": Field("int", 0, "parallel builds in build-all; 0 = number of cores"),
        "keep-going": Field("bool", True, "build-all goes on after a failure (dependents are skipped)"),
        "ccache": Field("bool", True, "compile C/C++ through ccache when it is installed"),
        "exclusive": Field("list[str]", [], "recipes that must build alone (memory-hungry)"),
        "ccache-dir": Field("str", "", "ccache folder; empty = <cache>/ccache"),
        "ccache-max-size": Field("str", "5G", "size limit of the ccache (and sccache) folder"),
        "sccache": Field("bool", True, "wrap rustc in sccache when it is installed"),
        "sccache-dir": Field("str", "", "sccache folder; empty = <cache>/sccache"),
        "cargo-target-dir": Field("str", "", "kept cargo target folders (per arch and recipe); empty = <cache>/cargo-target"),
        "cargo-home": Field("str", "", "CARGO_HOME for builds; empty = unchanged natively, <cache>/cargo-home/<arch> otherwise"),
    },
    "emulation": {
        "suite": Field("str", "sid", "Debian suite of the riscv64 rootfs"),
        "mirror": Field("str", "http://deb.debian.org/debian", "Debian mirror for the rootfs"),
        "apt-options": Field("list[str]", ["Acquire::Check-Valid-Until=false"], "apt options for mmdebstrap"),
        "packages": Field("list[str]", [], "extra Debian packages installed in every rootfs"),
        "rootfs": Field("str", "", "rootfs folder; empty = <cache>/rootfs/<arch>-<suite>"),
        "ca-bundle": Field("str", "/etc/ssl/certs/ca-certificates.crt", "host CA bundle copied into the rootfs"),
        "variant": Field("str", "apt", "mmdebstrap variant: apt (smallest) | minbase | buildd"),
        "slim": Field("bool", True, "leave out docs, man pages, locales, static libpython and sanitizer archives"),
        "max-age-days": Field("int", 30, "warn when the rootfs is older than this (sid moves); 0 = never"),
    },
    "index": {
        "url": Field("str", "", "public URL of the index root (…/simple/), used in pages and checks"),
        "files-base-url": Field(
            "str", "", "absolute URL prefix where wheel files are hosted; empty = co-hosted (relative links)"
        ),
        "title": Field("str", "wheelfactory riscv64 wheels"),
        "yanked": Field("dict[str,str]", {}, "wheel filename or NAME==VERSION -> reason (PEP 592)"),
        "copy-logs": Field("bool", True, "publish each wheel's build log beside it (<wheel>.log) and link it"),
    },
    "publish": {
        "target": Field("str", "directory", "directory | github"),
        "directory": Field("str", "publish", "local folder for the directory target"),
        "api-url": Field("str", "https://api.github.com", "GitHub REST API base URL (Enterprise: https://HOST/api/v3)"),
        "repository": Field("str", "", "owner/name that holds the release"),
        "release-tag": Field("str", "wheels", "release whose assets hold the wheels"),
        "pages-remote": Field("str", "", "git remote URL of the Pages repository"),
        "pages-branch": Field("str", "gh-pages"),
        "token-env": Field("str", "GITHUB_TOKEN", "environment variable holding the token"),
        "timeout": Field("int", 120, "seconds an HTTP request may stall before it is retried"),
        "retries": Field("int", 5, "retries (with backoff) on 5xx, timeouts and connection resets"),
        "prune": Field("bool", True, "delete published files the index no longer lists (after the index is live)"),
    },
    "audit": {
        "pypi-url": Field("str", "https://pypi.org/simple", "PEP 691 index checked for riscv64 wheels"),
        "our-index": Field("str", "", "our published index (PEP 691) checked for our own builds"),
        "concurrency": Field("int", 16),
        "max-age": Field("int", 600, "seconds a cached index page or resolution is used without asking again"),
        "ignore": Field("list[str]", [], "package name patterns (fnmatch) the audit reports but never counts"),
        "debian-mirror": Field("str", "http://deb.debian.org/debian", "mirror whose Contents index names library packages"),
        "debian-suite": Field("str", "", "suite for that lookup; empty = this host's (from /etc/os-release), else sid"),
    },
    "ci": {
        "runner-labels": Field("list[str]", ["self-hosted", "linux", "riscv64"], "runs-on of the build jobs"),
        "hosted-labels": Field(
            "list[str]", ["ubuntu-24.04-riscv"], "labels of hosted riscv64 runners usable without 'self-hosted'"
        ),
        "recipe-labels": Field("dict[str,str|list[str]]", {}, "recipe -> extra runs-on labels (e.g. a big board)"),
        "plan-runs-on": Field("list[str]", ["ubuntu-latest"], "runs-on of the job that plans which recipes changed"),
        "publish-runs-on": Field("list[str]", [], "runs-on of the publish job; empty = runner-labels"),
        "workflow-dir": Field("str", ".github/workflows"),
        "workflow-name": Field("str", "wheels", "name of the generated workflow (and of its .yml file)"),
        "branch": Field("str", "main", "the branch that publishes"),
        "python": Field("str", "python3", "interpreter that creates the engine's venv in each job"),
        "timeout-minutes": Field("int", 360, "per build job (grpcio takes 2.5 hours on a board)"),
        "artifact-retention-days": Field("int", 14),
        "publish-token-secret": Field("str", "GITHUB_TOKEN", "secret handed to `invoke publish` as [publish].token-env"),
        "published-tag": Field("str", "wheels-published", "tag moved to the last commit whose wheels were published"),
        "before-build": Field("list[str]", [], "shell commands run before `nox -s build-NAME` in each build job"),
        "before-publish": Field("list[str]", [], "shell commands run before `invoke publish`"),
    },
    "runners": {
        "api-url": Field("str", "https://api.github.com"),
        "scope": Field("str", "", "owner/repo, or an organization name"),
        "service-command": Field("str", "systemctl", "service manager used to stop/start the runner service"),
        "service-name": Field("str", "github-runner"),
        "labels": Field("list[str]", ["self-hosted", "linux", "riscv64"]),
        "drain-timeout": Field("int", 3600, "seconds to wait for a busy runner to become idle"),
        "poll-interval": Field("int", 15, "seconds between two looks at a busy runner"),
        "online-timeout": Field("int", 120, "seconds `restart` waits for the runner to come back online"),
        "token-env": Field("str", "GITHUB_TOKEN", "environment variable holding a token with admin rights on scope"),
        "kind": Field("str", "official", "official (actions/runner) | github-act-runner"),
        "runner-dir": Field("str", "", "folder of the runner (config.sh/run.sh); empty = the working folder"),
        "configure-command": Field(
            "list[str]", [], "command that registers the runner; empty = from kind ({url} {name} {labels} {token})"
        ),
        "jit-command": Field("list[str]", [], "command that runs a just-in-time runner; empty = from kind"),
        "runner-group-id": Field("int", 1, "runner group for just-in-time runners (1 = Default)"),
        "work-folder": Field("str", "_work"),
        "machine-id-file": Field("str", "/etc/machine-id", "part of the runner's unique name"),
    },
    "container": {
        "engine": Field("str", "", "docker | podman; empty = whichever is found"),
        "image": Field("str", "quay.io/pypa/manylinux_2_39_riscv64"),
        "build-verbosity": Field("int", 1, "cibuildwheel build-verbosity (-3 … 3)"),
        "before-all": Field("list[str]", [], "extra shell commands run once in the container before the builds"),
        "timeout": Field("int", 0, "seconds a cibuildwheel run may take; 0 = no limit"),
    },
    "upstream": {
        "max-bumps": Field("int", 5, "most version bumps one `invoke bump` run proposes"),
        "pypi-url": Field("str", "https://pypi.org/simple", "PEP 691 index checked for new versions and riscv64 wheels"),
        "prereleases": Field("bool", False, "offer pre-release versions as bumps"),
    },
}

# uname -m spellings of the arches we may target, and their wheel-tag spelling.
ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def host_arch() -> str:
    m = platform.machine().lower()
    return ARCH_ALIASES.get(m, m)


@dataclass
class Config:
    root: Path
    data: dict[str, dict[str, Any]]
    source: Path | None = None  # the factory.toml read, if any
    overrides: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.data[section]

    def path(self, name: str) -> Path:
        """A ``[paths]`` entry resolved against the project root."""
        p = Path(self.data["paths"][name])
        return p if p.is_absolute() else self.root / p

    @property
    def arch(self) -> str:
        return self.data["target"]["arch"]

    @property
    def policy(self) -> str:
        return self.data["target"]["policy"]

    @property
    def pythons(self) -> list[str]:
        return list(self.data["target"]["pythons"])

    def for_host(self) -> "Config":
        """The same config aimed at this machine's own arch (``--target host``).

        The policy becomes "best": whatever auditwheel finds for the wheel.
        """
        data = {k: dict(v) for k, v in self.data.items()}
        data["target"]["arch"] = host_arch()
        data["target"]["policy"] = "best"
        return Config(self.root, data, self.source, {**self.overrides, "target": "host"})


def find_root(start: Path | None = None) -> Path:
    """The project root: $WHEELFACTORY_ROOT, or the nearest folder holding factory.toml."""
    env = os.environ.get("WHEELFACTORY_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for d in [here, *here.parents]:
        if (d / CONFIG_NAME).is_file():
            return d
    return here


def load_config(root: Path | str | None = None) -> Config:
    root = Path(root).resolve() if root else find_root()
    path = root / CONFIG_NAME
    raw: dict = {}
    if path.is_file():
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
    data = validate(raw, SCHEMA, where=str(path), error=ConfigError)
    if data["build"]["runner"] not in ("auto", "native", "emulated", "container"):
        raise ConfigError(
            f"{path}: 'build.runner' must be one of auto, native, emulated, container; "
            f"got {data['build']['runner']!r}"
        )
    return Config(root, data, path if path.is_file() else None)
