"""Scaffold ``recipes/NAME/recipe.toml`` from PyPI (or a git repository).

``invoke new-recipe NAME [--version V] [--git URL --rev REV]`` picks the
latest (or the given) version, records the sdist's sha256 from PyPI's PEP 691
JSON (and checks it against the downloaded bytes), reads the build backend
from the sdist's ``pyproject.toml`` and writes a recipe with a commented block
of that backend's usual settings. The archive is only read, never unpacked.

A pure-Python package is refused: its ``py3-none-any`` wheel already installs
on riscv64, there is nothing to build. ``invoke audit --write-recipes`` uses
the same planner for every missing package and writes all recipes or none.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import requests
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .._util import http
from .._util.fs import atomic_write_text, sha256_file
from .._util.proc import git
from ..errors import FactoryError, RecipeError
from ..settings.factory import Config
from ..settings.recipe import RECIPE_FILE, TODO_IMPORT, is_module_name, parse_recipe
from .cache import AuditCache, CachedIndex, audit_indexes
from .classify import best_wheel
from .resolve import audit_target


class ScaffoldError(FactoryError):
    """A planned recipe: its text and the notes shown when it is written."""

    """A recipe cannot be scaffolded (unknown project or version, pure Python, no source)."""


@dataclasses.dataclass
class Scaffold:
    name: str  # canonical
    version: str
    text: str  # the recipe.toml
    backend: str  # a label: setuptools, meson-python, maturin, …
    notes: list[str]


# --- reading a source without unpacking it -------------------------------------------


class SourceView:
    """Read-only view of a source tree: an sdist archive (tar or zip) or a checkout folder."""

    def __init__(self, names: list[str], read):
        self.names = names  # posix paths relative to the project root
        self._read = read

    @classmethod
    def of_archive(cls, path: Path, subdirectory: str = "") -> "SourceView":
        """An sdist (tar or zip) read in place; ``subdirectory`` below its top folder."""
        if zipfile.is_zipfile(path):
            zf = zipfile.ZipFile(path)
            members = {n: n for n in zf.namelist() if not n.endswith("/")}
            reader = zf.read
        else:
            try:
                tf = tarfile.open(path)
            except tarfile.TarError as e:
                raise ScaffoldError(f"{path.name}: not a readable sdist archive ({e})") from None
            members = {m.name: m for m in tf.getmembers() if m.isfile()}

            def reader(member):
                f = tf.extractfile(member)
                return f.read() if f else b""
        # An sdist holds one top folder NAME-VERSION/.
        tops = {n.split("/", 1)[0] for n in members}
        prefix = (tops.pop() + "/") if len(tops) == 1 else ""
        if subdirectory:
            prefix += subdirectory.strip("/") + "/"
        names = {n[len(prefix):]: m for n, m in members.items() if n.startswith(prefix)}
        return cls(sorted(names), lambda rel: reader(names[rel]))

    @classmethod
    def of_folder(cls, root: Path) -> "SourceView":
        names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                       if p.is_file() and ".git" not in p.relative_to(root).parts)
        return cls(names, lambda rel: (root / rel).read_bytes())

    def has(self, rel: str) -> bool:
        return rel in self.names

    def read_text(self, rel: str) -> str:
        return self._read(rel).decode("utf-8", "replace")


# --- build backends ------------------------------------------------------------------------

BACKENDS = {
    "setuptools.build_meta": "setuptools",
    "setuptools.build_meta:__legacy__": "setuptools",
    "mesonpy": "meson-python",
    "maturin": "maturin",
    "scikit_build_core.build": "scikit-build-core",
    "hatchling.build": "hatchling",
    "pdm.backend": "pdm",
    "pdm.pep517.api": "pdm",
    "flit_core.buildapi": "flit",
    "poetry.core.masonry.api": "poetry",
    "sipbuild.api": "sip",
    "enscons.api": "enscons",
}

# The commented settings each backend is usually given (what a maintainer reaches for first).
BACKEND_HINTS = {
    "setuptools": """\
