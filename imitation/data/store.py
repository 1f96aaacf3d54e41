"""The Zarr demonstration store: one directory per dataset, every frame of every episode.

Layout (Zarr v3, readable with plain ``zarr``; shaped like diffusion_policy's replay buffer)::

    <name>.zarr/
      attrs: format, format_version, fps, robot, features, software, created, [stats], [validation]
      data/<key>            frames of all episodes concatenated along axis 0
      meta/episode_ends     int64 cumulative frame counts: the commit record
      meta/<field>          one entry per episode (task, operator, start_time, duration_s, outcome,
                            dropped_frames, seed, info, length)

Commit protocol. Frames are written first (each file atomically and durably, see ``durable.py``);
then the per-episode metadata; then ``meta/episode_ends`` grows by one entry. That last chunk
write is the commit: a store killed at any instant holds every committed episode bit-exact, and
anything after the last committed end is an uncommitted tail that readers ignore and the writer
truncates (and reports) when it next opens the store.

The commit record is checked, not trusted. A crash can leave exactly three things behind: frames
past the last end, one metadata entry past the last episode, and one trailing ``episode_ends``
entry still at its fill value 0 (the resize happened, the value write did not). Anything else —
ends that do not increase, arrays shorter than the ends say, metadata entries missing or too
many, ends that disagree with the per-episode ``length`` column (format 2), timestamps that go
back inside an episode — is damage, not an interrupted write: the store opens only for
inspection (``DemoStore.open(path, check=False)``), and nothing appends to it or trains on it
until ``imitation data repair --force`` has rebuilt it (keeping the original as a backup).

Format 2 also gives every chunk a CRC-32C (zarr's ``crc32c`` codec; see ``codecs.py``), verified
on every read, and a chunk file that committed data needs but that is not there is an error for
every reader, never zeros. Format 1 stores (no checksums, no ``length`` column) are read as
before; ``imitation data repair --upgrade`` rewrites them as format 2.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from imitation import __version__
from imitation.data.codecs import CODEC_PACKAGES, FrameEncoder, add_checksum, strip_checksum, zarr_codecs
from imitation.data.durable import DurableLocalStore, FaultHook, fsync_dir, remove_temporaries, write_key
from imitation.data.leftovers import acquire_lock, interrupted_edit
from imitation.data.schema import TIMESTAMP, Feature, SchemaError, parse_features, validate_frame
from imitation.data.shards import build_shard, shard_key, split_shard
from imitation.data.stats import compute_store_stats
from imitation.errors import StoreDamage, StoreError, add_note

log = logging.getLogger(__name__)

FORMAT = "imitation.demos"
# 2: a CRC-32C on every chunk, and the per-episode ``length`` column that the ends are checked against.
FORMAT_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
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
    "length": (np.int64, 0),  # frames, written by the writer: a second record of the episode ends
}
# The fields of format 1, which had no ``length``.
FIELDS_V1 = tuple(name for name in EPISODE_FIELDS if name != "length")


def fields_of(version: int) -> tuple[str, ...]:
    """The per-episode metadata fields a store of this format version holds."""
    return FIELDS_V1 if version == 1 else tuple(EPISODE_FIELDS)


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
    """Length of the longest prefix of ``episode_ends`` that is increasing, positive and within
    ``limit_frames`` frames and ``limit_episodes`` metadata entries: the episodes that can be read.

    On a consistent record this is every committed episode (``check_record`` says whether it is)."""
    ends = np.asarray(episode_ends[:limit_episodes], dtype=np.int64)
    if ends.size == 0:
        return 0
    prev = np.concatenate([[0], ends[:-1]])
    ok = (ends > prev) & (ends <= limit_frames)
    bad = np.flatnonzero(~ok)
    return int(bad[0]) if bad.size else int(ends.size)


def check_record(
    ends: np.ndarray, data_lengths: Mapping[str, int], meta_lengths: Mapping[str, int]
) -> tuple[int, list[str]]:
    """(committed episodes, problems) of a commit record.

    ``ends`` is ``meta/episode_ends`` as stored; ``data_lengths`` and ``meta_lengths`` are the
    lengths (axis 0) of every data and metadata array. Only what a crash can leave is accepted
    without a problem: one trailing end still 0, one metadata entry past the last episode, frames
    past the last end.
    """
    ends = np.asarray(ends, dtype=np.int64)
    problems: list[str] = []
    n = int(ends.size)
    if n and ends[-1] == 0:
        n -= 1  # an interrupted commit: the end was resized in but never written
    committed = ends[:n]
    prev = np.concatenate([[0], committed[:-1]])
    bad = np.flatnonzero(committed <= prev)
    if bad.size:
        i = int(bad[0])
        problems.append(
            f"meta/episode_ends does not increase at episode {i} ({int(prev[i])} then {int(committed[i])})"
        )
    frames = int(committed.max(initial=0))
    for key, length in data_lengths.items():
        if length < frames:
            problems.append(f"data/{key} holds {length} frames, but meta/episode_ends commits {frames}")
    for name, length in meta_lengths.items():
        if length < n:
            problems.append(f"meta/{name} has {length} entries for {n} committed episodes")
        elif length > n + 1:
            problems.append(
                f"meta/{name} has {length} entries, but meta/episode_ends commits {n} episodes "
                "(an interrupted save leaves at most one more)"
            )
    return n, problems


def length_problems(ends: np.ndarray, lengths: np.ndarray) -> list[str]:
    """The committed ``ends`` against the per-episode ``length`` column of a format-2 store."""
    ends = np.asarray(ends, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.size < ends.size:
        return [f"meta/length has {lengths.size} entries for {ends.size} committed episodes"]
    spans = np.diff(ends, prepend=0)
    wrong = np.flatnonzero(spans != lengths[: ends.size])
    if not wrong.size:
        return []
    i = int(wrong[0])
    first = int(ends[i] - spans[i])
    return [
        f"episode {i}: meta/length records {int(lengths[i])} frames, but meta/episode_ends gives it "
        f"{int(spans[i])} (frames {first}..{int(ends[i]) - 1})"
    ]


def timestamp_problems(timestamps: np.ndarray, ends: np.ndarray) -> list[str]:
    """Episodes whose timestamps do not increase: a boundary in the ends that is not where the
    recording had one (the writer refuses a timestamp that does not increase within an episode)."""
    ends = np.asarray(ends, dtype=np.int64)
    if not ends.size:
        return []
    with np.errstate(invalid="ignore"):
        steps = np.diff(np.asarray(timestamps[: int(ends[-1])], dtype=np.float64))  # frame i -> i + 1
    within = np.ones(steps.shape, dtype=bool)
    within[ends[:-1] - 1] = False  # a new episode may start at any time
    bad = np.flatnonzero(~(steps > 0) & within) + 1
    if not bad.size:
        return []
    f = int(bad[0])
    e = int(np.searchsorted(ends, f, side="right"))
    return [
        f"episode {e}: its timestamp does not increase at frame {f} ({float(timestamps[f - 1])!r} then "
        f"{float(timestamps[f])!r}; {bad.size} such frame(s) in all): meta/episode_ends does not match the "
        "episodes as recorded"
    ]


def _parse_info(text: str, path: Path, episode: int) -> dict[str, Any]:
    try:
        info = json.loads(text or "{}")
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise StoreDamage(
            f"{path}: meta/info of episode {episode} is not a JSON object ({text[:60]!r}); the store is damaged"
        )
    return info


def _stats_digest(features: Any) -> str:
    return hashlib.sha256(json.dumps(features, sort_keys=True).encode()).hexdigest()[:32]


class DemoStore:
    """A demonstration store on disk. ``DemoStore.open(path)`` to read, ``create``/``writer`` to write.

    Reading never sees uncommitted frames: ``episode_ends``, ``n_frames`` and all readers are
    limited to the committed episodes as they were when the store was opened (``refresh()``
    re-reads them). ``problems`` lists what is wrong with the commit record; ``open`` refuses a
    store that has any unless ``check=False`` (for inspection and repair only).
    """

    def __init__(
        self, path: Path, group: zarr.Group, store: DurableLocalStore, *, check: bool = True
    ) -> None:
        self.path = path
        self._group = group
        self._zstore = store
        self._check = check
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
        self.version: int = int(version)
        self.fields = fields_of(self.version)
        try:
            self.features: dict[str, Feature] = {
                k: Feature.from_dict(v) for k, v in dict(attrs["features"]).items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise StoreDamage(
                f"{path}: the 'features' attribute in zarr.json is missing or malformed ({e!r}); the store's "
                "root metadata is damaged: restore zarr.json from a backup or re-import the data"
            ) from None
        fps = attrs.get("fps")
        if isinstance(fps, bool) or not isinstance(fps, int | float) or not math.isfinite(fps) or fps <= 0:
            raise StoreDamage(
                f"{path}: the 'fps' attribute in zarr.json is {fps!r}, not a positive rate; the store's root "
                "metadata is damaged: set it to the rate the episodes were recorded at"
            )
        self.fps: float = float(fps)
        self.robot: dict[str, Any] = dict(attrs.get("robot") or {})
        # Rows of each array that committed data covers, and rows per chunk: a chunk starting
        # below that count must exist (see ``_required``).
        self._committed_rows: dict[str, tuple[int, int]] = {}
        store.required = self._required
        self.refresh()

    # ------------------------------------------------------------------ opening and creating
    @classmethod
    def open(cls, path: str | Path, *, hook: FaultHook | None = None, check: bool = True) -> DemoStore:
        """Open an existing store for reading. With ``check`` (the default) a store whose commit
        record is inconsistent is refused with the first problem found; ``check=False`` opens it
        for inspection, with ``problems`` listing what is wrong. An ``s3://`` URL opens the local
        cached copy of the store pushed there (``imitation.data.remote``)."""
        from imitation.data import bucket

        url = bucket.url_of(path)
        promised = None
        if url:
            path, promised = bucket.cached(url)
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
        store = cls(path, group, zstore, check=check)
        if promised is not None and store.fingerprint() != promised:
            bucket.forget(path)
            raise StoreError(f"{url}: the cached copy differs from what its manifest promises; open it again")
        return store

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
        if isinstance(fps, bool) or not isinstance(fps, int | float) or not math.isfinite(fps) or fps <= 0:
            raise StoreError(f"fps must be > 0 and finite (the robot's control_hz), got {fps!r}")
        schema = parse_features(features)
        tmp = path.with_name(f".{path.name}.creating-{os.getpid()}")
        try:
            zstore = DurableLocalStore(tmp, hook=hook)
            group = zarr.open_group(store=zstore, mode="w-", zarr_format=3)
            data = group.create_group("data")
            for key, feat in schema.items():
                _create_feature_array(data, key, feat)
            meta = group.create_group("meta")
            _create_meta_array(meta, "episode_ends", "int64", 0)
            for name, (dtype, default) in EPISODE_FIELDS.items():
                _create_meta_array(meta, name, dtype, default)
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
            # The store appears under its name only once complete. rename(2) refuses to replace a
            # non-empty directory, so of two processes creating the same store one wins, whole.
            try:
                os.replace(tmp, path)
            except OSError as e:
                if not path.exists():
                    raise
                raise StoreError(
                    f"{path} was created by another process while this one was creating it; nothing was "
                    "written to it (open it to append once that process has finished)"
                ) from e
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(path.parent)
        return cls.open(path, hook=hook)

    def _required(self, key: str) -> bool:
        """Whether the file under store key ``key`` is a chunk holding committed rows."""
        pos = key.find("/c/")
        while pos >= 0:
            limit = self._committed_rows.get(key[:pos])
            if limit is not None:
                index = key[pos + 3 :].split("/", 1)[0]
                return index.isdigit() and int(index) * limit[1] < limit[0]
            pos = key.find("/c/", pos + 1)
        return False

    def refresh(self) -> None:
        """Re-read and check the commit record (to see episodes committed since opening)."""
        problems: list[str] = []
        data_lengths = self._lengths("data", self.features, problems)
        meta_lengths = self._lengths("meta", (*self.fields, "episode_ends"), problems)
        stored_ends = meta_lengths.pop("episode_ends", 0)
        # The last entry may be an interrupted commit whose chunk was never written.
        self._committed_rows = {"meta/episode_ends": (max(0, stored_ends - 1), EPISODE_CHUNK)}
        ends = np.zeros(0, dtype=np.int64)
        if stored_ends:
            try:
                ends = self._load("meta/episode_ends", slice(None)).astype(np.int64)
            except StoreDamage as e:
                problems.append(f"meta/episode_ends cannot be read: {e}")
        n, found = check_record(ends, data_lengths, meta_lengths)
        problems += found
        limits = min(data_lengths.values(), default=0), min(meta_lengths.values(), default=0)
        self._set_committed(ends[: committed_count(ends[:n], *limits)])
        if not problems:  # the readable prefix is every committed episode: check it against the rest
            problems += self._cross_check()
        self.problems = problems
        self._stored_ends = stored_ends
        self._stored_frames = max(data_lengths.values(), default=0)
        if problems and self._check:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise StoreDamage(
                f"{self.path}: the commit record is inconsistent: {problems[0]}{more}. Nothing was changed; "
                f"'imitation data validate {self.path}' reports it in full and 'imitation data repair --force "
                f"{self.path}' rebuilds the store from what can be proven, keeping the original as a backup"
            )

    def _lengths(self, group: str, names: Iterable[str], problems: list[str]) -> dict[str, int]:
        """Axis-0 length of each array ``group/name``; one that cannot be opened is a problem."""
        out = {}
        for name in names:
            try:
                out[name] = int(self._group[group][name].shape[0])
            except Exception as e:  # zarr raises several types for a missing or unreadable zarr.json
                problems.append(
                    f"{group}/{name} cannot be opened ({e!r}); its zarr.json is missing or damaged"
                )
        return out

    def _cross_check(self) -> list[str]:
        """The committed ends against the ``length`` column (format 2) and the timestamps."""
        problems: list[str] = []
        if "length" in self.fields and self.n_episodes:
            try:
                problems += length_problems(
                    self.episode_ends, self._load("meta/length", slice(0, self.n_episodes))
                )
            except StoreDamage as e:
                problems.append(f"meta/length cannot be read: {e}")
        if not problems and self.n_episodes:
            try:
                problems += timestamp_problems(self.read(TIMESTAMP), self.episode_ends)
            except StoreDamage as e:
                problems.append(f"data/timestamp cannot be read: {e}")
        return problems

    def _set_committed(self, ends: np.ndarray) -> None:
        """Take ``ends`` as the committed episodes: what readers see and which chunks must exist."""
        self.episode_ends = np.asarray(ends, dtype=np.int64)
        n, frames = self.n_episodes, self.n_frames
        for key, feat in self.features.items():
            self._committed_rows[f"data/{key}"] = (frames, feat.file_frames())
        for name in self.fields:
            self._committed_rows[f"meta/{name}"] = (n, EPISODE_CHUNK)
        ends_rows = self._committed_rows["meta/episode_ends"][0]
        self._committed_rows["meta/episode_ends"] = (max(n, ends_rows), EPISODE_CHUNK)

    def _load(self, name: str, selection: Any) -> np.ndarray:
        """``self._group[name][selection]`` as an array; any failure to read committed rows back
        (a missing chunk, a failed checksum, a decoder error) is ``StoreDamage`` naming them."""
        try:
            return np.asarray(self._group[name][selection])
        except StoreDamage:
            raise
        except Exception as e:
            what = (
                f"rows {selection.start or 0}..{'end' if selection.stop is None else selection.stop - 1}"
                if isinstance(selection, slice)
                else f"row {selection}"
            )
            reason = "a chunk fails its checksum" if "checksum" in str(e) else repr(e)
            raise StoreDamage(
                f"{self.path}: {name} {what} do not read back ({reason}); the store is damaged (run "
                f"'imitation data validate {self.path}' for a full report)"
            ) from e

    # ------------------------------------------------------------------ reading
    @property
    def checksums(self) -> bool:
        """Whether every chunk carries a CRC-32C (format 2 and later)."""
        return self.version >= 2

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
        if key not in self.features:
            raise KeyError(f"no feature {key!r} in {self.path}; features: {sorted(self.features)}")
        return self._load(f"data/{key}", slice(start, end))

    def read_episode(self, episode: int, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        start, end = self.episode_range(episode)
        return {k: self.read(k, start, end) for k in (keys or self.features)}

    def episode_meta(self, episode: int) -> dict[str, Any]:
        self.episode_range(episode)  # the range check
        episode %= self.n_episodes
        out: dict[str, Any] = {}
        for name in self.fields:
            v = self._load(f"meta/{name}", episode)
            out[name] = v.item() if hasattr(v, "item") else v
        out["info"] = _parse_info(out["info"], self.path, episode)
        out["length"] = int(self.episode_lengths[episode])
        return out

    def meta_table(self) -> dict[str, np.ndarray]:
        """All per-episode metadata as arrays of length n_episodes (``info`` stays JSON text)."""
        n = self.n_episodes
        table = {name: self._load(f"meta/{name}", slice(0, n)) for name in self.fields}
        table["length"] = self.episode_lengths
        return table

    def read_encoded(self, key: str, start: int, end: int) -> list[bytes]:
        """The codec's bytes of frames [start, end) of an image feature, without re-encoding (and
        without the checksum, which is verified here and added again by whatever writes them)."""
        feat = self.features[key]
        if not feat.sharded:
            raise ValueError(f"feature {key!r} is not an image feature; read_encoded reads images only")
        if not 0 <= start <= end <= self.n_frames:
            raise IndexError(f"frames [{start}, {end}) outside the committed range [0, {self.n_frames})")
        s = feat.file_frames()
        ndim = len(feat.shape) + 1
        out: list[bytes] = []
        for shard in range(start // s, (end - 1) // s + 1 if end > start else start // s):
            where = self.path / shard_key(key, shard, ndim)
            try:
                blob = where.read_bytes()
            except FileNotFoundError:
                raise StoreDamage(
                    f"{where} is missing, but it holds committed frames; the store is damaged"
                ) from None
            chunks = split_shard(blob, s, where=where)
            lo, hi = max(start, shard * s) - shard * s, min(end, (shard + 1) * s) - shard * s
            for i in range(lo, hi):
                c = chunks[i]
                if c is None:
                    raise StoreDamage(f"{where}: frame {shard * s + i} of {key!r} is missing from its shard")
                if self.checksums:
                    try:
                        c = strip_checksum(c)
                    except ValueError:
                        raise StoreDamage(
                            f"{where}: frame {shard * s + i} of {key!r} fails its checksum; the store is damaged"
                        ) from None
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
        h.update(self._load("meta/start_time", slice(0, self.n_episodes)).astype("<f8").tobytes())
        return h.hexdigest()[:32]

    def _cached_stats(self) -> dict[str, Any] | None:
        """The cached statistics when they belong to the current content and match their digest."""
        cached = self._group.attrs.get("stats")
        if not isinstance(cached, dict) or cached.get("fingerprint") != self.fingerprint():
            return None
        digest = cached.get("digest")
        if digest is None and self.version == 1:
            return cached.get("features")  # format 1 wrote no digest
        if digest != _stats_digest(cached.get("features")):
            log.warning(
                "%s: the cached statistics do not match their digest (edited by hand?); they are ignored",
                self.path,
            )
            return None
        return cached["features"]

    def stats(self, *, compute: bool = True, progress: bool = False) -> dict[str, dict[str, Any]]:
        """Normalisation statistics per feature, cached in the store's attrs for this fingerprint
        with a digest, so that a cache edited by hand is recomputed rather than trusted."""
        cached = self._cached_stats()
        if cached is not None:
            return cached
        if not compute:
            raise StoreError(
                f"{self.path} has no statistics for its current content; run 'imitation data repair'"
            )
        if self.n_episodes == 0:
            raise StoreError(f"{self.path} has no committed episodes; statistics need at least one")
        features = self.compute_stats(progress=progress)
        digest = _stats_digest(features)
        self._set_attr("stats", {"fingerprint": self.fingerprint(), "features": features, "digest": digest})
        return features

    def compute_stats(self, *, progress: bool = False) -> dict[str, dict[str, Any]]:
        """Statistics computed from the frames now, never from the cache."""

        # Through JSON, as the cache holds them, so that a fresh result compares equal to a cached one.
        return json.loads(json.dumps(compute_store_stats(self, progress=progress)))

    def has_fresh_stats(self) -> bool:
        return self._cached_stats() is not None

    def _set_attr(self, name: str, value: Any) -> bool:
        """Write one root attribute; a read-only store or file system keeps going without it."""
        try:
            self._group.attrs[name] = value
        except Exception as e:
            log.warning("could not write %r into %s: %s", name, self.path, e)
            return False
        self.attrs[name] = value
        return True

    def record_validation(self, errors: list[str]) -> None:
        """Remember the result of a full validation of the current content (see ``last_validation``)."""
        self._set_attr(
            "validation",
            {
                "fingerprint": self.fingerprint(),
                "ok": not errors,
                "errors": errors[:5],
                "at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "imitation": __version__,
            },
        )

    def last_validation(self) -> dict[str, Any] | None:
        """The last recorded validation of the current content (None if it was never validated
        since it last changed)."""
        v = self.attrs.get("validation")
        if isinstance(v, dict) and v.get("fingerprint") == self.fingerprint():
            return v
        return None

    def require_usable(self, use: str = "training") -> None:
        """Refuse (``StoreDamage``) a store whose last validation of its current content failed."""
        v = self.last_validation()
        if v is not None and not v.get("ok", True):
            errors = v.get("errors") or ["(no detail recorded)"]
            raise StoreDamage(
                f"{self.path} failed its last validation ({v.get('at', '?')}: {errors[0]}); it is not used for "
                f"{use}. Repair it ('imitation data repair {self.path}', --force where that says so), then run "
                f"'imitation data validate {self.path}' again"
            )

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


def _create_meta_array(meta: zarr.Group, name: str, dtype: Any, fill_value: Any) -> zarr.Array:
    """One per-episode metadata array, zstd-compressed with a CRC-32C on each chunk."""
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return meta.create_array(
        name,
        shape=(0,),
        dtype=dtype,
        chunks=(EPISODE_CHUNK,),
        fill_value=fill_value,
        compressors=(ZstdCodec(level=3), Crc32cCodec()),
    )


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
    """Builds the shard files of one image feature frame by frame, encoding each frame on arrival
    and appending its CRC-32C (the inner ``crc32c`` codec of a format-2 image array)."""

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
        shard = start // self.per_shard
        keep = start - shard * self.per_shard
        if shard == self.shard and all(c is not None for c in self.chunks[:keep]):
            # The frames committed last are still here (a commit leaves them): no need to read
            # the shard back from disk, where it is no longer cached.
            self.chunks[keep:] = [None] * (self.per_shard - keep)
            self.dirty = False
            return
        self.shard = shard
        self.chunks = [None] * self.per_shard
        path = self.store.root / shard_key(self.key, self.shard, self.ndim)
        if keep:
            if not path.exists():
                raise StoreDamage(
                    f"{path} is missing, but it holds committed frames {start - keep}..{start - 1}; the store is "
                    "damaged and nothing is appended to it"
                )
            old = split_shard(path.read_bytes(), self.per_shard, where=path)
            self.chunks[:keep] = old[:keep]
        self.dirty = False

    def add(self, index: int, frame: np.ndarray | bytes) -> None:
        shard, local = divmod(index, self.per_shard)
        if shard != self.shard:
            self.flush()
            self.shard, self.chunks = shard, [None] * self.per_shard
        self.chunks[local] = add_checksum(frame if isinstance(frame, bytes) else self.encoder.encode(frame))
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


class _FramePool:
    """Reused buffers for the copies of large frame values (camera images) that ``add_frame`` hands
    to the background writer.

    A fresh megabyte-sized array per image per tick costs the control loop a page fault per 4 KiB
    page, and the writer freeing them unmaps pages under it: while the writer catches up after a
    commit, the four 640x480 copies of a 50 Hz tick took ~9 ms of CPU instead of ~1 ms (measured on
    a 2-core machine). A buffer the writer has finished with is handed back and reused instead, so
    pages are touched once. At most ``keep`` spare buffers per key are held; more are let go.
    """

    MIN_BYTES = 64 * 1024  # smaller values are plain copies

    def __init__(self, features: Mapping[str, Feature], keep: int) -> None:
        self.keep = keep
        self.free: dict[str, list[np.ndarray]] = {
            k: [] for k, f in features.items() if f.frame_nbytes >= self.MIN_BYTES
        }

    def copy(self, key: str, value: np.ndarray) -> np.ndarray:
        spare = self.free.get(key)
        if spare is None:
            return np.array(value, copy=True)
        try:
            buf = spare.pop()  # list.pop and list.append are atomic: the writer thread appends
        except IndexError:
            buf = np.empty_like(value)
        np.copyto(buf, value)
        return buf

    def give_back(self, values: Mapping[str, Any]) -> None:
        for key, spare in self.free.items():
            buf = values.get(key)
            if isinstance(buf, np.ndarray) and len(spare) < self.keep:
                spare.append(buf)


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

    created = False  # whether this writer created the store

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
            self.created = True  # this writer made the store (a caller may remove it if nothing is saved)
        self._lock_file = acquire_lock(self.path)
        try:
            self.recovery = _recover(self.path, hook)
            opened = DemoStore.open(self.path, hook=hook)
            opened.require_usable("appending")
            version = opened.version
            if version != FORMAT_VERSION:
                raise StoreError(
                    f"{self.path} is a format {version} store (no checksums); nothing is appended to it "
                    f"until it is upgraded: run 'imitation data repair --upgrade {self.path}'"
                )
            if self.recovery:
                log.warning("%s: %s", self.path, self.recovery)
            self.store = DemoStore.open(self.path, hook=hook)
            if features is not None:
                _check_same_schema(self.store, parse_features(features), fps)
            if robot is not None and not self.created:
                _check_same_cameras(self.store, robot)
        except BaseException:
            self._lock_file.close()
            if self.created:  # empty: nothing but what this call made
                shutil.rmtree(self.path, ignore_errors=True)
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
        self._pool = _FramePool(self.features, keep=max(2, int(self.fps)))  # a second of spares
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
        values = {k: (enc[k] if k in enc else self._pool.copy(k, v)) for k, v in checked.items()}
        self._n_frames += 1
        self._put(("frame", values))

    def add_step(self, obs: Mapping[str, Any], action: Any) -> None:
        """One control tick as a frame: the observation's values the store holds (and its
        timestamp; a robot's other readings are dropped) with the action actually sent."""
        frame = {k: v for k, v in obs.items() if k in self.features}
        self.add_frame(frame | {"action": np.asarray(action, dtype=np.float32)})

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
                if kind == "frame":
                    self._pool.give_back(payload)  # encoded or copied: the buffers are free again
                elif kind == "save":
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
        ep = {**ep, "length": end - self._committed_end}
        for name in EPISODE_FIELDS:
            arr = _materialising(meta[name])
            arr.resize((n + 1,))
            arr[n] = ep[name]
        ends = meta["episode_ends"]
        ends.resize((n + 1,))
        ends[n] = end  # the commit point
        self.store._set_committed(np.append(self.store.episode_ends, end))
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


