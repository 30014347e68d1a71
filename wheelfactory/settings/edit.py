"""Editing a recipe file as text: values change, comments and layout stay.

Pure functions, text in and text out. ``invoke bump`` uses them to move a
recipe to a new version without rewriting the file through a TOML writer
(which would drop comments). Every edit is checked by parsing the result
again: it must be the old TOML with exactly the asked changes, else
:class:`EditMismatch` and nothing is written.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from collections.abc import Mapping

from ..errors import RecipeError

_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$")


class EditMismatch(RecipeError):
    """The edited text is not the old TOML with exactly the asked change (a layout the editor does not handle)."""


class InvalidEdit(EditMismatch):
    """The edited text is not valid TOML."""


def _section_span(lines: list[str], section: str) -> tuple[int, int] | None:
    """(first line after the header, end) of a ``[section]`` table, or None."""
    start = None
    for i, line in enumerate(lines):
        m = _TABLE.match(line)
        if start is None:
            if m and m.group(1) == section:
                start = i + 1
        elif m or line.lstrip().startswith("[["):
            return start, i
    return (start, len(lines)) if start is not None else None


def set_string(text: str, section: str, key: str, value: str) -> str:
    """``text`` with ``[section] key = "value"``: the value replaced in place (quote style,
    spacing and trailing comment kept), added after the table's last key, or a new table.

    Raises RecipeError when the key holds something other than a one-line string.
    """
    lines = text.splitlines(keepends=True)
    span = _section_span(lines, section)
    quoted = json.dumps(value)
    if span is None:
        sep = "" if not text or text.endswith("\n") else "\n"
        return f"{text}{sep}\n[{section}]\n{key} = {quoted}\n"
    start, end = span
    pat = re.compile(rf'^(\s*{re.escape(key)}\s*=\s*)(["\'])([^"\'\\]*)\2(\s*(?:#.*)?)$')
    for i in range(start, end):
        body = lines[i].rstrip("\r\n")
        m = pat.match(body)
        if m:
            newline = lines[i][len(body):]
            lines[i] = f"{m.group(1)}{m.group(2)}{value}{m.group(2)}{m.group(4)}{newline}"
            return "".join(lines)
        if re.match(rf"^\s*{re.escape(key)}\s*=", body):
            raise RecipeError(f"'{section}.{key}' is not a simple one-line string; edit it by hand")
    # Not there: insert after the last non-blank, non-comment line of the table.
    last = start
    for i in range(start, end):
        if lines[i].strip() and not lines[i].lstrip().startswith("#"):
            last = i + 1
    if last > 0 and not lines[last - 1].endswith("\n"):
        lines[last - 1] += "\n"
    lines.insert(last, f"{key} = {quoted}\n")
    return "".join(lines)


def replace_in_section_strings(text: str, section: str, old: str, new: str, *, key: str) -> str:
    """Replace the quoted string ``"old"`` by ``"new"`` on the ``key = …`` line of ``[section]``
    (e.g. the version inside ``env = { PYTORCH_BUILD_VERSION = "2.15.0" }``)."""
    lines = text.splitlines(keepends=True)
    span = _section_span(lines, section)
    if span is None:
        return text
    for i in range(*span):
        if re.match(rf"^\s*{re.escape(key)}\s*=", lines[i]):
            for q in ('"', "'"):
                lines[i] = lines[i].replace(f"{q}{old}{q}", f"{q}{new}{q}")
    return "".join(lines)


def _parse_edited(text: str, where: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidEdit(f"{where}: the edited recipe is not valid TOML ({e}); nothing was changed") from None


def set_strings(text: str, changes: Mapping[str, str], *, where: str) -> str:
    """``text`` with string values changed, by dotted key: ``{"package.version": "1.1"}``.

    ``SECTION.KEY`` is set with :func:`set_string`; ``SECTION.TABLE.KEY`` (a
    value inside a one-line inline table such as ``build.env``) is changed in
    place by its old value. The result must parse to the old TOML with exactly
    these changes, else EditMismatch (InvalidEdit when it does not parse);
    RecipeError from :func:`set_string`.
    """
    before = tomllib.loads(text)
    expected = copy.deepcopy(before)
    for dotted, value in changes.items():
        *tables, key = dotted.split(".")
        if len(tables) == 1:
            text = set_string(text, tables[0], key, value)
        else:
            old = _lookup(before, tables).get(key)
            if isinstance(old, str):
                text = replace_in_section_strings(text, tables[0], old, value, key=tables[1])
        table = expected
        for name in tables:
            table = table.setdefault(name, {})
        table[key] = value
    if _parse_edited(text, where) != expected:
        raise EditMismatch(f"{where}: the edit would change more than {', '.join(changes)}")
    return text


def _lookup(data: dict, tables: list[str]) -> dict:
    for name in tables:
        data = data.get(name, {}) if isinstance(data, dict) else {}
    return data if isinstance(data, dict) else {}
