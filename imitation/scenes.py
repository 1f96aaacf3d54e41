"""Seeds you can trust: does a seed decide the scene, and is an evaluation scene a training one?

Every "unseen" figure assumes that ``reset(seed=s)`` draws the scene from ``s`` alone. Some
third-party environments ignore the seed (Meta-World's own classes cycle through a fixed list of
scenes, so a scene depends on how many resets came before): their "100 unseen seeds" can be a
dozen scenes, all of them in the training demos, and a seed check passes regardless.

- ``check_reproducible`` (``imitation record``): the same seed twice must give the same first
  observation, and two seeds different ones; an environment that fails is refused.
- ``repeated_scenes`` (``imitation eval``): every evaluation episode's first observation is
  compared with the first observations of the training demos, whatever the seeds say.

Observations are compared on their low-dimensional entries (``state``, ``env_state``), where the
scene is; images add nothing a pose does not say and cost a render.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imitation.data.store import DemoStore
from imitation.errors import ConfigError

SCENE_KEYS = ("state", "env_state")
ATOL = 1e-6


def scene_vector(obs: Mapping[str, Any], keys: Sequence[str] = SCENE_KEYS) -> np.ndarray:
    """The low-dimensional part of a first observation, flat (``keys`` that it has)."""
    parts = [np.asarray(obs[k], dtype=np.float64).ravel() for k in keys if k in obs]
    return np.concatenate(parts) if parts else np.zeros(0)


def check_reproducible(env: Any, seed: int, name: str) -> None:
    """Refuse an environment whose first observation does not follow its reset seed."""
    a = scene_vector(env.reset(seed=seed)[0])
    b = scene_vector(env.reset(seed=seed + 1)[0])
    again = scene_vector(env.reset(seed=seed)[0])
    if a.size == 0:
        return  # nothing low-dimensional to compare (a camera-only task)
    if a.shape != again.shape or not np.allclose(a, again, atol=ATOL, rtol=0):
        raise ConfigError(
            f"{name} is not reproducible: reset(seed={seed}) twice gave different first observations "
            "(the scene depends on something besides the seed, e.g. how many resets came before); make "
            "its reset draw everything from the seed (gymnasium: super().reset(seed=seed), then self.np_random) "
            "so recorded and evaluated scenes can be told apart"
        )
    if a.shape == b.shape and np.allclose(a, b, atol=ATOL, rtol=0):
        raise ConfigError(
            f"{name} ignores the reset seed: seeds {seed} and {seed + 1} gave the same first observation; "
            "make its reset draw the scene from the seed (gymnasium: super().reset(seed=seed), then "
            "self.np_random), or every 'unseen' evaluation may repeat the training scenes"
        )


def training_firsts(store_path: str | None) -> tuple[np.ndarray, list[int]] | None:
    """First observations (rows) and seeds of a store's episodes; None when the store is gone."""
    if not store_path:
        return None
    try:
        store = DemoStore.open(store_path)
    except Exception:  # noqa: BLE001 - a moved or damaged store: the check is skipped, said by the caller
        return None
    keys = [k for k in SCENE_KEYS if k in store.features]
    if not keys or store.n_episodes == 0:
        return None
    rows = []
    for e in range(store.n_episodes):
        start, _ = store.episode_range(e)
        rows.append(np.concatenate([store.read(k, start, start + 1).ravel() for k in keys]))
    seeds = [int(s) for s in np.asarray(store.meta_table()["seed"])]
    return np.stack(rows).astype(np.float64), seeds


def repeated_scenes(env: Any, seeds: Sequence[int], firsts: np.ndarray) -> dict[int, int]:
    """Evaluation seeds whose first observation equals a training demo's: {seed: demo episode}."""
    out: dict[int, int] = {}
    scale = np.maximum(np.abs(firsts).max(axis=0), 1.0)
    for s in seeds:
        v = scene_vector(env.reset(seed=int(s))[0])
        if v.shape != firsts.shape[1:]:
            return {}  # another layout: the shape check elsewhere says so
        hit = np.flatnonzero(np.all(np.abs(firsts - v) <= ATOL * scale, axis=1))
        if hit.size:
            out[int(s)] = int(hit[0])
    return out
