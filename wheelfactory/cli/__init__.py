"""The command line behind the nox sessions and invoke tasks: parsing, printing, exit codes.

Owns one module per command group (``build``, ``rootfs``, ``index``,
``publish``, ``audit``, ``upkeep``, ``ci``, ``runners``, ``docs``): every
argparse parser and every printed report or table. The library below returns
report objects and never prints reports (progress lines go through ``ui``).

``run(fn, ...)`` is the one place that turns engine errors into a message and an
exit code: noxfile.py and tasks.py call it; a FactoryError prints its one clear
message (no traceback) and exits with its code (errors.py lists them).

May import: everything below it (ci, publish, audit, index, build, runners,
settings, _util, errors, ui).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable

from ..errors import FactoryError
from .. import ui


def run(fn: Callable[..., int | None], *args: Any, **kwargs: Any) -> None:
    """Call an engine command; exit with its status, or 1 with the error's message."""
    # nox turns on DEBUG logging; the libraries' chatter (each HTTP request, each
    # lock) would drown the one line per stage. Their details go to the log instead.
    for noisy in ("urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        status = fn(*args, **kwargs)
    except FactoryError as e:
        ui.error(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        ui.error("interrupted; dist/ and index/ are left as they were")
        sys.exit(130)
    if status:
        sys.exit(int(status))
