"""One client for GitHub's REST API, and the two sets of endpoints the factory uses.

:class:`Client` is the one place that knows how to talk to GitHub
(https://docs.github.com/en/rest/using-the-rest-api/getting-started-with-the-rest-api):

* the token goes in the ``Authorization: Bearer`` header, never in a URL or a
  message (an empty token sends no header: public data needs none);
* every request names the API version (``X-GitHub-Api-Version``) and asks for
  ``application/vnd.github+json``;
* retries with backoff on 5xx, timeouts and connection resets come from
  :func:`wheelfactory._util.http.session` (urllib3 ``Retry``), for the methods
  the caller says are safe to replay;
* lists follow the ``Link: <…>; rel="next"`` header
  (https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api);
* the ``x-ratelimit-*`` headers of each answer are read into :class:`RateLimit`
  (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api):
  when the primary limit is used up the client waits for the reset if it is
  near (:class:`Pacing` ``reset_wait``), else stops with one message giving the
  reset time; a secondary limit (403/429 with ``Retry-After``, or GitHub's
  "secondary rate limit" message) is waited out (``Retry-After``, else at least
  a minute) and the request sent again; writes (POST, PATCH, PUT, DELETE) are
  spaced at least a second apart, as GitHub's best practices ask
  (https://docs.github.com/en/rest/using-the-rest-api/best-practices-for-using-the-rest-api).
  urllib3's ``Retry`` honours ``Retry-After`` only for 413/429/503, not for
  GitHub's 403, so these waits are the client's own;
* a refusal becomes one message (:func:`error_text`): what was being done,
  the status, GitHub's ``message`` and ``errors[]`` detail, what to do, and the
  ``documentation_url`` GitHub gave.

:class:`Releases` (publish, fetch-dist) and :class:`Runners` (``invoke runners.*``)
are the endpoints on top of it. The base URL is a setting (``publish.api-url``,
``[runners].api-url``), so GitHub Enterprise and the local test doubles
(tests/fakes/) work the same way.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from .. import ui
from ..errors import FactoryError
from .http import DEFAULT_TIMEOUT, session
from .simple_api import short_reason

API_VERSION = "2022-11-28"
ALL_METHODS = frozenset({"GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS"})
WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
PACING_ENV = "WHEELFACTORY_GITHUB_PACING"  # tests only: shorter waits against the local stand-in


@dataclass(frozen=True)
class Pacing:
    """How long the client waits for GitHub's limits (seconds).

    ``write_interval``: at least this long between two writes (GitHub asks for one
    second); ``secondary_wait``: the wait after a secondary limit without
    ``Retry-After`` (GitHub: at least one minute); ``reset_wait``: wait for the
    primary limit's reset when it is at most this far away, else stop;
    ``secondary_retries``: how often a request is sent again after a secondary limit.
    Only tests change these, through ``$WHEELFACTORY_GITHUB_PACING``
    (``write_interval=0.01,secondary_wait=0.1``) — against the local stand-in.
    """

    write_interval: float = 1.0
    secondary_wait: float = 60.0
    reset_wait: float = 120.0
    secondary_retries: int = 3

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "Pacing":
        """The defaults, with ``name=seconds`` pairs of ``$WHEELFACTORY_GITHUB_PACING`` applied."""
        given = dict(item.split("=", 1) for item in environ.get(PACING_ENV, "").split(",") if "=" in item)
        return cls(**{k: type(getattr(cls, k))(v) for k, v in given.items() if k in cls.__dataclass_fields__})


class GitHubError(FactoryError):
    """GitHub refused or failed a request; the message says what to do."""


class AlreadyExists(GitHubError):
    """GitHub answered 422 with the error code ``already_exists`` (a release, an asset)."""


@dataclass(frozen=True)
class RateLimit:
    """The ``x-ratelimit-*`` headers of one answer: requests left in the window, and when it resets (UTC)."""

    limit: int
    remaining: int
    reset: _dt.datetime | None
    resource: str = "core"

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> "RateLimit | None":
        """None when the answer carries no rate-limit headers (GitHub Enterprise with limits off, fakes)."""
        remaining = headers.get("x-ratelimit-remaining", "")
        if not remaining.isdigit():
            return None
        limit, reset = headers.get("x-ratelimit-limit", ""), headers.get("x-ratelimit-reset", "")
        return cls(
            limit=int(limit) if limit.isdigit() else 0,
            remaining=int(remaining),
            reset=_dt.datetime.fromtimestamp(int(reset), _dt.timezone.utc) if reset.isdigit() else None,
            resource=headers.get("x-ratelimit-resource", "core"),
        )

    @property
    def exhausted(self) -> bool:
        return self.remaining == 0

    def seconds_to_reset(self) -> float | None:
        return None if self.reset is None else max(0.0, (self.reset - _dt.datetime.now(_dt.timezone.utc))
                                                   .total_seconds())


def secondary_wait(r: requests.Response, default: float) -> float | None:
    """Seconds to wait when ``r`` is a secondary rate limit (403/429 with ``Retry-After``, or GitHub's
    "secondary rate limit" message, and the primary limit not used up), else None
    (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit)."""
    if r.status_code not in (403, 429):
        return None
    limit = RateLimit.from_headers(r.headers)
    if limit is not None and limit.exhausted:
        return None
    after = r.headers.get("Retry-After", "")
    if after.isdigit():
        return float(after)
    return default if "secondary rate limit" in str(_body(r).get("message", "")).lower() else None


@dataclass(frozen=True)
class Advice:
    """What the messages of one set of endpoints tell the user to do.

    ``scope``: what the requests are about ("repository octo/wheels");
    ``scope_key``: the setting naming it; ``needs``: the token's rights;
    ``again``: what to do after a network failure or a 5xx.
    """

    scope: str
    scope_key: str
    needs: str
    again: str


def _body(r: requests.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_codes(r: requests.Response) -> list[str]:
    return [e.get("code", "") for e in _body(r).get("errors") or [] if isinstance(e, dict)]


def _said(body: Mapping[str, Any], reason: str) -> str:
    """GitHub's ``message`` plus the detail of its ``errors[]`` (strings, or objects with a message or code)."""
    said = str(body.get("message") or reason or "")
    details = []
    for e in body.get("errors") or []:
        if isinstance(e, dict):
            where = " ".join(str(e[k]) for k in ("resource", "field") if e.get(k))
            e = f"{where}: {e['message']}" if e.get("message") else f"{where} {e.get('code', '')}".strip()
        details.append(str(e))
    return f"{said}: {'; '.join(details)}" if details else said


