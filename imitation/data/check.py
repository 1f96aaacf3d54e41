"""Integrity check (``imitation data validate``) and summary (``imitation data info``) of a demo store."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from imitation.data.durable import TMP_SUFFIX
from imitation.data.schema import FINITE_KINDS
from imitation.data.shards import frame_reader
from imitation.data.store import DemoStore
from imitation.errors import StoreDamage


@dataclass
class Report:
    """Problems found by ``validate``: errors make the store unusable as is, warnings do not."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _leftovers(store: DemoStore) -> list[str]:
    """Directories beside the store that interrupted edits, copies or creations left behind."""
    from imitation.data.leftovers import interrupted_edit

    return [p.name for p in interrupted_edit(store.path)]


def _compare_stats(cached: Any, computed: dict[str, Any], where: str = "") -> str | None:
    """The first difference between cached and recomputed statistics, or None."""
    if isinstance(cached, dict) and isinstance(computed, dict):
        if sorted(cached) != sorted(computed):
            return f"{where or 'statistics'}: entries {sorted(cached)} cached, {sorted(computed)} computed"
        for k in computed:
            diff = _compare_stats(cached[k], computed[k], f"{where}.{k}" if where else k)
            if diff:
                return diff
        return None
    try:
        a, b = np.asarray(cached, dtype=np.float64), np.asarray(computed, dtype=np.float64)
        same = a.shape == b.shape and np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True)
    except (TypeError, ValueError):
        same = cached == computed
        a, b = cached, computed
    if same:
        return None
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape and a.size:
        i = int(np.argmax(np.abs(a - b).reshape(-1)))
        return f"{where}[{i}]: cached {a.reshape(-1)[i]:.6g}, computed {b.reshape(-1)[i]:.6g}"
    return f"{where}: cached {cached!r}, computed {computed!r}"


def _check_meta(store: DemoStore, report: Report) -> None:
    """Decode every per-episode metadata entry and check what its type allows."""
    n = store.n_episodes
    for name in store.fields:
        try:
            values = store._load(f"meta/{name}", slice(0, n))
        except StoreDamage as e:
            report.errors.append(str(e))
            continue
        if name == "info":
            for e, text in enumerate(values):
                try:
                    ok = isinstance(json.loads(str(text) or "{}"), dict)
                except ValueError:
                    ok = False
                if not ok:
                    report.errors.append(f"meta/info of episode {e} is not a JSON object: {str(text)[:60]!r}")
                    break
        elif values.dtype.kind == "f":
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                report.errors.append(f"meta/{name} is not finite for episodes {bad[:5].tolist()}")
        if name in ("duration_s", "dropped_frames", "length"):
            bad = np.flatnonzero(values < 0)
            if bad.size:
                report.errors.append(f"meta/{name} is negative for episodes {bad[:5].tolist()}")


def validate(store: DemoStore, *, progress: bool | None = None, record: bool = True) -> Report:
    """Check everything a reader relies on, decoding every committed frame and metadata entry.

    ``store`` should be opened with ``check=False`` so that a damaged commit record is reported
    here rather than refused at opening. Statistics cached in the store are recomputed and
    compared. With ``record`` the result is written into the store's attrs, where training looks
    before it uses the store (``DemoStore.require_usable``).
    """
    report = Report()
    report.errors += [f"commit record: {p}" for p in store.problems]
    if store.version < 2:
        report.warnings.append(
            f"format {store.version}: its chunks carry no checksums, so damage inside a chunk can go unnoticed; "
            f"'imitation data repair --upgrade {store.path}' adds them"
        )
    if not store.problems:
        if store.n_episodes < store._stored_ends:
            report.warnings.append(
                f"{store._stored_ends - store.n_episodes} episode_ends entr(ies) past the committed prefix "
                "(an interrupted commit); 'imitation data repair' drops them"
            )
        if store.uncommitted_frames > 0:
            report.warnings.append(
                f"{store.uncommitted_frames} uncommitted frame(s) after the last episode (an interrupted or "
                "ongoing recording); 'imitation data repair' drops them"
            )
    temps = list(store.path.rglob(f"*{TMP_SUFFIX}"))
    if temps:
        report.warnings.append(
            f"{len(temps)} temporary file(s) of interrupted writes; 'imitation data repair' removes them"
        )
    left = _leftovers(store)
    if left:
        report.warnings.append(
            f"left beside the store by interrupted runs: {', '.join(left)}; 'imitation data repair' cleans them up"
        )
    _check_meta(store, report)

    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=store.n_frames * len(store.features), desc="validate", unit="frame", disable=not show)
    for key, feat in store.features.items():
        step = feat.file_frames()
        read = frame_reader(store, key) if feat.sharded else None
        for lo in range(0, store.n_frames, step):
            hi = min(lo + step, store.n_frames)
            try:
                block = read(np.arange(lo, hi)) if read is not None else store.read(key, lo, hi)
            except Exception as e:  # any decode failure is a finding, not a crash
                report.errors.append(f"{key}: frames {lo}..{hi - 1} do not read back: {e}")
                bar.update(hi - lo)
                continue
            if feat.kind in FINITE_KINDS and block.dtype.kind == "f":
                bad = np.flatnonzero(~np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1))
                if bad.size:
                    report.errors.append(f"{key}: non-finite values at frames {(bad[:5] + lo).tolist()}")
            bar.update(hi - lo)
    bar.close()

    if store.n_episodes and not report.errors:
        cached = store.attrs.get("stats")
        fresh = isinstance(cached, dict) and cached.get("fingerprint") == store.fingerprint()
        if not fresh:
            report.warnings.append(
                "no statistics cached for the current content; 'imitation data repair' computes them"
            )
        else:
            diff = _compare_stats(cached.get("features"), store.compute_stats(progress=show))
            if diff is None and not store.has_fresh_stats():
                diff = "they do not match their digest (edited by hand?)"
            if diff:
                report.errors.append(
                    f"the cached statistics differ from the data ({diff}); 'imitation data repair' recomputes them"
                )
    if record and not store.problems:
        store.record_validation(report.errors)
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
        "uncommitted_frames": 0 if store.problems else store.uncommitted_frames,
        "checksums": store.checksums,
        "problems": store.problems,
        "last_validation": store.last_validation(),
        "files": n_files,
        "disk_bytes": total_bytes,
        "files_per_hour": n_files / (duration_s / 3600) if duration_s else None,
        "features": feats,
    }
    if with_stats and store.n_episodes and not store.problems:
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
        robot = d["robot"]
        names = robot.get("joint_names") or robot.get("action_names") or ""
        lines.append(f"robot      {robot.get('name', '?')}  joints {names}")
        if robot.get("camera_sources"):
            sources = ", ".join(f"{cam} from {src}" for cam, src in robot["camera_sources"].items())
            lines.append(f"cameras    {sources}")
        if robot.get("units"):
            lines.append(
                f"units      {robot['units']} (its calibrated motor values, not radians; "
                "'imitation data units' converts them)"
            )
    if d["uncommitted_frames"]:
        lines.append(f"WARNING    {d['uncommitted_frames']} uncommitted frame(s) after the last episode")
    for problem in d["problems"]:
        lines.append(f"DAMAGED    {problem}")
    if not d["checksums"]:
        lines.append("WARNING    no chunk checksums (format 1): 'imitation data repair --upgrade' adds them")
    v = d["last_validation"]
    lines.append(
        "validated  never, since the last change"
        if v is None
        else f"validated  {v['at']}: " + ("OK" if v["ok"] else f"FAILED ({(v.get('errors') or ['?'])[0]})")
    )
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
