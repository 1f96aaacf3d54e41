"""PickPlace: pick a cube from a random spot on the table and put it on a random target.

The classic industrial task, on one SO-100 arm (``assets/so100.xml``).

**Action space** ``Box(6)``: joint position targets in radians for ``shoulder_pan, shoulder_lift,
elbow_flex, wrist_flex, wrist_roll`` and the gripper in [0, 1] (0 closed, 1 open); limits from
``configs/robots/so100.yaml``. Actions outside the limits are clipped.

**Observation space** ``Dict``:
- ``state`` (6,) float32: measured joint positions in the action's layout (gripper = finger
  opening scaled to [0, 1]).
- ``env_state`` (12,) float32: cube position (3, m), cube orientation as the 6-D rotation
  representation (first two columns of its rotation matrix), target position (3, m).
- ``images/<camera>`` (H, W, 3) uint8 for each camera in ``cameras`` (``obs_mode`` images/both).
- ``timestamp`` (): simulation time in seconds.

**Reward** (dense, for diagnostics): ``-|ee - cube| - 2 |cube_xy - target_xy| + 5·success``.

**Start state**: arm at its home pose (tool down, gripper open). Cube (3 cm, 30 g, friction 1.2)
at a uniformly random yaw and position in the annulus r ∈ [0.17, 0.23] m, bearing ∈ [-0.7, 0.7]
rad around the arm's base; target (a flat 3 cm disc, no collision) likewise, at least 6 cm from
the cube. Everything random comes from the ``reset`` seed.

**Episode end**: terminated on success — the cube rests within 2 cm (xy) of the target centre,
on the table, nearly still, and no finger touches it; truncated after ``time_limit_s`` (10 s).
``info["is_success"]`` reports success at every step.

**Arguments**: ``obs_mode`` ("state" never creates a renderer; "images"; "both"), ``cameras``
(any of top, front, wrist), ``image_size`` (H, W), ``render_mode`` ("rgb_array"),
``render_size`` (H, W) for ``render()``, ``time_limit_s``.

Control runs at 50 Hz with 10 physics substeps of 2 ms.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from envs.so100 import (
    ARM_JOINTS,
    ARM_XML,
    GRIPPER_OPEN_M,
    HOME_QPOS,
    ArmIK,
    load_arm_spec,
    tool_down_rotation,
)

CUBE_HALF_M = 0.015
CONTROL_HZ = 50
SUBSTEPS = 10  # 2 ms physics steps per 20 ms control tick
CAMERAS = ("top", "front", "wrist")
OBS_MODES = ("state", "images", "both")


def build_model(max_render: tuple[int, int] = (480, 640)) -> mujoco.MjModel:
    """The arm plus a table, a cube, a target marker, lights and cameras."""
    spec = mujoco.MjSpec.from_file(str(ARM_XML))
    spec.modelname = "pick_place"
    spec.visual.global_.offheight = max(max_render[0], 480)
    spec.visual.global_.offwidth = max(max_render[1], 640)
    world = spec.worldbody
    spec.visual.headlight.diffuse = [0.35, 0.35, 0.35]
    spec.visual.headlight.ambient = [0.25, 0.25, 0.25]
    spec.visual.headlight.specular = [0.0, 0.0, 0.0]
    world.add_light(pos=[0.2, 0, 1.0], dir=[0, 0, -1], diffuse=[0.45, 0.45, 0.45], specular=[0.1, 0.1, 0.1])
    world.add_light(pos=[0.6, -0.4, 0.6], dir=[-0.6, 0.4, -0.6], diffuse=[0.3, 0.3, 0.3])
    world.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[0.6, 0.6, 0.01],
        rgba=[0.75, 0.7, 0.6, 1],
        friction=[1.0, 0.01, 0.001],
    )
    cube = world.add_body(name="cube", pos=[0.2, 0, CUBE_HALF_M])
    cube.add_freejoint(name="cube")
    cube.add_geom(
        name="cube",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[CUBE_HALF_M] * 3,
        mass=0.03,
        rgba=[0.85, 0.15, 0.15, 1],
        friction=[1.2, 0.01, 0.001],
        condim=4,
    )
    target = world.add_body(name="target", pos=[0.2, 0.1, 0.0005], mocap=True)
    target.add_geom(
        name="target",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[0.015, 0.0005, 0],
        rgba=[0.1, 0.7, 0.2, 1],
        contype=0,
        conaffinity=0,
    )
    world.add_camera(name="top", pos=[0.17, 0.0, 0.5], xyaxes=[0, -1, 0, 1, 0, 0], fovy=45)
    world.add_camera(name="front", pos=[0.6, 0.0, 0.3], xyaxes=[0, 1, 0, -0.45, 0, 0.89], fovy=50)
    model = spec.compile()
    # CPU rendering: shadows and multisampling off are 10-30x faster and change little here.
    model.vis.quality.shadowsize = 0
    model.vis.quality.offsamples = 0
    return model


def rot6d(mat: np.ndarray) -> np.ndarray:
    """The 6-D rotation representation (Zhou et al. 2019): the first two columns of the matrix."""
    return mat.reshape(3, 3)[:, :2].T.reshape(6)


class PickPlaceEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}

    def __init__(
        self,
        obs_mode: str = "state",
        cameras: tuple[str, ...] = ("top",),
        image_size: tuple[int, int] = (96, 96),
        render_mode: str | None = None,
        render_size: tuple[int, int] = (480, 640),
        time_limit_s: float = 10.0,
    ) -> None:
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode {obs_mode!r} is not one of {OBS_MODES}")
        unknown = [c for c in cameras if c not in CAMERAS]
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; choose from {CAMERAS}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported; use 'rgb_array' or None")
        self.obs_mode, self.cameras = obs_mode, tuple(cameras)
        self.image_size, self.render_mode, self.render_size = (
            tuple(image_size),
            render_mode,
            tuple(render_size),
        )
        self.time_limit_s = float(time_limit_s)
        self.model = build_model(self.render_size)
        self.data = mujoco.MjData(self.model)
        self.arm = load_arm_spec()
        m = self.model
        self._arm_qpos = np.array([m.joint(n).qposadr[0] for n in ARM_JOINTS])
        self._finger_qpos = m.joint("finger_left").qposadr[0]
        self._cube_qpos = m.joint("cube").qposadr[0]
        self._cube_dof = m.joint("cube").dofadr[0]
        self._cube_body = m.body("cube").id
        self._target_mocap = m.body("target").mocapid[0]
        self._ee = m.site("ee").id
        self._finger_geoms = {
            m.geom(g).id
            for g in range(m.ngeom)
            if m.geom(g).bodyid in (m.body("finger_left").id, m.body("finger_right").id)
        }
        self._cube_geom = m.geom("cube").id
        self.action_space = gym.spaces.Box(
            self.arm.lower.astype(np.float32), self.arm.upper.astype(np.float32)
        )
        spaces: dict[str, gym.Space] = {
            "state": gym.spaces.Box(self.arm.lower.astype(np.float32), self.arm.upper.astype(np.float32)),
            "env_state": gym.spaces.Box(-10.0, 10.0, (12,), np.float32),
            "timestamp": gym.spaces.Box(0.0, np.inf, (), np.float64),
        }
        if obs_mode != "state":
            for c in self.cameras:
                spaces[f"images/{c}"] = gym.spaces.Box(0, 255, (*self.image_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        rng = self.np_random
        mujoco.mj_resetData(self.model, self.data)
        d = self.data
        d.qpos[self._arm_qpos] = HOME_QPOS
        d.ctrl[: len(ARM_JOINTS)] = HOME_QPOS
        d.qpos[self._finger_qpos] = GRIPPER_OPEN_M
        d.ctrl[len(ARM_JOINTS)] = GRIPPER_OPEN_M
        cube_xy = self._sample_xy(rng)
        while True:
            target_xy = self._sample_xy(rng)
            if np.linalg.norm(target_xy - cube_xy) >= 0.06:
                break
        yaw = rng.uniform(-np.pi / 4, np.pi / 4)
        d.qpos[self._cube_qpos : self._cube_qpos + 7] = [
            *cube_xy,
            CUBE_HALF_M,
            np.cos(yaw / 2),
            0,
            0,
            np.sin(yaw / 2),
        ]
        d.mocap_pos[self._target_mocap] = [*target_xy, 0.0005]
        mujoco.mj_forward(self.model, d)
        return self._obs(), {"is_success": False}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        a = np.clip(np.asarray(action, dtype=np.float64), self.arm.lower, self.arm.upper)
        self.data.ctrl[: len(ARM_JOINTS)] = a[:5]
        self.data.ctrl[len(ARM_JOINTS)] = a[5] * GRIPPER_OPEN_M
        mujoco.mj_step(self.model, self.data, nstep=SUBSTEPS)
        success = self._success()
        cube, target = self.data.xpos[self._cube_body], self.data.mocap_pos[self._target_mocap]
        reward = (
            -np.linalg.norm(self.data.site_xpos[self._ee] - cube)
            - 2 * np.linalg.norm(cube[:2] - target[:2])
            + 5.0 * success
        )
        truncated = self.data.time >= self.time_limit_s - 1e-9
        return self._obs(), float(reward), success, bool(truncated and not success), {"is_success": success}

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._render("front", self.render_size)

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    # ------------------------------------------------------------------ helpers
    def expert(self) -> PickPlaceExpert:
        """A scripted policy (observation -> action) that solves this task from ``env_state``."""
        return PickPlaceExpert(self.model)

    @staticmethod
    def _sample_xy(rng: np.random.Generator) -> np.ndarray:
        r, bearing = rng.uniform(0.17, 0.23), rng.uniform(-0.7, 0.7)
        return np.array([r * np.cos(bearing), r * np.sin(bearing)])

    def _state(self) -> np.ndarray:
        q = self.data.qpos
        return np.concatenate([q[self._arm_qpos], [q[self._finger_qpos] / GRIPPER_OPEN_M]]).astype(np.float32)

    def _env_state(self) -> np.ndarray:
        d = self.data
        return np.concatenate(
            [d.xpos[self._cube_body], rot6d(d.xmat[self._cube_body]), d.mocap_pos[self._target_mocap]]
        ).astype(np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        obs = {"state": self._state(), "env_state": self._env_state(), "timestamp": np.array(self.data.time)}
        if self.obs_mode != "state":
            for c in self.cameras:
                obs[f"images/{c}"] = self._render(c, self.image_size)
        return obs

    def _render(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        r = self._renderers.get(size)
        if r is None:
            r = self._renderers[size] = mujoco.Renderer(self.model, *size)
        r.update_scene(self.data, camera=camera)
        return r.render().copy()

    def _success(self) -> bool:
        d = self.data
        cube, target = d.xpos[self._cube_body], d.mocap_pos[self._target_mocap]
        if np.linalg.norm(cube[:2] - target[:2]) > 0.02 or cube[2] > CUBE_HALF_M + 0.004:
            return False
        if np.linalg.norm(d.qvel[self._cube_dof : self._cube_dof + 3]) > 0.05:
            return False
        for c in d.contact[: d.ncon]:
            pair = {c.geom1, c.geom2}
            if self._cube_geom in pair and pair & self._finger_geoms:
                return False
        return True


class PickPlaceExpert:
    """Scripted pick and place: end-effector waypoints, turned into joint targets by IK.

    Closed loop on ``env_state``: it re-reads the cube and target every tick. The end-effector
    reference moves toward the current waypoint at ≤ 0.2 m/s and joint targets change by at most
    0.045 rad per tick, so trajectories stay smooth.
    """

    # (name, gripper command, hold ticks after reaching the waypoint)
    PHASES = (
        ("above_cube", 1.0, 0),
        ("at_cube", 1.0, 3),
        ("grasp", 0.0, 15),
        ("lift", 0.0, 0),
        ("above_target", 0.0, 3),
        ("at_target", 0.0, 3),
        ("release", 1.0, 12),
        ("retreat", 1.0, 10**9),
    )
    MAX_STEP_M = 0.004
    MAX_DQ = 0.045

    def __init__(self, model: mujoco.MjModel) -> None:
        self.ik = ArmIK(model)
        self.reset()

    def reset(self) -> None:
        self.phase = 0
        self.hold = 0
        self.ref: np.ndarray | None = None
        self.q_cmd: np.ndarray | None = None
        self.yaw: float | None = None
        self.gripper = 1.0

    def _waypoint(self, name: str, cube: np.ndarray, target: np.ndarray) -> np.ndarray:
        grasp_z = CUBE_HALF_M + 0.002
        return {
            "above_cube": cube + [0, 0, 0.07],
            "at_cube": [cube[0], cube[1], grasp_z],
            "grasp": [cube[0], cube[1], grasp_z],
            "lift": [cube[0], cube[1], 0.09],
            "above_target": [target[0], target[1], 0.09],
            "at_target": [target[0], target[1], grasp_z + 0.003],
            "release": [target[0], target[1], grasp_z + 0.003],
            "retreat": [target[0], target[1], 0.09],
        }[name]

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        env_state = np.asarray(obs["env_state"], dtype=np.float64)
        cube, target = env_state[:3], env_state[9:12]
        if self.q_cmd is None:
            self.q_cmd = np.asarray(obs["state"][:5], dtype=np.float64).copy()
            self.ref = self.ik.forward(self.q_cmd)[0]
        name, grip, hold = self.PHASES[self.phase]
        if self.phase <= 1:  # before the grasp: follow the cube, choose the finger axis
            x_axis = env_state[3:6]
            cube_yaw = np.arctan2(x_axis[1], x_axis[0])
            hand_x = self.ik.forward(self.q_cmd)[1][:, 0]
            hand_yaw = np.arctan2(hand_x[1], hand_x[0])
            options = cube_yaw + np.arange(-4, 5) * np.pi / 2
            self.yaw = float(options[np.argmin(np.abs(np.angle(np.exp(1j * (options - hand_yaw)))))])
        goal = np.asarray(self._waypoint(name, cube, target), dtype=np.float64)
        delta = goal - self.ref
        dist = np.linalg.norm(delta)
        self.ref = goal.copy() if dist <= self.MAX_STEP_M else self.ref + delta * (self.MAX_STEP_M / dist)
        q = self.ik.solve(self.q_cmd, self.ref, tool_down_rotation(self.yaw), iters=8)
        self.q_cmd = self.q_cmd + np.clip(q - self.q_cmd, -self.MAX_DQ, self.MAX_DQ)
        # The gripper moves at a limited rate too (full travel in 10 ticks).
        self.gripper += np.clip(grip - self.gripper, -0.1, 0.1)
        reached = dist <= self.MAX_STEP_M and abs(self.gripper - grip) < 1e-6
        if reached:
            self.hold += 1
            if self.hold > hold and self.phase < len(self.PHASES) - 1:
                self.phase, self.hold = self.phase + 1, 0
        return np.concatenate([self.q_cmd, [self.gripper]]).astype(np.float32)
