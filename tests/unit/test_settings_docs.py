"""docs/recipes.md and docs/config.md: their key tables are the schema's, and drift is caught."""

from __future__ import annotations

import dataclasses

from conftest import REPO
from wheelfactory.settings import docs, factory, recipe
from wheelfactory.settings.schema import keys, markdown_table


def test_the_docs_tables_are_generated_from_the_schema():
    assert docs.stale(REPO) == [], "run `invoke docs`"


def test_every_table_and_key_is_documented_with_help():
    text = "".join((REPO / rel).read_text() for rel in docs.DOCS)
    for source, tables in docs.SOURCES.items():
        for table, cls in tables.items():
            assert f"<!-- generated: {source} [{table}] -->" in text
            for key, field in keys(cls).items():
                assert field.metadata.get("help"), f"{source} [{table}] {key} has no help text"


def test_a_drifted_table_is_found_and_refilled(tmp_path):
    for rel in docs.DOCS:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((REPO / rel).read_text())
    recipes_md = tmp_path / "docs" / "recipes.md"
    row = "| `exclusive` | boolean | `false` |"
    assert row in recipes_md.read_text()
    recipes_md.write_text(recipes_md.read_text().replace(row, "| `exclusive` | string | `\"no\"` |"))
    assert docs.stale(tmp_path) == [recipes_md]
    assert docs.write(tmp_path) == [recipes_md] and docs.stale(tmp_path) == []


def test_table_rows_follow_the_dataclass_fields():
    table = markdown_table(recipe.RecipeSource)
    assert [line.split("|")[1].strip(" `") for line in table.splitlines()[2:]] == [
        f.name for f in dataclasses.fields(recipe.RecipeSource)]
    assert "`\"sid\"`" in markdown_table(factory.EmulationSettings)
