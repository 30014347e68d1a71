"""One update of the index: which projects to render, their files staged, the new state
and the report of what changed.

Work is done per project. A project is rendered again when one of its records is
new, changed or gone, or the yank of one of its wheels changed; its pages list
every wheel, so all of its records are read then. An unchanged record of an
unchanged project costs nothing but its stat (``state.scan_dist``).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

from .. import __version__
from .apply import Stage, strays
from .records import (IndexProblem, Summary, Yanks, entry_from_record, metadata_bytes, project_of, read_record,
                      summary_of)
from .render import (CATALOG_STATUS, DIGEST, FILES, FORMAT, PROJECT, SIMPLE, Settings, human_root_row,
                     latest_version, render_human_project, render_human_root, render_simple_project,
                     render_simple_root, sort_files, supersede)
from .state import Scan, Summaries, empty_state

# A generation of at least this many records (a first index, a full rebuild) is spread
# over worker processes; below it, starting them costs more than they save.
PARALLEL_MIN_RECORDS = 2000


@dataclass
class Report:
    """What an update did (``as_dict`` is the ``invoke index --json`` document)."""

    index: Path
    mode: str  # "co-hosted" or the files base URL
    added: list[str] = field(default_factory=list)
    replaced: list[dict] = field(default_factory=list)  # {filename, old_sha256, new_sha256}
    removed: list[str] = field(default_factory=list)
    restored: list[dict] = field(default_factory=list)  # {path, sha256 (None: missing), expected}: copies mended
    duplicates: list[list[str]] = field(default_factory=list)  # names sharing one sha256
    projects_written: list[str] = field(default_factory=list)
    files_written: int = 0  # wheels whose own files were (re)staged
    projects: int = 0
    wheels: int = 0
    full: bool = False
    recovered: bool = False
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.replaced or self.removed or self.restored or self.projects_written)

    def as_dict(self) -> dict:
        return {
            "index": str(self.index),
            "links": self.mode,
            "added": self.added,
            "replaced": self.replaced,
            "removed": self.removed,
            "restored": self.restored,
            "duplicates": self.duplicates,
            "projects_written": self.projects_written,
            "files_written": self.files_written,
            "projects": self.projects,
            "wheels": self.wheels,
            "full": self.full,
            "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[tuple[str, str]]:
        """The report in words, as (``ui`` function name, rich text) pairs."""
        out = [("info", f"  [green]added[/green]     {fn}") for fn in self.added]
        out += [("warn", f"{x['filename']}: same file name, different content (sha256 {x['old_sha256'][:12]}… -> "
                         f"{x['new_sha256'][:12]}…); the index now serves the newer build") for x in self.replaced]
        out += [("info", f"  [red]removed[/red]   {fn}") for fn in self.removed]
        out += [("warn", f"{x['path']}: " + (f"damaged or replaced (sha256 {x['sha256'][:12]}…, should be "
                                             f"{x['expected'][:12]}…)" if x["sha256"] else "missing")
                 + "; restored from dist/") for x in self.restored]
        out += [("warn", f"same content under {len(names)} names: {', '.join(names)}") for names in self.duplicates]
        what = "rebuilt" if self.full else "updated" if self.changed else "up to date"
        out.append(("info",
                    f"index {what}: {self.index} — {self.projects} projects, {self.wheels} wheels; "
                    f"{len(self.added)} added, {len(self.replaced)} replaced, {len(self.removed)} removed; "
                    f"{len(self.projects_written)} project pages written in {self.seconds:.2f}s (links: {self.mode})"))
        return out

    def warnings(self) -> list[str]:
        """What the user must see even when another command (publish) built the index."""
        return [text for level, text in self.lines() if level == "warn"]


@dataclass(frozen=True)
class Run:
    """What rendering the projects of one update needs."""

    dist: Path
    root: Path  # the project root (relative build log paths start here)
    settings: Settings
    yanks: Yanks
    full: bool  # every file is (re)written
    excluded: frozenset  # wheels left out of the index (their records are still read)
    repair: frozenset  # wheels whose copies in files/ are damaged or missing: all of their files are staged again
    stage: Stage
    workers: int  # processes that render a big generation (1: this one only)
    pack_summaries: bool  # keep each project's summaries as one marshal string (state.Summaries)


class Task(NamedTuple):
    """One project to render: its records in dist/, which of them changed since the
    index was made, and what the index held of each before: (sha256, .metadata sha256, log)."""

    name: str
    filenames: list[str]
    changed: frozenset
    before: dict[str, tuple]


class Done(NamedTuple):
    """A rendered project."""

    name: str
    records: list[tuple]  # (filename, summary, log (path, size) or None, yank reason, indexed, files written)
    project: dict | None  # its entry in the state's "projects"; None: it left the index
    mismatched: list[str]  # wheels whose size differs from their record


def stage_update(run: Run, live: Path, old: dict | None, scan: Scan, report: Report) -> tuple[list[str], dict]:
    """Stage every changed file of the index (``old``: its state, None for a new index);
    fill ``report``; return the paths to delete and the new state (not staged yet)."""
    old = old or empty_state()
    catalog = catalog_status(run.root)  # checked before anything is rendered
    in_dist = scan.stats
    indexed_before = old["records"].keys() - set(old["excluded"])
    indexed_now = in_dist.keys() - run.excluded
    held = Summaries(old["summaries"])
    tasks = _tasks(run, old, held, scan, indexed_before, indexed_now)
    done = _render_all(run, tasks)
    state, deletes = _merge(run, old, held, in_dist, indexed_before, indexed_now, done, report)
    projects = state["projects"]

    # Root pages: written when their bytes change (the simple root lists names only).
    pages = [("index.html", render_human_root([p["row"] for p in projects.values()],
                                              sum(len(p["wheels"]) for p in projects.values()), run.settings,
                                              catalog))]
    if run.full or list(projects) != list(old["projects"]):
        pages += zip((f"{SIMPLE}/index.html", f"{SIMPLE}/index.json"), render_simple_root(list(projects)))
    for rel, data in pages:
        if run.full or _read_or_none(live / rel) != data:
            run.stage.write(rel, data)
    # The digest marker last: when a host serves it, it serves the pages it describes.
    state["digest"] = index_digest(projects, pages[0][1])
    if run.full or state["digest"] != old.get("digest"):
        run.stage.write(DIGEST, digest_bytes(state, report))

    # Deletions: files of wheels that left the index, pages of projects that did.
    for fn in report.removed:
        deletes += [f"{FILES}/{fn}.metadata", f"{FILES}/{fn}", f"{FILES}/{fn}.log"]
    deletes += [f"{top}/{name}" for name in old["projects"] if name not in projects for top in (SIMPLE, PROJECT)]
    if run.full and live.exists():
        deletes += strays(live, run.stage)
    return deletes, state


def catalog_status(root: Path) -> list[dict]:
    """The rows of ``invoke prove``'s docs/catalog-status.json under ``root`` ([] without one);
    IndexProblem names a file that is not that list, and the fix."""
    path = root / CATALOG_STATUS
    try:
        rows = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (ValueError, OSError) as e:
        rows = e
    keys = {"recipe", "version", "level", "reached", "size", "seconds", "date", "reason"}
    if not isinstance(rows, list) or not all(isinstance(r, dict) and keys <= r.keys() for r in rows):
        raise IndexProblem(f"{path}: not the list of rows `invoke prove` writes (each with "
                           f"{', '.join(sorted(keys))}); run `invoke prove` again, or restore it with git")
    return rows


def _tasks(run: Run, old: dict, held: Summaries, scan: Scan, indexed_before: set[str],
           indexed_now: set[str]) -> list[Task]:
    """The projects to render, each with all of its records."""
    if run.full:
        members: dict[str, list[str]] = {}
        for fn in scan.stats:
            members.setdefault(project_of(fn), []).append(fn)
    else:
        # Records the index did not list: new or changed ones, and ones excluded before.
        extra = scan.misses | (indexed_now - indexed_before) | run.repair
        removed = indexed_before - indexed_now
        affected = {project_of(fn) for fn in extra | removed}
        if run.yanks.key(old["recipes"]) != old["yank_key"]:
            # The yanks changed: every wheel's reason is checked (its page is rendered only if it changed).
            for fn in indexed_now - scan.misses:
                s = Summary(*held.get(fn))
                if run.yanks.reason(fn, s.name, s.version, s.recipe, s.yanked) != old["yanked"].get(fn):
                    affected.add(s.name)
        pages = old["projects"]
        members = {name: [fn for fn in pages[name]["wheels"] if fn in scan.stats] if name in pages else []
                   for name in affected}
        for fn in extra:
            members[project_of(fn)].append(fn)
    tasks = []
    for name in sorted(members):
        fns = sorted(set(members[name]))
        was = {} if run.full else held.project(name)  # (a full run rewrites every file: it needs none)
        before = {fn: (was[fn][0], was[fn][1], old["logs"].get(fn)) for fn in fns if fn in was and fn in indexed_before}
        tasks.append(Task(name, fns, frozenset(fn for fn in fns if fn in scan.misses or fn in run.repair), before))
    return tasks


def _render_all(run: Run, tasks: list[Task]) -> list[Done]:
    """Render ``tasks`` in order: here, or in ``run.workers`` processes when there are
    enough records (each worker reads, checks and renders whole projects, so only their
    summaries travel back)."""
    if run.workers <= 1 or sum(len(t.filenames) for t in tasks) < PARALLEL_MIN_RECORDS:
        return [_render_project(run, task) for task in tasks]
    k = run.workers * 4  # (smaller chunks even out projects of different sizes)
    chunks = [tasks[i * len(tasks) // k:(i + 1) * len(tasks) // k] for i in range(k)]
    # fork is cheapest, but only safe from a single-threaded process (another thread
    # could hold a lock the child inherits); otherwise a fork server.
    method = "fork" if threading.active_count() == 1 else "forkserver"
    pool = ProcessPoolExecutor(run.workers, mp_context=multiprocessing.get_context(method))
    try:
        parts = list(pool.map(_render_chunk, [run] * len(chunks), chunks))
    finally:
        pool.shutdown(cancel_futures=True)
    done = []
    for chunk_done, staged in parts:
        done += chunk_done
        run.stage.adopt(staged)
    return done


def _render_chunk(run: Run, tasks: list[Task]) -> tuple[list[Done], list[str]]:
    """(In a worker process.) The rendered projects, and the files staged for them."""
    run = replace(run, stage=Stage(run.stage.dir, raw_io=run.stage.raw_io))
    return [_render_project(run, task) for task in tasks], run.stage.moves()


def _render_project(run: Run, task: Task) -> Done:
    """Read and check the records of one project, stage the wheels' own files that are new
    or changed (.metadata; the wheel when co-hosted; the build log) and its three pages."""
    records, views, mismatched = [], [], []
    for fn in task.filenames:
        path = f"{run.dist}/{fn}.json"
        rec = read_record(path, raw_io=run.stage.raw_io)
        e = entry_from_record(rec, path)
        if e["filename"] != fn:
            raise IndexProblem(
                f"{path}: the record describes {e['filename']!r}; a record must be named after its wheel (WHEEL.json)"
            )
        try:
            if os.stat(f"{run.dist}/{fn}").st_size != e["size"]:
                mismatched.append(fn)
        except FileNotFoundError:
            raise IndexProblem(f"{path}: the record's wheel disappeared while indexing; re-run") from None
        summary = summary_of(e)
        if fn in run.excluded:
            records.append((fn, summary, None, None, False, False))
            continue
        prev = None if run.full or fn in run.repair else task.before.get(fn)
        if prev is None or fn in task.changed:
            log = _log_sig(e["log"], run.root, run.settings)
        else:
            log = prev[2]  # copied into the index already; the source may be gone since
        now = (e["sha256"], e["metadata_sha256"], log)
        _stage_wheel_files(run, fn, prev, now, rec, path)
        yank = run.yanks.reason(fn, e["name"], e["version"], e["recipe"], e["record_yanked"])
        records.append((fn, summary, log, yank, True, prev != now))
        views.append({**e, "yanked": yank, "has_log": log is not None})
    if not views:
        return Done(task.name, records, None, mismatched)
    name, settings = task.name, run.settings
    sort_files(views)
    html_page, json_page = render_simple_project(name, supersede(views), settings)
    run.stage.write(f"{SIMPLE}/{name}/index.html", html_page)
    run.stage.write(f"{SIMPLE}/{name}/index.json", json_page)
    human_page = render_human_project(name, views, settings)
    run.stage.write(f"{PROJECT}/{name}/index.html", human_page)
    row = human_root_row(name, latest_version(views), max(v["built_at"] for v in views), len(views))
    # (The page order names the same string objects as the state's other maps: marshal stores them once.)
    same = {fn: fn for fn in task.filenames}
    project = {"wheels": [same[v["filename"]] for v in views], "recipes": sorted({v["recipe"] for v in views}),
               "row": row, "digest": hashlib.sha256(html_page + json_page + human_page).hexdigest()}
    return Done(name, records, project, mismatched)


def _stage_wheel_files(run: Run, fn: str, prev: tuple | None, now: tuple, rec: dict, path: str) -> None:
    """Stage what belongs to one wheel and differs from what the index held (``prev``,
    None: nothing) by (sha256, .metadata sha256, log (path, size))."""
    if prev is None or prev[1] != now[1]:
        run.stage.write(f"{FILES}/{fn}.metadata", metadata_bytes(rec, path))
    if not run.settings.files_base and (prev is None or prev[0] != now[0]):
        run.stage.clone(f"{run.dist}/{fn}", f"{FILES}/{fn}")
    log = now[2]
    if log is not None and (prev is None or prev[2] != log):
        run.stage.copy(log[0], f"{FILES}/{fn}.log")


def _log_sig(log: str | None, root: Path, settings: Settings) -> tuple | None:
    """(path, size) of the build log to publish beside the wheel, or None."""
    if not settings.copy_logs or not log:
        return None
    p = log if os.path.isabs(log) else f"{root}/{log}"
    try:
        return (p, os.stat(p).st_size)
    except OSError:
        return None


def _merge(run: Run, old: dict, held: Summaries, in_dist: dict[str, int], indexed_before: set[str],
           indexed_now: set[str], done: list[Done], report: Report) -> tuple[dict, list[str]]:
    """The new state from the old one (``held``: its summaries) and the rendered projects;
    fills ``report``. Returns the state and the build logs to delete (their wheels no
    longer have one)."""
    summaries = Summaries({} if run.full else old["summaries"], packed=run.pack_summaries)
    if run.full:
        records: dict[str, int] = {}
        shas: dict[str, str] = {}
    else:
        records, shas = dict(old["records"]), dict(old["shas"])
        gone: dict[str, set[str]] = {}  # project -> its records that left dist/
        for fn in old["records"].keys() - in_dist.keys():
            del records[fn], shas[fn]
            gone.setdefault(project_of(fn), set()).add(fn)
        for name, fns in gone.items():
            summaries.put(name, {fn: v for fn, v in summaries.project(name).items() if fn not in fns})
    logs = {fn: v for fn, v in old["logs"].items() if fn in indexed_now}
    yanked = {fn: v for fn, v in old["yanked"].items() if fn in indexed_now}
    projects = {} if run.full else dict(old["projects"])
    deletes: list[str] = []
    mismatched: list[str] = []
    for d in done:
        mismatched += d.mismatched
        was = held.project(d.name)
        now = dict(summaries.project(d.name))
        for fn, summary, log, yank, indexed, wrote in d.records:
            records[fn] = in_dist[fn]
            shas[fn] = summary[0]
            now[fn] = summary
            if not indexed:
                continue
            if fn not in indexed_before:
                report.added.append(fn)
            elif fn in was:  # (not in it: a full rebuild of a damaged state)
                old_sha = was[fn][0]
                if old_sha != summary[0]:
                    report.replaced.append({"filename": fn, "old_sha256": old_sha, "new_sha256": summary[0]})
                if old["logs"].get(fn) and not log:
                    deletes.append(f"{FILES}/{fn}.log")
            _set(logs, fn, log)
            _set(yanked, fn, yank)
            report.files_written += wrote
        summaries.put(d.name, now)
        _set(projects, d.name, d.project)
        if d.project:
            report.projects_written.append(d.name)
    if mismatched:
        listed = "\n".join(f"  - {run.dist / fn}" for fn in sorted(mismatched))
        raise IndexProblem(
            f"{len(mismatched)} wheel(s) in dist/ differ in size from their record (replaced by hand?):\n"
            f"{listed}\n  fix: rebuild them (the build gets a new build tag); the index was left as it was"
        )
    report.added.sort()
    report.replaced.sort(key=lambda r: r["filename"])
    report.removed = sorted(indexed_before - indexed_now)
    report.duplicates = _duplicates(indexed_now, shas)
    projects = dict(sorted(projects.items()))
    report.projects = len(projects)
    report.wheels = len(indexed_now)
    recipes = sorted({r for p in projects.values() for r in p["recipes"]})
    state = {
        "format": FORMAT,
        "generator": f"wheelfactory {__version__}",
        "settings": run.settings.key(),
        "files_base": run.settings.files_base,
        "records": records,
        "shas": shas,
        "summaries": summaries.stored,
        "excluded": sorted(run.excluded),
        "logs": logs,
        "yanked": yanked,
        "recipes": recipes,
        "yank_key": run.yanks.key(recipes),
        "recipe_cache": {r: run.yanks.cache[r] for r in recipes if r in run.yanks.cache},
        "projects": projects,
    }
    return state, deletes


def index_digest(projects: dict[str, dict], human_root: bytes) -> str:
    """The content digest of the index's pages ("sha256:HEX"): of each project's three pages
    (kept in the state when rendered) and the human root page; the simple root lists the
    project names, which are in it too. The same dist/ and settings give the same digest on
    any machine, so publish can tell when a host serves this index (``DIGEST``)."""
    h = hashlib.sha256("".join(f"{name} {p['digest']}\n" for name, p in projects.items()).encode())
    h.update(human_root)
    return f"sha256:{h.hexdigest()}"


def digest_bytes(state: dict, report: Report) -> bytes:
    """The :data:`DIGEST` file: ``{"digest": "sha256:…", "files": {WHEEL: sha256 hex}, "projects": N,
    "wheels": N}``. ``files`` is the manifest of every wheel the index serves, superseded builds
    included (the simple pages leave those out), so ``invoke fetch-dist`` restores all of them and
    the next publish keeps them on the release; each wheel's .metadata, .log and dist record
    (``WHEEL.json``) sit beside it."""
    files = {fn: state["shas"][fn] for p in state["projects"].values() for fn in p["wheels"]}
    return json.dumps({"digest": state["digest"], "files": dict(sorted(files.items())),
                       "projects": report.projects, "wheels": report.wheels}, sort_keys=True).encode() + b"\n"


def _set(mapping: dict, key: str, value) -> None:
    """``mapping[key] = value``, or drop ``key`` when ``value`` is None."""
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value


def _duplicates(indexed: set[str], shas: dict[str, str]) -> list[list[str]]:
    """Groups of indexed wheels with one content (sha256) under several names."""
    if len(set(shas.values())) == len(shas):
        return []  # (the usual case: no two records, indexed or not, share a content)
    by_sha: dict[str, list[str]] = {}
    for fn in indexed:
        by_sha.setdefault(shas[fn], []).append(fn)
    return sorted(sorted(g) for g in by_sha.values() if len(g) > 1)


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
