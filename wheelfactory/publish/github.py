"""The ``github`` publish target: release assets through the REST API, the index pushed to Pages with git.

The wheels (with their ``.metadata``, build logs and dist records) become assets
of GitHub releases (``publish.repository``, ``publish.release-tag``: with
``{project}``, the default, one release per project, so no release nears GitHub's
1000 assets; a release is created when missing), through the REST API at
``publish.api-url``. The
index is then pushed with git to ``publish.pages-branch`` of
``publish.pages-remote``. The token comes from the environment variable named
by ``publish.token-env``; it reaches git only through GIT_ASKPASS (never argv)
and is masked wherever git's output is shown.

Every asset is compared with the local file by sha256 (the asset's ``digest``,
or its bytes when the server gives none). A published file name always means
the same bytes, as on PyPI: installers and caches hold the old index's hashes,
so different bytes under a published name are refused (a rebuild gets the next
build tag, so a new name); ``--force`` replaces them anyway. A broken upload
(state "starter") is replaced.

The order survives GitHub Pages' deploy delay and caching: new files are
uploaded first (counted with the release's old ones against GitHub's 1000
assets per release, before anything is uploaded; each under 2 GiB), checked
(state, size, digest, download URL = the index's link), then the index is
pushed, with publish's own marker (:data:`MARKER`: since when each asset has
not been linked), then publish waits, bounded by ``publish.deploy-timeout`` and
with progress, until the live site serves the index's own digest file
(``index-digest.json``, which `invoke index` writes; fetched past the cache). Only then are assets that no pushed index has
linked for ``publish.prune-grace`` seconds deleted (``publish.prune``); the
time is kept in the marker, so a later publish prunes what an earlier one
unlinked. Clients holding a page from before still find its files.

Preflight checks, before anything is changed: the token, asset names (GitHub
keeps letters, digits, ``_ - + @`` and inner dots) and sizes, the repository,
that GitHub Pages of ``publish.pages-repository`` deploys ``publish.pages-branch``
(GET /repos/{owner}/{repo}/pages), and the remote. Immutable releases are
refused with the fix: publish adds and prunes assets of one release for good.

An interrupted publish (network error, HTTP 5xx, kill) leaves the live index as
it was; re-running compares again and completes it. A missing token, a wrong
repository or remote, a dist record without its wheel: one message, and
nothing is changed.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import requests

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

from .. import ui
from .._util.github import AlreadyExists, Releases
from .._util.http import DEFAULT_TIMEOUT, session
from .._util.proc import git
from ..index import DIGEST, FILES, PROJECT_FIELD, STATE_DIR, Settings, load_state, project_of_file, settings_from
from ..settings.factory import Config, PublishSettings
from .artifacts import Artifact, PublishError, PublishReport, artifacts, check_digest, current_index

# GitHub keeps letters, digits, '_', '-', '+', '@' and single inner dots; it renames anything else
# (https://docs.github.com/en/rest/releases/assets#upload-a-release-asset; the characters as observed in
# travis-ci/dpl#821 and github/rest-api-description#2968).
_KEPT_ASSET_NAME = re.compile(r"[A-Za-z0-9_+@-]+(?:\.[A-Za-z0-9_+@-]+)*")
MAX_ASSETS = 1000  # per release, enforced since July 2025 (422, errors[].field "file_count")
MAX_ASSET_SIZE = 2 * 1024**3  # bytes per asset (https://docs.github.com/en/repositories/releasing-projects-on-github/about-releases#storage-and-bandwidth-quotas)
MARKER = "wheelfactory-publish.json"  # at the Pages root: since when each asset is unlinked
_OURS = (".whl", ".whl.metadata", ".whl.log", ".whl.json")  # asset names publish manages (and may prune)
CONTENT_TYPES = {"wheel": "application/octet-stream", "metadata": "text/plain", "log": "text/plain",
                 "record": "application/json"}
RELEASE_BODY = "Wheels published by wheelfactory. Install with the index on the project's Pages site."


def releases(pub: PublishSettings, token: str, *, command: str) -> Releases:
    """The release endpoints of ``publish.repository``; ``command`` is what to re-run after an outage."""
    return Releases(pub.api_url, pub.repository, token, token_env=pub.token_env, timeout=pub.timeout,
                    retries=pub.retries, again=f"re-run `{command}`, it resumes where it stopped")


def site_root(index_url: str) -> str:
    """The Pages site's root URL from ``index.url`` (…/simple/ -> …/)."""
    url = index_url if index_url.endswith("/") else index_url + "/"
    return url[: -len("simple/")] if url.endswith("/simple/") else url


