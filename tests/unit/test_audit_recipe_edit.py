"""settings.edit.set_strings, as `invoke bump` uses it: values change, comments stay, the result is checked."""

from __future__ import annotations

import tomllib

import pytest

from wheelfactory.settings.edit import EditMismatch, set_strings

TEXT = """\
# wf-demo: kept
[package]
name = "wf-demo"
version = "2.15.0"  # bumped by hand until now

[source]
git = "https://example.invalid/wf-demo.git"
rev = 'v2.15.0'

[build]
env = { DEMO_VERSION = "2.15.0", OTHER = "2.15.0.1" }
"""


def test_set_strings_changes_only_what_is_asked():
    out = set_strings(TEXT, {"package.version": "2.16.0", "source.rev": "v2.16.0",
                             "build.env.DEMO_VERSION": "2.16.0"}, where="recipe.toml")
    assert out == TEXT.replace('version = "2.15.0"', 'version = "2.16.0"').replace(
        "'v2.15.0'", "'v2.16.0'").replace('DEMO_VERSION = "2.15.0"', 'DEMO_VERSION = "2.16.0"')
    data = tomllib.loads(out)
    assert data["build"]["env"] == {"DEMO_VERSION": "2.16.0", "OTHER": "2.15.0.1"}
    # A key that is not there yet is added to its table.
    assert 'sha256 = "abc"' in set_strings(TEXT, {"source.sha256": "abc"}, where="recipe.toml")


def test_an_edit_that_would_change_more_is_refused():
    # Both env values are the old version, but only one is asked to change.
    text = TEXT.replace('OTHER = "2.15.0.1"', 'OTHER = "2.15.0"')
    with pytest.raises(EditMismatch, match="recipe.toml: the edit would change more than build.env.DEMO_VERSION"):
        set_strings(text, {"build.env.DEMO_VERSION": "2.16.0"}, where="recipe.toml")
