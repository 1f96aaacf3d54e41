"""Nominal unit maps: an SO-100/101's LeRobot joint values onto this project's radians without the
arm's calibrations, derived from the two kinematic models.

A LeRobot dataset recorded on someone else's arm comes without that arm's calibration, so the
per-arm map of ``imitation data units --calibration ... --lerobot-calibration ...`` cannot be
derived for it. What can be derived is the map of a *nominal* arm:

- LeRobot reads an SO-100/101 joint in degrees (``use_degrees=True``) as the angle of the joint of
  TheRobotStudio's ``so101_new_calib`` model (its own kinematics converts them with ``deg2rad``),
  whose zero is the middle of each joint's range; ``envs/assets/so101_lerobot_frames.xml`` holds
  that model's frames. Its −100…100 normalisation spans the range its calibration measured, taken
  here as the model's joint range (the wrist roll, where LeRobot calibrates it so: a full turn);
  the gripper's 0…100 spans closed to open.
- This project's joints are those of ``envs/assets/so100.xml``: zero with the arm straight up.

Both models are posed and compared by what a pose looks like: the heading of the arm's plane, the
angle of each link in it (joint to joint; the hand along its roll axis) and the direction the jaws
open in. Each joint of ours is then ``sign · lerobot_angle + offset``, and the maps written to
``configs/units/`` are exact for an arm whose calibration sweep reached the model's joint limits;
a real arm's sweep and pose differ by a few degrees.

    python tools/nominal_unit_maps.py            # writes configs/units/<VARIANTS>.yaml
    python tools/nominal_unit_maps.py --check    # exit 1 if the shipped maps differ from the derivation
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import mujoco
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
OURS = ROOT / "envs/assets/so100.xml"
LEROBOT = ROOT / "envs/assets/so101_lerobot_frames.xml"
OUT = ROOT / "configs/units"
ARM = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
TICKS = 4096
UP = np.array([0.0, 0.0, 1.0])


class Arm:
    """One kinematic model, posed by joint name, and what a pose looks like."""

    def __init__(self, path: Path, tip: str, jaw: str, jaw_slides: bool) -> None:
        self.model = mujoco.MjModel.from_xml_path(str(path))
        self.data = mujoco.MjData(self.model)
        self.tip, self.jaw, self.jaw_slides = tip, jaw, jaw_slides
        self.ranges = {n: tuple(self.model.joint(n).range) for n in ARM}

    def pose(self, q: dict[str, float]) -> dict[str, float]:
        """The look of the pose ``q`` (radians, other joints at 0): the arm plane's heading, the
        shoulder, elbow and wrist link angles in it, and the jaws' direction about the hand (mod π)."""
        m, d = self.model, self.data
        d.qpos[:] = 0
        for name, v in q.items():
            d.qpos[m.joint(name).qposadr[0]] = v
        mujoco.mj_kinematics(m, d)

        def anchor(n: str) -> np.ndarray:
            return d.xanchor[m.joint(n).id]

        def axis(n: str) -> np.ndarray:
            return d.xaxis[m.joint(n).id]

        pitch = axis("shoulder_lift")
        forward = np.cross(pitch, UP)
        forward /= np.linalg.norm(forward)

        def tilt(v: np.ndarray) -> float:  # angle from straight up, positive toward forward
            return math.atan2(v @ forward, v @ UP)

        roll = axis("wrist_roll")
        hand = roll if roll @ (d.site_xpos[m.site(self.tip).id] - anchor("wrist_roll")) > 0 else -roll
        upper = tilt(anchor("elbow_flex") - anchor("shoulder_lift"))
        fore = tilt(anchor("wrist_flex") - anchor("elbow_flex"))
        wrist = tilt(hand)
        jaw = axis(self.jaw) if self.jaw_slides else np.cross(axis(self.jaw), hand)
        ref = np.cross(pitch, hand)
        spin = math.atan2(jaw @ np.cross(hand, ref), jaw @ ref)
        return {
            "shoulder_pan": math.atan2(forward[1], forward[0]),
            "shoulder_lift": upper,
            "elbow_flex": fore - upper,
            "wrist_flex": wrist - fore,
            "wrist_roll": (spin + math.pi / 2) % math.pi - math.pi / 2,
        }


def ours() -> Arm:
    return Arm(OURS, tip="ee", jaw="finger_left", jaw_slides=True)


def lerobot() -> Arm:
    return Arm(LEROBOT, tip="grasp", jaw="gripper", jaw_slides=False)


