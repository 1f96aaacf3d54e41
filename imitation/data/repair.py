"""``imitation data repair``: bring a store back to a clean state, touching only what is proven.

Without options, repair changes nothing a commit record vouches for:

- it finishes or undoes an in-place edit that was interrupted, and removes what interrupted
  copies and creations left beside the store (``edit.recover_swap``);
- it drops the uncommitted tail of an interrupted recording: frames past the last committed
  end, metadata entries past the last committed episode, a trailing end never written — only
  once the record has been checked (``store.check_record``), since past a damaged record
  nothing is provably uncommitted;
- it removes temporary files of interrupted writes and recomputes the statistics cache when it
  is missing, stale or fails its digest;
- when the store's last validation found damage, it validates again and reports.

It refuses, writing nothing, a store whose commit record is inconsistent or whose committed data
is damaged. ``force=True`` (``--force``) then rebuilds the store from what can be proven: it
takes the episode boundaries from ``meta/episode_ends`` or, where that is damaged, from the
per-episode ``length`` column (format 2), keeps each episode whose timestamps increase, whose
frames all read back (checksums) and whose metadata decodes, and writes those into a new store
swapped in place. The original is never modified: it is kept whole beside the new one as
``<name>.backup-<UTC time>-<pid>``, so undoing a forced repair is a rename.

``upgrade=True`` (``--upgrade``) rewrites a format-1 store as the current format (a checksum on
every chunk, the ``length`` column), episode by episode, frames and metadata bit-exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imitation.data.edit import _write_store, backup_path_for, recover_swap, replace_in_place
from imitation.data.schema import TIMESTAMP
from imitation.data.shards import frame_reader
from imitation.data.store import (
    FORMAT_VERSION,
    DemoStore,
    committed_count,
    open_for_repair,
    timestamp_problems,
)
from imitation.errors import StoreDamage, StoreError


@dataclass
class Plan:
    """What a forced rebuild keeps: episode boundaries and the episodes that read back whole."""

    source: str  # which record the boundaries come from
    ends: np.ndarray  # (E,) cumulative frame counts of every candidate episode
    keep: list[int] = field(default_factory=list)
    removed: dict[int, str] = field(default_factory=dict)  # episode -> why

    @property
    def kept_frames(self) -> int:
        lengths = np.diff(self.ends, prepend=0)
        return int(lengths[self.keep].sum()) if self.keep else 0


def _raw(store: DemoStore, name: str, n: int | None = None) -> np.ndarray | None:
    """An array as stored, missing chunks read as fill values (for finding candidates only: every
    candidate is verified afterwards); None when it cannot be read at all."""
    rows = store._committed_rows
    store._committed_rows = {}
    try:
        return store._load(name, slice(0, n))
    except StoreError:
        return None
    finally:
        store._committed_rows = rows


def _candidates(store: DemoStore) -> list[tuple[str, np.ndarray]]:
    """Episode boundaries to try: the longest readable prefix of ``episode_ends``, and (format 2)
    the cumulative sum of the ``length`` column."""
    data_frames = []
    for key in store.features:
        try:
            data_frames.append(int(store._group["data"][key].shape[0]))
        except Exception:
            return []  # a feature array that cannot be opened: nothing can be copied
    limit_frames = min(data_frames, default=0)
    meta_entries = []
    for name in store.fields:
        try:
            meta_entries.append(int(store._group["meta"][name].shape[0]))
        except Exception:
            return []
    limit_eps = min(meta_entries, default=0)
    out = []
    ends = _raw(store, "meta/episode_ends")
    if ends is not None:
        ends = ends.astype(np.int64)
        out.append(("meta/episode_ends", ends[: committed_count(ends, limit_frames, limit_eps)]))
    if "length" in store.fields:
        lengths = _raw(store, "meta/length", limit_eps)
        if lengths is not None:
            lengths = lengths.astype(np.int64)
            empty = np.flatnonzero(lengths <= 0)  # a fill value: an entry never written
            lengths = lengths[: empty[0]] if empty.size else lengths
            from_lengths = np.cumsum(lengths)
            out.append(
                ("meta/length", from_lengths[: int(np.searchsorted(from_lengths, limit_frames, "right"))])
            )
    return out


def _bad_frames(store: DemoStore, n_frames: int) -> dict[str, list[tuple[int, int, str]]]:
    """Per feature, the frame ranges [lo, hi) below ``n_frames`` that do not read back, and why.

    Images are narrowed down to single frames (each is its own chunk); other arrays fail a whole
    chunk at a time, as they are stored.
    """
    bad: dict[str, list[tuple[int, int, str]]] = {}
    for key, feat in store.features.items():
        step = feat.file_frames()
        read = frame_reader(store, key) if feat.sharded else None
        for lo in range(0, n_frames, step):
            hi = min(lo + step, n_frames)
            try:
                block = read(np.arange(lo, hi)) if read is not None else store.read(key, lo, hi)
            except Exception as e:
                if read is None:
                    bad.setdefault(key, []).append((lo, hi, str(e)))
                    continue
                for f in range(lo, hi):
                    try:
                        read(np.array([f]))
                    except Exception as e1:
                        bad.setdefault(key, []).append((f, f + 1, str(e1)))
                continue
            if block.dtype.kind == "f" and feat.kind != "image":
                rows = np.flatnonzero(~np.isfinite(block.reshape(block.shape[0], -1)).all(axis=1))
                for r in rows:
                    bad.setdefault(key, []).append((lo + int(r), lo + int(r) + 1, "a non-finite value"))
    return bad


def plan_rebuild(store: DemoStore) -> Plan | None:
    """The best-proven set of episodes of a store opened with ``check=False`` (None: nothing)."""
    plans = []
    for source, ends in _candidates(store):
        plan = Plan(source, ends)
        if not ends.size:
            plans.append(plan)
            continue
        store._set_committed(ends)
        n = int(ends.size)
        starts = np.concatenate([[0], ends[:-1]])
        lengths = _raw(store, "meta/length", n) if "length" in store.fields else None
        bad = _bad_frames(store, int(ends[-1]))
        for e in range(n):
            lo, hi = int(starts[e]), int(ends[e])
            hit = [(k, r) for k, ranges in bad.items() for r in ranges if r[0] < hi and r[1] > lo]
            why = None
            if lengths is not None and (lengths.size <= e or int(lengths[e]) != hi - lo):
                why = f"meta/length does not give it {hi - lo} frames"
            elif hit:
                key, (a, b, reason) = hit[0]
                why = f"{key} frames {a}..{b - 1} do not read back ({reason})"
            elif timestamp_problems(store.read(TIMESTAMP, lo, hi), np.array([hi - lo])):
                why = "its timestamps do not increase (a wrong boundary)"
            else:
                try:
                    store.episode_meta(e)
                except (StoreError, ValueError) as err:
                    why = f"its metadata does not read back ({err})"
            if why:
                plan.removed[e] = why
            else:
                plan.keep.append(e)
        plans.append(plan)
    if not plans:
        return None
    # The record that proves the most frames; on a tie, episode_ends (the commit record itself).
    return max(plans, key=lambda p: (p.kept_frames, p.source == "meta/episode_ends"))


def repair(
    path: str | Path, *, force: bool = False, upgrade: bool = False, progress: bool = False
) -> tuple[list[str], bool]:
    """Repair the store at ``path``; returns (what was done, line by line; whether it is clean).

    Raises ``StoreDamage`` (nothing written) for a damaged store without ``force``.
    """
    path = Path(path)
    done = recover_swap(path)
    store = DemoStore.open(path, check=False)
    if store.problems and not force:
        raise StoreDamage(
            f"{path}: the commit record is inconsistent, so nothing past it can be proven uncommitted and "
            f"nothing was written: {'; '.join(store.problems)}. 'imitation data repair --force {path}' rebuilds "
            "the store from the episodes that can be proven and keeps the original whole as a backup"
        )
    rebuilt = False
    if force:
        lines, rebuilt = _forced_rebuild(path, progress=progress)
        done += lines
    elif store.version < FORMAT_VERSION and upgrade:
        done += _upgrade(path, progress=progress)
    elif store.version < FORMAT_VERSION:
        done.append(
            f"format {store.version}: no chunk checksums; 'imitation data repair --upgrade {path}' adds them"
        )
    store, report = open_for_repair(path)
    done.append(str(report) if report else "no uncommitted tail, no temporary files")
    if store.n_episodes:
        fresh = store.has_fresh_stats()
        store.stats(progress=progress)
        done.append("statistics: " + ("already up to date" if fresh else "computed and cached"))
    clean = True
    if rebuilt or _validation_failed(store):
        from imitation.data.check import validate

        report = validate(store, progress=progress)
        clean = report.ok
        done.append(
            ("validated the rebuilt store: OK" if rebuilt else "validated again: OK")
            if clean
            else f"validated again: still damaged ({report.errors[0]}); 'imitation data repair --force {path}' "
            "rebuilds it from the episodes that read back, keeping the original as a backup"
        )
    elif store.n_episodes and store.last_validation() is None:
        done.append(
            f"its frames were not decoded here, nor validated since the store last changed: 'imitation data "
            f"validate {path}' checks every frame"
        )
    done.append(f"{store.n_episodes} committed episode(s), {store.n_frames} frame(s)")
    return done, clean


def _validation_failed(store: DemoStore) -> bool:
    v = store.last_validation()
    return v is not None and not v.get("ok", True)


class _NothingToRebuild(Exception):
    """Every committed episode reads back whole: a forced rebuild would change nothing."""


def _forced_rebuild(path: Path, *, progress: bool) -> tuple[list[str], bool]:
    """Rebuild ``path`` from ``plan_rebuild``'s episodes, keeping the original as a backup; or
    nothing, when every committed episode of a consistent record reads back whole. Returns what
    was done and whether the store was rebuilt."""
    done: list[str] = []
    backup = backup_path_for(path)

    def build(tmp: Path) -> None:
        store = DemoStore.open(path, check=False)  # now that the writer lock is held
        committed = store.n_episodes
        plan = plan_rebuild(store)
        if plan is None or not plan.keep:
            raise StoreDamage(
                f"{path}: no episode can be proven whole (the commit record and the length column give nothing "
                "that reads back); the store was left as it is"
            )
        if not store.problems and not plan.removed and len(plan.keep) == committed:
            raise _NothingToRebuild
        store._set_committed(plan.ends)
        _write_store(tmp, [(store, plan.keep)], progress=progress)
        _keep_created(store, tmp)
        done.append(
            f"rebuilt from {plan.source}: kept {len(plan.keep)} episode(s), {plan.kept_frames} frame(s)"
        )
        done.extend(f"removed episode {e}: {why}" for e, why in plan.removed.items())

    try:
        replace_in_place(path, build, backup=backup)
    except _NothingToRebuild:
        return ["--force: every committed episode reads back whole; nothing to rebuild"], False
    done.append(
        f"the original store is kept whole at {backup} (to undo: remove {path.name} and rename "
        f"{backup.name} to {path.name})"
    )
    return done, True


def _upgrade(path: Path, *, progress: bool) -> list[str]:
    """Rewrite every committed episode into a store of the current format."""
    counts: list[int] = []

    def build(tmp: Path) -> None:
        store = DemoStore.open(path)
        _write_store(tmp, [(store, range(store.n_episodes))], progress=progress)
        _keep_created(store, tmp)
        counts.append(store.n_episodes)

    replace_in_place(path, build)
    return [f"upgraded to format {FORMAT_VERSION}: {counts[0]} episode(s) rewritten with checksums"]


def _keep_created(src: DemoStore, new: Path) -> None:
    """A rewritten store keeps the creation time of the store it replaces."""
    if src.attrs.get("created"):
        DemoStore.open(new)._set_attr("created", src.attrs["created"])
