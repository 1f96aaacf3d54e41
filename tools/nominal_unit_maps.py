"""Nominal unit maps: an SO-100/101's LeRobot joint values onto this project's radians without the
arm's calibrations, derived from the two kinematic models.

A LeRobot dataset recorded on someone else's arm comes without that arm's calibration, so the
per-arm map of ``imitation data units --calibration ... --lerobot-calibration ...`` cannot be
derived for it. What can be derived is the map of a *nominal* arm:

- LeRobot reads an SO-100/101 joint in degrees (``use_degrees=True``) as the angle of the joint of
  TheRobotStudio's ``so101_new_calib`` model (its own kinematics converts them with ``deg2rad``),
  whose zero is the middle of each joint's range; ``envs/assets/so101_lerobot_frames.xml`` holds
  that model's frames. Its −100…100 normalisation spans the range its calibration measured, taken
  here as the model's joint range (the wrist roll: a full turn, as LeRobot calibrates it); the
  gripper's 0…100 spans closed to open.
- This project's joints are those of ``envs/assets/so100.xml``: zero with the arm straight up.

Both models are posed and compared by what a pose looks like: the heading of the arm's plane, the
angle of each link in it (joint to joint; the hand along its roll axis) and the direction the jaws
open in. Each joint of ours is then ``sign · lerobot_angle + offset``, and the maps written to
``configs/units/`` are exact for an arm whose calibration sweep reached the model's joint limits;
a real arm's sweep and pose differ by a few degrees.

    python tools/nominal_unit_maps.py            # writes configs/units/so101_lerobot_{range,degrees}.yaml
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
FULL_TURN = ("wrist_roll",)  # LeRobot calibrates these over 0..4095 ticks, not a measured sweep
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


def nominal_map(norm: str) -> dict:
    """The unit map (the shape ``imitation data units --unit-map`` reads) for LeRobot's ``norm``."""
    if norm not in ("range", "degrees"):
        raise ValueError(f"norm {norm!r}: range or degrees")
    arm = lerobot()
    joints = {}
    for n, (sign, offset) in derive().items():
        if norm == "degrees":  # LeRobot: (ticks - mid) * 360 / 4095
            per_unit = (TICKS - 1) / 360 * 2 * math.pi / TICKS
        elif n in FULL_TURN:  # -100..100 over 0..4095 ticks
            per_unit = (TICKS - 1) / 200 * 2 * math.pi / TICKS
        else:  # -100..100 over the calibrated range, taken as the model's
            lo, hi = arm.ranges[n]
            per_unit = (hi - lo) / 200
        joints[n] = {
            "scale": round(float(sign * per_unit), 12),
            "offset": round(float(offset), 12),
            "unit": "rad",
        }
    joints["gripper"] = {"scale": 0.01, "offset": 0.0, "unit": "[0, 1]"}  # 0..100, closed to open
    return {"from": "lerobot", "norm": norm, "robot": "so101", "nominal": True, "joints": joints}


def header(norm: str) -> str:
    how = (
        "degrees\n# (use_degrees=True: LeRobot's SO-100/101 default since 0.4.4)"
        if norm == "degrees"
        else "-100..100 over each joint's\n# calibrated range (LeRobot's SO-100/101 default before 0.4.4)"
    )
    return (
        f"# Nominal unit map: an SO-100/101 LeRobot dataset whose joints are in {how}\n"
        "# onto this project's radians and [0, 1] gripper, for data from an arm whose calibration you\n"
        "# do not have. A nominal arm, not yours: a real arm's calibration differs by a few degrees;\n"
        "# with both calibrations, derive the exact map (imitation data units --calibration ...).\n"
        "# Written by tools/nominal_unit_maps.py from envs/assets/so101_lerobot_frames.xml; do not edit.\n"
    )


def path(norm: str) -> Path:
    return OUT / f"so101_lerobot_{norm}.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--check", action="store_true", help="compare with the shipped maps instead of writing them"
    )
    args = ap.parse_args()
    stale = []
    for norm in ("range", "degrees"):
        text = header(norm) + yaml.safe_dump(nominal_map(norm), sort_keys=False)
        if args.check:
            if not path(norm).is_file() or path(norm).read_text() != text:
                stale.append(str(path(norm).relative_to(ROOT)))
        else:
            path(norm).parent.mkdir(parents=True, exist_ok=True)
            path(norm).write_text(text)
            print(f"wrote {path(norm).relative_to(ROOT)}")
    if stale:
        print(f"{', '.join(stale)}: differ from the derivation; run python tools/nominal_unit_maps.py",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
