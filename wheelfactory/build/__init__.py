"""One recipe -> verified wheels in dist/ (docs/recipes.md, docs/catalog.md).

Stages, each its own module: ``source`` (fetch, sha256, unpack, patches) ->
``pep517`` (build) -> ``repair`` (auditwheel, build tags) -> ``verify`` (bare
venv) -> ``store`` (dist/ records, build tags, locks, attempt paths).
``record`` makes the dist record and the build key; ``attempt`` is what every
build strategy shares (log, keys and skip, stage clock, attempt record, one
message per failure); ``pipeline`` runs one recipe (stage by stage, or with
``cibuildwheel`` in the manylinux image); ``graph`` orders and schedules
recipes (pure); ``catalog`` joins graph, pipeline and ``compcache``.
``scripts/`` run inside the target environments (no wheelfactory there).

May import: runners, settings, _util, errors, ui. Never cli, index, publish,
audit or ci.
"""
