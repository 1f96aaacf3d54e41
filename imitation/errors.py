"""The project's error for user mistakes: the CLI prints its message as one line and exits non-zero."""


class ImitationError(Exception):
    """Bad input or a state the user can fix; the message says what, which value, and how to fix it."""


class ConfigError(ImitationError, ValueError):
    """A configuration file or command-line value is invalid."""


class StoreError(ImitationError):
    """A demo store cannot be opened, read or written as asked; the message says why and what to do."""


class StoreDamage(StoreError):
    """Committed data of a demo store does not read back as it was written: a file is missing, or a
    chunk fails its checksum. Readers raise it instead of returning fill values or corrupt numbers."""


def add_note(error: BaseException, note: str) -> bool:
    """Append ``note`` to a user error's one line (``"message; note"``); returns False for any other
    error, whose note the caller logs instead."""
    if isinstance(error, ImitationError) and len(error.args) == 1 and isinstance(error.args[0], str):
        error.args = (f"{error.args[0]}; {note}",)
        return True
    return False
