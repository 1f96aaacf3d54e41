"""The nominal unit maps of configs/units/ (tools/nominal_unit_maps.py): an SO-100/101's LeRobot
joint values onto this project's radians for data from an arm whose calibrations are not at hand.
Checked three ways: the shipped files are the derivation; a pose given in LeRobot's values and
mapped puts every link of this project's arm where the LeRobot model's link is; and the map is what
``unit_map`` derives from two calibrations of a nominal arm."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from tool_modules import load_tool

from imitation import cli
from imitation.data.units import load_unit_map, unit_map
from imitation.robots.calibration import Calibration, JointCalibration

nominal = load_tool("nominal_unit_maps")
ROOT = Path(__file__).resolve().parents[2]
TICKS = 4096
ARM = nominal.ARM


VARIANTS = list(nominal.VARIANTS)


def shipped(name: str) -> dict:
    return load_unit_map(ROOT / f"configs/units/{name}.yaml")


def lerobot_angle(name: str, joint: str, value: float, ranges: dict) -> float:
    """The joint's angle in the LeRobot model when LeRobot reports ``value`` for it, from the
    servo ticks that LeRobot's normalisation ``name`` gives that value at."""
    norm, roll, _ = nominal.VARIANTS[name]
    lo, hi = ranges[joint]
    if norm == "degrees":
        ticks = value * (TICKS - 1) / 360
    elif joint == "wrist_roll" and roll == "turn":
        ticks = value * (TICKS - 1) / 200
    else:  # over the sweep, whose ends are the model's limits
        return (lo + hi) / 2 + value / 100 * (hi - lo) / 2
    return ticks * 2 * math.pi / TICKS


def test_the_shipped_maps_are_the_derivation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.argv", ["nominal_unit_maps.py", "--check"])
    assert nominal.main() == 0
    for name in VARIANTS:
        assert shipped(name) == nominal.nominal_map(name)


def links(arm, q: dict[str, float]) -> dict[str, np.ndarray]:
    """World directions of the upper arm, forearm, hand and jaws of ``arm`` posed at ``q``."""
    arm.pose(q)
    m, d = arm.model, arm.data

    def anchor(n: str) -> np.ndarray:
        return d.xanchor[m.joint(n).id].copy()

    pitch = d.xaxis[m.joint("shoulder_lift").id]

    def in_plane(v: np.ndarray) -> np.ndarray:
        v = v - (v @ pitch) * pitch
        return v / np.linalg.norm(v)

    roll = d.xaxis[m.joint("wrist_roll").id].copy()
    hand = roll if roll @ (d.site_xpos[m.site(arm.tip).id] - anchor("wrist_roll")) > 0 else -roll
    jaw = d.xaxis[m.joint(arm.jaw).id].copy()
    jaw = jaw if arm.jaw_slides else np.cross(jaw, hand)
    return {
        "pitch axis": pitch.copy(),
        "upper arm": in_plane(anchor("elbow_flex") - anchor("shoulder_lift")),
        "forearm": in_plane(anchor("wrist_flex") - anchor("elbow_flex")),
        "hand": hand,
        "jaws": jaw / np.linalg.norm(jaw),
    }


@pytest.mark.parametrize("name", VARIANTS)
def test_a_pose_in_lerobot_values_puts_our_links_where_lerobots_are(name: str) -> None:
    umap, norm = shipped(name), nominal.VARIANTS[name][0]
    theirs, ours = nominal.lerobot(), nominal.ours()
    rng = np.random.default_rng(0)
    for _ in range(50):
        # LeRobot values within what its calibration spans (range) or the model's range (degrees).
        angle, mine = {}, {}
        for n in ARM:
            lo, hi = theirs.ranges[n]
            if norm == "range":
                v = rng.uniform(-100, 100)
            else:
                v = math.degrees(rng.uniform(lo, hi)) * TICKS / (TICKS - 1)
            angle[n] = lerobot_angle(name, n, v, theirs.ranges)
            mine[n] = umap["joints"][n]["scale"] * v + umap["joints"][n]["offset"]
        a, b = links(theirs, angle), links(ours, mine)
        for part in ("pitch axis", "upper arm", "forearm", "hand"):
            np.testing.assert_allclose(b[part], a[part], atol=1e-6, err_msg=f"{part} at {angle}")
        assert abs(abs(a["jaws"] @ b["jaws"]) - 1) < 1e-9, f"jaws at {angle}"  # either jaw forward