# setuptools: compiler flags and feature switches usually come through the environment.
# env = { CFLAGS = "-O2", MAX_CONCURRENCY = "4" }
# config-settings = { "--build-option" = ["--parallel=4"] }
# debian = ["libffi-dev"]            # headers of C libraries the extension links""",
    "meson-python": """\
# meson-python: meson options go through setup-args; see `meson configure` for the project's own.
# config-settings = { setup-args = ["-Dbuildtype=release", "-Dblas=openblas"], compile-args = ["-j4"] }
# debian = ["ninja-build", "pkg-config", "libopenblas-dev", "gfortran"]""",
    "maturin": """\
# maturin: extra `maturin build` arguments through build-args; Rust comes from Debian's cargo.
# config-settings = { build-args = "--profile=release --locked --features=..." }
# env = { CARGO_NET_RETRY = "5", CARGO_PROFILE_RELEASE_LTO = "off" }""",
    "scikit-build-core": """\
# scikit-build-core: CMake definitions and build type as config settings.
# config-settings = { "cmake.define.BUILD_TESTING" = "OFF", "cmake.build-type" = "Release" }
# env = { CMAKE_BUILD_PARALLEL_LEVEL = "4", SKBUILD_CMAKE_ARGS = "-DFOO=ON" }
# debian = ["cmake", "ninja-build"]""",
    "hatchling": """\
# hatchling: compiled parts come from build hooks (hatch-cython, hatch-mypyc, …); they may
# need their tools declared.
# requires = ["hatch-cython"]
# env = { HATCH_BUILD_HOOKS_ENABLE = "1" }""",
    "pdm": """\
# pdm-backend: compiled parts come from a pdm_build.py hook (often setuptools underneath).
# env = { PDM_BUILD_SCM_VERSION = "VERSION" }""",
    "flit": """\
# flit: builds pure-Python wheels only; a compiled part would need another backend.""",
    "poetry": """\
# poetry-core: a [tool.poetry.build] script compiles extensions (setuptools underneath).
# env = { CFLAGS = "-O2" }""",
    "sip": """\
# sip: Qt-style bindings; qmake and the library's headers must be on the build host.
# debian = ["qtbase5-dev"]""",
}
GENERIC_HINT = """\
# Unknown or in-tree backend: read its documentation for config settings and environment.
# requires = []                      # build requirements it forgot to declare (e.g. expandvars)
# env = { }"""

# Debian packages each backend needs beyond a C compiler (hermetic builds see nothing else).
BACKEND_DEBIAN = {
    "maturin": ["cargo", "rustc"],
    "setuptools-rust": ["cargo", "rustc"],
    "scikit-build-core": ["cmake", "ninja-build"],
    "meson-python": ["ninja-build", "pkg-config"],
}

# Files whose presence means something gets compiled.
NATIVE_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".c++", ".pyx", ".rs", ".f", ".f90", ".f95", ".cu", ".go", ".zig")
NATIVE_MARKERS = ("Cargo.toml", "CMakeLists.txt", "meson.build")
NOT_PACKAGES = {"tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks", "bench",
                "build", "tools", "scripts", "ci", "src", "vendor", "third_party", "_vendor", "licenses"}


@dataclasses.dataclass
class SourceFacts:
    """What a source tree says about its build: backend, build requirements, compiled code, imports."""

    backend: str
    backend_object: str
    build_requires: list[str]
    native: bool
    imports: list[str]  # the top-level package(s), then every compiled module found (dotted names)
    pyproject_version: str
    notes: list[str]
    compiled: list[str] = dataclasses.field(default_factory=list)  # compiled modules found in the source
    rust: bool = False  # built with cargo (maturin, setuptools-rust)
    cython: bool = False


