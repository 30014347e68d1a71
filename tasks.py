"""Invoke tasks: thin wrappers that parse arguments and call the engine."""

from __future__ import annotations

from pathlib import Path

from invoke import Collection, task

from wheelfactory import cli

ROOT = Path(__file__).parent


# --- index / publish (issue: an index that cannot lie) ------------------------------
# (tasks added here)


# --- audit / new-recipe (issue: find what is missing) ------------------------------
# (tasks added here)


# --- CI workflow / runners (issue: many boards) ------------------------------------
# (tasks added here)


# --- upstream tracking (issue: the catalog at speed) --------------------------------
# (tasks added here)