def error_text(r: requests.Response, what: str, advice: Advice, *, token_env: str, retries: int) -> str:
    """One message for a refused request: ``what`` (a verb phrase) failed, why, and the fix.

    Status rules from https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api:
    401 a bad token, 403 missing rights or an exhausted rate limit (429 too), 404
    also for what the token may not see, 409/422 a refused change.
    """
    body, s = _body(r), r.status_code
    said = _said(body, r.reason)
    limit = RateLimit.from_headers(r.headers)
    if s in (403, 429) and limit is not None and limit.exhausted:
        when = limit.reset.isoformat() if limit.reset else "later"
        text = (f"GitHub API rate limit exhausted when trying to {what}; it resets at {when}: "
                f"run the command again after that")
    elif s == 401:
        text = (f"GitHub rejected the token in ${token_env} ({s} {said}) when trying to {what}: it is expired, "
                f"revoked or mistyped; create a token with {advice.needs} and export it as ${token_env}")
    elif s == 403:
        text = f"the token in ${token_env} may not {what} ({s} {said}): it needs {advice.needs}"
    elif s == 404:
        text = (f"GitHub does not know the {advice.scope}, or the token in ${token_env} cannot see it "
                f"({s} {said}) when trying to {what}; check {advice.scope_key}")
    elif s == 409:
        text = f"GitHub refused to {what}: conflict ({said})"
    elif s == 422:
        text = f"GitHub refused to {what}: {said} (422)"
    elif s >= 500:
        text = f"the GitHub API answered {s} {said} when trying to {what}, after {retries} retries; {advice.again}"
    else:
        text = f"the GitHub API answered {s} {said} when trying to {what}"
    if body.get("documentation_url"):
        text += f" (GitHub's documentation: {body['documentation_url']})"
    return text


