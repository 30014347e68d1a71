"""``invoke publish``: put the files where the index says they are, then the index.

Order is the whole point: files first, index last, so the live index never
links to a file that is not there (yet, or any more).

Targets (``publish.target``):

``directory`` (the default)
    A folder (``publish.directory``) with the files and the index side by side
    (``files/``, ``simple/``, ``project/``, ``index.html``) that any static web
    server can serve. Each file is placed with an atomic rename; wheels are
    verified against their record's sha256 on the way in; pages go in after
    the files; files the index no longer lists are removed last.

``github``
    The wheels (with their ``.metadata`` and build logs) become assets of a
    GitHub release (``publish.repository``, ``publish.release-tag``; the
    release is created when missing), through the REST API at
    ``publish.api-url``. The index is then pushed with git to
    ``publish.pages-branch`` of ``publish.pages-remote``. The token comes from
    the environment variable named by ``publish.token-env`` and is never
    printed.

    Every asset is compared with the local file by sha256 (the asset's
    ``digest``, or its bytes when the server gives none). Missing assets are
    uploaded; an asset with the same name and different content is flagged and
    replaced (deleted and re-uploaded), and a broken upload (state "starter")
    too. While an asset the live index links to is being replaced, an interim
    index without that wheel is pushed first, so no published page ever
    points at a missing or mismatching file. After uploading, every asset the
    index links to is re-listed and checked (state, size, digest, download URL
    = the index's link) before the index is pushed; assets the index no
    longer lists are deleted only after that (``publish.prune``).

    An interrupted publish (network error, HTTP 5xx, kill) leaves the live
    index as it was (or the interim one); re-running compares again and
    completes it. A missing token, a wrong repository or remote, a dist
    record without its wheel: one message, and nothing is changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

from .. import ui
from ..settings.factory import Config, load_config
from ..errors import FactoryError
from .._util.github import AssetExists, GitHubError, Releases
from ..index import FILES, PROJECT, SIMPLE, STATE_DIR, IndexProblem, build_index, indexed_wheels, link_or_copy, load_state, settings_from
from ..build.store import record_path, sha256_file

_SAFE_ASSET = re.compile(r"^[A-Za-z0-9._-]+$")  # names GitHub keeps as they are
_OURS = (".whl", ".whl.metadata", ".whl.log", ".whl.json")  # asset names publish manages (and may prune)
CONTENT_TYPES = {"wheel": "application/octet-stream", "metadata": "text/plain", "log": "text/plain",
                 "record": "application/json"}


class PublishError(FactoryError):
    """Publishing cannot go on; the message says what is wrong and how to fix it."""


@dataclass
class Artifact:
    """One published file: a wheel, its .metadata, its build log, or its dist record.

    The record (``<wheel>.json``) is not linked by the index; it is published so that
    ``invoke fetch-dist`` can restore dist/ from what is published (CI starts empty).
    """

    name: str  # file / asset name
    wheel: str  # the wheel it belongs to
    kind: str  # "wheel" | "metadata" | "log" | "record"
    source: Path
    sha256: str | None  # known from the record for wheels and .metadata
    built_at: str

    def digest(self) -> str:
        if self.sha256 is None:
            self.sha256 = sha256_file(self.source)
        return self.sha256


@dataclass
class PublishReport:
    target: str
    uploaded: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)  # stale remote copies, flagged and replaced
    unchanged: int = 0
    pruned: list[str] = field(default_factory=list)
    records: dict = field(default_factory=lambda: {"uploaded": 0, "replaced": 0, "unchanged": 0, "pruned": 0})
    pages: str = ""  # what happened to the pages ("pushed abc123", "unchanged", "written")
    interim: bool = False

    def as_dict(self) -> dict:
        return {
            "target": self.target, "uploaded": self.uploaded, "replaced": self.replaced,
            "unchanged": self.unchanged, "pruned": self.pruned, "records": self.records, "pages": self.pages,
            "interim_index": self.interim,
        }


def count(report: PublishReport, art: Artifact, what: str) -> None:
    """Tally one file: index files by name (uploaded/replaced) or number; dist records by number."""
    if art.kind == "record":
        report.records[what] += 1
    elif what == "unchanged":
        report.unchanged += 1
    else:
        getattr(report, what).append(art.name)


def _count_pruned(report: PublishReport, name: str) -> None:
    if name.endswith(".whl.json"):
        report.records["pruned"] += 1
    else:
        report.pruned.append(name)


def artifacts(config: Config, state: dict, index_dir: Path) -> list[Artifact]:
    """Every file to publish, in upload order (wheel, .metadata, log, then the dist record)."""
    dist, files = config.paths.dist, index_dir / FILES
    out = []
    for w in indexed_wheels(state, index_dir):
        fn = w["filename"]
        out.append(Artifact(fn, fn, "wheel", dist / fn, w["sha256"], w["built_at"]))
        out.append(Artifact(f"{fn}.metadata", fn, "metadata", files / f"{fn}.metadata",
                            w["metadata_sha256"], w["built_at"]))
        if w["has_log"]:
            out.append(Artifact(f"{fn}.log", fn, "log", files / f"{fn}.log", None, w["built_at"]))
        # Last, so a published record always has its wheel beside it (fetch-dist relies on it).
        out.append(Artifact(f"{fn}.json", fn, "record", record_path(dist, fn), None, w["built_at"]))
    return out


def _read_verified(art: Artifact) -> bytes:
    """The bytes to publish, checked against the record (the file may have changed since)."""
    try:
        data = art.source.read_bytes()
    except FileNotFoundError:
        raise PublishError(
            f"{art.source} is missing; run `invoke index` (it reports records without their wheel)"
        ) from None
    sha = hashlib.sha256(data).hexdigest()
    if art.sha256 is not None and sha != art.sha256:
        raise PublishError(
            f"{art.source} does not match its record (sha256 {sha[:12]}…, the record says {art.sha256[:12]}…): "
            f"the file changed after it was built; rebuild it (it gets a new build tag); "
            f"files already published are consistent, the index was not pushed"
        )
    art.sha256 = sha
    return data


def _pages_ignore(tree: Path, files_base: str):
    """shutil.copytree ignore: never the state; files/ only when co-hosted."""
    top = os.path.abspath(tree)
    skip = {STATE_DIR} | ({FILES} if files_base else set())

    def ignore(directory: str, names: list[str]) -> set[str]:
        return skip & set(names) if os.path.abspath(directory) == top else set()

    return ignore


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeElapsedColumn(), console=ui.console, transient=True)


# --- directory target ---------------------------------------------------------------


def _place(dest: Path, source: Path | None = None, data: bytes | None = None) -> None:
    """Put a file in place with one atomic rename (hard link when possible)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    if data is not None:
        tmp.write_bytes(data)
    else:
        link_or_copy(source, tmp)  # world-readable, for the web server
    os.replace(tmp, dest)


