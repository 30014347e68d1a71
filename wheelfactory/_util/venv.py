"""The environment of a bare venv: what a user's fresh machine gives pip, and nothing of ours.

Verify and the clean-install check both install into a bare venv and must see
what a new user sees: no pip or uv configuration (this machine's pip.conf may
add indexes and find-links), no user site-packages, nothing on PYTHONPATH, no
other virtual environment. The CA bundle stays: it is how a machine behind a
TLS proxy reaches PyPI at all. Indexes are then given explicitly by the caller.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# pip settings about how to talk to the network, not about what to install.
KEEP_PIP = frozenset({"PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES", "PIP_TRUSTED_HOST"})
KEEP_UV = frozenset({"UV_HTTP_TIMEOUT", "UV_NATIVE_TLS", "UV_CACHE_DIR", "UV_LINK_MODE"})
DROP = frozenset({"PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONSTARTUP", "VIRTUAL_ENV", "CONDA_PREFIX"})


def bare_env(venv: Path, environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Changes to ``environ`` (default: this process's) that make it a fresh machine's, inside ``venv``.

    A None value unsets the variable (``_util.proc.environment`` applies them);
    PATH starts with the venv's bin/.
    """
    environ = os.environ if environ is None else environ
    env: dict[str, str | None] = {
        k: None for k in environ
        if k in DROP or (k.startswith("PIP_") and k not in KEEP_PIP) or (k.startswith("UV_") and k not in KEEP_UV)
    }
    if "PIP_CERT" not in environ:
        bundle = environ.get("REQUESTS_CA_BUNDLE") or environ.get("SSL_CERT_FILE")
        if bundle:
            env["PIP_CERT"] = bundle
    env.update({
        "PIP_CONFIG_FILE": os.devnull,  # no /etc/pip.conf, no ~/.config/pip: a user's fresh board
        "UV_NO_CONFIG": "1",  # no uv.toml either
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PIP_REQUIRE_VIRTUALENV": "1",
        "PYTHONNOUSERSITE": "1",
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{venv / 'bin'}{os.pathsep}{environ.get('PATH', '/usr/local/bin:/usr/bin:/bin')}",
    })
    return env
