"""``invoke docs``: refill the generated key tables of docs/recipes.md and docs/config.md."""

from __future__ import annotations

from pathlib import Path

from .. import ui
from ..errors import FactoryError
from ..settings import docs


def docs_command(root: Path, *, check: bool = False) -> int:
    """Write the generated tables (or with ``check``, fail when a file is stale); returns the exit status."""
    if check:
        stale = docs.stale(root)
        if stale:
            raise FactoryError(f"{', '.join(str(p.relative_to(root)) for p in stale)}: the key tables differ "
                               f"from the schema in wheelfactory/settings/; run `invoke docs`")
        ui.info("docs: the key tables match the schema")
        return 0
    for path in docs.write(root):
        ui.info(f"wrote {path.relative_to(root)}")
    return 0
