"""The factory config: ``factory.toml`` at the project root, as frozen dataclasses.

It holds the target (arch, policy, Pythons), the indexes dependencies come from,
where things live, and the settings of each stage: one dataclass per table
(``config.build.ccache``, ``config.paths.dist``). Every table is validated
strictly at load, like recipes (settings/schema.py), and so is every value rule
that needs no other file (runner choices, label shapes, names). Paths are
relative to the project root and come out resolved.
"""

from __future__ import annotations

import dataclasses
import os
import re
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .schema import as_toml, did_you_mean, parse_tables, setting
from .target import host_arch

CONFIG_NAME = "factory.toml"
# Overrides paths.cache: the generated build jobs set it to [ci].cache-dir, outside the checkout.
CACHE_ENV = "WHEELFACTORY_CACHE"

RUNNER_CHOICES = ("auto", "native", "emulated", "container")
CROSS_CHOICES = ("auto", "required", "off")
PUBLISH_TARGETS = ("directory", "github")
CONTAINER_ENGINES = ("", "docker", "podman")
RUNNER_KINDS = ("official", "github-act-runner")
# The arch label each runner kind registers by itself (a read-only system label, beside
# `self-hosted` and the OS), by `uname -m`; an arch missing here has no build of that kind.
# actions/runner publishes linux-x64, -arm64 and -arm and labels them X64, ARM64, ARM;
# github-act-runner (Go) registers runtime.GOARCH (main.go: --no-default-labels).
RUNNER_ARCH_LABELS: dict[str, dict[str, str]] = {
    "official": {"x86_64": "X64", "aarch64": "ARM64", "armv7l": "ARM"},
    "github-act-runner": {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "riscv64": "riscv64",
                          "ppc64le": "ppc64le", "s390x": "s390x", "i686": "386"},
}
# What [runners].configure-command and jit-command may name ({url} …); ci/runners.py fills them in.
# No {token}: registration tokens go through ACTIONS_RUNNER_INPUT_TOKEN, never argv (`ps` shows argv).
RUNNER_PLACEHOLDERS = ("runner_dir", "url", "name", "labels", "work")
# A GitHub Actions runner label: what `config.sh --labels` and runs-on accept.
LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
PYTHON_XY = re.compile(r"3\.\d{1,2}")  # a CPython minor version as target.pythons and --python write it
_SCOPE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})(?:/[A-Za-z0-9._-]{1,100})?$")


@dataclass(frozen=True)
class TargetSettings:
    arch: str = setting("riscv64", "machine arch of the wheels (uname -m spelling)")
    policy: str = setting("manylinux_2_39", "auditwheel policy the wheels are repaired to")
    pythons: list[str] = setting(["3.11", "3.12", "3.13"], "Python versions to build for")


@dataclass(frozen=True)
class IndexesSettings:
    install: list[str] = setting(
        ["https://pypi.org/simple"],
        "indexes that build and test dependencies are installed from (first is the main one)",
    )


@dataclass(frozen=True)
class PathsSettings:
    recipes: Path = setting(Path("recipes"), "one folder per recipe: recipes/NAME/recipe.toml")
    patches: Path = setting(Path("patches"), "patches/NAME/[VERSION/]*.patch")
    dist: Path = setting(Path("dist"), "built wheels and one JSON record per wheel")
    index: Path = setting(Path("index"), "the generated PEP 503/658/691 site")
    logs: Path = setting(Path("logs"), "one log file and one JSON record per build attempt")
    build: Path = setting(Path("build"), "scratch folders of builds in progress")
    cache: Path = setting(Path("cache"), "downloaded sources, tool venvs, rootfs, compiler caches")