def inspect_source(view: SourceView, name: str) -> SourceFacts:
    """The facts of a source tree (pyproject.toml build-system, setup.py, native sources, packages)."""
    notes: list[str] = []
    pyproject: dict = {}
    if view.has("pyproject.toml"):
        try:
            pyproject = tomllib.loads(view.read_text("pyproject.toml"))
        except tomllib.TOMLDecodeError as e:
            notes.append(f"pyproject.toml does not parse ({e}); the backend is a guess")
    bs = pyproject.get("build-system", {}) if isinstance(pyproject.get("build-system"), dict) else {}
    obj = str(bs.get("build-backend", "") or "")
    requires = [str(r) for r in bs.get("requires", []) or []]
    if not obj:
        if view.has("setup.py") or view.has("setup.cfg"):
            backend, obj = "setuptools", "setuptools.build_meta:__legacy__"
        else:
            backend = "unknown"
            notes.append("no pyproject.toml build-system and no setup.py: find out how this project builds")
    elif bs.get("backend-path"):
        backend = f"in-tree ({obj})"
        notes.append(f"in-tree build backend {obj!r} (backend-path {bs['backend-path']}): check what it imports "
                     f"that build-system.requires does not declare (frozenlist/propcache needed expandvars)")
    else:
        backend = BACKENDS.get(obj, obj.split(".")[0] or "unknown")
    required = {canonicalize_name(re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0]) for r in requires}
    setup_py = view.read_text("setup.py") if view.has("setup.py") else ""
    tool = pyproject.get("tool", {}) if isinstance(pyproject.get("tool"), dict) else {}
    if backend == "setuptools" and ("setuptools-rust" in required or "RustExtension(" in setup_py
                                    or "setuptools-rust" in tool):
        backend = "setuptools-rust"
    cython = "cython" in required or any(n.endswith(".pyx") for n in view.names)

    compiled_backend = backend in ("meson-python", "maturin", "scikit-build-core", "sip", "enscons",
                                   "setuptools-rust")
    native_files = [n for n in view.names if n.lower().endswith(NATIVE_SUFFIXES)
                    and n.split("/", 1)[0] not in ("docs", "doc", "examples")]
    native = compiled_backend or bool(native_files) or any(
        n.rsplit("/", 1)[-1] in NATIVE_MARKERS for n in view.names)
    if not native and setup_py:
        native = "ext_modules" in setup_py or "Extension(" in setup_py
    project = pyproject.get("project", {}) if isinstance(pyproject.get("project"), dict) else {}
    version = project.get("version", "") if "version" not in (project.get("dynamic") or []) else ""
    tops = _import_names(view, name, pyproject)
    rust = backend in ("maturin", "setuptools-rust")
    compiled = compiled_modules(view, pyproject, setup_py, rust=rust) if native else []
    if rust:
        notes.append("cargo fetches the crates from crates.io during the build, and the build runs with the "
                     "network cut off: unless the sdist vendors them, list a `cargo vendor` archive as "
                     "[extra-sources.crates] (or the build fails with \"needs crates.io\")")
    imports = list(dict.fromkeys([*tops, *compiled]))
    return SourceFacts(backend, obj, requires, native, imports, str(version or ""), notes, compiled, rust, cython)


# What names a compiled module in a source tree. Explicit names (setup.py's Extension(...),
# setuptools-rust's targets, maturin's module-name, meson's extension_module + subdir) win; then
# Cython files and C sources defining PyInit_NAME are placed by the package folders around them.
_EXTENSION_CALL = re.compile(r"""\b(Extension|RustExtension|Pybind11Extension|CppExtension|CUDAExtension)\(\s*"""
                             r"""(?:name\s*=\s*)?["']([A-Za-z_][\w.]*)["']""")
_EXT_PACKAGE = re.compile(r"""\bext_package\s*=\s*["']([A-Za-z_][\w.]*)["']""")
_MESON_MODULE = re.compile(r"""extension_module\(\s*['"](\w+)['"]([^)]*)""")
_MESON_SUBDIR = re.compile(r"""subdir\s*:\s*['"]([\w/.-]+)['"]""")
_PYINIT = re.compile(r"\bPyInit_([A-Za-z_]\w*)\s*\(")
_PYMODULE = re.compile(r"#\[pymodule(?:\([^)]*\))?\]\s*(?:#\[pyo3\(name\s*=\s*\"(\w+)\"\)\]\s*)?(?:pub\s+)?fn\s+(\w+)")
# Modules for other systems (psutil._psutil_windows, …): never built on Linux.
_OTHER_OS = re.compile(r"(?i)(^|[._])(windows|win32|mswindows|winapi|osx|darwin|macos|bsd|sunos|aix|cygwin)($|[._])")
_VENDORED = {"vendor", "third_party", "thirdparty", "deps", "external", "extern", "tests", "test", "testing",
             "docs", "doc", "examples", "example", "demo", "demos", "benchmarks", "bench", "_vendor", "build", "include"}
