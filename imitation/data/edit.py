"""Editing demo stores: copy, merge, split, filter and delete episodes.

An edit never changes a store's files in place. Every operation writes a complete new store into
a temporary sibling directory (``<name>.zarr.tmp-<pid>``) and renames it into place at the end,
so a crash never leaves a half-written store under the final name. Frames are copied bit-exact:
low-dimensional arrays as values, images as their stored compressed bytes (a JPEG frame is never
re-encoded), and each episode's metadata is kept as recorded (start time, duration, task,
operator, outcome, dropped frames, seed, info).

Deleting episodes in place (``delete_episodes(path, ids)``) builds the new store beside the old
one while holding the store's writer lock (so a recorder cannot append meanwhile), then swaps::

    rename <name>.zarr -> <name>.zarr.old-<pid>     (1)
    rename <name>.zarr.tmp-<pid> -> <name>.zarr     (2)
    remove <name>.zarr.old-<pid>                    (3)

A process killed between (1) and (2) leaves no store under the name; ``recover_swap(path)``
finishes such a swap (or undoes it when the new copy is not there), and every error about a
missing store here mentions it. Readers that had the store open should reopen it after an edit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from imitation.data.durable import FaultHook, fsync_dir
from imitation.data.leftovers import CREATED, CREATING, LEFTOVER, acquire_lock, interrupted_edit
from imitation.data.schema import INTERVENTION
from imitation.data.store import DemoStore, EpisodeWriter, StoreError, encoded

log = logging.getLogger(__name__)

StorePath = str | Path


# ---------------------------------------------------------------------------------------------
# Building a new store under a temporary name


def tmp_path_for(path: Path) -> Path:
    """Where a new store for ``path`` is built before it is renamed into place."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def _old_path_for(path: Path) -> Path:
    return path.with_name(f"{path.name}.old-{os.getpid()}")