@dataclass(frozen=True)
class BuildSettings:
    runner: str = setting("auto", "auto | native (own system) | emulated (the target's rootfs, natively on a board) "
                                  "| container")
    own_system: bool = setting(False, "a build for the target on a machine of its arch (a board) runs on this "
                               "machine's own system, whose installed packages can get into wheels, recorded as "
                               "such; false = in a native rootfs of that arch (root and mmdebstrap needed)")
    jobs: int = setting(0, "parallel builds in build-all; 0 = number of cores")
    keep_going: bool = setting(True, "build-all goes on after a failure (dependents are skipped)")
    ccache: bool = setting(True, "compile C/C++ through ccache when it is installed")
    exclusive: list[str] = setting([], "recipes that must build alone (memory-hungry)")
    ccache_dir: str = setting("", "ccache folder; empty = <cache>/ccache")
    ccache_max_size: str = setting("5G", "size limit of the ccache (and sccache) folder")
    sccache: bool = setting(True, "wrap rustc in sccache when it is installed")
    sccache_dir: str = setting("", "sccache folder; empty = <cache>/sccache")
    cargo_target_dir: str = setting("", "kept cargo target folders (per arch and recipe); empty = <cache>/cargo-target")
    cargo_home: str = setting("", "CARGO_HOME for builds; empty = unchanged natively, <cache>/cargo-home/<arch> otherwise")


@dataclass(frozen=True)
class EmulationSettings:
    suite: str = setting("sid", "Debian suite of the target's rootfs and clean system (emulated, or native on a board)")
    mirror: str = setting("http://deb.debian.org/debian", "Debian mirror for the rootfs")
    apt_options: list[str] = setting(["Acquire::Check-Valid-Until=false"], "apt options for mmdebstrap")
    packages: list[str] = setting([], "extra Debian packages installed in every rootfs")
    rootfs: str = setting("", "rootfs folder; empty = <cache>/rootfs/<arch>-<suite>")
    ca_bundle: str = setting("/etc/ssl/certs/ca-certificates.crt", "host CA bundle copied into the rootfs")
    variant: str = setting("apt", "mmdebstrap variant: apt (smallest) | minbase | buildd")
    slim: bool = setting(True, "leave out docs, man pages, locales, static libpython and sanitizer archives")
    max_age_days: int = setting(30, "warn when the rootfs is older than this (sid moves); 0 = never")
    cross_compilers: str = setting("auto", "C, C++ and Fortran calls of emulated builds run native cross compilers "
                                   "of the rootfs's gcc version (from a native Debian rootfs mounted at /native): "
                                   "auto (when they can be had, else the emulated compilers, said in the record) "
                                   "| required | off")
    cross_rootfs: str = setting("", "folder of the native rootfs holding the cross compilers; "
                                    "empty = the build rootfs's folder + `-cross`")


@dataclass(frozen=True)
class IndexSettings:
    url: str = setting("", "public URL of the index root (…/simple/), used in pages and checks")
    files_base_url: str = setting(
        "", "absolute URL prefix where wheel files are hosted; empty = co-hosted (relative links)")
    title: str = setting("wheelfactory riscv64 wheels", "title of the human-readable pages")
    yanked: dict[str, str] = setting({}, "wheel filename or NAME==VERSION -> reason (PEP 592)")
    copy_logs: bool = setting(True, "publish each wheel's build log beside it (<wheel>.log) and link it")


@dataclass(frozen=True)
class PublishSettings:
    target: str = setting("directory", "directory | github")
    directory: str = setting("publish", "local folder for the directory target")
    api_url: str = setting("https://api.github.com", "GitHub REST API base URL (Enterprise: https://HOST/api/v3)")
    repository: str = setting("", "owner/name that holds the release")
    release_tag: str = setting("wheels-{project}", "release whose assets hold the wheels; {project} (the normalized "
                               "project name) gives each project its own release, below GitHub's 1000 assets each")
    pages_remote: str = setting("", "git remote URL of the Pages repository")
    pages_branch: str = setting("gh-pages", "branch of the Pages repository that GitHub Pages serves")
    token_env: str = setting("GITHUB_TOKEN", "environment variable holding the token")
    timeout: int = setting(120, "seconds an HTTP request may stall before it is retried")
    retries: int = setting(5, "retries (with backoff) on 5xx, timeouts and connection resets")
    prune: bool = setting(True, "delete published files the index no longer lists (after the index is live)")
    prune_grace: int = setting(1800, "seconds a file stays published after the live index stopped linking it "
                                     "(covers Pages deployment and caching)")
    deploy_timeout: int = setting(1200, "seconds publish waits for GitHub Pages to serve the pushed index")
    pages_repository: str = setting("", "owner/name whose GitHub Pages serves the index; empty = publish.repository")