_MODULE_TEXT_LIMIT = 2_000_000  # bytes of one source file read for PyInit_ (generated C can be huge)


def compiled_modules(view: SourceView, pyproject: dict, setup_py: str = "", *, rust: bool = False) -> list[str]:
    """Dotted names of the compiled modules the wheel will hold, as far as the source shows them.

    An empty list means they could not be told (CMake targets installed somewhere, macros):
    the scaffold then writes a TODO that fails validation until filled.
    """
    found: list[str] = []
    tool = pyproject.get("tool", {}) if isinstance(pyproject.get("tool"), dict) else {}
    maturin = tool.get("maturin", {}) if isinstance(tool.get("maturin"), dict) else {}
    if maturin.get("module-name"):
        found.append(str(maturin["module-name"]))
    rust_ext = tool.get("setuptools-rust", {}) if isinstance(tool.get("setuptools-rust"), dict) else {}
    found += [str(e.get("target")) for e in rust_ext.get("ext-modules", []) if isinstance(e, dict) and e.get("target")]
    for helper in [n for n in view.names if "/" not in n and n.startswith("setup") and n.endswith(".py")]:
        text = setup_py if helper == "setup.py" else view.read_text(helper)
        package = _EXT_PACKAGE.search(text)  # setup(ext_package="tree_sitter_bash"): names below it
        found += [f"{package.group(1)}.{m.group(2)}" if package else m.group(2) for m in _EXTENSION_CALL.finditer(text)
                  if m.group(1) != "RustExtension" or "setuptools_rust" in text]  # zstandard's own class: optional
    for n in view.names:
        if n.rsplit("/", 1)[-1] == "meson.build" and not _is_vendored(n):
            for mod, rest in _MESON_MODULE.findall(view.read_text(n)):
                sub = _MESON_SUBDIR.search(rest)
                base = sub.group(1).strip("/").replace("/", ".") if sub else _package_of(view, n)
                found.append(f"{base}.{mod}" if base else mod)
    if not found:
        for n in view.names:
            if _is_vendored(n):
                continue
            if n.endswith(".pyx"):
                found.append(_dotted(view, n, PurePosixPath(n).stem))
            elif n.endswith((".c", ".cc", ".cpp", ".cxx")):
                for mod in _PYINIT.findall(view.read_text(n)[:_MODULE_TEXT_LIMIT]):
                    found.append(_dotted(view, n, mod))
            elif n.endswith(".rs") and rust:  # cargo builds only through maturin / setuptools-rust
                text = view.read_text(n)
                m = _PYMODULE.search(text) or _PYINIT.search(text)
                if m:  # a mixed project puts the extension inside its package of the same name (rpds.rpds)
                    mod = next(g for g in m.groups() if g)
                    found.append(f"{mod}.{mod}" if mod in _package_names(view) else mod)
    return [m for m in dict.fromkeys(found) if is_module_name(m) and not _OTHER_OS.search(m)]


def _is_vendored(rel: str) -> bool:
    return any(part.lower() in _VENDORED for part in PurePosixPath(rel).parts[:-1])


def _package_of(view: SourceView, rel: str) -> str:
    """The dotted package a file's folder is (its folders up to the first without __init__.py)."""
    parts = list(PurePosixPath(rel).parts[:-1])
    pkg: list[str] = []
    while parts and view.has("/".join(parts) + "/__init__.py"):
        pkg.insert(0, parts.pop())
    if not pkg and parts and parts[-1] in _package_names(view):  # pyyaml: yaml/_yaml.pyx beside lib/yaml/
        pkg = [parts[-1]]
    return ".".join(pkg)


def _dotted(view: SourceView, rel: str, module: str) -> str:
    pkg = _package_of(view, rel)
    return f"{pkg}.{module}" if pkg else module


