"""``invoke runners.register / status / drain / restart``: load factory.toml, call
:mod:`wheelfactory.ci.runners`, print what it reports."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import requests
from rich.table import Table

from .. import ui
from ..ci import runners
from ..settings.factory import load_config

Root = Path | str | None


def register(root: Root = None, *, jit: bool = False, replace: bool = False, name: str = "", start: bool = True,
             hostname: str | None = None, http: requests.Session | None = None) -> int:
    """Register this board's runner once (``jit``: run one just-in-time runner)."""
    reg = runners.register(load_config(root), jit=jit, replace=replace, name=name, start=start,
                           hostname=hostname, http=http)
    if not reg.jit:
        ui.info(f"registered {reg.name} (id {reg.runner_id}) for {reg.scope} with labels {', '.join(reg.labels)}")
    return 0


def status(root: Root = None, *, as_json: bool = False, hostname: str | None = None,
           http: requests.Session | None = None) -> int:
    """The runners of ``[runners].scope`` as a table (or JSON on stdout), and label sets nobody serves."""
    report = runners.status(load_config(root), hostname=hostname, http=http)
    rows = report.rows()
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        ui.console.print(_table(report.scope, rows))
        ui.info(f"{len(rows)} runners: {sum(1 for x in rows if x['status'] == 'online')} online, "
                f"{sum(1 for x in rows if x['busy'])} busy")
    for key, wanted in report.uncovered.items():
        ui.warn(f"no online runner carries all of {', '.join(wanted)} ({key}): those build jobs would "
                f"queue until one does")
    return 0


def _table(scope: str, rows: list[dict]) -> Table:
    table = Table(title=f"runners of {scope}", title_justify="left")
    for col in ("name", "id", "status", "busy", "labels"):
        table.add_column(col, overflow="fold")
    for x in rows:
        state = "[yellow]busy[/]" if x["busy"] else "idle"
        online = "[green]online[/]" if x["status"] == "online" else "[dim]offline[/]"
        mark = " (this board)" if x["this_board"] else ""
        table.add_row(x["name"] + mark, str(x["id"]), online, state, ", ".join(x["labels"]))
    return table


def drain(root: Root = None, *, name: str = "", hostname: str | None = None, http: requests.Session | None = None,
          sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> int:
    """Take the factory's label off the runner, wait until it is idle (bounded), then stop its service."""
    config = load_config(root)
    name = runners.drain(config, name=name, hostname=hostname, http=http, sleep=sleep, clock=clock)
    ui.info(f"{name} is idle and its service ({config.runners.service_name}) is stopped; its label "
            f"{config.runners.factory_label} stays off until `invoke runners.restart`")
    return 0


def restart(root: Root = None, *, name: str = "", hostname: str | None = None, http: requests.Session | None = None,
            sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> int:
    """Drain, restart the runner's service, wait until it is online again, and put the factory's label back."""
    config = load_config(root)
    name = runners.restart(config, name=name, hostname=hostname, http=http, sleep=sleep, clock=clock)
    ui.info(f"{name} restarted, online again, and carries {config.runners.factory_label} again")
    return 0