def publish_directory(config: Config, *, dry_run: bool = False) -> PublishReport:
    index_dir = config.paths.index
    dest = Path(config.publish.directory)
    dest = dest if dest.is_absolute() else config.root / dest
    if dest.resolve() == index_dir.resolve():
        raise PublishError(f"factory.toml: publish.directory is the index folder ({dest}); pick another folder")
    report = PublishReport(target=str(dest))
    with contextlib.ExitStack() as stack:
        index_dir = _current_index(config, dry_run, stack)
        return _publish_directory(config, index_dir, dest, report, dry_run=dry_run)


def _publish_directory(config: Config, index_dir: Path, dest: Path, report: PublishReport, *,
                       dry_run: bool) -> PublishReport:
    state = load_state(index_dir)
    marker = dest / ".wheelfactory-publish.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dest.parent / f".{dest.name}.lock")):
        published: dict[str, str] = json.loads(marker.read_text()) if marker.is_file() else {}
        if dest.exists() and any(dest.iterdir()) and not marker.is_file():
            raise PublishError(
                f"{dest} exists but was not written by `invoke publish`; move it away or set publish.directory"
            )
        arts = artifacts(config, state, index_dir)
        # 1. Files, each verified and placed atomically.
        for art in arts:
            target = dest / FILES / art.name
            sha = art.digest()  # from the record; build logs (small) are hashed
            if published.get(art.name) == sha and target.is_file():
                count(report, art, "unchanged")
                continue
            if dry_run:
                count(report, art, "uploaded")
                continue
            if target.is_file():
                old = sha256_file(target)
                if old == sha:
                    published[art.name] = sha
                    count(report, art, "unchanged")
                    continue
                if art.kind != "record":  # a record changes when the index annotates it (yanked, …)
                    ui.warn(f"{target}: stale copy (sha256 {old[:12]}…) replaced by the current build")
                count(report, art, "replaced")
            else:
                count(report, art, "uploaded")
            if art.kind == "wheel":
                _verify_file(art)
            _place(target, art.source)
            published[art.name] = sha
        if dry_run:
            report.pages = "would be written"
            return report
        # 2. Pages: project pages before the root pages that list them.
        pages = sorted(
            (p for p in index_dir.rglob("*") if p.is_file()
             and not p.relative_to(index_dir).as_posix().startswith((STATE_DIR + "/", FILES + "/"))),
            key=lambda p: (p.relative_to(index_dir).as_posix().count("/") < 2, p.as_posix()),
        )
        written = 0
        for p in pages:
            rel = p.relative_to(index_dir)
            target = dest / rel
            data = p.read_bytes()
            if not target.is_file() or target.read_bytes() != data:
                _place(target, data=data)
                written += 1
        report.pages = f"{written} pages written" if written else "unchanged"
        # 3. Last: what the index no longer lists.
        wanted_pages = {p.relative_to(index_dir).as_posix() for p in pages}
        wanted_files = {a.name for a in arts}
        if config.publish.prune:
            for sub in (SIMPLE, PROJECT):
                for p in sorted((dest / sub).rglob("*"), reverse=True) if (dest / sub).is_dir() else []:
                    rel = p.relative_to(dest).as_posix()
                    if p.is_file() and rel not in wanted_pages:
                        p.unlink()
                    elif p.is_dir() and not any(p.iterdir()):
                        p.rmdir()
            for p in sorted((dest / FILES).iterdir()) if (dest / FILES).is_dir() else []:
                if p.is_file() and p.name not in wanted_files and not p.name.startswith("."):
                    p.unlink()
                    published.pop(p.name, None)
                    _count_pruned(report, p.name)
        marker.write_text(json.dumps(published, indent=1, sort_keys=True))
    return report