def _remove_tree(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


@contextlib.contextmanager
def building(dst: StorePath) -> Iterator[Path]:
    """Yield a temporary sibling path to build a new store in; rename it to ``dst`` on success.

    Refuses an existing ``dst``. On an error (or Ctrl-C) the temporary directory is removed; a
    killed process leaves it behind under a ``.tmp-<pid>`` name, which ``recover_swap`` removes.
    """
    dst = Path(dst)
    if dst.exists():
        raise StoreError(f"{dst} already exists; choose another output path or remove it first")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(dst)
    _remove_tree(tmp)  # left by an earlier, killed process that had our pid
    stale = [p.name for p in interrupted_edit(dst) if p != tmp]
    if stale:
        log.warning(
            "%s: left over from interrupted runs: %s; recover_swap(%r) removes them",
            dst.parent,
            stale,
            str(dst),
        )
    try:
        yield tmp
        if dst.exists():
            raise StoreError(
                f"{dst} appeared while the new store was being written; nothing was written there"
            )
        os.rename(tmp, dst)
        fsync_dir(dst.parent)
    except (Exception, KeyboardInterrupt):
        _remove_tree(tmp)
        raise


def _open(path: StorePath | DemoStore) -> DemoStore:
    """Open a store; when it is missing because an in-place edit was interrupted, say how to recover."""
    if isinstance(path, DemoStore):
        return path
    try:
        return DemoStore.open(path)
    except StoreError as e:
        leftovers = interrupted_edit(path)
        if leftovers:
            names = ", ".join(p.name for p in leftovers)
            raise StoreError(
                f"{e}; an interrupted edit left {names} beside it: run "
                f"imitation.data.edit.recover_swap({str(path)!r}) ('imitation data repair') to finish or undo it"
            ) from e
        raise


def _progress(it: Any, *, desc: str, total: int, progress: bool) -> Any:
    # disable=None turns the bar off when stderr is not a terminal.
    return tqdm(it, desc=desc, total=total, unit="ep", disable=None if progress else True)


def _copy_into(
    writer: EpisodeWriter,
    src: DemoStore,
    episodes: Sequence[int],
    *,
    progress: bool,
    desc: str,
    transform: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
) -> None:
    """Append episodes of ``src`` to ``writer``: frames bit-exact, metadata as recorded; with
    ``transform``, an episode's non-image arrays pass through it first."""
    images = [k for k, f in src.features.items() if f.sharded]
    arrays = [k for k, f in src.features.items() if not f.sharded]
    for e in _progress(episodes, desc=desc, total=len(episodes), progress=progress):
        start, end = src.episode_range(e)
        meta = src.episode_meta(e)
        values = {k: src.read(k, start, end) for k in arrays}
        if transform is not None:
            values = transform(values)
        frames_bytes = {k: src.read_encoded(k, start, end) for k in images}
        writer.start_episode(
            task=meta["task"],
            operator=meta["operator"],
            seed=meta["seed"],
            info=meta["info"],
            start_time=meta["start_time"],
        )
        for i in range(end - start):
            frame: dict[str, Any] = {k: v[i] for k, v in values.items()}
            frame.update({k: encoded(b[i]) for k, b in frames_bytes.items()})
            writer.add_frame(frame)
        writer.save_episode(
            outcome=meta["outcome"], dropped_frames=meta["dropped_frames"], duration_s=meta["duration_s"]
        )


def _write_store(dst: Path, sources: Sequence[tuple[DemoStore, Sequence[int]]], *, progress: bool) -> None:
    """Write the given (store, episodes) pairs, in order, into a new store at ``dst`` (must not exist)."""
    first = sources[0][0]
    features = {k: f.to_dict() for k, f in first.features.items()}
    with EpisodeWriter(dst, features=features, fps=first.fps, robot=first.robot) as w:
        for src, episodes in sources:
            _copy_into(w, src, episodes, progress=progress, desc=f"copy {src.path.name}")


# ---------------------------------------------------------------------------------------------
# Choosing episodes


def check_ids(store: DemoStore, ids: Sequence[int], *, what: str = "episode ids") -> list[int]:
    """Validate episode ids against a store: integers in 0..n-1, each at most once."""
    n = store.n_episodes
    out: list[int] = []
    seen: set[int] = set()
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int | np.integer):
            raise StoreError(f"{what}: {i!r} is not an integer episode index; use indices 0..{n - 1}")
        i = int(i)
        if not 0 <= i < n:
            raise StoreError(
                f"{what}: episode {i} is out of range; {store.path} has {n} episode(s), numbered 0..{n - 1}"
            )
        if i in seen:
            raise StoreError(f"{what}: episode {i} is given twice; list each episode once")
        seen.add(i)
        out.append(i)
    return out


def _as_set(value: str | Sequence[str] | None) -> set[str] | None:
    if value is None:
        return None
    return {value} if isinstance(value, str) else {str(v) for v in value}


