"""What commands write never replaces a file that this project did not write.

Results and pictures carry a mark that says imitation wrote them, and a command checks, before its
long work starts, that each path it will write is free or holds a file with that mark:

- a JSON file has a top-level ``"written_by": "imitation <command>"``;
- a PNG has a ``tEXt`` chunk ``Software: imitation`` right after its header;
- an mp4 ends with a ``free`` box (which players skip) holding ``written by imitation``.

An output directory (``imitation eval --out DIR``) is written into only when it is new, empty, or
holds nothing but files the command writes there, recognised by name and mark. Anything else is
refused in one line that names the path and the fix: another ``--out``, or ``--overwrite``, which
replaces the files at the names the command writes (never anything else). Results that imitation
wrote before the mark existed are recognised by their layout (``legacy_keys``), as saved configs are.
"""

from __future__ import annotations

import fnmatch
import json
import struct
import uuid
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from imitation.data.durable import atomic_write
from imitation.errors import ConfigError

MARK_KEY = "written_by"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT = b"Software\x00imitation"
PNG_MARK = (
    struct.pack(">I", len(_PNG_TEXT))
    + b"tEXt"
    + _PNG_TEXT
    + struct.pack(">I", zlib.crc32(b"tEXt" + _PNG_TEXT))
)
_PNG_HEADER_END = len(PNG_SIGNATURE) + 4 + 4 + 13 + 4  # the signature, then IHDR: length, type, 13 bytes, CRC
_MP4_TEXT = b"written by imitation"
MP4_MARK = struct.pack(">I", 8 + len(_MP4_TEXT)) + b"free" + _MP4_TEXT
TEMPORARY = ("*.partial",)  # what a write killed midway leaves (the atomic writes' temporary names)


# ------------------------------------------------------------------------------ marks
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def is_marked(path: Path, legacy_keys: Iterable[str] = ()) -> bool:
    """Whether ``path`` is a regular file (not a symlink) that imitation wrote: it carries the mark
    of its kind, or, for JSON, it is a dict with all of ``legacy_keys`` (when any are given)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = _read_json(path)
        if not isinstance(data, dict):
            return False
        if str(data.get(MARK_KEY, "")).startswith("imitation"):
            return True
        keys = set(legacy_keys)
        return bool(keys) and keys <= set(data)
    try:
        with path.open("rb") as f:
            if suffix == ".png":
                return f.read(_PNG_HEADER_END + len(PNG_MARK))[_PNG_HEADER_END:] == PNG_MARK
            if suffix == ".mp4":
                size = f.seek(0, 2)
                if size < len(MP4_MARK):
                    return False
                f.seek(size - len(MP4_MARK))
                return f.read() == MP4_MARK
    except OSError:
        return False
    return False


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write(Path(path), data)


def write_json(path: str | Path, data: dict[str, Any], command: str) -> None:
    """Write ``data`` as JSON with the mark first (``"written_by": "imitation <command>"``), atomically."""
    marked = {MARK_KEY: f"imitation {command}", **{k: v for k, v in data.items() if k != MARK_KEY}}
    _atomic_write(Path(path), json.dumps(marked, indent=1, default=float).encode())


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB image (H, W, 3) uint8 as PNG bytes carrying the mark."""

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError(f"cannot encode an image of shape {rgb.shape} as PNG")
    data = buf.tobytes()
    return data[:_PNG_HEADER_END] + PNG_MARK + data[_PNG_HEADER_END:]


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB image (H, W, 3) uint8 as a marked PNG, atomically."""
    _atomic_write(Path(path), png_bytes(rgb))


def mark_mp4(path: str | Path) -> None:
    """Append the mark to a finished mp4 (a ``free`` box after the others: players skip it)."""
    with Path(path).open("ab") as f:
        f.write(MP4_MARK)


def temporary_video(path: Path) -> Path:
    """A name beside ``path`` to write a video to before it is renamed into place: OpenCV picks the
    container by the suffix, which the name keeps."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:12]}{path.suffix}")


# ------------------------------------------------------------------------------ checks
def _can_overwrite(flag: str | None) -> str:
    return f", or pass {flag} to replace it" if flag else ""


def check_file(
    path: str | Path,
    *,
    command: str,
    overwrite: bool = False,
    option: str = "--out",
    overwrite_flag: str | None = "--overwrite",
    legacy_keys: Iterable[str] = (),
) -> None:
    """Refuse, before any work, to write ``path`` over a file that imitation did not write.

    ``overwrite`` (the command's ``overwrite_flag``) lets it replace such a file; a command without
    that flag passes ``overwrite_flag=None``. A directory at ``path`` is always refused."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and not path.is_symlink():
        raise ConfigError(f"{path} is a directory; {command} writes a file there: choose another {option}")
    if is_marked(path, legacy_keys) or (overwrite and overwrite_flag):
        return
    raise ConfigError(
        f"{path} exists and was not written by imitation, and {command} would write over it; "
        f"choose another {option}{_can_overwrite(overwrite_flag)}"
    )


def check_dir(
    path: str | Path,
    names: Iterable[str],
    *,
    command: str,
    overwrite: bool = False,
    option: str = "--out",
    overwrite_flag: str | None = "--overwrite",
    temporary: Iterable[str] = (),
    results: str = "results.json",
    legacy_keys: Iterable[str] = (),
) -> None:
    """Refuse, before any work, to write into a directory that holds files imitation did not write.

    ``names``: glob patterns of the files ``command`` writes there. A file matching one is the
    project's when it carries the mark; in a directory whose ``results`` file imitation wrote before
    marks existed (``legacy_keys``), its name is enough. ``temporary``: patterns of the command's
    temporary files, left by a run that was killed. ``overwrite`` (the command's ``overwrite_flag``;
    None where it has none) writes into the directory anyway."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise ConfigError(
            f"{path} exists and is not a directory; {command} writes a directory of results there: "
            f"choose another {option}"
        )
    if overwrite and overwrite_flag:
        return
    names, temporary = tuple(names), (*TEMPORARY, *temporary)
    keys = tuple(legacy_keys)
    old = bool(keys) and is_marked(path / results, keys) and not is_marked(path / results)

    def ours(entry: Path) -> bool:
        if any(fnmatch.fnmatchcase(entry.name, p) for p in temporary):
            return entry.is_file() and not entry.is_symlink()
        if not any(fnmatch.fnmatchcase(entry.name, p) for p in names):
            return False
        return is_marked(entry, keys) or (old and entry.is_file() and not entry.is_symlink())

    foreign = [e.name for e in sorted(path.iterdir()) if not ours(e)]
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        anyway = (
            f", or pass {overwrite_flag} to write into it anyway (files with the names it writes are "
            "replaced, nothing else is touched)"
            if overwrite_flag
            else ""
        )
        raise ConfigError(
            f"{path} holds {foreign[0]}{more}, which imitation did not write; {command} writes its results "
            f"there: choose another {option} (new or empty){anyway}"
        )