def source_changes(
    have: Mapping[str, str], want: Mapping[str, str], names: Sequence[str] | None = None
) -> list[str]:
    """The cameras (of ``names``, default all) that both ``camera_sources`` name with different
    sources, each as ``"NAME: HAVE -> WANT"``."""
    names = sorted(set(have) & set(want)) if names is None else [n for n in names if n in have and n in want]
    return [f"{n}: {have[n]} -> {want[n]}" for n in names if have[n] != want[n]]


def _check_same_cameras(store: DemoStore, robot: Mapping[str, Any]) -> None:
    """Refuse to append frames whose cameras render from other sources (a mapping's ``images.<cam>.from``,
    recorded as ``camera_sources``) than the store's: same shapes, other pictures, one mixed dataset."""
    changed = source_changes(store.robot.get("camera_sources") or {}, robot.get("camera_sources") or {})
    if changed:
        raise StoreError(
            f"{store.path} was recorded with other camera sources than this recording's ({'; '.join(changed)}); "
            "record into a new store, or render the cameras as the store's mapping did"
        )


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
    aside = [p.name for p in interrupted_edit(path) if ".old-" in p.name or ".backup-" in p.name]
    if aside:
        raise StoreError(
            f"an edit of {path} was interrupted and the store is at {', '.join(aside)}; "
            f"run 'imitation data repair {path}' to finish or undo the edit"
        )


