"""A small strict schema checker shared by recipes and the factory config.

Unknown keys are errors with a "did you mean" hint; wrong types name the file,
the dotted key and the expected type. Defaults are filled in so callers can
index the result without checks.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import RecipeError


@dataclass(frozen=True)
class Field:
    type: str  # one of the TYPES keys below
    default: Any = None
    help: str = ""
    required: bool = False


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "list[str]": ("a list of strings", _is_str_list),
    "dict[str,str]": (
        "a table of string values",
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    ),
    "dict[str,str|list[str]]": (
        "a table whose values are strings or lists of strings",
        lambda v: isinstance(v, dict)
        and all(isinstance(x, str) or _is_str_list(x) for x in v.values()),
    ),
}

Schema = dict[str, dict[str, Field]]  # section -> key -> Field


def did_you_mean(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def validate(data: dict, schema: Schema, *, where: str, error=RecipeError) -> dict:
    """Check ``data`` (parsed TOML) against ``schema``; return a full copy with defaults."""
    out: dict[str, dict[str, Any]] = {}
    for section in data:
        if section not in schema:
            raise error(
                f"{where}: unknown section [{section}]{did_you_mean(section, schema)}; "
                f"known sections: {', '.join(schema)}"
            )
        if not isinstance(data[section], dict):
            raise error(f"{where}: '{section}' must be a table ([{section}])")
    for section, fields in schema.items():
        given = data.get(section, {})
        result: dict[str, Any] = {}
        for key, value in given.items():
            if key not in fields:
                raise error(
                    f"{where}: unknown key '{section}.{key}'{did_you_mean(key, fields)}; "
                    f"known keys in [{section}]: {', '.join(fields)}"
                )
            field = fields[key]
            label, check = TYPES[field.type]
            if not check(value):
                raise error(
                    f"{where}: '{section}.{key}' must be {label}, got {type(value).__name__} {value!r}"
                )
            result[key] = value
        for key, field in fields.items():
            if key not in result:
                if field.required:
                    raise error(f"{where}: missing required key '{section}.{key}' ({field.help})")
                d = field.default
                result[key] = d.copy() if isinstance(d, (list, dict)) else d
        out[section] = result
    return out
