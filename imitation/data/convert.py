"""Format interchange: import other projects' demonstration files into a demo store, and back.

Formats are plain functions in two dicts, ``IMPORTERS`` and ``EXPORTERS``; a new format is one more
function and one more entry. LeRobot datasets: ``imitation/data/lerobot.py``;
robomimic files: ``imitation/data/robomimic.py``.

diffusion_policy's replay buffer is a Zarr **v2** group (a directory, or a ``.zarr.zip``)::

    data/<key>            frames of all episodes concatenated along axis 0
                          (PushT: img (N,96,96,3) float32 in 0..255, state (N,5), action (N,2),
                          keypoint (N,9,2), n_contacts (N,1); real robots: camera_<i> uint8,
                          robot_eef_pose, robot_joint, timestamp, action, ...)
    meta/episode_ends     int64 cumulative frame counts

It records no rate, no task text and no robot description, so those are arguments of the import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm import tqdm

from imitation.data.edit import building
from imitation.data.schema import TIMESTAMP, Feature, SchemaError, check_key, kind_for
from imitation.data.store import DemoStore, EpisodeWriter, StoreError
from imitation.errors import ConfigError
from imitation.paths import inside

log = logging.getLogger(__name__)

# Bytes of source data read at a time while importing (episodes are read in blocks of frames).
READ_BLOCK_BYTES = 64 * 2**20


# ---------------------------------------------------------------------------------------------
# Reading a diffusion_policy replay buffer


def _contained(src: Path) -> None:
    """Refuse a foreign directory with a file or link that resolves outside it: zarr follows
    symlinks, so one would make the import read whatever file it points at."""

    for p in src.rglob("*"):
        inside(src, str(p.relative_to(src)), source=src)


def _open_replay_buffer(src: Path) -> zarr.Group:
    """Open a diffusion_policy replay buffer (directory or .zip) read-only, with clear errors."""
    if not src.exists():
        raise StoreError(
            f"{src} does not exist; give the path of a diffusion_policy replay buffer (.zarr or .zarr.zip)"
        )
    if (src / "zarr.json").is_file():
        raise StoreError(
            f"{src} is a Zarr v3 store, not a diffusion_policy replay buffer (Zarr v2); "
            "if it is a demo store already, use it directly or copy it with 'imitation data filter'"
        )
    # diffusion_policy's real-robot buffers compress camera frames with imagecodecs' numcodecs
    # codecs (imagecodecs_jpeg2k); zarr needs them registered to even parse the array metadata.
    import imagecodecs.numcodecs
    from numcodecs.registry import codec_registry

    if "imagecodecs_jpeg2k" not in codec_registry:  # registering twice logs a warning per codec
        imagecodecs.numcodecs.register_codecs()
    try:
        if src.is_file():
            from zarr.storage import ZipStore

            root = zarr.open_group(store=ZipStore(src, mode="r"), mode="r")
        else:
            _contained(src)
            # Not consolidated: a foreign .zmetadata could name members outside the directory.
            root = zarr.open_group(src, mode="r", use_consolidated=False)
    except ConfigError:
        raise
    except Exception as e:  # zarr raises several types for unreadable metadata
        raise StoreError(
            f"{src} is not a diffusion_policy replay buffer: it does not open as a Zarr group ({e})"
        ) from e
    for needed in ("data", "meta/episode_ends"):
        if needed not in root:
            raise StoreError(
                f"{src} has no '{needed}', so it is not a diffusion_policy replay buffer "
                "(expected data/<key> arrays and meta/episode_ends)"
            )
    return root


def _check_episode_ends(src: Path, ends: np.ndarray, lengths: Mapping[str, int]) -> np.ndarray:
    """Validate ``meta/episode_ends`` against the data arrays' lengths; returns it as int64."""
    where = f"{src}: meta/episode_ends"
    if ends.ndim != 1 or ends.dtype.kind not in "iu":
        raise StoreError(f"{where} must be a 1-D integer array, got shape {ends.shape} dtype {ends.dtype}")
    ends = ends.astype(np.int64)
    if ends.size == 0:
        raise StoreError(f"{where} is empty: the replay buffer holds no episodes; nothing to import")
    steps = np.diff(ends, prepend=0)
    if (steps < 0).any():
        i = int(np.flatnonzero(steps < 0)[0])
        prev = int(ends[i - 1]) if i else 0
        raise StoreError(
            f"{where} must be non-decreasing cumulative frame counts, but entry {i} is {int(ends[i])} "
            f"after {prev}; the file is corrupt or not a replay buffer"
        )
    for key, n in lengths.items():
        if n != int(ends[-1]):
            raise StoreError(
                f"{where} ends at frame {int(ends[-1])}, but data/{key} has {n} frames; every data array "
                "must hold exactly the frames of the episodes (the file may be truncated or corrupt)"
            )
    return ends


