"""Teleoperation devices: a person (or a script) gives the robot's joint targets and the
episode events (start/save, re-record, discard, quit).

- ``keyboard``: a plain terminal or a camera window's keys (``keyboard.py``);
- ``gamepad``: the Linux joystick API, ``/dev/input/jsN`` (``gamepad.py``);
- ``spacemouse``: a 3Dconnexion SpaceMouse over Linux hidraw (``spacemouse.py``);
- ``so100-leader`` / ``koch-leader``: a leader arm through the servo driver layer (``leader.py``);
- ``aloha-leader`` / ``so101-bimanual-leader``: a pair of leader arms (ALOHA's two WidowX 250 S,
  two SO-100/101 leaders), each mapped onto its follower (``imitation.robots.bimanual``);
- ``scripted``: a simulated task's expert (``scripted.py``).

The Cartesian devices (keyboard, gamepad, SpaceMouse) turn end-effector velocities into joint
targets by inverse kinematics on the arm's MuJoCo model (``base.CartesianTeleop``). Gamepad and
SpaceMouse read the kernel's interfaces directly, with no library, so they work headless, on
Linux only. Their parsers are tested with recorded input; the real devices are not part of the
test suite.

``make_teleop(name, **kw)`` builds one by name; ``TELEOPS`` lists the names.

Each device's module is imported when the device is built (inside its builder): a keyboard
session loads no gamepad, SpaceMouse or leader-arm code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imitation.errors import ConfigError
from imitation.teleop.base import CartesianTeleop, Event, Teleop

__all__ = ["PAIRS", "TELEOPS", "CartesianTeleop", "Event", "Teleop", "leader_pair_has_ports", "make_teleop"]


def _keyboard(**kw: Any) -> Teleop:
    from imitation.teleop.keyboard import KeyboardTeleop

    return KeyboardTeleop(**kw)


def _gamepad(**kw: Any) -> Teleop:
    from imitation.teleop.gamepad import GamepadTeleop

    return GamepadTeleop(**kw)


def _spacemouse(**kw: Any) -> Teleop:
    from imitation.teleop.spacemouse import SpaceMouseTeleop

    return SpaceMouseTeleop(**kw)


def _leader(
    kind: str, port: str | None = None, events: Any = None, control_hz: float = 50.0, **kw: Any
) -> Teleop:
    """A leader arm on ``port`` (other keywords go to the arm's driver: ``config``,
    ``calibration``, ...); events from ``events`` or else a keyboard in events-only mode.
    ``control_hz`` is accepted like every device's (a leader arm is read as it is)."""
    from imitation.teleop.keyboard import KeyboardTeleop
    from imitation.teleop.leader import LeaderTeleop

    if kind in PAIRS:  # each arm's port from --leader-port left=...,right=... or the config
        from imitation.robots.factory import make_robot

        arm: Any = make_robot(PAIRS[kind], port, **kw)
    elif not port:
        raise ConfigError(f"teleop {kind}: a leader arm needs its serial port, e.g. port=/dev/ttyACM1")
    elif kind == "koch-leader":
        from imitation.robots.koch import KochLeader

        arm = KochLeader(port, **kw)
    else:
        from imitation.robots.so100 import SO100Leader

        arm = SO100Leader(port, **kw)
    teleop = LeaderTeleop(arm, events if events is not None else KeyboardTeleop(control_hz, events_only=True))
    teleop.name = kind
    return teleop


def _scripted(**kw: Any) -> Teleop:
    from imitation.teleop.scripted import ScriptedTeleop

    return ScriptedTeleop(**kw)


# Leader pairs: teleop name -> the robot config of the pair (configs/robots/).
PAIRS = {"aloha-leader": "aloha_leader", "so101-bimanual-leader": "so101_bimanual_leader"}

TELEOPS: dict[str, Callable[..., Teleop]] = {
    "keyboard": _keyboard,
    "gamepad": _gamepad,
    "spacemouse": _spacemouse,
    "so100-leader": lambda **kw: _leader("so100-leader", **kw),
    "koch-leader": lambda **kw: _leader("koch-leader", **kw),
    "aloha-leader": lambda **kw: _leader("aloha-leader", **kw),
    "so101-bimanual-leader": lambda **kw: _leader("so101-bimanual-leader", **kw),
    "scripted": _scripted,
}


def leader_pair_has_ports(name: str) -> bool:
    """Whether teleop ``name`` is a leader pair whose config names each arm's port."""
    if name not in PAIRS:
        return False
    from imitation.robots.config import load_robot_config

    return all(p.port for p in load_robot_config(PAIRS[name]).arms.values())


def make_teleop(name: str, **kw: Any) -> Teleop:
    """The teleop device called ``name`` (one of ``TELEOPS``), built with ``kw``."""
    try:
        build = TELEOPS[name]
    except KeyError:
        raise ConfigError(f"unknown teleop device {name!r}; choose one of: {', '.join(TELEOPS)}") from None
    return build(**kw)