@dataclass(frozen=True)
class AuditSettings:
    pypi_url: str = setting("https://pypi.org/simple", "PEP 691 index checked for riscv64 wheels")
    our_index: str = setting("", "our published index (PEP 691) checked for our own builds")
    concurrency: int = setting(16, "index pages fetched at once")
    max_age: int = setting(600, "seconds a cached index page or resolution is used without asking again")
    ignore: list[str] = setting([], "package name patterns (fnmatch) the audit reports but never counts")
    debian_mirror: str = setting("http://deb.debian.org/debian", "mirror whose Contents index names library packages")
    debian_suite: str = setting("", "suite for that lookup; empty = this host's (from /etc/os-release), else sid")


@dataclass(frozen=True)
class CISettings:
    runner_labels: list[str] = setting(
        [], "runs-on of the build jobs; empty = the boards' system labels (self-hosted, linux, the arch label of "
            "[runners].kind) plus [runners].factory-label. A self-hosted set must include the factory label")
    hosted_labels: list[str] = setting(
        ["ubuntu-24.04-riscv"], "labels of hosted riscv64 runners usable without 'self-hosted'")
    recipe_labels: dict[str, str | list[str]] = setting({}, "recipe -> extra runs-on labels (e.g. a big board)")
    plan_runs_on: list[str] = setting(["ubuntu-latest"], "runs-on of the job that plans which recipes changed")
    publish_runs_on: list[str] = setting([], "runs-on of the publish job; empty = runner-labels")
    workflow_dir: str = setting(".github/workflows", "folder of the generated workflow")
    workflow_name: str = setting("wheels", "name of the generated workflow (and of its .yml file)")
    branch: str = setting("main", "the branch that publishes")
    python: str = setting("python3", "interpreter that creates the engine's venv in each job")
    timeout_minutes: int = setting(360, "per build job, unless the recipe sets `build.timeout-minutes`; at most "
                                        "7200 (the 5-day limit of a self-hosted job)")
    cache_dir: str = setting("~/.cache/wheelfactory", "the build jobs' `paths.cache` (sources, tool venvs, compiler "
                                                      "caches, rootfs): outside the checkout, which `actions/checkout` "
                                                      "cleans with `git clean -ffdx` (`~` = the runner's home)")
    artifact_retention_days: int = setting(14, "days GitHub keeps the build jobs' wheel artifacts")
    publish_token_secret: str = setting("GITHUB_TOKEN", "secret handed to `invoke publish` as [publish].token-env")
    published_tag: str = setting("wheels-published", "tag moved to the last commit whose wheels were published")
    before_build: list[str] = setting([], "shell commands run before `nox -s build-NAME` in each build job")
    before_publish: list[str] = setting([], "shell commands run before `invoke publish`")


