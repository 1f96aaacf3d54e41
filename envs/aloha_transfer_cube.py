"""AlohaTransferCube (bimanual): ALOHA's two ViperX 300 S-like arms hand a cube from the right arm
to the left (the ACT paper's simulated transfer-cube task, on ALOHA's geometry).

Two ViperX-like arms (``envs/assets/vx300s.xml``) face each other across the table, their bases
94 cm apart on the x axis as on ALOHA: ``right/`` at x = +0.47 m facing -x, ``left/`` at
x = -0.47 m facing +x. The joint and camera names are the real ALOHA's, so that its driver can
be emulated with this simulator as its physics.

**Action space** ``Box(14)``: the left arm's 6 joint targets (rad; waist, shoulder, elbow,
forearm_roll, wrist_angle, wrist_rotate) and its gripper [0, 1] (0 closed), then the right arm's;
limits from ``configs/robots/vx300s.yaml``.

**Observation space** ``Dict``: ``state`` (14,) measured joints in the action's layout;
``env_state`` (9,) the cube's position (m) and orientation (6-D rotation representation);
``images/<camera>`` for cameras ``cam_high`` (overhead, from the operator's side),
``cam_low`` (front, low), ``cam_left_wrist``, ``cam_right_wrist``; ``timestamp`` (s).

**The object**: a 4 cm cube (50 g, friction 1.2), as in ACT's task.

**Reward** (diagnostics): ``-|right ee - cube| + 2·(touched by the right fingers) + 4·success``.

**Start state**: both arms at ALOHA's start pose (``envs.arms.VX300S.home``; grippers open).
The cube lies flat in front of the right arm: its centre uniformly in x ∈ [0, 0.2] m (27–47 cm
from the right base) and y ∈ [-0.1, 0.1] m, turned uniformly about z by up to ±45°.

**Episode end**: terminated on success — the cube is off the table (no table contact, centre
above 5 cm), touched by the left fingers and not by the right ones; truncated after
``time_limit_s`` (10 s).

**The expert** picks the cube from above with the right gripper, carries it to the middle with
its fingers along y, brings the left gripper in level from -x with its fingers vertical (they
pinch the cube's top and bottom faces, clear of the right fingers on its ±y faces), closes it,
and opens the right gripper.

**Arguments**: those of every arm task (``envs/base.py``): ``obs_mode``, ``cameras``,
``image_size``, ``render_mode``, ``render_size``, ``time_limit_s``, ``camera_fps`` and
``camera_latency_ms`` (images captured at the camera's rate, shown late), ``perturb`` (the
``cam_high`` and ``cam_low`` cameras and the lights changed per episode from its seed; the wrist
cameras never).

Control at 50 Hz, 10 physics substeps of 2 ms.
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.arms import VX300S
from envs.base import ArmTaskEnv, HandOver, TwoArmExpert, finish, new_scene
from envs.so100 import nearest_grasp_yaw, tool_down_rotation

BASE_X = 0.47  # each base's distance from the middle of the table (ALOHA: 0.469 m)
CUBE_HALF = 0.02
HANDOVER = np.array([0.0, 0.0, 0.2])  # the right hand brings the cube's centre here
PICK_ABOVE = 0.08  # the right hand's approach height above the cube's centre
LEFT_BACK = 0.1  # the left hand's approach: this far behind the cube (-x), level with it
CAM_HIGH = ([0.0, -0.45, 0.95], [0.0, 0.05, 0.0])  # camera position, the point it looks at
CAM_LOW = ([0.0, -0.6, 0.2], [0.0, 0.0, 0.12])
# Level tool pointing +x, fingers opening along z: the left hand at the hand-over.
LEFT_SIDE = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])


def look_at(pos: list[float], target: list[float]) -> list[float]:
    """``xyaxes`` of a camera at ``pos`` looking at ``target``, level (its x axis horizontal)."""
    forward = np.subtract(target, pos) / np.linalg.norm(np.subtract(target, pos))
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return [*right, *np.cross(right, forward)]


class AlohaTransferCubeEnv(HandOver, ArmTaskEnv):
    ARM = VX300S
    HOME = VX300S.home
    ARMS = ("left/", "right/")
    CAMERAS = ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")
    RENDER_CAMERA = "cam_high"
    ENV_STATE_DIM = 9
    TIME_LIMIT_S = 10.0
    OBJECT = "cube"
    LIFTED_Z = 0.05
    EXPERT_SUCCESS = 1.0  # measured: 200/200 on seeds 0-199 (the slow test's), 1000/1000 on 0-999

    def build_model(self, max_render: tuple[int, int]) -> mujoco.MjModel:
        spec = new_scene(
            "aloha_transfer_cube",
            {"left/": ([-BASE_X, 0, 0], [1, 0, 0, 0]), "right/": ([BASE_X, 0, 0], [0, 0, 0, 1])},
            max_render,
            self.ARM,
        )
        # The wrist cameras take the real ALOHA's names.
        for side in ("left", "right"):
            spec.camera(f"{side}/wrist").name = f"cam_{side}_wrist"
        world = spec.worldbody
        # Seen from the operator's side (-y): high above the table's edge, and low in front.
        world.add_camera(name="cam_high", pos=CAM_HIGH[0], xyaxes=look_at(*CAM_HIGH), fovy=60)
        world.add_camera(name="cam_low", pos=CAM_LOW[0], xyaxes=look_at(*CAM_LOW), fovy=65)
        self.add_box(world, [CUBE_HALF] * 3, mass=0.05, x=0.1)
        return self.bind_box(finish(spec))

    def place_objects(self, rng: np.random.Generator) -> None:
        self.place_box(rng.uniform(0.0, 0.2), rng.uniform(-0.1, 0.1), rng.uniform(-np.pi / 4, np.pi / 4))

    def expert(self) -> AlohaTransferCubeExpert:
        return AlohaTransferCubeExpert(self.model)


class AlohaTransferCubeExpert(TwoArmExpert):
    """Right arm: above the cube, down, close, lift, carry to the hand-over point turning its
    fingers onto y. Left arm: waits level behind the hand-over point, then comes in on the cube
    (closed loop on ``env_state``), closes, and the right arm opens and backs away."""

    def __init__(self, model: mujoco.MjModel) -> None:
        super().__init__(model, VX300S, max_step_m=0.006)
        self.left_ready = False
        self.pick = np.zeros(3)  # where the right hand closed
        self.take = np.zeros(3)  # where the left hand closed

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        es = self.begin(obs)
        cube, x_axis = es[:3], es[3:6]
        p = self.phase
        left_goal, left_grip = HANDOVER - [LEFT_BACK + 0.04, 0, 0], 1.0
        right_grip, hold = 1.0, 0
        if p <= 1:  # above the cube, then down to it: fingers across a pair of faces
            self.right.yaw = nearest_grasp_yaw(np.arctan2(x_axis[1], x_axis[0]), self.right.hand_yaw())
            right_goal = cube + [0, 0, PICK_ABOVE if p == 0 else 0.0]
            hold = 3 * p
            self.pick = cube.copy()
        elif p == 2:  # close
            right_goal, right_grip, hold = self.pick, 0.0, 15
        elif p == 3:  # lift
            right_goal, right_grip = [self.pick[0], self.pick[1], HANDOVER[2]], 0.0
        elif p == 4:  # carry to the hand-over point, fingers along y
            self.right.yaw = nearest_grasp_yaw(np.pi / 2, self.right.hand_yaw(), np.pi)
            right_goal, right_grip, hold = HANDOVER, 0.0, 10 if self.left_ready else 10**9
        else:  # the left hand takes the cube
            right_goal, right_grip = HANDOVER, 0.0
            if p == 5:  # level behind the cube
                left_goal, hold = cube - [LEFT_BACK, 0, 0], 3
            elif p == 6:  # in, the fingertips past the cube's centre
                left_goal, hold = cube.copy(), 3
                self.take = cube.copy()
            elif p == 7:  # close
                left_goal, left_grip, hold = self.take, 0.0, 15
            elif p == 8:  # the right hand lets go
                left_goal, left_grip, right_grip, hold = self.take, 0.0, 1.0, 5
            else:  # the right hand backs away, up and out
                left_goal, left_grip, right_grip, hold = self.take, 0.0, 1.0, 10**9
                right_goal = HANDOVER + [0.1, 0, 0.08]
        a_left, reached_left = self.left.step(left_goal, left_grip, LEFT_SIDE)
        if p <= 4 and reached_left:
            self.left_ready = True
        a_right, reached_right = self.right.step(right_goal, right_grip, tool_down_rotation(self.right.yaw))
        reached = reached_right if p <= 4 else reached_left and (p < 8 or reached_right)
        if reached:
            self.hold += 1
            if self.hold > hold:
                self.phase, self.hold = self.phase + 1, 0
        return np.concatenate([a_left, a_right]).astype(np.float32)
