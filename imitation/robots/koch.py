"""Koch v1.1 (Dynamixel): follower (XL430-W250 on ids 1-2, XL330-M288 on 3-6) and leader (six
XL330-M077).

Follower joints run in position mode, so the servos enforce the calibrated position limits
themselves; its gripper runs in current-based position mode under the torque limit of the
config. The leader's gripper is a trigger: current-based position mode with a small current
holds it open like a spring, and the operator squeezes against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from imitation.robots.arm import CURRENT_POSITION, BusArm
from imitation.robots.config import RobotConfig

TRIGGER_CURRENT_SHARE = 0.1  # of the servo's current limit: a light spring


class KochFollower(BusArm):
    CONFIG = "koch"

    def __init__(self, port: str, config: RobotConfig | str | Path | None = None, **kw: Any) -> None:
        super().__init__(config or self.CONFIG, port, **kw)


class KochLeader(BusArm):
    """The Koch leader: joints free (torque off), the gripper a sprung trigger."""

    CONFIG = "koch_leader"

    def __init__(self, port: str, config: RobotConfig | str | Path | None = None, **kw: Any) -> None:
        super().__init__(config or self.CONFIG, port, **kw)

    def connect(self) -> None:
        super().connect()
        g = self.names[-1]
        bus = self.bus
        if bus.read("Operating_Mode", g) != CURRENT_POSITION:
            bus.write_eeprom("Operating_Mode", g, CURRENT_POSITION)
        if "Current_Limit" in bus.model(g).registers and "Goal_Current" in bus.model(g).registers:
            bus.write("Goal_Current", g, int(bus.read("Current_Limit", g) * TRIGGER_CURRENT_SHARE))
        cal = self._require_calibration()
        bus.write("Goal_Position", g, cal.to_ticks(np.array([1.0]), (g,))[g])  # rests open
        bus.enable_torque([g])

    def action(self) -> np.ndarray:
        return np.clip(self.read_joints(), self.spec.lower, self.spec.upper)