@dataclass(frozen=True)
class RunnersSettings:
    api_url: str = setting("https://api.github.com", "GitHub REST API base URL of the runners' scope")
    scope: str = setting("", "owner/repo, or an organization name")
    service_command: str = setting("systemctl", "service manager used to stop/start the runner service")
    service_name: str = setting("github-runner", "the runner's service")
    labels: list[str] = setting([], "custom labels the boards register with besides the factory label (e.g. big); "
                                    "self-hosted, the OS and the arch are the runner's own read-only system labels")
    factory_label: str = setting("wheelfactory", "the custom label the factory owns: every self-hosted job asks for "
                                                 "it, and `drain` takes it away so no new job lands")
    drain_timeout: int = setting(3600, "seconds to wait for a busy runner to become idle")
    poll_interval: int = setting(15, "seconds between two looks at a busy runner")
    online_timeout: int = setting(120, "seconds `restart` waits for the runner to come back online")
    token_env: str = setting("GITHUB_TOKEN", "environment variable holding a token with admin rights on scope")
    kind: str = setting("", "official (actions/runner) | github-act-runner; empty = github-act-runner on riscv64 "
                            "(actions/runner has no riscv64 build), official elsewhere")
    runner_dir: str = setting("", "folder of the runner (config.sh/run.sh); empty = the working folder")
    configure_command: list[str] = setting(
        [], "command that registers the runner; empty = from kind ({runner_dir} {url} {name} {labels} {work}; the "
            "token is in $ACTIONS_RUNNER_INPUT_TOKEN)")
    jit_command: list[str] = setting([], "command that runs a just-in-time runner; empty = from kind (the config "
                                         "is in $ACTIONS_RUNNER_INPUT_JITCONFIG)")
    runner_group_id: int = setting(1, "runner group for just-in-time runners (1 = Default)")
    work_folder: str = setting("_work", "the runner's work folder")
    machine_id_file: str = setting("/etc/machine-id", "part of the runner's unique name")


@dataclass(frozen=True)
class ContainerSettings:
    engine: str = setting("", "docker | podman; empty = whichever is found")
    image: str = setting("quay.io/pypa/manylinux_2_39_riscv64", "the manylinux image cibuildwheel builds in")
    build_verbosity: int = setting(1, "cibuildwheel build-verbosity (-3 … 3)")
    before_all: list[str] = setting([], "extra shell commands run once in the container before the builds")
    timeout: int = setting(0, "seconds a cibuildwheel run may take; 0 = no limit")


@dataclass(frozen=True)
class UpstreamSettings:
    max_bumps: int = setting(5, "most version bumps one `invoke bump` run proposes")
    pypi_url: str = setting("https://pypi.org/simple", "PEP 691 index checked for new versions and riscv64 wheels")
    prereleases: bool = setting(False, "offer pre-release versions as bumps")


# factory.toml's tables, in the order the docs and messages list them.
TABLES: dict[str, type] = {
    "target": TargetSettings,
    "indexes": IndexesSettings,
    "paths": PathsSettings,
    "build": BuildSettings,
    "emulation": EmulationSettings,
    "index": IndexSettings,
    "publish": PublishSettings,
    "audit": AuditSettings,
    "ci": CISettings,
    "runners": RunnersSettings,
    "container": ContainerSettings,
    "upstream": UpstreamSettings,
}


