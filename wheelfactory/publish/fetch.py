"""``invoke fetch-dist``: bring back into dist/ what is already published.

``invoke publish`` treats dist/ as the whole truth (and, with ``publish.prune``,
removes what dist/ no longer holds). A CI publish job starts with an empty dist/
holding only the wheels of its own run, so before publishing it restores every
published wheel with its dist record: publish puts the record
(``<wheel>.json``) beside each wheel — in ``files/`` of the directory target, as
a release asset on GitHub.

Rules:

* Only what dist/ does not have is fetched. A dist/ record that differs from the
  published one (a newer local state) is left alone and reported.
* Each wheel is checked against its record (size and sha256) before it is stored
  with :func:`wheelfactory.build.store.store_wheel` (wheel first, then record, atomically).
* All or nothing: everything is downloaded into a temporary folder and checked
  first. A published record that is unreadable, or whose wheel is missing or does
  not match, stops the command with one message naming it, and dist/ is unchanged.
* A published wheel without a record (published before records were) cannot be
  restored; it is reported, because the next pruning publish would drop it.

The GitHub target reads the published index's manifest (``index-digest.json``
at the site root of ``index.url``: every wheel the index serves, superseded
builds included) and downloads each wheel, and its record beside it
(``<wheel URL>.json``), by the public URLs: no REST API request, so no token and
no share of the repository's 1,000-requests-an-hour ``GITHUB_TOKEN`` limit.
Every GET carries a fresh query string, past GitHub Pages' ``max-age=600``
cache. Superseded builds are restored, so the next publish keeps them on the
release (the issue's promise: they stay for anyone who pins their URL); wheels
the index no longer serves at all (waiting to be pruned) are not.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urljoin

import requests

from .._util.fs import atomic_copy, atomic_write_bytes, sha256_file
from .._util.http import DEFAULT_TIMEOUT, session
from ..build.store import read_record, store_wheel
from ..errors import FactoryError
from ..index import DIGEST, FILES, settings_from
from ..settings.factory import Config
from .. import ui
from .directory import destination
from .github import site_root

RECORD_SUFFIX = ".json"


class FetchDistError(FactoryError):
    """The published files cannot be restored as they are; dist/ was not changed."""


@dataclass
class FetchReport:
    source: str
    fetched: list[str] = field(default_factory=list)  # wheels restored with their records
    present: int = 0  # already in dist/, record identical
    kept: list[str] = field(default_factory=list)  # dist/ has a different record: left alone
    without_record: list[str] = field(default_factory=list)  # published wheels that cannot be restored

    def as_dict(self) -> dict:
        return {"source": self.source, "fetched": self.fetched, "present": self.present, "kept": self.kept,
                "without_record": self.without_record}


@dataclass
class Published:
    """What a publish target holds: wheel names with and without a record, and how to read them."""

    where: str
    records: list[str]  # wheel file names that have a published record
    wheels: set[str]  # wheel file names published
    read_record: Callable[[str], bytes]
    fetch_wheel: Callable[[str, Path], None]  # (wheel name, destination file)


def _directory_source(config: Config) -> Published:
    files = destination(config) / FILES
    names = sorted(p.name for p in files.iterdir() if p.is_file()) if files.is_dir() else []

    def fetch_wheel(name: str, out: Path) -> None:
        atomic_copy(files / name, out)

    return Published(
        where=str(files),
        records=[n[: -len(RECORD_SUFFIX)] for n in names if n.endswith(".whl" + RECORD_SUFFIX)],
        wheels={n for n in names if n.endswith(".whl")},
        read_record=lambda name: (files / f"{name}{RECORD_SUFFIX}").read_bytes(),
        fetch_wheel=fetch_wheel,
    )


def _github_source(config: Config) -> Published:
    """The published index's manifest (:data:`DIGEST` at the site root of ``index.url``: every wheel it
    serves, superseded builds included) and the files' public URLs: no REST API request at all, so no
    token and none of the repository's rate limit (a public repository)."""
    settings = settings_from(config)
    if not settings.url:
        raise FetchDistError(f"{config.where}: index.url is empty; set it to the index's public URL "
                             f"(https://OWNER.github.io/REPO/simple/): fetch-dist reads the published index there")
    http = session()
    site = site_root(settings.url)
    manifest_url = urljoin(site, DIGEST)
    files = _json(http, manifest_url).get("files")
    if not isinstance(files, dict):
        raise FetchDistError(f"{manifest_url} lists no files (an index published by an older wheelfactory); "
                             f"run `invoke publish` once from a dist/ that holds every published wheel; "
                             f"dist/ was not changed")
    urls = {name: urljoin(site, settings.file_url(name, depth=0)) for name in files}  # wheel -> public URL
    records: dict[str, bytes] = {}
    for name, url in urls.items():
        r = _get(http, f"{url}{RECORD_SUFFIX}", ok=(200, 404))
        if r.status_code == 200:
            records[name] = r.content

    def fetch_wheel(name: str, out: Path) -> None:
        atomic_write_bytes(out, _get(http, urls[name]).content)

    return Published(where=settings.url, records=sorted(records), wheels=set(urls),
                     read_record=records.__getitem__, fetch_wheel=fetch_wheel)


