"""Where Python warnings go: the log, at DEBUG level, not the terminal.

Gymnasium's passive environment checker and the libraries a third-party environment brings warn
on every step or reset (an observation dtype, a deprecated call): a screenful a second that buries
the lines a user needs. ``route_warnings`` sends every Python warning to the ``py.warnings`` logger
(``logging.captureWarnings``) as a DEBUG record, shown only where the log shows DEBUG records;
``IMITATION_DEBUG=1`` keeps them as warnings, on the terminal.
"""

from __future__ import annotations

import logging
import os


class _DebugWarnings(logging.Filter):
    """Demotes the records of captured warnings to DEBUG (unless IMITATION_DEBUG is set) and drops
    them where the root logger does not show DEBUG records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if os.environ.get("IMITATION_DEBUG"):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def route_warnings() -> None:
    """Send Python warnings to the log at DEBUG level (see the module docstring). Idempotent; the
    command line calls it, and so does each evaluation worker process."""
    logging.captureWarnings(True)
    logger = logging.getLogger("py.warnings")
    if not any(isinstance(f, _DebugWarnings) for f in logger.filters):
        logger.addFilter(_DebugWarnings())
