"""The Zarr demonstration store: one directory per dataset, every frame of every episode.

Layout (Zarr v3, readable with plain ``zarr``; shaped like diffusion_policy's replay buffer)::

    <name>.zarr/
      attrs: format, format_version, fps, robot, features, software, created, [stats]
      data/<key>            frames of all episodes concatenated along axis 0
      meta/episode_ends     int64 cumulative frame counts: the only commit record
      meta/<field>          one entry per episode (task, operator, start_time, duration_s, outcome,
                            dropped_frames, seed, info)

Commit protocol. Frames are written first (each file atomically and durably, see ``durable.py``);
then the per-episode metadata; then ``meta/episode_ends`` grows by one entry. That last chunk
write is the commit: a store killed at any instant holds a valid prefix of ``episode_ends``, every
episode in it reads back bit-exact, and anything after it is an uncommitted tail that readers
ignore and the writer truncates (and reports) when it next opens the store.

The committed prefix is the longest prefix of ``episode_ends`` that is strictly increasing,
positive and within the length of every data and metadata array. (A crash between the resize of
``episode_ends`` and the write of its new value leaves a trailing fill value of 0, which fails
that test, so the half-done commit is not counted.)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from imitation import __version__
from imitation.data.codecs import CODEC_PACKAGES, FrameEncoder, zarr_codecs
from imitation.data.durable import DurableLocalStore, FaultHook, remove_temporaries, write_key
from imitation.data.schema import TIMESTAMP, Feature, SchemaError, parse_features, validate_frame
from imitation.data.shards import build_shard, shard_key, split_shard
from imitation.errors import StoreError

log = logging.getLogger(__name__)

FORMAT = "imitation.demos"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
EPISODE_CHUNK = 4096  # metadata entries per chunk

# Per-episode metadata fields: name -> (dtype, default).
EPISODE_FIELDS: dict[str, tuple[Any, Any]] = {
    "task": (str, ""),
    "operator": (str, ""),
    "start_time": (np.float64, 0.0),  # wall-clock Unix time (s) when the episode started
    "duration_s": (np.float64, 0.0),
    "outcome": (str, ""),  # e.g. success, failure, unknown
    "dropped_frames": (np.int64, 0),
    "seed": (np.int64, -1),  # simulation seed, -1 when none
    "info": (str, "{}"),  # JSON object with anything else
}


@dataclass
class RecoveryReport:
    """What opening a store for writing had to clean up after an interrupted writer."""

    dropped_frames: int = 0
    dropped_metadata_entries: int = 0
    removed_temporaries: int = 0

    def __bool__(self) -> bool:
        return bool(self.dropped_frames or self.dropped_metadata_entries or self.removed_temporaries)

    def __str__(self) -> str:
        return (
            f"dropped an uncommitted tail of {self.dropped_frames} frame(s) and "
            f"{self.dropped_metadata_entries} metadata entr(ies); removed {self.removed_temporaries} "
            "temporary file(s) of interrupted writes"
        )


def committed_count(episode_ends: np.ndarray, limit_frames: int, limit_episodes: int) -> int:
    """Length of the valid prefix of ``episode_ends`` (see the module docstring)."""
    ends = np.asarray(episode_ends[:limit_episodes], dtype=np.int64)
    if ends.size == 0:
        return 0
    prev = np.concatenate([[0], ends[:-1]])
    ok = (ends > prev) & (ends <= limit_frames)
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if bad.size else int(ends.size)


class DemoStore:
    """A demonstration store on disk. ``DemoStore.open(path)`` to read, ``create``/``writer`` to write.

    Reading never sees uncommitted frames: ``episode_ends``, ``n_frames`` and all readers are
    limited to the committed prefix as it was when the store was opened (``refresh()`` re-reads it).
    """

    def __init__(self, path: Path, group: zarr.Group, store: DurableLocalStore) -> None:
        self.path = path
        self._group = group
        self._zstore = store
        attrs = dict(group.attrs)
        self.attrs = attrs
        if attrs.get("format") != FORMAT:
            raise StoreError(
                f"{path} is a Zarr group but not a demo store (attrs format={attrs.get('format')!r}, "
                f"expected {FORMAT!r}); use 'imitation data import' for other layouts"
            )
        version = attrs.get("format_version")
        if version not in SUPPORTED_VERSIONS:
            raise StoreError(
                f"{path} has format_version {version!r}; this version of imitation ({__version__}) reads "
                f"{', '.join(map(str, SUPPORTED_VERSIONS))}: upgrade imitation to open it"
            )
        self.features: dict[str, Feature] = {k: Feature.from_dict(v) for k, v in attrs["features"].items()}
        self.fps: float = float(attrs["fps"])
        self.robot: dict[str, Any] = dict(attrs.get("robot") or {})
        self.refresh()

    # ------------------------------------------------------------------ opening and creating
    @classmethod
    def open(cls, path: str | Path, *, hook: FaultHook | None = None) -> DemoStore:
        """Open an existing store for reading."""
        path = Path(path)
        if not (path / "zarr.json").is_file():
            _refuse_interrupted_edit(path)
            hint = (
                " (a Zarr v2 store: convert it with 'imitation data import')"
                if (path / ".zgroup").exists()
                else ""
            )
            raise StoreError(
                f"no demo store at {path}{hint}; create one by recording or 'imitation data import'"
            )
        zstore = DurableLocalStore(path, hook=hook)
        try:
            group = zarr.open_group(
                store=zstore, mode="r+" if os.access(path, os.W_OK) else "r", use_consolidated=False
            )
        except Exception as e:  # zarr raises several types for unreadable metadata
            raise StoreError(f"cannot open {path} as a Zarr group: {e}") from e
        return cls(path, group, zstore)

    @classmethod
    def create(
        cls,
        path: str | Path,
        features: Mapping[str, Feature | Mapping[str, Any]],
        *,
        fps: float,
        robot: Mapping[str, Any] | None = None,
        hook: FaultHook | None = None,
    ) -> DemoStore:
        """Create an empty store with a feature schema. Refuses to overwrite an existing path."""
        path = Path(path)
        if path.exists():
            raise StoreError(f"{path} already exists; open it to append, or choose another path")
        if not fps or fps <= 0:
            raise StoreError(f"fps must be > 0 (the robot's control_hz), got {fps}")
        schema = parse_features(features)
        tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
        zstore = DurableLocalStore(tmp, hook=hook)
        group = zarr.open_group(store=zstore, mode="w-", zarr_format=3)
        data = group.create_group("data")
        for key, feat in schema.items():
            _create_feature_array(data, key, feat)
        meta = group.create_group("meta")
        meta.create_array("episode_ends", shape=(0,), dtype="int64", chunks=(EPISODE_CHUNK,), fill_value=0)
        for name, (dtype, default) in EPISODE_FIELDS.items():
            meta.create_array(name, shape=(0,), dtype=dtype, chunks=(EPISODE_CHUNK,), fill_value=default)
        group.attrs.update(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "fps": float(fps),
                "robot": dict(robot or {}),
                "features": {k: f.to_dict() for k, f in schema.items()},
                "codec_packages": {k: CODEC_PACKAGES[f.codec["name"]] for k, f in schema.items()},
                "software": {"imitation": __version__, "zarr": zarr.__version__},
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            }
        )
        # The store appears under its name only once complete.
        os.replace(tmp, path)
        from imitation.data.durable import fsync_dir

        fsync_dir(path.parent)
        return cls.open(path, hook=hook)

    def refresh(self) -> None:
        """Re-read the commit record (to see episodes committed since opening)."""
        meta = self._group["meta"]
        ends = np.asarray(meta["episode_ends"][:], dtype=np.int64)
        limit_frames = min(int(self._group["data"][k].shape[0]) for k in self.features)
        limit_eps = min(int(meta[name].shape[0]) for name in EPISODE_FIELDS)
        k = committed_count(ends, limit_frames, limit_eps)
        self.episode_ends = ends[:k]
        self._stored_ends = ends.size
        self._stored_frames = max(int(self._group["data"][key].shape[0]) for key in self.features)

    # ------------------------------------------------------------------ reading
    @property
    def n_episodes(self) -> int:
        return int(self.episode_ends.size)

    @property
    def n_frames(self) -> int:
        return int(self.episode_ends[-1]) if self.episode_ends.size else 0

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self.episode_ends, prepend=0)

    @property
    def uncommitted_frames(self) -> int:
        """Frames on disk past the last committed episode (an interrupted or ongoing recording)."""
        return self._stored_frames - self.n_frames

    def array(self, key: str) -> zarr.Array:
        if key not in self.features:
            raise KeyError(f"no feature {key!r} in {self.path}; features: {sorted(self.features)}")
        return self._group["data"][key]

    def episode_range(self, episode: int) -> tuple[int, int]:
        """(start, end) frame indices of an episode (end exclusive)."""
        n = self.n_episodes
        if not -n <= episode < n:
            raise IndexError(f"episode {episode} out of range: the store has {n} committed episode(s)")
        episode %= n
        start = int(self.episode_ends[episode - 1]) if episode > 0 else 0
        return start, int(self.episode_ends[episode])

    def read(self, key: str, start: int = 0, end: int | None = None) -> np.ndarray:
        """Frames [start, end) of one feature (committed frames only)."""
        end = self.n_frames if end is None else end
        if not 0 <= start <= end <= self.n_frames:
            raise IndexError(f"frames [{start}, {end}) outside the committed range [0, {self.n_frames})")
        return np.asarray(self.array(key)[start:end])

    def read_episode(self, episode: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        start, end = self.episode_range(episode)
        return {k: self.read(k, start, end) for k in (keys or self.features)}

    def episode_meta(self, episode: int) -> dict[str, Any]:
        self.episode_range(episode)
        out: dict[str, Any] = {}
        for name in EPISODE_FIELDS:
            v = self._group["meta"][name][episode]
            out[name] = v.item() if hasattr(v, "item") else v
        out["info"] = json.loads(out["info"] or "{}")
        out["length"] = int(self.episode_lengths[episode])
        return out

    def meta_table(self) -> dict[str, np.ndarray]:
        """All per-episode metadata as arrays of length n_episodes (``info`` stays JSON text)."""
        n = self.n_episodes
        table = {name: np.asarray(self._group["meta"][name][:n]) for name in EPISODE_FIELDS}
        table["length"] = self.episode_lengths
        return table

    def read_encoded(self, key: str, start: int, end: int) -> list[bytes]:
        """The stored (compressed) bytes of frames [start, end) of an image feature, unchanged."""
        feat = self.features[key]
        if not feat.sharded:
            raise ValueError(f"feature {key!r} is not an image feature; read_encoded reads images only")
        if not 0 <= start <= end <= self.n_frames:
            raise IndexError(f"frames [{start}, {end}) outside the committed range [0, {self.n_frames})")
        s = feat.file_frames()
        out: list[bytes] = []
        for shard in range(start // s, (end - 1) // s + 1 if end > start else start // s):
            blob = (self.path / shard_key(key, shard, len(feat.shape) + 1)).read_bytes()
            chunks = split_shard(blob, s, where=shard_key(key, shard, len(feat.shape) + 1))
            lo, hi = max(start, shard * s) - shard * s, min(end, (shard + 1) * s) - shard * s
            for i in range(lo, hi):
                c = chunks[i]
                if c is None:
                    raise StoreError(f"{key}: frame {shard * s + i} is missing from its shard")
                out.append(bytes(c))
        return out

    # ------------------------------------------------------------------ fingerprint and stats
    def fingerprint(self) -> str:
        """Identifies the committed content: episode ends plus each episode's start time.

        Start times tell apart stores whose episode lengths happen to match (deleting episode 0
        or episode 2 of three equal episodes leaves the same ends).
        """
        h = hashlib.sha256()
        h.update(self.episode_ends.astype("<i8").tobytes())
        h.update(np.asarray(self._group["meta"]["start_time"][: self.n_episodes], dtype="<f8").tobytes())
        return h.hexdigest()[:32]

    def stats(self, *, compute: bool = True, progress: bool = False) -> dict[str, dict[str, Any]]:
        """Normalisation statistics per feature, cached in the store's attrs for this fingerprint."""
        cached = self._group.attrs.get("stats")
        fp = self.fingerprint()
        if cached and cached.get("fingerprint") == fp:
            return cached["features"]
        if not compute:
            raise StoreError(
                f"{self.path} has no statistics for its current content; run 'imitation data repair'"
            )
        if self.n_episodes == 0:
            raise StoreError(f"{self.path} has no committed episodes; statistics need at least one")
        from imitation.data.stats import compute_store_stats

        features = compute_store_stats(self, progress=progress)
        try:
            self._group.attrs["stats"] = {"fingerprint": fp, "features": features}
        except Exception as e:  # a read-only store or file system: keep the result, skip the cache
            log.warning("could not cache statistics in %s: %s", self.path, e)
        return features

    def has_fresh_stats(self) -> bool:
        cached = self._group.attrs.get("stats")
        return bool(cached) and cached.get("fingerprint") == self.fingerprint()

    # ------------------------------------------------------------------ writing
    def writer(self, **kwargs: Any) -> EpisodeWriter:
        """Open this store for appending episodes (see ``EpisodeWriter``)."""
        return EpisodeWriter(self.path, **kwargs)

    def files_on_disk(self) -> tuple[int, int]:
        """(number of files, total bytes) under the store directory."""
        n, size = 0, 0
        for root, _, files in os.walk(self.path):
            for f in files:
                n += 1
                size += os.path.getsize(os.path.join(root, f))
        return n, size

    def feature_nbytes(self, key: str) -> int:
        """Bytes on disk of one feature's array."""
        size = 0
        for root, _, files in os.walk(self.path / "data" / key):
            size += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        return size


