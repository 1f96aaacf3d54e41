"""Integrity check (``imitation data validate``) and summary (``imitation data info``) of a demo store."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from imitation.data.durable import TMP_SUFFIX
from imitation.data.schema import FINITE_KINDS, TIMESTAMP
from imitation.data.shards import frame_reader, shard_key
from imitation.data.store import EPISODE_FIELDS, DemoStore


@dataclass
class Report:
    """Problems found by ``validate``: errors make the store unusable as is, warnings do not."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _chunk_files_present(store: DemoStore, key: str, report: Report) -> None:
    """zarr reads a missing chunk file as fill values without complaint, so look for the files.

    (Image shards need no such check: the shard reader refuses missing files and frames.)
    """
    n = store.features[key].file_frames()
    ndim = len(store.features[key].shape) + 1
    for i in range((store.n_frames + n - 1) // n):
        path = store.path / shard_key(key, i, ndim)
        if not path.is_file():
            report.errors.append(f"{key}: file {path.relative_to(store.path)} (frames {i * n}..) is missing")


def validate(store: DemoStore, *, progress: bool | None = None) -> Report:
    """Check everything a reader relies on; decodes every committed frame of every feature."""
    report = Report()
    ends = store.episode_ends
    meta = store._group["meta"]
    stored_ends = np.asarray(meta["episode_ends"][:])
    if store.n_episodes < stored_ends.size:
        report.warnings.append(
            f"{stored_ends.size - store.n_episodes} episode_ends entr(ies) past the committed prefix "
            "(an interrupted commit); 'imitation data repair' drops them"
        )
    if store.uncommitted_frames > 0:
        report.warnings.append(
            f"{store.uncommitted_frames} uncommitted frame(s) after the last episode (an interrupted or "
            "ongoing recording); 'imitation data repair' drops them"
        )
    for name in EPISODE_FIELDS:
        if meta[name].shape[0] < store.n_episodes:
            report.errors.append(
                f"meta/{name} has {meta[name].shape[0]} entries for {store.n_episodes} episodes"
            )
    temps = list(store.path.rglob(f"*{TMP_SUFFIX}"))
    if temps:
        report.warnings.append(
            f"{len(temps)} temporary file(s) of interrupted writes; 'imitation data repair' removes them"
        )

    for key, feat in store.features.items():
        if not feat.sharded:
            _chunk_files_present(store, key, report)

    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=store.n_frames * len(store.features), desc="validate", unit="frame", disable=not show)
    for key, feat in store.features.items():
        step = feat.file_frames()
        arr = store.array(key)
        read = frame_reader(store, key) if feat.sharded else (lambda lo, hi, arr=arr: np.asarray(arr[lo:hi]))
        for lo in range(0, store.n_frames, step):
            hi = min(lo + step, store.n_frames)
            try:
                block = read(np.arange(lo, hi)) if feat.sharded else read(lo, hi)
            except Exception as e:  # any decode failure is a finding, not a crash
                report.errors.append(f"{key}: frames {lo}..{hi - 1} do not decode: {e!r}")
                bar.update(hi - lo)
                continue
            if feat.kind in FINITE_KINDS and block.dtype.kind == "f":
                bad = np.flatnonzero(~np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1))
                if bad.size:
                    report.errors.append(f"{key}: non-finite values at frames {(bad[:5] + lo).tolist()}")
            bar.update(hi - lo)
    bar.close()
    if store.n_frames:
        with np.errstate(invalid="ignore"):
            steps = np.diff(store.read(TIMESTAMP))  # steps[i]: frame i -> i + 1
        within = np.ones(steps.shape, dtype=bool)
        within[ends[:-1] - 1] = False  # a new episode may start at any time
        bad = np.flatnonzero(~(steps > 0) & within) + 1
        if bad.size:
            report.errors.append(
                f"timestamp does not increase within an episode at frames {bad[:5].tolist()}"
            )
    if store.n_episodes and not store.has_fresh_stats():
        report.warnings.append(
            "no statistics cached for the current content; 'imitation data repair' computes them"
        )
    return report


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def info(store: DemoStore, *, with_stats: bool = False, episodes: bool = False) -> dict[str, Any]:
    """A JSON-able summary of a store: contents, sizes, compression, files per hour, statistics."""
    n_files, total_bytes = store.files_on_disk()
    duration_s = store.n_frames / store.fps
    lengths = store.episode_lengths
    feats = {}
    for key, f in store.features.items():
        raw = f.frame_nbytes * store.n_frames
        disk = store.feature_nbytes(key)
        feats[key] = {
            "kind": f.kind,
            "shape": list(f.shape),
            "dtype": f.dtype,
            "codec": f.codec,
            "frames_per_file": f.file_frames(),
            "raw_bytes": raw,
            "disk_bytes": disk,
            "ratio": (raw / disk) if disk else None,
        }
    out: dict[str, Any] = {
        "path": str(store.path),
        "format_version": store.attrs.get("format_version"),
        "created": store.attrs.get("created"),
        "software": store.attrs.get("software"),
        "fps": store.fps,
        "robot": store.robot,
        "episodes": store.n_episodes,
        "frames": store.n_frames,
        "duration_s": duration_s,
        "episode_length": {
            "min": int(lengths.min()) if lengths.size else 0,
            "mean": float(lengths.mean()) if lengths.size else 0.0,
            "max": int(lengths.max()) if lengths.size else 0,
        },
        "uncommitted_frames": store.uncommitted_frames,
        "files": n_files,
        "disk_bytes": total_bytes,
        "files_per_hour": n_files / (duration_s / 3600) if duration_s else None,
        "features": feats,
    }
    if with_stats and store.n_episodes:
        out["stats"] = store.stats(progress=sys.stderr.isatty())
    elif store.has_fresh_stats():
        out["stats"] = store.stats(compute=False)
    if episodes:
        table = store.meta_table()
        out["episode_table"] = [
            {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in table.items()}
            for i in range(store.n_episodes)
        ]
    return out


