"""The native runner's build.debian check, against this host's real dpkg and apt.

A package this host's Debian does not have (llvm-21-dev on bookworm, for llvmlite) cannot be
"installed with apt-get": the message says so and where it can be built; a package apt has but
that is not installed is reported as missing, with the install command for it.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from wheelfactory.errors import EnvironmentProblem
from wheelfactory.runners.native import NativeRunner

pytestmark = pytest.mark.skipif(not (shutil.which("dpkg-query") and shutil.which("apt-cache")),
                                reason="a Debian host (dpkg and apt)")

ABSENT = "wf-no-such-debian-package"


def _available_not_installed() -> str:
    """A package apt can install here but that is not installed (sl, the steam locomotive)."""
    installed = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", "sl"], capture_output=True,
                               text=True).stdout
    policy = subprocess.run(["apt-cache", "policy", "sl"], capture_output=True, text=True).stdout
    if installed == "installed" or "Candidate: (none)" in policy or not policy:
        pytest.skip("needs apt lists that offer sl, not installed")
    return "sl"


def test_a_package_this_debian_lacks_is_named_with_where_to_build():
    runner = NativeRunner()
    other = _available_not_installed()
    with pytest.raises(EnvironmentProblem) as e:
        runner.missing_debian(["gcc", ABSENT, other])
    msg = str(e.value)
    assert f"Debian package {ABSENT} (the recipe's build.debian) is not in this host's Debian (" in msg, msg
    assert "apt-cache policy has no candidate" in msg and "build for the target instead" in msg, msg
    assert msg.endswith(f"the others install with: apt-get install -y {other}"), msg
    assert "gcc" not in msg  # installed: not named


def test_an_installable_package_is_reported_missing():
    runner = NativeRunner()
    other = _available_not_installed()
    assert runner.missing_debian(["gcc", other]) == [other]
    assert runner.missing_debian(["gcc"]) == []
