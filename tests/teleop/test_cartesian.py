"""CartesianTeleop: twists become joint targets whose forward kinematics move the gripper as
asked, within reach, at the chosen speed; gripper toggle and speed levels."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from envs.so100 import ARM_XML, HOME_QPOS, ArmIK
from imitation.errors import ConfigError
from imitation.teleop.base import CartesianTeleop, Event, tool_angles, tool_rotation

HZ = 50.0


class ConstantTwist(CartesianTeleop):
    """A device whose twist is set by the test."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.tw = np.zeros(6)

    def twist(self) -> np.ndarray:
        return self.tw


@pytest.fixture(scope="module")
def fk():
    ik = ArmIK(mujoco.MjModel.from_xml_path(str(ARM_XML)))
    return lambda q: ik.forward(np.asarray(q[:5], dtype=np.float64))


def home(gripper: float = 1.0) -> dict:
    return {"state": np.concatenate([HOME_QPOS, [gripper]]).astype(np.float32)}


def drive(dev: CartesianTeleop, obs: dict, ticks: int) -> np.ndarray:
    """Run ``ticks`` reads, the robot following each command exactly."""
    action = obs["state"]
    for _ in range(ticks):
        action = dev.read({"state": action})
    return action


def test_no_command_holds_the_pose():
    dev = ConstantTwist(control_hz=HZ)
    dev.reset(home())
    action = drive(dev, home(), 20)
    np.testing.assert_allclose(action, home()["state"], atol=1e-6)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_holding_a_direction_moves_speed_times_time_along_it(fk, axis):
    dev = ConstantTwist(control_hz=HZ)
    dev.reset(home())
    speed = dev.speed_m_s
    assert speed == 0.05  # the middle level by default
    dev.tw[axis] = speed
    start, start_rot = fk(home()["state"])
    end, end_rot = fk(drive(dev, home(), 50))  # 1 s
    moved = end - start
    # 0.05 m/s x 1 s = 5 cm along the axis, and next to nothing across it
    assert moved[axis] == pytest.approx(0.05, abs=2e-3)
    assert np.abs(np.delete(moved, axis)).max() < 2e-3
    assert np.abs(end_rot - start_rot).max() < 0.02  # orientation kept


def test_turning_and_tilting_follow_the_documented_senses(fk):
    dev = ConstantTwist(control_hz=HZ)
    dev.reset(home())
    start, rot0 = fk(home()["state"])
    dev.tw[5] = 0.5  # +wz: clockwise seen from above, 0.5 rad/s for 0.5 s
    action = drive(dev, home(), 25)
    pos, rot = fk(action)
    finger0, finger = rot0[:, 0], rot[:, 0]
    turned = np.arctan2(np.cross(finger0, finger)[2], finger0 @ finger)
    assert turned == pytest.approx(-0.25, abs=0.01)  # counter-clockwise is positive about +z
    assert np.linalg.norm(pos - start) < 2e-3
    dev.reset({"state": action})
    dev.tw[:] = 0
    dev.tw[4] = 0.5  # +wy: the tip swings back toward the base
    pos2, rot2 = fk(drive(dev, {"state": action}, 25))
    tip_dir = rot2[:, 2]
    assert tip_dir[0] < -0.2  # tool axis now points down and back (-x)
    assert np.linalg.norm(pos2 - pos) < 2e-3


def test_speed_levels_and_their_events():
    dev = ConstantTwist(control_hz=HZ, speed_level=0)
    assert dev.speed_m_s == 0.02
    dev.emit(Event.SPEED_UP)
    dev.emit(Event.SPEED_UP)
    dev.emit(Event.SPEED_UP)  # already at the top
    assert dev.speed_m_s == 0.1 and dev.angular_speed_rad_s == 1.0
    dev.emit(Event.SPEED_DOWN)
    assert dev.speed_m_s == 0.05
    assert dev.events() == [Event.SPEED_UP] * 3 + [Event.SPEED_DOWN]  # also reported
    assert dev.events() == []


