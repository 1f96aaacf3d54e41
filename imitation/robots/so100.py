"""SO-100 and SO-101 (six Feetech STS3215 each): follower and leader arms.

The two generations share servos, ids and the joint convention (``configs/robots/so100.yaml``,
``so101.yaml``, ``so100_leader.yaml``); they differ in printed parts only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from imitation.robots.arm import BusArm
from imitation.robots.config import RobotConfig


class SO100Follower(BusArm):
    """The SO-100 follower: driven by joint targets, limits held in its servos."""

    CONFIG = "so100"

    def __init__(self, port: str, config: RobotConfig | str | Path | None = None, **kw: Any) -> None:
        super().__init__(config or self.CONFIG, port, **kw)


class SO101Follower(SO100Follower):
    CONFIG = "so101"


class SO100Leader(BusArm):
    """The SO-100/101 leader: moved by hand with torque off; ``read_joints`` is the teleop reading."""

    CONFIG = "so100_leader"

    def __init__(self, port: str, config: RobotConfig | str | Path | None = None, **kw: Any) -> None:
        super().__init__(config or self.CONFIG, port, **kw)

    def action(self) -> np.ndarray:
        """The follower's joint targets: the leader's joints, gripper in [0, 1] (clipped)."""
        return np.clip(self.read_joints(), self.spec.lower, self.spec.upper)
