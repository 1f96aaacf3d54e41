"""Simulation speed: physics steps/s, env steps/s by observation mode, and scripted recording time.

    MUJOCO_GL=egl python tools/bench_sim.py [--env imitation/PickPlace-v0] [--steps 2000]

Env steps use random actions inside the limits (a step is one 20 ms control tick = 10 physics
steps). The recording figure is the wall time of ``imitation record`` for 50 demos with one
96x96 camera, into a temporary store.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402, F401


def env_steps_per_s(env_id: str, n: int, **kwargs) -> float:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    lo, hi = env.action_space.low, env.action_space.high
    actions = lo + rng.random((n, lo.size)) * (hi - lo)
    t = time.perf_counter()
    for i, a in enumerate(actions):
        *_, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset(seed=i)
    rate = n / (time.perf_counter() - t)
    env.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="imitation/PickPlace-v0")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--demos", type=int, default=50)
    args = ap.parse_args()
    res: dict = {"env": args.env}
    env = gym.make(args.env).unwrapped
    env.reset(seed=0)
    t = time.perf_counter()
    n_physics = args.steps * 10
    mujoco.mj_step(env.model, env.data, nstep=n_physics)
    res["physics_steps_per_s"] = round(n_physics / (time.perf_counter() - t))
    res["env_steps_per_s_state"] = round(env_steps_per_s(args.env, args.steps))
    res["env_steps_per_s_1cam_96"] = round(env_steps_per_s(args.env, args.steps // 2, obs_mode="images"))
    res["env_steps_per_s_3cam_480x640"] = round(
        env_steps_per_s(
            args.env,
            max(50, args.steps // 20),
            obs_mode="images",
            cameras=env.CAMERAS[:3],
            image_size=(480, 640),
        )
    )
    from imitation.record import RecordConfig, record_scripted

    root = Path(tempfile.mkdtemp())
    try:
        out = record_scripted(
            RecordConfig(env=args.env, episodes=args.demos, out=root / "d.zarr", obs_mode="both"),
            progress=False,
        )
    finally:
        shutil.rmtree(root)
    res[f"record_{args.demos}_demos_1cam_96_s"] = round(out["wall_s"], 1)
    res["record_frames"] = out["steps"]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