class Client:
    """Requests to one GitHub API (``api_url``) with one token; see the module docstring.

    ``timeout``: seconds (connect, read) before a request is retried.
    ``retry_methods``: the HTTP methods replayed after a failure (POSTs create
    things: replay them only where a duplicate is resolved by the caller).
    ``http``: a ready Session (tests pass one with other retries).
    """

    _write_lock = threading.Lock()
    _last_write = 0.0  # time.monotonic() of the last write of any client in this process

    def __init__(self, api_url: str, token: str, *, advice: Advice, token_env: str = "GITHUB_TOKEN",
                 timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, retries: int = 5, backoff: float = 0.5,
                 retry_methods: frozenset[str] | None = None, http: requests.Session | None = None,
                 pacing: Pacing | None = None):
        self.api = api_url.rstrip("/")
        self.pacing = pacing or Pacing.from_env(os.environ)
        self.requests = 0  # requests sent (for the benchmarks)
        self.advice = advice
        self.token_env = token_env
        self.timeout = timeout
        self.http = http or session(retries=retries, backoff=backoff, methods=retry_methods)
        self.headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._token = token
        self.rate_limit: RateLimit | None = None  # as of the last answer

    @property
    def retries(self) -> int:
        """How often the session retries a failed request (for messages)."""
        retry = self.http.get_adapter(self.api).max_retries
        return retry.total if isinstance(retry.total, int) else 0

    def request(self, method: str, url: str, *, ok: tuple[int, ...] = (200,), what: str,
                **kw: Any) -> requests.Response:
        """One request (``url``: absolute, or a path under the API); an answer not in ``ok`` raises.

        Raises :class:`AlreadyExists` for 422 ``already_exists``, GitHubError
        with :func:`error_text` for any other refusal, and GitHubError when
        GitHub cannot be reached after the retries.
        """
        url = url if "://" in url else f"{self.api}{url}"
        headers = {**self.headers, **kw.pop("headers", {})}
        for attempt in range(self.pacing.secondary_retries + 1):
            self._wait_for_primary(what)
            self._space_writes(method)
            try:
                r = self.http.request(method, url, headers=headers, timeout=self.timeout, **kw)
            except requests.RequestException as e:
                origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
                raise GitHubError(f"cannot reach the GitHub API at {origin} to {what} ({short_reason(e)}, after "
                                  f"{self.retries} retries); {self.advice.again}") from None
            self.requests += 1
            self.rate_limit = RateLimit.from_headers(r.headers) or self.rate_limit
            wait = secondary_wait(r, self.pacing.secondary_wait)
            if wait is None and self.rate_limit is not None and self.rate_limit.exhausted and r.status_code in (
                    403, 429):
                wait = self._primary_wait()
            if wait is None or attempt == self.pacing.secondary_retries:
                break
            ui.info(f"GitHub asks to slow down ({r.status_code}); waiting {wait:.0f} s, then trying again to {what}")
            time.sleep(wait)
        if r.status_code in ok:
            return r
        if r.status_code == 422 and "already_exists" in _error_codes(r):
            raise AlreadyExists(f"{what}: already exists")
        raise GitHubError(self._mask(error_text(r, what, self.advice, token_env=self.token_env,
                                                retries=self.retries)))

    def _primary_wait(self) -> float | None:
        """Seconds until the used-up primary limit resets, when that is near enough to wait for."""
        left = self.rate_limit.seconds_to_reset() if self.rate_limit else None
        return left + 1 if left is not None and left <= self.pacing.reset_wait else None

    def _wait_for_primary(self, what: str) -> None:
        """Before a request: with the primary limit used up, wait for a near reset or stop with one message."""
        if self.rate_limit is None or not self.rate_limit.exhausted:
            return
        wait = self._primary_wait()
        if wait is None:
            when = self.rate_limit.reset.isoformat() if self.rate_limit.reset else "later"
            raise GitHubError(f"GitHub API rate limit exhausted ({self.rate_limit.limit} requests per hour) when "
                              f"trying to {what}; it resets at {when}: run the command again after that")
        ui.info(f"GitHub API rate limit used up; waiting {wait:.0f} s for its reset")
        time.sleep(wait)
        self.rate_limit = None

    def _space_writes(self, method: str) -> None:
        if method not in WRITES:
            return
        with Client._write_lock:
            pause = Client._last_write + self.pacing.write_interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            Client._last_write = time.monotonic()

    def paginate(self, url: str, *, what: str, items: Callable[[Any], list] = lambda body: body,
                 per_page: int = 100) -> list:
        """Every item of a list endpoint, page by page along ``Link: rel="next"``.

        ``items(body)`` picks the list out of one page's JSON (some endpoints
        wrap it: ``{"total_count": …, "runners": […]}``).
        """
        out: list = []
        params: dict | None = {"per_page": per_page}
        next_url: str | None = url
        while next_url:
            r = self.request("GET", next_url, params=params, what=what)
            out += items(r.json())
            next_url = r.links.get("next", {}).get("url")
            params = None  # the next link carries them
        return out

    def _mask(self, text: str) -> str:
        return ui.mask_secrets(text.replace(self._token, "***") if self._token else text)