def _get(http, url: str, ok: tuple[int, ...] = (200,)):
    """GET ``url`` past caches (a fresh query string: GitHub Pages' CDN keys its cache by the whole URL)."""
    try:
        r = http.get(url, params={"wf-fresh": uuid.uuid4().hex}, timeout=DEFAULT_TIMEOUT)
    except requests.RequestException as e:
        raise FetchDistError(f"cannot reach {url} ({type(e).__name__}); check index.url and the network, "
                             f"then re-run; dist/ was not changed") from None
    if r.status_code not in ok:
        raise FetchDistError(f"{url} answered HTTP {r.status_code}; check index.url (is the index published "
                             f"there?), then re-run; dist/ was not changed")
    return r


def _json(http, url: str) -> dict:
    try:
        body = _get(http, url).json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise FetchDistError(f"{url} is not PEP 691 JSON; check index.url; dist/ was not changed")
    return body


def published_source(config: Config) -> Published:
    """What ``publish.target`` (directory or github; checked at load) holds."""
    return _github_source(config) if config.publish.target == "github" else _directory_source(config)


def _check_record(name: str, data: bytes) -> tuple[dict | None, str]:
    """The parsed record, or why it cannot be used."""
    try:
        rec = json.loads(data)
    except ValueError:
        return None, "is not valid JSON"
    if not isinstance(rec, dict) or rec.get("filename") != name:
        return None, f"names {rec.get('filename') if isinstance(rec, dict) else None!r}, not {name!r}"
    if not isinstance(rec.get("sha256"), str) or not isinstance(rec.get("size"), int):
        return None, "has no sha256/size"
    return rec, ""


def fetch_dist(config: Config) -> FetchReport:
    """Restore into dist/ every published wheel (with its record) that dist/ lacks, all or nothing.

    Raises FetchDistError naming each published file that cannot be restored
    (unreadable record, missing or mismatching wheel); dist/ is then unchanged.
    """
    dist = config.paths.dist
    local = {p.name[: -len(RECORD_SUFFIX)]: p for p in dist.glob("*.whl" + RECORD_SUFFIX)} if dist.is_dir() else {}
    for path in local.values():
        read_record(path)  # a damaged record in dist/ is named before anything is fetched
    source = published_source(config)
    report = FetchReport(source=source.where)
    report.without_record = sorted(source.wheels - set(source.records))
    problems: list[str] = []
    todo: list[tuple[Path, dict]] = []
    dist.parent.mkdir(parents=True, exist_ok=True)
    # The temporary folder sits beside dist/ (same file system); it is removed whatever happens.
    with tempfile.TemporaryDirectory(prefix=".fetch-dist-", dir=dist.parent) as tmp:
        for name in source.records:
            data = source.read_record(name)
            if name in local:
                if local[name].read_bytes() == data:
                    report.present += 1
                else:
                    report.kept.append(name)
                continue
            rec, why = _check_record(name, data)
            if rec is None:
                problems.append(f"  - {name}{RECORD_SUFFIX} (published record) {why}")
                continue
            if name not in source.wheels:
                problems.append(f"  - {name}: the published record has no wheel beside it")
                continue
            wheel = Path(tmp) / name
            source.fetch_wheel(name, wheel)
            size, sha = wheel.stat().st_size, sha256_file(wheel)
            if size != rec["size"] or sha != rec["sha256"]:
                problems.append(f"  - {name}: the published wheel does not match its record "
                                f"(sha256 {sha[:12]}…, {size} bytes; the record says {rec['sha256'][:12]}…, "
                                f"{rec['size']} bytes)")
                continue
            existing = dist / name
            if existing.exists() and sha256_file(existing) != sha:
                problems.append(f"  - {existing} has no record and differs from the published wheel; "
                                f"remove it (an interrupted store) and re-run")
                continue
            todo.append((wheel, rec))
            ui.info(f"  fetched {name} ({size / 1e6:.1f} MB)")
        if problems:
            raise FetchDistError(
                f"the published files at {source.where} cannot be restored as they are:\n" + "\n".join(problems)
                + "\n  fix: re-publish these wheels from a dist/ that holds them (or rebuild them: they get a "
                "new build tag), or remove them from the publish target; dist/ was not changed"
            )
        if todo:
            dist.mkdir(parents=True, exist_ok=True)
        for wheel, rec in todo:
            store_wheel(dist, wheel, rec)
            report.fetched.append(wheel.name)
    return report


__all__ = ["fetch_dist", "FetchReport", "FetchDistError", "RECORD_SUFFIX"]
