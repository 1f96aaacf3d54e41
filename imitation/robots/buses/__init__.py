"""Servo buses of real arms: Dynamixel Protocol 2.0 and Feetech STS, register tables per model,
and (``buses.emulator``, imported on its own) a servo emulator on a pseudo-terminal."""

from .bus import BusError, Motor, MotorBus, ServoError, make_bus
from .tables import MODELS, ModelTable, Register

__all__ = ["Motor", "MotorBus", "BusError", "ServoError", "make_bus", "MODELS", "ModelTable", "Register"]
