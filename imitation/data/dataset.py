"""Training windows: a demo store turned into samples for a policy.

A sample is taken at every frame t of every selected episode. It holds the observations and
actions at fixed offsets from t, as declared by a ``WindowSpec`` (ACT: observation ``[0]``,
actions ``0 … chunk_size-1``; Diffusion Policy: observations ``1-n_obs_steps … 0``, actions
``1-n_obs_steps … horizon-n_obs_steps``). An offset that falls before the start or after the end
of t's episode reads the episode's first or last frame instead and is marked in a pad mask
(``obs_is_pad``, ``action_is_pad``), so windows never mix two episodes.

Reading is batched. ``WindowDataset.__getitems__`` (which ``torch.utils.data.DataLoader`` calls
with a whole batch of indices) gathers every frame the batch needs, reads each image frame once,
and builds all windows with NumPy fancy indexing. Low-dimensional features live in RAM from the
start; camera frames come from the RAM cache (``cache="ram"``) or straight from the store's shard
files: the shard index is read once per shard and each frame is one ``pread`` and one decode,
which is about 30x faster than going through zarr's sharding codec frame by frame.

Samples hold ``torch`` tensors: images stay uint8 (the model converts them to float on the GPU),
everything else is float32. ``DataLoader``'s default collate stacks them into
``(B, To, H, W, C)`` uint8, ``(B, To, D)`` and ``(B, Ta, A)`` float32, ``(B, To)`` and ``(B, Ta)``
bool masks.

Also here: ``split_episodes`` and ``filter_episodes`` choose episodes, and ``ResumableSampler``
shuffles deterministically and resumes mid-epoch from a checkpoint.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from tqdm.auto import tqdm

from imitation.data.edit import select
from imitation.data.schema import Feature
from imitation.data.shards import ShardReader, frame_decoder
from imitation.data.store import DemoStore
from imitation.errors import ConfigError

log = logging.getLogger(__name__)

CACHE_MODES = ("none", "ram", "auto")
DISK_READERS = ("auto", "zarr")
# Keys every sample has besides its observation keys; no observation may use these names.
SAMPLE_KEYS = ("action", "obs_is_pad", "action_is_pad", "episode_index", "frame_index")


# ---------------------------------------------------------------------------------------------
# Which frames a sample holds


def _int_tuple(name: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigError(f"WindowSpec.{name}={value!r}: expected a list of integers, e.g. [-1, 0]")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise ConfigError(f"WindowSpec.{name}={value!r}: {v!r} is not an integer; offsets count frames")
        out.append(int(v))
    if not out:
        raise ConfigError(f"WindowSpec.{name} is empty: a window needs at least one offset, e.g. [0]")
    if any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise ConfigError(
            f"WindowSpec.{name}={tuple(out)}: offsets must be strictly increasing (sorted, no repeats); "
            f"write them in time order, e.g. {tuple(sorted(set(out)))}"
        )
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class WindowSpec:
    """The frames one training sample holds, as offsets from its current frame t.

    Offset ``o`` reads frame ``t + o * frame_skip``: a policy that runs every ``frame_skip``
    control ticks sees observations and predicts actions on its own, slower clock.
    """

    obs_offsets: tuple[int, ...]
    """Observation offsets, strictly increasing and ≤ 0 (a policy cannot observe the future)."""
    action_offsets: tuple[int, ...]
    """Action offsets, strictly increasing."""
    frame_skip: int = 1
    """Control ticks per policy step (≥ 1)."""
    obs_keys: tuple[str, ...]
    """Store features to observe, e.g. ("state", "images/top")."""
    action_key: str = "action"
    """Store feature that holds the actions; samples always call it ``action``."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "obs_offsets", _int_tuple("obs_offsets", self.obs_offsets))
        object.__setattr__(self, "action_offsets", _int_tuple("action_offsets", self.action_offsets))
        if self.obs_offsets[-1] > 0:
            raise ConfigError(
                f"WindowSpec.obs_offsets={self.obs_offsets}: observation offsets must be ≤ 0, because a "
                "policy cannot observe frames after the current one; shift them so the last is 0"
            )
        if isinstance(self.frame_skip, bool) or not isinstance(self.frame_skip, int | np.integer):
            raise ConfigError(f"WindowSpec.frame_skip={self.frame_skip!r} must be an integer ≥ 1, e.g. 1")
        object.__setattr__(self, "frame_skip", int(self.frame_skip))
        if self.frame_skip < 1:
            raise ConfigError(
                f"WindowSpec.frame_skip={self.frame_skip} must be ≥ 1 (control ticks per policy step); "
                "use 1 to use every frame"
            )
        keys = self.obs_keys
        if isinstance(keys, str):
            keys = (keys,)
        if not isinstance(keys, Iterable) or not all(isinstance(k, str) and k for k in keys):
            raise ConfigError(
                f"WindowSpec.obs_keys={self.obs_keys!r}: expected feature names, e.g. ['state']"
            )
        keys = tuple(keys)
        if not keys:
            raise ConfigError("WindowSpec.obs_keys is empty: name at least one feature, e.g. ['state']")
        if len(set(keys)) != len(keys):
            raise ConfigError(f"WindowSpec.obs_keys={keys} names a feature twice; list each once")
        clash = [k for k in keys if k in SAMPLE_KEYS]
        if clash:
            raise ConfigError(
                f"WindowSpec.obs_keys={keys}: {clash} clash with the sample keys {SAMPLE_KEYS}; "
                "the action window is always included, so leave it out of obs_keys"
            )
        object.__setattr__(self, "obs_keys", keys)
        if not isinstance(self.action_key, str) or not self.action_key:
            raise ConfigError(f"WindowSpec.action_key={self.action_key!r} must name a feature, e.g. 'action'")

    @classmethod
    def of(cls, policy_config: Any) -> WindowSpec:
        """The window a policy's config declares (its ``obs_offsets``, ``action_offsets``,
        ``frame_skip`` and ``obs_keys``): what the trainer reads. ``act`` and ``diffusion`` below
        give the same windows from bare numbers (tests check that they agree with the configs)."""
        return cls(
            obs_offsets=policy_config.obs_offsets,
            action_offsets=policy_config.action_offsets,
            frame_skip=policy_config.frame_skip,
            obs_keys=tuple(policy_config.obs_keys),
        )

    @classmethod
    def act(cls, chunk_size: int, obs_keys: Sequence[str], frame_skip: int = 1) -> WindowSpec:
        """ACT: the current observation and the next ``chunk_size`` actions (starting at t)."""
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
            raise ConfigError(f"chunk_size={chunk_size!r} must be an integer ≥ 1 (ACT uses e.g. 100)")
        return cls(
            obs_offsets=(0,),
            action_offsets=tuple(range(int(chunk_size))),
            frame_skip=frame_skip,
            obs_keys=tuple(obs_keys),
        )

    @classmethod
    def diffusion(
        cls, n_obs_steps: int, horizon: int, obs_keys: Sequence[str], frame_skip: int = 1
    ) -> WindowSpec:
        """Diffusion Policy: ``n_obs_steps`` observations ending at t; ``horizon`` actions from
        the first of them (the policy executes from index ``n_obs_steps - 1``)."""
        for name, v in (("n_obs_steps", n_obs_steps), ("horizon", horizon)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ConfigError(f"{name}={v!r} must be an integer ≥ 1 (Diffusion Policy uses 2 and 16)")
        if horizon < n_obs_steps:
            raise ConfigError(
                f"horizon={horizon} is shorter than n_obs_steps={n_obs_steps}: the action window starts "
                "with the observation window and must reach the current frame; use horizon ≥ n_obs_steps"
            )
        return cls(
            obs_offsets=tuple(range(1 - n_obs_steps, 1)),
            action_offsets=tuple(range(1 - n_obs_steps, horizon - n_obs_steps + 1)),
            frame_skip=frame_skip,
            obs_keys=tuple(obs_keys),
        )

    @property
    def n_obs(self) -> int:
        """To, the observation frames per sample."""
        return len(self.obs_offsets)

    @property
    def n_actions(self) -> int:
        """Ta, the actions per sample."""
        return len(self.action_offsets)


# ---------------------------------------------------------------------------------------------
# Reading image frames straight from shard files

# ---------------------------------------------------------------------------------------------
# The dataset


def _physical_memory_bytes() -> int:
    """Physical memory, or the container's memory limit when that is lower."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 * 2**30
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def _open_store(store: DemoStore | str | Path) -> DemoStore:
    return store if isinstance(store, DemoStore) else DemoStore.open(store)


class WindowDataset(Dataset):
    """One sample per frame of the selected episodes: observation and action windows with pad masks.

    Sample ``i`` is frame ``i`` of the selected episodes laid end to end (in the order given).
    Each sample is a dict of tensors::

        <obs key>       (To, *shape)  uint8 for images, float32 otherwise
        action          (Ta, A)       float32
        obs_is_pad      (To,)         bool, True where the frame repeats the episode's edge frame
        action_is_pad   (Ta,)         bool
        episode_index   int           the episode's index in the store
        frame_index     int           t, counted from the episode's first frame

    ``cache="ram"`` decodes the selected episodes' camera frames into memory at construction
    (shard by shard); ``"auto"`` does so when they fit in ``ram_budget_gb`` (default a quarter of
    physical memory). DataLoader workers started by fork share that memory copy-on-write; the
    spawn start method pickles the dataset, cache included, into every worker.

    With the RAM cache a batch takes well under a millisecond, less than handing it back from a
    worker process costs, so ``num_workers=0`` is usually fastest; from disk, workers pay off.

    ``disk_reader="auto"`` reads uncached frames straight from the shard files when the arrays
    have the layout ``store.py`` writes (always, for stores it wrote), else through zarr;
    ``"zarr"`` always goes through zarr. ``decode_threads`` decode in parallel (default: up to 4
    in the main process, 1 in each DataLoader worker, since the workers are the parallelism).
    """

    def __init__(
        self,
        store: DemoStore | str | Path,
        spec: WindowSpec,
        episodes: Sequence[int] | None = None,
        *,
        cache: str = "none",
        ram_budget_gb: float | None = None,
        disk_reader: str = "auto",
        decode_threads: int | None = None,
    ) -> None:
        if not isinstance(spec, WindowSpec):
            raise TypeError(f"spec must be a WindowSpec, got {type(spec).__name__}; use WindowSpec.act(...)")
        if cache not in CACHE_MODES:
            raise ConfigError(
                f"cache={cache!r} is not one of {CACHE_MODES}; 'auto' caches when it fits in RAM"
            )
        if disk_reader not in DISK_READERS:
            raise ConfigError(f"disk_reader={disk_reader!r} is not one of {DISK_READERS}")
        if decode_threads is not None and decode_threads < 1:
            raise ConfigError(f"decode_threads={decode_threads} must be ≥ 1, or None for automatic")
        src = _open_store(store)
        # Checksums are verified on every read below; a store whose last full validation failed is
        # refused outright rather than found out part-way through training.
        src.require_usable("training")
        self.spec = spec
        self.path = Path(src.path)
        self.fps = src.fps
        self.fingerprint = src.fingerprint()
        self._check_keys(src, spec)
        self.features: dict[str, Feature] = {k: src.features[k] for k in (*spec.obs_keys, spec.action_key)}
        self.image_keys = tuple(k for k in spec.obs_keys if src.features[k].sharded)

        # Episodes laid end to end: sample i is row i of every per-frame array below.
        if episodes is None:
            episodes = range(src.n_episodes)
        self.episodes = self._check_episodes(src, episodes)
        self._episode_ids = np.asarray(self.episodes, dtype=np.int64)  # (E,)
        ranges = np.array([src.episode_range(e) for e in self.episodes], dtype=np.int64).reshape(-1, 2)
        lengths = ranges[:, 1] - ranges[:, 0]
        self._row0 = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)  # (E,)
        self._row_last = self._row0 + lengths - 1  # (E,)
        self._row_episode = np.repeat(np.arange(len(self.episodes), dtype=np.int32), lengths)  # (N,)
        self._n = int(lengths.sum())
        self._frames = np.concatenate([np.arange(s, e) for s, e in ranges])  # (N,) global frame of each row
        self._obs_steps = np.asarray(spec.obs_offsets, dtype=np.int64) * spec.frame_skip  # (To,)
        self._action_steps = np.asarray(spec.action_offsets, dtype=np.int64) * spec.frame_skip  # (Ta,)

        # Low-dimensional features: small, so all in RAM, float32, rows of the selected episodes only.
        self._lowdim: dict[str, np.ndarray] = {}
        for key in (*spec.obs_keys, spec.action_key):
            if key in self.image_keys or key in self._lowdim:
                continue
            full = np.asarray(src.read(key, 0, src.n_frames))
            every = self._frames.size == src.n_frames
            rows = full if every else full[self._frames]
            self._lowdim[key] = np.ascontiguousarray(rows, dtype=np.float32)

        # Image features: a direct shard reader where the layout is known, zarr otherwise.
        self._readers: dict[str, ShardReader] = {}
        for key in self.image_keys:
            decode = frame_decoder(src.array(key), src.features[key]) if disk_reader == "auto" else None
            if decode is not None:
                self._readers[key] = ShardReader(self.path, key, self.features[key], decode)
            elif disk_reader == "auto":
                log.info("%s: %s has an unfamiliar zarr layout; reading it through zarr", self.path, key)
        self.decode_threads = decode_threads
        self._threads = 1
        self._pid: int | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._zarr: dict[str, Any] = {}

        self.cache_nbytes = sum(self._n * self.features[k].frame_nbytes for k in self.image_keys)
        budget = _physical_memory_bytes() // 4 if ram_budget_gb is None else int(float(ram_budget_gb) * 2**30)
        if cache == "auto":
            cache = "ram" if self.cache_nbytes <= budget else "none"
            log.info(
                "%s: image cache %s (%.2f GB decoded, budget %.2f GB)",
                self.path,
                cache,
                self.cache_nbytes / 2**30,
                budget / 2**30,
            )
        elif cache == "ram" and self.cache_nbytes > budget:
            log.warning(
                "%s: caching %.2f GB of decoded images in RAM, over the budget of %.2f GB",
                self.path,
                self.cache_nbytes / 2**30,
                budget / 2**30,
            )
        self.cache = cache
        self._cache: dict[str, np.ndarray] = {}
        if cache == "ram":
            for key in self.image_keys:
                self._cache[key] = self._load_all(key)

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _check_keys(store: DemoStore, spec: WindowSpec) -> None:
        have = sorted(store.features)
        unknown = [k for k in spec.obs_keys if k not in store.features]
        if unknown:
            raise ConfigError(
                f"observation key(s) {unknown} are not features of {store.path}; its features are {have}"
            )
        act = store.features.get(spec.action_key)
        if act is None:
            raise ConfigError(
                f"action_key {spec.action_key!r} is not a feature of {store.path}; its features are {have}"
            )
        if act.sharded:
            raise ConfigError(f"action_key {spec.action_key!r} is an image feature; name the action feature")

    @staticmethod
    def _check_episodes(store: DemoStore, episodes: Iterable[int]) -> tuple[int, ...]:
        n = store.n_episodes
        out = []
        for e in episodes:
            if isinstance(e, bool) or not isinstance(e, int | np.integer) or not 0 <= e < n:
                raise ConfigError(
                    f"episode {e!r} is not a committed episode of {store.path}; valid indices are 0..{n - 1}"
                )
            out.append(int(e))
        if not out:
            raise ConfigError(f"no episodes selected from {store.path} ({n} committed); select at least one")
        if len(set(out)) != len(out):
            dup = sorted(e for e, count in Counter(out).items() if count > 1)
            raise ConfigError(f"episodes {dup} are selected more than once; select each episode once")
        return tuple(out)

    # ------------------------------------------------------------------ per-process resources
    def _ensure_process(self) -> None:
        """Open per-process resources; zarr's I/O thread and thread pools do not survive fork."""
        pid = os.getpid()
        if self._pid == pid:
            return
        self._pid = pid
        self._zarr = {}
        threads = self.decode_threads
        if threads is None:
            in_worker = torch.utils.data.get_worker_info() is not None
            threads = 1 if in_worker else min(4, os.cpu_count() or 1)
        self._threads = threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="window-decode") if threads > 1 else None

    def _zarr_array(self, key: str) -> Any:
        arr = self._zarr.get(key)
        if arr is None:
            # Through the store, so that a missing chunk is an error and not a frame of zeros.
            arr = self._zarr[key] = DemoStore.open(self.path).array(key)
        return arr

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_pid=None, _pool=None, _zarr={})
        return state

    # ------------------------------------------------------------------ reading frames
    def _read_frames(self, key: str, frames: np.ndarray, out: np.ndarray, rows: np.ndarray) -> None:
        """Decode sorted, unique global ``frames`` of an image feature into ``out[rows]``."""
        self._ensure_process()
        reader = self._readers.get(key)
        if reader is None:
            out[rows] = self._zarr_array(key).get_orthogonal_selection((frames,))
            return
        shards = frames // reader.per_shard
        cuts = np.flatnonzero(np.diff(shards)) + 1
        groups = [(int(shards[g[0]]), g) for g in np.split(np.arange(frames.size), cuts) if g.size]

        def read(part: list[tuple[int, np.ndarray]]) -> None:
            for shard, g in part:
                reader.read_shard(shard, frames[g], out, rows[g])

        if self._pool is None or len(groups) == 1:
            read(groups)
            return
        # One job per thread, not per shard: a batch touches many shards with a few frames each.
        n = self._threads
        for job in [self._pool.submit(read, groups[i::n]) for i in range(n)]:
            job.result()

    def read_frames(self, key: str, frames: Sequence[int] | np.ndarray) -> np.ndarray:
        """Global frames of one image feature from disk (never the cache), in the order given."""
        frames = np.asarray(frames, dtype=np.int64)
        uniq, inverse = np.unique(frames, return_inverse=True)
        feat = self.features[key]
        out = np.empty((uniq.size, *feat.shape), dtype=feat.np_dtype)
        if uniq.size:
            self._read_frames(key, uniq, out, np.arange(uniq.size))
        return out[inverse.reshape(-1)]

    def _load_all(self, key: str) -> np.ndarray:
        """Decode every row of an image feature into RAM, one shard at a time."""

        feat = self.features[key]
        out = np.empty((self._n, *feat.shape), dtype=feat.np_dtype)
        per = feat.file_frames()
        shards = self._frames // per
        cuts = np.flatnonzero(np.diff(shards)) + 1
        groups = np.split(np.arange(self._n), cuts)
        self._ensure_process()
        reader = self._readers.get(key)
        with tqdm(total=self._n, desc=f"caching {key}", unit="frame", disable=not sys.stderr.isatty()) as bar:
            if reader is not None and self._pool is not None:
                jobs = {
                    self._pool.submit(
                        reader.read_shard, int(shards[rows[0]]), self._frames[rows], out, rows
                    ): rows.size
                    for rows in groups
                }
                for job in as_completed(jobs):
                    job.result()
                    bar.update(jobs[job])
                return out
            for rows in groups:
                frames = self._frames[rows]
                lo, hi = int(frames[0]), int(frames[-1]) + 1
                if reader is None and hi - lo == frames.size:
                    out[rows] = self._zarr_array(key)[lo:hi]  # a contiguous slice: zarr reads the shard once
                else:
                    self._read_frames(key, frames, out, rows)
                bar.update(rows.size)
        return out

    # ------------------------------------------------------------------ samples
    def __len__(self) -> int:
        return self._n

    def _window_rows(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Rows (positions in the selected episodes laid end to end) and pad masks of samples.

        Returns ``obs`` (B, To), ``action`` (B, Ta), ``obs_is_pad``, ``action_is_pad`` and
        ``episode`` (B,) (position in ``self.episodes``).
        """
        ep = self._row_episode[indices]  # (B,)
        lo, hi = self._row0[ep][:, None], self._row_last[ep][:, None]  # (B, 1)
        obs_raw = indices[:, None] + self._obs_steps  # (B, To)
        act_raw = indices[:, None] + self._action_steps  # (B, Ta)
        obs = np.clip(obs_raw, lo, hi)
        act = np.clip(act_raw, lo, hi)
        return {
            "obs": obs,
            "action": act,
            "obs_is_pad": obs != obs_raw,
            "action_is_pad": act != act_raw,
            "episode": ep,
        }

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
        """Samples ``indices`` already stacked: what ``default_collate`` makes of ``__getitems__``.

        Every image frame the batch needs is read once. The fastest way to load: with
        ``DataLoader(ds, sampler=BatchSampler(sampler, B, drop_last), batch_size=None)`` the
        loader passes each list of indices to ``ds[indices]``, which calls this, and skips collation.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)  # (B,)
        if idx.size and (idx.min() < 0 or idx.max() >= self._n):
            bad = idx[(idx < 0) | (idx >= self._n)][0]
            raise IndexError(f"sample index {bad} out of range for a dataset of {self._n} samples")
        w = self._window_rows(idx)
        obs_rows = w["obs"]  # (B, To)
        batch: dict[str, torch.Tensor] = {}
        for key in self.spec.obs_keys:
            if key in self._lowdim:
                batch[key] = torch.from_numpy(self._lowdim[key][obs_rows])  # (B, To, D)
            elif key in self._cache:
                batch[key] = torch.from_numpy(self._cache[key][obs_rows])  # (B, To, H, W, C)
            else:
                uniq, inverse = np.unique(self._frames[obs_rows], return_inverse=True)  # sorted global frames
                feat = self.features[key]
                frames = np.empty((uniq.size, *feat.shape), dtype=feat.np_dtype)  # (U, H, W, C)
                self._read_frames(key, uniq, frames, np.arange(uniq.size))
                batch[key] = torch.from_numpy(frames[inverse.reshape(obs_rows.shape)])  # (B, To, H, W, C)
        batch["action"] = torch.from_numpy(self._lowdim[self.spec.action_key][w["action"]])  # (B, Ta, A)
        batch["obs_is_pad"] = torch.from_numpy(w["obs_is_pad"])  # (B, To)
        batch["action_is_pad"] = torch.from_numpy(w["action_is_pad"])  # (B, Ta)
        batch["episode_index"] = torch.from_numpy(self._episode_ids[w["episode"]])  # (B,)
        batch["frame_index"] = torch.from_numpy(idx - self._row0[w["episode"]])  # (B,)
        return batch

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """A list of samples (the DataLoader calls this with each batch of indices).

        Read together through ``get_batch``, then split into per-sample views of the batch.
        """
        batch = self.get_batch(indices)
        keys = list(batch)
        columns: list[Sequence[Any]] = [batch[k].unbind(0) for k in keys[:-2]]
        columns += [batch["episode_index"].tolist(), batch["frame_index"].tolist()]
        return [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]

    def __getitem__(self, index: int | Sequence[int] | np.ndarray) -> dict[str, Any]:
        """One sample for an integer index; a stacked batch (``get_batch``) for a list of indices."""
        if isinstance(index, Sequence | np.ndarray | torch.Tensor) and not isinstance(index, str):
            return self.get_batch(np.asarray(index))
        if isinstance(index, bool) or not isinstance(index, int | np.integer):
            raise TypeError(f"sample index must be an integer or a list of them, got {type(index).__name__}")
        i = int(index) + self._n if index < 0 else int(index)
        if not 0 <= i < self._n:
            raise IndexError(f"sample index {index} out of range for a dataset of {self._n} samples")
        return self.__getitems__([i])[0]

    def __repr__(self) -> str:
        return (
            f"WindowDataset({str(self.path)!r}, {len(self.episodes)} episodes, {self._n} samples, "
            f"obs {self.spec.obs_keys} at {self.spec.obs_offsets}, {self.spec.n_actions} actions, "
            f"frame_skip {self.spec.frame_skip}, cache {self.cache!r})"
        )


