"""Calibration of a real arm: servo ticks onto the project's joint convention.

The convention is the arm's MJCF (``envs/assets/so100.xml``): 0 rad and the positive direction of
every joint; the gripper is one number in [0, 1], 0 closed, 1 open. A servo's reading maps to it as

    rad = sign * (ticks - zero) * 2π / ticks_per_turn        (joints)
    g   = (ticks - closed) / (open - closed)                   (gripper)

Calibration (``imitation calibrate``) walks the operator through three steps with torque off:

1. the zero pose (every joint at 0 rad, gripper closed): each servo's ``Homing_Offset`` is written
   so that this pose reads mid-range (2048), far from the wrap-around at 0/4095;
2. the reference pose (every joint turned +90° the way the MJCF counts positive, gripper open):
   gives each joint's sign and the gripper's open end;
3. the range of motion (each joint moved to both ends): gives the mechanical range.

The joint limits of the robot config, intersected with the measured range, are written into the
servos' own ``Min/Max_Position_Limit`` registers (they hold even when the host process is killed)
and everything goes to a calibration file. A robot refuses to move without a matching file.

A joint with two servos (``shadow:`` in the config, ``shadows.py``) is calibrated as one: its
shadow is unlinked first and set to run the same way round as its primary, both servos are
centred at the zero pose, the shadow must move with the primary to the reference pose, and it is
linked again last.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from imitation.errors import ImitationError
from imitation.robots.config import RobotConfig

MID = 2048
REFERENCE_RAD = math.pi / 2  # the reference pose: each joint at +90°


class CalibrationError(ImitationError):
    """A missing, invalid or mismatched calibration."""


def default_dir() -> Path:
    return Path(os.environ.get("IMITATION_HOME", Path.home() / ".imitation")) / "calibration"


def default_path(robot: str) -> Path:
    return default_dir() / f"{robot}.yaml"


@dataclass
class JointCalibration:
    id: int
    homing_offset: int
    sign: int  # +1 or -1 (joints); the gripper's direction is in closed/open
    zero: int  # reading at 0 rad
    range_min: int  # measured range of motion (readings)
    range_max: int
    closed: int | None = None  # gripper only: readings at 0 (closed) and 1 (open)
    open: int | None = None


@dataclass
class Calibration:
    robot: str
    protocol: str
    ticks_per_turn: int
    joints: dict[str, JointCalibration]
    created: str = ""
    # The shadow servos of joints with two (bus name, e.g. "shoulder_shadow"): their own ids and
    # offsets; they read as their primaries do, so the joint's conversion is the primary's.
    shadows: dict[str, JointCalibration] = field(default_factory=dict)

    # -------------------------------------------------------------- conversions
    def to_rad(self, ticks: dict[str, int], names: tuple[str, ...]) -> np.ndarray:
        out = np.empty(len(names))
        for i, n in enumerate(names):
            j = self.joints[n]
            if j.closed is not None and j.open is not None:
                out[i] = (ticks[n] - j.closed) / (j.open - j.closed)
            else:
                out[i] = j.sign * (ticks[n] - j.zero) * 2 * math.pi / self.ticks_per_turn
        return out

    def to_ticks(self, rad: np.ndarray, names: tuple[str, ...]) -> dict[str, int]:
        out = {}
        for n, v in zip(names, np.asarray(rad, dtype=np.float64), strict=True):
            j = self.joints[n]
            if j.closed is not None and j.open is not None:
                t = j.closed + float(v) * (j.open - j.closed)
            else:
                t = j.zero + j.sign * float(v) * self.ticks_per_turn / (2 * math.pi)
            out[n] = int(round(t))
        return out

    def tick_limits(
        self, names: tuple[str, ...], lower: np.ndarray, upper: np.ndarray
    ) -> dict[str, tuple[int, int]]:
        """Per servo: the config's joint limits in ticks, within the measured range of motion."""
        lo = self.to_ticks(lower, names)
        hi = self.to_ticks(upper, names)
        out = {}
        for n in names:
            j = self.joints[n]
            a, b = sorted((lo[n], hi[n]))
            a, b = max(a, j.range_min), min(b, j.range_max)
            if a >= b:
                raise CalibrationError(
                    f"{self.robot}: joint {n}'s limits and its measured range of motion "
                    f"({j.range_min}..{j.range_max} ticks) do not overlap; recalibrate"
                )
            out[n] = (a, b)
        return out

    # -------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "robot": self.robot,
            "protocol": self.protocol,
            "ticks_per_turn": self.ticks_per_turn,
            "created": self.created,
            "joints": {
                n: {k: v for k, v in asdict(j).items() if v is not None} for n, j in self.joints.items()
            },
        }
        if self.shadows:
            data["shadows"] = {
                n: {k: v for k, v in asdict(j).items() if v is not None} for n, j in self.shadows.items()
            }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path, config: RobotConfig) -> Calibration:
        path = Path(path)
        hint = f"run: imitation calibrate --robot {config.name} --port <port>"
        if not path.is_file():
            raise CalibrationError(
                f"{config.name}: no calibration file at {path}; the arm will not move uncalibrated ({hint})"
            )
        try:
            d = yaml.safe_load(path.read_text())
            joints = {n: JointCalibration(**j) for n, j in d["joints"].items()}
            pairs = {n: JointCalibration(**j) for n, j in (d.get("shadows") or {}).items()}
            cal = cls(
                d["robot"], d["protocol"], int(d["ticks_per_turn"]), joints, d.get("created", ""), pairs
            )
        except (yaml.YAMLError, KeyError, TypeError) as e:
            raise CalibrationError(f"{path}: not a valid calibration file ({e}); {hint}") from None
        if list(cal.joints) != list(config.joint_names):
            raise CalibrationError(
                f"{path}: calibrates joints {list(cal.joints)}, but {config.name} has {list(config.joint_names)}; {hint}"
            )
        for n, j in cal.joints.items():
            want = int(config.motors[n]["id"])
            if j.id != want:
                raise CalibrationError(
                    f"{path}: joint {n} is servo id {j.id}, the config says {want}; {hint}"
                )
            gripper = j.closed is not None
            if (gripper and j.open == j.closed) or (not gripper and j.sign not in (1, -1)):
                raise CalibrationError(f"{path}: joint {n} has an invalid calibration; {hint}")
        want_shadows = {name: sid for name, sid, _rev in config.shadows.values()}
        have_shadows = {n: j.id for n, j in cal.shadows.items()}
        if have_shadows != want_shadows:
            raise CalibrationError(
                f"{path}: calibrates shadow servos {have_shadows}, the config has {want_shadows}; {hint}"
            )
        return cal