# ---------------------------------------------------------------------------------------------
# Mapping source arrays onto features


def default_target(name: str, shape: tuple[int, ...]) -> str:
    """Where a source array goes without a mapping: action, state and timestamp by name,
    (N, H, W, 3|1) arrays to ``images/<name>``, anything else under its own name."""
    if name in ("action", "state", TIMESTAMP):
        return name
    if len(shape) == 4 and shape[-1] in (1, 3):
        return f"images/{name}"
    return name


@dataclass
class _Column:
    """One source array and the feature it becomes."""

    source: str
    target: str
    feature: Feature
    array: Any  # zarr.Array

    def convert(self, block: np.ndarray, first_frame: int) -> np.ndarray:
        """Source values of a block of frames -> the feature's dtype, refusing what would change them."""
        want = self.feature.np_dtype
        if self.feature.kind == "image" and block.dtype.kind == "f" and want == np.uint8:
            bad = ~np.isfinite(block) | (block < 0) | (block > 255) | (block != np.round(block))
            if bad.any():
                pos = np.argwhere(bad)[0]
                raise SchemaError(
                    f"frame {first_frame + int(pos[0])}: data/{self.source}: float image values must be whole "
                    f"numbers in 0..255 to become uint8 pixels, but it holds "
                    f"{block[tuple(pos)].item()!r}; convert the array to uint8 0..255 first (images in 0..1 need "
                    "scaling by 255)"
                )
        if self.target == TIMESTAMP:
            block = block.reshape(block.shape[0])
        return block.astype(want, copy=False)


def _plan_columns(
    data: zarr.Group, mapping: Mapping[str, str | None], image_codec: str | dict[str, Any]
) -> list[_Column]:
    names = sorted(data.array_keys())
    unknown = sorted(set(mapping) - set(names))
    if unknown:
        raise StoreError(f"mapping names source array(s) {unknown} that data/ lacks; data/ holds {names}")
    for sub in sorted(data.group_keys()):
        log.warning("skipping data/%s: a group, not an array (diffusion_policy stores arrays only)", sub)
    columns: list[_Column] = []
    taken: dict[str, str] = {}
    for name in names:
        arr = data[name]
        shape = tuple(arr.shape)
        target = mapping[name] if name in mapping else default_target(name, shape)
        if not target:  # mapping to None or "" drops the array
            continue
        if target in taken:
            raise StoreError(
                f"data/{name} and data/{taken[target]} both map to {target!r}; map one of them elsewhere "
                f"(mapping={{'{name}': 'other_name'}}) or drop it (mapping={{'{name}': ''}})"
            )
        taken[target] = name
        columns.append(_Column(name, target, _feature_for(name, target, arr, image_codec), arr))
    if not any(c.feature.kind == "action" for c in columns):
        log.warning("no source array maps to 'action' (arrays: %s); pass mapping={'<name>': 'action'}", names)
    return columns