@dataclass(frozen=True)
class Config:
    """A loaded factory.toml. Override a value with :meth:`replace`, never in place."""

    root: Path
    source: Path | None  # the factory.toml read, if any
    target: TargetSettings
    indexes: IndexesSettings
    paths: PathsSettings  # resolved against root
    build: BuildSettings
    emulation: EmulationSettings
    index: IndexSettings
    publish: PublishSettings
    audit: AuditSettings
    ci: CISettings
    runners: RunnersSettings
    container: ContainerSettings
    upstream: UpstreamSettings
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the command line changed

    @property
    def where(self) -> str:
        """The file messages name: the factory.toml read, or where it would be."""
        return str(self.source or self.root / CONFIG_NAME)

    @property
    def arch(self) -> str:
        return self.target.arch

    @property
    def policy(self) -> str:
        return self.target.policy

    @property
    def pythons(self) -> list[str]:
        return list(self.target.pythons)

    @property
    def runner_kind(self) -> str:
        """``[runners].kind``, or the default for the target arch: github-act-runner where
        actions/runner has no build (riscv64), official elsewhere."""
        if self.runners.kind:
            return self.runners.kind
        return "official" if self.target.arch in RUNNER_ARCH_LABELS["official"] else "github-act-runner"

    @property
    def system_labels(self) -> list[str]:
        """The read-only labels a board's runner registers by itself: self-hosted, the OS, the arch
        (``["self-hosted", "linux", "riscv64"]``); only the arch label when the kind has no build for it."""
        arch = RUNNER_ARCH_LABELS.get(self.runner_kind, {}).get(self.target.arch, self.target.arch)
        return ["self-hosted", "linux", arch]

    @property
    def board_labels(self) -> list[str]:
        """The custom labels a board registers with: the factory's own label, then ``[runners].labels``."""
        return list(dict.fromkeys([self.runners.factory_label, *self.runners.labels]))

    @property
    def build_runs_on(self) -> list[str]:
        """runs-on of the build jobs: ``[ci].runner-labels``, or the system labels plus the factory label."""
        return list(self.ci.runner_labels) or [*self.system_labels, self.runners.factory_label]

    def replace(self, **tables: dict[str, Any]) -> "Config":
        """A copy with some keys changed: ``config.replace(build={"jobs": 4})`` (Python field names)."""
        changed = {name: dataclasses.replace(getattr(self, name), **values) for name, values in tables.items()}
        return dataclasses.replace(self, **changed)

    def for_host(self) -> "Config":
        """The same config aimed at this machine's own arch (``--target host``).

        The policy becomes "best": whatever auditwheel finds for the wheel.
        """
        out = self.replace(target={"arch": host_arch(), "policy": "best"})
        return dataclasses.replace(out, overrides={**self.overrides, "target": "host"})

    def as_toml(self) -> dict[str, dict[str, Any]]:
        """Every table as TOML would spell it (kebab-case keys; paths as given, resolved)."""
        return {name: as_toml(getattr(self, name)) for name in TABLES}


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
    """Read and check ``ROOT/factory.toml`` (defaults when it does not exist).

    Raises ConfigError naming the file, the key and the fix, for bad TOML, an
    unknown table or key, a wrong type, or a value no command could use.
    """
    root = Path(root).resolve() if root else find_root()
    path = root / CONFIG_NAME
    raw: dict = {}
    if path.is_file():
        try:
            raw = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}; fix the syntax there (https://toml.io)") from None
    tables = parse_tables(raw, TABLES, where=str(path), error=ConfigError)
    paths = tables["paths"]
    tables["paths"] = dataclasses.replace(
        paths, **{f.name: root / getattr(paths, f.name) for f in dataclasses.fields(paths)})
    if os.environ.get(CACHE_ENV):
        tables["paths"] = dataclasses.replace(tables["paths"], cache=root / os.path.expanduser(os.environ[CACHE_ENV]))
    config = Config(root=root, source=path if path.is_file() else None, **tables)
    check_values(config)
    return config


def check_values(config: Config) -> None:
    """The value rules of single keys (choices, label and name shapes), at load time."""
    where = config.where
    if config.build.runner not in RUNNER_CHOICES:
        raise ConfigError(f"{where}: 'build.runner' must be one of {', '.join(RUNNER_CHOICES)}; "
                          f"got {config.build.runner!r}{did_you_mean(config.build.runner, RUNNER_CHOICES)}")
    if config.publish.target not in PUBLISH_TARGETS:
        raise ConfigError(f"{where}: publish.target {config.publish.target!r} is not one of: "
                          f"{', '.join(PUBLISH_TARGETS)}; set it to one of them")
    for key, value in (("prune-grace", config.publish.prune_grace), ("deploy-timeout", config.publish.deploy_timeout)):
        if value < 0:
            raise ConfigError(f"{where}: 'publish.{key}' must be 0 or more seconds; got {value}; "
                              f"set it to a number of seconds, e.g. {1800 if key == 'prune-grace' else 1200}")
    if config.runners.kind and config.runners.kind not in RUNNER_KINDS:
        raise ConfigError(f"{where}: [runners].kind {config.runners.kind!r} is not one of {', '.join(RUNNER_KINDS)}; "
                          f"set it to one of them, or leave it empty for the default of the target arch")
    _check_runner_kind(config)
    bad = [v for v in config.target.pythons if not PYTHON_XY.fullmatch(v)]
    if bad or not config.target.pythons:
        raise ConfigError(f"{where}: 'target.pythons' " + (f"has {bad[0]!r}, which is not a CPython version X.Y"
                                                           if bad else "is empty")
                          + '; write e.g. ["3.11", "3.12", "3.13"]')
    if config.container.engine not in CONTAINER_ENGINES:
        raise ConfigError(f"{where}: [container].engine must be docker or podman, not {config.container.engine!r}; "
                          f"set it to one of them, or leave it empty to use whichever is installed")
    if config.emulation.cross_compilers not in CROSS_CHOICES:
        raise ConfigError(f"{where}: '[emulation].cross-compilers' must be one of {', '.join(CROSS_CHOICES)}; got "
                          f"{config.emulation.cross_compilers!r}"
                          f"{did_you_mean(config.emulation.cross_compilers, CROSS_CHOICES)}")
    _check_labels(config)
    _check_factory_label(config)
    _check_cache_dir(config)
    if not 1 <= config.ci.timeout_minutes <= 5 * 24 * 60:
        raise ConfigError(f"{where}: 'ci.timeout-minutes' {config.ci.timeout_minutes} is not between 1 and 7200 "
                          f"(GitHub ends a self-hosted job after 5 days); set it to the minutes a build may take")
    scope = config.runners.scope
    if scope and not _SCOPE.fullmatch(scope):
        raise ConfigError(f"{where}: [runners].scope {scope!r} is neither OWNER/REPO nor an organization; "
                          f"write e.g. \"octo-org/wheels\" (a repository) or \"octo-org\" (an organization)")
    name = config.ci.workflow_name
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ConfigError(f"{where}: 'ci.workflow-name' {name!r} must be a plain file name "
                          f"(letters, digits, '.', '_', '-')")
    for key in ("configure-command", "jit-command"):
        _check_placeholders(where, f"[runners].{key}", getattr(config.runners, key.replace("-", "_")))


def _check_labels(config: Config) -> None:
    """Every runner label has the shape GitHub accepts (``LABEL``), in each key that holds labels."""
    ci = config.ci
    keys = {"'ci.runner-labels'": ci.runner_labels, "'ci.hosted-labels'": ci.hosted_labels,
            "'ci.plan-runs-on'": ci.plan_runs_on, "'ci.publish-runs-on'": ci.publish_runs_on,
            "[runners].labels": config.runners.labels}
    for recipe, extra in ci.recipe_labels.items():
        keys[f"'ci.recipe-labels.{recipe}'"] = [extra] if isinstance(extra, str) else extra
    for key, labels in keys.items():
        for label in labels:
            if not LABEL.fullmatch(label):
                raise ConfigError(f"{config.where}: {key} has label {label!r}: labels are letters, digits, '.', "
                                  f"'_' and '-' (no spaces or commas), at most 100 characters")


def _check_runner_kind(config: Config) -> None:
    """The runner kind must exist for the target arch (actions/runner has no riscv64 build)."""
    kind, arch = config.runner_kind, config.target.arch
    if arch not in RUNNER_ARCH_LABELS[kind]:
        builds = [k for k, arches in RUNNER_ARCH_LABELS.items() if arch in arches]
        fix = (f"set [runners].kind = \"{builds[0]}\" (or remove the key: the default for {arch})" if builds
               else "set [runners].configure-command and jit-command for a runner that runs there")
        raise ConfigError(f"{config.where}: [runners].kind {kind!r} has no runner build for target.arch {arch} "
                          f"(it runs on {', '.join(RUNNER_ARCH_LABELS[kind])}); {fix}")


def _self_hosted_sets(config: Config) -> dict[str, list[str]]:
    """Every runs-on set of [ci] that names self-hosted runners, by the key that sets it."""
    ci = config.ci
    sets = {"'ci.runner-labels'": ci.runner_labels, "'ci.publish-runs-on'": ci.publish_runs_on,
            "'ci.plan-runs-on'": ci.plan_runs_on}
    return {k: v for k, v in sets.items() if "self-hosted" in [x.lower() for x in v]}


def _check_factory_label(config: Config) -> None:
    """Custom labels never shadow the runner's system labels, and every self-hosted job asks for the
    factory's label (without it, a job lands on a runner that `drain` is emptying)."""
    where, own = config.where, config.runners.factory_label
    system = {x.lower() for x in config.system_labels}
    for key, labels in (("[runners].factory-label", [own]), ("[runners].labels", config.runners.labels)):
        for label in labels:
            if label.lower() in system:
                raise ConfigError(
                    f"{where}: {key} has {label!r}, which the runner registers by itself as a read-only system "
                    f"label ({', '.join(config.system_labels)}); GitHub cannot remove it, so `drain` could not stop "
                    f"jobs that ask for it. Remove {label!r} from {key} (jobs get the system labels anyway)")
    if not LABEL.fullmatch(own):
        raise ConfigError(f"{where}: [runners].factory-label {own!r}: labels are letters, digits, '.', '_' and '-'")
    for key, labels in _self_hosted_sets(config).items():
        if own.lower() not in [x.lower() for x in labels]:
            raise ConfigError(
                f"{where}: {key} = {list(labels)} lacks the factory's label {own!r} ([runners].factory-label): "
                f"`drain` takes that label away to stop new jobs, so a job without it could land on a draining "
                f"board. Add {own!r} to {key}" + (" (or remove the key: the default is the boards' system labels "
                                                  "plus that label)" if key == "'ci.runner-labels'" else ""))


def _check_cache_dir(config: Config) -> None:
    """``[ci].cache-dir`` lies outside the checkout, which `git clean -ffdx` empties at every job."""
    raw = config.ci.cache_dir
    path = Path(os.path.expanduser(raw))
    inside = not path.is_absolute() or path.resolve().is_relative_to(config.root)
    if inside:
        raise ConfigError(
            f"{config.where}: 'ci.cache-dir' {raw!r} is inside the checkout ({config.root}), which actions/checkout "
            f"cleans (`git clean -ffdx`) before every job, so every build would start cold; give a folder outside "
            f"it, e.g. \"~/.cache/wheelfactory\" (under the runner's home)")


def _check_placeholders(where: str, key: str, command: list[str]) -> None:
    """Each ``{placeholder}`` of a runner command is one ci/runners.py fills in (str.format syntax)."""
    known = ", ".join("{" + k + "}" for k in RUNNER_PLACEHOLDERS)
    for part in command:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(part) if f is not None]
        except ValueError as e:
            raise ConfigError(f"{where}: {key}: {part!r} is not a valid template ({e}); "
                              f"write {{{{ and }}}} for literal braces") from None
        for field in fields:
            if field == "token":
                raise ConfigError(f"{where}: {key}: {{token}} in {part!r} would put the registration token on the "
                                  f"command line (visible in `ps`); remove it: the runner reads it from "
                                  f"$ACTIONS_RUNNER_INPUT_TOKEN, which the factory sets")
            if field not in RUNNER_PLACEHOLDERS:
                raise ConfigError(f"{where}: {key}: unknown placeholder {{{field}}} in {part!r}; known: {known}")
