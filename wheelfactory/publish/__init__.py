"""Publishing: put the files where the index says they are, then the index (``invoke publish``),
and bring published files back into dist/ (``invoke fetch-dist``, :mod:`.fetch`).

Order is the whole point: files first, index last, so the live index never
links to a file that is not there (yet, or any more). Two targets
(``publish.target``):

``directory`` (:mod:`.directory`, the default)
    a folder any static web server can serve, files and index side by side;
``github`` (:mod:`.github`)
    release assets through the REST API, the index pushed to a Pages branch.

Owns: :func:`publish`, :class:`PublishReport`, the artifacts (:mod:`.artifacts`).
May import: ``wheelfactory.index``, ``wheelfactory.build.store``, ``settings``,
``_util`` (the GitHub client, git, files), ``errors``, ``ui``. The commands and
their printing are in ``wheelfactory/cli/publish.py``.
"""

from __future__ import annotations

from ..settings.factory import Config
from .artifacts import Artifact, PublishError, PublishReport, artifacts
from .directory import publish_directory
from .github import publish_github, push_pages


def publish(config: Config, *, dry_run: bool = False, force: bool = False) -> PublishReport:
    """Publish to ``publish.target`` (directory or github; checked when factory.toml is loaded).

    ``dry_run``: report what would change and change nothing. ``force`` (github):
    replace assets even where the release holds a newer build under the same name.
    Raises PublishError / GitHubError with one message; the live index is then
    left as it was.
    """
    if config.publish.target == "github":
        return publish_github(config, dry_run=dry_run, force=force)
    return publish_directory(config, dry_run=dry_run)


__all__ = ["publish", "publish_directory", "publish_github", "push_pages", "artifacts", "Artifact",
           "PublishReport", "PublishError"]
