"""Servo buses of real arms: Dynamixel Protocol 2.0 and Feetech STS, register tables per model,
and (``buses.emulator``, imported on its own) a servo emulator on a pseudo-terminal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .bus import BusError, Motor, MotorBus, ServoError
from .dynamixel import DynamixelBus
from .feetech import FeetechBus
from .tables import MODELS, ModelTable, Register

__all__ = [
    "Motor",
    "MotorBus",
    "BusError",
    "ServoError",
    "make_bus",
    "BUSES",
    "MODELS",
    "ModelTable",
    "Register",
]

BUSES: dict[str, type[MotorBus]] = {"dynamixel": DynamixelBus, "feetech": FeetechBus}
"""Bus classes by protocol (a robot config's ``bus.protocol``)."""


def make_bus(
    protocol: str, port: str, motors: Mapping[str, Motor | Mapping[str, Any]], **kw: Any
) -> MotorBus:
    """A bus for ``protocol`` ("dynamixel" or "feetech"); ``motors`` may be plain mappings
    ``{"id": 1, "model": "sts3215"}`` as in a robot config's ``bus.motors``. ``kw`` go to the bus."""
    if protocol not in BUSES:
        raise ValueError(f"unknown bus protocol {protocol!r}; choose one of: {', '.join(BUSES)}")
    parsed = {}
    for name, m in motors.items():
        if isinstance(m, Motor):
            parsed[name] = m
            continue
        try:
            parsed[name] = Motor(id=int(m["id"]), model=str(m["model"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"motor {name}: expected {{id: <int>, model: <name>}}, got {m!r}") from None
    return BUSES[protocol](port, parsed, **kw)