@dataclass
class GitHubTarget:
    """A checked github target: the client, the Pages remote and branch, the release tag, the live site."""

    config: Config
    token: str
    client: Releases
    remote: str
    branch: str
    tag: str
    site: str = ""  # the Pages site's root URL


def preflight(config: Config) -> GitHubTarget:
    """Everything that can be checked before anything is changed: token, names and sizes, repository,
    the Pages site's source, the remote."""
    pub = config.publish
    token = os.environ.get(pub.token_env, "")
    if not token:
        raise PublishError(
            f"publish.target is 'github' but ${pub.token_env} is not set; export a token with 'contents: write' on "
            f"{pub.repository or 'the repository'} as {pub.token_env} (publish.token-env names the variable); "
            f"nothing was changed"
        )
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", pub.repository):
        raise PublishError(f"{config.where}: publish.repository {pub.repository!r} must be OWNER/NAME; "
                           f"nothing was changed")
    if not pub.pages_remote:
        raise PublishError(
            f"{config.where}: publish.pages-remote is empty; set it to the git URL of the repository that serves "
            f"the index (GitHub Pages, branch publish.pages-branch); nothing was changed"
        )
    settings = settings_from(config)  # the files base URL must be known
    if not settings.url:
        raise PublishError(
            f"{config.where}: index.url is empty; set it to the index's public URL on GitHub Pages "
            f"(https://OWNER.github.io/REPO/simple/): publish waits until that site serves the new index "
            f"before it prunes anything; nothing was changed"
        )
    _check_files(config.paths.dist)
    client = releases(pub, token, command="invoke publish")
    client.repository_info()
    check_pages_source(client, pub.pages_repository or pub.repository, pub.pages_branch)
    _ls_remote(pub.pages_remote, pub.pages_branch, token)
    return GitHubTarget(config, token, client, pub.pages_remote, pub.pages_branch, pub.release_tag,
                        site_root(settings.url))


def check_pages_source(client: Releases, repository: str, branch: str) -> None:
    """GitHub Pages of ``repository`` must deploy ``branch`` (GET /repos/{owner}/{repo}/pages:
    ``build_type`` "legacy" = from a branch, ``source``; https://docs.github.com/en/rest/pages/pages).
    Raises PublishError with the fix otherwise."""
    where = f"Settings → Pages of {repository}"
    site = client.pages_site(repository)
    fix = f"set Source to 'Deploy from a branch', branch '{branch}', folder '/ (root)'"
    if site is None:
        raise PublishError(f"GitHub Pages is not enabled on {repository} (publish.pages-repository), so the pushed "
                           f"index would never be served; in {where}: {fix}; nothing was changed")
    source = site.get("source") or {}
    if site.get("build_type") == "workflow":
        raise PublishError(f"GitHub Pages of {repository} deploys from a GitHub Actions workflow, not from the "
                           f"branch publish pushes ({branch}); in {where}: {fix}; nothing was changed")
    if source.get("branch") != branch or source.get("path", "/") != "/":
        raise PublishError(f"GitHub Pages of {repository} serves branch '{source.get('branch')}' folder "
                           f"'{source.get('path')}', not '{branch}' '/' (publish.pages-branch); in {where}: {fix} "
                           f"(or set publish.pages-branch); nothing was changed")


def _check_files(dist: Path) -> None:
    """Every wheel name is one GitHub keeps as it is, and no file is over GitHub's 2 GiB."""
    problems = []
    for rec in sorted(dist.glob("*.whl.json")):
        name = rec.name[: -len(".json")]
        if not _KEPT_ASSET_NAME.fullmatch(name):
            problems.append(f"  - {name}: GitHub renames release assets with characters other than letters, "
                            f"digits, '_', '-', '+', '@' and single inner dots, so the index would link to a "
                            f"name that does not exist")
        wheel = dist / name
        if wheel.is_file() and wheel.stat().st_size > MAX_ASSET_SIZE:
            problems.append(f"  - {name}: {wheel.stat().st_size} bytes, over GitHub's limit of {MAX_ASSET_SIZE} "
                            f"bytes (2 GiB) per release asset")
    if problems:
        raise PublishError("these files cannot be published as GitHub release assets:\n" + "\n".join(problems)
                           + "\n  fix: rename or rebuild them, or publish to a directory (publish.target); "
                           "nothing was changed")