# --- releases ---------------------------------------------------------------------------


class Releases(Client):
    """The release and release-asset endpoints of one repository
    (https://docs.github.com/en/rest/releases).

    POSTs are retried too; the duplicates a retried POST can cause (a release or
    an asset that was in fact created) come back as :class:`AlreadyExists`,
    which the callers resolve.
    """

    def __init__(self, api_url: str, repository: str, token: str, *, token_env: str = "GITHUB_TOKEN",
                 timeout: float = 120, retries: int = 5, backoff: float = 0.5, again: str):
        advice = Advice(scope=f"repository {repository}", scope_key="publish.repository",
                        needs=f"'contents: write' on {repository}", again=again)
        super().__init__(api_url, token, advice=advice, token_env=token_env, timeout=(min(10.0, timeout), timeout),
                         retries=retries, backoff=backoff, retry_methods=ALL_METHODS)
        self.repository = repository

    def _repo(self, path: str = "") -> str:
        return f"/repos/{self.repository}{path}"

    def repository_info(self) -> dict[str, Any]:
        """GET /repos/{owner}/{repo} (https://docs.github.com/en/rest/repos/repos#get-a-repository).

        Raises GitHubError naming the fix when it does not exist or the token cannot see it.
        """
        r = self.request("GET", self._repo(), ok=(200, 404), what=f"look up the repository {self.repository}")
        if r.status_code == 404:
            raise GitHubError(
                f"repository '{self.repository}' not found at {self.api} (publish.repository); "
                f"check the name, and that the token in ${self.token_env} can see it "
                f"(GitHub answers 404 for private repositories it hides); nothing was changed"
            )
        return r.json()

    def pages_site(self, repository: str) -> dict[str, Any] | None:
        """GET /repos/{owner}/{repo}/pages (``build_type``, ``source``), or None when Pages is off
        (https://docs.github.com/en/rest/pages/pages#get-a-apiname-pages-site)."""
        r = self.request("GET", f"/repos/{repository}/pages", ok=(200, 404),
                         what=f"read the GitHub Pages settings of {repository}")
        return r.json() if r.status_code == 200 else None

    def immutable_releases(self) -> bool | None:
        """Whether the repository makes every published release immutable: GET
        /repos/{owner}/{repo}/immutable-releases answers 200 ``{"enabled": true}``, else 404
        (https://docs.github.com/en/rest/repos/repos#check-if-immutable-releases-are-enabled-for-a-repository).
        None when the token may not read it (it needs 'Administration: read', which a workflow's
        GITHUB_TOKEN never has): the release's own ``immutable`` field tells then."""
        r = self.request("GET", self._repo("/immutable-releases"), ok=(200, 403, 404),
                         what="read the repository's release immutability setting")
        if r.status_code == 403:
            return None
        return r.status_code == 200 and bool(r.json().get("enabled"))

    def release_by_tag(self, tag: str) -> dict[str, Any] | None:
        """GET /repos/{owner}/{repo}/releases/tags/{tag}, or None
        (https://docs.github.com/en/rest/releases/releases#get-a-release-by-tag-name)."""
        r = self.request("GET", self._repo(f"/releases/tags/{tag}"), ok=(200, 404), what=f"look up release {tag}")
        return r.json() if r.status_code == 200 else None

    def releases(self) -> list[dict[str, Any]]:
        """GET /repos/{owner}/{repo}/releases, every page, each with its assets
        (https://docs.github.com/en/rest/releases/releases#list-releases)."""
        return self.paginate(self._repo("/releases"), what="list the releases")

    def create_release(self, tag: str, name: str, body: str) -> dict[str, Any]:
        """POST /repos/{owner}/{repo}/releases
        (https://docs.github.com/en/rest/releases/releases#create-a-release); a retried POST that
        had in fact created it returns the existing release."""
        payload = {"tag_name": tag, "name": name, "body": body, "draft": False, "prerelease": False}
        try:
            return self.request("POST", self._repo("/releases"), ok=(201,), json=payload,
                                what=f"create release {tag}").json()
        except AlreadyExists:
            existing = self.release_by_tag(tag)
            if existing is None:
                raise GitHubError(f"create release {tag}: GitHub says it exists but cannot find it; re-run") from None
            return existing

    def assets(self, release: dict[str, Any]) -> list[dict[str, Any]]:
        """GET /repos/{owner}/{repo}/releases/{id}/assets, every page
        (https://docs.github.com/en/rest/releases/assets#list-release-assets)."""
        return self.paginate(self._repo(f"/releases/{release['id']}/assets"),
                             what=f"list the assets of release {release.get('tag_name')}")

    def delete_asset(self, asset: dict[str, Any]) -> None:
        """DELETE the asset's ``url``; one already gone is fine
        (https://docs.github.com/en/rest/releases/assets#delete-a-release-asset)."""
        self.request("DELETE", asset["url"], ok=(204, 404), what=f"delete asset {asset['name']}")

    def upload_asset(self, release: dict[str, Any], name: str, data: bytes, content_type: str,
                     label: str = "") -> dict[str, Any]:
        """POST to the release's ``upload_url`` (an RFC 6570 template on the uploads host)
        (https://docs.github.com/en/rest/releases/assets#upload-a-release-asset)."""
        url = re.sub(r"\{[^}]*\}$", "", release["upload_url"])  # drop {?name,label}
        params = {"name": name, **({"label": label} if label else {})}
        return self.request("POST", url, ok=(201,), params=params, data=data,
                            headers={"Content-Type": content_type}, what=f"upload {name}").json()

    def download(self, asset: dict[str, Any]) -> bytes:
        """The asset's bytes: its ``url`` with ``Accept: application/octet-stream`` (GitHub redirects)
        (https://docs.github.com/en/rest/releases/assets#get-a-release-asset)."""
        return self.request("GET", asset["url"], headers={"Accept": "application/octet-stream"},
                            what=f"download asset {asset['name']}").content


