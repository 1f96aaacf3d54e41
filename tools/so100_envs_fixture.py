"""Record what the SO-100 tasks do for fixed seeds, for tests/envs/test_aloha.py's check that they
stay unchanged: each task's compiled model (the arrays that place and shape bodies, joints,
actuators, cameras and lights), its first observation and its scripted expert's whole episode
(actions and states), written to tests/envs/fixtures/so100_tasks.npz.

    python tools/so100_envs_fixture.py

Recorded from the code before the arm was made a per-task choice (envs/arms.py); a MuJoCo or
NumPy upgrade may change the numbers, so the test skips when their versions differ from those
recorded here (rerun this script then, on code known to be right).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np

import envs  # noqa: F401 - registers the tasks

OUT = Path(__file__).resolve().parents[1] / "tests" / "envs" / "fixtures" / "so100_tasks.npz"
TASKS = ("PickPlace", "PushT", "TransferCube", "Insertion")
SEED = 3
MODEL_FIELDS = (
    "body_pos", "body_quat", "body_mass", "body_parentid", "jnt_range", "jnt_type", "jnt_axis", "jnt_pos",
    "geom_type", "geom_size", "geom_pos", "geom_quat", "geom_friction", "geom_rgba", "actuator_ctrlrange",
    "actuator_gainprm", "actuator_biasprm", "actuator_forcerange", "cam_pos", "cam_quat", "cam_fovy",
    "light_pos", "light_dir", "light_diffuse", "qpos0", "dof_damping", "dof_armature", "eq_data",
)  # fmt: skip


def record(env_id: str) -> dict[str, np.ndarray]:
    env = gym.make(env_id)
    u = env.unwrapped
    out = {f"model/{f}": np.array(getattr(u.model, f)) for f in MODEL_FIELDS}
    out["model/names"] = np.frombuffer(bytes(u.model.names), np.uint8)
    obs, _ = env.reset(seed=SEED)
    out["reset/state"], out["reset/env_state"] = obs["state"], obs["env_state"]
    expert = u.expert()
    states, actions = [], []
    while True:
        states.append(obs["state"])
        actions.append(expert(obs))
        obs, _, terminated, truncated, info = env.step(actions[-1])
        if terminated or truncated:
            break
    out["episode/states"], out["episode/actions"] = np.array(states), np.array(actions)
    out["episode/final_env_state"] = obs["env_state"]
    out["episode/success"] = np.array(bool(info["is_success"]))
    env.close()
    return out


def main() -> None:
    arrays: dict[str, np.ndarray] = {
        "versions": np.array([mujoco.__version__, np.__version__]),
        "seed": np.array(SEED),
    }
    for env_id in (f"imitation/{t}-v0" for t in TASKS):
        arrays |= {f"{env_id}/{k}": v for k, v in record(env_id).items()}
        steps, success = len(arrays[f"{env_id}/episode/actions"]), arrays[f"{env_id}/episode/success"]
        print(f"{env_id}: {steps} steps, success {success}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
