"""The cross-compiler keys: a wrong value is one message naming the file and key (no emulation needed)."""

from __future__ import annotations

import pytest

from conftest import write_project, write_recipe
from wheelfactory.errors import ConfigError
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.recipe import load_recipe


def test_a_wrong_cross_compilers_value_names_the_key_and_the_choices(tmp_path):
    root = write_project(tmp_path, config='[emulation]\ncross-compilers = "yes"\n')
    with pytest.raises(ConfigError) as e:
        load_config(root)
    msg = str(e.value)
    assert "factory.toml" in msg and "[emulation].cross-compilers" in msg and "auto, required, off" in msg


def test_defaults_are_auto_and_cross_per_recipe(tmp_path):
    root = write_project(tmp_path)
    config = load_config(root)
    assert config.emulation.cross_compilers == "auto"
    write_recipe(root, "demo", '[package]\nname = "demo"\nversion = "1.0"\n[source]\nsha256 = "%s"\n'
                        '[build]\ncross = false\n' % ("0" * 64))
    assert load_recipe(root / "recipes", "demo").build.cross is False