# --- self-hosted runners ------------------------------------------------------------------


def _parse_time(text: str) -> _dt.datetime:
    t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


class Runners(Client):
    """The self-hosted runner endpoints of one repository ("OWNER/REPO") or organization
    (https://docs.github.com/en/rest/actions/self-hosted-runners).

    POSTs are not replayed: each creates a token or a runner.
    """

    def __init__(self, api_url: str, scope: str, token: str, *, token_env: str = "GITHUB_TOKEN",
                 http: requests.Session | None = None):
        kind = "repository" if "/" in scope else "organization"
        advice = Advice(
            scope=f"{kind} {scope}", scope_key="[runners].scope",
            needs=(f"admin rights on the {kind} {scope} (fine-grained token: 'Administration: read and write' "
                   f"for a repository, 'Self-hosted runners: read and write' for an organization)"),
            again="check [runners].api-url and the network, then run the command again",
        )
        super().__init__(api_url, token, advice=advice, token_env=token_env,
                         retry_methods=frozenset({"GET", "PUT", "DELETE"}), http=http)
        self.scope = scope
        self.base = f"/{'repos' if '/' in scope else 'orgs'}/{scope}/actions/runners"

    def _json(self, method: str, path: str = "", *, ok: tuple[int, ...] = (200,), what: str, **kw: Any) -> Any:
        r = self.request(method, f"{self.base}{path}", ok=ok, what=what, **kw)
        return r.json() if r.content else None

    def registration_token(self) -> tuple[str, _dt.datetime]:
        """(token, expires_at) from POST …/actions/runners/registration-token
        (https://docs.github.com/en/rest/actions/self-hosted-runners#create-a-registration-token-for-a-repository)."""
        body = self._json("POST", "/registration-token", ok=(201,), what="create a runner registration token") or {}
        if not body.get("token") or not body.get("expires_at"):
            raise GitHubError("the registration-token answer lacks 'token' or 'expires_at'")
        return body["token"], _parse_time(body["expires_at"])

    def jit_config(self, name: str, labels: list[str], group_id: int, work_folder: str) -> tuple[dict, str]:
        """(runner, encoded_jit_config) from POST …/actions/runners/generate-jitconfig
        (https://docs.github.com/en/rest/actions/self-hosted-runners#create-configuration-for-a-just-in-time-runner-for-a-repository)."""
        body = self._json("POST", "/generate-jitconfig", ok=(201,), what=f"create a just-in-time runner '{name}'",
                          json={"name": name, "runner_group_id": group_id, "labels": labels,
                                "work_folder": work_folder})
        if not body or "encoded_jit_config" not in body or "runner" not in body:
            raise GitHubError("the generate-jitconfig answer lacks 'runner' or 'encoded_jit_config'")
        return body["runner"], body["encoded_jit_config"]

    def list(self) -> list[dict]:
        """Every runner, all pages of GET …/actions/runners
        (https://docs.github.com/en/rest/actions/self-hosted-runners#list-self-hosted-runners-for-a-repository)."""
        return self.paginate(self.base, what="list runners", items=lambda body: body.get("runners", []))

    def get(self, runner_id: int) -> dict:
        """GET …/actions/runners/{id}
        (https://docs.github.com/en/rest/actions/self-hosted-runners#get-a-self-hosted-runner-for-a-repository)."""
        return self._json("GET", f"/{runner_id}", what=f"look at runner {runner_id}")

    def lookup(self, runner_id: int) -> dict | None:
        """GET …/actions/runners/{id}, or None when GitHub no longer lists it (404)."""
        r = self.request("GET", f"{self.base}/{runner_id}", ok=(200, 404), what=f"look at runner {runner_id}")
        return r.json() if r.status_code == 200 else None

    def delete(self, runner_id: int) -> None:
        """DELETE …/actions/runners/{id}
        (https://docs.github.com/en/rest/actions/self-hosted-runners#delete-a-self-hosted-runner-from-a-repository)."""
        self._json("DELETE", f"/{runner_id}", ok=(204,), what=f"delete runner {runner_id}")

    def remove_custom_labels(self, runner_id: int) -> list[dict]:
        """DELETE …/actions/runners/{id}/labels: the labels left (the read-only ones)
        (https://docs.github.com/en/rest/actions/self-hosted-runners#remove-all-custom-labels-from-a-self-hosted-runner-for-a-repository)."""
        body = self._json("DELETE", f"/{runner_id}/labels", what=f"remove the custom labels of runner {runner_id}")
        return body.get("labels", [])

    def remove_label(self, runner_id: int, name: str) -> list[dict] | None:
        """DELETE …/actions/runners/{id}/labels/{name}: the labels left, or None when the runner
        has no such custom label (GitHub answers 404)
        (https://docs.github.com/en/rest/actions/self-hosted-runners#remove-a-custom-label-from-a-self-hosted-runner-for-a-repository)."""
        r = self.request("DELETE", f"{self.base}/{runner_id}/labels/{name}", ok=(200, 404),
                         what=f"remove the label {name} of runner {runner_id}")
        return r.json().get("labels", []) if r.status_code == 200 else None

    def add_labels(self, runner_id: int, labels: list[str]) -> list[dict]:
        """POST …/actions/runners/{id}/labels: adds custom labels, returns all of them
        (https://docs.github.com/en/rest/actions/self-hosted-runners#add-custom-labels-to-a-self-hosted-runner-for-a-repository).
        Replayed safely: adding a label the runner has changes nothing."""
        body = self._json("POST", f"/{runner_id}/labels", json={"labels": labels},
                          what=f"add the labels {', '.join(labels)} to runner {runner_id}")
        return body.get("labels", [])

    def set_custom_labels(self, runner_id: int, labels: list[str]) -> list[dict]:
        """PUT …/actions/runners/{id}/labels: replaces the custom labels
        (https://docs.github.com/en/rest/actions/self-hosted-runners#set-custom-labels-for-a-self-hosted-runner-for-a-repository)."""
        body = self._json("PUT", f"/{runner_id}/labels", json={"labels": labels},
                          what=f"set the custom labels of runner {runner_id}")
        return body.get("labels", [])
