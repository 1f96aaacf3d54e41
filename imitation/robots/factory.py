"""Which class drives an arm of a given config: the one place a new arm is registered.

A robot config (``configs/robots/<name>.yaml``) names its arm; ``ARMS`` maps that name to the class
that knows the arm's quirks (its calibration, its gripper). A config of another name runs on the
generic ``BusArm``, which needs nothing but the config (the ViperX 300 S and WidowX 250 S of
ALOHA do), and a config of several arms on ``BimanualRobot``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imitation.errors import ConfigError
from imitation.robots.arm import BusArm
from imitation.robots.base import Robot
from imitation.robots.bimanual import BimanualRobot, calibration_dir, parse_ports
from imitation.robots.config import RobotConfig, load_robot_config
from imitation.robots.koch import KochFollower, KochLeader
from imitation.robots.so100 import SO100Follower, SO100Leader, SO101Follower

ARMS: dict[str, type[BusArm]] = {
    "so100": SO100Follower,
    "so101": SO101Follower,
    "so100_leader": SO100Leader,
    "koch": KochFollower,
    "koch_leader": KochLeader,
}


def make_robot(robot: RobotConfig | str | Path, port: str | None, **kw: Any) -> Robot:
    """A real arm from its config (or its name or path): ``so100``, ``so101``, ``koch``, their
    leaders; a config of another name gets the generic ``BusArm``; a config of several arms
    (``aloha``, ``so101_bimanual``) a ``BimanualRobot``, ``port`` then ``left=<path>,right=<path>``
    or None for the ports its config names, ``calibration`` the directory of its arms' files."""
    config = robot if isinstance(robot, RobotConfig) else load_robot_config(robot)
    if config.arms:
        ports = parse_ports(config, port)
        folder = calibration_dir(config, kw.pop("calibration", None))
        whole = {k: kw.pop(k) for k in ("cameras", "env_state_source") if k in kw}
        arms = {
            a: make_robot(part.config, ports[a], calibration=folder / f"{a}.yaml", **kw)
            for a, part in config.arms.items()
        }
        return BimanualRobot(config, arms, **whole)
    if not port:
        raise ConfigError(f"robot {config.name} needs its serial port (--port)")
    cls = ARMS.get(config.name)
    return cls(port, config, **kw) if cls is not None else BusArm(config, port, **kw)
