"""The scripted expert of a task, evaluated like a policy: the ceiling its imitators are measured
against (``imitation eval --expert --env <task id or mapping>``).

The expert is the one ``imitation record --teleop scripted`` records with (a task's ``expert()``, a
mapping's ``expert:``). It reads the simulation, so it runs in one environment, episode after
episode, on the seeds the policies are reported on; its actions are clipped to the action space
and counted, as a policy's are.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from envs.mapping import make
from imitation.errors import ConfigError
from imitation.results import Episode


def expert_of(env: Any) -> Any:
    """The scripted expert of ``env`` (a fresh one per episode: experts may keep a phase)."""
    u = env.unwrapped
    if not hasattr(u, "expert"):
        raise ConfigError(f"{type(u).__name__} has no scripted expert")
    return u.expert()


def run_expert(env_id: str, seeds: Sequence[int], *, progress: bool = True) -> tuple[list[Episode], float]:
    """Episodes of the expert of ``env_id`` on ``seeds``, and the wall time they took (s)."""
    env = make(env_id, obs_mode="state")
    episodes: list[Episode] = []
    t0 = time.perf_counter()
    low, high = env.action_space.low, env.action_space.high
    try:
        for seed in tqdm(seeds, desc="expert", unit="ep", disable=not (progress and sys.stderr.isatty())):
            obs, info = env.reset(seed=int(seed))
            expert = expert_of(env)
            done, ret, length, cov, clipped = False, 0.0, 0, None, 0
            while not done:
                action = np.asarray(expert(obs), dtype=np.float32)
                safe = np.clip(action, low, high)
                clipped += int(not np.array_equal(safe, action))
                obs, reward, terminated, truncated, info = env.step(safe)
                done, ret, length = terminated or truncated, ret + float(reward), length + 1
                if "coverage" in info:
                    cov = max(cov or 0.0, float(info["coverage"]))
            episodes.append(Episode(int(seed), bool(info.get("is_success")), ret, length, cov, None, clipped))
    finally:
        env.close()
    return episodes, time.perf_counter() - t0
