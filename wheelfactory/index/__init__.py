"""dist/ records -> a static package index (``invoke index``), and the tools around it.

Owns ``paths.index``. It may import ``wheelfactory.settings``, ``wheelfactory._util``,
``wheelfactory.errors`` and ``wheelfactory.ui`` (never build/, publish/ or cli/: it
reads the store's JSON records as files).

The index is derived from the JSON records in dist/ alone (the wheels are never
re-opened): every page, hash and ``.metadata`` file comes from a record. What is
written under ``paths.index`` (default ``index/``)::

    simple/index.html            PEP 503 root (PEP 629 meta: repository version 1.1)
    simple/index.json            PEP 691 root (application/vnd.pypi.simple.v1+json)
    simple/NAME/index.html       PEP 503 links: #sha256, data-requires-python,
                                 data-dist-info-metadata + data-core-metadata (PEP 658/714),
                                 data-yanked (PEP 592)
    simple/NAME/index.json       PEP 691 + PEP 700 (versions, size, upload-time)
    files/WHEEL.metadata         PEP 658 core metadata, beside the wheel's link target
    files/WHEEL                  the wheel itself (co-hosted mode only; a copy or reflink, never a hard link)
    files/WHEEL.log              the build log (``index.copy-logs``)
    index.html                   human root: projects, latest version, build date
    index-digest.json            the pages' content digest, written last (render.DIGEST)
    project/NAME/index.html      human page: install command, apt-get line, tags, sizes, log
    .wheelfactory/state.marshal  what this index holds (not published; see state.py)

Links are relative (``../../files/WHEEL``) when the files are co-hosted with the
index, or absolute (``index.files-base-url``/WHEEL) when the files live elsewhere,
e.g. on a GitHub release. Everything that belongs to a wheel (``.metadata``,
``.log``) lives beside it, so one base URL serves them all.

Modules, each with one job:

    records.py  a record -> a page entry (checked), its .metadata bytes, the yanks
    render.py   page entries -> the PEP 503/691 and human pages (pure)
    state.py    the saved state, and the scan (list + stat) of dist/
    apply.py    the staging folder, the commit file (journal), recovery
    update.py   one update: the projects to render, the new state, the Report
    serve.py    ``invoke serve``: PEP 691 content negotiation on 127.0.0.1
    check.py    ``invoke check-index``: fetch every link of a published index

Every file is known by its sha256. A wheel whose file name was indexed before
with different content is reported as *replaced* (a stale build must never hide
behind an old name), two names with the same content as duplicates.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from .. import ui
from ..build import store
from ..settings.factory import Config
from .apply import Stage, clone_file, commit, recover, staging_dir
from .records import IndexProblem, Yanks, entry_from_record, metadata_bytes
from .render import (DIGEST, FILES, FORMAT, HTML_TYPE, JSON_TYPE, PROJECT, PROJECT_FIELD, SIMPLE, Settings,
                     files_base_for, project_of_file)
from .state import (STATE, STATE_DIR, check_copies, indexed_wheels, load_state, scan_dist, stat_key, stat_keys,
                    state_bytes)
from .update import Report, Run, stage_update

__all__ = [
    "DIGEST", "FILES", "FORMAT", "HTML_TYPE", "JSON_TYPE", "PROJECT", "PROJECT_FIELD", "SIMPLE", "STATE", "STATE_DIR",
    "files_base_for", "project_of_file",
    "IndexProblem", "Report", "Settings", "build_index", "clone_file", "entry_from_record", "github_download_base",
    "indexed_wheels", "load_state", "metadata_bytes", "settings_from", "stat_key",
]


def github_download_base(config: Config) -> str:
    """Where a GitHub release serves its assets (``https://HOST/OWNER/REPO/releases/download/TAG``),
    derived from ``publish.api-url``, ``publish.repository`` and ``publish.release-tag`` (a tag with
    ``{project}``, one release per project, gives a base with ``{project}``: ``Settings.file_url``
    fills it in per file)."""
    pub = config.publish
    api = pub.api_url.rstrip("/")
    if api == "https://api.github.com":
        web = "https://github.com"
    elif api.endswith("/api/v3"):
        web = api[: -len("/api/v3")]
    else:
        raise IndexProblem(
            f"factory.toml: cannot tell where release files are downloaded from for publish.api-url = {api!r}; "
            f"set index.files-base-url (e.g. https://HOST/OWNER/REPO/releases/download/TAG)"
        )
    if not pub.repository:
        raise IndexProblem(
            "factory.toml: publish.target is 'github' but publish.repository is empty; "
            "set it to OWNER/NAME (or set index.files-base-url)"
        )
    return f"{web}/{pub.repository}/releases/download/{pub.release_tag}"


def settings_from(config: Config) -> Settings:
    """The page settings of factory.toml's ``[index]`` (and ``[publish]`` for the GitHub
    files base); IndexProblem for a files base that is not an absolute URL."""
    idx = config.index
    base = idx.files_base_url.rstrip("/")
    if not base and config.publish.target == "github":
        base = github_download_base(config)  # wheels live on the release, not beside the pages
    if base and not re.match(r"^https?://", base):
        raise IndexProblem(
            f"factory.toml: index.files-base-url {idx.files_base_url!r} must be an absolute http(s) URL, "
            f"or empty when the files are co-hosted with the index"
        )
    url = idx.url
    if url and not url.endswith("/"):
        url += "/"
    attested_by = config.publish.repository if config.publish.target == "github" else ""
    return Settings(title=idx.title, url=url, files_base=base, copy_logs=idx.copy_logs, attested_by=attested_by)


def build_index(
    config: Config,
    *,
    full: bool = False,
    out: Path | None = None,
    exclude: Iterable[str] = (),
    quiet: bool = False,
    workers: int | None = None,
    raw_io: bool = True,
    pack_summaries: bool = True,
) -> Report:
    """Bring the index (``out``, default ``paths.index``) up to date with dist/; return the
    Report (cli/index.py prints it). A stale build under a known file name and duplicate
    contents are warned about as they are found, unless ``quiet``.

    ``full`` rewrites every file (it also mends a damaged state). ``exclude`` leaves
    the named wheels out (publish uses this for an interim index while a replaced
    release asset is re-uploaded). Bad input raises IndexProblem with the file and the
    fix, and leaves the index as it was.

    ``workers``: processes that render a big generation (update.PARALLEL_MIN_RECORDS
    records or more); None: one per CPU this process may use (at most 8); 1: none.
    ``raw_io``: read records and write files with os.open/os.read/os.write instead of
    buffered files. ``pack_summaries``: keep each project's record summaries in the
    state as one marshal string (``state.Summaries``). (The three are speed devices;
    benchmarks/bench_index.py switches each off to measure what it saves.)
    """
    t0 = time.perf_counter()
    settings = settings_from(config)
    live = (out or config.paths.index).resolve()
    dist = config.paths.dist
    report = Report(index=live, mode=settings.files_base or "co-hosted")
    with store.path_lock(config.paths.build / ".locks", live, "index"):
        report.recovered = recover(live)
        old = _old_state(live, full)
        report.full = full = full or old is None or old["settings"] != settings.key()
        scan = scan_dist(dist)
        scan.compare(old["records"] if old else {}, reread=full)
        excluded = frozenset(exclude) & scan.stats.keys()
        damaged, touched = check_copies(live, old, scan.stats.keys() - excluded) if old else ([], {})
        report.restored = [{k: d[k] for k in ("path", "sha256", "expected")} for d in damaged]
        staging = staging_dir(live)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        stage = Stage(staging, raw_io=raw_io)
        try:
            yanks = Yanks(config, cache=old["recipe_cache"] if old else None)
            run = Run(dist, config.root, settings, yanks, full, excluded, frozenset(d["filename"] for d in damaged),
                      stage, workers or min(8, _cpus()), pack_summaries)
            deletes, state = stage_update(run, live, old, scan, report)
            state["copies"] = _copies(old, touched, stage, deletes, full)
            if state != old:  # (only the state changes when, say, a record left out of the index left dist/)
                stage.write(STATE, state_bytes(state))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if not live.exists():
            os.rename(staging, live)  # a first index: one atomic rename
        elif stage.moves() or deletes:
            commit(stage, live, deletes)
        else:
            shutil.rmtree(staging, ignore_errors=True)  # nothing changed: the index stays byte for byte
    report.seconds = time.perf_counter() - t0
    if not quiet:
        for text in report.warnings():
            ui.warn(text)
    return report


def _copies(old: dict | None, touched: dict[str, int], stage: Stage, deletes: list[str], full: bool) -> dict[str, int]:
    """The state's ``copies`` after this update: each file in files/ -> its stat key as
    staged (a rename keeps mtime, size and inode)."""
    copies = {} if full or old is None else dict(old.get("copies", {}))
    copies.update(touched)
    for rel in deletes:
        copies.pop(rel.removeprefix(f"{FILES}/"), None)
    staged = [rel.removeprefix(f"{FILES}/") for rel in stage.groups[FILES]]
    if staged:
        fd = os.open(stage.dir / FILES, os.O_RDONLY | os.O_DIRECTORY)
        try:
            copies.update(zip(staged, stat_keys(staged, fd)))
        finally:
            os.close(fd)
    return copies


def _cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _old_state(live: Path, full: bool) -> dict | None:
    """The state of the live index; None for a new index, or one in an older format."""
    old = load_state(live)
    if old is None and live.exists() and any(live.iterdir()):
        raise IndexProblem(
            f"{live} exists but was not written by `invoke index` (no {STATE}); "
            f"move it away or point paths.index elsewhere; nothing was changed"
        )
    if old is not None and old["format"] is None and not full:
        raise IndexProblem(f"{live / STATE}: damaged (the index's state); rebuild the index "
                           f"with `invoke index --full`; nothing was changed")
    return old if old is not None and old["format"] == FORMAT else None