def publish_github(config: Config, *, dry_run: bool = False, force: bool = False) -> PublishReport:
    """New files first, then the index, then wait until Pages serves it, then prune (module docstring).

    ``force``: replace release assets whose bytes differ from dist/'s (breaks the promise that a
    published name always means the same bytes; clients holding the old index then fail their hash
    check). Raises PublishError (or GitHubError) with one message.
    """
    t = preflight(config)
    with contextlib.ExitStack() as stack:
        index_dir = current_index(config, dry_run, stack)
        return _publish(config, t, index_dir, dry_run=dry_run, force=force)


@dataclass
class _Work:
    """The comparison of the files with the release's assets."""

    todo: list[Artifact] = field(default_factory=list)  # not on the release
    stale: list[tuple[Artifact, dict]] = field(default_factory=list)  # on it, but not as they should be


def _releases(t: GitHubTarget, arts: list[Artifact]) -> list[tuple[str, dict | None, list[Artifact]]]:
    """Each release with its files: ``(tag, release or None when missing, files)``. One release
    ``publish.release-tag`` for all, or one per project when the tag holds ``{project}`` (each then
    stays far below GitHub's 1000 assets). Those are found by listing the releases (one request per
    100, not one per project), including releases of projects that left dist/ (their files are pruned)."""
    if PROJECT_FIELD not in t.tag:
        return [(t.tag, t.client.release_by_tag(t.tag), arts)]
    groups: dict[str, list[Artifact]] = {}
    for art in arts:
        groups.setdefault(t.tag.replace(PROJECT_FIELD, project_of_file(art.name)), []).append(art)
    before, after = t.tag.split(PROJECT_FIELD, 1)
    ours = re.compile(re.escape(before) + ".+" + re.escape(after))
    existing = {r["tag_name"]: r for r in t.client.releases() if ours.fullmatch(r.get("tag_name", ""))}
    return [(tag, existing.get(tag), groups.get(tag, [])) for tag in sorted(groups.keys() | existing.keys())]


def _publish(config: Config, t: GitHubTarget, index_dir: Path, *, dry_run: bool, force: bool) -> PublishReport:
    settings = settings_from(config)
    arts = artifacts(config, load_state(index_dir), index_dir)
    report = PublishReport(target=f"{t.client.api} {config.publish.repository}@{t.tag}")
    plan = []  # (tag, release, its assets by name, work), every release checked before anything is changed
    for tag, release, group in _releases(t, arts):
        if release is not None and release.get("immutable"):
            raise PublishError(
                f"release {tag} of {config.publish.repository} is immutable (the repository or organisation "
                f"setting 'Release immutability'): its assets can no longer be added or deleted, and it stays so; "
                f"turn the setting off, then set publish.release-tag to a new tag (publish creates that release); "
                f"nothing was changed")
        # The release object lists its assets (one request; the assets endpoint pages by 100).
        assets = {a["name"]: a for a in (release or {}).get("assets", [])}
        work = _compare(t, group, assets, report, force=force)
        _check_count(tag, assets, work)
        plan.append((tag, release, assets, work))
    if dry_run:
        for *_, work in plan:
            for a in work.todo:
                report.count(a, "uploaded")
            for a, _ in work.stale:
                report.count(a, "replaced")
        report.pages = "would be pushed"
        return report
    missing = [tag for tag, release, *_ in plan if release is None]
    if missing:
        _check_creatable(t, missing)
    everything: dict[str, dict] = {}  # asset name -> asset, over every release (names hold the project)
    for tag, release, assets, work in plan:
        release = release or _create_release(t, tag)
        _upload_all(t, release, arts, work, report, assets)
        everything.update(assets)
    _check_release(arts, everything, settings)
    wanted = {a.name for a in arts}
    unlinked = sorted(n for n in everything if n.endswith(_OURS) and n not in wanted)
    wheels = sum(a.kind == "wheel" for a in arts)
    push = push_pages(t, index_dir, settings.files_base, f"Index: {wheels} wheels", unlinked=unlinked)
    report.pages = push.status
    wait_until_live(t.site, _index_digest(index_dir), config.publish.deploy_timeout)
    if config.publish.prune:  # only what the live index has not linked for the grace period
        now = _dt.datetime.now(_dt.timezone.utc)
        for name in unlinked:
            since = _dt.datetime.fromisoformat(push.unlinked[name])
            if (now - since).total_seconds() >= config.publish.prune_grace:
                t.client.delete_asset(everything[name])
                report.count_pruned(name)
            else:
                report.prune_later.append(name)
    return report