def _verify_file(art: Artifact) -> None:
    sha = sha256_file(art.source)
    if sha != art.sha256:
        raise PublishError(
            f"{art.source} does not match its record (sha256 {sha[:12]}…, the record says {art.sha256[:12]}…): "
            f"the file changed after it was built; rebuild it (it gets a new build tag)"
        )


# --- github target --------------------------------------------------------------------


@dataclass
class GitHubTarget:
    config: Config
    token: str
    client: Releases
    remote: str
    branch: str
    tag: str


def _github_preflight(config: Config) -> GitHubTarget:
    """Everything that can be checked before anything is changed."""
    pub = config.publish
    where = config.source or config.root / "factory.toml"
    env = pub.token_env
    token = os.environ.get(env, "")
    if not token:
        raise PublishError(
            f"publish.target is 'github' but ${env} is not set; export a token with 'contents: write' on "
            f"{pub.repository or 'the repository'} as {env} (publish.token-env names the variable); "
            f"nothing was changed"
        )
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", pub.repository):
        raise PublishError(f"{where}: publish.repository {pub.repository!r} must be OWNER/NAME; nothing was changed")
    if not pub.pages_remote:
        raise PublishError(
            f"{where}: publish.pages-remote is empty; set it to the git URL of the repository that serves "
            f"the index (GitHub Pages, branch publish.pages-branch); nothing was changed"
        )
    settings_from(config)  # the files base URL must be known
    _check_asset_names(config.paths.dist)
    client = Releases(pub.api_url, pub.repository, token, timeout=pub.timeout, retries=pub.retries,
                      token_env=env)
    client.repository_info()
    _git_ls_remote(pub.pages_remote, pub.pages_branch, token)
    return GitHubTarget(config, token, client, pub.pages_remote, pub.pages_branch, pub.release_tag)