def format_info(d: dict[str, Any]) -> str:
    """Human-readable text of ``info``'s result."""
    lines = [
        f"store      {d['path']}  (format v{d['format_version']}, created {d['created']})",
        f"episodes   {d['episodes']}   frames {d['frames']}   duration {d['duration_s']:.1f} s at {d['fps']:g} fps",
    ]
    el = d["episode_length"]
    lines.append(f"length     min {el['min']}  mean {el['mean']:.1f}  max {el['max']} frames")
    if d["robot"]:
        lines.append(f"robot      {d['robot'].get('name', '?')}  joints {d['robot'].get('joint_names', '')}")
    if d["uncommitted_frames"]:
        lines.append(f"WARNING    {d['uncommitted_frames']} uncommitted frame(s) after the last episode")
    fph = d["files_per_hour"]
    lines.append(
        f"disk       {_human_bytes(d['disk_bytes'])} in {d['files']} files"
        + (f"  ({fph:.0f} files per hour of recording)" if fph else "")
    )
    lines.append("")
    lines.append(
        f"{'feature':<20}{'kind':<8}{'shape':<16}{'dtype':<9}{'codec':<18}{'on disk':>10}{'ratio':>8}"
    )
    for key, f in d["features"].items():
        codec = f["codec"]["name"] + "".join(f" {k}={v}" for k, v in f["codec"].items() if k != "name")
        ratio = f"{f['ratio']:.1f}x" if f["ratio"] else "-"
        lines.append(
            f"{key:<20}{f['kind']:<8}{str(tuple(f['shape'])):<16}{f['dtype']:<9}{codec:<18}"
            f"{_human_bytes(f['disk_bytes']):>10}{ratio:>8}"
        )
    stats = d.get("stats")
    if stats:
        lines.append("")
        lines.append("statistics (per dimension; images per channel)")
        for key, s in stats.items():
            lines.append(f"  {key}:")
            for name in ("min", "max", "mean", "std", "q01", "q99"):
                vals = np.asarray(s[name], dtype=np.float64).ravel()
                shown = " ".join(f"{v:.4g}" for v in vals[:8]) + (" ..." if vals.size > 8 else "")
                lines.append(f"    {name:<5} {shown}")
    if "episode_table" in d:
        lines.append("")
        lines.append(f"{'ep':>4} {'length':>7} {'outcome':<10} {'seed':>7} {'operator':<12} task")
        for i, e in enumerate(d["episode_table"]):
            lines.append(
                f"{i:>4} {e['length']:>7} {e['outcome']:<10} {e['seed']:>7} {e['operator']:<12} {e['task']}"
            )
    return "\n".join(lines)
