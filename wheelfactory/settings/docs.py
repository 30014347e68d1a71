"""The key tables of docs/recipes.md and docs/config.md, generated from the settings dataclasses.

A docs file marks each generated table with a pair of HTML comments::

    <!-- generated: recipe [build] -->
    | key | type | default | meaning |
    …
    <!-- end generated -->

:func:`render` refills every such block from the schema (``recipe`` tables from
settings/recipe.py, ``factory`` tables from settings/factory.py); ``invoke docs``
writes the files and ``invoke docs --check`` (and a unit test) fails when they
drift from the schema.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError
from . import factory, recipe
from .schema import markdown_table

DOCS = ("docs/recipes.md", "docs/config.md")
SOURCES = {"recipe": {**recipe.TABLES, **recipe.ENTRY_TABLES}, "factory": factory.TABLES}
_BLOCK = re.compile(r"(<!-- generated: (\w+) \[([\w-]+)\] -->\n)(.*?)(<!-- end generated -->)", re.S)


def render(text: str, *, where: str = "") -> str:
    """``text`` with every generated block refilled from the schema; an unknown table is a ConfigError."""
    def fill(m: re.Match) -> str:
        source, table = m[2], m[3]
        cls = SOURCES.get(source, {}).get(table)
        if cls is None:
            raise ConfigError(f"{where}: the generated block names {source} [{table}], which the schema "
                              f"does not have; known: {', '.join(f'{s} [{t}]' for s in SOURCES for t in SOURCES[s])}")
        return m[1] + markdown_table(cls) + m[5]
    return _BLOCK.sub(fill, text)


def stale(root: Path) -> list[Path]:
    """The docs files under ``root`` whose generated tables differ from the schema."""
    out = []
    for rel in DOCS:
        path = root / rel
        text = path.read_text()
        if render(text, where=str(path)) != text:
            out.append(path)
    return out


def write(root: Path) -> list[Path]:
    """Refill the generated tables of the docs files under ``root``; returns the files changed."""
    changed = stale(root)
    for path in changed:
        path.write_text(render(path.read_text(), where=str(path)))
    return changed
