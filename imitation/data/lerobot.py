"""LeRobot datasets in: ``imitation data import lerobot <dataset dir> <out.zarr>``.

A LeRobot dataset on disk (as ``huggingface-cli download`` or LeRobot's recorder leaves it), format
v3.0 (LeRobot ≥ 0.4)::

    meta/info.json                         fps, robot_type, features, data_path / video_path templates
    meta/tasks.parquet                     task text (the index) -> task_index
    meta/episodes/chunk-*/file-*.parquet   per episode: length, tasks, its data file and rows, and per
                                           camera its video file and from/to timestamps in it
    data/chunk-*/file-*.parquet            one row per frame: index, episode_index, frame_index,
                                           timestamp (frame_index / fps), task_index, features
    videos/<key>/chunk-*/file-*.mp4        many episodes per file; frame t of an episode is at
                                           from_timestamp + t's timestamp

or v2.1 (one parquet and one mp4 per episode, ``meta/episodes.jsonl``, ``meta/tasks.jsonl``).

What becomes what (``--map SOURCE=FEATURE`` renames, ``SOURCE=`` drops): ``observation.state`` ->
``state``, ``action`` -> ``action``, ``observation.environment_state`` -> ``env_state``,
``observation.images.<cam>`` (``observation.image``) -> ``images/<cam>`` (``images/image``), decoded
from the videos (AV1, H.264, HEVC: whatever the PyAV wheel decodes) or from the parquet's PNG bytes,
any other feature -> its name with dots as underscores (``next.reward`` -> ``next_reward``). The
timestamp column becomes ``timestamp``, the episodes' tasks ``task``, the rate ``fps``.

Units are not converted: LeRobot's SO-100/101 and Koch data hold calibrated motor values in
LeRobot's own normalisation. The store's ``robot`` attribute records ``units: lerobot`` and the robot
type, so nothing drives an arm with them as if they were radians.

Every path the dataset's metadata names (templates, video keys) must resolve inside the dataset
directory. The import is written to ``.<out>.importing`` beside ``out`` and renamed when complete, so
a killed import leaves no half store at ``out``; running the same command again carries on from the
last saved episode (no episode twice).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from imitation.data.schema import TIMESTAMP, Feature, SchemaError, check_key, kind_for
from imitation.data.store import DemoStore, EpisodeWriter, StoreError
from imitation.errors import ConfigError
from imitation.paths import inside

log = logging.getLogger(__name__)

EXTRA = "formats"  # pip install 'imitation[formats]'
# Columns every LeRobot dataset has that are bookkeeping, not features.
BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")
MEASURED = "imitation.timestamp"  # our measured timestamps, where we exported the dataset
V21_DATA = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V21_VIDEO = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"


def need(module: str) -> Any:
    """Import one of the ``formats`` extra's packages, or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(
            f"reading other dataset formats needs {module.split('.')[0]}, which is not installed; "
            f"install the extra: pip install 'imitation[{EXTRA}]'"
        ) from e


# ---------------------------------------------------------------------------------------------
# The dataset's metadata


@dataclass
class Episode:
    """One source episode: where its rows and its frames are."""

    index: int
    length: int
    tasks: list[str]
    data_file: Path
    rows: tuple[int, int] | None  # [from, to) of the dataset-wide ``index`` (v3.0); None: the whole file
    videos: dict[str, tuple[Path, float]] = field(default_factory=dict)  # key -> (file, from_timestamp)
    ours: dict[str, Any] = field(default_factory=dict)  # our episode metadata, where we exported it