def _check_creatable(t: GitHubTarget, tags: list[str]) -> None:
    """Refused before anything is made (one request for all ``tags``) where new releases become
    immutable at once."""
    if t.client.immutable_releases():
        raise PublishError(
            f"{t.client.repository} has 'Release immutability' on: a published release can no longer gain or lose "
            f"assets, but publish adds and prunes files on release {', '.join(tags[:3])}"
            f"{' …' if len(tags) > 3 else ''} for good; turn the setting off in the repository's (or "
            f"organisation's) settings; nothing was changed")


def _create_release(t: GitHubTarget, tag: str) -> dict:
    rel = t.client.create_release(tag, tag, RELEASE_BODY)
    ui.info(f"created release {tag} on {t.client.repository}")
    return rel


def _compare(t: GitHubTarget, arts: list[Artifact], assets: dict[str, dict], report: PublishReport, *,
             force: bool) -> _Work:
    """Sort every file into unchanged, to upload, or stale. A published file name always means the
    same bytes (as on PyPI): different bytes under a published name are refused unless ``force``
    (a dist record, which no index links, is simply replaced)."""
    work, conflicts = _Work(), []
    for art in arts:
        asset = assets.get(art.name)
        if asset is None:
            work.todo.append(art)
        elif asset.get("state") != "uploaded":
            work.stale.append((art, asset))  # a broken upload: nothing serves it
        elif asset.get("size") == art.source.stat().st_size and _remote_sha256(t, asset) == art.digest():
            report.count(art, "unchanged")
        elif art.kind == "record" or force:
            work.stale.append((art, asset))
        else:
            conflicts.append(f"  - {art.name}")
    if conflicts:
        raise PublishError(
            "the release already publishes different bytes under these names:\n" + "\n".join(conflicts)
            + "\n  a published file name always means the same bytes (installers and caches hold the old ones' "
            "hashes): rebuild these wheels (a rebuild gets the next build tag, so a new name) and publish that; "
            "nothing was changed"
        )
    for art, asset in work.stale:
        if asset.get("state") == "uploaded" and art.kind != "record":
            ui.warn(f"{art.name}: --force replaces the release's different bytes under this name with dist/'s")
    return work


def _check_count(tag: str, assets: dict[str, dict], work: _Work) -> None:
    """The release must hold old and new files together within GitHub's 1000 assets, counted before uploading."""
    total = len(assets) + len(work.todo)
    if total > MAX_ASSETS:
        raise PublishError(
            f"release {tag} would hold {total} assets ({len(assets)} now, {len(work.todo)} new), over GitHub's "
            f"limit of {MAX_ASSETS} per release (old files stay until the prune grace period has passed); remove "
            f"wheels from dist/ and publish (they are pruned after publish.prune-grace seconds), or give each "
            f"project its own release (publish.release-tag with {PROJECT_FIELD}, e.g. 'wheels-{PROJECT_FIELD}'); "
            f"nothing was changed")


def _upload_all(t: GitHubTarget, release: dict, arts: list[Artifact], work: _Work, report: PublishReport,
                assets: dict[str, dict]) -> None:
    """Upload what is missing or stale (a wheel first, then its .metadata, log and record: the order of
    ``arts``); ``assets`` is updated with what GitHub answered."""
    position = {a.name: i for i, a in enumerate(arts)}
    todo = sorted([(a, None) for a in work.todo] + work.stale, key=lambda x: position[x[0].name])
    total = sum(a.source.stat().st_size for a, _ in todo)
    with _progress() as progress:
        bar = progress.add_task("uploading", total=total)
        for art, old in todo:
            data = _read_verified(art)
            if old is not None:
                t.client.delete_asset(old)
            assets[art.name] = _upload(t, release, art, data)
            report.count(art, "replaced" if old is not None and old.get("state") == "uploaded" else "uploaded")
            progress.advance(bar, len(data))
            ui.info(f"  uploaded {art.name}")


