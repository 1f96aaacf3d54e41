"""The teleop interface, and the Cartesian part that keyboard, gamepad and SpaceMouse share.

A device gives the robot's joint targets for each control tick (``read(obs)``) and the
operator's episode events (``events()``)::

    with device:
        device.reset(obs)                      # a new episode: hold the current pose
        while True:
            for event in device.events():      # TOGGLE, RERECORD, DISCARD, QUIT, ...
                ...
            action = device.read(obs)          # joint targets, gripper last per arm

No device starts a thread or blocks: each polls its input (a terminal, ``/dev/input/jsN``,
``/dev/hidrawN``) without waiting, inside ``read`` and ``events``, so both are cheap enough to
call every tick, also between episodes.

``CartesianTeleop`` turns an end-effector velocity (a twist) into joint targets: it keeps a
target tool pose, moves it by ``twist() / control_hz`` on every ``read``, and solves inverse
kinematics (``envs.so100.ArmIK``, damped least squares on the arm's MuJoCo model) from the
joints it commanded last. The SO-100 has five arm joints, so a tool pose has five degrees of
freedom: the position (3), the tilt of the tool within the arm's vertical plane (pitch) and
the turn of the gripper about its own axis (yaw). Motion is expressed in the arm's base frame:
x forward, y left, z up.

mujoco and the arm model (``envs.so100``) are imported when a Cartesian device first solves
inverse kinematics: a leader arm or a scripted expert does not load them.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from imitation.errors import ConfigError

log = logging.getLogger(__name__)

ARM_DOF = 5  # arm joints of an SO-100, the gripper not counted
ROT_WEIGHT = 0.3  # rad -> m, as envs.so100.ArmIK.solve weighs rotation errors
DEFAULT_XML = Path(__file__).resolve().parents[2] / "envs" / "assets" / "so100.xml"


class Event(enum.Enum):
    """An operator's request, from a device's keys or buttons."""

    TOGGLE = "toggle"  # start an episode, or save it when one is recording (Enter / A / left button)
    RERECORD = "rerecord"  # drop the current episode and record it again (same scene)
    DISCARD = "discard"  # drop the current episode
    QUIT = "quit"  # stop recording (the store is closed cleanly)
    SPEED_UP = "speed_up"  # handled by Cartesian devices; reported so that a UI can show it
    SPEED_DOWN = "speed_down"


class Teleop(ABC):
    """A source of joint targets and episode events, driven by a person (or a script).

    ``read(obs)`` returns the robot's joint targets for this tick, in the layout of
    ``obs["state"]`` (radians, gripper last per arm, in [0, 1]). ``events()`` returns the events
    since its last call and never blocks. ``reset(obs)`` starts a new episode from the current
    pose. ``help`` is the text of keys/buttons for a UI and ``--help``.
    """

    name: str = "teleop"
    help: str = ""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._queue: list[Event] = []

    def connect(self) -> None:  # noqa: B027 - optional: not every device opens anything
        """Open the device."""

    def close(self) -> None:  # noqa: B027
        """Release the device (and restore a terminal's mode). Safe to call twice."""

    @abstractmethod
    def read(self, obs: dict[str, Any]) -> np.ndarray:
        """Joint targets for this tick, given the current observation."""

    def reset(self, obs: dict[str, Any]) -> None:  # noqa: B027
        """A new episode: take the current pose in ``obs["state"]`` as the one to hold."""

    def end_episode(self) -> None:  # noqa: B027
        """The recorder's notice that the current episode was saved or dropped (optional; a
        scripted device then reports TOGGLE again to start the next one)."""

    def poll(self) -> None:  # noqa: B027
        """Take in whatever input is waiting (never blocks); ``read`` and ``events`` call it."""

    def events(self) -> list[Event]:
        """Events since the last call (possibly none); never blocks."""
        self.poll()
        with self._lock:
            out, self._queue = self._queue, []
        return out

    def status(self) -> str:
        """A short line for a UI (speed, gripper); empty where there is nothing to show."""
        return ""

    def emit(self, event: Event) -> None:
        """Queue an event for the next ``events()`` call."""
        with self._lock:
            self._queue.append(event)

    def __enter__(self) -> Teleop:
        self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ------------------------------------------------------------------------------------ geometry
def axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix (3, 3) by ``angle`` (rad) about the unit vector ``axis`` (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


def tool_rotation(plane_dir: np.ndarray, pitch: float, yaw: float) -> np.ndarray:
    """Tool rotation (base frame) for a tool that points down turned by ``yaw`` about the
    vertical (its finger axis at angle ``yaw`` from x), then tilted by ``pitch`` about the normal
    of the arm's vertical plane (``plane_dir``: the plane's horizontal unit direction).
    Positive pitch swings the tool's tip back toward the base."""
    down = np.column_stack(
        [[math.cos(yaw), math.sin(yaw), 0.0], [math.sin(yaw), -math.cos(yaw), 0.0], [0.0, 0.0, -1.0]]
    )
    normal = np.cross([0.0, 0.0, 1.0], plane_dir)
    return axis_rotation(normal, pitch) @ down


def tool_angles(rot: np.ndarray, plane_dir: np.ndarray) -> tuple[float, float]:
    """The ``(pitch, yaw)`` of ``tool_rotation`` that give ``rot`` (3, 3)."""
    z = rot[:, 2]
    pitch = math.atan2(-float(z @ plane_dir), -float(z[2]))
    normal = np.cross([0.0, 0.0, 1.0], plane_dir)
    x = axis_rotation(normal, -pitch) @ rot[:, 0]
    return pitch, math.atan2(float(x[1]), float(x[0]))


def wrap_near(angle: float, ref: float) -> float:
    """``angle`` plus a multiple of 2 pi, as close as possible to ``ref``."""
    return ref + (angle - ref + math.pi) % (2 * math.pi) - math.pi


# ------------------------------------------------------------------------------------ Cartesian
class CartesianTeleop(Teleop):
    """End-effector velocity commands turned into joint targets by IK on the arm's MuJoCo model.

    Subclasses implement ``twist()``: ``(vx, vy, vz, wx, wy, wz)``, linear in m/s in the arm's
    base frame (x forward, y left, z up) and angular in rad/s about the tool: ``wy`` tilts the
    tool within the arm's vertical plane (positive: tip back toward the base), ``wz`` turns the
    gripper about its own axis (positive: clockwise seen from above when the tool points down),
    ``wx`` is a rotation a five-joint arm cannot make and is ignored. ``speed_m_s`` and
    ``angular_speed_rad_s`` are the current speed level's full-scale speeds.

    Each ``read`` is one tick of ``1 / control_hz`` s (not measured time): the target moves by
    the twist times the tick, clamped to ``workspace_m`` (a box in the base frame that a target
    outside it, e.g. a reset pose, may only move toward), and IK is solved from the last
    solution. A step is refused when it takes the target out of reach (the IK then misses it by
    more than ``reach_tol_m`` / ``reach_tol_rad``, and by more than before) or toward a
    singularity past ``min_singular`` (the smallest singular value of the arm's Jacobian; e.g.
    the arm stretched out, where tiny moves need big joint moves): the target stops at the edge
    of what the arm reaches, never runs ahead of it, and a reversed command acts at once. A step
    whose joint moves would exceed ``max_joint_step_rad`` (default 2 rad/s) is shortened to fit,
    so the commanded joints, which move at most that much per tick, stay on the path asked for.
    The gripper moves toward its goal (toggled open/closed) by at most ``gripper_step`` per tick.

    ``xml`` is the arm's MJCF (default ``envs/assets/so100.xml``); or pass a compiled ``model``.
    ``prefix`` names one arm of a multi-arm model (e.g. ``"right/"``) and ``arm_index`` its place
    in the state vector (six values per arm); other arms hold their pose from ``reset``.
    """

    SPEEDS_M_S = (0.02, 0.05, 0.1)
    ANGULAR_SPEEDS_RAD_S = (0.25, 0.5, 1.0)
    WORKSPACE_M = ((0.05, -0.35, 0.005), (0.40, 0.35, 0.40))
    PITCH_LIMIT_RAD = 1.3

    def __init__(
        self,
        control_hz: float = 50.0,
        xml: str | Path | None = None,
        prefix: str = "",
        *,
        model: Any = None,
        arm_index: int = 0,
        speed_level: int = 1,
        speeds_m_s: tuple[float, ...] | None = None,
        angular_speeds_rad_s: tuple[float, ...] | None = None,
        max_joint_step_rad: float | None = None,
        workspace_m: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None,
        reach_tol_m: float = 0.002,
        reach_tol_rad: float = 0.02,
        min_singular: float = 0.02,
        gripper_step: float = 0.1,
    ) -> None:
        super().__init__()
        if not (isinstance(control_hz, int | float) and math.isfinite(control_hz) and control_hz > 0):
            raise ConfigError(f"teleop: control_hz={control_hz!r} must be a positive number of Hz")
        self.control_hz = float(control_hz)
        self.xml = Path(xml) if xml is not None else DEFAULT_XML
        if model is None and not self.xml.is_file():
            raise ConfigError(f"teleop: arm model {self.xml} does not exist; pass xml= the arm's MJCF file")
        self._model = model
        self.prefix = prefix
        if arm_index < 0:
            raise ConfigError(f"teleop: arm_index={arm_index} must be ≥ 0")
        self.arm_index = arm_index
        self.speeds_m_s = tuple(speeds_m_s or self.SPEEDS_M_S)
        self.angular_speeds_rad_s = tuple(angular_speeds_rad_s or self.ANGULAR_SPEEDS_RAD_S)
        if len(self.speeds_m_s) != len(self.angular_speeds_rad_s) or not all(
            s > 0 for s in self.speeds_m_s + self.angular_speeds_rad_s
        ):
            raise ConfigError(
                f"teleop: speeds_m_s {self.speeds_m_s} and angular_speeds_rad_s {self.angular_speeds_rad_s} "
                "must be positive and of the same length (one pair per speed level)"
            )
        if not 0 <= speed_level < len(self.speeds_m_s):
            raise ConfigError(
                f"teleop: speed_level={speed_level} must be in 0..{len(self.speeds_m_s) - 1} "
                f"(levels: {', '.join(f'{s} m/s' for s in self.speeds_m_s)})"
            )
        self.speed_level = speed_level
        self.max_joint_step_rad = (
            float(max_joint_step_rad) if max_joint_step_rad is not None else 2.0 / self.control_hz
        )
        if not self.max_joint_step_rad > 0:
            raise ConfigError(f"teleop: max_joint_step_rad={max_joint_step_rad!r} must be > 0")
        lo, hi = workspace_m or self.WORKSPACE_M
        self.workspace_lo, self.workspace_hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        if self.workspace_lo.shape != (3,) or not (self.workspace_lo < self.workspace_hi).all():
            raise ConfigError(f"teleop: workspace_m={workspace_m!r} must be ((x, y, z) low, (x, y, z) high)")
        self.reach_tol_m, self.reach_tol_rad = float(reach_tol_m), float(reach_tol_rad)
        self.min_singular = float(min_singular)
        self.gripper_step = float(gripper_step)
        self._ik: Any = None
        self._base_pos = np.zeros(3)
        self._base_rot = np.eye(3)
        self._state: np.ndarray | None = None  # held values of every joint (other arms keep theirs)
        self._q: np.ndarray | None = None  # commanded arm joints (5,)
        self._gripper = 1.0
        self._gripper_goal = 1.0
        self._pos = np.zeros(3)  # target tool position, base frame (m)
        self._pitch = 0.0
        self._yaw = 0.0
        self._q_goal = np.zeros(ARM_DOF)  # the IK solution for the target
        self._miss = 0.0  # how far the IK misses the target, in tolerances
        self._sigma = 0.0  # smallest singular value of the Jacobian at the target's solution

    # -------------------------------------------------------------- for subclasses
    @abstractmethod
    def twist(self) -> np.ndarray:
        """``(vx, vy, vz, wx, wy, wz)`` (m/s, rad/s) wanted now; see the class docstring."""

    @property
    def speed_m_s(self) -> float:
        return self.speeds_m_s[self.speed_level]

    @property
    def angular_speed_rad_s(self) -> float:
        return self.angular_speeds_rad_s[self.speed_level]

    def emit(self, event: Event) -> None:
        if event is Event.SPEED_UP:
            self.speed_level = min(self.speed_level + 1, len(self.speeds_m_s) - 1)
        elif event is Event.SPEED_DOWN:
            self.speed_level = max(self.speed_level - 1, 0)
        super().emit(event)

    def toggle_gripper(self) -> None:
        """Close an open (or opening) gripper, open a closed one."""
        self._gripper_goal = 0.0 if self._gripper_goal >= 0.5 else 1.0

    def set_gripper(self, open_: bool) -> None:
        self._gripper_goal = 1.0 if open_ else 0.0

    @property
    def gripper_open(self) -> bool:
        return self._gripper_goal >= 0.5

    def status(self) -> str:
        grip = "open" if self.gripper_open else "closed"
        return f"speed {self.speed_m_s:g} m/s, gripper {grip}"

    @property
    def target(self) -> tuple[np.ndarray, float, float]:
        """Target tool position (base frame, m), pitch and yaw (rad)."""
        return self._pos.copy(), self._pitch, self._yaw

    # -------------------------------------------------------------- kinematics
    @property
    def ik(self) -> Any:
        """The arm's ``ArmIK``, built on first use (events-only devices never need it)."""
        if self._ik is None:
            import mujoco

            from envs.so100 import ArmIK

            model = self._model or mujoco.MjModel.from_xml_path(str(self.xml))
            self._ik = ArmIK(model, self.prefix)
            data = mujoco.MjData(model)
            mujoco.mj_kinematics(model, data)
            base = model.body(f"{self.prefix}base").id
            self._base_pos = data.xpos[base].copy()
            self._base_rot = data.xmat[base].reshape(3, 3).copy()
        return self._ik

    def _forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool position and rotation in the arm's base frame at joints ``q`` (5,)."""
        pos, rot = self.ik.forward(q)
        return self._base_rot.T @ (pos - self._base_pos), self._base_rot.T @ rot

    @staticmethod
    def _plane_dir(pos: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Horizontal direction of the arm's vertical plane: toward ``pos``, on the side the pan
        joint faces (the pan joint's own direction when ``pos`` is near the base axis)."""
        pan = np.array([math.cos(q[0]), math.sin(q[0]), 0.0])
        r = math.hypot(pos[0], pos[1])
        if r < 0.03:
            return pan
        d = np.array([pos[0] / r, pos[1] / r, 0.0])
        return d if d @ pan >= 0 else -d

    def _arm_slice(self, n: int) -> slice:
        start = 6 * self.arm_index
        if n < start + 6:
            raise ValueError(
                f"teleop: obs['state'] has {n} values; arm {self.arm_index} needs values "
                f"{start}..{start + 5} (5 joints + gripper per arm). Check arm_index."
            )
        return slice(start, start + 6)

    # -------------------------------------------------------------- the interface
    def reset(self, obs: dict[str, Any]) -> None:
        state = np.asarray(obs["state"], dtype=np.float64).reshape(-1)
        arm = state[self._arm_slice(len(state))]
        self._state = state.copy()
        self._q = arm[:ARM_DOF].copy()
        self._gripper = self._gripper_goal = float(np.clip(arm[ARM_DOF], 0.0, 1.0))
        pos, rot = self._forward(self._q)
        self._pos = pos
        self._pitch, self._yaw = tool_angles(rot, self._plane_dir(pos, self._q))
        self._q_goal = self._q.copy()
        self._miss = 0.0
        self._sigma = self._singular(self._q)

    def read(self, obs: dict[str, Any]) -> np.ndarray:
        if self._q is None:
            self.reset(obs)
        self.poll()
        assert self._q is not None and self._state is not None
        tw = np.asarray(self.twist(), dtype=np.float64).reshape(6)
        tw = np.where(np.isfinite(tw), tw, 0.0)
        if tw.any():
            self._step_target(tw / self.control_hz)
        step = self.max_joint_step_rad
        self._q = self._q + np.clip(self._q_goal - self._q, -step, step)
        self._gripper += float(
            np.clip(self._gripper_goal - self._gripper, -self.gripper_step, self.gripper_step)
        )
        action = self._state.copy()
        sl = self._arm_slice(len(action))
        action[sl] = np.concatenate([self._q, [self._gripper]])
        return action.astype(np.float32)

    def _step_target(self, delta: np.ndarray, shorten: bool = True) -> None:
        """Move the target by ``delta`` (a twist times one tick) unless that takes it out of
        reach or closer to a singularity than ``min_singular``; shorten a step whose joint moves
        exceed one tick's bound."""
        lo, hi = self.workspace_lo, self.workspace_hi
        # The box clamps the position; a target outside it (a reset pose) may only move inward.
        pos = np.clip(self._pos + delta[:3], np.minimum(lo, self._pos), np.maximum(hi, self._pos))
        lim = self.PITCH_LIMIT_RAD
        pitch = float(np.clip(self._pitch + delta[4], min(-lim, self._pitch), max(lim, self._pitch)))
        # Turning about the tool axis (+z, pointing out of the gripper) lowers the yaw measured
        # about the base's +z, whatever the tilt (the tool-down frame flips z).
        yaw = self._yaw - delta[5]
        rot = tool_rotation(self._plane_dir(pos, self._q_goal), pitch, yaw)
        q = self.ik.solve(self._q_goal, self._base_pos + self._base_rot @ pos, self._base_rot @ rot, iters=20)
        reached, reached_rot = self._forward(q)
        r_pitch, r_yaw = tool_angles(reached_rot, self._plane_dir(reached, q))
        miss = max(
            float(np.linalg.norm(pos - reached)) / self.reach_tol_m,
            abs(pitch - r_pitch) / self.reach_tol_rad,
            abs(wrap_near(r_yaw, yaw) - yaw) / self.reach_tol_rad,
        )
        if miss > 1.0 and miss > self._miss:
            return  # out of reach: keep the previous target (and its solution)
        sigma = self._singular(q)
        if sigma < self.min_singular and sigma < self._sigma:
            return  # toward a singularity (the arm stretched out), where small moves need big joint moves
        jump = float(np.abs(q - self._q_goal).max())
        if shorten and jump > self.max_joint_step_rad:
            # Joint moves scale about linearly with a short step: one that fits the bound.
            self._step_target(delta * (0.9 * self.max_joint_step_rad / jump), shorten=False)
            return
        self._pos, self._pitch, self._yaw = pos, pitch, yaw
        self._q_goal, self._miss, self._sigma = q, miss, sigma

    def _singular(self, q: np.ndarray) -> float:
        """Smallest singular value of the arm's Jacobian at ``q`` (position, and rotation weighted
        as the IK weighs it): 0 at a singularity."""
        import mujoco

        ik = self.ik
        ik.forward(q)
        mujoco.mj_comPos(ik.model, ik.data)
        jacp, jacr = np.zeros((3, ik.model.nv)), np.zeros((3, ik.model.nv))
        mujoco.mj_jacSite(ik.model, ik.data, jacp, jacr, ik.site)
        jac = np.vstack([jacp[:, ik.dof_adr], ROT_WEIGHT * jacr[:, ik.dof_adr]])
        return float(np.linalg.svd(jac, compute_uv=False)[-1])

    def speed_text(self) -> str:
        return ", ".join(f"{s:g}" for s in self.speeds_m_s) + " m/s"