def select(
    store: DemoStore | StorePath,
    ids: Sequence[int] | None = None,
    outcome: str | Sequence[str] | None = None,
    task: str | Sequence[str] | None = None,
    operator: str | Sequence[str] | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> list[int]:
    """Episode ids that meet every given criterion (criteria left as None do not filter).

    ``ids`` limits the candidates (and fixes their order; otherwise store order); ``outcome``,
    ``task`` and ``operator`` match exactly, one value or any of several; lengths are in frames,
    inclusive. May return an empty list.
    """
    store = _open(store)
    candidates = check_ids(store, ids) if ids is not None else list(range(store.n_episodes))
    for name, v in (("min_length", min_length), ("max_length", max_length)):
        if v is not None and v < 0:
            raise StoreError(f"{name} must be ≥ 0 frames, got {v}")
    table = store.meta_table()
    wanted = {"outcome": _as_set(outcome), "task": _as_set(task), "operator": _as_set(operator)}
    out = []
    for e in candidates:
        if any(values is not None and str(table[name][e]) not in values for name, values in wanted.items()):
            continue
        length = int(table["length"][e])
        if min_length is not None and length < min_length:
            continue
        if max_length is not None and length > max_length:
            continue
        out.append(e)
    return out


def _describe_no_match(store: DemoStore, criteria: dict[str, Any]) -> str:
    table = store.meta_table()
    given = ", ".join(f"{k}={v!r}" for k, v in criteria.items() if v is not None)
    present = "; ".join(
        f"{name}s present: {sorted({str(x) for x in table[name]})}"
        for name in ("outcome", "task", "operator")
    )
    lengths = table["length"]
    span = f"lengths {int(lengths.min())}..{int(lengths.max())}" if lengths.size else "no episodes"
    return f"no episode of {store.path} matches {given or 'the criteria'} ({present}; {span})"


# ---------------------------------------------------------------------------------------------
# Operations that write a new store


def copy_episodes(
    src: DemoStore | StorePath, dst_path: StorePath, episodes: Sequence[int], *, progress: bool = True
) -> DemoStore:
    """A new store at ``dst_path`` with these episodes of ``src``, in this order, copied exactly.

    Same features, fps and robot as ``src``. Refuses an existing ``dst_path``.
    """
    src = _open(src)
    episodes = check_ids(src, episodes, what="episodes to copy")
    if not episodes:
        raise StoreError(f"no episodes to copy from {src.path}; give at least one episode index")
    with building(dst_path) as tmp:
        _write_store(tmp, [(src, episodes)], progress=progress)
    log.info("copied %d episode(s) of %s to %s", len(episodes), src.path, dst_path)
    return DemoStore.open(dst_path)


def _check_compatible(first: DemoStore, other: DemoStore) -> None:
    """Raise unless ``other`` has ``first``'s features, fps and robot (merging needs them equal)."""
    fix = "merge only stores recorded with the same configuration"
    mine = {k: f.to_dict() for k, f in first.features.items()}
    theirs = {k: f.to_dict() for k, f in other.features.items()}
    for key in sorted(set(mine) | set(theirs)):
        if key not in theirs:
            raise StoreError(f"{other.path} lacks feature {key!r} that {first.path} has; {fix}")
        if key not in mine:
            raise StoreError(f"{other.path} has feature {key!r} that {first.path} lacks; {fix}")
        if mine[key] != theirs[key]:
            raise StoreError(
                f"{other.path}: feature {key!r} is {theirs[key]}, but in {first.path} it is {mine[key]}; {fix}"
            )
    if other.fps != first.fps:
        raise StoreError(
            f"{other.path} was recorded at {other.fps} fps, {first.path} at {first.fps} fps; {fix}"
        )
    if other.robot != first.robot:
        raise StoreError(
            f"{other.path} has robot {other.robot}, but {first.path} has robot {first.robot}; {fix}"
        )


def merge(srcs: Sequence[DemoStore | StorePath], dst: StorePath, *, progress: bool = True) -> DemoStore:
    """A new store at ``dst`` with every episode of every source, in the order given.

    All sources must have the same features (shape, dtype, kind, codec, file size), fps and robot;
    otherwise the error names the first store and feature that differ.
    """
    if not srcs:
        raise StoreError("merge needs at least one source store")
    stores = [_open(s) for s in srcs]
    for other in stores[1:]:
        _check_compatible(stores[0], other)
    paths = [s.path.resolve() for s in stores]
    if len(set(paths)) < len(paths):
        log.warning("merging a store with itself: its episodes appear more than once in %s", dst)
    with building(dst) as tmp:
        _write_store(tmp, [(s, range(s.n_episodes)) for s in stores], progress=progress)
    log.info("merged %d store(s) into %s", len(stores), dst)
    return DemoStore.open(dst)


def filter_store(
    src: DemoStore | StorePath,
    dst: StorePath,
    *,
    ids: Sequence[int] | None = None,
    outcome: str | Sequence[str] | None = None,
    task: str | Sequence[str] | None = None,
    operator: str | Sequence[str] | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    interventions: bool = False,
    progress: bool = True,
) -> DemoStore:
    """A new store at ``dst`` with the episodes of ``src`` that ``select`` picks with these criteria.

    ``interventions``: keep only the frames an operator drove (the ``intervention`` feature that
    ``imitation deploy --takeover --record`` writes), each unbroken stretch as an episode of its
    own, without the feature: a store of corrections that merges with demonstrations."""
    src = _open(src)
    criteria = dict(
        ids=ids, outcome=outcome, task=task, operator=operator, min_length=min_length, max_length=max_length
    )
    episodes = select(src, **criteria)
    if not episodes:
        raise StoreError(_describe_no_match(src, criteria) + "; loosen the criteria")
    if interventions:
        return _intervention_store(src, dst, episodes, progress=progress)
    return copy_episodes(src, dst, episodes, progress=progress)


def intervention_stretches(flags: np.ndarray) -> list[tuple[int, int]]:
    """The ``[start, end)`` frame ranges where ``flags`` is set, in order."""
    on = np.concatenate([[0], (np.asarray(flags).reshape(-1) != 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(on))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _intervention_store(
    src: DemoStore, dst: StorePath, episodes: Sequence[int], *, progress: bool
) -> DemoStore:
    if INTERVENTION not in src.features:
        raise StoreError(
            f"{src.path} has no `{INTERVENTION}` feature: only stores recorded by "
            "'imitation deploy --takeover ... --record' mark who was in control"
        )
    features = {k: f.to_dict() for k, f in src.features.items() if k != INTERVENTION}
    images = [k for k, f in src.features.items() if f.sharded]
    arrays = [k for k in src.features if k not in images and k != INTERVENTION]
    stretches = []
    for e in episodes:
        start, end = src.episode_range(e)
        flags = src.read(INTERVENTION, start, end)
        stretches += [(e, start + a, start + b) for a, b in intervention_stretches(flags)]
    if not stretches:
        raise StoreError(f"{src.path}: no operator drove any frame of the {len(episodes)} episode(s) chosen")
    dst = Path(dst)
    with building(dst) as tmp, EpisodeWriter(tmp, features=features, fps=src.fps, robot=src.robot) as w:
        for e, a, b in _progress(stretches, desc="corrections", total=len(stretches), progress=progress):
            meta = src.episode_meta(e)
            values = {k: src.read(k, a, b) for k in arrays}
            frames_bytes = {k: src.read_encoded(k, a, b) for k in images}
            start, _ = src.episode_range(e)
            info = dict(meta["info"]) | {"source_episode": int(e), "source_frames": [a - start, b - start]}
            w.start_episode(task=meta["task"], operator="takeover", seed=meta["seed"], info=info)
            for i in range(b - a):
                frame: dict[str, Any] = {k: v[i] for k, v in values.items()}
                frame.update({k: encoded(fb[i]) for k, fb in frames_bytes.items()})
                w.add_frame(frame)
            w.save_episode(outcome=meta["outcome"])
    return DemoStore.open(dst)


def split(
    src: DemoStore | StorePath,
    dst_a: StorePath,
    dst_b: StorePath,
    *,
    fraction: float | None = None,
    ids: Sequence[int] | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[DemoStore, DemoStore]:
    """Split the episodes of ``src`` into two new stores (e.g. train and validation).

    Give either ``fraction`` (the share of episodes that go to ``dst_a``, chosen at random with
    ``seed``) or ``ids`` (exactly the episodes for ``dst_a``); every other episode goes to
    ``dst_b``. Both sides keep the source's episode order and need at least one episode.
    """
    src = _open(src)
    n = src.n_episodes
    if (fraction is None) == (ids is None):
        raise StoreError(
            "split needs exactly one of fraction= (e.g. 0.9) or ids= (the episodes for the first store)"
        )
    if ids is not None:
        a = sorted(check_ids(src, ids, what="ids for the first store"))
    else:
        if not 0.0 < float(fraction) < 1.0:
            raise StoreError(
                f"fraction must be strictly between 0 and 1 (the share for {dst_a}), got {fraction}"
            )
        n_a = int(np.floor(float(fraction) * n + 0.5))
        perm = np.random.default_rng(seed).permutation(n)
        a = sorted(int(e) for e in perm[:n_a])
    chosen = set(a)
    b = [e for e in range(n) if e not in chosen]
    if not a or not b:
        raise StoreError(
            f"splitting {n} episode(s) of {src.path} gives {len(a)} to {dst_a} and {len(b)} to {dst_b}; "
            "each side needs at least one episode: change fraction/ids, or record more episodes"
        )
    for d in (dst_a, dst_b):
        if Path(d).exists():
            raise StoreError(f"{d} already exists; choose another output path or remove it first")
    store_a = copy_episodes(src, dst_a, a, progress=progress)
    try:
        store_b = copy_episodes(src, dst_b, b, progress=progress)
    except (Exception, KeyboardInterrupt):
        _remove_tree(Path(dst_a))  # all or nothing: do not leave half a split
        raise
    return store_a, store_b


# ---------------------------------------------------------------------------------------------
# Deleting episodes, and recovering an interrupted in-place swap


def delete_episodes(
    path: StorePath,
    ids: Sequence[int],
    *,
    output: StorePath | None = None,
    progress: bool = True,
    hook: FaultHook | None = None,
) -> DemoStore:
    """Remove episodes ``ids`` from the store at ``path``.

    With ``output`` the store is left unchanged and a new store without those episodes is written
    there. Without it the store is replaced in place (see the module docstring) while its writer
    lock is held. ``hook(step, path)`` is called before each step of the swap (``rename_old``,
    ``rename_new``, ``remove_old``); tests use it to interrupt the swap.
    """
    path = Path(path)
    if output is not None:
        src = _open(path)
        keep = _keep_after_delete(src, ids)
        return copy_episodes(src, output, keep, progress=progress)

    _open(path)  # clear errors for a missing or foreign store
    leftovers = interrupted_edit(path)
    if leftovers:
        raise StoreError(
            f"an earlier edit of {path} was interrupted ({', '.join(p.name for p in leftovers)}); "
            f"run imitation.data.edit.recover_swap({str(path)!r}) ('imitation data repair') first"
        )
    dropped: list[int] = []

    def build(tmp: Path) -> None:
        src = DemoStore.open(path)  # the committed episodes as they are now that we hold the lock
        if src.uncommitted_frames:
            log.warning("%s: dropping an uncommitted tail of %d frame(s)", path, src.uncommitted_frames)
        keep = _keep_after_delete(src, ids)
        dropped.append(src.n_episodes - len(keep))
        _write_store(tmp, [(src, keep)], progress=progress)

    replace_in_place(path, build, hook=hook)
    store = DemoStore.open(path)
    log.info("deleted %d episode(s) from %s; %d remain", dropped[0], path, store.n_episodes)
    return store


def backup_path_for(path: StorePath) -> Path:
    """Where ``replace_in_place(..., backup=...)`` keeps an original: ``<name>.backup-<UTC time>-<pid>``."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return path.with_name(f"{path.name}.backup-{stamp}-{os.getpid()}")


def replace_in_place(
    path: StorePath,
    build: Callable[[Path], None],
    *,
    backup: Path | None = None,
    hook: FaultHook | None = None,
) -> None:
    """Replace the store at ``path`` by the one ``build(tmp)`` writes into a temporary sibling.

    The writer lock is held throughout, so a recorder cannot append meanwhile; then the swap of
    the module docstring runs. The original is removed afterwards, or kept whole at ``backup``.
    ``hook(step, path)`` is called before each step of the swap (``rename_old``, ``rename_new``,
    ``remove_old``); tests use it to interrupt the swap.
    """
    path = Path(path)
    hook = hook or (lambda step, p: None)
    lock = acquire_lock(path)
    try:
        tmp = tmp_path_for(path)
        aside = backup or _old_path_for(path)
        _remove_tree(tmp)
        try:
            build(tmp)
        except (Exception, KeyboardInterrupt):
            _remove_tree(tmp)
            raise
        hook("rename_old", str(path))
        os.rename(path, aside)
        try:
            fsync_dir(path.parent)
            hook("rename_new", str(tmp))
            os.rename(tmp, path)
            fsync_dir(path.parent)
        except (Exception, KeyboardInterrupt):
            if not path.exists():
                os.rename(aside, path)  # undo: the old store is back, unchanged
            _remove_tree(tmp)
            raise
        if backup is None:
            hook("remove_old", str(aside))
            shutil.rmtree(aside)
    finally:
        lock.close()


def _keep_after_delete(src: DemoStore, ids: Sequence[int]) -> list[int]:
    drop = set(check_ids(src, ids, what="episodes to delete"))
    if not drop:
        raise StoreError("no episodes given to delete; pass at least one episode index")
    keep = [e for e in range(src.n_episodes) if e not in drop]
    if not keep:
        raise StoreError(
            f"deleting every episode ({src.n_episodes}) of {src.path} would leave an empty store; "
            "remove the directory instead if you want all of it gone"
        )
    return keep


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _is_locked(path: Path) -> bool:
    """Whether a live process holds the writer lock of the store directory ``path``."""
    if not path.is_dir():
        return False
    try:
        acquire_lock(path).close()
    except StoreError:
        return True
    return False


def recover_swap(path: StorePath) -> list[str]:
    """Finish or undo an in-place edit of ``path`` that was interrupted; returns what was done.

    - the store was renamed away (``.old-<pid>``) and the new copy (``.tmp-<pid>``) is complete:
      the new copy is renamed into place and the old store removed (the edit is finished);
    - the old store is there but no new copy: the old store is renamed back (the edit is undone);
    - the swap had finished and only the old store was left: it is removed;
    - an unfinished new copy or output (``.tmp-<pid>``) with nothing to swap: it is removed.

    Refuses to touch anything a live process is still editing (its writer lock is held).
    """
    path = Path(path)
    done: list[str] = []
    leftovers = interrupted_edit(path)
    for p in [p for p in leftovers if CREATED.match(p.name) and CREATED.match(p.name)["base"] == path.name]:
        leftovers.remove(p)
        pid = int(CREATED.match(p.name)["pid"])
        if pid != os.getpid() and _alive(pid):
            done.append(f"left {p.name}: process {pid} is still creating the store")
            continue
        _remove_tree(p)  # a store that never appeared under its name: no committed episode in it
        done.append(f"removed {p.name}, the unfinished creation of {path.name} by process {pid}")
    pids = sorted({(LEFTOVER.match(p.name) or CREATING.match(p.name))["pid"] for p in leftovers})
    for pid in pids:
        old, tmp = path.with_name(f"{path.name}.old-{pid}"), path.with_name(f"{path.name}.tmp-{pid}")
        backups = [
            p
            for p in leftovers
            if LEFTOVER.match(p.name) and p.name.endswith(f"-{pid}") and ".backup-" in p.name
        ]
        keep_old = bool(backups) and not old.exists()  # a repair keeps its original as a backup
        if keep_old:
            old = backups[0]
        creating = [p for p in leftovers if CREATING.match(p.name) and CREATING.match(p.name)["pid"] == pid]
        busy = [p for p in (old, tmp) if _is_locked(p)]
        if not old.exists() and path.exists() and _is_locked(path):
            busy.append(path)
        if busy:
            raise StoreError(
                f"{', '.join(str(p) for p in busy)} is in use by a running process (an edit by pid {pid}, or a "
                "recorder); wait for it to finish, then run recover_swap again"
            )
        for p in creating:
            _remove_tree(p)
            done.append(f"removed the unfinished store {p.name}")
        if old.exists():
            if path.exists() and tmp.exists():
                raise StoreError(
                    f"{path} was created after an edit was interrupted, and the original store is intact at "
                    f"{old}: move {path} aside and rename {old} back to {path}, then run recover_swap again"
                )
            if path.exists():
                shutil.rmtree(old)
                done.append(f"the edit of {path} had finished; removed the old copy {old.name}")
                continue
            if tmp.exists() and _opens(tmp):
                os.rename(tmp, path)
                fsync_dir(path.parent)
                if keep_old:
                    done.append(
                        f"finished the interrupted repair of {path}; the original is kept at {old.name}"
                    )
                else:
                    shutil.rmtree(old)
                    done.append(f"finished the interrupted edit of {path}: the edited store is in place")
            else:
                os.rename(old, path)
                fsync_dir(path.parent)
                _remove_tree(tmp)
                done.append(f"undid the interrupted edit of {path}: the original store is back")
        elif tmp.exists():
            _remove_tree(tmp)
            done.append(f"removed the unfinished temporary store {tmp.name}")
    return done


def _opens(path: Path) -> bool:
    try:
        DemoStore.open(path)
    except StoreError:
        return False
    return True