def _package_names(view: SourceView) -> set[str]:
    return {PurePosixPath(n).parts[-2] for n in view.names if n.endswith("/__init__.py")}


def _import_names(view: SourceView, name: str, pyproject: dict) -> list[str]:
    """Top-level modules the wheel will hold: the test imports of the recipe (best guess)."""
    maturin = pyproject.get("tool", {}).get("maturin", {}) if isinstance(pyproject.get("tool"), dict) else {}
    if isinstance(maturin, dict) and maturin.get("module-name"):
        return [str(maturin["module-name"]).split(".")[0]]
    if isinstance(maturin, dict) and maturin.get("python-source"):
        src = str(maturin["python-source"]).strip("/")
        pkgs = sorted({n.split("/")[1] for n in view.names
                       if n.startswith(src + "/") and n.count("/") == 2 and n.endswith("/__init__.py")})
        if pkgs:
            return pkgs[:1]
    if view.has("Cargo.toml") and "maturin" in pyproject.get("build-system", {}).get("build-backend", ""):
        try:
            lib = tomllib.loads(view.read_text("Cargo.toml")).get("lib", {}).get("name")
        except tomllib.TOMLDecodeError:
            lib = None
        if lib:
            return [str(lib)]
    for n in view.names:
        if n.endswith(".egg-info/top_level.txt") and n.count("/") <= 2:
            mods = [m.strip() for m in view.read_text(n).splitlines()
                    if is_module_name(m.strip()) and not m.startswith("_")]  # not sentencepiece/__init__
            if mods:
                return mods[:3]
    packages = []
    for n in view.names:
        parts = PurePosixPath(n).parts
        if parts[-1] == "__init__.py":
            if len(parts) == 2 and parts[0] not in NOT_PACKAGES:
                packages.append(parts[0])
            elif len(parts) == 3 and parts[0] == "src":
                packages.append(parts[1])
    guess = name.replace("-", "_")
    if guess in packages:
        return [guess]
    return sorted(set(packages))[:1] or [guess]


# --- PyPI ------------------------------------------------------------------------------------


class _PyPI:
    """The project pages of PyPI through the audit's cached index (cache/audit/)."""

    def __init__(self, config: Config):
        self.config = config
        self.pypi, _, labels = audit_indexes(config)
        self.cache = AuditCache(config.paths.cache / "audit" / "index.sqlite")
        self.index = CachedIndex(self.cache, concurrency=config.audit.concurrency,
                                 max_age=float(config.audit.max_age), refresh=False, labels=labels)

    def close(self):
        self.index.close()
        self.cache.close()

    def page(self, name: str):
        return self.index.fetch(self.pypi, name).result()

    def files(self, page, version: str):
        return self.cache.files(page.url, version)


def _latest(pypi: _PyPI, page) -> str:
    """The newest final release with a file that is not yanked (pre-releases only if nothing else)."""
    versions = []
    for v in page.versions:
        try:
            versions.append(Version(v))
        except InvalidVersion:
            continue
    for allow_pre in (False, True):
        for v in sorted(versions, reverse=True):
            if v.is_prerelease and not allow_pre:
                continue
            if any(f.yanked is None for f in pypi.files(page, str(v))):
                return str(v)
    raise ScaffoldError(f"{page.url} lists no installable version")


def _repository_url(config: Config, name: str, version: str) -> str:
    """A git repository named in the project's PyPI metadata (Source/Repository/Homepage), if any."""
    base = config.audit.pypi_url.rstrip("/")
    if not base.endswith("/simple"):
        return ""
    info: dict = {}
    session = http.session(retries=2)
    for url in (f"{base[:-len('/simple')]}/pypi/{name}/{version}/json", f"{base[:-len('/simple')]}/pypi/{name}/json"):
        try:
            r = session.get(url, timeout=(5, 30))
            info = r.json().get("info", {}) if r.status_code == 200 else {}
        except (requests.RequestException, ValueError):
            continue
        if info:
            break
    urls = dict(info.get("project_urls") or {})
    if info.get("home_page"):
        urls.setdefault("Homepage", info["home_page"])
    hosts = ("github.com", "gitlab.com", "codeberg.org", "bitbucket.org", "git.sr.ht", "salsa.debian.org")
    ranked = sorted(urls.items(), key=lambda kv: 0 if re.search(r"source|repo|code|git", kv[0], re.I) else 1)
    for _, url in ranked:
        parts = urlsplit(url or "")
        if parts.netloc in hosts:
            segs = [s for s in parts.path.split("/") if s][:2]
            if len(segs) == 2:
                return f"https://{parts.netloc}/{segs[0]}/{segs[1].removesuffix('.git')}"
    return ""


