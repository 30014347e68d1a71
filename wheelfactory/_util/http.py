"""One requests Session factory: retries with backoff on 5xx, timeouts and resets.

Every stage that talks HTTP (PyPI, our index, GitHub's REST API) uses it, so
retry policy and the User-Agent live in one place.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .. import __version__

USER_AGENT = f"wheelfactory/{__version__}"
DEFAULT_TIMEOUT = (10, 120)  # connect, read (seconds)


def session(*, retries: int = 5, backoff: float = 0.5, methods: frozenset[str] | None = None,
            pool: int = 16) -> requests.Session:
    """A Session that retries idempotent requests (or ``methods``) on 5xx and connection errors."""
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=methods or Retry.DEFAULT_ALLOWED_METHODS,
        raise_on_status=False,
        respect_retry_after_header=True,
    )
    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool, pool_maxsize=pool)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = USER_AGENT
    return s
