"""TransferCube (bimanual): one arm picks a block and hands it to the other (the ACT paper's task).

Two SO-100 arms face each other across the table (bases 42 cm apart on the x axis): ``right/``
at x = +0.21 m facing -x, ``left/`` at x = -0.21 m facing +x.

**Action space** ``Box(12)``: the left arm's 5 joint targets (rad) and gripper [0, 1], then the
right arm's; limits from ``configs/robots/so100.yaml``.

**Observation space** ``Dict``: ``state`` (12,) measured joints in the action's layout;
``env_state`` (9,) block position (m) and orientation (6-D rotation representation);
``images/<camera>`` for cameras top, front, left_wrist, right_wrist; ``timestamp`` (s).

**The object**: a 7 × 2.2 × 2.2 cm block (40 g, friction 1.2) — long enough for both parallel
grippers to hold it from above at once, one at each end, which is how the hand-over happens.

**Reward**: ``-|right ee - block| + 2·(held by the right arm) + 4·(held by the left arm only, in
the air) `` — for diagnostics.

**Start state**: both arms at home (tool down, grippers open). The block lies in front of the
right arm, its centre uniformly at 19–23 cm from the right base within ±0.45 rad of straight
ahead, its long axis within ±0.35 rad of the x axis.

**Episode end**: terminated on success — the block is off the table (no table contact, centre
above 4 cm), touched by the left gripper and not by the right one; truncated after
``time_limit_s`` (12 s).

**Arguments**: those of every arm task (``envs/base.py``): ``obs_mode``, ``cameras``,
``image_size``, ``render_mode``, ``render_size``, ``time_limit_s``, ``camera_fps`` and
``camera_latency_ms`` (images captured at the camera's rate, shown late), ``perturb`` (the top and
front cameras and the lights changed per episode from its seed; the wrist cameras never).

Control at 50 Hz, 10 physics substeps of 2 ms.
"""

from __future__ import annotations

import mujoco
import numpy as np

from envs.base import BimanualTaskEnv, HandOver, TwoArmExpert, finish
from envs.so100 import nearest_grasp_yaw

BLOCK_HALF = (0.035, 0.011, 0.011)
BASE_X = BimanualTaskEnv.BASE_X
HANDOVER = np.array([0.0, 0.0, 0.075])
END_OFFSET_M = 0.02  # grasp points sit this far from the block centre along its long axis
LEFT_READY = np.array([-0.05, 0.0, 0.11])  # where the left arm waits for the hand-over


class TransferCubeEnv(HandOver, BimanualTaskEnv):
    ENV_STATE_DIM = 9
    TIME_LIMIT_S = 12.0

    def build_model(self, max_render: tuple[int, int]) -> mujoco.MjModel:
        spec = self.two_arm_scene("transfer_cube", max_render)
        self.add_box(spec.worldbody, BLOCK_HALF, mass=0.04, x=0.05)
        return self.bind_box(finish(spec))

    def place_objects(self, rng: np.random.Generator) -> None:
        r, bearing = rng.uniform(0.19, 0.23), rng.uniform(-0.45, 0.45)
        self.place_box(BASE_X - r * np.cos(bearing), -r * np.sin(bearing), rng.uniform(-0.35, 0.35))

    def expert(self) -> TransferCubeExpert:
        return TransferCubeExpert(self.model)


class TransferCubeExpert(TwoArmExpert):
    """The right arm picks the block by its near end, carries it to the middle with its long axis
    along x, and opens once the left arm has closed on the far end; then both lift clear."""

    def __init__(self, model: mujoco.MjModel) -> None:
        super().__init__(model)
        self.left_ready = False

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        es = self.begin(obs)
        centre, axis = es[:3], es[3:6]
        axis_yaw = float(np.arctan2(axis[1], axis[0]))
        along = np.array([np.cos(axis_yaw), np.sin(axis_yaw), 0.0])
        if along[0] < 0:
            along = -along  # points toward the right arm (+x)
        right_end, left_end = centre + END_OFFSET_M * along, centre - END_OFFSET_M * along
        grasp_z = centre[2] + 0.002
        # Until the hand-over the left arm waits high on its own side, out of the block's way.
        left_goal, left_grip = LEFT_READY, 1.0
        p = self.phase
        if p <= 1:  # right arm: above the near end, then down to it; fingers across the block
            self.right.yaw = nearest_grasp_yaw(axis_yaw + np.pi / 2, self.right.hand_yaw(), np.pi)
            goal = [right_end[0], right_end[1], 0.07 if p == 0 else grasp_z]
            right_goal, right_grip, hold = goal, 1.0, 3 * p
        elif p == 2:  # close
            right_goal, right_grip, hold = [right_end[0], right_end[1], grasp_z], 0.0, 15
        elif p == 3:  # lift
            right_goal, right_grip, hold = [right_end[0], right_end[1], HANDOVER[2]], 0.0, 0
        elif p == 4:  # carry to the hand-over point, turning the block's long axis onto x
            self.right.yaw = nearest_grasp_yaw(np.pi / 2, self.right.hand_yaw(), np.pi)
            right_goal, right_grip, hold = HANDOVER + [END_OFFSET_M, 0, 0], 0.0, 10
            if not self.left_ready:
                hold = 10**9  # wait for the left arm
        else:  # the left arm takes over
            right_goal, right_grip = HANDOVER + [END_OFFSET_M, 0, 0], 0.0
            self.left.yaw = nearest_grasp_yaw(np.pi / 2, self.left.hand_yaw(), np.pi)
            if p == 5:
                left_goal, hold = [left_end[0], left_end[1], centre[2] + 0.05], 0
            elif p == 6:
                left_goal, hold = [left_end[0], left_end[1], grasp_z], 3
            elif p == 7:
                left_goal, left_grip, hold = [left_end[0], left_end[1], grasp_z], 0.0, 15
            elif p == 8:  # right lets go
                left_goal, left_grip, right_grip, hold = [left_end[0], left_end[1], grasp_z], 0.0, 1.0, 10
            else:  # right retreats up, left lifts a little
                left_goal, left_grip, right_grip, hold = [left_end[0], left_end[1], 0.1], 0.0, 1.0, 10**9
                right_goal = HANDOVER + [0.06, 0, 0.06]
        a_left, reached_left = self.left.step(left_goal, left_grip)
        if p <= 4 and reached_left:
            self.left_ready = True
        a_right, reached_right = self.right.step(right_goal, right_grip)
        reached = reached_right if p <= 4 else reached_left and (p < 8 or reached_right)
        if reached:
            self.hold += 1
            if self.hold > hold:
                self.phase, self.hold = self.phase + 1, 0
        return np.concatenate([a_left, a_right]).astype(np.float32)
