"""``invoke publish`` and ``invoke fetch-dist``: load factory.toml, call :mod:`wheelfactory.publish`,
print what it reports (one summary line on stderr; ``--json``: the report on stdout)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import ui
from ..publish import publish
from ..publish.fetch import RECORD_SUFFIX, fetch_dist
from ..settings.factory import load_config


def publish_command(root: Path | str | None = None, *, dry_run: bool = False, force: bool = False,
                    as_json: bool = False) -> int:
    """``invoke publish``: files first, index last."""
    report = publish(load_config(root), dry_run=dry_run, force=force)
    verb = "would upload" if dry_run else "uploaded"
    rec = report.records
    ui.info(
        f"published to {report.target}: {len(report.uploaded)} {verb}, {len(report.replaced)} replaced (stale), "
        f"{report.unchanged} unchanged, {len(report.pruned)} pruned; dist records {rec['uploaded']} "
        f"{verb}, {rec['replaced']} replaced, {rec['unchanged']} unchanged, {rec['pruned']} pruned; "
        f"index {report.pages}"
        + (f"; {len(report.prune_later)} unlinked file(s) kept until publish.prune-grace has passed"
           if report.prune_later else "")
    )
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    return 0


def fetch_dist_command(root: Path | str | None = None, *, as_json: bool = False) -> int:
    """``invoke fetch-dist``: restore published wheels and records that dist/ lacks."""
    report = fetch_dist(load_config(root))
    for name in report.kept:
        ui.warn(f"dist/{name}{RECORD_SUFFIX} differs from the published record; dist/'s is kept")
    if report.without_record:
        ui.warn(f"{len(report.without_record)} published wheel(s) have no record and cannot be restored "
                f"(published before records were); a publish with publish.prune drops them: "
                + ", ".join(report.without_record[:10]) + (" …" if len(report.without_record) > 10 else ""))
    ui.info(f"fetch-dist from {report.source}: {len(report.fetched)} fetched, {report.present} already in dist/, "
            f"{len(report.kept)} kept (dist/ differs), {len(report.without_record)} without record")
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    return 0