# ---------------------------------------------------------------------------------------------
# Choosing episodes


def split_episodes(n_episodes: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split episode indices ``0..n_episodes-1`` into sorted, disjoint (train, val) lists.

    ``round(n_episodes * val_fraction)`` episodes go to validation, at least one and at most
    ``n_episodes - 1``, chosen by a permutation from ``numpy.random.default_rng(seed)``.
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int | np.integer) or n_episodes < 2:
        raise ConfigError(
            f"cannot split {n_episodes!r} episode(s) into train and validation: a split needs at least 2; "
            "record more episodes or train without validation"
        )
    if not 0.0 < float(val_fraction) < 1.0:
        raise ConfigError(
            f"val_fraction={val_fraction!r} must be strictly between 0 and 1 (e.g. 0.1); "
            "to train without validation, do not split"
        )
    n = int(n_episodes)
    n_val = min(max(1, round(n * float(val_fraction))), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return sorted(perm[n_val:].tolist()), sorted(perm[:n_val].tolist())


def filter_episodes(
    store: DemoStore | str | Path,
    *,
    outcome: str | Sequence[str] | None = None,
    task: str | Sequence[str] | None = None,
    operator: str | Sequence[str] | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    ids: Sequence[int] | None = None,
) -> list[int]:
    """Sorted indices of the committed episodes that pass every given filter (see ``edit.select``)."""

    chosen = select(
        _open_store(store),
        ids=ids,
        outcome=outcome,
        task=task,
        operator=operator,
        min_length=min_length,
        max_length=max_length,
    )
    return sorted(chosen)


# ---------------------------------------------------------------------------------------------
# Sampling


class ResumableSampler(Sampler[int]):
    """Deterministic sample order that a checkpoint can resume mid-epoch.

    Each ``iter()`` yields one epoch: a permutation of ``range(n)`` from
    ``numpy.random.default_rng((seed, epoch))`` (``range(n)`` in order without ``shuffle``),
    starting at the saved position. The next ``iter()`` moves on to the next epoch, but only
    after the previous one was yielded to the end; an iteration abandoned midway restarts from
    the same position.

    A ``DataLoader`` draws indices ahead of the batches the trainer has consumed, so the trainer
    passes ``samples_consumed`` (counted from the start of the epoch, including samples consumed
    before a resume) to ``state_dict``. With ``batch_size`` given, that count is checked to be a
    whole number of batches (or the whole epoch).
    """

    def __init__(self, n: int, *, shuffle: bool = True, seed: int = 0, batch_size: int | None = None) -> None:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ConfigError(f"ResumableSampler needs n ≥ 1 samples, got {n!r}; is the dataset empty?")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size={batch_size} must be ≥ 1 or None")
        self.n = int(n)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.batch_size = batch_size
        self.epoch = 0
        self.position = 0  # where the next iteration of this epoch starts
        self._yielded = 0  # samples of this epoch yielded so far (from its start)
        self._finished = False  # this epoch was yielded to the end; the next iter() starts the next

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of one epoch."""
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng((self.seed, int(epoch))).permutation(self.n)

    def _advance_if_finished(self) -> None:
        if self._finished:
            self.epoch += 1
            self.position = 0
            self._yielded = 0
            self._finished = False

    def __iter__(self) -> Iterator[int]:
        self._advance_if_finished()
        start = self.position
        order = self.order(self.epoch)
        self._yielded = start
        for i in order[start:].tolist():
            self._yielded += 1
            yield i
        self._finished = True

    def __len__(self) -> int:
        return self.n if self._finished else self.n - self.position

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning at the next ``iter()``."""
        self.epoch = int(epoch)
        self.position = 0
        self._yielded = 0
        self._finished = False

    def state_dict(self, samples_consumed: int | None = None) -> dict[str, int]:
        """``{"epoch", "position", "seed", "n"}``: where training resumes.

        ``samples_consumed`` counts the samples of the current epoch the trainer actually used;
        by default, the samples yielded so far (right only without prefetching).
        """
        consumed = self._yielded if samples_consumed is None else int(samples_consumed)
        if not 0 <= consumed <= self.n:
            raise ValueError(
                f"samples_consumed={samples_consumed} is outside 0..{self.n} (the epoch length); pass the "
                "number of samples, not batches, consumed in the current epoch"
            )
        if (
            samples_consumed is not None
            and self.batch_size
            and consumed % self.batch_size
            and consumed != self.n
        ):
            raise ValueError(
                f"samples_consumed={consumed} is not a whole number of batches of {self.batch_size}; pass "
                "batches consumed × batch_size (or the epoch length after its last, partial batch)"
            )
        if consumed == self.n:
            return {"epoch": self.epoch + 1, "position": 0, "seed": self.seed, "n": self.n}
        return {"epoch": self.epoch, "position": consumed, "seed": self.seed, "n": self.n}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume: the next ``iter()`` yields exactly the samples after ``state["position"]``."""
        if "n" in state and int(state["n"]) != self.n:
            raise ValueError(
                f"the saved sampler state is for {state['n']} samples but this dataset has {self.n}; "
                "resume with the same dataset and episode selection"
            )
        position = int(state["position"])
        if not 0 <= position <= self.n:
            raise ValueError(f"saved position {position} is outside 0..{self.n}")
        self.seed = int(state.get("seed", self.seed))
        self.set_epoch(int(state["epoch"]))
        if position == self.n:
            self.epoch += 1
        else:
            self.position = position
            self._yielded = position
