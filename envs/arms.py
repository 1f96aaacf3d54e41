"""The arms a task can be built with: each arm's MJCF, joints, robot config, home pose and gripper.

A task class picks one with its ``ARM`` attribute (``envs/base.py``); every arm of a task is the
same model, attached under the task's prefixes. The MJCF's joint names, zero pose, signs and
limits are the project's convention for that arm, and its robot config
(``configs/robots/<name>.yaml``) declares the same joints and limits (a test checks each pair).
Every arm model has the same parts beside its joints: an ``ee`` site (z along the tool, x the
finger axis), a ``wrist`` camera, finger bodies and slide joints ``finger_left`` and
``finger_right`` (each finger's opening in metres) and a ``gripper`` actuator on ``finger_left``.
At the interface the gripper is one number in [0, 1], 0 closed, 1 open (``gripper_open_m``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.so100 import ARM_JOINTS, ARM_XML, ASSETS, GRIPPER_OPEN_M, HOME_QPOS, ROBOT_CONFIG, load_arm_spec
from imitation.robots.base import RobotSpec

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "robots"


@dataclass(frozen=True, eq=False)
class Arm:
    """One arm model: what a task needs to build, drive and read it."""

    name: str
    xml: Path  # the MJCF of one arm, its root body named "base"
    config: Path  # the robot config declaring its joints (gripper last), limits and rate
    joints: tuple[str, ...]  # the arm's joints in order, the gripper excluded
    home: np.ndarray  # joint positions at reset (a task may override them: ``HOME``)
    gripper_open_m: float  # each finger's opening (m) at gripper = 1

    def spec(self) -> RobotSpec:
        """The arm's joints (gripper last), limits and rate, as its robot config declares them."""
        return load_arm_spec(self.config)


SO100 = Arm("so100", ARM_XML, ROBOT_CONFIG, ARM_JOINTS, HOME_QPOS, GRIPPER_OPEN_M)

# ViperX 300 S-like (assets/vx300s.xml): the follower arm of ALOHA. Home: ALOHA's start pose (the
# ACT paper's simulated tasks start there), the gripper in front of the base, level, 31 cm up.
VX300S = Arm(
    "vx300s",
    ASSETS / "vx300s.xml",
    CONFIGS / "vx300s.yaml",
    ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"),
    np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0]),
    0.037,
)
