"""A small, deterministic YAML emitter for the generated workflow (no Jinja, no general dumper).

The workflow is a committed, reviewed file: its text must be stable and
readable, so it is written here. Dicts keep their order; a dict is a block, a
short list of plain scalars a flow list ``[a, b]``, a string with newlines a
literal block (``|``). A scalar stays plain only when every YAML loader reads
it back as the same string (YAML 1.1 and 1.2: booleans, nulls, numbers,
sexagesimals and dates are quoted), otherwise it is written as a JSON string,
which YAML reads as is. ``tests/unit/test_yaml.py`` round-trips awkward strings
through PyYAML.

May import: nothing of wheelfactory (a leaf).
"""

from __future__ import annotations

import json
import re
from typing import Any

_PLAIN = re.compile(r"^[A-Za-z0-9_$./(][^\n]*$")
# Plain scalars some YAML loader would not read as a string: booleans, nulls, numbers
# (YAML 1.1 too: 1_000, 0x1f, 1:20 sexagesimal, .inf) and dates.
_RESERVED = re.compile(
    r"^(?:true|false|yes|no|on|off|y|n|null|~|[-+]?(?:\d[\d_]*)?(?:\.\d*)?(?:e[-+]?\d+)?|0x[0-9a-f_]+|0o?[0-7_]+"
    r"|[-+]?\.(?:inf|nan)|[-+]?\d[\d_]*(?::[0-5]?\d)+(?:\.\d*)?|\d{4}-\d\d?-\d\d?(?:[Tt ].*)?)$",
    re.I,
)
_PLAIN_KEYS = {"on"}  # GitHub reads the bare key `on` (a boolean only to YAML 1.1 loaders)


def scalar(value: Any, *, key: bool = False) -> str:
    """``value`` (str, int, bool, None) as one YAML scalar that reads back as the same value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    s = str(value)
    if key and s in _PLAIN_KEYS:
        return s
    if (_PLAIN.match(s) and not _RESERVED.match(s) and ": " not in s and " #" not in s
            and not s.endswith((" ", ":")) and "\t" not in s):
        return s
    return json.dumps(s, ensure_ascii=False)


def _emit(value: Any, indent: int, out: list[str]) -> None:
    """Append the block lines of a dict or list, ``indent`` levels deep, to ``out``."""
    if isinstance(value, dict):
        for k, v in value.items():
            _emit_entry(f"{'  ' * indent}{scalar(k, key=True)}:", v, indent, out)
    elif isinstance(value, list):
        _emit_items(value, indent, out)
    else:
        raise TypeError(f"cannot emit {type(value).__name__}")


def _emit_entry(head: str, v: Any, indent: int, out: list[str]) -> None:
    """One ``key: value``; the value inline when short and flat, else as a block below the key."""
    if isinstance(v, dict) and v:
        out.append(head)
        _emit(v, indent + 1, out)
    elif isinstance(v, list) and v and (not all(isinstance(x, (str, int)) for x in v)
                                        or len(head) + sum(len(scalar(x)) + 2 for x in v) > 100):
        out.append(head)
        _emit(v, indent + 1, out)
    elif isinstance(v, list):
        out.append(f"{head} [{', '.join(scalar(x) for x in v)}]")
    elif isinstance(v, dict):
        out.append(f"{head} {{}}")
    elif isinstance(v, str) and "\n" in v:
        block = "|" if v.endswith("\n") and not v.endswith("\n\n") else "|-"  # clip keeps one final newline, strip none
        out.append(f"{head} {block}")
        pad = "  " * (indent + 1)
        out.extend(f"{pad}{line}" if line else "" for line in v.rstrip("\n").split("\n"))
    elif v is None:
        out.append(head)
    else:
        out.append(f"{head} {scalar(v)}")


def _emit_items(items: list, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    for item in items:
        if isinstance(item, dict) and item:
            sub: list[str] = []
            _emit(item, indent + 1, sub)
            out.append(f"{pad}- {sub[0][len(pad) + 2:]}")  # the first key on the dash's line
            out.extend(sub[1:])
        else:
            out.append(f"{pad}- {scalar(item)}")


def to_yaml(model: dict) -> str:
    """The YAML text of ``model`` (a dict of dicts, lists and scalars; ``__header__``: comment lines on top).

    Top-level mappings and the jobs under ``jobs:`` are separated by a blank line.
    """
    lines = [f"# {h}" for h in model.get("__header__", [])]
    body = {k: v for k, v in model.items() if k != "__header__"}
    for i, (k, v) in enumerate(body.items()):
        if i and isinstance(v, dict):
            lines.append("")
        if k == "jobs":
            lines.append("jobs:")
            for j, (jid, job) in enumerate(v.items()):
                if j:
                    lines.append("")
                lines.append(f"  {jid}:")
                _emit(job, 2, lines)
        else:
            _emit({k: v}, 0, lines)
    return "\n".join(lines) + "\n"
