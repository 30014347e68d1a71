"""The ``github`` publish target: release assets through the REST API, the index pushed to Pages with git.

The wheels (with their ``.metadata``, build logs and dist records) become assets
of a GitHub release (``publish.repository``, ``publish.release-tag``; the release
is created when missing), through the REST API at ``publish.api-url``. The
index is then pushed with git to ``publish.pages-branch`` of
``publish.pages-remote``. The token comes from the environment variable named
by ``publish.token-env``; it reaches git only through GIT_ASKPASS (never argv)
and is masked wherever git's output is shown.

Every asset is compared with the local file by sha256 (the asset's ``digest``,
or its bytes when the server gives none). Missing assets are uploaded; an asset
with the same name and different content is flagged and replaced (deleted and
re-uploaded), and a broken upload (state "starter") too. While an asset the
live index links to is being replaced, an interim index without that wheel is
pushed first, so no published page ever points at a missing or mismatching
file. After uploading, every asset the index links to is re-listed and checked
(state, size, digest, download URL = the index's link) before the index is
pushed; assets the index no longer lists are deleted only after that
(``publish.prune``).

An interrupted publish (network error, HTTP 5xx, kill) leaves the live index as
it was (or the interim one); re-running compares again and completes it. A
missing token, a wrong repository or remote, a dist record without its wheel:
one message, and nothing is changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

from .. import ui
from .._util.github import AlreadyExists, Releases
from .._util.proc import git
from ..index import FILES, STATE_DIR, Settings, build_index, load_state, settings_from
from ..settings.factory import Config, PublishSettings
from .artifacts import Artifact, PublishError, PublishReport, artifacts, check_digest, current_index

_SAFE_ASSET = re.compile(r"^[A-Za-z0-9._-]+$")  # names GitHub keeps as they are
_OURS = (".whl", ".whl.metadata", ".whl.log", ".whl.json")  # asset names publish manages (and may prune)
CONTENT_TYPES = {"wheel": "application/octet-stream", "metadata": "text/plain", "log": "text/plain",
                 "record": "application/json"}
RELEASE_BODY = "Wheels published by wheelfactory. Install with the index on the project's Pages site."


def releases(pub: PublishSettings, token: str, *, command: str) -> Releases:
    """The release endpoints of ``publish.repository``; ``command`` is what to re-run after an outage."""
    return Releases(pub.api_url, pub.repository, token, token_env=pub.token_env, timeout=pub.timeout,
                    retries=pub.retries, again=f"re-run `{command}`, it resumes where it stopped")


@dataclass
class GitHubTarget:
    """A checked github target: the client, the Pages remote and branch, the release tag."""

    config: Config
    token: str
    client: Releases
    remote: str
    branch: str
    tag: str


def preflight(config: Config) -> GitHubTarget:
    """Everything that can be checked before anything is changed (token, names, repository, remote)."""
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
    settings_from(config)  # the files base URL must be known
    _check_asset_names(config.paths.dist)
    client = releases(pub, token, command="invoke publish")
    client.repository_info()
    _ls_remote(pub.pages_remote, pub.pages_branch, token)
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


def publish_github(config: Config, *, dry_run: bool = False, force: bool = False) -> PublishReport:
    """Release assets first, the Pages index last (see the module docstring).

    ``force``: replace assets even where the release holds a newer build under
    the same name. Raises PublishError (or GitHubError) with one message.
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

    def live_replaced(self) -> set[str]:
        """Wheels whose linked files are live on the release and about to be replaced.

        (A record is not linked by the index: replacing it needs no interim index.)
        """
        return {a.wheel for a, asset in self.stale if asset.get("state") == "uploaded" and a.kind != "record"}

    def not_ready(self) -> set[str]:
        return {a.wheel for a in self.todo if a.kind != "record"} | {a.wheel for a, _ in self.stale
                                                                      if a.kind != "record"}


def _publish(config: Config, t: GitHubTarget, index_dir: Path, *, dry_run: bool, force: bool) -> PublishReport:
    settings = settings_from(config)
    arts = artifacts(config, load_state(index_dir), index_dir)
    report = PublishReport(target=f"{t.client.api} {config.publish.repository}@{t.tag}")
    release, created = (t.client.release_by_tag(t.tag), False) if dry_run else t.client.ensure_release(
        t.tag, t.tag, RELEASE_BODY)
    if created:
        ui.info(f"created release {t.tag} on {config.publish.repository}")
    assets = {a["name"]: a for a in t.client.assets(release)} if release else {}
    work = _compare(t, arts, assets, report, force=force)
    if dry_run:
        for a in work.todo:
            report.count(a, "uploaded")
        for a, _ in work.stale:
            report.count(a, "replaced")
        report.pages = "would be pushed"
        return report
    if work.live_replaced():
        _push_interim(config, t, settings.files_base, work, report)
    _upload_all(t, release, arts, work, report)
    assets = {a["name"]: a for a in t.client.assets(release)}
    _check_release(arts, assets, settings)
    wheels = sum(a.kind == "wheel" for a in arts)
    report.pages = push_pages(t, index_dir, settings.files_base, f"Index: {wheels} wheels")
    if config.publish.prune:  # last: assets the live index no longer links to
        wanted = {a.name for a in arts}
        for name, a in sorted(assets.items()):
            if name.endswith(_OURS) and name not in wanted:
                t.client.delete_asset(a)
                report.count_pruned(name)
    return report


