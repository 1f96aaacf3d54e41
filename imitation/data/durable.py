"""Crash-safe file writes for the demo store.

zarr's ``LocalStore`` already writes each key through a temporary file and a rename, so a killed
process never leaves a torn file; it does not ``fsync``, so after a power cut a rename may survive
while the data it points to does not. ``DurableLocalStore`` adds the missing ``fsync`` of each file
before its rename and of the directory after it, which is what makes "an episode is committed only
after its frames are durable" true on disk and not only in the page cache.

Every step (write, fsync, rename, directory fsync, delete) passes through a ``FaultHook``. Tests
use it to stop the writer deterministically at each step of a commit and check what survives.

zarr reads a chunk file that is not there as the array's fill value, so a chunk lost to damage
would read as zeros. ``DurableLocalStore`` takes a ``required(key)`` rule from the demo store (is
this chunk part of committed data?) and raises ``StoreDamage`` for a missing required chunk.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import LocalStore

from imitation.errors import StoreDamage

TMP_SUFFIX = ".partial"
_UNCACHED_BYTES = 4 << 20  # files at least this large leave the page cache once durable (image shards)
_FADVISE = hasattr(os, "posix_fadvise")  # Linux and most Unixes; not macOS or Windows

# hook(step, path): called before each step; raising from it aborts the operation at that point.
FaultHook = Callable[[str, str], None]
# required(key): whether the file under this store key holds committed data (so its absence is damage).
Required = Callable[[str], bool]


class SimulatedCrash(BaseException):
    """Raised by fault-injection hooks to stop a writer as if the process had been killed.

    A BaseException so that ordinary ``except Exception`` clean-up code does not run, as it would
    not after a real kill.
    """


class CrashAfter:
    """A ``FaultHook`` that lets ``n`` steps through and "kills" the writer at step ``n``.

    After the crash every further step also raises, so nothing more reaches the disk. ``steps``
    records (step, path) for every step seen, which is how tests enumerate a commit's steps.
    """

    def __init__(self, n: int | None = None) -> None:
        self.n = n
        self.steps: list[tuple[str, str]] = []
        self.crashed = False

    def __call__(self, step: str, path: str) -> None:
        if self.crashed:
            raise SimulatedCrash(f"writer already crashed; refused {step} {path}")
        self.steps.append((step, path))
        if self.n is not None and len(self.steps) > self.n:
            self.crashed = True
            raise SimulatedCrash(f"simulated crash at step {self.n}: {step} {path}")


def _no_hook(step: str, path: str) -> None:
    return None


def fsync_dir(path: Path, hook: FaultHook = _no_hook) -> None:
    hook("fsync_dir", str(path))
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_dirs(directory: Path, hook: FaultHook) -> None:
    """mkdir -p, fsyncing each parent whose entry list changed so new directories survive too."""
    missing = []
    d = directory
    while not d.exists():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        hook("mkdir", str(d))
        d.mkdir(exist_ok=True)
        fsync_dir(d.parent, hook)


def atomic_write(path: Path, data: Any, hook: FaultHook = _no_hook) -> None:
    """Write ``data`` to ``path`` so that the file is either the old one or the complete new one.

    ``data`` is one buffer or a sequence of buffers written one after another; large shard files
    are passed as their parts, so no thread holds the GIL to join tens of megabytes (a 50 Hz
    control loop in another thread would miss its deadline meanwhile).
    """
    _make_dirs(path.parent, hook)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")
    parts = (
        [memoryview(data).cast("B")]
        if isinstance(data, bytes | bytearray | memoryview)
        else [memoryview(p).cast("B") for p in data]
    )
    if len(parts) == 1:  # split anyway, so that a torn write can be simulated
        half = len(parts[0]) // 2
        parts = [parts[0][:half], parts[0][half:]]
    try:
        with open(tmp, "wb") as f:
            hook("write", str(path))
            for i, part in enumerate(parts):
                if i == len(parts) // 2:
                    hook("write_end", str(path))  # a crash here leaves a torn temporary file
                f.write(part)
            f.flush()
            hook("fsync", str(path))
            os.fsync(f.fileno())
            if _FADVISE and sum(len(p) for p in parts) >= _UNCACHED_BYTES:
                # Written for good and clean now: hand its pages back rather than let the page
                # cache grow until the kernel must reclaim memory from the writing process itself
                # (on a machine whose memory is full of cache, that made every page the
                # recorder's control loop touched cost several times more).
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        hook("rename", str(path))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent, hook)


def _nothing_required(key: str) -> bool:
    return False


class DurableLocalStore(LocalStore):
    """A zarr ``LocalStore`` whose writes are atomic and durable (fsync) and can be fault-injected,
    and whose reads refuse a missing file that ``required`` says holds committed data."""

    def __init__(
        self,
        root: Path | str,
        *,
        read_only: bool = False,
        hook: FaultHook | None = None,
        required: Required | None = None,
    ) -> None:
        super().__init__(root, read_only=read_only)
        self.hook: FaultHook = hook or _no_hook
        self.required: Required = required or _nothing_required

    def with_read_only(self, read_only: bool = False) -> DurableLocalStore:
        return DurableLocalStore(self.root, read_only=read_only, hook=self.hook, required=self.required)

    def _present(self, key: str, value: Buffer | None) -> Buffer | None:
        if value is None and self.required(key):
            raise StoreDamage(
                f"{self.root}: {key} is missing, but it holds committed data; the store is damaged "
                f"(run 'imitation data validate {self.root}' for a full report)"
            )
        return value

    async def get(
        self, key: str, prototype: BufferPrototype | None = None, byte_range: Any = None
    ) -> Buffer | None:
        return self._present(key, await super().get(key, prototype, byte_range))

    def get_sync(
        self, key: str, *, prototype: BufferPrototype | None = None, byte_range: Any = None
    ) -> Buffer | None:
        return self._present(key, super().get_sync(key, prototype=prototype, byte_range=byte_range))

    async def get_partial_values(self, prototype: BufferPrototype, key_ranges: Any) -> list[Buffer | None]:
        key_ranges = list(key_ranges)
        values = await super().get_partial_values(prototype, key_ranges)
        return [self._present(key, v) for (key, _), v in zip(key_ranges, values, strict=True)]

    async def _set(self, key: str, value: Buffer, exclusive: bool = False) -> None:
        import asyncio

        if not self._is_open:
            await self._open()
        self._check_writable()
        path = self.root / key
        if exclusive and path.exists():
            raise FileExistsError(path)
        await asyncio.to_thread(atomic_write, path, value.as_buffer_like(), self.hook)

    async def delete(self, key: str) -> None:
        self.hook("delete", str(self.root / key))
        await super().delete(key)


def remove_temporaries(root: Path) -> list[Path]:
    """Delete temporary files left by writes that were interrupted; returns what was removed."""
    removed = []
    for p in root.rglob(f"*{TMP_SUFFIX}"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def write_key(store: DurableLocalStore, key: str, data: Any) -> None:
    """Write raw bytes under a store key through the same durable path as zarr's own writes."""
    atomic_write(store.root / key, data, store.hook)
