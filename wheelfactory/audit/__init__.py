"""Questions to package indexes: what a requirement set lacks on the target, and upkeep of recipes.

Owns:

* the audit, split by stage: ``requirements`` (command-line values and pip
  requirements files), ``resolve`` (the audited target and ``uv pip compile
  --universal`` pins), ``cache`` (cache/audit/index.sqlite and the cached,
  concurrent page fetcher), ``classify`` (the verdict per package), ``report``
  (``run_audit`` and the AuditResult with its JSON);
* ``clean_install``: ``pip install --prefer-binary`` in a bare venv, as a user would;
* ``scaffold``: planning and writing ``recipes/NAME/recipe.toml`` (new-recipe,
  ``audit --write-recipes``);
* ``upstream``: recipes behind PyPI, retire candidates, and version bumps.

May import: ``wheelfactory.build`` and ``wheelfactory.index`` (and what they
may import: ``runners``, ``settings``, ``_util``, ``errors``, ``ui``); never
``cli``, ``ci`` or ``publish``. Index pages go through ``_util.simple_api``,
wheel tags through ``settings.target``, recipe text edits through
``settings.edit``. Printing and argument parsing live in ``cli/audit.py`` and
``cli/upkeep.py``, which also join the audit and scaffold for ``--write-recipes``.
"""