def _download_sdist(config: Config, f) -> Path:
    """The sdist in cache/scaffold/<sha256>/, downloaded once and checked against PyPI's hash."""
    dest = config.paths.cache / "scaffold" / (f.sha256 or "unhashed") / f.filename
    if dest.is_file() and (not f.sha256 or sha256_file(dest) == f.sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + f".part{os.getpid()}")
    try:
        with http.session().get(f.url, stream=True, timeout=http.DEFAULT_TIMEOUT) as r:
            if r.status_code != 200:
                raise ScaffoldError(f"downloading {f.url} failed: HTTP {r.status_code}")
            with open(tmp, "wb") as out:
                for chunk in r.iter_content(1 << 20):
                    out.write(chunk)
    except requests.RequestException as e:
        tmp.unlink(missing_ok=True)
        raise ScaffoldError(f"downloading {f.url} failed: {e}") from None
    if f.sha256 and sha256_file(tmp) != f.sha256:
        tmp.unlink(missing_ok=True)
        raise ScaffoldError(f"{f.filename}: sha256 differs from what the index lists; not using it")
    os.replace(tmp, dest)
    return dest


# --- planning ---------------------------------------------------------------------------------


def plan_recipe(config: Config, name: str, *, version: str | None = None, git: str = "", rev: str = "",
                subdirectory: str = "", pypi: _PyPI | None = None) -> Scaffold:
    """Everything a recipe needs, without writing anything; raises ScaffoldError with the reason."""
    own = pypi is None
    pypi = pypi or _PyPI(config)
    try:
        if git or rev:
            return _plan_git(config, pypi, name, version, git, rev, subdirectory)
        return _plan_sdist(config, pypi, name, version, subdirectory)
    finally:
        if own:
            pypi.close()


def _plan_sdist(config, pypi: _PyPI, name, version, subdirectory) -> Scaffold:
    canonical = canonicalize_name(name)
    page = pypi.page(canonical)
    if page.status != 200:
        raise ScaffoldError(f"no project '{name}' on {pypi.pypi}; check the spelling "
                            f"(or scaffold from git: invoke new-recipe {name} --git URL --rev REV --version V)")
    if version:
        if not pypi.files(page, version):
            raise ScaffoldError(f"{canonical} has no version {version} on {pypi.pypi}; "
                                f"the latest is {_latest(pypi, page)}")
    else:
        version = _latest(pypi, page)
    files = [f for f in pypi.files(page, version)]
    live = [f for f in files if f.yanked is None] or files
    wheels = [f for f in live if f.kind == "wheel"]
    pure = [f for f in wheels if f.filename.endswith("-none-any.whl")]
    if pure and len(pure) == len(wheels):
        raise ScaffoldError(
            f"{canonical} {version} is pure Python ({pure[0].filename} on PyPI): it installs on riscv64 as it "
            f"is, there is nothing to build; no recipe written")
    notes: list[str] = []
    target, pythons = audit_target(config)
    have = [py for py in pythons if (b := best_wheel(wheels, target, py)) and b[1].platform != "any"]
    if have:
        notes.append(f"PyPI already ships {target.arch} wheels of {canonical} {version} for Python "
                     f"{', '.join(have)}: a recipe is only worth it for the others or for other build flags")
    sdists = sorted((f for f in live if f.kind == "sdist"), key=lambda f: not f.filename.endswith(".tar.gz"))
    if not sdists:
        repo = _repository_url(config, canonical, version)
        hint = (f"invoke new-recipe {canonical} --version {version} --git {repo} --rev v{version}" if repo
                else f"invoke new-recipe {canonical} --version {version} --git URL --rev TAG")
        wheels = "only wheels" if have else f"only wheels, none for {target.arch}"
        raise ScaffoldError(f"{canonical} {version} has no sdist on {pypi.pypi} ({wheels}); "
                            f"build it from its repository: {hint}")
    sdist = sdists[0]
    archive = _download_sdist(config, sdist)
    facts = inspect_source(SourceView.of_archive(archive, subdirectory), canonical)
    sha256 = sdist.sha256 or sha256_file(archive)
    source = f'[source]\nsha256 = "{sha256}"\n'
    if subdirectory:
        source += f'subdirectory = "{subdirectory}"\n'
    origin = f"the PyPI sdist {sdist.filename}"
    return _finish(config, canonical, version, source, origin, facts, notes)


