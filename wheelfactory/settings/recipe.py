"""Load and validate ``recipes/NAME/recipe.toml``.

A recipe is data only: every quirk of a package lives here, never in code.
Validation is strict (see schema.py): unknown keys get a "did you mean",
wrong types name the key and the expected type.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import RecipeError
from .schema import Field, Schema, validate

RECIPE_FILE = "recipe.toml"

SCHEMA: Schema = {
    "package": {
        "name": Field("str", required=True, help="the PyPI project name"),
        "version": Field("str", required=True, help="the exact version to build"),
        "disabled": Field("str", "", "a reason; a disabled recipe is not built and its dependents are skipped"),
    },
    "source": {
        "url": Field("str", "", "archive URL; empty = the PyPI sdist of name==version"),
        "sha256": Field("str", "", "sha256 of the archive (mandatory for sdist and url sources)"),
        "git": Field("str", "", "git repository URL (instead of an archive)"),
        "rev": Field("str", "", "git tag, branch or commit (required with git)"),
        "subdirectory": Field("str", "", "folder inside the source that holds the Python project"),
    },
    "build": {
        "requires": Field("list[str]", [], "extra build requirements the package forgot to declare"),
        "env": Field("dict[str,str]", {}, "environment variables for the build"),
        "config-settings": Field("dict[str,str|list[str]]", {}, "PEP 517 config settings"),
        "isolation": Field("bool", True, "build in an isolated environment (PEP 517 build isolation)"),
        "debian": Field("list[str]", [], "Debian packages needed to build"),
        "dnf": Field("list[str]", [], "the same packages for the manylinux container (dnf names)"),
        "depends": Field("list[str]", [], "other recipes whose wheels this build needs"),
        "exclusive": Field("bool", False, "memory-hungry: build alone, never beside another build"),
    },
    "repair": {
        "policy": Field("str", "", "policy override for this recipe (e.g. manylinux_2_39)"),
        "exclude": Field("list[str]", [], "sonames auditwheel must not bundle (auditwheel --exclude)"),
    },
    "runtime": {
        "debian": Field("list[str]", [], "Debian packages the wheel needs at run time (not bundled)"),
        "depends": Field("list[str]", [], "other recipes whose wheels this package needs at run time"),
    },
    "test": {
        "imports": Field("list[str]", [], "modules imported in a bare venv after install"),
        "commands": Field("list[str]", [], "shell commands run in the bare venv (python is the venv's)"),
        "requires": Field("list[str]", [], "extra packages installed for the test commands"),
    },
    "yanked": {},  # filled dynamically: any key (a version or filename) -> reason
}

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DEB = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?$")


@dataclass(frozen=True)
class Recipe:
    name: str  # canonical (PEP 503-normalized) name
    path: Path  # the recipe.toml
    data: dict[str, dict[str, Any]]  # validated, defaults filled
    text: bytes  # the file's bytes (part of the build key)

    @property
    def version(self) -> str:
        return self.data["package"]["version"]

    @property
    def project(self) -> str:
        """The name as written in the recipe."""
        return self.data["package"]["name"]

    @property
    def source_kind(self) -> str:
        s = self.data["source"]
        return "git" if s["git"] else "url" if s["url"] else "sdist"

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.data[section]

    def patches(self, patches_root: Path) -> list[Path]:
        """patches/NAME/*.patch then patches/NAME/VERSION/*.patch, each in name order."""
        base = patches_root / self.name
        found = sorted(base.glob("*.patch")) + sorted((base / self.version).glob("*.patch"))
        return found

    def fingerprint(self, patches_root: Path) -> str:
        """sha256 of the recipe file and its patches (names and contents)."""
        h = hashlib.sha256(self.text)
        for p in self.patches(patches_root):
            h.update(p.relative_to(patches_root).as_posix().encode() + b"\0" + p.read_bytes())
        return h.hexdigest()


def parse_recipe(path: Path) -> Recipe:
    where = str(path)
    try:
        text = path.read_bytes()
        raw = tomllib.loads(text.decode())
    except FileNotFoundError:
        raise RecipeError(f"{where}: no such recipe file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RecipeError(f"{where}: not valid TOML: {e}") from None

    yanked = raw.pop("yanked", {})
    data = validate(raw, SCHEMA, where=where)
    if not isinstance(yanked, dict) or not all(isinstance(v, str) for v in yanked.values()):
        raise RecipeError(f"{where}: [yanked] must map a version or wheel filename to a reason string")
    data["yanked"] = dict(yanked)

    pkg, src = data["package"], data["source"]
    name = canonicalize_name(pkg["name"])
    if path.parent.name != name:
        raise RecipeError(
            f"{where}: the folder is '{path.parent.name}' but package.name is '{pkg['name']}'; "
            f"move the recipe to recipes/{name}/recipe.toml"
        )
    try:
        Version(pkg["version"])
    except InvalidVersion:
        raise RecipeError(f"{where}: 'package.version' {pkg['version']!r} is not a valid version") from None

    if src["git"]:
        if src["url"]:
            raise RecipeError(f"{where}: 'source.git' and 'source.url' exclude each other; keep one")
        if not src["rev"]:
            raise RecipeError(f"{where}: 'source.rev' is required with 'source.git' (a tag, branch or commit)")
        if src["sha256"]:
            raise RecipeError(f"{where}: 'source.sha256' is for archives; a git source is pinned by 'source.rev'")
    else:
        if src["rev"]:
            raise RecipeError(f"{where}: 'source.rev' needs 'source.git'")
        if not src["sha256"]:
            raise RecipeError(
                f"{where}: 'source.sha256' is required for {'url' if src['url'] else 'sdist'} sources; "
                f"`invoke new-recipe {name}` fills it from PyPI"
            )
    if src["sha256"] and not _SHA256.match(src["sha256"]):
        raise RecipeError(f"{where}: 'source.sha256' must be 64 lowercase hex digits, got {src['sha256']!r}")
    sub = src["subdirectory"]
    if sub:
        p = PurePosixPath(sub)
        if p.is_absolute() or ".." in p.parts:
            raise RecipeError(f"{where}: 'source.subdirectory' {sub!r} must be a relative path inside the source")

    for section in ("build", "test"):
        for req in data[section]["requires"]:
            try:
                Requirement(req)
            except InvalidRequirement as e:
                raise RecipeError(f"{where}: '{section}.requires' entry {req!r} is not a requirement: {e}") from None
    for key in ("build.debian", "runtime.debian"):
        s, k = key.split(".")
        for deb in data[s][k]:
            if not _DEB.match(deb):
                raise RecipeError(f"{where}: '{key}' entry {deb!r} is not a Debian package name")
    for key in ("build.depends", "runtime.depends"):
        s, k = key.split(".")
        data[s][k] = [canonicalize_name(d) for d in data[s][k]]
        if name in data[s][k]:
            raise RecipeError(f"{where}: '{key}' names the recipe itself")
    return Recipe(name=name, path=path, data=data, text=text)


def recipe_path(recipes_root: Path, name: str) -> Path:
    return recipes_root / canonicalize_name(name) / RECIPE_FILE


def load_recipe(recipes_root: Path, name: str) -> Recipe:
    path = recipe_path(recipes_root, name)
    if not path.is_file():
        known = [p.parent.name for p in recipes_root.glob(f"*/{RECIPE_FILE}")]
        from .schema import did_you_mean

        raise RecipeError(
            f"no recipe '{name}': {path} does not exist{did_you_mean(canonicalize_name(name), known)}; "
            f"`invoke new-recipe {name}` scaffolds one"
        )
    return parse_recipe(path)


def load_all(recipes_root: Path) -> dict[str, Recipe]:
    """Every recipe, validated, keyed by canonical name; dependencies must exist."""
    recipes = {}
    for path in sorted(recipes_root.glob(f"*/{RECIPE_FILE}")):
        r = parse_recipe(path)
        recipes[r.name] = r
    for r in recipes.values():
        for dep in r["build"]["depends"] + r["runtime"]["depends"]:
            if dep not in recipes:
                raise RecipeError(f"{r.path}: depends on '{dep}', which has no recipe in {recipes_root}")
    return recipes