def _create_feature_array(data: zarr.Group, key: str, feat: Feature) -> zarr.Array:
    """Create the zarr array for a feature: sharded one-frame chunks for images, plain chunks else."""
    chain = zarr_codecs(feat.codec, feat.np_dtype.itemsize)
    n = feat.file_frames()
    kwargs: dict[str, Any] = {"serializer": chain[0], "compressors": chain[1:] or None, "fill_value": 0}
    if feat.sharded:
        kwargs["chunks"] = (1, *feat.shape)
        kwargs["shards"] = (n, *feat.shape)
    else:
        kwargs["chunks"] = (n, *feat.shape)
    if key.count("/"):
        parent, name = key.split("/")
        group = data.require_group(parent)
    else:
        group, name = data, key
    return group.create_array(name, shape=(0, *feat.shape), dtype=feat.np_dtype, **kwargs)


# ---------------------------------------------------------------------------------------------
# Writing


class _ImageColumn:
    """Builds the shard files of one image feature frame by frame, encoding each frame on arrival."""

    def __init__(self, store: DurableLocalStore, key: str, feat: Feature) -> None:
        self.store = store
        self.key = key
        self.ndim = len(feat.shape) + 1
        self.per_shard = feat.file_frames()
        self.encoder = FrameEncoder(feat.codec, feat.np_dtype)
        self.shard = -1
        self.chunks: list[bytes | None] = []
        self.dirty = False

    def begin(self, start: int) -> None:
        """Start writing at global frame ``start``; keeps the committed frames of its shard."""
        self.shard = start // self.per_shard
        self.chunks = [None] * self.per_shard
        keep = start - self.shard * self.per_shard
        path = self.store.root / shard_key(self.key, self.shard, self.ndim)
        if keep and path.exists():
            old = split_shard(path.read_bytes(), self.per_shard)
            self.chunks[:keep] = old[:keep]
        self.dirty = False

    def add(self, index: int, frame: np.ndarray | bytes) -> None:
        shard, local = divmod(index, self.per_shard)
        if shard != self.shard:
            self.flush()
            self.shard, self.chunks = shard, [None] * self.per_shard
        self.chunks[local] = frame if isinstance(frame, bytes) else self.encoder.encode(frame)
        self.dirty = True
        if local == self.per_shard - 1:
            self.flush()

    def flush(self) -> None:
        if self.dirty:
            write_key(self.store, shard_key(self.key, self.shard, self.ndim), build_shard(self.chunks))
            self.dirty = False


