"""What to audit: requirements from the command line and from pip requirements files.

A command-line value may hold several requirements (invoke has no variadic
positionals); files follow pip's format (``-r``, ``-c``, comments, ``\\``
continuations). Index options in a file are refused: the indexes come from
factory.toml. Every requirement is checked with ``packaging.requirements``.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..errors import FactoryError


class AuditError(FactoryError):
    """The audit could not run: bad requirement, unknown package, unreachable index."""


@dataclasses.dataclass
class RequirementsInput:
    """What to audit: checked requirement strings and constraints (``-c``)."""

    requirements: list[str]  # requirement strings, validated
    constraints: list[str]

    @property
    def names(self) -> list[str]:
        return sorted({canonicalize_name(Requirement(r).name) for r in self.requirements})


def split_requirement_args(values: Iterable[str]) -> list[str]:
    """Requirements given on a command line: each value may hold several, comma- or space-separated.

    Commas inside a version specifier (``numpy>=2,<3``) stay with their requirement:
    a piece that starts with an operator continues the previous one.
    """
    out: list[str] = []
    for value in values:
        for piece in re.split(r"[\s,]+", value.strip()):
            if not piece:
                continue
            if out and re.match(r"^(===|==|!=|~=|<=|>=|<|>)", piece):
                out[-1] += "," + piece
            else:
                out.append(piece)
    return out


def _check_requirement(text: str, where: str) -> str:
    try:
        req = Requirement(text)
    except InvalidRequirement as e:
        raise AuditError(f"{where}: {text!r} is not a valid requirement (write a PEP 508 requirement, "
                         f"e.g. \"numpy>=2\"): {e}") from None
    return str(req)


def _logical_lines(path: Path) -> Iterable[tuple[int, str]]:
    """Lines of a requirements file with comments removed and ``\\`` continuations joined."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise AuditError(f"requirements file {path} does not exist; check the path given to -r "
                         f"(relative to the current folder, or to the file that includes it)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AuditError(f"requirements file {path} cannot be read: {e}") from None
    buf, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not buf:
            start = number
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            yield start, buf.strip()
        buf = ""
    if buf.strip():
        yield start, buf.strip()


def read_requirement_file(path: Path, into: RequirementsInput, *, constraint: bool = False,
                          seen: set[Path] | None = None) -> None:
    """pip's requirements-file format: requirements, ``-r FILE``, ``-c FILE``, comments.

    Appends to ``into``; raises AuditError naming FILE:LINE for anything else.
    """
    path = path.resolve()
    seen = seen if seen is not None else set()
    if path in seen:
        return
    seen.add(path)
    for number, line in _logical_lines(path):
        where = f"{path}:{number}"
        if line.startswith("-"):
            parts = shlex.split(line)
            opt, arg = parts[0], (parts[1] if len(parts) > 1 else "")
            if "=" in opt:
                opt, arg = opt.split("=", 1)
            if opt in ("-r", "--requirement", "-c", "--constraint"):
                if not arg:
                    raise AuditError(f"{where}: {opt} needs a file name: write '{opt} FILE'")
                nested = Path(arg) if Path(arg).is_absolute() else path.parent / arg
                read_requirement_file(nested, into, constraint=constraint or opt in ("-c", "--constraint"),
                                      seen=seen)
                continue
            raise AuditError(
                f"{where}: option {opt!r} is not supported by the audit (indexes come from factory.toml "
                f"[audit] and [indexes]); remove it or list plain requirements"
            )
        req = _check_requirement(line, where)
        (into.constraints if constraint else into.requirements).append(req)


def _names_a_file(piece: str) -> bool:
    """A command-line piece that is a requirements file rather than a requirement.

    invoke cannot leave a positional argument empty, so `invoke audit requirements.txt`
    is how a file alone is audited; a path (with a slash, or .txt/.in) that exists counts.
    """
    return ("/" in piece or piece.endswith((".txt", ".in"))) and Path(piece).is_file()


def read_requirements(requirements: Iterable[str], files: Iterable[str | Path] = ()) -> RequirementsInput:
    """Command-line values and requirements files as one checked RequirementsInput; AuditError if empty."""
    into = RequirementsInput([], [])
    files = list(files)
    for text in split_requirement_args(requirements):
        if _names_a_file(text):
            files.append(text)
            continue
        into.requirements.append(_check_requirement(text, "command line"))
    for f in files:
        read_requirement_file(Path(f), into)
    if not into.requirements:
        raise AuditError("nothing to audit: give requirements (e.g. `invoke audit vllm`) or -r requirements.txt")
    return into
