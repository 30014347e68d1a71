"""Load and validate ``recipes/NAME/recipe.toml``.

A recipe is data only: every quirk of a package lives here, never in code.
Each table is a frozen dataclass (``recipe.build.config_settings``,
``recipe.source.sha256``); validation is strict (settings/schema.py): unknown
keys get a "did you mean", wrong types name the key and the expected type, and
the rules between keys (git needs rev, archives need sha256, …) are checked here
at load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import keyword
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.markers import Marker, default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import RecipeError
from .schema import did_you_mean, parse_section, parse_tables, setting

RECIPE_FILE = "recipe.toml"
# GitHub ends a job on a self-hosted runner after 5 days
# (https://docs.github.com/en/actions/reference/limits, "Job execution time").
MAX_JOB_MINUTES = 5 * 24 * 60


@dataclass(frozen=True)
class RecipePackage:
    name: str = setting(required=True, help="the PyPI project name; the folder is its canonical form "
                                            "(`recipes/multidict/`)")
    version: str = setting(required=True, help="the exact version built (PEP 440); with `[versions]`, the newest "
                                              "listed: the one `invoke bump` moves and dependent recipes build with")
    disabled: str = setting("", "a reason; `build-all` skips the recipe and its dependents; "
                                "asking for it (or a dependent) by name is an error")
    retired: str = setting("", "upstream ships riscv64 wheels for every target Python: the version and wheel tags "
                               "found (`invoke outdated --retire` writes it). `build-all` and the workflow skip the "
                               "recipe unless another needs it; `nox -s build-NAME` still builds it, with a note. "
                               "Not part of the build key")


@dataclass(frozen=True)
class RecipeSource:
    url: str = setting("", "an archive (`.tar.gz`, `.tar.xz`, `.tar.bz2`, `.zip`, …) instead of PyPI's sdist; "
                           "empty = the PyPI sdist of name==version")
    sha256: str = setting("", "sha256 of the archive; **mandatory** for sdist and url sources, checked before "
                              "unpacking")
    git: str = setting("", "a git repository instead of an archive (a URL or a local path)")
    rev: str = setting("", "tag, branch or full 40-digit commit; required with `git`. The commit it resolves to "
                           "is in the build key and the record")
    subdirectory: str = setting("", "the folder holding the Python project (relative; must exist; may not escape "
                                    "the tree, not even through a symlink)")


@dataclass(frozen=True)
class RecipeBuild:
    requires: list[str] = setting([], "extra build requirements the package forgot to declare, installed **into "
                                      "the isolated build environment** beside its declared ones",
                                  kind="array of requirements")
    env: dict[str, str] = setting({}, "environment variables for the build")
    config_settings: dict[str, str | list[str]] = setting({}, "PEP 517 config settings, passed to the backend as "
                                                              "is")
    isolation: bool = setting(True, "false: no per-build isolated env; the build runs in one prepared venv "
                                    "holding exactly `requires` and the dependency wheels (missing declared "
                                    "requirements are warned about in the log)")
    debian: list[str] = setting([], "Debian packages needed to build; checked before the build starts",
                                kind="array of Debian package names")
    dnf: list[str] = setting([], "the same packages for the manylinux container (dnf names)",
                             kind="array of RPM package names")
    depends: list[str] = setting([], "recipes whose wheels this build needs (installed into the build env; their "
                                     "sha256 are in the build key). A version specifier picks among the versions "
                                     "the recipe builds (`\"numpy<2.5\"`: the newest listed one that matches)",
                                 kind="array of recipe names, each with an optional version specifier")
    network: bool = setting(False, "true: the compile may reach the network (recorded in the record's "
                                   "`host.network`). By default the backend's build step runs with the network cut "
                                   "off (a network namespace; build requirements are installed before the cut), "
                                   "so what it would download goes in `[extra-sources.NAME]` or `build.debian`")
    exclusive: bool = setting(False, "memory-hungry: never builds beside another build")
    cross: bool = setting(True, "false: emulated builds compile with the rootfs's own (emulated) compilers instead "
                                "of the native cross compilers (`[emulation].cross-compilers`), for builds that run "
                                "what they compile or misbehave with them")
    timeout_minutes: int = setting(0, "the CI build job's `timeout-minutes`: what a build on a board may take, "
                                      "with a margin; 0 = `[ci].timeout-minutes`. At most 7200, the 5-day limit "
                                      "of a job on a self-hosted runner")


@dataclass(frozen=True)
class RecipeRepair:
    policy: str = setting("", "overrides `target.policy` for this recipe (e.g. `manylinux_2_39`)")
    exclude: list[str] = setting([], "sonames not bundled (`auditwheel repair --exclude`, wildcards allowed); "
                                     "declare the package that provides them in `runtime.debian`",
                                 kind="array of sonames")
    strip: bool = setting(False, "true: strip the symbols and debug info of the wheel's shared objects, its own "
                                 "and the bundled ones (`auditwheel repair --strip`), for a build that compiles "
                                 "with -g (grpcio's setup.py: 194 MB unstripped)")


@dataclass(frozen=True)
class RecipeRuntime:
    debian: list[str] = setting([], "Debian packages needed at run time for libraries that are not bundled; "
                                    "stored in each record (`debian_runtime`) and shown on the index page",
                                kind="array of Debian package names")
    depends: list[str] = setting([], "recipes whose wheels this package needs at run time (built first; offered "
                                     "to verify); a version specifier as in `build.depends`",
                                 kind="array of recipe names, each with an optional version specifier")
    requires_dist: list[str] = setting([], "the Requires-Dist of the wheel this recipe builds, where the index's "
                                           "metadata is not what we build (torch from git without CUDA): the audit "
                                           "resolves with it until dist/ holds our build's metadata",
                                       kind="array of requirements")


@dataclass(frozen=True)
class RecipeTest:
    __test__ = False  # not a pytest class

    imports: list[str] = setting([], "modules imported in the bare venv; a failure keeps the wheel out of `dist/`",
                                 kind="array of module names")
    commands: list[str] = setting([], "shell commands run in the bare venv (`python` is the venv's), from an "
                                      "empty folder", kind="array of shell commands")
    requires: list[str] = setting([], "extra packages installed for the commands", kind="array of requirements")


@dataclass(frozen=True)
class RecipeExtraSource:
    """One ``[extra-sources.NAME]`` table: an archive the build needs beside the main source."""

    url: str = setting(required=True, help="the archive (`.tar.gz`, `.tar.xz`, `.zip`, …): a vendored crate set, "
                                           "a bundled C library's release tarball")
    sha256: str = setting(required=True, help="sha256 of the archive; checked before unpacking, like "
                                              "`source.sha256`; part of the build key")
    unpack_to: str = setting("", "where its contents go, relative to the source's top folder (its single top "
                                 "folder, if it has one, becomes this folder); must not exist yet")
    env: str = setting("", "an environment variable the build gets, naming the unpacked folder's absolute "
                           "path (e.g. `ZMQ_SRC`); at least one of `unpack-to` and `env`")


@dataclass(frozen=True)
class RecipeVersion:
    """One entry of ``[versions."X.Y.Z"]``: an older version built beside ``package.version``."""

    sha256: str = setting("", "sha256 of that version's sdist or archive (sdist and url sources)")
    url: str = setting("", "that version's archive (url sources)")
    rev: str = setting("", "that version's tag or commit (git sources)")
    env: dict[str, str] = setting({}, "build environment variables that differ for that version, over `build.env` "
                                      "(torch: `PYTORCH_BUILD_VERSION`)")


# recipe.toml's tables, in the order the docs and messages list them; [yanked]
# (a version or wheel filename -> reason) and [versions] (a version -> RecipeVersion)
# are keyed by the user's versions and checked in parse_recipe.
TABLES: dict[str, type] = {
    "package": RecipePackage,
    "source": RecipeSource,
    "build": RecipeBuild,
    "repair": RecipeRepair,
    "runtime": RecipeRuntime,
    "test": RecipeTest,
}
# [extra-sources.NAME]: one table per archive (NAME is the user's; its keys are RecipeExtraSource's).
EXTRA_SOURCES = "extra-sources"
# Tables of user-named entries ([versions."X.Y"], [extra-sources.NAME]), for the docs.
ENTRY_TABLES: dict[str, type] = {"versions": RecipeVersion, EXTRA_SOURCES: RecipeExtraSource}

# What `invoke new-recipe` writes in test.imports when it cannot tell the compiled modules.
TODO_IMPORT = "TODO: the compiled modules"
_EXTRA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DEB = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?$")


@dataclass(frozen=True)
class Recipe:
    name: str  # canonical (PEP 503-normalized) name
    path: Path  # the recipe.toml
    text: bytes  # the file's bytes (its parsed content is part of the build key)
    package: RecipePackage
    source: RecipeSource
    build: RecipeBuild
    repair: RecipeRepair
    runtime: RecipeRuntime
    test: RecipeTest
    yanked: dict[str, str]  # version or wheel filename -> reason (PEP 592)
    # [extra-sources.NAME] tables, in file order (their url and sha256 are in the build key with the rest)
    extra_sources: dict[str, RecipeExtraSource] = dataclasses.field(default_factory=dict)
    versions: dict[str, RecipeVersion] = dataclasses.field(default_factory=dict)  # older versions also built
    # build.depends/runtime.depends entries given with a version specifier ("numpy<2.5"): canonical
    # name -> specifier (both tables' intersected). Which of that recipe's wheels the build gets.
    depends_versions: dict[str, SpecifierSet] = dataclasses.field(default_factory=dict)
    # Those given with a marker on the target's arch: (table, canonical name) -> marker (for_arch).
    depends_markers: dict[tuple[str, str], Marker] = dataclasses.field(default_factory=dict)

    @property
    def all_versions(self) -> list[str]:
        """package.version, then the [versions] this recipe also builds (newest first)."""
        return [self.package.version, *self.versions]

    def for_arch(self, arch: str) -> Recipe:
        """This recipe with the depends entries whose marker is false for target ``arch`` (e.g.
        "riscv64", "x86_64": PEP 508 platform_machine) left out."""
        if not self.depends_markers:
            return self
        env = _target_environment(arch)
        out = {s: [d for d in getattr(self, s).depends
                   if (m := self.depends_markers.get((s, d))) is None or m.evaluate(env)] for s in ("build", "runtime")}
        kept = set(out["build"]) | set(out["runtime"])
        return dataclasses.replace(self, build=dataclasses.replace(self.build, depends=out["build"]),
                                   runtime=dataclasses.replace(self.runtime, depends=out["runtime"]),
                                   depends_versions={d: v for d, v in self.depends_versions.items() if d in kept},
                                   depends_markers={})

    def only(self, versions: Sequence[str]) -> Recipe:
        """This recipe building package.version and those of its [versions] named in ``versions``."""
        return dataclasses.replace(self, versions={k: v for k, v in self.versions.items() if k in versions})

    def at(self, version: str) -> Recipe:
        """This recipe building only ``version`` (one of :attr:`all_versions`): package.version,
        [source] and build.env as [versions] sets them. RecipeError names the listed versions."""
        if version not in self.all_versions:
            match = [v for v in self.all_versions if Version(v) == _version_or_none(version)]
            if not match:
                raise RecipeError(f"{self.path}: {self.name} {version} is not listed (package.version or "
                                  f"[versions]); it builds {', '.join(self.all_versions)}; add "
                                  f"[versions.\"{version}\"] with its sha256 (or rev) to build it")
            version = match[0]
        pin = self.versions.get(version)
        if pin is None:
            return dataclasses.replace(self, versions={})
        pinned = {k: v for k, v in (("sha256", pin.sha256), ("url", pin.url), ("rev", pin.rev)) if v}
        return dataclasses.replace(
            self, versions={}, package=dataclasses.replace(self.package, version=version),
            source=dataclasses.replace(self.source, **pinned),
            build=dataclasses.replace(self.build, env={**self.build.env, **pin.env}))

    @property
    def version(self) -> str:
        return self.package.version

    @property
    def project(self) -> str:
        """The name as written in the recipe."""
        return self.package.name

    @property
    def source_kind(self) -> str:
        """"git", "url" or "sdist"."""
        return "git" if self.source.git else "url" if self.source.url else "sdist"

    @property
    def needs(self) -> list[str]:
        """The recipes this one needs before it can build (build + runtime), canonical, in order."""
        return list(dict.fromkeys([*self.build.depends, *self.runtime.depends]))

    def patches(self, patches_root: Path) -> list[Path]:
        """patches/NAME/*.patch then patches/NAME/VERSION/*.patch, each in name order."""
        base = patches_root / self.name
        found = sorted(base.glob("*.patch")) + sorted((base / self.version).glob("*.patch"))
        return found

    def fingerprint(self, patches_root: Path) -> str:
        """sha256 (64 hex digits) of the recipe's content and its patches.

        The content is the parsed TOML as canonical JSON (sorted keys, no
        whitespace), so comments, key order, quoting and blank lines do not
        change the key while any value does; a key left at its default is
        not filled in, so a new setting does not move every key.
        With ``[versions]``, it is the content of a recipe written for
        ``self.version`` alone: listing another version moves no key.
        ``package.retired`` and ``build.timeout-minutes`` are left out: they
        change what is built by default and how long CI waits, not the wheel.
        Patches count
        byte for byte (name and sha256 of each): they are code.
        """
        recipe = _content_at(tomllib.loads(self.text.decode()), self.version)
        recipe.get("package", {}).pop("retired", None)  # says where users get wheels, not how we build
        recipe.get("build", {}).pop("timeout-minutes", None)  # how long CI waits changes no wheel
        content = {
            "recipe": recipe,
            "patches": [[p.relative_to(patches_root).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest()]
                        for p in self.patches(patches_root)],
        }
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


def _content_at(recipe: dict, version: str) -> dict:
    """Parsed recipe TOML as if written for ``version`` alone (its [versions] entry applied, the table dropped)."""
    pin = recipe.pop("versions", {}).get(version)
    if pin is not None and recipe.get("package", {}).get("version") != version:
        recipe["package"]["version"] = version
        recipe.setdefault("source", {}).update({k: v for k, v in pin.items() if k != "env"})
        if "env" in pin:
            recipe.setdefault("build", {})["env"] = {**recipe["build"].get("env", {}), **pin["env"]}
    return recipe


def _version_or_none(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def _parse_versions(raw: object, where: str, kind: str, newest: str) -> dict[str, RecipeVersion]:
    """[versions]: each key a PEP 440 version older than package.version, pinned like [source] is."""
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise RecipeError(f"{where}: [versions] holds one table per version, e.g. [versions.\"2.4.6\"] with "
                          f"sha256 = \"…\" (or rev = \"v2.4.6\" for a git source)")
    need = {"sdist": ("sha256",), "url": ("url", "sha256"), "git": ("rev",)}[kind]
    out: dict[str, RecipeVersion] = {}
    for version, given in raw.items():
        key = f'versions."{version}"'
        v = _version_or_none(version)
        if v is None or v >= Version(newest) or any(Version(o) == v for o in out):
            raise RecipeError(f"{where}: [{key}]: each [versions] key must be a distinct PEP 440 version older "
                              f"than package.version {newest}; fix: list the newest in package.version, the "
                              f"others under [versions]")
        pin = parse_section(RecipeVersion, given, section=key, where=where)
        have = {k for k in ("sha256", "url", "rev") if getattr(pin, k)}
        if have != set(need):
            extra = ", not " + " or ".join(sorted(have - set(need))) if have - set(need) else ""
            raise RecipeError(f"{where}: [{key}] of a {kind} source takes {' and '.join(need)}{extra}; "
                              f"fix: {_PIN_FIX[kind]}")
        if pin.sha256 and not _SHA256.match(pin.sha256):
            raise RecipeError(f"{where}: '{key}.sha256' must be 64 lowercase hex digits, got {pin.sha256!r}")
        out[version] = pin
    return dict(sorted(out.items(), key=lambda kv: Version(kv[0]), reverse=True))


_PIN_FIX = {"sdist": "sha256 = that version's sdist sha256 (pypi.org lists it)",
            "url": "url = that version's archive and sha256 = its sha256",
            "git": "rev = that version's tag (e.g. \"v2.14.0\")"}


def parse_recipe(path: Path) -> Recipe:
    """Read and check one recipe file; RecipeError names the file, the key and the fix."""
    where = str(path)
    try:
        text = path.read_bytes()
        raw = tomllib.loads(text.decode())
    except FileNotFoundError:
        raise RecipeError(f"{where}: no such recipe file; `invoke new-recipe {path.parent.name}` scaffolds one") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RecipeError(f"{where}: not valid TOML: {e}; fix the syntax there (https://toml.io)") from None

    yanked = raw.pop("yanked", {})
    extra_sources = _extra_sources(raw.pop(EXTRA_SOURCES, {}), where)
    versions = raw.pop("versions", {})
    tables = parse_tables(raw, TABLES, where=where, free=["yanked", EXTRA_SOURCES, "versions"])
    if not isinstance(yanked, dict) or not all(isinstance(v, str) for v in yanked.values()):
        raise RecipeError(f"{where}: [yanked] must map a version or wheel filename to a reason string, "
                          f"e.g. \"1.2.3\" = \"segfaults on import\"")

    pkg, src = tables["package"], tables["source"]
    name = canonicalize_name(pkg.name)
    if path.parent.name != name:
        raise RecipeError(
            f"{where}: the folder is '{path.parent.name}' but package.name is '{pkg.name}'; "
            f"move the recipe to recipes/{name}/recipe.toml"
        )
    try:
        Version(pkg.version)
    except InvalidVersion:
        raise RecipeError(f"{where}: 'package.version' {pkg.version!r} is not a valid version; fix: write the "
                          f"release's version as PyPI lists it (PEP 440, e.g. \"1.0\" or \"2.1.0rc1\")") from None

    if src.git:
        if src.url:
            raise RecipeError(f"{where}: 'source.git' and 'source.url' exclude each other; keep one")
        if not src.rev:
            raise RecipeError(f"{where}: 'source.rev' is required with 'source.git'; fix: add rev = \"TAG\" under "
                              f"[source] (a tag, branch or commit of {src.git})")
        if src.sha256:
            raise RecipeError(f"{where}: 'source.sha256' is for archives; a git source is pinned by 'source.rev': "
                              f"remove 'sha256' from [source]")
    else:
        if src.rev:
            raise RecipeError(f"{where}: 'source.rev' needs 'source.git'; add git = \"URL\" under [source], "
                              f"or remove 'rev'")
        if not src.sha256:
            raise RecipeError(
                f"{where}: 'source.sha256' is required for url sources; fix: add sha256 = the output of "
                f"`curl -fsSL {src.url} | sha256sum` under [source]" if src.url else
                f"{where}: 'source.sha256' is required for sdist sources; fix: `invoke new-recipe {name} "
                f"--version {pkg.version}` writes it from PyPI (or copy the sdist's sha256 from pypi.org)"
            )
    if src.sha256 and not _SHA256.match(src.sha256):
        raise RecipeError(f"{where}: 'source.sha256' must be 64 lowercase hex digits, got {src.sha256!r}")
    if src.subdirectory:
        p = PurePosixPath(src.subdirectory)
        if p.is_absolute() or ".." in p.parts:
            raise RecipeError(
                f"{where}: 'source.subdirectory' {src.subdirectory!r} must be a relative path inside the source; "
                f"fix: name the folder that holds pyproject.toml or setup.py, relative to the source's top folder")

    if not 0 <= tables["build"].timeout_minutes <= MAX_JOB_MINUTES:
        raise RecipeError(
            f"{where}: 'build.timeout-minutes' {tables['build'].timeout_minutes} is not between 0 and "
            f"{MAX_JOB_MINUTES}: GitHub ends a self-hosted job after 5 days; give the minutes a board needs, "
            f"or 0 for [ci].timeout-minutes")
    for key, reqs in (("build.requires", tables["build"].requires), ("test.requires", tables["test"].requires),
                      ("runtime.requires-dist", tables["runtime"].requires_dist)):
        for req in reqs:
            try:
                Requirement(req)
            except InvalidRequirement as e:
                raise RecipeError(f"{where}: '{key}' entry {req!r} is not a requirement (fix: "
                                  f"write a PEP 508 requirement, e.g. \"cython>=3\"): {e}") from None
    for module in tables["test"].imports:
        if module == TODO_IMPORT:
            raise RecipeError(f"{where}: 'test.imports' still holds {TODO_IMPORT!r} from `invoke new-recipe`: "
                              f"replace it with the compiled modules the wheel holds (`unzip -l` a built wheel, "
                              f"e.g. 'yaml._yaml')")
        if not is_module_name(module):
            raise RecipeError(f"{where}: 'test.imports' entry {module!r} is not a dotted module name "
                              f"(Python identifiers joined by dots); {_module_fix(module)}")
    for section in ("build", "runtime"):
        for deb in tables[section].debian:
            if not _DEB.match(deb):
                raise RecipeError(f"{where}: '{section}.debian' entry {deb!r} is not a Debian package name")
    depends_versions: dict[str, SpecifierSet] = {}
    depends_markers: dict[tuple[str, str], Marker] = {}
    for section in ("build", "runtime"):
        depends = []
        for entry in tables[section].depends:
            dep, spec, marker = _depends_entry(entry, where, f"{section}.depends")
            if dep == name:
                raise RecipeError(f"{where}: '{section}.depends' names the recipe itself; remove '{entry}' from it")
            depends.append(dep)
            if spec:
                depends_versions[dep] = depends_versions.get(dep, SpecifierSet()) & spec
            if marker is not None:
                depends_markers[section, dep] = marker
        tables[section] = dataclasses.replace(tables[section], depends=depends)
    kind = "git" if src.git else "url" if src.url else "sdist"
    versions = _parse_versions(versions, where, kind, pkg.version)
    return Recipe(name=name, path=path, text=text, yanked=dict(yanked), versions=versions, extra_sources=extra_sources,
                  depends_versions=depends_versions, depends_markers=depends_markers, **tables)


def _depends_entry(entry: str, where: str, key: str) -> tuple[str, SpecifierSet, Marker | None]:
    """A build.depends/runtime.depends entry: a recipe name, optionally with a PEP 440 version
    specifier (``"numpy<2.5"``) and a PEP 508 marker on the target's arch
    (``"llvmlite; platform_machine == 'riscv64'"``): (canonical name, specifier (empty when none),
    marker or None). No extras or URLs, and no marker on the Python version: one entry serves
    every target Python."""
    try:
        req = Requirement(entry)
    except InvalidRequirement as e:
        raise RecipeError(f"{where}: '{key}' entry {entry!r} is not a recipe name or a name with a version "
                          f"specifier (fix: e.g. \"numpy\" or \"numpy<2.5\"): {e}") from None
    if req.extras or req.url:
        raise RecipeError(f"{where}: '{key}' entry {entry!r} may hold a recipe name, a version specifier and a "
                          f"marker only (no extras or URLs); fix: write \"{req.name}{req.specifier}\"")
    pythons = ({"python_version": "3.0", "python_full_version": "3.0.0"},
               {"python_version": "3.99", "python_full_version": "3.99.0"})
    if req.marker is not None and any(len({req.marker.evaluate({**_target_environment(a), **py}) for py in pythons}) > 1
                                      for a in ("riscv64", "x86_64")):
        raise RecipeError(f"{where}: '{key}' entry {entry!r}: its marker depends on the Python version, and one "
                          f"entry serves every target Python; fix: a marker on platform_machine only")
    return canonicalize_name(req.name), req.specifier, req.marker


def _target_environment(arch: str) -> dict[str, str]:
    """The PEP 508 marker environment of a depends entry: the target's Linux and arch."""
    return {**default_environment(), "platform_machine": arch, "sys_platform": "linux",
            "platform_system": "Linux", "os_name": "posix"}


def check_depends_versions(recipes: Mapping[str, Recipe]) -> None:
    """RecipeError when a depends entry's version specifier matches no version that the named
    recipe builds (package.version and [versions]); the others are checked by the graph."""
    for r in recipes.values():
        for dep, spec in r.depends_versions.items():
            if dep in recipes and not any(spec.contains(v, prereleases=True) for v in recipes[dep].all_versions):
                raise RecipeError(
                    f"{r.path}: depends on '{dep}{spec}', and recipes/{dep} builds {', '.join(recipes[dep].all_versions)}; "
                    f"fix: add a [versions] entry to {recipes[dep].path} that satisfies it, or change the "
                    f"specifier")


def _extra_sources(given, where: str) -> dict[str, RecipeExtraSource]:
    """The [extra-sources.NAME] tables, checked: url and sha256 required, a safe relative unpack-to, an env name."""
    if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
        raise RecipeError(f"{where}: [{EXTRA_SOURCES}] holds one table per archive: write [{EXTRA_SOURCES}.NAME] "
                          f"with url, sha256 and unpack-to or env")
    out = {}
    for name, table in given.items():
        key = f"{EXTRA_SOURCES}.{name}"
        if not _EXTRA_NAME.match(name):
            raise RecipeError(f"{where}: [{key}]: the name may hold letters, digits, '-', '_' and '.'; rename it")
        for required in ("url", "sha256"):
            if not table.get(required):
                fix = (f"add sha256 = the output of `curl -fsSL {table['url']} | sha256sum`"
                       if required == "sha256" and isinstance(table.get("url"), str) and table.get("url")
                       else "add url = the archive's download address")
                raise RecipeError(f"{where}: '{key}.{required}' is required (every extra source is pinned by its "
                                  f"sha256); fix: {fix} under [{key}]")
        entry = parse_section(RecipeExtraSource, table, section=key, where=where)
        if not _SHA256.match(entry.sha256):
            raise RecipeError(f"{where}: '{key}.sha256' must be 64 lowercase hex digits, got {entry.sha256!r}")
        if not (entry.unpack_to or entry.env):
            raise RecipeError(f"{where}: [{key}] says neither where the archive goes nor how the build finds it; "
                              f"fix: add unpack-to = \"FOLDER\" (inside the source) or env = \"VARIABLE\" (its path)")
        if entry.unpack_to:
            p = PurePosixPath(entry.unpack_to)
            if p.is_absolute() or ".." in p.parts or not p.parts:
                raise RecipeError(f"{where}: '{key}.unpack-to' {entry.unpack_to!r} must be a relative folder inside "
                                  f"the source; fix: name it relative to the source's top folder, e.g. \"vendor\"")
        if entry.env and not _ENV_NAME.match(entry.env):
            raise RecipeError(f"{where}: '{key}.env' {entry.env!r} is not an environment variable name; fix: "
                              f"letters, digits and '_', not starting with a digit")
        out[name] = entry
    return out


def is_module_name(text: str) -> bool:
    """True for what ``import`` accepts: identifiers (not keywords) joined by dots (Python reference, 7.11)."""
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in text.split("."))


def _module_fix(text: str) -> str:
    """The fix for a path written as a module name: ``pkg/sub/__init__.py`` -> ``pkg.sub``."""
    parts = [p for p in re.split(r"[/\\.]", text.strip()) if p]
    while parts and parts[-1] in ("py", "so", "pyd", "__init__"):
        parts.pop()
    guess = ".".join(parts)
    if guess != text and is_module_name(guess):
        return f"write {guess!r} (a module name, not a file path; a package's __init__ is imported by its name)"
    return "write the name as `import` takes it, for example 'yaml._yaml'"


def recipe_path(recipes_root: Path, name: str) -> Path:
    return recipes_root / canonicalize_name(name) / RECIPE_FILE


def load_recipe(recipes_root: Path, name: str) -> Recipe:
    """``recipes/NAME/recipe.toml``; a missing one is a RecipeError with a "did you mean"."""
    path = recipe_path(recipes_root, name)
    if not path.is_file():
        known = [p.parent.name for p in recipes_root.glob(f"*/{RECIPE_FILE}")]
        raise RecipeError(
            f"no recipe '{name}': {path} does not exist{did_you_mean(canonicalize_name(name), known)}; "
            f"`invoke new-recipe {name}` scaffolds one"
        )
    return parse_recipe(path)


def load_all(recipes_root: Path, arch: str | None = None) -> dict[str, Recipe]:
    """Every recipe, validated, keyed by canonical name; dependencies must exist. ``arch``: the
    target's (PEP 508 platform_machine), for depends entries with a marker (:meth:`Recipe.for_arch`);
    None keeps every entry."""
    recipes = {}
    for path in sorted(recipes_root.glob(f"*/{RECIPE_FILE}")):
        r = parse_recipe(path)
        recipes[r.name] = r
    # Every entry is checked, whatever the arch: a misspelt one behind a marker fails here too.
    for r in recipes.values():
        for dep in r.build.depends + r.runtime.depends:
            if dep not in recipes:
                raise RecipeError(f"{r.path}: depends on '{dep}', which has no recipe in {recipes_root}; "
                                  f"`invoke new-recipe {dep}` scaffolds one, or remove '{dep}' from depends")
    check_depends_versions(recipes)
    return recipes if arch is None else {n: r.for_arch(arch) for n, r in recipes.items()}