class _ArrayColumn:
    """Buffers a low-dimensional feature and writes it through zarr at chunk boundaries."""

    def __init__(self, array: zarr.Array, feat: Feature) -> None:
        self.array = array
        self.per_chunk = feat.file_frames()
        self.buf = np.zeros((self.per_chunk, *feat.shape), dtype=feat.np_dtype)
        self.start = 0
        self.count = 0

    def begin(self, start: int) -> None:
        self.start, self.count = start, 0

    def add(self, index: int, value: np.ndarray) -> None:
        self.buf[self.count] = value
        self.count += 1
        if (index + 1) % self.per_chunk == 0 or self.count == self.per_chunk:
            self.flush()

    def flush(self) -> None:
        if self.count:
            end = self.start + self.count
            if self.array.shape[0] < end:
                self.array.resize((end, *self.array.shape[1:]))
            self.array[self.start : end] = self.buf[: self.count]
            self.start, self.count = end, 0


class _Encoded(bytes):
    """Already-encoded image bytes handed to the writer (copying between stores without re-encoding)."""


class EpisodeWriter:
    """Appends episodes to a demo store; frames are written by a background thread.

    ::

        with EpisodeWriter("demos/pick.zarr", features=..., fps=50) as w:
            w.start_episode(task="pick the cube", operator="ana")
            for ...:
                w.add_frame({"state": q, "action": a, "images/top": rgb, "timestamp": t})
            w.save_episode(outcome="success")   # or w.discard_episode() / w.rerecord()

    ``add_frame`` validates the frame, copies it and returns at once; encoding and disk writes
    happen on a background thread, so a 50 Hz loop never waits on the disk (unless more than
    ``max_queue_s`` of frames are waiting, when it blocks rather than lose data). A save is
    durable when ``save_episode`` returns. Only one writer may hold a store at a time.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        features: Mapping[str, Feature | Mapping[str, Any]] | None = None,
        fps: float | None = None,
        robot: Mapping[str, Any] | None = None,
        max_queue_s: float = 10.0,
        hook: FaultHook | None = None,
    ) -> None:
        self.path = Path(path)
        if not (self.path / "zarr.json").exists():
            _refuse_interrupted_edit(self.path)
            if features is None or fps is None:
                raise StoreError(f"{self.path} does not exist; pass features= and fps= to create it")
            DemoStore.create(self.path, features, fps=fps, robot=robot, hook=hook)
        self._lock_file = _acquire_lock(self.path)
        try:
            self.recovery = _recover(self.path, hook)
            if self.recovery:
                log.warning("%s: %s", self.path, self.recovery)
            self.store = DemoStore.open(self.path, hook=hook)
            if features is not None:
                _check_same_schema(self.store, parse_features(features), fps)
        except BaseException:
            self._lock_file.close()
            raise
        self.features = self.store.features
        self.fps = self.store.fps
        self._committed_end = self.store.n_frames
        self._n_committed = self.store.n_episodes
        self._n_requested = self._n_committed  # saves asked for, committed or still queued
        zstore = self.store._zstore
        self._columns: dict[str, _ImageColumn | _ArrayColumn] = {
            k: _ImageColumn(zstore, k, f)
            if f.sharded
            else _ArrayColumn(_materialising(self.store.array(k)), f)
            for k, f in self.features.items()
        }
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, int(max_queue_s * self.fps)))
        self._error: BaseException | None = None
        self._episode: dict[str, Any] | None = None
        self._n_frames = 0
        self._last_ts = -np.inf
        self._first_ts = 0.0
        self._oldest_pending: list[float] = []
        self.max_lag_s = 0.0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"demo-writer:{self.path.name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API
    @property
    def n_episodes(self) -> int:
        """Committed episodes (including those saved through this writer)."""
        return self._n_committed

    @property
    def episode_frames(self) -> int:
        """Frames added to the current episode so far."""
        return self._n_frames

    @property
    def recording(self) -> bool:
        return self._episode is not None

    @property
    def lag_s(self) -> float:
        """How long the oldest frame not yet handled by the background writer has waited."""
        with contextlib.suppress(IndexError):
            return time.monotonic() - self._oldest_pending[0]
        return 0.0

    def start_episode(
        self,
        *,
        task: str = "",
        operator: str = "",
        seed: int | None = None,
        info: Mapping[str, Any] | None = None,
        start_time: float | None = None,
    ) -> None:
        """Begin an episode. ``start_time`` (Unix seconds) defaults to now; copies pass the original."""
        self._check_usable()
        if self._episode is not None:
            raise StoreError("an episode is already being recorded; save or discard it first")
        try:
            info_text = json.dumps(dict(info or {}))
        except TypeError as e:
            raise StoreError(f"episode info must be JSON-serialisable: {e}") from e
        self._episode = {
            "task": str(task),
            "operator": str(operator),
            "seed": -1 if seed is None else int(seed),
            "info": info_text,
            "start_time": time.time() if start_time is None else float(start_time),
        }
        self._n_frames = 0
        self._last_ts = -np.inf
        self._put(("begin", None))

    def add_frame(self, frame: Mapping[str, Any]) -> None:
        """Validate and queue one frame of the current episode (copied; the caller may reuse buffers)."""
        self._check_usable()
        if self._episode is None:
            raise StoreError("no episode is being recorded; call start_episode() first")
        enc = {k: v for k, v in frame.items() if isinstance(v, _Encoded)}
        checked = validate_frame(self.features, {**frame, **{k: self._placeholder(k) for k in enc}})
        ts = float(checked[TIMESTAMP])
        if not ts > self._last_ts:
            raise SchemaError(
                f"feature 'timestamp': {ts} does not increase (previous frame {self._last_ts}); "
                "timestamps must be strictly increasing within an episode"
            )
        if self._n_frames == 0:
            self._first_ts = ts
        self._last_ts = ts
        values = {k: (enc[k] if k in enc else np.array(v, copy=True)) for k, v in checked.items()}
        self._n_frames += 1
        self._put(("frame", values))

    def save_episode(
        self,
        *,
        outcome: str = "success",
        dropped_frames: int = 0,
        duration_s: float | None = None,
        wait: bool = True,
    ) -> int:
        """Commit the current episode durably; returns its index in the store.

        ``duration_s`` defaults to the span of the frame timestamps plus one control period. With
        ``wait=False`` the commit is queued behind the episode's frames and the call returns at
        once (a control loop keeps its rate); the episode is durable when ``n_episodes`` exceeds
        the returned index (``is_saved``), and at the latest when ``flush`` or ``close`` returns.
        """
        self._check_usable()
        if self._episode is None:
            raise StoreError("no episode is being recorded; nothing to save")
        if self._n_frames == 0:
            raise StoreError("the episode has no frames; discard it instead of saving")
        if duration_s is None:
            duration_s = self._last_ts - self._first_ts + 1.0 / self.fps
        ep = dict(
            self._episode, outcome=str(outcome), dropped_frames=int(dropped_frames), duration_s=duration_s
        )
        self._episode = None
        index = self._n_requested
        self._n_requested += 1
        done = threading.Event()
        self._put(("save", (ep, done)))
        if wait:
            done.wait()
            self._check_usable()
        return index

    def is_saved(self, index: int) -> bool:
        """Whether the episode ``save_episode`` numbered ``index`` is committed (durable)."""
        self._check_usable(allow_closed=True)
        return index < self._n_committed

    def discard_episode(self) -> None:
        """Throw the current episode away; nothing of it stays in the store."""
        self._check_usable()
        if self._episode is None:
            return
        self._episode = None
        self._n_frames = 0
        self._put(("discard", None))

    def rerecord(self) -> None:
        """Discard the current episode and start a new one with the same task, operator and seed."""
        if self._episode is None:
            raise StoreError("no episode is being recorded; nothing to re-record")
        ep = self._episode
        self.discard_episode()
        self.start_episode(
            task=ep["task"],
            operator=ep["operator"],
            seed=None if ep["seed"] < 0 else ep["seed"],
            info=json.loads(ep["info"]),
        )

    def flush(self) -> None:
        """Wait until the background writer has handled every queued frame."""
        self._queue.join()
        self._check_usable(allow_closed=True)

    def close(self) -> None:
        """Discard an unsaved episode, stop the writer thread and release the store."""
        if self._closed:
            return
        try:
            if self._episode is not None and self._error is None:
                log.warning(
                    "%s: closing with an unsaved episode of %d frame(s); it is discarded",
                    self.path,
                    self._n_frames,
                )
                self.discard_episode()
            if self._thread.is_alive():
                self._queue.put(("stop", None))
                self._thread.join()
        finally:
            self._closed = True
            self._lock_file.close()
        if self._error is not None and not isinstance(self._error, StoreError):
            raise StoreError(
                f"the background writer for {self.path} failed: {self._error!r}"
            ) from self._error

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and self._episode is not None:
            self._episode = None
            self._put(("discard", None), check=False)
        self.close()

    # ------------------------------------------------------------------ internals
    def _placeholder(self, key: str) -> np.ndarray:
        """Stands in for pre-encoded image bytes during validation (they must use this store's codec)."""
        f = self.features[key]
        if not f.sharded:
            raise SchemaError(f"feature {key!r}: pre-encoded bytes are accepted for image features only")
        return np.zeros(f.shape, f.np_dtype)

    def _check_usable(self, allow_closed: bool = False) -> None:
        if self._error is not None:
            raise StoreError(
                f"the background writer for {self.path} stopped after an error ({self._error!r}); "
                "committed episodes are safe — reopen the store to continue"
            ) from self._error
        if self._closed and not allow_closed:
            raise StoreError(f"the writer for {self.path} is closed; open a new one to append")

    def _put(self, item: tuple[str, Any], check: bool = True) -> None:
        self._oldest_pending.append(time.monotonic())
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._error is not None or not self._thread.is_alive():
                    if check:
                        self._check_usable()
                    return
                log.warning("%s: the writer is more than the queue behind; waiting for the disk", self.path)

    def _run(self) -> None:
        index = self._committed_end
        while True:
            kind, payload = self._queue.get()
            try:
                if self._error is None:
                    if kind == "begin":
                        index = self._committed_end
                        for col in self._columns.values():
                            col.begin(index)
                    elif kind == "frame":
                        for key, col in self._columns.items():
                            col.add(index, payload[key])
                        index += 1
                    elif kind == "save":
                        self._commit(index, payload[0])
                    elif kind == "discard":
                        self._truncate_to_committed()
                        index = self._committed_end
            except BaseException as e:  # kept and re-raised in the caller's thread
                self._error = e
            finally:
                if kind == "save":
                    payload[1].set()  # never leave save_episode waiting, error or not
                if self._oldest_pending:
                    lag = time.monotonic() - self._oldest_pending.pop(0)
                    self.max_lag_s = max(self.max_lag_s, lag)
                self._queue.task_done()
            if kind == "stop":
                return

    def _commit(self, end: int, ep: dict[str, Any]) -> None:
        group = self.store._group
        for key, col in self._columns.items():
            col.flush()
            arr = group["data"][key]
            if arr.shape[0] != end:
                arr.resize((end, *arr.shape[1:]))
        n = self._n_committed
        meta = group["meta"]
        for name in EPISODE_FIELDS:
            arr = _materialising(meta[name])
            arr.resize((n + 1,))
            arr[n] = ep[name]
        ends = meta["episode_ends"]
        ends.resize((n + 1,))
        ends[n] = end  # the commit point
        self._n_committed = n + 1
        self._committed_end = end

    def _truncate_to_committed(self) -> None:
        group = self.store._group
        for key, col in self._columns.items():
            if isinstance(col, _ArrayColumn):
                col.begin(self._committed_end)
            else:
                col.dirty = False
            arr = group["data"][key]
            if arr.shape[0] > self._committed_end:
                arr.resize((self._committed_end, *arr.shape[1:]))


def encoded(data: bytes) -> bytes:
    """Mark already-encoded image bytes (from ``DemoStore.read_encoded``) for ``add_frame``."""
    return _Encoded(data)


def _check_same_schema(store: DemoStore, features: dict[str, Feature], fps: float | None) -> None:
    want = {k: f.to_dict() for k, f in features.items()}
    have = {k: f.to_dict() for k, f in store.features.items()}
    if want != have:
        diff = sorted(set(want) ^ set(have)) or [k for k in want if want[k] != have[k]]
        raise StoreError(
            f"{store.path} exists with a different feature schema (differs in {diff}); "
            "append with the same features or record into a new store"
        )
    if fps is not None and float(fps) != store.fps:
        raise StoreError(f"{store.path} was recorded at {store.fps} fps, not {fps}; use the same rate")


def _materialising(array: zarr.Array) -> zarr.Array:
    """The array, set to write every chunk to disk, including chunks equal to the fill value.

    By default zarr skips such chunks and reads their absence as fill values, which makes a chunk
    lost to damage indistinguishable from one that held zeros; ``validate`` relies on every chunk
    covering committed frames being a file.
    """
    return array.with_config({"write_empty_chunks": True})


def _refuse_interrupted_edit(path: Path) -> None:
    """An in-place edit moves the store aside (``.old-<pid>``) while it swaps the new one in; if
    that was interrupted, say so instead of reporting a missing store or creating an empty one."""
    from imitation.data.edit import interrupted_edit

    aside = [p.name for p in interrupted_edit(path) if ".old-" in p.name]
    if aside:
        raise StoreError(
            f"an edit of {path} was interrupted and the store is at {', '.join(aside)}; "
            f"run 'imitation data repair {path}' to finish or undo the edit"
        )


def _acquire_lock(path: Path) -> Any:
    f = open(path / ".writer.lock", "a+")  # noqa: SIM115 - held for the writer's lifetime
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise StoreError(f"{path} is open for writing by another process; close it there first") from None
    return f


def _recover(path: Path, hook: FaultHook | None) -> RecoveryReport:
    """Drop the uncommitted tail left by an interrupted writer (the caller holds the lock)."""
    report = RecoveryReport(removed_temporaries=len(remove_temporaries(path)))
    store = DemoStore.open(path, hook=hook)
    group = store._group
    end, n = store.n_frames, store.n_episodes
    for key in store.features:
        arr = group["data"][key]
        if arr.shape[0] > end:
            report.dropped_frames = max(report.dropped_frames, arr.shape[0] - end)
            arr.resize((end, *arr.shape[1:]))
    for name in (*EPISODE_FIELDS, "episode_ends"):
        arr = group["meta"][name]
        if arr.shape[0] > n:
            report.dropped_metadata_entries = max(report.dropped_metadata_entries, arr.shape[0] - n)
            arr.resize((n,))
    return report


def open_for_repair(path: str | Path) -> tuple[DemoStore, RecoveryReport]:
    """Take the writer lock, drop any uncommitted tail, and return the reopened store."""
    path = Path(path)
    DemoStore.open(path)  # clear errors for a missing or foreign store
    lock = _acquire_lock(path)
    try:
        report = _recover(path, None)
    finally:
        lock.close()
    return DemoStore.open(path), report
