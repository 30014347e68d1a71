"""What the user writes: factory.toml, recipes, and the target they describe.

Owns: ``schema`` (TOML tables as frozen dataclasses, checked strictly at load,
with the messages every bad-input test pins), ``factory`` (factory.toml:
``load_config``, ``Config`` with one dataclass per table, the load-time value
rules), ``recipe`` (recipes/NAME/recipe.toml: ``parse_recipe``, ``Recipe``,
patches, fingerprints), ``edit`` (changing a recipe file's text, checked by
re-parsing), ``target`` (arch, manylinux policy, the wheel tags a target
accepts: the one place that knows them), ``docs`` (the key tables of
docs/recipes.md and docs/config.md, generated from the dataclasses).
String-keyed access to settings exists only here.

May import: ``_util``, ``errors``, ``ui``.
"""