def _plan_git(config, pypi: _PyPI, name, version, git, rev, subdirectory) -> Scaffold:
    if not (git and rev):
        raise ScaffoldError("a git source needs both --git URL and --rev TAG-OR-COMMIT")
    canonical = canonicalize_name(name)
    with tempfile.TemporaryDirectory(prefix="wf-scaffold-") as tmp:
        checkout = Path(tmp) / "src"
        _git_checkout(git, rev, checkout)
        root = checkout / subdirectory if subdirectory else checkout
        if not root.is_dir():
            raise ScaffoldError(f"{git}@{rev} has no folder {subdirectory!r} (--subdirectory)")
        facts = inspect_source(SourceView.of_folder(root), canonical)
    if not version:
        version = facts.pyproject_version
    if not version:
        page = pypi.page(canonical)
        if page.status == 200:
            version = _latest(pypi, page)
    if not version:
        raise ScaffoldError(f"cannot tell the version of {canonical} at {rev}: give --version V")
    if not facts.native:
        raise ScaffoldError(f"{canonical} at {git}@{rev} holds no compiled code (no C/C++/Cython/Rust/Fortran "
                            f"sources, backend {facts.backend}): pure Python, there is nothing to build")
    source = f'[source]\ngit = "{git}"\nrev = "{rev}"\n'
    if subdirectory:
        source += f'subdirectory = "{subdirectory}"\n'
    return _finish(config, canonical, version, source, f"{git} at {rev}", facts, [])


def _git_checkout(url: str, rev: str, dest: Path) -> None:
    what = f"cannot check out {rev!r} from {url}"
    shallow = git(["clone", "--quiet", "--depth", "1", "--branch", rev, url, dest], what=what, check=False,
                  timeout=600, error=ScaffoldError)
    if shallow.returncode != 0:  # a commit, not a tag or branch: clone whole and check it out
        shutil.rmtree(dest, ignore_errors=True)
        git(["clone", "--quiet", url, dest], what=what, timeout=600, error=ScaffoldError)
        git(["checkout", "--quiet", rev], cwd=dest, what=what, timeout=600, error=ScaffoldError)


def _finish(config, name, version, source, origin, facts: SourceFacts, notes) -> Scaffold:
    notes = notes + facts.notes
    if not facts.native:
        notes.append("no compiled sources found: the wheel will be pure Python (py3-none-any); a recipe still "
                     "spares riscv64 users the source build of an sdist-only package")
    text = render(name, version, source, origin, facts, notes)
    _validate(name, text)
    return Scaffold(name, version, text, facts.backend, notes)


