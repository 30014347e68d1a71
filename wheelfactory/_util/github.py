"""A small client for GitHub's release and release-asset REST endpoints.

Only what publishing needs: the repository, a release by tag (created when
missing), its assets (paginated), asset upload (through the ``upload_url``
template on the uploads host), delete and download. The base URL is a setting
(``publish.api-url``) so GitHub Enterprise, and the local test double, work the
same way. Retries with backoff on 5xx, timeouts and connection resets come from
:mod:`wheelfactory.http`; POSTs are retried too, and the duplicates a retried
POST can cause (a release or an asset that was in fact created) are resolved
by the caller from the 422 ``already_exists`` answer.

The token travels only in the Authorization header; messages never contain it.
"""

from __future__ import annotations

import re
from typing import Any

import requests

from . import http
from ..errors import FactoryError

API_VERSION = "2022-11-28"
_ALL_METHODS = frozenset({"GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS"})


class GitHubError(FactoryError):
    """GitHub refused or failed a request; the message says what to do."""


class AssetExists(GitHubError):
    """An asset with this name is already on the release (422 already_exists)."""


def _mask(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


class Releases:
    def __init__(self, api_url: str, repository: str, token: str, *, timeout: float = 120, retries: int = 5,
                 backoff: float = 0.5, token_env: str = "GITHUB_TOKEN"):
        self.api = api_url.rstrip("/")
        self.repository = repository
        self.token = token
        self.token_env = token_env
        self.timeout = (min(10.0, timeout), timeout)
        self.retries = retries
        self.session = http.session(retries=retries, backoff=backoff, methods=_ALL_METHODS)
        self.session.headers.update({
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
        })

    # --- plumbing -------------------------------------------------------------------

    def _request(self, method: str, url: str, *, ok: tuple[int, ...] = (200,), what: str, **kw) -> requests.Response:
        try:
            r = self.session.request(method, url, timeout=self.timeout, **kw)
        except requests.RequestException as e:
            raise GitHubError(
                f"{what}: no answer from {self._host(url)} after {self.retries} retries "
                f"({type(e).__name__}); re-run `invoke publish`, it resumes where it stopped"
            ) from None
        if r.status_code in ok:
            return r
        message = self._message(r)
        if r.status_code == 401:
            raise GitHubError(
                f"{what}: GitHub rejected the token in ${self.token_env} (401 {message}); "
                f"create a token with 'contents: write' on {self.repository} and export it as ${self.token_env}"
            )
        if r.status_code == 403:
            raise GitHubError(
                f"{what}: 403 {message}; the token in ${self.token_env} needs 'contents: write' on "
                f"{self.repository} (or the rate limit was hit: wait and re-run)"
            )
        if r.status_code == 422 and any(e.get("code") == "already_exists" for e in self._errors(r)):
            raise AssetExists(f"{what}: already exists")
        if r.status_code >= 500:
            raise GitHubError(
                f"{what}: GitHub answered {r.status_code} {message} after {self.retries} retries; "
                f"re-run `invoke publish`, it resumes where it stopped"
            )
        raise GitHubError(f"{what}: GitHub answered {r.status_code} {message}")

    def _message(self, r: requests.Response) -> str:
        try:
            msg = str(r.json().get("message", ""))
        except ValueError:
            msg = r.reason or ""
        return _mask(msg, self.token)

    @staticmethod
    def _errors(r: requests.Response) -> list[dict]:
        try:
            return [e for e in r.json().get("errors", []) if isinstance(e, dict)]
        except (ValueError, AttributeError):
            return []

    @staticmethod
    def _host(url: str) -> str:
        return url.split("/")[2] if "://" in url else url

    def _repo_url(self, path: str = "") -> str:
        return f"{self.api}/repos/{self.repository}{path}"

    # --- the endpoints ---------------------------------------------------------------

    def repository_info(self) -> dict[str, Any]:
        """The repository; a clear error when it does not exist or the token cannot see it."""
        r = self._request("GET", self._repo_url(), ok=(200, 404), what=f"repository {self.repository}")
        if r.status_code == 404:
            raise GitHubError(
                f"repository '{self.repository}' not found at {self.api} (publish.repository); "
                f"check the name, and that the token in ${self.token_env} can see it "
                f"(GitHub answers 404 for private repositories it hides); nothing was changed"
            )
        return r.json()

    def release_by_tag(self, tag: str) -> dict[str, Any] | None:
        r = self._request("GET", self._repo_url(f"/releases/tags/{tag}"), ok=(200, 404), what=f"release {tag}")
        return r.json() if r.status_code == 200 else None

    def create_release(self, tag: str, name: str, body: str) -> dict[str, Any]:
        payload = {"tag_name": tag, "name": name, "body": body, "draft": False, "prerelease": False}
        try:
            r = self._request("POST", self._repo_url("/releases"), ok=(201,), json=payload, what=f"create release {tag}")
            return r.json()
        except AssetExists:
            # A retried POST whose first attempt did create it.
            existing = self.release_by_tag(tag)
            if existing is None:
                raise GitHubError(f"create release {tag}: GitHub says it exists but cannot find it; re-run") from None
            return existing

    def ensure_release(self, tag: str, name: str, body: str) -> tuple[dict[str, Any], bool]:
        rel = self.release_by_tag(tag)
        if rel is not None:
            return rel, False
        return self.create_release(tag, name, body), True

    def assets(self, release: dict[str, Any]) -> list[dict[str, Any]]:
        url = self._repo_url(f"/releases/{release['id']}/assets")
        params: dict | None = {"per_page": 100}
        out: list[dict[str, Any]] = []
        while url:
            r = self._request("GET", url, params=params, what=f"list assets of release {release.get('tag_name')}")
            out += r.json()
            url = r.links.get("next", {}).get("url")
            params = None  # the next link carries them
        return out

    def delete_asset(self, asset: dict[str, Any]) -> None:
        self._request("DELETE", asset["url"], ok=(204, 404), what=f"delete asset {asset['name']}")

    def upload_asset(self, release: dict[str, Any], name: str, data: bytes, content_type: str,
                     label: str = "") -> dict[str, Any]:
        url = re.sub(r"\{[^}]*\}$", "", release["upload_url"])  # RFC 6570 {?name,label}
        params = {"name": name}
        if label:
            params["label"] = label
        r = self._request("POST", url, ok=(201,), params=params, data=data,
                          headers={"Content-Type": content_type}, what=f"upload {name}")
        return r.json()

    def download(self, asset: dict[str, Any]) -> bytes:
        r = self._request("GET", asset["url"], headers={"Accept": "application/octet-stream"},
                          what=f"download asset {asset['name']}")
        return r.content
