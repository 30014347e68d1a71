"""wheelfactory: recipes -> verified manylinux riscv64 wheels -> a PEP 503/658/691 index.

The public API is small; everything else is internal and may change::

    from wheelfactory import load_config, load_recipe, build_recipe, build_index, run_audit

    config = load_config(".")                       # factory.toml, checked (settings/factory.py)
    recipe = load_recipe(config.paths.recipes, "numpy")
    result = build_recipe(config, recipe, select_runner(config))   # a RecipeResult; never raises
    report = build_index(config)                    # dist/ records -> index/

The names are imported on first use (PEP 562), so ``import wheelfactory`` stays
cheap: a no-op build must be instant. The packages, top to bottom (each imports
only from those below it; ``lint-imports`` checks it, see ``.importlinter``):
``cli``; ``ci``, ``publish``, ``audit``; ``index``; ``build``; ``runners``;
``settings``; ``_util``; ``errors``, ``ui``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Bump when the build logic changes in a way that changes the produced wheel;
# it is part of every build key, so a bump rebuilds everything.
# (ci/plan.py reads this line from older commits: keep it in this file.)
BUILD_LOGIC_VERSION = "2"  # 2: recipe fingerprint from the parsed TOML, not the file bytes

# public name -> the module that defines it
_API = {
    "load_config": "wheelfactory.settings.factory",
    "load_recipe": "wheelfactory.settings.recipe",
    "select_runner": "wheelfactory.runners",
    "build_recipe": "wheelfactory.build.pipeline",
    "build_index": "wheelfactory.index",
    "run_audit": "wheelfactory.audit",
    "FactoryError": "wheelfactory.errors",
}
__all__ = ["__version__", "BUILD_LOGIC_VERSION", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'wheelfactory' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
