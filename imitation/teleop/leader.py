"""Leader-arm teleop: the operator moves a leader arm by hand and the follower copies it.

The leader's driver already maps its joints onto the follower's convention (radians, the
follower's zero and directions, gripper in [0, 1]) through its calibration: ``SO100Leader``
and ``KochLeader`` (``imitation.robots``) return the follower's joint targets from
``action()``. A leader arm has no buttons, so the episode events come from another device:
by default a keyboard in events-only mode (Enter, r, d, q).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from imitation.teleop.base import Event, Teleop


class LeaderArm(Protocol):
    def connect(self) -> None: ...
    def disconnect(self) -> None: ...
    def action(self) -> np.ndarray: ...


class LeaderTeleop(Teleop):
    """The follower's joint targets from one leader arm, or several (bimanual: in the order of
    the follower's arms), and events from ``events`` (any object with ``events()``; its
    ``connect``/``close`` are called with this device's when it has them).
    """

    name = "leader"

    def __init__(self, leader: LeaderArm | Sequence[LeaderArm], events: Any = None) -> None:
        super().__init__()
        self.leaders = list(leader) if isinstance(leader, list | tuple) else [leader]
        if not self.leaders:
            raise ValueError("leader teleop: no leader arm given")
        self.event_source = events
        lines = ["Leader arm: move it by hand; the follower copies its joints and gripper."]
        if events is not None and getattr(events, "help", ""):
            lines.append(events.help)
        elif events is None:
            lines.append("(no device for episode events)")
        self.help = "\n".join(lines)

    def connect(self) -> None:
        connected = []
        try:
            for arm in self.leaders:
                arm.connect()
                connected.append(arm)
            if hasattr(self.event_source, "connect"):
                self.event_source.connect()
        except BaseException:
            for arm in connected:
                arm.disconnect()
            raise

    def close(self) -> None:
        try:
            if hasattr(self.event_source, "close"):
                self.event_source.close()
        finally:
            for arm in self.leaders:
                arm.disconnect()

    def read(self, obs: dict[str, Any]) -> np.ndarray:
        action = np.concatenate(
            [np.asarray(arm.action(), dtype=np.float32).reshape(-1) for arm in self.leaders]
        )
        state = obs.get("state") if obs else None
        if state is not None and np.size(state) != action.size:
            raise ValueError(
                f"leader teleop: the leader arm(s) give {action.size} joint values, the robot's state has "
                f"{np.size(state)}; use a leader per follower arm, in the follower's arm order"
            )
        return action

    def events(self) -> list[Event]:
        out = super().events()
        if self.event_source is not None:
            out += list(self.event_source.events())
        return out