def derive() -> dict[str, tuple[int, float]]:
    """Per joint (sign, offset): our angle = sign · the LeRobot model's angle + offset."""
    arm, mine = lerobot(), ours()
    if any(abs(v) > 1e-9 for v in mine.pose({}).values()):
        raise SystemExit(f"{OURS}: its zero pose is not straight up with the jaws opening forward")
    zero = arm.pose({})
    out = {}
    for n in ARM:
        step = 0.3
        slope = (arm.pose({n: step})[n] - zero[n]) / step
        if abs(abs(slope) - 1) > 1e-6:
            raise SystemExit(f"{LEROBOT}: joint {n} turns its link by {slope:.4f} rad per rad, not ±1")
        out[n] = (round(slope), zero[n])
    return out


# The maps shipped: name -> (LeRobot's normalisation, how its calibration spans the wrist roll,
# what the file's header says it is for). LeRobot calibrates an SO-100's wrist roll over a full turn
# (0..4095 ticks, zero where the arm was held at the middle of its range); an SO-101's too since
# LeRobot 0.4.3, before which its sweep measured the roll like every other joint.
VARIANTS = {
    "so101_lerobot_degrees": (
        "degrees",
        "turn",
        "SO-100 and SO-101 data in degrees (use_degrees=True, LeRobot's default since 0.4.4)",
    ),
    "so101_lerobot_range": (
        "range",
        "sweep",
        "SO-101 data in -100..100 recorded with LeRobot 0.4.2 or earlier (its default then)",
    ),
    "so100_lerobot_range": (
        "range",
        "turn",
        "SO-100 data in -100..100 (LeRobot's default before\n"
        "# 0.4.4), and SO-101 data so recorded with LeRobot 0.4.3",
    ),
}


def nominal_map(name: str) -> dict:
    """The unit map ``name`` of ``VARIANTS``, in the shape ``imitation data units --unit-map`` reads."""
    norm, roll, _ = VARIANTS[name]
    arm = lerobot()
    joints = {}
    for n, (sign, offset) in derive().items():
        lo, hi = arm.ranges[n]
        mid = 0.0
        if norm == "degrees":  # LeRobot: (ticks - mid) * 360 / 4095, mid the middle pose
            per_unit = (TICKS - 1) / 360 * 2 * math.pi / TICKS
        elif n == "wrist_roll" and roll == "turn":  # -100..100 over 0..4095 ticks
            per_unit = (TICKS - 1) / 200 * 2 * math.pi / TICKS
        else:  # -100..100 over the calibrated sweep, taken as the model's range
            mid, per_unit = (lo + hi) / 2, (hi - lo) / 200
        joints[n] = {
            "scale": round(float(sign * per_unit), 12),
            "offset": round(float(sign * mid + offset), 12) + 0.0,
            "unit": "rad",
        }
    joints["gripper"] = {"scale": 0.01, "offset": 0.0, "unit": "[0, 1]"}  # 0..100, closed to open
    robot = name.split("_")[0]
    return {"from": "lerobot", "norm": norm, "robot": robot, "nominal": True, "joints": joints}


def header(name: str) -> str:
    return (
        f"# Nominal unit map for {VARIANTS[name][2]}:\n"
        "# LeRobot's joint values onto this project's radians and [0, 1] gripper, for data from an arm\n"
        "# whose calibration you do not have. A nominal arm, not yours: a real arm's calibration differs\n"
        "# by a few degrees; with both calibrations, derive the exact map (imitation data units\n"
        "# --calibration ... --lerobot-calibration ...).\n"
        "# Written by tools/nominal_unit_maps.py from envs/assets/so101_lerobot_frames.xml; do not edit.\n"
    )


def path(name: str) -> Path:
    return OUT / f"{name}.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--check", action="store_true", help="compare with the shipped maps instead of writing them"
    )
    args = ap.parse_args()
    stale = []
    for name in VARIANTS:
        text = header(name) + yaml.safe_dump(nominal_map(name), sort_keys=False)
        if args.check:
            if not path(name).is_file() or path(name).read_text() != text:
                stale.append(str(path(name).relative_to(ROOT)))
        else:
            path(name).parent.mkdir(parents=True, exist_ok=True)
            path(name).write_text(text)
            print(f"wrote {path(name).relative_to(ROOT)}")
    if stale:
        print(f"{', '.join(stale)}: differ from the derivation; run python tools/nominal_unit_maps.py",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
