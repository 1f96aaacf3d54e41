"""PickPlace: pick a cube from a random spot on the table and put it on a random target.

The classic industrial task, on one SO-100 arm (``assets/so100.xml``).

**Action space** ``Box(6)``: joint position targets in radians for ``shoulder_pan, shoulder_lift,
elbow_flex, wrist_flex, wrist_roll`` and the gripper in [0, 1] (0 closed, 1 open); limits from
``configs/robots/so100.yaml``. Actions outside the limits are clipped.

**Observation space** ``Dict``:
- ``state`` (6,) float32: measured joint positions in the action's layout (gripper = finger
  opening scaled to [0, 1]).
- ``env_state`` (17,) float32: cube position (3, m), cube orientation as the 6-D rotation
  representation (first two columns of its rotation matrix), target position (3, m); then the
  same seen from the arm's base, the frame its joints work in: cube bearing (rad) and range (m),
  the cube's yaw relative to its bearing folded to [-π/4, π/4) by the cube's 90° symmetry, target
  bearing and range. (The polar terms make the joint targets nearly linear in the observation: a
  policy learns them from 50 demos far more precisely than from Cartesian positions alone.)
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
``render_size`` (H, W) for ``render()``, ``time_limit_s``; ``camera_fps`` and
``camera_latency_ms`` (images captured at the camera's rate, shown late), ``perturb`` (scene
cameras and lights changed per episode from its seed); see ``envs/base.py``. The wrist camera
moves with the hand and is never perturbed.

Control runs at 50 Hz with 10 physics substeps of 2 ms.
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.base import ArmTaskEnv, finish, new_scene, rot6d
from envs.so100 import ArmDriver, nearest_grasp_yaw

CUBE_HALF_M = 0.015


class PickPlaceEnv(ArmTaskEnv):
    CAMERAS = ("top", "front", "wrist")
    ENV_STATE_DIM = 17
    # Turning the whole scene about the base's vertical axis (the pan joint's, at the origin) turns
    # the pan joint, the x-y of the cube, its axes and the target, and both bearings; the rest
    # stays. Used by ``imitation train --augment-yaw`` (imitation/data/augment.py).
    TURN_SYMMETRY = {
        "state": {"angles": [0]},
        "action": {"angles": [0]},
        "env_state": {"xy": [0, 3, 6, 9], "angles": [12, 15]},
    }

    def build_model(self, max_render: tuple[int, int]) -> mujoco.MjModel:
        spec = new_scene("pick_place", {"": ([0, 0, 0], [1, 0, 0, 0])}, max_render)
        world = spec.worldbody
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
        model = finish(spec)
        self._cube_qpos = model.joint("cube").qposadr[0]
        self._cube_dof = model.joint("cube").dofadr[0]
        self._cube_body = model.body("cube").id
        self._cube_geom = model.geom("cube").id
        self._target_mocap = model.body("target").mocapid[0]
        self._ee = model.site("ee").id
        return model

    @staticmethod
    def _sample_xy(rng: np.random.Generator) -> np.ndarray:
        r, bearing = rng.uniform(0.17, 0.23), rng.uniform(-0.7, 0.7)
        return np.array([r * np.cos(bearing), r * np.sin(bearing)])

    def place_objects(self, rng: np.random.Generator) -> None:
        cube_xy = self._sample_xy(rng)
        while True:
            target_xy = self._sample_xy(rng)
            if np.linalg.norm(target_xy - cube_xy) >= 0.06:
                break
        yaw = rng.uniform(-np.pi / 4, np.pi / 4)
        q = self._cube_qpos
        self.data.qpos[q : q + 7] = [*cube_xy, CUBE_HALF_M, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        self.data.mocap_pos[self._target_mocap] = [*target_xy, 0.0005]

    def env_state(self) -> np.ndarray:
        d = self.data
        cube, target, mat = d.xpos[self._cube_body], d.mocap_pos[self._target_mocap], d.xmat[self._cube_body]
        bearing, target_bearing = np.arctan2(cube[1], cube[0]), np.arctan2(target[1], target[0])
        yaw = np.arctan2(mat[3], mat[0])  # the cube's x axis, projected on the table
        rel_yaw = (yaw - bearing + np.pi / 4) % (np.pi / 2) - np.pi / 4
        polar = [bearing, np.hypot(cube[0], cube[1]), rel_yaw, target_bearing, np.hypot(target[0], target[1])]
        return np.concatenate([cube, rot6d(mat), target, polar])

    def success(self) -> bool:
        d = self.data
        cube, target = d.xpos[self._cube_body], d.mocap_pos[self._target_mocap]
        if np.linalg.norm(cube[:2] - target[:2]) > 0.02 or cube[2] > CUBE_HALF_M + 0.004:
            return False
        if np.linalg.norm(d.qvel[self._cube_dof : self._cube_dof + 3]) > 0.05:
            return False
        return not self.touching(self._cube_geom, 0)

    def reward(self, success: bool) -> float:
        d = self.data
        cube, target = d.xpos[self._cube_body], d.mocap_pos[self._target_mocap]
        return float(
            -np.linalg.norm(d.site_xpos[self._ee] - cube)
            - 2 * np.linalg.norm(cube[:2] - target[:2])
            + 5.0 * success
        )

    def expert(self) -> PickPlaceExpert:
        """A scripted policy (observation -> action) that solves this task from ``env_state``."""
        return PickPlaceExpert(self.model)


class PickPlaceExpert:
    """Scripted pick and place: end-effector waypoints, turned into joint targets by IK.

    Closed loop on ``env_state``: it re-reads the cube and target every tick, and chooses the
    finger axis among the cube's faces closest to the hand's current heading.
    """

    # (name, gripper command, ticks to hold after reaching the waypoint)
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

    def __init__(self, model: mujoco.MjModel) -> None:
        self.arm = ArmDriver(model)
        self.phase = self.hold = 0
        self.started = False

    @staticmethod
    def waypoint(name: str, cube: np.ndarray, target: np.ndarray) -> list[float]:
        grasp_z = CUBE_HALF_M + 0.002
        place_z = grasp_z + 0.003
        return {
            "above_cube": [cube[0], cube[1], cube[2] + 0.07],
            "at_cube": [cube[0], cube[1], grasp_z],
            "grasp": [cube[0], cube[1], grasp_z],
            "lift": [cube[0], cube[1], 0.09],
            "above_target": [target[0], target[1], 0.09],
            "at_target": [target[0], target[1], place_z],
            "release": [target[0], target[1], place_z],
            "retreat": [target[0], target[1], 0.09],
        }[name]

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        env_state = np.asarray(obs["env_state"], dtype=np.float64)
        cube, target = env_state[:3], env_state[9:12]
        if not self.started:
            self.arm.start(np.asarray(obs["state"], dtype=np.float64))
            self.started = True
        name, grip, hold = self.PHASES[self.phase]
        if self.phase <= 1:  # before the grasp: follow the cube's heading
            x_axis = env_state[3:6]
            self.arm.yaw = nearest_grasp_yaw(np.arctan2(x_axis[1], x_axis[0]), self.arm.hand_yaw())
        action, reached = self.arm.step(self.waypoint(name, cube, target), grip)
        if reached:
            self.hold += 1
            if self.hold > hold and self.phase < len(self.PHASES) - 1:
                self.phase, self.hold = self.phase + 1, 0
        return action.astype(np.float32)