def _check_asset_names(dist: Path) -> None:
    bad_names = sorted(p.name[: -len(".json")] for p in dist.glob("*.whl.json")
                       if not _SAFE_ASSET.match(p.name[: -len(".json")]))
    if bad_names:
        raise PublishError(
            "GitHub renames release assets with characters other than letters, digits, '.', '-' and '_', "
            "so the index would link to names that do not exist:\n"
            + "\n".join(f"  - {n}" for n in bad_names)
            + "\n  fix: drop the local version label (+…) from these builds, or publish to a directory; "
            "nothing was changed"
        )


def _remote_sha256(t: GitHubTarget, asset: dict) -> str:
    digest = asset.get("digest") or ""
    if digest.startswith("sha256:"):
        return digest[len("sha256:"):]
    return hashlib.sha256(t.client.download(asset)).hexdigest()  # no digest: hash the bytes


def _built_label(art: Artifact) -> str:
    return f"built {art.built_at}" if art.kind == "wheel" else ""


def _remote_built_at(asset: dict) -> str:
    label = asset.get("label") or ""
    return label[len("built "):] if label.startswith("built ") else asset.get("updated_at") or ""


def _current_index(config: Config, dry_run: bool, stack: contextlib.ExitStack) -> Path:
    """The index, brought up to date (a dry run builds a throwaway one: it changes nothing)."""
    if not dry_run:
        build_index(config)  # a record without its wheel stops here, before anything is published
        return config.paths.index
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dry-run-index-"))) / "index"
    build_index(config, out=tmp, quiet=True)
    return tmp


def publish_github(config: Config, *, dry_run: bool = False, force: bool = False) -> PublishReport:
    t = _github_preflight(config)
    with contextlib.ExitStack() as stack:
        index_dir = _current_index(config, dry_run, stack)
        return _publish_github(config, t, index_dir, dry_run=dry_run, force=force)


