"""The strict schema behind recipes and factory.toml: frozen dataclasses, checked at load.

Each TOML table is one frozen dataclass whose fields are its keys. A field's
TOML name is its Python name with ``_`` spelled ``-`` (``config_settings`` is
``config-settings``), its type comes from its annotation, and its metadata holds
the help text (``setting(default, help)``). :func:`parse_tables` checks parsed
TOML against such classes and returns the instances:

* an unknown table or key is an error with a "did you mean" hint;
* a value of the wrong type names the file, the dotted key and the expected type;
* a missing required key names the key and what it is for;
* defaults are filled in, copied per instance (lists and tables are never shared).

The same classes generate the key tables of docs/recipes.md and docs/config.md
(:func:`markdown_table`), so the documentation cannot drift from the schema.
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..errors import RecipeError

_MISSING = dataclasses.MISSING


def setting(default: Any = _MISSING, help: str = "", *, required: bool = False, kind: str = "") -> Any:
    """A dataclass field that is a TOML key: its default (copied per instance), help text (Markdown),
    and ``kind``, the type as the docs name it when the annotation says too little
    ("array of requirements")."""
    meta = {"help": help, "required": required, "kind": kind}
    if required:
        return dataclasses.field(default=None, metadata=meta)
    if isinstance(default, (list, dict)):
        value = default
        return dataclasses.field(default_factory=lambda: value.copy(), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def toml_key(field: dataclasses.Field) -> str:
    """``config_settings`` -> ``config-settings``."""
    return field.name.replace("_", "-")


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


# annotation (as written) -> (what the message says, the check)
TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "Path": ("a string", lambda v: isinstance(v, str)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "list[str]": ("a list of strings", _is_str_list),
    "dict[str, str]": (
        "a table of string values",
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
    ),
    "dict[str, str | list[str]]": (
        "a table whose values are strings or lists of strings",
        lambda v: isinstance(v, dict) and all(isinstance(x, str) or _is_str_list(x) for x in v.values()),
    ),
}
# The type names a reader of the docs knows (TOML's words).
TOML_TYPES = {
    "str": "string", "Path": "string (path)", "bool": "boolean", "int": "integer", "list[str]": "array of strings",
    "dict[str, str]": "table of strings", "dict[str, str | list[str]]": "table of strings or arrays of strings",
}


def keys(cls: type) -> dict[str, dataclasses.Field]:
    """TOML key -> field, in declaration order."""
    return {toml_key(f): f for f in dataclasses.fields(cls)}


def _annotation(field: dataclasses.Field) -> str:
    """The annotation as written (modules declaring sections use ``from __future__ import annotations``)."""
    t = field.type
    return t if isinstance(t, str) else t.__name__ if isinstance(t, type) else str(t)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_section(cls: type, given: Mapping[str, Any], *, section: str, where: str, error=RecipeError) -> Any:
    """One table -> an instance of ``cls`` (defaults filled in); raises ``error`` naming file and key."""
    fields = keys(cls)
    values: dict[str, Any] = {}
    for key, value in given.items():
        if key not in fields:
            raise error(
                f"{where}: unknown key '{section}.{key}'{did_you_mean(key, fields)}; "
                f"known keys in [{section}]: {', '.join(fields)}"
            )
        field = fields[key]
        label, check = TYPES[_annotation(field)]
        if not check(value):
            raise error(f"{where}: '{section}.{key}' must be {label}, got {type(value).__name__} {value!r}")
        if _annotation(field) == "Path":
            value = Path(value)
        values[field.name] = _copy(value)
    for key, field in fields.items():
        if field.name not in values and field.metadata.get("required"):
            raise error(f"{where}: missing required key '{section}.{key}' ({field.metadata['help']})")
    return cls(**values)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return list(value)
    return value


def parse_tables(data: Mapping[str, Any], tables: Mapping[str, type], *, where: str,
                 error=RecipeError, free: Iterable[str] = ()) -> dict[str, Any]:
    """Parsed TOML -> {table name: instance} for every table in ``tables`` (missing ones get defaults).

    ``free``: tables whose keys are the user's own (a recipe's [yanked]); they are
    known names here and checked by the caller.
    """
    known = [*tables, *free]
    for section in data:
        if section not in known:
            raise error(
                f"{where}: unknown section [{section}]{did_you_mean(section, known)}; "
                f"known sections: {', '.join(known)}"
            )
        if not isinstance(data[section], dict):
            raise error(f"{where}: '{section}' must be a table ([{section}])")
    return {section: parse_section(cls, data.get(section, {}), section=section, where=where, error=error)
            for section, cls in tables.items()}


def as_toml(instance: Any) -> dict[str, Any]:
    """An instance back as its TOML table (kebab-case keys; paths as strings)."""
    return {toml_key(f): (str(v) if isinstance(v := getattr(instance, f.name), Path) else _copy(v))
            for f in dataclasses.fields(instance)}


def default_text(field: dataclasses.Field) -> str:
    """The default as the docs show it (TOML spelling)."""
    if field.metadata.get("required"):
        return "required"
    value = field.default_factory() if field.default is _MISSING else field.default
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, (str, Path)):
        return f'`"{value}"`'
    if isinstance(value, list):
        return "`[" + ", ".join(f'"{v}"' for v in value) + "]`"
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    return f"`{value}`"


def markdown_table(cls: type) -> str:
    """The reference table of one TOML table's keys: key, type, default, meaning (docs are generated from it)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, field in keys(cls).items():
        kind = field.metadata.get("kind") or TOML_TYPES[_annotation(field)]
        cells = [f"`{key}`", kind, default_text(field), field.metadata.get("help", "")]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"
