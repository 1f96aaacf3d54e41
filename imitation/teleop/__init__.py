"""Teleoperation devices: a person (or a script) gives the robot's joint targets and the
episode events (start/save, re-record, discard, quit).

- ``keyboard``: a plain terminal or a camera window's keys (``keyboard.py``);
- ``gamepad``: the Linux joystick API, ``/dev/input/jsN`` (``gamepad.py``);
- ``spacemouse``: a 3Dconnexion SpaceMouse over Linux hidraw (``spacemouse.py``);
- ``so100-leader`` / ``koch-leader``: a leader arm through the servo driver layer (``leader.py``);
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

__all__ = ["TELEOPS", "CartesianTeleop", "Event", "Teleop", "make_teleop"]


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

    if not port:
        raise ConfigError(f"teleop {kind}: a leader arm needs its serial port, e.g. port=/dev/ttyACM1")
    if kind == "koch-leader":
        from imitation.robots.koch import KochLeader as Arm
    else:
        from imitation.robots.so100 import SO100Leader as Arm
    teleop = LeaderTeleop(
        Arm(port, **kw), events if events is not None else KeyboardTeleop(control_hz, events_only=True)
    )
    teleop.name = kind
    return teleop


def _scripted(**kw: Any) -> Teleop:
    from imitation.teleop.scripted import ScriptedTeleop

    return ScriptedTeleop(**kw)


TELEOPS: dict[str, Callable[..., Teleop]] = {
    "keyboard": _keyboard,
    "gamepad": _gamepad,
    "spacemouse": _spacemouse,
    "so100-leader": lambda **kw: _leader("so100-leader", **kw),
    "koch-leader": lambda **kw: _leader("koch-leader", **kw),
    "scripted": _scripted,
}


def make_teleop(name: str, **kw: Any) -> Teleop:
    """The teleop device called ``name`` (one of ``TELEOPS``), built with ``kw``."""
    try:
        build = TELEOPS[name]
    except KeyError:
        raise ConfigError(f"unknown teleop device {name!r}; choose one of: {', '.join(TELEOPS)}") from None
    return build(**kw)