def _publish_github(config: Config, t: GitHubTarget, index_dir: Path, *, dry_run: bool,
                    force: bool) -> PublishReport:
    state = load_state(index_dir)
    settings = settings_from(config)
    arts = artifacts(config, state, index_dir)
    report = PublishReport(target=f"{t.client.api} {config.publish.repository}@{t.tag}")
    release, created = (t.client.release_by_tag(t.tag), False) if dry_run else t.client.ensure_release(
        t.tag, t.tag, "Wheels published by wheelfactory. Install with the index on the project's Pages site.")
    if created:
        ui.info(f"created release {t.tag} on {config.publish.repository}")
    assets = {a["name"]: a for a in t.client.assets(release)} if release else {}

    # Compare every file with its asset.
    todo: list[Artifact] = []
    stale: list[tuple[Artifact, dict]] = []
    conflicts = []
    for art in arts:
        asset = assets.get(art.name)
        if asset is None:
            todo.append(art)
        elif asset.get("state") != "uploaded":
            stale.append((art, asset))  # a broken upload: nothing serves it
        elif asset.get("size") == art.source.stat().st_size and _remote_sha256(t, asset) == art.digest():
            count(report, art, "unchanged")
        else:
            remote_built = _remote_built_at(asset)
            if art.kind == "wheel" and remote_built > art.built_at and not force:
                conflicts.append(f"  - {art.name}: the release has a different build from {remote_built}, "
                                 f"newer than dist/'s ({art.built_at})")
            stale.append((art, asset))
    if conflicts:
        raise PublishError(
            "the release holds newer builds under the same file names than dist/ does:\n" + "\n".join(conflicts)
            + "\n  fix: rebuild these wheels here (they get a new build tag), or pass --force to replace the "
            "release's copies with dist/'s; nothing was changed"
        )
    for art, asset in stale:
        if asset.get("state") == "uploaded" and art.kind != "record":
            ui.warn(f"{art.name}: the release holds different content under this name; replacing it with dist/'s")
    if dry_run:
        for a in todo:
            count(report, a, "uploaded")
        for a, _ in stale:
            count(report, a, "replaced")
        report.pages = "would be pushed"
        return report

    # While a live asset is replaced, the live index must not link to it: push an index
    # without the wheels whose files are not (yet) on the release as they should be.
    # (A record is not linked by the index: replacing it needs no interim index.)
    live_replaced = {a.wheel for a, asset in stale if asset.get("state") == "uploaded" and a.kind != "record"}
    if live_replaced:
        not_ready = (live_replaced | {a.wheel for a in todo if a.kind != "record"}
                     | {a.wheel for a, _ in stale if a.kind != "record"})
        with tempfile.TemporaryDirectory(prefix="interim-index-") as tmp:
            interim = Path(tmp) / "index"
            build_index(config, out=interim, exclude=not_ready, quiet=True)
            sha = push_pages(t, interim, settings.files_base,
                             f"Interim index while {len(live_replaced)} wheel(s) are replaced")
            report.interim = True
            ui.info(f"pushed an interim index without {len(live_replaced)} wheel(s) being replaced ({sha})")

    # Upload: wheel first, then its .metadata and log (the order of ``arts``).
    position = {a.name: i for i, a in enumerate(arts)}
    work = sorted([(a, None) for a in todo] + stale, key=lambda x: position[x[0].name])
    total = sum(a.source.stat().st_size for a, _ in work)
    with _progress() as progress:
        bar = progress.add_task("uploading", total=total)
        for art, old in work:
            data = _read_verified(art)
            if old is not None:
                t.client.delete_asset(old)
            _upload(t, release, art, data)
            count(report, art, "replaced" if old is not None and old.get("state") == "uploaded" else "uploaded")
            progress.advance(bar, len(data))
            ui.info(f"  uploaded {art.name}")

    # Verify every link target before the index goes live.
    assets = {a["name"]: a for a in t.client.assets(release)}
    problems = []
    for art in arts:
        a = assets.get(art.name)
        expected = settings.file_url(art.name)
        if a is None or a.get("state") != "uploaded":
            problems.append(f"  - {art.name}: not on the release")
        elif a.get("size") != art.source.stat().st_size or (a.get("digest") and a["digest"] != f"sha256:{art.digest()}"):
            problems.append(f"  - {art.name}: the release's copy differs from the local file")
        elif a.get("browser_download_url") != expected:
            problems.append(f"  - {art.name}: served at {a.get('browser_download_url')}, the index links {expected}")
    if problems:
        raise PublishError(
            "the release does not hold what the index links to, so the index was not pushed:\n"
            + "\n".join(problems[:20])
            + ("\n  fix: set index.files-base-url to the release's download URL" if any("served at" in p for p in problems)
               else "\n  re-run `invoke publish`")
        )

    wheels = sum(a.kind == "wheel" for a in arts)
    report.pages = push_pages(t, index_dir, settings.files_base, f"Index: {wheels} wheels")

    # Last: assets the live index no longer links to.
    if config.publish.prune:
        wanted = {a.name for a in arts}
        for name, a in sorted(assets.items()):
            if name.endswith(_OURS) and name not in wanted:
                t.client.delete_asset(a)
                _count_pruned(report, name)
    return report


def _upload(t: GitHubTarget, release: dict, art: Artifact, data: bytes) -> dict:
    """Upload one asset; a leftover from an earlier attempt (422 already_exists) is resolved."""
    label = _built_label(art)
    for attempt in range(2):
        try:
            asset = t.client.upload_asset(release, art.name, data, CONTENT_TYPES[art.kind], label)
            break
        except AssetExists:
            # A retried POST that had in fact arrived, or a broken upload ("starter") left behind.
            current = {a["name"]: a for a in t.client.assets(release)}.get(art.name)
            if current is None:
                continue
            if current.get("state") == "uploaded" and _remote_sha256(t, current) == art.sha256:
                return current
            if attempt:
                raise PublishError(f"upload {art.name}: GitHub keeps a conflicting asset; re-run `invoke publish`")
            t.client.delete_asset(current)
    else:
        raise PublishError(f"upload {art.name}: GitHub kept answering already_exists; re-run `invoke publish`")
    if asset.get("name") != art.name:
        raise PublishError(f"upload {art.name}: GitHub stored it as {asset.get('name')!r}; rename the file")
    return asset


# --- git: the Pages branch ----------------------------------------------------------------


