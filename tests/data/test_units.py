"""LeRobot's calibrated motor values onto radians (``imitation data units``): a unit map derived
from an arm's two calibrations turns what LeRobot 0.4.4's own motor-bus code reported for given
servo positions (``tests/fixtures/lerobot_units.json``, ``tools/lerobot_units_fixture.py``) into
exactly what this project's calibration reads at those positions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from imitation import cli
from imitation.data.units import unit_map
from imitation.errors import ConfigError
from imitation.robots.calibration import Calibration, JointCalibration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REF = json.loads((FIXTURES / "lerobot_units.json").read_text())


def our_calibration(arm: dict) -> Calibration:
    """This project's calibration of the same arm: other homing offsets, mixed signs, own zeros."""
    joints = {}
    for i, (name, lr) in enumerate(arm["calibration"].items()):
        common = dict(id=lr["id"], homing_offset=300 * (i + 1) - 900, range_min=0, range_max=4095)
        if name == "gripper":
            joints[name] = JointCalibration(
                **common, sign=1, zero=0, closed=2100 - 40 * i, open=3000 + 25 * i
            )
        else:
            joints[name] = JointCalibration(**common, sign=(-1) ** i, zero=1900 + 37 * i)
    return Calibration(robot="arm", protocol=arm["protocol"], ticks_per_turn=4096, joints=joints)


@pytest.mark.parametrize("arm_name", ["so101", "koch"])
@pytest.mark.parametrize("norm", ["range", "degrees"])
def test_lerobot_values_become_what_our_calibration_reads(arm_name: str, norm: str) -> None:
    assert REF["lerobot"] == "0.4.4"
    arm = REF["arms"][arm_name]
    ours = our_calibration(arm)
    umap = unit_map(arm["calibration"], ours, norm=norm)
    names = tuple(arm["joints"])
    actual = np.array(arm["actual"])
    sign = -1 if arm["protocol"] == "feetech" else 1  # the servo reports actual + sign * offset
    offsets = np.array([ours.joints[n].homing_offset for n in names])
    want = np.stack(
        [ours.to_rad(dict(zip(names, row, strict=True)), names) for row in actual + sign * offsets]
    )
    lerobot = np.array(arm["normalized"][norm])
    got = lerobot * [umap["joints"][n]["scale"] for n in names] + [umap["joints"][n]["offset"] for n in names]
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert umap["joints"]["gripper"]["unit"] == "[0, 1]" and umap["joints"]["shoulder_pan"]["unit"] == "rad"


def test_a_calibration_of_another_arm_is_refused() -> None:
    arm = REF["arms"]["so101"]
    ours = our_calibration(arm)
    wrong = {**arm["calibration"], "elbow_flex": {**arm["calibration"]["elbow_flex"], "id": 9}}
    with pytest.raises(ConfigError, match="elbow_flex: LeRobot's calibration is of motor id 9"):
        unit_map(wrong, ours)
    with pytest.raises(ConfigError, match=r"has no motor\(s\) \['gripper'\]"):
        unit_map({k: v for k, v in arm["calibration"].items() if k != "gripper"}, ours)


def test_an_imported_store_converted_deploys(tmp_path: Path) -> None:
    from imitation.data.lerobot import import_lerobot
    from imitation.robots.base import RobotSpec
    from imitation.robots.stack import Needs, check_compatible

    imported = import_lerobot(FIXTURES / "lerobot/so101_h264_v30", tmp_path / "in.zarr", progress=False)
    arm = REF["arms"]["so101"]
    umap = unit_map(arm["calibration"], our_calibration(arm))
    (tmp_path / "map.yaml").write_text(yaml.safe_dump(umap))
    args = [
        "data",
        "units",
        str(imported.path),
        str(tmp_path / "out.zarr"),
        "--unit-map",
        str(tmp_path / "map.yaml"),
    ]
    assert cli.main(args) == 0
    from imitation.data.store import DemoStore

    out = DemoStore.open(tmp_path / "out.zarr")
    names = [n.removesuffix(".pos") for n in imported.features["action"].names]  # the store's order
    scale = np.array([umap["joints"][n]["scale"] for n in names])
    offset = np.array([umap["joints"][n]["offset"] for n in names])
    for key in ("state", "action"):
        want = (imported.read(key).astype(np.float64) * scale + offset).astype(np.float32)
        assert np.array_equal(out.read(key), want), key
    assert np.array_equal(out.read("images/front"), imported.read("images/front"))  # copied as stored
    assert "units" not in out.robot and out.robot["joint_names"] == names
    assert out.features["action"].names == tuple(names)
    # Trained on it, a policy is no longer refused for its units.
    run = tmp_path / "run"
    assert cli.main(["train", "--store", str(out.path), "--policy", "act", "--out", str(run), "--steps", "1",
                     "--batch-size", "4", "--wandb", "disabled"]) == 0  # fmt: skip
    meta = yaml.safe_load(next((run / "checkpoints").glob("*/config.yaml")).read_text())
    spec = RobotSpec(name="so101", joint_names=tuple(names), lower=np.full(6, -math.pi), upper=np.full(6, math.pi),
                     control_hz=30.0)  # fmt: skip
    check_compatible(Needs.of_checkpoint(meta), spec, has_env_state=True)
