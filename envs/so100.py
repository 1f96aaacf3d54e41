"""The SO-100 arm model: its MJCF, its joint convention, and inverse kinematics on it.

Joint names, order and limits come from ``configs/robots/so100.yaml`` (the single definition);
the MJCF in ``assets/so100.xml`` is tested against that file. The gripper is one number in
[0, 1] (0 closed, 1 open) at this interface; in the model it is the opening of each finger.

``ArmIK`` and ``ArmDriver`` work on any arm of ``envs/arms.py`` (their ``joints`` argument; the
SO-100's by default): they need only its joints and its ``ee`` site.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import mujoco
import numpy as np
import yaml

from imitation.robots.base import RobotSpec

ASSETS = Path(__file__).resolve().parent / "assets"
ARM_XML = ASSETS / "so100.xml"
ROBOT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "robots" / "so100.yaml"
ARM_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
GRIPPER_OPEN_M = 0.035  # finger opening (m) at gripper = 1
# Tool pointing straight down above the table, a little in front of the base.
HOME_QPOS = np.array([0.0, 0.35, 1.55, 1.2416, 0.0])


def load_arm_spec(path: Path = ROBOT_CONFIG) -> RobotSpec:
    """The arm's joints (gripper last), limits and rate, as the robot config declares them."""
    cfg = yaml.safe_load(path.read_text())
    joints = cfg["joints"]
    return RobotSpec(
        name=cfg["name"],
        joint_names=tuple(j["name"] for j in joints),
        lower=np.array([j["lower"] for j in joints], dtype=np.float64),
        upper=np.array([j["upper"] for j in joints], dtype=np.float64),
        control_hz=float(cfg["control_hz"]),
    )


def rotation_error(current: np.ndarray, desired: np.ndarray) -> np.ndarray:
    """Small-angle rotation (world frame, rad) that turns ``current`` into ``desired`` (3x3 each)."""
    return 0.5 * sum(np.cross(current[:, i], desired[:, i]) for i in range(3))


class ArmIK:
    """Damped least-squares inverse kinematics for one arm of a MuJoCo model.

    Works on its own ``MjData`` so a solve never disturbs the simulation. ``prefix`` selects one
    arm of a multi-arm model (e.g. ``"left/"``); ``joints`` are the arm's joints (the SO-100's by
    default; ``envs.arms.Arm.joints`` for another arm).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        prefix: str = "",
        damping: float = 1e-3,
        joints: Sequence[str] = ARM_JOINTS,
    ) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        self.site = model.site(f"{prefix}ee").id
        joints = [model.joint(f"{prefix}{n}") for n in joints]
        self.qpos_adr = np.array([j.qposadr[0] for j in joints])
        self.dof_adr = np.array([j.dofadr[0] for j in joints])
        self.lower = np.array([j.range[0] for j in joints])
        self.upper = np.array([j.range[1] for j in joints])
        self.damping = damping
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position (3,) and rotation (3, 3) at joint positions ``q`` (one per joint)."""
        self.data.qpos[self.qpos_adr] = q
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    def solve(
        self,
        q0: np.ndarray,
        pos: np.ndarray,
        rot: np.ndarray | None = None,
        *,
        axis: np.ndarray | None = None,
        iters: int = 30,
        rot_weight: float = 0.3,
        tol_m: float = 1e-4,
    ) -> np.ndarray:
        """Joint positions near ``q0`` that put the end effector at ``pos`` (and ``rot``).

        ``axis`` instead of ``rot`` asks only for the tool's pointing direction (its z axis), a
        softer goal that leaves the tool free to tilt where the full rotation is out of reach.
        """
        q = np.clip(np.asarray(q0, dtype=np.float64).copy(), self.lower, self.upper)
        for _ in range(iters):
            p, r = self.forward(q)
            err_p = pos - p
            mujoco.mj_comPos(self.model, self.data)
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site)
            if axis is not None:
                err = np.concatenate([err_p, rot_weight * np.cross(r[:, 2], axis)])
                jac = np.vstack([self._jacp[:, self.dof_adr], rot_weight * self._jacr[:, self.dof_adr]])
            elif rot is None:
                err, jac = err_p, self._jacp[:, self.dof_adr]
            else:
                err = np.concatenate([err_p, rot_weight * rotation_error(r, rot)])
                jac = np.vstack([self._jacp[:, self.dof_adr], rot_weight * self._jacr[:, self.dof_adr]])
            if np.linalg.norm(err_p) < tol_m and (len(err) == 3 or np.linalg.norm(err[3:]) < 1e-3):
                break
            dq = jac.T @ np.linalg.solve(jac @ jac.T + self.damping * np.eye(len(err)), err)
            q = np.clip(q + dq, self.lower, self.upper)
        return q


