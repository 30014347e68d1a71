"""`invoke audit`: a requirements file (-r) stands in for the PACKAGES positional."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from invoke import Collection
from invoke.exceptions import ParseError
from invoke.parser import Parser

# tasks.py is invoke's task file at the checkout root, not a module on sys.path.
_spec = importlib.util.spec_from_file_location("tasks", Path(__file__).parents[2] / "tasks.py")
tasks = sys.modules["tasks"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tasks)


def _parse(*argv: str) -> dict:
    (ctx,) = Parser(contexts=Collection.from_module(tasks).to_contexts()).parse_argv(["audit", *argv])
    return ctx.as_kwargs


def test_a_requirements_file_alone_is_enough():
    kw = _parse("-r", "requirements.txt")
    assert kw["packages"] == "" and kw["requirement"] == ["requirements.txt"]
    assert _parse("-r", "a.txt", "--requirement", "b.txt")["requirement"] == ["a.txt", "b.txt"]


def test_packages_still_come_first_and_mix_with_files():
    assert _parse("vllm")["packages"] == "vllm"
    kw = _parse("numpy>=2 scipy", "-r", "req.txt")
    assert kw["packages"] == "numpy>=2 scipy" and kw["requirement"] == ["req.txt"]


def test_neither_is_still_an_error():
    with pytest.raises(ParseError, match="did not receive required positional arguments: 'packages'"):
        _parse()