def _check_release(arts: list[Artifact], assets: dict[str, dict], settings: Settings) -> None:
    """Every link target is on the release as the index says, before the index goes live."""
    problems = []
    for art in arts:
        a = assets.get(art.name)
        expected = settings.file_url(art.name)
        if a is None or a.get("state") != "uploaded":
            problems.append(f"  - {art.name}: not on the release")
        elif (a.get("size") != art.source.stat().st_size
              or (a.get("digest") and a["digest"] != f"sha256:{art.digest()}")):
            problems.append(f"  - {art.name}: the release's copy differs from the local file")
        elif a.get("browser_download_url") != expected:
            problems.append(f"  - {art.name}: served at {a.get('browser_download_url')}, the index links {expected}")
    if problems:
        fix = ("\n  fix: set index.files-base-url to the release's download URL"
               if any("served at" in p for p in problems) else "\n  re-run `invoke publish`")
        raise PublishError("the release does not hold what the index links to, so the index was not pushed:\n"
                           + "\n".join(problems[:20]) + fix)


def _read_verified(art: Artifact) -> bytes:
    """The bytes to publish, checked against the record (the file may have changed since)."""
    try:
        data = art.source.read_bytes()
    except FileNotFoundError:
        raise PublishError(
            f"{art.source} is missing; run `invoke index` (it reports records without their wheel)"
        ) from None
    sha = hashlib.sha256(data).hexdigest()
    check_digest(art, sha, "; files already published are consistent, the index was not pushed")
    art.sha256 = sha
    return data


def _remote_sha256(t: GitHubTarget, asset: dict) -> str:
    digest = asset.get("digest") or ""
    if digest.startswith("sha256:"):
        return digest[len("sha256:"):]
    return hashlib.sha256(t.client.download(asset)).hexdigest()  # no digest: hash the bytes


def _upload(t: GitHubTarget, release: dict, art: Artifact, data: bytes) -> dict:
    """Upload one asset; a leftover from an earlier attempt (422 already_exists) is resolved."""
    for attempt in range(2):
        try:  # no label: the release page shows the file name
            asset = t.client.upload_asset(release, art.name, data, CONTENT_TYPES[art.kind])
            break
        except AlreadyExists:
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


def _progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeElapsedColumn(), console=ui.console, transient=True)


# --- git: the Pages branch ----------------------------------------------------------------


def _askpass_env(token: str, tmp: Path) -> dict[str, str]:
    """git's environment changes: HTTPS auth from the token through GIT_ASKPASS (never argv), an author."""
    askpass = tmp / "askpass.sh"
    askpass.write_text('#!/bin/sh\n'
                       'case "$1" in Username*) echo x-access-token;; *) echo "$WHEELFACTORY_GIT_TOKEN";; esac\n')
    askpass.chmod(stat.S_IRWXU)
    return {
        "GIT_ASKPASS": str(askpass),
        "WHEELFACTORY_GIT_TOKEN": token,
        "GIT_AUTHOR_NAME": "wheelfactory", "GIT_AUTHOR_EMAIL": "wheelfactory@users.noreply.github.com",
        "GIT_COMMITTER_NAME": "wheelfactory", "GIT_COMMITTER_EMAIL": "wheelfactory@users.noreply.github.com",
    }


def _ls_remote(remote: str, branch: str, token: str) -> bool:
    """Whether the Pages branch exists; PublishError when the remote cannot be read."""
    with tempfile.TemporaryDirectory(prefix="wf-git-") as tmp:
        out = git(["ls-remote", "--heads", remote, f"refs/heads/{branch}"], env=_askpass_env(token, Path(tmp)),
                  secrets=[token], error=PublishError,
                  what=f"the Pages remote (publish.pages-remote) {remote!r} is not reachable; check the URL and "
                       f"the token's access; nothing was changed (git ls-remote)").stdout
        return bool(out.strip())


def _pages_ignore(tree: Path, files_base: str):
    """shutil.copytree ignore: never the state; files/ only when co-hosted."""
    top = os.path.abspath(tree)
    skip = {STATE_DIR} | ({FILES} if files_base else set())

    def ignore(directory: str, names: list[str]) -> set[str]:
        return skip & set(names) if os.path.abspath(directory) == top else set()

    return ignore


@dataclass(frozen=True)
class PagesPush:
    """What :func:`push_pages` did: ``status`` ("pushed <sha>" or "unchanged") and ``unlinked`` (asset
    name -> ISO time since when no pushed index links it)."""

    status: str
    unlinked: dict[str, str]


def _index_digest(index_dir: Path) -> str:
    """The digest ``invoke index`` wrote into the index's :data:`DIGEST` ("sha256:…")."""
    return str(_read_marker(index_dir / DIGEST).get("digest", ""))


def _iso_or(value: object, default: str) -> str:
    """``value`` when it is an ISO 8601 time with a zone (a marker edited by hand may hold anything), else ``default``."""
    try:
        return str(value) if _dt.datetime.fromisoformat(str(value)).tzinfo else default
    except ValueError:
        return default