def tool_down_rotation(yaw: float) -> np.ndarray:
    """Rotation of a tool pointing straight down whose finger axis (x) points along ``yaw``."""
    x = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    z = np.array([0.0, 0.0, -1.0])
    return np.column_stack([x, np.cross(z, x), z])


def turn_toward(current: np.ndarray, goal: np.ndarray, max_angle: float) -> tuple[np.ndarray, bool]:
    """``current`` (3x3) turned toward ``goal`` about their common axis by at most ``max_angle``
    rad; and whether it got there."""
    err = goal @ current.T  # the world-frame turn from current to goal
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, err.reshape(9))
    if quat[0] < 0:
        quat = -quat  # the shorter way round
    angle = 2.0 * np.arctan2(np.linalg.norm(quat[1:]), quat[0])
    if angle <= max_angle:
        return goal.copy(), True
    step = np.zeros(4)
    mujoco.mju_axisAngle2Quat(step, quat[1:] / np.linalg.norm(quat[1:]), max_angle)
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, step)
    return mat.reshape(3, 3) @ current, False


def nearest_grasp_yaw(object_yaw: float, hand_yaw: float, symmetry: float = np.pi / 2) -> float:
    """The finger-axis yaw equivalent to ``object_yaw`` (modulo ``symmetry``) closest to ``hand_yaw``."""
    options = object_yaw + np.arange(-8, 9) * symmetry
    return float(options[np.argmin(np.abs(np.angle(np.exp(1j * (options - hand_yaw)))))])


class ArmDriver:
    """Moves one arm's tool smoothly toward end-effector goals, through IK.

    The end-effector reference moves toward the goal at ≤ ``max_step_m`` per tick, joint targets
    change by at most ``max_dq`` rad per tick and the gripper by at most 0.1 per tick, so the
    commands are smooth enough to learn from and safe for a real arm. The tool points down with
    its finger axis along ``yaw``, unless ``step`` is given a rotation (an arm with six joints can
    hold any): the reference rotation then turns toward it by at most ``max_turn`` rad per tick.
    ``joints``: the arm's joints (the SO-100's by default); the state and action it reads and
    writes are those joints and the gripper.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        prefix: str = "",
        max_step_m: float = 0.004,
        max_dq: float = 0.045,
        joints: Sequence[str] = ARM_JOINTS,
        max_turn: float = 0.05,
    ):
        self.ik = ArmIK(model, prefix, joints=joints)
        self.n = len(joints)
        self.max_step_m, self.max_dq, self.max_turn = max_step_m, max_dq, max_turn
        self.q_cmd: np.ndarray | None = None
        self.ref: np.ndarray | None = None
        self.rot_ref: np.ndarray | None = None
        self.gripper = 1.0
        self.yaw = 0.0

    def hand_yaw(self) -> float:
        x = self.ik.forward(self.q_cmd)[1][:, 0]
        return float(np.arctan2(x[1], x[0]))

    def start(self, state: np.ndarray) -> None:
        """Start from the arm's measured ``state``: its joints, then the gripper."""
        self.q_cmd = np.asarray(state[: self.n], dtype=np.float64).copy()
        self.ref, self.rot_ref = self.ik.forward(self.q_cmd)
        self.gripper = float(state[self.n])
        self.yaw = self.hand_yaw()

    def step(
        self, goal: np.ndarray, gripper: float, rot: np.ndarray | None = None
    ) -> tuple[np.ndarray, bool]:
        """One tick toward ``goal`` (m) with the gripper command, the tool pointing down (or turning
        toward ``rot``, 3x3); returns (action: the joints and the gripper, reached)."""
        goal = np.asarray(goal, dtype=np.float64)
        delta = goal - self.ref
        dist = float(np.linalg.norm(delta))
        self.ref = goal.copy() if dist <= self.max_step_m else self.ref + delta * (self.max_step_m / dist)
        if rot is None:
            self.rot_ref, turned = tool_down_rotation(self.yaw), True
        else:
            self.rot_ref, turned = turn_toward(self.rot_ref, np.asarray(rot, dtype=np.float64), self.max_turn)
        q = self.ik.solve(self.q_cmd, self.ref, self.rot_ref, iters=8)
        self.q_cmd = self.q_cmd + np.clip(q - self.q_cmd, -self.max_dq, self.max_dq)
        self.gripper += float(np.clip(gripper - self.gripper, -0.1, 0.1))
        reached = dist <= self.max_step_m and abs(self.gripper - gripper) < 1e-6 and turned
        return np.concatenate([self.q_cmd, [self.gripper]]), reached
