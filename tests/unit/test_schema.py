"""settings/schema.py: dataclass tables parsed strictly, defaults copied, instances frozen."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from wheelfactory.errors import ConfigError, RecipeError
from wheelfactory.settings.factory import load_config
from wheelfactory.settings.schema import as_toml, parse_section, parse_tables, setting


@dataclass(frozen=True)
class Demo:
    name: str = setting(required=True, help="a name")
    jobs: int = setting(0, "parallel jobs")
    labels: list[str] = setting(["a"], "labels")
    env: dict[str, str] = setting({}, "variables")
    config_settings: dict[str, str | list[str]] = setting({}, "settings")
    folder: Path = setting(Path("dist"), "a folder")


def parse(data, **kw):
    return parse_section(Demo, data, section="demo", where="f.toml", **kw)


def test_values_become_attributes_with_defaults_filled():
    d = parse({"name": "x", "config-settings": {"a": ["1"]}, "folder": "out"})
    assert (d.name, d.jobs, d.labels, d.env, d.config_settings, d.folder) == (
        "x", 0, ["a"], {}, {"a": ["1"]}, Path("out"))
    assert as_toml(d) == {"name": "x", "jobs": 0, "labels": ["a"], "env": {}, "config-settings": {"a": ["1"]},
                          "folder": "out"}


def test_defaults_are_never_shared_and_instances_are_frozen():
    a, b = parse({"name": "a"}), parse({"name": "b"})
    a.labels.append("changed")
    assert b.labels == ["a"] and parse({"name": "c"}).labels == ["a"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.jobs = 3  # type: ignore[misc]


@pytest.mark.parametrize("data, message", [
    ({"name": "x", "jbos": 1}, "f.toml: unknown key 'demo.jbos' (did you mean 'jobs'?); known keys in [demo]: "
                               "name, jobs, labels, env, config-settings, folder"),
    ({"name": "x", "jobs": True}, "f.toml: 'demo.jobs' must be an integer, got bool True"),
    ({"name": "x", "labels": "a"}, "f.toml: 'demo.labels' must be a list of strings, got str 'a'"),
    ({"name": "x", "env": {"A": 1}}, "f.toml: 'demo.env' must be a table of string values, got dict {'A': 1}"),
    ({"name": "x", "config-settings": {"a": 1}}, "'demo.config-settings' must be a table whose values are strings"),
    ({}, "f.toml: missing required key 'demo.name' (a name)"),
])
def test_bad_values_name_the_file_and_the_key(data, message):
    with pytest.raises(ConfigError) as e:
        parse(data, error=ConfigError)
    assert message in str(e.value)


def test_unknown_table_suggests_the_close_one():
    with pytest.raises(RecipeError, match=r"unknown section \[dmeo\] \(did you mean 'demo'\?\); known sections: "
                                          r"demo, yanked"):
        parse_tables({"dmeo": {}}, {"demo": Demo}, where="f.toml", free=["yanked"])


def test_config_replace_overrides_without_touching_the_original(tmp_path):
    (tmp_path / "factory.toml").write_text("[build]\njobs = 2\n")
    config = load_config(tmp_path)
    other = config.replace(build={"jobs": 8})
    assert (config.build.jobs, other.build.jobs) == (2, 8)
    assert other.build.ccache is config.build.ccache and other.paths == config.paths
    assert config.paths.dist == tmp_path / "dist"


@pytest.mark.parametrize("toml, message", [
    ('[build]\nrunner = "qemu"\n', "'build.runner' must be one of auto, native, emulated, container; got 'qemu'"),
    ('[publish]\ntarget = "s3"\n', "publish.target 's3' is not one of: directory, github"),
    ('[runners]\nkind = "gitea"\n', "[runners].kind 'gitea' is not one of official, github-act-runner"),
    ('[container]\nengine = "lxc"\n', "[container].engine must be docker or podman, not 'lxc'"),
])
def test_value_rules_run_when_the_file_loads(tmp_path, toml, message):
    (tmp_path / "factory.toml").write_text(toml)
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path)
    assert str(e.value).startswith(str(tmp_path / "factory.toml")) and message in str(e.value)
