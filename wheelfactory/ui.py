"""Terminal output: one line per stage with its elapsed time, tables, errors.

Everything goes to stderr through one rich Console so progress never mixes
with machine-readable output (e.g. ``--json``) on stdout.
"""

from __future__ import annotations

import os
import re

from rich.console import Console
from rich.markup import escape

console = Console(stderr=True, highlight=False, soft_wrap=True)

# Token-shaped strings are masked before anything reaches the terminal or a log.
_SECRET_PATTERNS = [
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"github_pat_[A-Za-z0-9_]{20,}"),
]


def mask_secrets(text: str) -> str:
    for name in ("GITHUB_TOKEN", "GH_TOKEN", "WHEELFACTORY_TOKEN"):
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    for pat in _SECRET_PATTERNS:
        text = pat.sub("***", text)
    return text


def stage(recipe: str, name: str, seconds: float, detail: str = "") -> None:
    """The one line a finished stage prints."""
    extra = f"  {escape(detail)}" if detail else ""
    console.print(f"[bold]{escape(recipe)}[/bold] {name:<8} {seconds:7.1f}s{extra}")


def info(msg: str) -> None:
    console.print(mask_secrets(msg))


# Messages are plain text: "[build]" in a message must print as is, not as markup.
def warn(msg: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {escape(mask_secrets(msg))}")


def error(msg: str) -> None:
    console.print(f"[red bold]error:[/red bold] {escape(mask_secrets(msg))}")