def _read_marker(path: Path) -> dict:
    try:
        marker = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def push_pages(t: GitHubTarget, tree: Path, files_base: str, message: str, *,
               unlinked: list[str] = ()) -> PagesPush:
    """Commit ``tree`` (pages, not the state; files/ only when co-hosted) with the :data:`MARKER` to the
    Pages branch and push. The marker holds, for each asset in ``unlinked``, since when no pushed index
    links it (kept from the branch's previous marker, so the prune grace period runs across publishes);
    which index is live is told by the tree's own :data:`DIGEST`."""
    with tempfile.TemporaryDirectory(prefix="wf-pages-") as tmp:
        env = _askpass_env(t.token, Path(tmp))
        work = Path(tmp) / "pages"
        work.mkdir()

        def run(*args: str, what: str = "push the index", check: bool = True):
            return git(args, cwd=work, env=env, secrets=[t.token], error=PublishError, what=what, check=check)

        run("init", "-q")
        exists = _ls_remote(t.remote, t.branch, t.token)
        previous: dict = {}
        if exists:
            run("fetch", "-q", "--depth", "1", t.remote, f"refs/heads/{t.branch}")
            run("checkout", "-q", "-B", t.branch, "FETCH_HEAD")
            previous = _read_marker(work / MARKER)
            for p in work.iterdir():
                if p.name != ".git":
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
        else:
            run("checkout", "-q", "--orphan", t.branch)
        shutil.copytree(tree, work, dirs_exist_ok=True, ignore=_pages_ignore(tree, files_base))
        (work / ".nojekyll").write_text("")  # serve files/ and dot-files as they are
        now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        before = previous.get("unlinked") if isinstance(previous.get("unlinked"), dict) else {}
        marker = {"unlinked": {n: _iso_or(before.get(n), now) for n in unlinked}}
        (work / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
        run("add", "-A")
        if exists and run("diff", "--cached", "--quiet", check=False).returncode == 0:
            return PagesPush("unchanged", marker["unlinked"])
        run("commit", "-q", "-m", message)
        run("push", "-q", t.remote, f"HEAD:refs/heads/{t.branch}",
            what="push the index (someone else pushed meanwhile? re-run `invoke publish`)")
        return PagesPush(f"pushed {run('rev-parse', '--short', 'HEAD').stdout.strip()}", marker["unlinked"])


def wait_until_live(site: str, digest: str, timeout: float) -> None:
    """Poll ``site``'s :data:`DIGEST` until it holds ``digest`` (the pushed pages are deployed), at most
    ``timeout`` seconds, with progress. Each request bypasses caches: GitHub Pages answers with
    ``Cache-Control: max-age=600`` and its CDN keys the cache by the whole URL, so a fresh query
    string reaches the deployment. Raises PublishError when the time is up (nothing is pruned then)."""
    http = session(retries=2)
    url = urljoin(site, DIGEST)
    start, pause, seen, noted = time.monotonic(), 0.25, "nothing yet", 0.0
    with ui.console.status(f"waiting for GitHub Pages to serve the new index at {site}") as status:
        while True:
            try:
                r = http.get(url, params={"wf-fresh": uuid.uuid4().hex}, timeout=DEFAULT_TIMEOUT,
                             headers={"Cache-Control": "no-cache", "Pragma": "no-cache"})
                live = r.json().get("digest") if r.status_code == 200 else None
                seen = f"HTTP {r.status_code}" if live is None else f"index {str(live)[:19]}…"
            except (requests.RequestException, ValueError, AttributeError) as e:
                live, seen = None, type(e).__name__
            waited = time.monotonic() - start
            if live == digest:
                ui.info(f"GitHub Pages serves the new index ({waited:.0f} s after the push)")
                return
            if waited + pause > timeout:
                raise PublishError(
                    f"the new index was pushed, but {url} still did not serve it after {timeout:.0f} s "
                    f"(publish.deploy-timeout; last answer: {seen}); check the 'pages build and deployment' run "
                    f"in the repository's Actions tab; nothing was pruned; re-run `invoke publish` once the site "
                    f"is deployed")
            progress = f"waiting for GitHub Pages to serve the new index at {site} ({waited:.0f} s, live: {seen})"
            status.update(progress)
            if waited >= noted + 30:  # a line in logs too, where the status line is not drawn
                ui.info(progress)
                noted = waited
            time.sleep(pause)
            pause = min(pause * 2, 10.0)
