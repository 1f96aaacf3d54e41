"""Meta-World tasks (Farama's Meta-World v3, Sawyer arm) as reproducible gymnasium environments.

Meta-World is a third-party benchmark of 50 manipulation tasks, each with a scripted policy. This
project uses it as a development suite of tasks it was not tuned on: the mappings in
``configs/envs/metaworld/`` record, train and evaluate on them like on any other mapped task.
It is an optional extra: ``pip install -e '.[metaworld]'`` then ``pip install --no-deps
metaworld==3.1.1`` (its own pin of mujoco 3.3.0 would replace the MuJoCo installed here;
``tools/setup.sh`` does both).

What this adapter changes, and why:

- **Seeds.** Meta-World's own environments ignore ``reset(seed=...)``: a benchmark object fixes 50
  scenes per task and an environment cycles through whatever scene it was last given, so a scene
  depends on how many resets came before. Here ``reset(seed=s)`` draws the scene (object and goal
  positions, Meta-World's "rand_vec") from ``s`` alone, within the task's own random-reset space:
  the same seed gives the same scene, two seeds give different ones, in any process and order.
- **The goal is observed.** Meta-World's multi-task benchmarks hide the goal position (zeros in
  ``obs[36:39]``); a single-task policy needs it, as the scripted policies do.
- **A hidden phase** (``hide_gripper: true``, ``configs/envs/metaworld/pick-place-blind.yaml``): the
  gripper opening reads 0, so while the expert closes the jaws nothing the policy sees changes; a
  stateful, phase-based demonstrator as a policy meets it, for measuring what copes with one.
- **MuJoCo 4.** Meta-World 3.1 writes 11 numbers into each weld constraint's ``eq_data``, whose
  rows have 12 entries since MuJoCo 4 (the extra one keeps its default); the writer is adjusted.

Observation (39 numbers, Meta-World's own): hand position 0:3, gripper opening 3, first object's
position and quaternion 4:11, second object's 11:18, the same 18 numbers one step earlier 18:36,
goal 36:39. Action (4): end-effector position deltas in [-1, 1] (scaled by 1 cm) and a gripper
effort in [-1, 1]. The control period is 12.5 ms (80 Hz); an episode is truncated after 500 steps.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from imitation.errors import ConfigError

try:
    import metaworld  # noqa: F401  (registers nothing we use; checks the install)
    from metaworld import sawyer_xyz_env
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    from metaworld.policies import ENV_POLICY_MAP
except ImportError as exc:  # pragma: no cover - depends on the optional extra
    raise ConfigError(
        f"Meta-World is not installed ({exc}); install it: pip install -e '.[metaworld]' && "
        "pip install --no-deps metaworld==3.1.1"
    ) from exc

ENV_ID = "imitation/MetaWorld-v0"
MAX_STEPS = 500

# The MT10 set of Meta-World's multi-task benchmark (Yu et al. 2019), as its env_dict lists it.
MT10 = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)


def _reset_mocap_welds(self: Any) -> None:
    """Meta-World's weld reset, writing only the entries it means (anchor, relative pose, torque
    scale) so the row length of the MuJoCo version in use does not matter."""
    if self.model.nmocap > 0 and self.model.eq_data is not None:
        for i in range(self.model.eq_data.shape[0]):
            if self.model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
                self.model.eq_data[i, :11] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0]


if mujoco.mjNEQDATA != 11:
    sawyer_xyz_env.SawyerMocapBase.reset_mocap_welds = _reset_mocap_welds


class MetaWorldEnv(gym.Env):
    """One Meta-World v3 task whose scene is a function of the reset seed (module docstring)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(
        self,
        task: str = "pick-place-v3",
        render_mode: str | None = None,
        camera_name: str = "corner2",
        width: int = 96,
        height: int = 96,
        hide_gripper: bool = False,
    ) -> None:
        if task not in ALL_V3_ENVIRONMENTS:
            raise ConfigError(
                f"unknown Meta-World task {task!r}; choose one of: {', '.join(sorted(ALL_V3_ENVIRONMENTS))}"
            )
        self.task = task
        self.hide_gripper = hide_gripper
        env = ALL_V3_ENVIRONMENTS[task](
            render_mode=render_mode, camera_name=camera_name, width=width, height=height
        )
        # What Meta-World's benchmark classes do before handing out an environment, minus the fixed
        # scene list: the task's own settings, scenes drawn from the environment's generator.
        env._set_task_called = True
        env._set_task_inner()
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        if env._partially_observable:
            env._partially_observable = False
            del env.sawyer_observation_space  # a cached property of the observability
        self.env = env
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (39,), np.float32)
        self.action_space = gym.spaces.Box(
            env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
        )
        self.dt = float(env.dt)
        self.last_obs = np.zeros(39)

    # The MuJoCo model, for callers that render cheaply or read the simulation.
    @property
    def model(self) -> mujoco.MjModel:
        return self.env.model

    @property
    def data(self) -> mujoco.MjData:
        return self.env.data

    @property
    def mujoco_renderer(self) -> Any:
        return self.env.mujoco_renderer

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        # Meta-World draws the scene from env.np_random; hand it a generator of this reset's seed
        # (or, unseeded, the next draw of ours, so unseeded resets still differ).
        self.env.np_random = np.random.default_rng(
            seed if seed is not None else int(self.np_random.integers(2**63))
        )
        obs, info = self.env.reset()
        self.last_obs = np.asarray(obs, dtype=np.float64)
        return self._seen(), dict(info)

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(np.asarray(action, dtype=np.float32))
        self.last_obs = np.asarray(obs, dtype=np.float64)
        info = dict(info)
        info["is_success"] = bool(info.get("success", False))
        return self._seen(), float(reward), bool(terminated), bool(truncated), info

    def _seen(self) -> np.ndarray:
        """The observation a policy gets: with ``hide_gripper``, the gripper opening (now and one
        step earlier) reads 0, so a policy cannot see the jaws close (the expert still does)."""
        obs = self.last_obs.astype(np.float32)
        if self.hide_gripper:
            obs[[3, 21]] = 0.0
        return obs

    def render(self) -> np.ndarray | None:
        """The camera's frame upright: Meta-World's renderer returns its cameras' frames upside
        down (the table above, the floor below; Farama-Foundation/Metaworld issue #516)."""
        frame = self.env.render()
        return None if frame is None else np.ascontiguousarray(frame[::-1])

    def close(self) -> None:
        self.env.close()


class ScriptedExpert:
    """Meta-World's own scripted policy for the mapped task (``metaworld.policies``), reading the
    full 39-number observation from the environment, whatever the mapping hands a policy."""

    def __init__(self, env: Any) -> None:  # a MappedEnv around MetaWorldEnv
        self.inner = env.env.unwrapped
        if not isinstance(self.inner, MetaWorldEnv):
            raise ConfigError(f"{type(self).__name__} drives {ENV_ID} only, not {type(self.inner).__name__}")
        self.policy = ENV_POLICY_MAP[self.inner.task]()

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        action = self.policy.get_action(self.inner.last_obs)
        return np.clip(action, -1.0, 1.0).astype(np.float32)


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=MetaWorldEnv, max_episode_steps=MAX_STEPS)
