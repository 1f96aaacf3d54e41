"""What writing a store leaves beside it: the writer's lock, and the names an edit, a copy or a
creation that did not finish leaves (``<name>.old-<pid>``, ``<name>.tmp-<pid>``, a backup, a
hidden ``.<name>.creating-<pid>``). The store refuses to open over an interrupted edit; ``imitation
data repair`` finishes or undoes it (``imitation.data.edit``)."""

from __future__ import annotations

import fcntl
import re
from pathlib import Path
from typing import Any

from imitation.errors import StoreError

LEFTOVER = re.compile(r"^(?P<base>.+)\.(?P<what>old|tmp|backup-\d{8}T\d{6})-(?P<pid>\d+)$")
# DemoStore.create builds a store under a hidden name first; a kill during that leaves this (the
# second form when the store being created was an edit's new copy).
CREATED = re.compile(r"^\.(?P<base>.+)\.creating-(?P<pid>\d+)$")
CREATING = re.compile(r"^\.(?P<base>.+)\.tmp-(?P<pid>\d+)\.creating-\d+$")


def interrupted_edit(path: str | Path) -> list[Path]:
    """Directories left beside ``path`` by an edit, copy or creation that did not finish:
    ``.old-``/``.tmp-<pid>``, a hidden ``.creating-<pid>``, and a backup while ``path`` is missing
    (a repair interrupted in its swap; once the repaired store is in place a backup is kept on purpose)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    out = []
    for p in sorted(path.parent.iterdir()):
        m = LEFTOVER.match(p.name) or CREATING.match(p.name) or CREATED.match(p.name)
        if not m or m["base"] != path.name:
            continue
        if LEFTOVER.match(p.name) and m["what"].startswith("backup") and path.exists():
            continue
        out.append(p)
    return out


def acquire_lock(path: Path) -> Any:
    """The store's writer lock (``.writer.lock``, held by one process at a time), or StoreError."""
    f = open(path / ".writer.lock", "a+")  # noqa: SIM115 - held for the writer's lifetime
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise StoreError(f"{path} is open for writing by another process; close it there first") from None
    return f