def _git_env(token: str, tmp: Path) -> dict[str, str]:
    """Environment for git: no prompts; HTTPS auth from the token through GIT_ASKPASS (never argv)."""
    askpass = tmp / "askpass.sh"
    askpass.write_text('#!/bin/sh\ncase "$1" in Username*) echo x-access-token;; *) echo "$WHEELFACTORY_GIT_TOKEN";; esac\n')
    askpass.chmod(stat.S_IRWXU)
    env = dict(os.environ)
    env.update({
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": str(askpass),
        "WHEELFACTORY_GIT_TOKEN": token,
        "GIT_AUTHOR_NAME": "wheelfactory", "GIT_AUTHOR_EMAIL": "wheelfactory@users.noreply.github.com",
        "GIT_COMMITTER_NAME": "wheelfactory", "GIT_COMMITTER_EMAIL": "wheelfactory@users.noreply.github.com",
    })
    return env


def _git(args: list[str], *, cwd: Path | None, env: dict, token: str, what: str) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln.strip() for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith(("fatal:", "error:", "!"))), lines[0] if lines else "")
        detail = detail.replace(token, "***") if token else detail
        raise PublishError(f"{what} (git {args[0]}: {ui.mask_secrets(detail)})")
    return r.stdout


def _git_ls_remote(remote: str, branch: str, token: str) -> bool:
    with tempfile.TemporaryDirectory(prefix="wf-git-") as tmp:
        out = _git(["ls-remote", "--heads", remote, f"refs/heads/{branch}"], cwd=None, env=_git_env(token, Path(tmp)),
                   token=token, what=f"the Pages remote (publish.pages-remote) {remote!r} is not reachable; "
                                     f"check the URL and the token's access; nothing was changed")
        return bool(out.strip())


def push_pages(t: GitHubTarget, tree: Path, files_base: str, message: str) -> str:
    """Commit ``tree`` (pages, not the state; files/ only when co-hosted) to the Pages branch and push."""
    with tempfile.TemporaryDirectory(prefix="wf-pages-") as tmp:
        tmp = Path(tmp)
        env = _git_env(t.token, tmp)
        work = tmp / "pages"
        work.mkdir()
        git = lambda *a, what="push the index": _git(list(a), cwd=work, env=env, token=t.token, what=what)  # noqa: E731
        git("init", "-q")
        exists = _git_ls_remote(t.remote, t.branch, t.token)
        if exists:
            git("fetch", "-q", "--depth", "1", t.remote, f"refs/heads/{t.branch}")
            git("checkout", "-q", "-B", t.branch, "FETCH_HEAD")
            for p in work.iterdir():
                if p.name != ".git":
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
        else:
            git("checkout", "-q", "--orphan", t.branch)
        shutil.copytree(tree, work, dirs_exist_ok=True, ignore=_pages_ignore(tree, files_base))
        (work / ".nojekyll").write_text("")  # serve files/ and dot-files as they are
        git("add", "-A")
        if exists and subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=work, env=env).returncode == 0:
            return "unchanged"
        git("commit", "-q", "-m", message)
        git("push", "-q", t.remote, f"HEAD:refs/heads/{t.branch}",
            what="push the index (someone else pushed meanwhile? re-run `invoke publish`)")
        sha = git("rev-parse", "--short", "HEAD").strip()
        return f"pushed {sha}"


# --- the command --------------------------------------------------------------------------


def publish(config: Config, *, dry_run: bool = False, force: bool = False) -> PublishReport:
    target = config.publish.target
    if target == "directory":
        return publish_directory(config, dry_run=dry_run)
    if target == "github":
        return publish_github(config, dry_run=dry_run, force=force)
    raise PublishError(
        f"{config.source or 'factory.toml'}: publish.target {target!r} is not one of: directory, github"
    )


def publish_command(root: Path | str | None = None, *, dry_run: bool = False, force: bool = False,
                    as_json: bool = False) -> int:
    """``invoke publish``: files first, index last."""
    config = load_config(root)
    report = publish(config, dry_run=dry_run, force=force)
    verb = "would upload" if dry_run else "uploaded"
    ui.info(
        f"published to {report.target}: {len(report.uploaded)} {verb}, {len(report.replaced)} replaced (stale), "
        f"{report.unchanged} unchanged, {len(report.pruned)} pruned; dist records {report.records['uploaded']} "
        f"{verb}, {report.records['replaced']} replaced, {report.records['unchanged']} unchanged, {report.records['pruned']} pruned; index {report.pages}"
    )
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    return 0


__all__ = ["publish", "publish_command", "push_pages", "artifacts", "PublishError", "GitHubError", "IndexProblem"]
