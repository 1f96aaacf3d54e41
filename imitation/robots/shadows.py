"""Shadow servos: two Dynamixel servos driving one joint (the ViperX's shoulder and elbow).

The second servo (the *shadow*) follows the first (the *primary*) by itself: with its
``Secondary_ID`` register (EEPROM address 12; 255 = off) set to the primary's id it executes every
instruction addressed to the primary, without answering. One goal moves both, so the pair never
fights. It is mounted facing the primary, so it runs with the opposite drive direction
(``Drive_Mode`` bit 0) and then reads as the primary does.

The hazard that comes with it: every instruction to the primary's id reaches the shadow as well.
RAM writes (torque, goals, the bus watchdog) are meant to; EEPROM writes are not, and the
X-series e-Manual says the Secondary ID cannot change EEPROM ("The EEPROM area cannot be modified
with Secondary ID"; ROBOTIS e-Manual, X-series control table, Secondary ID(12)). This driver does
not rely on that (a firmware that did would overwrite the shadow's Drive_Mode and Homing_Offset):

1. a shadow is unlinked (``Secondary_ID`` 255) before any EEPROM register of its primary is
   written, and configured on its own id;
2. the link is set last and verified by reading it back;
3. EEPROM registers are written only when their value differs (EEPROM wears), so an arm that is
   already configured is only read.

At run time both servos' positions are read every tick: a pair reading apart beyond the config's
``safety.shadow_tolerance_rad`` (a slipped horn, a broken gear) stops the arm with an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from imitation.errors import ImitationError
from imitation.robots.config import RobotConfig

OFF = 255
DEFAULT_TOLERANCE_RAD = 0.1


class ShadowError(ImitationError):
    """A shadow pair is misconfigured or its two servos disagree."""


def tolerance_ticks(config: RobotConfig, ticks_per_turn: int = 4096) -> int:
    rad = float(config.safety.get("shadow_tolerance_rad", DEFAULT_TOLERANCE_RAD))
    return max(1, int(round(rad * ticks_per_turn / (2 * math.pi))))


def linked(bus: Any, config: RobotConfig) -> list[str]:
    """The joints whose shadow follows its primary now (its Secondary ID is the primary's id)."""
    return [
        j
        for j, (name, _sid, _rev) in config.shadows.items()
        if bus.read("Secondary_ID", name) == int(config.motors[j]["id"])
    ]


def unlink(bus: Any, config: RobotConfig, joints: list[str] | None = None) -> None:
    """Turn the shadows of ``joints`` (all by default) off: writes to the primary stay the primary's."""
    for j, (name, _sid, _rev) in config.shadows.items():
        if (joints is None or j in joints) and bus.read("Secondary_ID", name) != OFF:
            bus.write_eeprom("Secondary_ID", name, OFF)


def link(bus: Any, config: RobotConfig) -> None:
    """Set every shadow's Secondary ID to its primary's id (where it differs), then read it back."""
    for j, (name, sid, _rev) in config.shadows.items():
        want = int(config.motors[j]["id"])
        if bus.read("Secondary_ID", name) != want:
            bus.write_eeprom("Secondary_ID", name, want)
        got = bus.read("Secondary_ID", name)
        if got != want:
            raise ShadowError(
                f"{bus.port}: {name} (id {sid}) reads Secondary_ID {got} after {want} was written; the "
                f"pair {j} would not move together. Check the servo (imitation emulate serves a virtual arm)"
            )


def drive_modes(bus: Any, config: RobotConfig) -> dict[str, int]:
    """The Drive_Mode each shadow needs: its primary's, with the direction bit flipped when it is
    mounted facing it (``reverse``)."""
    out = {}
    for j, (name, _sid, rev) in config.shadows.items():
        primary = bus.read("Drive_Mode", j)
        out[name] = primary ^ 1 if rev else primary
    return out


def disagreement(ticks: Mapping[str, int], config: RobotConfig, limit: int) -> list[str]:
    """The pairs of ``ticks`` (bus name -> Present_Position) reading more than ``limit`` apart."""
    bad = []
    for j, (name, sid, _rev) in config.shadows.items():
        if j in ticks and name in ticks and abs(ticks[j] - ticks[name]) > limit:
            d = ticks[j] - ticks[name]
            bad.append(
                f"{j}: its servos (ids {config.motors[j]['id']} and {sid}) read {abs(d)} ticks "
                f"({abs(d) * 2 * math.pi / 4096:.2f} rad) apart"
            )
    return bad


def check_agreement(bus: Any, config: RobotConfig, ticks: Mapping[str, int]) -> None:
    """Raise ShadowError when a pair reads apart beyond the config's tolerance."""
    limit = tolerance_ticks(config)
    bad = disagreement(ticks, config, limit)
    if bad:
        raise ShadowError(
            f"{bus.port}: {config.name}: " + "; ".join(bad) + f" (more than {limit} ticks, "
            "safety.shadow_tolerance_rad): a slipped horn or a broken gear? The arm stops; check the "
            f"joint, then recalibrate (imitation calibrate --robot {config.name})"
        )