# ------------------------------------------------------------------------------------ procedure
def _is_gripper(name: str) -> bool:
    return name.split("/")[-1] == "gripper"


def _set_offset(bus: Any, motor: str, reading: int, protocol: str) -> int:
    """Write the Homing_Offset that makes ``reading`` read MID; returns it.

    Vendors apply the offset with opposite signs (Dynamixel adds it, Feetech subtracts it), so the
    first guess is checked by reading back and flipped if needed."""
    guesses = (MID - reading, reading - MID) if protocol == "dynamixel" else (reading - MID, MID - reading)
    for off in guesses:
        try:
            bus.write_eeprom("Homing_Offset", motor, int(off))
        except ValueError:  # outside the register's range (Feetech: ±2047)
            continue
        now = bus.read("Present_Position", motor)
        if abs(now - MID) <= 2:
            return int(off)
    raise CalibrationError(
        f"{bus.port}: servo {motor}: could not centre its reading with Homing_Offset "
        f"(read {reading}); is the horn mounted half a turn off? Remount it and recalibrate"
    )


def calibrate(
    bus: Any,
    config: RobotConfig,
    *,
    ask: Callable[[str], None],
    sweep: Callable[[Callable[[], dict[str, int]]], None],
    ticks_per_turn: int = 4096,
) -> Calibration:
    """Run the procedure on a connected bus; ``ask(text)`` returns when the operator has done what
    ``text`` says; ``sweep(read)`` lets the operator move the joints and polls ``read`` meanwhile.
    Writes offsets and position limits into the servos; returns the calibration (not yet saved)."""
    from imitation.robots import shadows

    names = config.joint_names
    pairs = {j: name for j, (name, _sid, _rev) in config.shadows.items()}
    bus.disable_torque()
    if pairs:  # every write below goes to one servo alone; each shadow runs its primary's way round
        shadows.unlink(bus, config)
        for name, mode in shadows.drive_modes(bus, config).items():
            if bus.read("Drive_Mode", name) != mode:
                bus.write_eeprom("Drive_Mode", name, mode)
    if config.protocol == "feetech":
        for n in names:  # full range while measuring
            bus.write_eeprom("Min_Position_Limit", n, 0)
            bus.write_eeprom("Max_Position_Limit", n, ticks_per_turn - 1)
    for n in [*names, *pairs.values()]:
        if bus.read("Homing_Offset", n) != 0:
            bus.write_eeprom("Homing_Offset", n, 0)
    ask(
        "Move the arm to the ZERO pose: every joint at 0 rad as in the arm's model "
        "(envs/pictures shows it), gripper closed. Press Enter."
    )
    raw = bus.sync_read("Present_Position", [*names, *pairs.values()])
    offsets = {n: _set_offset(bus, n, raw[n], config.protocol or "") for n in raw}
    ask(
        "Move the arm to the REFERENCE pose: every joint turned about +90° from zero in the model's "
        "positive direction (at least 30°; as far as it goes where it stops sooner), gripper fully "
        "open. Press Enter."
    )
    ref = bus.sync_read("Present_Position", [*names, *pairs.values()])
    limit = shadows.tolerance_ticks(config, ticks_per_turn)
    for j, name in pairs.items():
        if abs(ref[j] - ref[name]) > limit:
            raise CalibrationError(
                f"{bus.port}: joint {j}'s two servos moved apart between the zero and reference poses "
                f"({j} {ref[j] - MID:+d} ticks, {name} {ref[name] - MID:+d}): if they moved opposite ways, "
                f"the config's shadow `reverse:` is wrong for this arm; otherwise the horn has slipped"
            )
    joints: dict[str, JointCalibration] = {}
    seen_min = {n: min(MID, ref[n]) for n in names}
    seen_max = {n: max(MID, ref[n]) for n in names}

    def read() -> dict[str, int]:
        now = bus.sync_read("Present_Position", list(names))
        for n, v in now.items():
            seen_min[n], seen_max[n] = min(seen_min[n], v), max(seen_max[n], v)
        return now

    ask(
        "Next: move EVERY joint slowly to both ends of its range (gripper: fully closed and open). Press Enter to start."
    )
    sweep(read)
    for n in names:
        moved = ref[n] - MID
        if abs(moved) < ticks_per_turn / 16:
            raise CalibrationError(
                f"joint {n} barely moved between the zero and reference poses ({moved} ticks); "
                "turn it +90° in the reference pose and recalibrate"
            )
        grip: dict[str, int] = {}
        if _is_gripper(n):  # its ends: closed at the zero pose's side, open at the reference's
            closed, opened = (seen_min[n], seen_max[n]) if moved > 0 else (seen_max[n], seen_min[n])
            grip = {"closed": int(closed), "open": int(opened)}
        joints[n] = JointCalibration(
            id=int(config.motors[n]["id"]),
            homing_offset=offsets[n],
            sign=1 if moved > 0 else -1,
            zero=MID,
            range_min=seen_min[n],
            range_max=seen_max[n],
            **grip,
        )
    twins = {
        name: JointCalibration(
            id=int(sid),
            homing_offset=offsets[name],
            sign=joints[j].sign,
            zero=MID,
            range_min=joints[j].range_min,
            range_max=joints[j].range_max,
        )
        for j, (name, sid, _rev) in config.shadows.items()
    }
    cal = Calibration(
        robot=config.name,
        protocol=config.protocol or "",
        ticks_per_turn=ticks_per_turn,
        joints=joints,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        shadows=twins,
    )
    write_limits(bus, cal, config)
    if pairs:
        shadows.link(bus, config)
    return cal


def write_limits(bus: Any, cal: Calibration, config: RobotConfig) -> dict[str, tuple[int, int]]:
    """The joint limits in ticks, written into the servos' position-limit registers (torque off)."""
    limits = cal.tick_limits(config.joint_names, config.lower, config.upper)
    pairs = {j: name for j, (name, _sid, _rev) in config.shadows.items()}
    for n, (lo, hi) in limits.items():
        for servo in [n, pairs[n]] if n in pairs else [n]:
            if bus.read("Min_Position_Limit", servo) != lo:
                bus.write_eeprom("Min_Position_Limit", servo, lo)
            if bus.read("Max_Position_Limit", servo) != hi:
                bus.write_eeprom("Max_Position_Limit", servo, hi)
    return limits
