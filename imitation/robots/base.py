"""The Robot interface: what the recorder, the evaluator and the deploy loop talk to.

One loop shape serves all of them::

    with robot:
        obs = robot.observe()
        sent = robot.act(source(obs))

A simulated arm and a real arm differ only behind this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CameraSpec:
    name: str
    height: int
    width: int


@dataclass(frozen=True)
class RobotSpec:
    """What a robot offers: joints (gripper last, radians / [0, 1]), cameras, rate, observations.

    ``joint_names``, ``lower`` and ``upper`` name and bound the action's values. They are joints
    (position targets) when ``action_kind`` is ``joints``, as on every arm of this project; a
    third-party env's action may be something else (``ee_delta``, ``ee_pose``, ``torque``, ``other``:
    ``envs.mapping``), and is then recorded as such, never as joints."""

    name: str
    joint_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    control_hz: float
    cameras: tuple[CameraSpec, ...] = ()
    # Size of privileged object poses ("env_state"), 0 when the robot cannot provide them.
    env_state_dim: int = 0
    # Size of ``state`` when it is not the joint positions (a third-party env's observation).
    state_dim: int | None = None
    # Names of that state's values (default s0, s1, ...); a state of joint positions has the joints'.
    state_names: tuple[str, ...] | None = None
    # What the action's values are: joint position targets, or another kind (see above).
    action_kind: str = "joints"
    # Names of the action's gripper values; None: every value whose name holds "grip".
    grippers: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def gripper_dims(self) -> tuple[int, ...]:
        """Indices of the action's gripper values: those ``grippers`` names, or by default every
        value whose name holds "grip" (``gripper``, ``left_gripper``, Meta-World's ``grip``)."""
        if self.grippers is not None:
            return tuple(self.joint_names.index(n) for n in self.grippers)
        return tuple(i for i, n in enumerate(self.joint_names) if "grip" in n.lower())

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as recorded in a demo store's ``robot`` attribute: ``joint_names`` and
        ``limits_rad`` for joint actions; ``action_kind``, ``action_names`` and ``action_limits``
        (and no joints) for an action of another kind."""
        bounds = [[float(lo), float(hi)] for lo, hi in zip(self.lower, self.upper, strict=True)]
        if self.action_kind == "joints":
            action: dict[str, Any] = {"joint_names": list(self.joint_names), "limits_rad": bounds}
        else:
            action = {
                "joint_names": [],
                "action_kind": self.action_kind,
                "action_names": list(self.joint_names),
                "action_limits": bounds,
            }
        return {
            "name": self.name,
            **action,
            "control_hz": self.control_hz,
            "cameras": {c.name: [c.height, c.width] for c in self.cameras},
            "env_state_dim": self.env_state_dim,
            **({"state_dim": self.state_dim} if self.state_dim is not None else {}),
            **({"state_names": list(self.state_names)} if self.state_names else {}),
            **self.extra,
        }


def clip_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``action`` (one, or a batch along the first axis) within the action space's bounds
    [``low``, ``high``], as float32, and whether each action had a value outside them (a bool, or
    one per action of the batch): what the recorder and the evaluator send, and what they count."""
    a = np.asarray(action, dtype=np.float32)
    sent = np.clip(a, low, high).astype(np.float32)
    return sent, np.any((a < low) | (a > high), axis=-1)


class Robot(ABC):
    """A robot arm (or several) driven by joint position targets at ``spec.control_hz``."""

    spec: RobotSpec

    @abstractmethod
    def connect(self) -> None:
        """Open the connection and make the robot ready to observe and act."""

    @abstractmethod
    def observe(self) -> dict[str, np.ndarray]:
        """``state``, ``images/<camera>``, ``env_state`` where available, and ``timestamp`` (s)."""

    @abstractmethod
    def act(self, action: np.ndarray) -> np.ndarray:
        """Send joint targets; returns the action actually sent (after clipping to the limits)."""

    @abstractmethod
    def disconnect(self) -> None:
        """Stop and release the robot (a real arm turns its torque off)."""

    def hold(self) -> np.ndarray | None:
        """Hold the current pose (a real arm: goal = present position); returns that pose if known.
        A simulated arm does not move between commands, so by default nothing is sent."""
        return None

    def release(self) -> None:  # noqa: B027 - optional: nothing to release in simulation
        """Turn torque off but stay connected (emergency stop). Nothing to do in simulation."""

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()