def _recover(path: Path, hook: FaultHook | None) -> RecoveryReport:
    """Drop the uncommitted tail left by an interrupted writer (the caller holds the lock).

    Only what is proven uncommitted goes: the store is opened with its record checked, so a
    damaged record raises ``StoreDamage`` here and nothing is written.
    """
    store = DemoStore.open(path, hook=hook)
    report = RecoveryReport(removed_temporaries=len(remove_temporaries(path)))
    group = store._group
    end, n = store.n_frames, store.n_episodes
    for key in store.features:
        arr = group["data"][key]
        if arr.shape[0] > end:
            report.dropped_frames = max(report.dropped_frames, arr.shape[0] - end)
            arr.resize((end, *arr.shape[1:]))
    for name in (*store.fields, "episode_ends"):
        arr = group["meta"][name]
        if arr.shape[0] > n:
            report.dropped_metadata_entries = max(report.dropped_metadata_entries, arr.shape[0] - n)
            arr.resize((n,))
    return report


def open_for_repair(path: str | Path) -> tuple[DemoStore, RecoveryReport]:
    """Take the writer lock, drop any uncommitted tail, and return the reopened store.

    Refuses (``StoreDamage``) a store whose commit record is inconsistent: what such a store has
    past its record cannot be proven uncommitted (see ``repair.py`` for the forced rebuild).
    """
    path = Path(path)
    DemoStore.open(path)  # clear errors for a missing, foreign or damaged store
    lock = acquire_lock(path)
    try:
        report = _recover(path, None)
    finally:
        lock.close()
    return DemoStore.open(path), report


def discard_new_store(path: Path, error: BaseException) -> None:
    """After a recording that failed (or was interrupted): remove the store at ``path``, which this
    command created, if no episode was committed to it, and say so (in the error's own line where it
    is a user's error, as a log line otherwise). A store that could not be read is kept."""
    try:
        if DemoStore.open(path).n_episodes:
            return
    except Exception:  # noqa: BLE001 - unreadable: not ours to judge empty
        return
    shutil.rmtree(path, ignore_errors=True)
    note = f"removed {path}, which this command had created and saved no episode in"
    if not add_note(error, note):
        log.warning("%s", note)
