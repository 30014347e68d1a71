"""One exception type for every user-facing failure.

Each carries one clear message that names the file, key or package and the fix;
``cli.run`` prints it (without a traceback) and exits with ``exit_code``.

Exit statuses of every command (nox sessions and invoke tasks):

====  ==================================================================
0     done
1     a FactoryError: the classes below, and the stages' own subclasses
      (``IndexProblem``, ``IndexCheckFailed``, ``PublishError``,
      ``FetchDistError``, ``GitHubError``, ``AuditError``,
      ``CleanInstallError``, ``ScaffoldError``, ``UpstreamError``,
      ``RunnerAPIError``, ``RunnerBusy``, ``DamagedRecord``,
      ``DebianLookupError``); a build whose recipe failed
2     ``invoke audit``: a package needs a recipe; argparse usage errors
130   interrupted (Ctrl-C); dist/ and index/ are left as they were
====  ==================================================================
"""


class FactoryError(Exception):
    """A failure the user can act on. ``str(err)`` is the whole message."""

    exit_code = 1

    def __init__(self, message: str, *, log: str | None = None):
        super().__init__(message)
        self.log = log  # path of the log file that holds the details, if any

    def __str__(self) -> str:
        msg = self.args[0]
        if self.log:
            msg += f"\n  log: {self.log}"
        return msg


class RecipeError(FactoryError):
    """A recipe (or the factory config) is malformed."""


class ConfigError(FactoryError):
    """factory.toml is malformed."""


class SourceError(FactoryError):
    """Fetching, verifying, unpacking or patching the source failed."""


class BuildError(FactoryError):
    """The PEP 517 build failed."""


class NetworkNeeded(BuildError):
    """The build tried to reach a host: builds run with the network cut off (issue #18)."""


class RepairError(FactoryError):
    """auditwheel could not bring the wheel to the target policy."""


class VerifyError(FactoryError):
    """The repaired wheel did not install or import in a bare venv."""


class EnvironmentProblem(FactoryError):
    """The host lacks something (Debian package, interpreter, emulation) and the message says how to get it."""
