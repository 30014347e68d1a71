"""The verdict on each pinned package: a riscv64 wheel on PyPI, one in our index, pure Python,
or a recipe needed.

Files are matched against the tags CPython X.Y on the target accepts
(``settings.target.Target.tag_priority``: pip's order); ``linux_*`` counts
only in our own index, because PyPI refuses such uploads. A file must
satisfy ``requires-python`` and must not be yanked; among the matching wheels
the best tag wins, then the highest build tag, as in pip.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag

from .._util.simple_api import ProjectFile
from ..errors import FactoryError
from ..settings.recipe import RECIPE_FILE, parse_recipe
from ..settings.target import Target
from .cache import canonical_version
from .resolve import Pin

NEEDS = ("needs-recipe", "needs-git-recipe")
STATUS_ORDER = ["needs-git-recipe", "needs-recipe", "direct-url", "our-wheel", "pypi-wheel", "pure", "ignored"]


@dataclasses.dataclass
class PythonVerdict:
    """Where a CPython on the target gets the package from, and the wheel pip would pick."""

    source: str  # pypi | ours | pure | sdist | none
    filename: str = ""
    tag: str = ""
    build: str = ""


@dataclasses.dataclass
class PackageReport:
    """One pinned package: its status (STATUS_ORDER), why, who wants it, per-Python verdicts."""

    name: str
    version: str
    pythons: list[str]
    status: str
    detail: str
    via: list[str]
    per_python: dict[str, PythonVerdict]
    sdist: dict | None
    recipe: dict | None  # {"path", "version", "matches"} when recipes/NAME exists
    marker: str = ""
    only_via_missing: bool = False  # every package that needs it lacks riscv64 wheels itself

    @property
    def needs_recipe(self) -> bool:
        return self.status in NEEDS and self.recipe is None

    def to_json(self) -> dict:
        """The package as the JSON report shows it (``needs_recipe`` included)."""
        d = dict(vars(self))
        d["per_python"] = {py: dict(vars(v)) for py, v in self.per_python.items()}
        d["needs_recipe"] = self.needs_recipe
        return d


def best_wheel(files: list[ProjectFile], target: Target, python: str, *,
               allow_linux: bool = False) -> tuple[ProjectFile, Tag, str] | None:
    """The wheel pip on the target would pick for CPython ``python``: (file, tag, build tag) or None.

    Best tag priority first, then the highest build tag.
    """
    priority = target.tag_priority(python, allow_linux=allow_linux)
    best, best_key = None, None
    py_full = f"{python}.0"
    for f in files:
        if f.kind != "wheel" or f.yanked is not None:
            continue
        # Cheap first: a wheel for the target names its arch or is "any" (parsing tags is the slow part).
        if target.arch not in f.filename and not f.filename.endswith("-any.whl"):
            continue
        parsed = f.wheel_tags()
        if parsed is None:
            continue
        build, tags = parsed
        ranks = [(priority[t], t) for t in tags if t in priority]
        if not ranks:
            continue
        if f.requires_python:
            try:
                if not SpecifierSet(f.requires_python).contains(py_full, prereleases=True):
                    continue
            except InvalidSpecifier:
                pass
        rank, tag = min(ranks, key=lambda x: x[0])
        key = (rank, -(build[0] if build else -1))
        if best_key is None or key < best_key:
            best, best_key = (f, tag, f"{build[0]}{build[1]}" if build else ""), key
    return best


def classify(pin: Pin, pythons: list[str], target: Target, pypi_files: list[ProjectFile],
             our_files: list[ProjectFile], recipes_root: Path, ignore: list[str]) -> PackageReport:
    """The verdict on one pin for the Pythons it applies to, from the files of its version on each index."""
    recipe = _recipe_info(recipes_root, pin.name, pin.version)
    sdists = [f for f in pypi_files + our_files if f.kind == "sdist" and f.yanked is None] or \
             [f for f in pypi_files + our_files if f.kind == "sdist"]
    sdist = _sdist_json(sdists[0]) if sdists else None
    if any(fnmatch.fnmatchcase(pin.name, pat) for pat in ignore):
        return PackageReport(pin.name, pin.version, pythons, "ignored", "matches audit.ignore", pin.via, {},
                             sdist, recipe, pin.marker)
    if pin.url:
        return PackageReport(pin.name, pin.url, pythons, "direct-url", pin.url, pin.via, {}, None, recipe, pin.marker)
    per: dict[str, PythonVerdict] = {}
    for py in pythons:
        up = best_wheel(pypi_files, target, py)
        ours = best_wheel(our_files, target, py, allow_linux=True)
        if up and up[1].platform != "any":
            per[py] = PythonVerdict("pypi", up[0].filename, str(up[1]), up[2])
        elif ours and (ours[1].platform != "any" or not up):
            per[py] = PythonVerdict("ours", ours[0].filename, str(ours[1]), ours[2])
        elif up:
            per[py] = PythonVerdict("pure", up[0].filename, str(up[1]), up[2])
        else:
            per[py] = PythonVerdict("sdist" if sdist else "none")
    sources = {v.source for v in per.values()}
    missing = [py for py, v in per.items() if v.source in ("sdist", "none")]
    if missing:
        status = "needs-recipe" if sdist else "needs-git-recipe"
        covered = [f"{py}: {per[py].tag}" for py in pythons if py not in missing]
        detail = (f"sdist {sdist['filename']}" if sdist else "no sdist and no riscv64 wheel on any index")
        if covered:
            detail += f"; no wheel for Python {', '.join(missing)} (has {'; '.join(covered)})"
    elif "ours" in sources:
        status = "our-wheel"
        detail = _per_python_detail(per, lambda v: v.filename)
    elif sources == {"pure"}:
        status = "pure"
        detail = _per_python_detail(per, lambda v: v.tag)
        if any(f.kind == "wheel" and not f.filename.endswith("-any.whl") for f in pypi_files):
            detail += " (a fallback: compiled wheels exist for other platforms)"
    else:
        status = "pypi-wheel"
        detail = _tags_detail(per)
    if status == "pypi-wheel" and recipe:
        detail += f" — upstream ships {target.arch} wheels: recipes/{pin.name} can be dropped"
    if not pythons:
        status, detail = "ignored", "not needed on the target (marker)"
    return PackageReport(pin.name, pin.version, pythons, status, detail, pin.via, per, sdist, recipe, pin.marker)


def _sdist_json(f: ProjectFile) -> dict:
    """The sdist as the JSON report has always shown it."""
    return {"filename": f.filename, "url": f.url, "sha256": f.sha256, "requires_python": f.requires_python,
            "yanked": f.yanked, "kind": f.kind}


def _tags_detail(per: dict[str, PythonVerdict]) -> str:
    """``manylinux_2_39_riscv64: cp311-cp311, cp312-cp312`` rather than one full tag per Python."""
    by_platform: dict[str, list[str]] = {}
    for v in per.values():
        interp, abi, plat = v.tag.split("-")
        key = f"{plat}{' (pure fallback)' if v.source == 'pure' else ''}"
        if f"{interp}-{abi}" not in by_platform.setdefault(key, []):
            by_platform[key].append(f"{interp}-{abi}")
    return "; ".join(f"{plat}: {', '.join(ia)}" for plat, ia in by_platform.items())


def _per_python_detail(per: dict[str, PythonVerdict], show) -> str:
    values = {show(v) for v in per.values()}
    if len(values) == 1:
        return values.pop()
    return "; ".join(f"{py}: {show(v)}" for py, v in per.items())


def _recipe_info(recipes_root: Path, name: str, version: str) -> dict | None:
    """{"path", "version", "versions", "matches"}: ``matches`` when any version the recipe lists
    (package.version or [versions]) is ``version``, the one resolved for this Python; ``version``
    is that listed one, else package.version ("?" for a recipe that does not load)."""
    path = recipes_root / name / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        listed = parse_recipe(path).all_versions
    except FactoryError:
        listed = []
    same = [v for v in listed if version and canonical_version(v) == canonical_version(version)]
    return {"path": str(path), "version": (same or listed or ["?"])[0], "versions": listed, "matches": bool(same)}


def mark_only_via_missing(reports: list[PackageReport]) -> None:
    """Flag packages wanted only by packages that need a recipe themselves.

    Their presence comes from the x86_64 metadata of those packages (torch's
    CUDA wheels name nvidia-* dependencies); a riscv64 build from source may
    not need them at all, so they are worth triage before a recipe.
    """
    missing = {r.name for r in reports if r.status in NEEDS}
    changed = True
    while changed:
        changed = False
        for r in reports:
            if r.status in NEEDS and not r.only_via_missing and r.via and "(requested)" not in r.via \
                    and all(v in missing and v != r.name for v in r.via):
                parents = [p for p in reports if p.name in r.via]
                if parents and all(p.status in NEEDS for p in parents):
                    r.only_via_missing = True
                    changed = True

