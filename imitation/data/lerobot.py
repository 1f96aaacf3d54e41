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

from imitation.data.schema import TIMESTAMP, Feature, SchemaError, check_key
from imitation.data.store import DemoStore, EpisodeWriter, StoreError
from imitation.errors import ConfigError
from imitation.paths import inside

log = logging.getLogger(__name__)

EXTRA = "formats"  # pip install 'imitation[formats]'
# Columns every LeRobot dataset has that are bookkeeping, not features.
BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")
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
            episodes.append(Episode(e, int(row["length"]), tasks, data_file, rows, videos))
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
    for n, line in enumerate(path.read_text().splitlines(), 1):
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
    from imitation.data.convert import kind_for

    names = [k for k in ds.features if k not in BOOKKEEPING]
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
        self._videos: dict[tuple[str, Path], VideoReader] = {}

    def _table(self, path: Path) -> Any:
        if self._file is None or self._file[0] != path:
            self._file = (path, _read_parquet(self.pq, path))
        return self._file[1]

    def episode(self, ep: Episode) -> tuple[dict[str, Any], np.ndarray, list[int]]:
        """(values per feature, timestamps, task_index per frame) of one episode; cameras as
        iterators of frames."""
        table = self._table(ep.data_file)
        where = ep.data_file
        for col in ["episode_index", "timestamp"] + [c.source for c in self.columns if c.kind != "video"]:
            if col not in table.column_names:
                raise StoreError(f"{where} has no column {col!r}; the dataset's data file is incomplete")
        episode_col = table.column("episode_index").to_numpy()
        rows = np.flatnonzero(episode_col == ep.index)
        if rows.size != ep.length:
            raise StoreError(
                f"{where} holds {rows.size} row(s) of episode {ep.index}, but the episode table says "
                f"{ep.length}; the dataset is inconsistent"
            )
        part = table.take(rows)
        if "frame_index" in part.column_names:
            order = np.argsort(part.column("frame_index").to_numpy(), kind="stable")
            part = part.take(order)
        ts = part.column("timestamp").to_numpy().astype(np.float64)
        task_idx = part.column("task_index").to_pylist() if "task_index" in part.column_names else []
        values: dict[str, Any] = {}
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
                w.start_episode(
                    task=text,
                    operator=operator or "",
                    info={
                        "source": "lerobot",
                        "source_path": str(src.resolve()),
                        "source_episode": ep.index,
                        "source_fingerprint": fingerprint,
                    },  # fmt: skip
                    start_time=float(ep.rows[0] if ep.rows else 0) / ds.fps + ep.index * 1e-6,
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
                w.save_episode(outcome=outcome or "unknown")
            bar.close()
    finally:
        frames.close()
    if dst.exists():
        raise StoreError(f"{dst} appeared while the import was running; the import is kept at {work}")
    os.rename(work, dst)
    log.info("imported %d episode(s) from %s into %s", len(ds.episodes), src, dst)
    return DemoStore.open(dst)


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
        for line in v2.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                out[int(row["task_index"])] = str(row["task"])
    return out


def _task_of(task_idx: list[int], tasks: dict[int, str]) -> str:
    seen = list(dict.fromkeys(tasks.get(int(i), "") for i in task_idx))
    return "; ".join(t for t in seen if t)