def test_gripper_toggle_moves_the_gripper_at_a_bounded_rate():
    dev = ConstantTwist(control_hz=HZ)
    dev.reset(home(gripper=1.0))
    assert dev.read(home())[5] == pytest.approx(1.0)
    dev.toggle_gripper()
    grips = [dev.read(home())[5] for _ in range(12)]
    np.testing.assert_allclose(grips[:3], [0.9, 0.8, 0.7], atol=1e-6)  # 0.1 per tick
    assert grips[-1] == 0.0 and not dev.gripper_open
    dev.toggle_gripper()
    assert dev.gripper_open and dev.read(home())[5] == pytest.approx(0.1)


def test_reset_takes_the_gripper_as_it_is():
    dev = ConstantTwist(control_hz=HZ)
    dev.reset(home(gripper=0.3))
    assert dev.read(home(gripper=0.3))[5] == pytest.approx(0.3)  # no move until toggled
    dev.toggle_gripper()  # 0.3 counts as closed: toggling opens it
    assert dev.gripper_open


def test_joint_change_per_tick_is_bounded():
    dev = ConstantTwist(control_hz=HZ, speed_level=2, max_joint_step_rad=0.01)
    dev.reset(home())
    dev.tw[:] = [0.1, 0.1, 0.1, 0, 1.0, 1.0]
    prev = home()["state"]
    for _ in range(30):
        action = dev.read({"state": prev})
        assert np.abs(action[:5] - prev[:5]).max() <= 0.01 + 1e-6
        prev = action


def test_target_stops_at_the_edge_of_reach_and_comes_back_at_once(fk):
    dev = ConstantTwist(control_hz=HZ, speed_level=2)
    dev.reset(home())
    dev.tw[0] = 0.1
    far = drive(dev, home(), 150)  # 15 cm asked: more than the arm reaches with the tool down
    far_pos, far_rot = fk(far)
    assert 0.22 < far_pos[0] < 0.26
    assert far_pos[2] == pytest.approx(fk(home()["state"])[0][2], abs=3e-3)  # no sagging
    assert np.isfinite(far).all()
    assert np.linalg.norm(dev.target[0] - far_pos) < 3e-3  # the target did not run ahead
    dev.tw[0] = -0.1
    back_pos, _ = fk(drive(dev, {"state": far}, 5))
    assert back_pos[0] < far_pos[0] - 0.004  # reversing acts at once


def test_workspace_box_clamps_the_target(fk):
    dev = ConstantTwist(control_hz=HZ, speed_level=2, workspace_m=((0.0, -0.3, 0.03), (0.4, 0.3, 0.4)))
    dev.reset(home())  # gripper at z = 4.2 cm
    dev.tw[2] = -0.1
    low, _ = fk(drive(dev, home(), 50))
    assert low[2] == pytest.approx(0.03, abs=1e-3)


def test_other_arms_hold_their_reset_pose():
    dev = ConstantTwist(control_hz=HZ, arm_index=1)
    other = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], dtype=np.float32)
    obs = {"state": np.concatenate([other, home()["state"]])}
    dev.reset(obs)
    dev.tw[0] = 0.05
    action = drive(dev, obs, 10)
    np.testing.assert_array_equal(action[:6], other)
    assert np.abs(action[6:11] - HOME_QPOS).max() > 1e-3
    with pytest.raises(ValueError, match="arm_index"):
        ConstantTwist(control_hz=HZ, arm_index=2).reset(obs)


def test_tool_rotation_and_angles_round_trip():
    plane = np.array([np.cos(0.4), np.sin(0.4), 0.0])
    for pitch, yaw in [(0.0, 0.3), (0.7, -2.0), (-1.0, 3.0)]:
        rot = tool_rotation(plane, pitch, yaw)
        np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
        assert tool_angles(rot, plane) == pytest.approx((pitch, yaw))


def test_bad_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="control_hz"):
        ConstantTwist(control_hz=0)
    with pytest.raises(ConfigError, match="speed_level"):
        ConstantTwist(speed_level=5)
    with pytest.raises(ConfigError, match="does not exist"):
        ConstantTwist(xml=tmp_path / "nope.xml")
