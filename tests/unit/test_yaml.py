"""The workflow's YAML emitter (wheelfactory/ci/yaml.py): plain where every loader agrees, quoted otherwise."""

from __future__ import annotations

import json

import pytest
import yaml

from wheelfactory.ci.yaml import scalar, to_yaml


@pytest.mark.parametrize("value", ["ubuntu-latest", "actions/checkout@v5", "nox -s build-numpy", "dist/*.whl",
                                   "${{ github.event_name }}", "(paren)", "a-b_c.d"])
def test_plain_strings_stay_plain(value):
    assert scalar(value) == value
    assert yaml.safe_load(f"k: {scalar(value)}") == {"k": value}


@pytest.mark.parametrize("value", ["yes", "No", "on", "OFF", "y", "null", "~", "true", "1.5", "1_000", "0x1F",
                                   "0o17", "017", ".inf", "-.NaN", "1:20", "2024-01-31", "2024-01-31 10:00",
                                   "a: b", "x #y", "ends:", "trailing ", "- dash", "*star", "&anchor", "!tag",
                                   "@at", "%pct", "'quoted'", '"double"', "{flow}", "[flow]", "tab\tin", ""])
def test_strings_a_loader_would_misread_are_quoted(value):
    text = scalar(value)
    assert text != value or value == ""
    loaded = yaml.safe_load(f"k: {text}")["k"]
    assert loaded == value or (value == "" and loaded in ("", None))


def test_scalars_of_other_types_and_the_key_on():
    assert [scalar(True), scalar(False), scalar(7), scalar(None)] == ["true", "false", "7", ""]
    assert scalar("on", key=True) == "on" and scalar("on") == '"on"'


def test_model_round_trips_and_the_text_is_stable():
    model = {
        "__header__": ["Generated; do not edit."],
        "name": "wheels",
        "on": {"push": {"branches": ["main"]}, "pull_request": None},
        "permissions": {},
        "jobs": {
            "a": {"runs-on": ["self-hosted", "linux"], "steps": [
                {"uses": "actions/checkout@v5", "with": {"fetch-depth": 0}},
                {"name": "multi", "run": "echo one\necho 'two: 2'\n"},
                {"name": "no final newline", "run": "a\nb"},
            ]},
            "b": {"needs": ["a"] * 40, "if": "${{ !cancelled() }}"},
        },
    }
    text = to_yaml(model)
    assert text == to_yaml(model)
    assert text.startswith("# Generated; do not edit.\nname: wheels\n")
    assert "\n\njobs:\n  a:\n" in text and "\n\n  b:\n" in text  # blank lines between blocks and jobs
    assert "    runs-on: [self-hosted, linux]\n" in text  # short flat lists inline
    assert "    needs:\n      - a\n" in text  # long ones as a block
    parsed = yaml.safe_load(text)
    parsed["on"] = parsed.pop(True)  # YAML 1.1 reads the bare key `on` as a boolean
    model.pop("__header__")
    assert parsed == json.loads(json.dumps(model))


def test_a_job_must_be_a_mapping():
    with pytest.raises(TypeError, match="cannot emit str"):
        to_yaml({"jobs": {"a": "nox -s build-a"}})