def _compare(t: GitHubTarget, arts: list[Artifact], assets: dict[str, dict], report: PublishReport, *,
             force: bool) -> _Work:
    """Sort every file into unchanged, to upload, or stale; refuse to overwrite newer builds unless ``force``."""
    work, conflicts = _Work(), []
    for art in arts:
        asset = assets.get(art.name)
        if asset is None:
            work.todo.append(art)
        elif asset.get("state") != "uploaded":
            work.stale.append((art, asset))  # a broken upload: nothing serves it
        elif asset.get("size") == art.source.stat().st_size and _remote_sha256(t, asset) == art.digest():
            report.count(art, "unchanged")
        else:
            remote_built = _remote_built_at(asset)
            if art.kind == "wheel" and remote_built > art.built_at and not force:
                conflicts.append(f"  - {art.name}: the release has a different build from {remote_built}, "
                                 f"newer than dist/'s ({art.built_at})")
            work.stale.append((art, asset))
    if conflicts:
        raise PublishError(
            "the release holds newer builds under the same file names than dist/ does:\n" + "\n".join(conflicts)
            + "\n  fix: rebuild these wheels here (they get a new build tag), or pass --force to replace the "
            "release's copies with dist/'s; nothing was changed"
        )
    for art, asset in work.stale:
        if asset.get("state") == "uploaded" and art.kind != "record":
            ui.warn(f"{art.name}: the release holds different content under this name; replacing it with dist/'s")
    return work


def _push_interim(config: Config, t: GitHubTarget, files_base: str, work: _Work, report: PublishReport) -> None:
    """While a live asset is replaced, the live index must not link to it: push an index
    without the wheels whose files are not (yet) on the release as they should be."""
    replaced = work.live_replaced()
    with tempfile.TemporaryDirectory(prefix="interim-index-") as tmp:
        interim = Path(tmp) / "index"
        build_index(config, out=interim, exclude=replaced | work.not_ready(), quiet=True)
        sha = push_pages(t, interim, files_base, f"Interim index while {len(replaced)} wheel(s) are replaced")
    report.interim = True
    ui.info(f"pushed an interim index without {len(replaced)} wheel(s) being replaced ({sha})")


def _upload_all(t: GitHubTarget, release: dict, arts: list[Artifact], work: _Work, report: PublishReport) -> None:
    """Upload what is missing or stale: a wheel first, then its .metadata and log (the order of ``arts``)."""
    position = {a.name: i for i, a in enumerate(arts)}
    todo = sorted([(a, None) for a in work.todo] + work.stale, key=lambda x: position[x[0].name])
    total = sum(a.source.stat().st_size for a, _ in todo)
    with _progress() as progress:
        bar = progress.add_task("uploading", total=total)
        for art, old in todo:
            data = _read_verified(art)
            if old is not None:
                t.client.delete_asset(old)
            _upload(t, release, art, data)
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


def _remote_built_at(asset: dict) -> str:
    label = asset.get("label") or ""
    return label[len("built "):] if label.startswith("built ") else asset.get("updated_at") or ""


def _upload(t: GitHubTarget, release: dict, art: Artifact, data: bytes) -> dict:
    """Upload one asset; a leftover from an earlier attempt (422 already_exists) is resolved."""
    label = f"built {art.built_at}" if art.kind == "wheel" else ""
    for attempt in range(2):
        try:
            asset = t.client.upload_asset(release, art.name, data, CONTENT_TYPES[art.kind], label)
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


def push_pages(t: GitHubTarget, tree: Path, files_base: str, message: str) -> str:
    """Commit ``tree`` (pages, not the state; files/ only when co-hosted) to the Pages branch and push.

    Returns "pushed <short sha>", or "unchanged" when the branch already holds it.
    """
    with tempfile.TemporaryDirectory(prefix="wf-pages-") as tmp:
        env = _askpass_env(t.token, Path(tmp))
        work = Path(tmp) / "pages"
        work.mkdir()

        def run(*args: str, what: str = "push the index", check: bool = True):
            return git(args, cwd=work, env=env, secrets=[t.token], error=PublishError, what=what, check=check)

        run("init", "-q")
        exists = _ls_remote(t.remote, t.branch, t.token)
        if exists:
            run("fetch", "-q", "--depth", "1", t.remote, f"refs/heads/{t.branch}")
            run("checkout", "-q", "-B", t.branch, "FETCH_HEAD")
            for p in work.iterdir():
                if p.name != ".git":
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
        else:
            run("checkout", "-q", "--orphan", t.branch)
        shutil.copytree(tree, work, dirs_exist_ok=True, ignore=_pages_ignore(tree, files_base))
        (work / ".nojekyll").write_text("")  # serve files/ and dot-files as they are
        run("add", "-A")
        if exists and run("diff", "--cached", "--quiet", check=False).returncode == 0:
            return "unchanged"
        run("commit", "-q", "-m", message)
        run("push", "-q", t.remote, f"HEAD:refs/heads/{t.branch}",
            what="push the index (someone else pushed meanwhile? re-run `invoke publish`)")
        return f"pushed {run('rev-parse', '--short', 'HEAD').stdout.strip()}"
