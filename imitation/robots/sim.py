"""SimRobot: any MuJoCo task of ``envs/`` behind the Robot interface."""

from __future__ import annotations

from typing import Any

import numpy as np

from imitation.robots.base import CameraSpec, Robot, RobotSpec, clip_action


class SimRobot(Robot):
    """A simulated arm. ``reset(seed)`` starts a new episode with that seed's initial scene.

    After ``act``, ``terminated``, ``truncated`` and ``info`` hold the task's verdict on the step;
    ``clipped_actions`` counts the actions ``act`` had to clip to the limits (the action space).
    Simulation time is the timestamp, so a seeded run is bit-identical every time.
    """

    def __init__(
        self,
        env_id: str,
        *,
        obs_mode: str = "state",
        cameras: tuple[str, ...] | None = None,
        image_size: tuple[int, int] | None = None,
        seed: int = 0,
        **env_kwargs: Any,
    ) -> None:
        from envs.mapping import is_mapping_id, make, recorded_env

        self.env_id = env_id
        if not is_mapping_id(env_id):  # a mapping's defaults are its own cameras and sizes
            from envs import first_camera

            cameras = (first_camera(env_id),) if cameras is None else cameras
            image_size = (96, 96) if image_size is None else image_size
        # Unwrapped: the tasks keep their own clocks (a mapped env is its own outermost layer).
        self.env = make(
            env_id, obs_mode=obs_mode, cameras=cameras, image_size=image_size, **env_kwargs
        ).unwrapped
        arm = self.env.arm
        space = self.env.observation_space.spaces
        cams = tuple(
            CameraSpec(k.removeprefix("images/"), *v.shape[:2])
            for k, v in space.items()
            if k.startswith("images/")
        )
        # A task of envs/ observes its joint positions as ``state`` (when the sizes agree); a mapped
        # env says what its state is (its size and names), whatever the sizes.
        state_dim = arm.state_dim
        if state_dim is None and space["state"].shape[0] != len(arm.joint_names):
            state_dim = int(space["state"].shape[0])
        self.spec = RobotSpec(
            name=f"sim:{env_id}",
            joint_names=arm.joint_names,
            lower=arm.lower,
            upper=arm.upper,
            control_hz=arm.control_hz,
            cameras=cams,
            env_state_dim=int(self.env.observation_space["env_state"].shape[0])
            if "env_state" in space
            else 0,
            state_dim=state_dim,
            state_names=arm.state_names,
            action_kind=arm.action_kind,
            grippers=arm.grippers,
            extra=recorded_env(env_id),
        )
        self.seed = seed
        self._obs: dict[str, np.ndarray] | None = None
        self.terminated = self.truncated = False
        self.reward = -float("inf")
        self.info: dict[str, Any] = {}
        self.clipped_actions = 0  # actions with a value outside the limits (clipped before sending)

    def connect(self) -> None:
        self.reset(self.seed)

    def reset(self, seed: int) -> dict[str, np.ndarray]:
        self.seed = seed
        self._obs, self.info = self.env.reset(seed=seed)
        self.terminated = self.truncated = False
        self.reward = -float("inf")  # the task's reward after the last step (none yet)
        return self._obs

    def observe(self) -> dict[str, np.ndarray]:
        if self._obs is None:
            raise RuntimeError("SimRobot is not connected; call connect() or use it as a context manager")
        return self._obs

    def act(self, action: np.ndarray) -> np.ndarray:
        sent, clipped = clip_action(action, self.spec.lower, self.spec.upper)
        self.clipped_actions += int(clipped)
        self._obs, self.reward, self.terminated, self.truncated, self.info = self.env.step(sent)
        return sent

    def expert(self) -> Any:
        """The task's scripted expert (observation -> action)."""
        return self.env.expert()

    def disconnect(self) -> None:
        self.env.close()
