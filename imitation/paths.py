"""Paths named by foreign files: they must stay inside the directory that holds them.

A checkpoint or a dataset made elsewhere names its other files (LeRobot's
``policy_preprocessor.json`` names its statistics file, for example). Such a name is data from
someone else: ``../outside.safetensors``, ``/etc/passwd`` or a symlink out of the directory
would make an import read whatever file it points at. ``inside`` is the one place that rule is
checked; every read of a path named by a foreign file goes through it.
"""

from __future__ import annotations

import os
from pathlib import Path

from imitation.errors import ConfigError


def inside(root: str | Path, named: object, *, source: str | Path) -> Path:
    """``named`` (a path read from the foreign file ``source``) resolved inside ``root``.

    Refuses, with one line naming the file, the path and the rule, a name that is not a
    non-empty string, an absolute path, or one that resolves (``..`` and symlinks followed)
    outside ``root``. The returned path is resolved; it may not exist yet.
    """
    rule = f"a file in a foreign directory may only name files inside {root}"
    if not isinstance(named, str) or not named or "\x00" in named:
        raise ConfigError(f"{source}: names the path {named!r}, which is not a file name; {rule}")
    if os.path.isabs(named) or Path(named).is_absolute():
        raise ConfigError(
            f"{source}: names the absolute path {named!r}; {rule} (a relative name such as "
            f"{Path(named).name!r}, with that file copied into {root})"
        )
    base = Path(root).resolve()
    target = (base / named).resolve()  # follows every symlink on the way
    if not target.is_relative_to(base):
        raise ConfigError(
            f"{source}: {named!r} resolves to {target}, outside {base}; {rule} "
            "(copy the file into the directory and name it relatively)"
        )
    return target
