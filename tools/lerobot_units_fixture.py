"""What LeRobot's own motor-bus code reports for given servo positions: the unit-map tests' reference.

Runs where LeRobot is installed (0.4.4 made the committed file, with its Feetech and Dynamixel SDKs)::

    python tools/lerobot_units_fixture.py tests/fixtures/lerobot_units.json

For an SO-101 (six Feetech STS3215) and a Koch follower (Dynamixel XL430/XL330), a LeRobot
calibration as its calibration step writes one (homing offsets, drive modes, ranges of motion) and a
set of actual servo positions: each position as the servo reports it under LeRobot's homing offset
(Feetech ``actual − offset``, Dynamixel ``actual + offset``), normalised by LeRobot's
``MotorsBus._normalize`` in both of its joint modes (``RANGE_M100_100``, ``DEGREES``; the gripper
``RANGE_0_100``). Nothing connects to a port.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ARMS = {
    "so101": {
        "protocol": "feetech",
        "models": ["sts3215"] * 6,
        "joints": ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"],
        # LeRobot's calibration of one arm (its homing puts the pose it was shown at 2047).
        "calibration": {
            "shoulder_pan": [1, 0, -1180, 760, 3310],
            "shoulder_lift": [2, 0, 905, 820, 3190],
            "elbow_flex": [3, 0, -1430, 870, 3080],
            "wrist_flex": [4, 0, 610, 830, 3210],
            "wrist_roll": [5, 0, -260, 120, 3980],
            "gripper": [6, 0, 1320, 2010, 3390],
        },  # fmt: skip
    },
    "koch": {
        "protocol": "dynamixel",
        "models": ["xl430-w250", "xl430-w250", "xl330-m288", "xl330-m288", "xl330-m288", "xl330-m288"],
        "joints": ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"],
        "calibration": {
            "shoulder_pan": [1, 0, -2048, 1000, 3100],
            "shoulder_lift": [2, 1, 1024, 900, 3000],
            "elbow_flex": [3, 1, -3072, 1100, 2950],
            "wrist_flex": [4, 0, 512, 950, 3150],
            "wrist_roll": [5, 1, -1500, 200, 3900],
            "gripper": [6, 0, 700, 2000, 3300],
        },  # fmt: skip
    },
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    import lerobot
    from lerobot.motors import Motor, MotorCalibration, MotorNormMode

    out = {"lerobot": lerobot.__version__, "arms": {}}
    rng = np.random.default_rng(0)
    for arm, spec in ARMS.items():
        if spec["protocol"] == "feetech":
            from lerobot.motors.feetech import FeetechMotorsBus as Bus
        else:
            from lerobot.motors.dynamixel import DynamixelMotorsBus as Bus
        cal = {n: MotorCalibration(*v) for n, v in spec["calibration"].items()}
        # Actual positions whose reported values lie inside each calibrated range.
        sign = -1 if spec["protocol"] == "feetech" else 1  # reported = actual + sign * offset
        present = np.stack([rng.uniform(c.range_min, c.range_max, 20) for c in cal.values()], axis=1).round()
        actual = present - sign * np.array([c.homing_offset for c in cal.values()])
        rows = {}
        for mode in ("range", "degrees"):
            body = MotorNormMode.DEGREES if mode == "degrees" else MotorNormMode.RANGE_M100_100
            motors = {
                n: Motor(c.id, m, MotorNormMode.RANGE_0_100 if n == "gripper" else body)
                for (n, c), m in zip(cal.items(), spec["models"], strict=True)
            }
            bus = Bus(port="/dev/null", motors=motors, calibration=cal)
            rows[mode] = [
                [bus._normalize({c.id: int(p)})[c.id] for c, p in zip(cal.values(), row, strict=True)]
                for row in present
            ]
        out["arms"][arm] = {
            "protocol": spec["protocol"],
            "joints": spec["joints"],
            "calibration": {
                n: {
                    "id": c.id,
                    "drive_mode": c.drive_mode,
                    "homing_offset": c.homing_offset,
                    "range_min": c.range_min,
                    "range_max": c.range_max,
                }
                for n, c in cal.items()
            },  # fmt: skip
            "actual": actual.astype(int).tolist(),
            "normalized": rows,
        }
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