def _feature_for(name: str, target: str, arr: Any, image_codec: str | dict[str, Any]) -> Feature:
    shape, dtype = tuple(arr.shape[1:]), np.dtype(arr.dtype)
    hint = f"map it elsewhere with mapping={{'{name}': '<key>'}} or drop it with mapping={{'{name}': ''}}"
    try:
        if target == TIMESTAMP:
            if shape not in ((), (1,)) or dtype.kind not in "iuf":
                raise SchemaError(f"a timestamp needs one number per frame, got shape {shape} dtype {dtype}")
            return Feature(shape=(), dtype="float64", kind="scalar")
        check_key(target)
        kind = kind_for(target)
        if kind == "image":
            # Float images (PushT's img) hold 0..255 pixel values; they are checked as they are read.
            out = np.dtype(np.uint8) if dtype.kind == "f" else dtype
            codec = {"name": image_codec} if isinstance(image_codec, str) else dict(image_codec)
            return Feature(shape=shape, dtype=out.name, kind="image", codec=codec)
        if kind in ("state", "action"):
            # The project's convention: state and action vectors are float32.
            return Feature(shape=shape, dtype="float32", kind=kind)
        return Feature(shape=shape, dtype=dtype.name, kind=kind)
    except (SchemaError, ValueError) as e:
        raise StoreError(
            f"data/{name} (shape {tuple(arr.shape)}, {dtype}) cannot become {target!r}: {e}; {hint}"
        ) from e


# ---------------------------------------------------------------------------------------------
# Import


