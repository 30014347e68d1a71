"""``invoke index``, ``invoke serve`` and ``invoke check-index``: settings in, reports out.

The library (``wheelfactory.index``) builds, serves and checks; this module loads
the config, calls it and prints what the user reads.
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import ui
from ..errors import FactoryError
from ..index import build_index, load_state
from ..index.check import IndexCheckFailed, check_index
from ..index.render import PIP_INSTALL, UV_INSTALL
from ..index.serve import IndexServer
from ..settings.factory import load_config


def index_command(root: Path | str | None = None, *, full: bool = False, as_json: bool = False) -> int:
    """``invoke index``: regenerate index/ from dist/ and report what changed (``as_json``:
    also the report as JSON on stdout)."""
    config = load_config(root)
    report = build_index(config, full=full)  # (warns about stale builds as it finds them)
    for level, text in report.lines():
        if level != "warn":
            ui.info(text)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    return 0


def serve_command(root: Path | str | None = None, *, host: str = "127.0.0.1", port: int = 8000,
                  directory: str | None = None) -> int:
    """``invoke serve``: serve index/ (or ``directory``) on ``host``:``port`` until interrupted."""
    config = load_config(root)
    where = Path(directory) if directory else config.paths.index
    if not (where / "simple" / "index.html").is_file():
        raise FactoryError(f"{where} holds no index (no simple/index.html); run `invoke index` first")
    state = load_state(where) or {}
    if state.get("files_base"):
        ui.warn(f"the pages link to files at {state['files_base']}; only the pages are served here")
    if host not in ("127.0.0.1", "localhost", "::1"):
        ui.warn(f"serving on {host}: reachable from other machines")
    try:
        server = IndexServer(where, host, port)
    except OSError as e:
        raise FactoryError(f"cannot listen on {host}:{port} ({e.strerror}); pick another port with --port") from None
    ui.info(f"serving {where} at {server.url}")
    for command in (PIP_INSTALL, UV_INSTALL):
        ui.info("  " + command.format(url=f"{server.url}simple/", name="PACKAGE"))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def check_index_command(root: Path | str | None = None, *, target: str | None = None, quick: bool = False,
                        jobs: int = 8) -> int:
    """``invoke check-index [TARGET]``: TARGET defaults to index.url, else the local index/;
    IndexCheckFailed lists every broken link."""
    if not target:
        config = load_config(root)
        target = config.index.url or str(config.paths.index)
    result = check_index(target, quick=quick, jobs=jobs)
    summary = f"{result.projects} projects, {result.files} files, {result.links} other links"
    if not result.ok:
        listed = "\n".join(f"  - {p}" for p in result.problems)
        raise IndexCheckFailed(f"{target}: {len(result.problems)} broken link(s) ({summary}):\n{listed}")
    ui.info(f"{target}: every link resolves and matches ({summary})")
    return 0
