"""build.pep517.unreachable_host: the host a failed build could not reach, from real tools' words."""

from __future__ import annotations

import pytest

from wheelfactory.build.pep517 import unreachable_host

CASES = [
    # cargo with the sparse index (rustup's cargo, in a network namespace)
    ("    Updating crates.io index\nwarning: spurious network error (3 tries remaining): [6] Could not resolve "
     "hostname (Could not resolve host: index.crates.io)\nerror: failed to get `pyo3` as a dependency of package "
     "`textual-speedups v0.2.1`", "index.crates.io"),
    # cargo 0.66 (Debian 12) fetches the index from GitHub
    ("    Updating crates.io index\nerror: failed to get `pyo3` as a dependency of package `x v0.1.0`\n\nCaused by:\n"
     "  failed to fetch `https://github.com/rust-lang/crates.io-index`", "github.com"),
    # git
    ("fatal: unable to access 'https://github.com/google/sentencepiece.git/': Could not resolve host: github.com",
     "github.com"),
    # wget
    ("wget: unable to resolve host address 'download.libsodium.org'", "download.libsodium.org"),
    # pip (requests/urllib3)
    ("WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection "
     "broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f>: Failed to "
     "establish a new connection: [Errno -3] Temporary failure in name resolution')': /simple/cython/\n"
     "ERROR: Could not find a version\nHTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded", "pypi.org"),
    # urllib names no host: the URL printed next to it does
    ("downloading https://example.org/lib-1.0.tar.gz\nurllib.error.URLError: <urlopen error [Errno -3] Temporary "
     "failure in name resolution>", "example.org"),
    ("urllib.error.URLError: <urlopen error [Errno 101] Network is unreachable>", ""),
]


@pytest.mark.parametrize("output, host", CASES)
def test_the_host_is_found(output, host):
    found = unreachable_host(output)
    assert found is not None and found[0] == host


def test_a_compile_error_is_not_a_network_error():
    assert unreachable_host("src/x.c:3:1: error: unknown type name 'foo'\nerror: command 'gcc' failed") is None