@dataclass
class Dataset:
    root: Path
    version: str
    info: dict[str, Any]
    episodes: list[Episode]

    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    def fingerprint(self) -> str:
        """What identifies the source, so that a resumed import continues the same dataset."""
        text = json.dumps(
            {"info": self.info, "episodes": [(e.index, e.length) for e in self.episodes]}, sort_keys=True
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_dataset(root: str | Path) -> Dataset:
    """Read a LeRobot dataset's metadata (v3.0 or v2.1), checking what the import relies on."""
    root = Path(root)
    if not root.is_dir():
        raise StoreError(
            f"{root} is not a directory; give the folder of a LeRobot dataset (it holds meta/info.json)"
        )
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise StoreError(f"{root} is not a LeRobot dataset: {info_path} is missing")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StoreError(f"{info_path} is not readable JSON ({e}); the dataset is damaged") from e
    for key in ("codebase_version", "fps", "features"):
        if key not in info:
            raise StoreError(f"{info_path} has no {key!r}; it is not a LeRobot dataset's info.json")
    version = str(info["codebase_version"])
    fps = info["fps"]
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps < 100_000:
        raise StoreError(f"{info_path}: fps={fps!r} is not a rate in Hz")
    if not isinstance(info["features"], dict) or not info["features"]:
        raise StoreError(f"{info_path}: features must be a non-empty mapping")
    if version == "v3.0":
        episodes = _episodes_v30(root, info)
    elif version in ("v2.0", "v2.1"):
        episodes = _episodes_v21(root, info)
    else:
        raise StoreError(
            f"{info_path}: codebase_version {version!r} is not one this import reads (v3.0, v2.1, v2.0); "
            "convert it with LeRobot's own converter first"
        )
    if not episodes:
        raise StoreError(f"{root}: the dataset lists no episodes; nothing to import")
    return Dataset(root, version, info, episodes)


def video_keys(info: Mapping[str, Any]) -> list[str]:
    return [k for k, f in info["features"].items() if isinstance(f, dict) and f.get("dtype") == "video"]


def _path(root: Path, template: Any, source: Path, **fields: Any) -> Path:
    """A path the dataset's metadata names (a template filled in), which must lie inside ``root``."""
    if not isinstance(template, str):
        raise StoreError(f"{source}: a path template must be text, got {template!r}")
    try:
        named = template.format(**fields)
    except (KeyError, IndexError, ValueError) as e:
        raise StoreError(f"{source}: path template {template!r} cannot be filled in ({e!r})") from e
    return inside(root, named, source=source)


def _episodes_v30(root: Path, info: dict[str, Any]) -> list[Episode]:
    pq = need("pyarrow.parquet")
    folder = root / "meta" / "episodes"
    files = sorted(folder.glob("chunk-*/file-*.parquet"))
    if not files:
        raise StoreError(
            f"{root} is a v3.0 dataset without episode tables: {folder}/chunk-*/file-*.parquet is missing"
        )
    data_t = info.get("data_path", "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet")
    video_t = info.get("video_path", "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4")
    vkeys = video_keys(info)
    episodes: list[Episode] = []
    for f in files:
        inside(root, str(f.relative_to(root)), source=folder)
        table = _read_parquet(pq, f)
        cols = set(table.column_names)
        want = {"episode_index", "length", "data/chunk_index", "data/file_index"}
        for k in vkeys:
            want |= {f"videos/{k}/chunk_index", f"videos/{k}/file_index", f"videos/{k}/from_timestamp"}
        missing = sorted(want - cols)
        if missing:
            raise StoreError(f"{f}: the episodes table lacks column(s) {missing}; the dataset is incomplete")
        keep = sorted(c for c in cols if not c.startswith("stats/"))
        for row in table.select(keep).to_pylist():
            e = int(row["episode_index"])
            data_file = _path(root, data_t, root / "meta/info.json",
                              chunk_index=int(row["data/chunk_index"]), file_index=int(row["data/file_index"]))  # fmt: skip
            rows = None
            if row.get("dataset_from_index") is not None and row.get("dataset_to_index") is not None:
                rows = (int(row["dataset_from_index"]), int(row["dataset_to_index"]))
            videos = {}
            for k in vkeys:
                path = _path(root, video_t, root / "meta/info.json", video_key=k,
                             chunk_index=int(row[f"videos/{k}/chunk_index"]),
                             file_index=int(row[f"videos/{k}/file_index"]))  # fmt: skip
                videos[k] = (path, float(row[f"videos/{k}/from_timestamp"]))
            tasks = [str(t) for t in row.get("tasks") or []]
            ours = {
                k.split("/", 1)[1]: v for k, v in row.items() if k.startswith("imitation/") and v is not None
            }
            episodes.append(Episode(e, int(row["length"]), tasks, data_file, rows, videos, ours))
    return sorted(episodes, key=lambda e: e.index)


def _episodes_v21(root: Path, info: dict[str, Any]) -> list[Episode]:
    path = root / "meta" / "episodes.jsonl"
    if not path.is_file():
        raise StoreError(f"{root} is a {info['codebase_version']} dataset without {path}")
    chunks = int(info.get("chunks_size") or 1000)
    data_t = info.get("data_path", V21_DATA)
    video_t = info.get("video_path", V21_VIDEO)
    vkeys = video_keys(info)
    episodes = []
    for n, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            e, length = int(row["episode_index"]), int(row["length"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise StoreError(f"{path}:{n}: not an episode record ({err!r})") from err
        fields = {"episode_chunk": e // chunks, "episode_index": e}
        data_file = _path(root, data_t, root / "meta/info.json", **fields)
        videos = {
            k: (_path(root, video_t, root / "meta/info.json", video_key=k, **fields), 0.0) for k in vkeys
        }
        episodes.append(Episode(e, length, [str(t) for t in row.get("tasks") or []], data_file, None, videos))
    return sorted(episodes, key=lambda e: e.index)


def _lines(path: Path) -> list[str]:
    """The lines of one of a v2.x dataset's JSON-lines files (meta/episodes.jsonl, meta/tasks.jsonl)."""
    try:
        return path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise StoreError(f"{path} is not readable text ({e}); the dataset is damaged") from e


def _read_parquet(pq: Any, path: Path) -> Any:
    if not path.is_file():
        raise StoreError(f"{path} is missing; the dataset is incomplete (download it again)")
    try:
        return pq.read_table(path)
    except Exception as e:  # pyarrow raises its own errors for a truncated or foreign file
        raise StoreError(
            f"{path} is not a readable parquet file ({e}); a recording that crashed leaves files "
            "without their footer: record or download that part again"
        ) from e


# ---------------------------------------------------------------------------------------------
# Features


@dataclass
class Column:
    source: str  # LeRobot feature name
    target: str  # our feature key
    feature: Feature
    kind: str  # "video", "image" (PNG bytes in the parquet) or "value"


def default_target(name: str) -> str:
    if name == "observation.state":
        return "state"
    if name == "action":
        return "action"
    if name == "observation.environment_state":
        return "env_state"
    if name == "observation.image":
        return "images/image"
    if name.startswith("observation.images."):
        return "images/" + name[len("observation.images.") :].replace(".", "_").replace("/", "_")
    return name.replace(".", "_").replace("/", "_")


def plan(ds: Dataset, mapping: Mapping[str, str | None], image_codec: str | dict[str, Any]) -> list[Column]:
    """The features of the new store, one per imported LeRobot feature."""
    names = [k for k in ds.features if k not in BOOKKEEPING and k != MEASURED]
    unknown = sorted(set(mapping) - set(ds.features))
    if unknown:
        raise StoreError(f"--map names feature(s) {unknown} that {ds.root} lacks; it has {sorted(names)}")
    columns: list[Column] = []
    taken: dict[str, str] = {}
    for name in names:
        spec = ds.features[name]
        target = mapping[name] if name in mapping else default_target(name)
        if not target:
            continue
        if target in taken:
            raise StoreError(
                f"{name} and {taken[target]} both become {target!r}; rename one with --map {name}=<feature> "
                f"or drop it with --map {name}="
            )
        taken[target] = name
        dtype = str(spec.get("dtype"))
        shape = tuple(int(s) for s in spec.get("shape") or ())
        names_ = spec.get("names")
        try:
            check_key(target)
            if dtype in ("video", "image"):
                if not target.startswith("images/"):
                    raise SchemaError(f"a camera must become images/<name>, not {target!r}")
                hwc = _hwc(shape, names_)
                codec = {"name": image_codec} if isinstance(image_codec, str) else dict(image_codec)
                feat = Feature(shape=hwc, dtype="uint8", kind="image", codec=codec)
                columns.append(Column(name, target, feat, "video" if dtype == "video" else "image"))
                continue
            if dtype in ("string", "str"):
                log.warning("skipping %s: text features are not imported (tasks are)", name)
                continue
            kind = kind_for(target)
            np_dtype = "float32" if kind in ("state", "action") else np.dtype(dtype).name
            if shape == (1,) and kind == "scalar":
                shape = ()
            flat_names = (
                names_ if isinstance(names_, list) and all(isinstance(n, str) for n in names_) else None
            )
            if isinstance(names_, dict):  # LeRobot <= 2.0 wrote {"motors": [...]}
                inner = next(iter(names_.values()), None)
                flat_names = inner if isinstance(inner, list) else None
            if flat_names is not None and (not shape or len(flat_names) != shape[-1]):
                flat_names = None
            feat = Feature(
                shape=shape, dtype=np_dtype, kind=kind, names=tuple(flat_names) if flat_names else None
            )
            columns.append(Column(name, target, feat, "value"))
        except (SchemaError, TypeError, ValueError) as e:
            raise StoreError(
                f"{ds.root}: feature {name!r} ({dtype}, shape {list(shape)}) cannot become {target!r}: {e}; "
                f"rename it with --map {name}=<feature> or drop it with --map {name}="
            ) from e
    if not any(c.target == "action" for c in columns):
        log.warning(
            "%s: no feature becomes 'action' (features: %s); name one with --map <name>=action",
            ds.root,
            names,
        )
    return columns


def _hwc(shape: tuple[int, ...], names: Any) -> tuple[int, int, int]:
    """LeRobot writes camera shapes (H, W, C) with names [height, width, channels]; older datasets
    (C, H, W) with [channels, height, width]."""
    if len(shape) != 3:
        raise SchemaError(f"a camera's shape must have 3 axes, got {list(shape)}")
    if (
        isinstance(names, list)
        and names
        and names[0] in ("channel", "channels")
        or shape[0] in (1, 3)
        and shape[2] not in (1, 3)
    ):
        return (shape[1], shape[2], shape[0])
    return shape  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Reading frames


class VideoReader:
    """Frames of one mp4 file at given timestamps, decoding forward and seeking only when asked for
    an earlier time (episodes are read in order, so each file is decoded once)."""

    def __init__(self, path: Path, fps: float) -> None:
        av = need("av")
        if not path.is_file():
            raise StoreError(f"{path} is missing; the dataset is incomplete (download it again)")
        try:
            self.container = av.open(str(path))
            self.stream = self.container.streams.video[0]
        except (av.error.FFmpegError, IndexError) as e:
            raise StoreError(f"{path} is not a readable video ({e})") from e
        self.stream.thread_type = "AUTO"
        self.path = path
        self.tol = 0.5 / fps  # half a frame period: the nearest frame, never a neighbour
        self.base = float(self.stream.time_base)
        self._frames: Iterator[Any] | None = None
        self._current: tuple[float, Any] | None = None

    def _decode(self) -> Iterator[tuple[float, Any]]:
        for frame in self.container.decode(self.stream):
            if frame.pts is None:
                continue
            yield frame.pts * self.base, frame

    def _seek(self, t: float) -> None:
        self.container.seek(max(0, int((t - 1.0) / self.base)), stream=self.stream, backward=True)
        self._frames = self._decode()
        self._current = None

    def frames(self, times: np.ndarray) -> Iterator[np.ndarray]:
        """One RGB (H, W, 3) uint8 frame per time (seconds in the file), in order."""
        for t in times:
            t = float(t)
            if self._frames is None or (self._current is not None and self._current[0] > t + self.tol):
                self._seek(t)
            while self._current is None or self._current[0] < t - self.tol:
                try:
                    self._current = next(self._frames)  # type: ignore[arg-type]
                except StopIteration:
                    last = (
                        "no frame" if self._current is None else f"its last frame at {self._current[0]:.4f} s"
                    )
                    raise StoreError(
                        f"{self.path}: no frame at {t:.4f} s ({last}); the video is shorter than its "
                        "episodes say (a damaged or partly downloaded file)"
                    ) from None
            ft, frame = self._current
            if abs(ft - t) > self.tol:
                raise StoreError(
                    f"{self.path}: the frame nearest {t:.4f} s is at {ft:.4f} s, more than half a frame "
                    "period away; the video's frames do not match the episode's timestamps"
                )
            yield frame.to_ndarray(format="rgb24")

    def close(self) -> None:
        self.container.close()


class Frames:
    """The dataset's rows and frames, one episode at a time; keeps the current parquet file and
    one open reader per video file."""

    def __init__(self, ds: Dataset, columns: list[Column]) -> None:
        self.ds = ds
        self.columns = columns
        self.pq = need("pyarrow.parquet")
        self._file: tuple[Path, Any] | None = None
        self._cols: tuple[np.ndarray, np.ndarray | None] | None = None
        self._videos: dict[tuple[str, Path], VideoReader] = {}

    def _table(self, path: Path) -> Any:
        if self._file is None or self._file[0] != path:
            self._file = (path, _read_parquet(self.pq, path))
            self._cols = None
        return self._file[1]

    def _columns(self, table: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """The current file's episode_index column and, where sorted, its index column."""
        if self._cols is None:
            episodes = table.column("episode_index").to_numpy()
            index = table.column("index").to_numpy() if "index" in table.column_names else None
            if index is not None and not (np.diff(index) > 0).all():
                index = None
            self._cols = (episodes, index)
        return self._cols

    def episode(self, ep: Episode) -> tuple[dict[str, Any], np.ndarray, list[int]]:
        """(values per feature, timestamps, task_index per frame) of one episode; cameras as
        iterators of frames."""
        table = self._table(ep.data_file)
        where = ep.data_file
        for col in ["episode_index", "timestamp"] + [c.source for c in self.columns if c.kind != "video"]:
            if col not in table.column_names:
                raise StoreError(f"{where} has no column {col!r}; the dataset's data file is incomplete")
        episode_col, index_col = self._columns(table)
        rows = None
        if ep.rows is not None and index_col is not None:
            # A file's rows are in dataset order: the episode's are one run, found by bisection.
            lo, hi = np.searchsorted(index_col, ep.rows)
            if hi - lo == ep.length and (episode_col[lo:hi] == ep.index).all():
                rows = np.arange(lo, hi)
        if rows is None:
            rows = np.flatnonzero(episode_col == ep.index)
        if rows.size != ep.length:
            raise StoreError(
                f"{where} holds {rows.size} row(s) of episode {ep.index}, but the episode table says "
                f"{ep.length}; the dataset is inconsistent"
            )
        part = table.take(rows)
        values: dict[str, Any] = {}
        if "frame_index" in part.column_names:
            order = np.argsort(part.column("frame_index").to_numpy(), kind="stable")
            part = part.take(order)
        ts = part.column("timestamp").to_numpy().astype(np.float64)
        if MEASURED in part.column_names:  # exported by us: the measured timestamps
            values[TIMESTAMP] = _numbers(part.column(MEASURED), _MEASURED_COLUMN, where).reshape(-1)
        task_idx = part.column("task_index").to_pylist() if "task_index" in part.column_names else []
        for c in self.columns:
            if c.kind == "video":
                path, start = ep.videos[c.source]
                key = (c.source, path)
                if key not in self._videos:
                    for old in [k for k in self._videos if k[0] == c.source]:  # one file per camera at a time
                        self._videos.pop(old).close()
                    self._videos[key] = VideoReader(path, self.ds.fps)
                values[c.target] = self._videos[key].frames(start + ts)
            elif c.kind == "image":
                values[c.target] = (_png(v, where, c.source) for v in part.column(c.source).to_pylist())
            else:
                values[c.target] = _numbers(part.column(c.source), c, where)
        return values, ts, task_idx

    def close(self) -> None:
        for r in self._videos.values():
            r.close()
        self._videos.clear()


def _numbers(col: Any, c: Column, where: Path) -> np.ndarray:
    """A parquet column (numbers or fixed-size lists) as an (N, *shape) array of the feature's dtype."""
    import pyarrow as pa

    n = len(col)
    try:
        arr = col.combine_chunks() if hasattr(col, "combine_chunks") else col
        while (
            pa.types.is_fixed_size_list(arr.type)
            or pa.types.is_list(arr.type)
            or pa.types.is_large_list(arr.type)
        ):
            arr = arr.flatten()
        out = np.asarray(arr.to_numpy(zero_copy_only=False)).reshape((n, *c.feature.shape))
    except (ValueError, TypeError, pa.ArrowException) as e:
        raise StoreError(
            f"{where}: column {c.source!r} does not hold shape {list(c.feature.shape)} per row ({e})"
        ) from e
    return out.astype(c.feature.np_dtype, copy=False)


_MEASURED_COLUMN = Column(MEASURED, TIMESTAMP, Feature(shape=(1,), dtype="float64", kind="scalar"), "value")


def _png(value: Any, where: Path, name: str) -> np.ndarray:
    import cv2

    data = value.get("bytes") if isinstance(value, dict) else value
    if not data:
        raise StoreError(f"{where}: {name} holds an image without its bytes (a path-only image is not read)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise StoreError(f"{where}: {name} holds bytes that do not decode as an image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------------------------
# The import


def partial_path(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.importing")


def import_lerobot(
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
    """Import a LeRobot dataset directory (v3.0 or v2.1) as a new store at ``dst`` (module docstring).

    ``fps`` must agree with the dataset's when given. ``outcome`` defaults to "unknown" (LeRobot
    records none); ``task`` replaces the dataset's tasks.
    """
    src, dst = Path(src), Path(dst)
    ds = read_dataset(src)
    if fps is not None and abs(float(fps) - ds.fps) > 1e-9:
        raise StoreError(f"--fps {fps} disagrees with {src}/meta/info.json (fps {ds.fps}); leave --fps out")
    if dst.exists():
        raise StoreError(f"{dst} already exists; choose another output path or remove it first")
    columns = plan(ds, dict(mapping or {}), image_codec)
    if not columns:
        raise StoreError(f"the mapping drops every feature of {src}; nothing to import")
    features: dict[str, Feature] = {c.target: c.feature for c in columns}
    features[TIMESTAMP] = Feature(shape=(), dtype="float64", kind="scalar")
    fingerprint = ds.fingerprint()
    robot_attr = dict(robot or {}) or {
        "name": str(ds.info.get("robot_type") or "unknown"),
        "source": "lerobot",
        "units": "lerobot",
        "source_version": ds.version,
    }
    names = {c.target: list(c.feature.names) for c in columns if c.feature.names}
    if "action" in names and not robot:
        robot_attr["action_names"] = names["action"]
    if "state" in names and not robot:
        robot_attr["state_names"] = names["state"]
    tasks_by_index = _tasks(ds)

    work = partial_path(dst)
    done = _resume(work, src, fingerprint)
    if done:
        log.warning("%s: carrying on an interrupted import (%d episode(s) already saved)", work, len(done))
    frames = Frames(ds, columns)
    todo = [e for e in ds.episodes if e.index not in done]
    try:
        with EpisodeWriter(work, features=features, fps=ds.fps, robot=robot_attr) as w:
            bar = tqdm(total=sum(e.length for e in ds.episodes), initial=sum(e.length for e in ds.episodes if e.index in done),
                       desc=f"import {src.name}", unit="frame", disable=None if progress else True)  # fmt: skip
            for ep in todo:
                values, ts, task_idx = frames.episode(ep)
                text = task or "; ".join(ep.tasks) or _task_of(task_idx, tasks_by_index) or "unknown"
                if TIMESTAMP in values:  # exported by us: the measured timestamps
                    ts = values.pop(TIMESTAMP)
                ours = ep.ours
                info = json.loads(ours["info"]) if isinstance(ours.get("info"), str) else {}
                source = {"source": "lerobot", "source_path": str(src.resolve()),
                          "source_episode": ep.index, "source_fingerprint": fingerprint}  # fmt: skip
                default_start = float(ep.rows[0] if ep.rows else 0) / ds.fps + ep.index * 1e-6
                w.start_episode(
                    task=text,
                    operator=operator or str(ours.get("operator") or ""),
                    seed=None if ours.get("seed") in (None, -1) else int(ours["seed"]),
                    info={**(info or {}), **source},
                    start_time=float(ours.get("start_time", default_start)),
                )
                iters = {k: v for k, v in values.items() if not isinstance(v, np.ndarray)}
                arrays = {k: v for k, v in values.items() if isinstance(v, np.ndarray)}
                for i in range(ep.length):
                    frame = {k: v[i] for k, v in arrays.items()}
                    for k, it in iters.items():
                        try:
                            frame[k] = next(it)
                        except StopIteration:
                            raise StoreError(
                                f"{src}: episode {ep.index} has fewer {k} frames than rows"
                            ) from None
                    frame[TIMESTAMP] = ts[i]
                    try:
                        w.add_frame(frame)
                    except SchemaError as e:
                        raise StoreError(f"{src}: episode {ep.index}, frame {i}: {e}") from e
                    bar.update(1)
                w.save_episode(outcome=outcome or str(ours.get("outcome") or "unknown"))
            bar.close()
    finally:
        frames.close()
    if dst.exists():
        raise StoreError(f"{dst} appeared while the import was running; the import is kept at {work}")
    os.rename(work, dst)
    log.info("imported %d episode(s) from %s into %s", len(ds.episodes), src, dst)
    store = DemoStore.open(dst)
    # What each feature was called there, so an export gives the same names back.
    store._set_attr("lerobot", {"names": {c.source: c.target for c in columns}, "version": ds.version,
                                "fps": ds.info["fps"], "robot_type": ds.info.get("robot_type")})  # fmt: skip
    return store


def _resume(work: Path, src: Path, fingerprint: str) -> set[int]:
    """Source episodes an interrupted import of the same dataset already saved at ``work``."""
    if not work.exists():
        return set()
    if not (work / "zarr.json").exists():
        shutil.rmtree(work)  # killed while the store itself was being created
        return set()
    try:
        store = DemoStore.open(work)
        infos = [store.episode_meta(e)["info"] for e in range(store.n_episodes)]
    except StoreError as e:
        raise StoreError(
            f"{work} (an interrupted import) cannot be read ({e}); remove it to start the import again"
        ) from e
    others = {i.get("source_fingerprint") for i in infos} - {fingerprint}
    if others:
        raise StoreError(
            f"{work} holds an interrupted import of another dataset (or of {src} before it changed); "
            "remove it to start this import afresh"
        )
    return {int(i["source_episode"]) for i in infos}


def _tasks(ds: Dataset) -> dict[int, str]:
    """task_index -> task text (meta/tasks.parquet in v3.0, meta/tasks.jsonl in v2.x)."""
    out: dict[int, str] = {}
    v3 = ds.root / "meta" / "tasks.parquet"
    v2 = ds.root / "meta" / "tasks.jsonl"
    if v3.is_file():
        table = _read_parquet(need("pyarrow.parquet"), v3)
        df_index = [c for c in table.column_names if c not in ("task_index",)]
        texts = table.column(df_index[0]).to_pylist() if df_index else []
        for t, i in zip(texts, table.column("task_index").to_pylist(), strict=False):
            out[int(i)] = str(t)
    elif v2.is_file():
        for n, line in enumerate(_lines(v2), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out[int(row["task_index"])] = str(row["task"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise StoreError(f"{v2}:{n}: not a task record ({err!r}); the dataset is damaged") from err
    return out


def _task_of(task_idx: list[int], tasks: dict[int, str]) -> str:
    seen = list(dict.fromkeys(tasks.get(int(i), "") for i in task_idx))
    return "; ".join(t for t in seen if t)


# ---------------------------------------------------------------------------------------------
# Export: a LeRobot v3.0 dataset directory

VCODECS = {"h264": ("libx264", "h264"), "av1": ("libsvtav1", "av1"), "hevc": ("libx265", "hevc")}
DEFAULT_CRF = {"h264": 23, "av1": 30, "hevc": 28}
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
DATA_FILE_MB = 100
VIDEO_FILE_MB = 200
CHUNKS_SIZE = 1000
# Our episode metadata, carried in the episodes table (LeRobot ignores columns it does not know).
META_COLUMNS = ("outcome", "operator", "seed", "start_time", "info")


def export_names(store: DemoStore) -> dict[str, str]:
    """Our feature key -> LeRobot feature name: the import's names back where the store came from
    LeRobot (the ``lerobot`` attribute), else state, action, env_state and cameras by LeRobot's
    conventions and anything else ``observation.<key>``."""
    back = {v: k for k, v in (store.attrs.get("lerobot") or {}).get("names", {}).items()}
    out = {}
    for key in store.features:
        if key == TIMESTAMP:
            continue
        if key in back:
            out[key] = back[key]
        elif key == "state":
            out[key] = "observation.state"
        elif key == "action":
            out[key] = "action"
        elif key == "env_state":
            out[key] = "observation.environment_state"
        elif key.startswith("images/"):
            out[key] = "observation.images." + key.split("/", 1)[1]
        else:
            out[key] = "observation." + key.replace("/", ".")
    return out


def _fps_value(fps: float) -> int | float:
    return int(round(fps)) if abs(fps - round(fps)) < 1e-9 else float(fps)


def _stats(x: np.ndarray, image: bool) -> dict[str, np.ndarray]:
    """LeRobot's per-feature statistics: min, max, mean, std, count and quantiles; a camera's per
    channel on pixels scaled to [0, 1], shaped (C, 1, 1)."""
    if image:
        x = x.reshape(-1, x.shape[-1]).astype(np.float64) / 255.0  # (pixels, C)
        sample = x[:: max(1, x.shape[0] // 200_000)]
        shape = (x.shape[1], 1, 1)
    else:
        x = x.reshape(x.shape[0], -1).astype(np.float64)
        sample = x
        shape = (x.shape[1],)
    out = {
        "min": x.min(0).reshape(shape),
        "max": x.max(0).reshape(shape),
        "mean": x.mean(0).reshape(shape),
        "std": x.std(0).reshape(shape),
        "count": np.array([x.shape[0] if not image else 0]),
    }
    for q in QUANTILES:
        out[f"q{round(q * 100):02d}"] = np.quantile(sample, q, axis=0).reshape(shape)
    return out


def _pool(parts: list[dict[str, np.ndarray]], counts: list[int]) -> dict[str, np.ndarray]:
    """Dataset statistics from per-episode ones, as LeRobot aggregates them: exact min, max, mean
    and std; quantiles averaged with the episodes' frame counts as weights."""
    w = np.asarray(counts, np.float64)
    w = w / w.sum()
    mean = sum(wi * p["mean"] for wi, p in zip(w, parts, strict=True))
    var = sum(wi * (p["std"] ** 2 + (p["mean"] - mean) ** 2) for wi, p in zip(w, parts, strict=True))
    out = {
        "min": np.min([p["min"] for p in parts], axis=0),
        "max": np.max([p["max"] for p in parts], axis=0),
        "mean": mean,
        "std": np.sqrt(var),
        "count": np.array([int(sum(counts))]),
    }
    for q in QUANTILES:
        k = f"q{round(q * 100):02d}"
        out[k] = sum(wi * p[k] for wi, p in zip(w, parts, strict=True))
    return out


class _VideoWriter:
    """One camera's mp4 files: episodes appended to the current file, a new file when it passes the
    size limit; the frame at row t of an episode is at its from_timestamp + t / fps."""

    def __init__(
        self, root: Path, key: str, shape: tuple[int, ...], fps: float, vcodec: str, crf: int
    ) -> None:
        self.av = need("av")
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its settings to stderr otherwise
        self.root, self.key, self.fps, self.vcodec, self.crf = root, key, fps, vcodec, crf
        self.h, self.w = int(shape[0]), int(shape[1])
        if self.h % 2 or self.w % 2:
            raise StoreError(
                f"camera {key} is {self.h}x{self.w}; the yuv420p videos LeRobot reads need even sizes "
                "(crop or resize the camera first)"
            )
        self.file = -1
        self.container: Any = None
        self.frames_in_file = 0

    def path(self, chunk: int, file: int) -> Path:
        return self.root / f"videos/{self.key}/chunk-{chunk:03d}/file-{file:03d}.mp4"

    def _open(self) -> None:
        from fractions import Fraction

        self.close()
        self.file += 1
        path = self.path(*divmod(self.file, CHUNKS_SIZE))
        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = self.av.open(str(path), "w")
        encoder = VCODECS[self.vcodec][0]
        options = {"crf": str(self.crf), "g": "2"}
        if self.vcodec == "hevc":
            options = {"crf": str(self.crf), "x265-params": "log-level=error:keyint=2"}
        rate = Fraction(self.fps).limit_denominator(1001)
        self.stream = self.container.add_stream(encoder, rate=rate, options=options)
        self.stream.width, self.stream.height, self.stream.pix_fmt = self.w, self.h, "yuv420p"
        self.stream.time_base = 1 / rate
        self.frames_in_file = 0
        self.current = path

    def episode(self, frames: np.ndarray) -> tuple[int, int, float, float]:
        """Encode one episode's (N, H, W, C) frames; (chunk, file, from_timestamp, to_timestamp)."""
        # (An encoder with a delay writes nothing, not even the file, until it has frames to give.)
        full = self.container is not None and self.current.exists()
        if self.container is None or full and self.current.stat().st_size > VIDEO_FILE_MB * 2**20:
            self._open()
        start = self.frames_in_file
        for img in frames:
            if img.ndim == 2 or img.shape[-1] == 1:
                img = np.repeat(img.reshape(self.h, self.w, 1), 3, axis=2)
            frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(img[..., :3]), format="rgb24")
            frame.pts = self.frames_in_file
            self.container.mux(self.stream.encode(frame))
            self.frames_in_file += 1
        chunk, file = divmod(self.file, CHUNKS_SIZE)
        return chunk, file, start / self.fps, self.frames_in_file / self.fps

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode())
            self.container.close()
            self.container = None


def export_lerobot(
    src: str | Path | DemoStore,
    dst: str | Path,
    *,
    vcodec: str = "h264",
    crf: int | None = None,
    progress: bool = True,
) -> Path:
    """Write a store as a LeRobot v3.0 dataset directory at ``dst`` (must not exist).

    Low-dimensional features go to the data parquet files as float32 lists (``state`` ->
    ``observation.state``, ``env_state`` -> ``observation.environment_state``, other keys
    ``observation.<key>``), cameras to mp4 videos (``vcodec``: h264, which every LeRobot install and
    video player decodes; av1, LeRobot's own default; hevc), tasks to ``meta/tasks.parquet``, and
    ``meta/stats.json`` and the episodes table with LeRobot's statistics. LeRobot's timestamps are
    nominal (frame index / fps): the measured ones go to the ``imitation.timestamp`` column, and the
    log says how far they were from nominal. Written to a temporary sibling, renamed when complete.
    """
    pa = need("pyarrow")
    pq = need("pyarrow.parquet")
    store = src if isinstance(src, DemoStore) else DemoStore.open(src)
    dst = Path(dst)
    if vcodec not in VCODECS:
        raise ConfigError(f"--vcodec {vcodec!r} is not one of {', '.join(VCODECS)}")
    crf = DEFAULT_CRF[vcodec] if crf is None else int(crf)
    if dst.exists():
        raise StoreError(f"{dst} already exists; choose another output path or remove it first")
    if store.n_episodes == 0:
        raise StoreError(f"{store.path} holds no episodes; nothing to export")
    fps = float(store.fps)
    names = export_names(store)
    cams = [k for k in names if store.features[k].kind == "image"]
    values = [k for k in names if k not in cams]
    work = dst.with_name(f".{dst.name}.exporting-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    (work / "meta").mkdir(parents=True)
    writers: dict[str, _VideoWriter] = {}
    tasks: dict[str, int] = {}
    episodes: list[dict[str, Any]] = []
    ep_stats: list[dict[str, dict[str, np.ndarray]]] = []
    rows: list[Any] = []
    data_file, data_bytes, index = 0, 0, 0
    worst_jitter = 0.0
    try:
        writers = {k: _VideoWriter(work, names[k], store.features[k].shape, fps, vcodec, crf) for k in cams}
        for e in tqdm(range(store.n_episodes), desc=f"export {store.path.name}", unit="ep",
                      disable=None if progress else True):  # fmt: skip
            start, end = store.episode_range(e)
            n = end - start
            meta = store.episode_meta(e)
            task = meta["task"] or "unknown"
            t_idx = tasks.setdefault(task, len(tasks))
            ts = store.read(TIMESTAMP, start, end)
            nominal = np.arange(n) / fps
            worst_jitter = max(worst_jitter, float(np.max(np.abs((ts - ts[0]) - nominal))))
            columns: dict[str, Any] = {}
            stats: dict[str, dict[str, np.ndarray]] = {}
            for k in values:
                x = store.read(k, start, end)
                flat = x.reshape(n, -1).astype(np.float32 if x.dtype.kind == "f" else x.dtype)
                width = flat.shape[1]
                arr = pa.array(flat.reshape(-1))
                # LeRobot reads a feature of shape [1] as a plain value, wider ones as lists.
                columns[names[k]] = arr if width == 1 else pa.FixedSizeListArray.from_arrays(arr, width)
                stats[names[k]] = _stats(flat, image=False)
            columns["timestamp"] = pa.array(nominal.astype(np.float32))
            columns["frame_index"] = pa.array(np.arange(n, dtype=np.int64))
            columns["episode_index"] = pa.array(np.full(n, e, np.int64))
            columns["index"] = pa.array(np.arange(index, index + n, dtype=np.int64))
            columns["task_index"] = pa.array(np.full(n, t_idx, np.int64))
            columns[MEASURED] = pa.array(ts.astype(np.float64))
            table = pa.table(columns)
            if rows and data_bytes + table.nbytes > DATA_FILE_MB * 2**20:
                _write_data(pq, pa, work, data_file, rows)
                data_file, data_bytes, rows = data_file + 1, 0, []
            rows.append(table)
            data_bytes += table.nbytes
            record: dict[str, Any] = {
                "episode_index": e, "tasks": [task], "length": n,
                "data/chunk_index": data_file // CHUNKS_SIZE, "data/file_index": data_file % CHUNKS_SIZE,
                "dataset_from_index": index, "dataset_to_index": index + n,
            }  # fmt: skip
            for k in cams:
                frames = store.read(k, start, end)
                chunk, file, t0, t1 = writers[k].episode(frames)
                name = names[k]
                record |= {f"videos/{name}/chunk_index": chunk, f"videos/{name}/file_index": file,
                           f"videos/{name}/from_timestamp": t0, f"videos/{name}/to_timestamp": t1}  # fmt: skip
                stats[name] = _stats(frames if frames.ndim == 4 else frames[..., None], image=True)
                stats[name]["count"] = np.array([n])
            record |= {"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0}
            for field_ in META_COLUMNS:
                v = meta.get(field_)
                record[f"imitation/{field_}"] = json.dumps(v) if field_ == "info" else v
            episodes.append(record)
            ep_stats.append(stats)
            index += n
        if rows:
            _write_data(pq, pa, work, data_file, rows)
        for w in writers.values():
            w.close()
        _write_episodes(pq, pa, work, episodes, ep_stats)
        _write_tasks(pq, pa, work, tasks)
        counts = [r["length"] for r in episodes]
        dataset_stats = {
            name: {k: v.tolist() for k, v in _pool([s[name] for s in ep_stats], counts).items()}
            for name in ep_stats[0]
        }
        (work / "meta/stats.json").write_text(json.dumps(dataset_stats, indent=1))
        info = _info(store, names, cams, fps, vcodec, index, len(tasks), data_file)
        (work / "meta/info.json").write_text(json.dumps(info, indent=4))
        if dst.exists():
            raise StoreError(f"{dst} appeared while the export was running; nothing was written there")
        os.rename(work, dst)
    except BaseException:
        for w in writers.values():
            with contextlib.suppress(Exception):
                w.close()
        shutil.rmtree(work, ignore_errors=True)
        raise
    log.info(
        "exported %d episode(s), %d frame(s) to %s; LeRobot's timestamps are nominal (frame index / %g): "
        "the measured ones differed from them by up to %.3f ms and are kept in the column %s, which "
        "LeRobot does not read",
        store.n_episodes, index, dst, fps, worst_jitter * 1e3, MEASURED,
    )  # fmt: skip
    return dst


def _write_data(pq: Any, pa: Any, root: Path, file: int, tables: list[Any]) -> None:
    chunk, f = divmod(file, CHUNKS_SIZE)
    path = root / f"data/chunk-{chunk:03d}/file-{f:03d}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(tables), path)


def _write_episodes(pq: Any, pa: Any, root: Path, episodes: list[dict], stats: list[dict]) -> None:
    table = {k: [r[k] for r in episodes] for k in episodes[0]}
    for name in stats[0]:
        for stat in stats[0][name]:
            table[f"stats/{name}/{stat}"] = [s[name][stat].tolist() for s in stats]
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(table), path)


def _write_tasks(pq: Any, pa: Any, root: Path, tasks: dict[str, int]) -> None:
    """meta/tasks.parquet as LeRobot reads it with pandas: the task text is the frame's index."""
    texts = list(tasks)
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
             "numpy_type": "object", "metadata": None},
        ],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.0",
    }  # fmt: skip
    table = pa.table({"task_index": pa.array([tasks[t] for t in texts], pa.int64()),
                      "__index_level_0__": pa.array(texts, pa.string())})  # fmt: skip
    table = table.replace_schema_metadata({"pandas": json.dumps(pandas_meta)})
    pq.write_table(table, root / "meta/tasks.parquet")


def _info(
    store: DemoStore, names: dict[str, str], cams: list[str], fps: float, vcodec: str, frames: int,
    n_tasks: int, data_files: int,
) -> dict[str, Any]:  # fmt: skip
    robot = dict(store.attrs.get("robot") or {})
    features: dict[str, Any] = {}
    for key, name in names.items():
        f = store.features[key]
        if key in cams:
            h, w = f.shape[:2]
            features[name] = {
                "dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
                "info": {"video.height": h, "video.width": w, "video.codec": VCODECS[vcodec][1],
                         "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": _fps_value(fps),
                         "video.channels": 3, "has_audio": False},
            }  # fmt: skip
            continue
        width = int(np.prod(f.shape)) if f.shape else 1
        feat_names = list(f.names) if f.names and len(f.names) == width else None
        if feat_names is None and key == "action":
            feat_names = robot.get("action_names") or robot.get("joint_names")
        if feat_names is None and key == "state":
            feat_names = robot.get("state_names")
        dtype = "float32" if f.np_dtype.kind == "f" else f.np_dtype.name
        features[name] = {"dtype": dtype, "shape": [width],
                          "names": list(feat_names) if feat_names and len(feat_names) == width else None}  # fmt: skip
    features[MEASURED] = {"dtype": "float64", "shape": [1], "names": None}
    for name, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                        ("index", "int64"), ("task_index", "int64")):  # fmt: skip
        features[name] = {"dtype": dtype, "shape": [1], "names": None}
    return {
        "codebase_version": "v3.0",
        "robot_type": str(robot.get("name") or robot.get("type") or "unknown"),
        "total_episodes": store.n_episodes,
        "total_frames": frames,
        "total_tasks": n_tasks,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILE_MB,
        "video_files_size_in_mb": VIDEO_FILE_MB,
        "fps": _fps_value(fps),
        "splits": {"train": f"0:{store.n_episodes}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
        if cams
        else None,
        "features": features,
    }