def render(name: str, version: str, source: str, origin: str, facts: SourceFacts, notes: list[str]) -> str:
    """The recipe.toml text: header notes, package, source, build hints of the backend, runtime, test."""
    hint = BACKEND_HINTS.get(facts.backend, GENERIC_HINT)
    build_lines = []
    debian = BACKEND_DEBIAN.get(facts.backend, [])
    if debian:
        build_lines.append(f"debian = [{', '.join(json.dumps(d) for d in debian)}]")
    header = [f"# {name}: build backend {facts.backend}"
              + (f" ({facts.backend_object})" if facts.backend_object and facts.backend_object not in facts.backend
                 else "")
              + (" with Cython" if facts.cython else "") + ".",
              f"# Scaffolded by `invoke new-recipe` from {origin}."]
    if facts.build_requires:
        header.append(f"# build-system.requires: {', '.join(facts.build_requires)}")
    header += [f"# NOTE: {n}" for n in notes]
    todo = [] if facts.compiled or not facts.native else [TODO_IMPORT]
    imports = ", ".join(json.dumps(m) for m in [*facts.imports, *todo])
    parts = [
        "\n".join(header),
        f'[package]\nname = "{name}"\nversion = "{version}"',
        source.rstrip("\n"),
        "[build]\n" + "\n".join(build_lines + [
            "# requires = []                     # build requirements the package forgot to declare",
            *([] if build_lines else
              ["# debian = []                       # Debian packages needed to build (headers, compilers)"]),
            hint.replace("VERSION", version),
        ]),
        "[runtime]\n# debian = []                       # libraries the wheel needs that must not be bundled",
        ("# The compiled modules could not be told from the source: name them (`unzip -l` the wheel),\n"
         "# the recipe fails validation until the TODO is replaced.\n" if todo else
         "# The top-level package, then every compiled module found in the source.\n")
        + f"[test]\nimports = [{imports}]",
    ]
    return "\n\n".join(parts) + "\n"


def _validate(name: str, text: str) -> None:
    """The scaffold must pass the recipe schema as it is written."""
    with tempfile.TemporaryDirectory(prefix="wf-recipe-") as tmp:
        path = Path(tmp) / name / RECIPE_FILE
        path.parent.mkdir()
        path.write_text(text)
        try:
            parse_recipe(path)
        except RecipeError as e:
            if TODO_IMPORT in str(e):  # on purpose: the user names the compiled modules
                return
            raise ScaffoldError(f"the scaffolded recipe for {name} does not validate: {e}") from None


# --- writing -----------------------------------------------------------------------------------


def write_recipes(recipes_root: Path, scaffolds: Iterable[Scaffold]) -> list[Path]:
    """Write every recipe or none: existing recipes are never overwritten."""
    scaffolds = list(scaffolds)
    targets = [(s, recipes_root / s.name / RECIPE_FILE) for s in scaffolds]
    existing = [str(p) for _, p in targets if p.exists()]
    if existing:
        raise ScaffoldError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                            f"edit {'it' if len(existing) == 1 else 'them'} instead (nothing was written)")
    written: list[Path] = []
    made_dirs: list[Path] = []
    try:
        for s, path in targets:
            if not path.parent.exists():
                path.parent.mkdir(parents=True)
                made_dirs.append(path.parent)
            atomic_write_text(path, s.text)
            written.append(path)
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        for d in reversed(made_dirs):
            shutil.rmtree(d, ignore_errors=True)
        raise
    return written


def write_missing_recipes(config: Config, reports) -> list[Path]:
    """`invoke audit --write-recipes`: plan a recipe for each missing package, then write all or none."""
    wanted: dict[str, str] = {}
    for r in reports:  # a package pinned per Python (numpy 2.3 / 2.4): the newest version
        if r.name not in wanted or Version(r.version) > Version(wanted[r.name]):
            wanted[r.name] = r.version
    pypi = _PyPI(config)
    results: dict[str, Scaffold | Exception] = {}
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = {n: pool.submit(plan_recipe, config, n, version=v, pypi=pypi) for n, v in wanted.items()}
            for n, fut in futures.items():
                try:
                    results[n] = fut.result()
                except FactoryError as e:
                    results[n] = e
    finally:
        pypi.close()
    failed = {n: e for n, e in results.items() if isinstance(e, Exception)}
    if failed:
        lines = "\n".join(f"  {n}: {e}" for n, e in sorted(failed.items()))
        raise ScaffoldError(f"no recipes written: {len(failed)} of {len(results)} packages cannot be scaffolded "
                            f"from PyPI (give them a git source with `invoke new-recipe NAME --git URL --rev REV`, "
                            f"or list them in audit.ignore):\n{lines}")
    return write_recipes(config.paths.recipes, [s for s in results.values() if isinstance(s, Scaffold)])
