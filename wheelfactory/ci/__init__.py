"""Continuous integration: the generated GitHub Actions workflow and the boards that run it.

Owns: :mod:`.workflow` (the workflow's model, its label checks, the generated
files), :mod:`.yaml` (the deterministic emitter that writes them), :mod:`.plan`
(which recipes changed since a base commit; the published tag) and
:mod:`.runners` (registering, listing, draining and restarting the boards'
self-hosted runners). The commands and their printing are in
``wheelfactory/cli/ci.py`` and ``wheelfactory/cli/runners.py`` (docs/ci.md).

May import: ``wheelfactory.build`` (the recipe graph), ``settings``, ``_util``
(the GitHub client, git, files), ``errors``, ``ui``. Not ``publish`` or ``audit``.
"""