def import_diffusion_policy(
    src: str | Path,
    dst: str | Path,
    *,
    fps: float | None = None,
    mapping: Mapping[str, str | None] | None = None,
    image_codec: str | dict[str, Any] = "jpeg",
    task: str | None = None,
    operator: str | None = None,
    outcome: str | None = None,
    robot: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> DemoStore:
    """Import a diffusion_policy replay buffer (Zarr v2, directory or .zip) as a new store at ``dst``.

    Args:
        fps: the rate the data was recorded at (PushT: 10); required unless the buffer was written
            by ``export_diffusion_policy``, which records it.
        mapping: source array name -> feature key, overriding the defaults (``action`` and
            ``state`` keep their names; (N, H, W, 3|1) arrays become ``images/<name>``; anything
            else keeps its name as a "scalar" feature). The target's name sets its kind:
            ``action``; ``state``/``env_state`` (float32); ``images/<camera>`` (uint8; float
            sources must hold whole numbers in 0..255); ``timestamp``. Map to ``""`` to drop.
            E.g. ``{"img": "images/top", "keypoint": "env_state"}``.
        image_codec: codec of the imported cameras ("jpeg" for camera footage, "zstd" lossless).
        task, operator, outcome: episode metadata; default to what an exported buffer recorded,
            else task and outcome "unknown".
        robot: the robot description stored in the attrs (joint names, limits).

    Without a ``timestamp`` array, frame times are frame_in_episode / fps. Each episode's
    ``start_time`` is its first timestamp when the source has them, else its first frame / fps
    (distinct per episode, so the store's fingerprint tells edits apart); ``info`` records the
    source and the source episode index. Reads block by block; never loads the whole buffer.
    """
    src = Path(src)
    root = _open_replay_buffer(src)
    data = root["data"]
    saved = dict(root.attrs.get("imitation") or {})  # written by export_diffusion_policy
    fps = fps if fps is not None else saved.get("fps")
    if fps is None or not float(fps) > 0:
        raise StoreError(
            f"fps must be a positive rate in Hz, got {fps}: diffusion_policy replay buffers do not record "
            "their rate, so pass it (PushT: 10; their real-robot data: 10)"
        )
    fps = float(fps)
    columns = _plan_columns(data, dict(mapping or {}), image_codec)
    if not columns:
        raise StoreError(f"the mapping drops every array of {src}/data; nothing to import")
    ends = _check_episode_ends(
        src, np.asarray(root["meta/episode_ends"][:]), {c.source: int(c.array.shape[0]) for c in columns}
    )
    features = {c.target: c.feature for c in columns}
    for key, saved_feat in (saved.get("features") or {}).items():
        f = features.get(key)  # joint names survive an export/import round trip
        if f is not None and saved_feat.get("names") and list(f.shape) == list(saved_feat.get("shape", [])):
            features[key] = replace(f, names=tuple(saved_feat["names"]))
    saved_meta = saved.get("episodes") or []
    if len(saved_meta) != ends.size:  # not exported by us, or edited since
        saved_meta = [{}] * ends.size
    starts = np.concatenate([[0], ends[:-1]])

    with (
        building(dst) as tmp,
        EpisodeWriter(tmp, features=features, fps=fps, robot=robot or saved.get("robot")) as w,
    ):
        for e in tqdm(
            range(ends.size), desc=f"import {src.name}", unit="ep", disable=None if progress else True
        ):
            start, end = int(starts[e]), int(ends[e])
            if end == start:
                log.warning("%s: episode %d has no frames; skipped", src, e)
                continue
            meta = dict(saved_meta[e])
            if not meta:
                meta["info"] = {"source": "diffusion_policy", "source_path": str(src), "source_episode": e}
            for name, given in (("task", task), ("operator", operator), ("outcome", outcome)):
                if given is not None:
                    meta[name] = given
            try:
                _import_episode(w, columns, start, end, fps, meta)
            except SchemaError as err:
                raise StoreError(f"{src}: episode {e}, {err}") from err
    log.info("imported %d episode(s) from %s into %s", ends.size, src, dst)
    return DemoStore.open(dst)


def _import_episode(
    w: EpisodeWriter, columns: list[_Column], start: int, end: int, fps: float, meta: dict[str, Any]
) -> None:
    """Write source frames [start, end) as one episode, reading blocks of ``READ_BLOCK_BYTES``."""
    has_ts = any(c.target == TIMESTAMP for c in columns)
    frame_bytes = sum(int(np.prod(c.array.shape[1:])) * c.array.dtype.itemsize for c in columns)
    block = max(1, READ_BLOCK_BYTES // max(1, frame_bytes))
    for b0 in range(start, end, block):
        b1 = min(end, b0 + block)
        values = {c.target: c.convert(np.asarray(c.array[b0:b1]), b0 - start) for c in columns}
        if not has_ts:
            values[TIMESTAMP] = np.arange(b0 - start, b1 - start, dtype=np.float64) / fps
        if b0 == start:
            # Distinct per episode, so the store's fingerprint tells edits apart.
            default_start = float(values[TIMESTAMP][0]) if has_ts else start / fps
            w.start_episode(
                task=meta.get("task", "unknown"),
                operator=meta.get("operator", ""),
                seed=meta.get("seed"),
                info=meta.get("info"),
                start_time=meta.get("start_time", default_start),
            )
        for i in range(b1 - b0):
            try:
                w.add_frame({k: v[i] for k, v in values.items()})
            except SchemaError as err:
                raise SchemaError(f"frame {b0 - start + i}: {err}") from err
    w.save_episode(
        outcome=meta.get("outcome", "unknown"),
        dropped_frames=meta.get("dropped_frames", 0),
        duration_s=meta.get("duration_s"),
    )


# ---------------------------------------------------------------------------------------------
# Export


def export_name(key: str) -> str:
    """The flat diffusion_policy array name of a feature: ``images/top`` -> ``top``, others unchanged."""
    return key.split("/", 1)[1] if key.startswith("images/") else key


def export_diffusion_policy(src: str | Path | DemoStore, dst: str | Path, *, progress: bool = True) -> Path:
    """Write a store as a diffusion_policy replay buffer (Zarr v2 directory) at ``dst``.

    ``data/<key>`` for every feature with flat names (``images/top`` -> ``top``), images decoded to
    their stored dtype (uint8) and compressed losslessly with Blosc/zstd, and
    ``meta/episode_ends``. The root attrs keep what diffusion_policy has no place for (fps, robot,
    features, per-episode metadata) under "imitation", so importing the result gives the store back.
    """
    import numcodecs

    store = src if isinstance(src, DemoStore) else DemoStore.open(src)
    if store.n_episodes == 0:
        raise StoreError(f"{store.path} has no committed episodes; nothing to export")
    names: dict[str, str] = {}
    for key in store.features:
        flat = export_name(key)
        if flat in names.values():
            other = next(k for k, v in names.items() if v == flat)
            raise StoreError(f"features {other!r} and {key!r} both export as data/{flat}; rename one of them")
        names[key] = flat
    n = store.n_frames
    episodes = []
    for e in range(store.n_episodes):
        meta = store.episode_meta(e)
        meta.pop("length")
        episodes.append(meta)
    with building(dst) as tmp:
        root = zarr.open_group(tmp, mode="w-", zarr_format=2)
        data = root.create_group("data")
        for key in tqdm(
            store.features,
            desc=f"export {store.path.name}",
            unit="feature",
            disable=None if progress else True,
        ):
            f = store.features[key]
            # About 4 MB of raw data per chunk: diffusion_policy loads buffers whole, so chunks
            # only set the number of files.
            chunk = int(min(n, max(1, 2**22 // f.frame_nbytes)))
            arr = data.create_array(
                names[key],
                shape=(n, *f.shape),
                chunks=(chunk, *f.shape),
                dtype=f.np_dtype,
                compressors=numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE),
            )
            for b0 in range(0, n, chunk):
                b1 = min(n, b0 + chunk)
                arr[b0:b1] = store.read(key, b0, b1)
        meta = root.create_group("meta")
        ends = meta.create_array("episode_ends", shape=(store.n_episodes,), dtype="int64", compressors=None)
        ends[:] = store.episode_ends
        root.attrs["imitation"] = {
            "fps": store.fps,
            "robot": store.robot,
            "features": {k: f.to_dict() for k, f in store.features.items()},
            "episodes": episodes,
        }
    log.info("exported %d episode(s) of %s to %s", store.n_episodes, store.path, dst)
    return Path(dst)


# ---------------------------------------------------------------------------------------------
# Registries (an unknown name lists the valid ones)


def _import_lerobot(*args: Any, **kwargs: Any) -> DemoStore:
    from imitation.data.lerobot import import_lerobot

    return import_lerobot(*args, **kwargs)


def _import_robomimic(*args: Any, **kwargs: Any) -> DemoStore:
    from imitation.data.robomimic import import_robomimic

    return import_robomimic(*args, **kwargs)


IMPORTERS: dict[str, Callable[..., DemoStore]] = {
    "diffusion_policy": import_diffusion_policy,
    "lerobot": _import_lerobot,
    "robomimic": _import_robomimic,
}


def _export_lerobot(*args: Any, **kwargs: Any) -> Path:
    from imitation.data.lerobot import export_lerobot

    return export_lerobot(*args, **kwargs)


EXPORTERS: dict[str, Callable[..., Path]] = {
    "diffusion_policy": export_diffusion_policy,
    "lerobot": _export_lerobot,
}


def importer(name: str) -> Callable[..., DemoStore]:
    if name not in IMPORTERS:
        raise StoreError(f"unknown import format {name!r}; choose one of {', '.join(sorted(IMPORTERS))}")
    return IMPORTERS[name]


def exporter(name: str) -> Callable[..., Path]:
    if name not in EXPORTERS:
        raise StoreError(f"unknown export format {name!r}; choose one of {', '.join(sorted(EXPORTERS))}")
    return EXPORTERS[name]