@pytest.mark.parametrize("name", VARIANTS)
def test_the_map_is_what_two_calibrations_of_a_nominal_arm_give(name: str) -> None:
    """A nominal arm, calibrated by LeRobot (middle of each range at half a turn, the sweep at the
    model's limits, the wrist roll over a full turn or swept as the variant says) and by this
    project (the zero pose straight up, signs from the reference pose), with other homing offsets:
    ``unit_map`` gives the shipped map."""
    norm, roll, _ = nominal.VARIANTS[name]
    theirs = nominal.lerobot()
    derived = nominal.derive()
    per_rad = TICKS / (2 * math.pi)
    lerobot_cal, joints = {}, {}
    mid = (TICKS - 1) / 2  # LeRobot's reading at the middle of a range
    for i, n in enumerate((*ARM, "gripper")):
        h_lr, h_ours = 150 * i - 400, 500 - 90 * i
        delta = h_lr - h_ours  # our reading = LeRobot's + delta (Feetech: actual - offset)
        if n == "gripper":
            lo, hi = 1400.0, 2900.0  # LeRobot's readings, closed and open
            joints[n] = JointCalibration(id=i + 1, homing_offset=h_ours, sign=1, zero=0, range_min=0,
                                         range_max=4095, closed=lo + delta, open=hi + delta)  # fmt: skip
        else:
            if n == "wrist_roll" and roll == "turn":
                lo, hi = 0.0, TICKS - 1.0
            else:
                lo, hi = (mid + a * per_rad for a in theirs.ranges[n])
            sign, offset = derived[n]
            straight_up = -sign * offset  # the LeRobot model's angle at our zero pose
            joints[n] = JointCalibration(id=i + 1, homing_offset=h_ours, sign=sign, range_min=0, range_max=4095,
                                         zero=mid + straight_up * per_rad + delta)  # fmt: skip
        lerobot_cal[n] = {
            "id": i + 1,
            "drive_mode": 0,
            "homing_offset": h_lr,
            "range_min": lo,
            "range_max": hi,
        }
    ours = Calibration(robot="so101", protocol="feetech", ticks_per_turn=TICKS, joints=joints)
    got = unit_map(lerobot_cal, ours, norm=norm)["joints"]
    want = shipped(name)["joints"]
    for n in want:
        assert got[n]["scale"] == pytest.approx(want[n]["scale"], abs=1e-9), n
        assert got[n]["offset"] == pytest.approx(want[n]["offset"], abs=1e-9), n


def test_a_shipped_map_converts_an_imported_store(tmp_path: Path) -> None:
    from imitation.data.lerobot import import_lerobot
    from imitation.data.store import DemoStore

    fixture = ROOT / "tests/fixtures/lerobot/so101_h264_v30"
    imported = import_lerobot(fixture, tmp_path / "in.zarr", progress=False)
    path = ROOT / "configs/units/so101_lerobot_degrees.yaml"
    args = ["data", "units", str(imported.path), str(tmp_path / "out.zarr"), "--unit-map", str(path)]
    assert cli.main(args) == 0
    out = DemoStore.open(tmp_path / "out.zarr")
    assert out.robot["unit_map"]["nominal"] is True and "units" not in out.robot
    umap = yaml.safe_load(path.read_text())["joints"]
    names = [n.removesuffix(".pos") for n in imported.features["action"].names]
    want = imported.read("action").astype(np.float64) * [umap[n]["scale"] for n in names]
    want += [umap[n]["offset"] for n in names]
    assert np.array_equal(out.read("action"), want.astype(np.float32))
