"""The build key follows a recipe's content, not its bytes (issue 18): comments, key order,
quoting and blank lines keep the key; a changed value moves it."""

from __future__ import annotations

from conftest import write_project, write_recipe
from wheelfactory.settings.recipe import load_recipe

SHA = "e8af3e6f1bdbc31fd762b094133b478b89988eaebc63cbe82b1d9e3bbd15cede"
PLAIN = f"""\
[package]
name = "wf-tiny"
version = "1.0"

[source]
sha256 = "{SHA}"

[build]
env = {{ CFLAGS = "-O2" }}
debian = ["libyaml-dev"]
"""
# The same content: comments, another key and table order, other quoting, spacing.
REFORMATTED = f"""\
# wf-tiny: a comment the key must not see.
[build]
debian = [ 'libyaml-dev', ]   # trailing comma, single quotes

[build.env]
CFLAGS = '-O2'

[source]
sha256 = "{SHA}"


[package]
version = "1.0"   # pinned
name = "wf-tiny"
"""


def _fingerprint(tmp_path, text: str) -> str:
    root = write_project(tmp_path / "p")
    write_recipe(root, "wf-tiny", text)
    return load_recipe(root / "recipes", "wf-tiny").fingerprint(root / "patches")


def test_comments_and_formatting_keep_the_key(tmp_path):
    assert PLAIN != REFORMATTED
    assert _fingerprint(tmp_path, REFORMATTED) == _fingerprint(tmp_path, PLAIN)


def test_a_changed_value_moves_the_key(tmp_path):
    base = _fingerprint(tmp_path, PLAIN)
    assert _fingerprint(tmp_path, PLAIN.replace('"-O2"', '"-O3"')) != base
    assert _fingerprint(tmp_path, PLAIN.replace('["libyaml-dev"]', '["libyaml-dev", "cython3"]')) != base
    # the order of an array is content (build.requires, setup-args are ordered)
    assert _fingerprint(tmp_path, PLAIN.replace('["libyaml-dev"]', '["a1", "b2"]')) != \
        _fingerprint(tmp_path, PLAIN.replace('["libyaml-dev"]', '["b2", "a1"]'))
