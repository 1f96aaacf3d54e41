"""ALOHA-style arms against the servo emulator: shadow servos configured in the safe order and
verified, a pair that disagrees stopping the arm, operating modes and limits read back, EEPROM
written only when it differs, two arms read in parallel in one tick, a leader pair mapped onto its
followers, and the configs' errors."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from imitation.errors import ConfigError
from imitation.robots.arm import BusArm, latency_timer_ms, warn_latency_timer
from imitation.robots.bimanual import parse_ports
from imitation.robots.buses.emulator import ServoEmulator, for_arm
from imitation.robots.calibration import CalibrationError
from imitation.robots.config import load_robot_config
from imitation.robots.emulated import PosedArm
from imitation.robots.factory import make_robot
from imitation.robots.shadows import ShadowError

TIMEOUT_S = 2.0  # a loaded machine may leave the emulator's thread waiting; nothing is lost by waiting


@pytest.fixture
def viperx(tmp_path):
    """A factory-fresh ViperX 300 S on the emulator (shadows unlinked, drive modes 0), calibrated."""
    rc = load_robot_config("vx300s")
    emu = for_arm(rc, linked=False, tau_s=0.01)
    emu.start()
    hand = PosedArm(emu, rc)
    hand.calibrate(tmp_path / "vx300s.yaml", timeout_s=TIMEOUT_S)
    yield rc, emu, hand, tmp_path / "vx300s.yaml"
    emu.stop()


def count_eeprom_writes(arm, monkeypatch) -> list:
    writes = []
    real = arm.bus.write_eeprom

    def spy(register, motor, value):
        writes.append((motor, register, value))
        real(register, motor, value)

    monkeypatch.setattr(arm.bus, "write_eeprom", spy)
    return writes


def test_calibration_links_the_shadows_last_and_records_them(viperx):
    rc, emu, _hand, path = viperx
    assert emu.get(3, "Secondary_ID") == 2 and emu.get(5, "Secondary_ID") == 4
    assert emu.get(3, "Drive_Mode") & 1 == 1 and emu.get(2, "Drive_Mode") & 1 == 0
    text = path.read_text()
    assert "shoulder_shadow" in text and "elbow_shadow" in text


def test_connect_sets_modes_limits_and_shadows_and_reads_them_back(viperx, monkeypatch):
    rc, emu, hand, path = viperx
    emu.set(3, "Secondary_ID", 255)  # as if someone had unlinked it
    emu.set(7, "Operating_Mode", 4)
    emu.set(9, "Current_Limit", 1193)
    arm = BusArm(rc, emu.port, calibration=path, timeout_s=TIMEOUT_S)
    writes = count_eeprom_writes(arm, monkeypatch)
    arm.connect()
    try:
        assert emu.get(3, "Secondary_ID") == 2 and emu.get(5, "Secondary_ID") == 4
        assert [emu.get(i, "Operating_Mode") for i in range(1, 10)] == [3] * 8 + [5]
        assert emu.get(9, "Current_Limit") == 200 and emu.get(9, "Goal_Current") == 200
        assert all(emu.get(i, "Velocity_Limit") == 131 for i in range(1, 10))
        assert all(emu.torque_on(i) for i in range(1, 10))
        lo, hi = arm.limits_ticks["shoulder"]
        assert emu.get(3, "Min_Position_Limit") == emu.get(2, "Min_Position_Limit") == lo < hi
        # No EEPROM write reached a primary while its shadow was linked; the links came last.
        linked = {"shoulder": False, "elbow": True}  # as found: shoulder's unlinked above
        for motor, register, value in writes:
            if register == "Secondary_ID":
                linked[motor.removesuffix("_shadow")] = value != 255
            assert not linked.get(motor), f"{register} written to {motor} with its shadow linked"
        assert [w[1] for w in writes[-2:]] == ["Secondary_ID"] * 2
        assert {w[0] for w in writes} >= {"wrist_angle", "gripper"}
    finally:
        arm.disconnect()
    # A second connect finds every register right: it writes no EEPROM at all.
    again = BusArm(rc, emu.port, calibration=path, timeout_s=TIMEOUT_S)
    writes = count_eeprom_writes(again, monkeypatch)
    again.connect()
    again.disconnect()
    assert writes == []


def test_a_shadow_pair_moves_together_and_a_slipped_horn_stops_the_arm(viperx):
    rc, emu, hand, path = viperx
    arm = BusArm(rc, emu.port, calibration=path, timeout_s=TIMEOUT_S)
    arm.connect()
    try:
        q = arm.observe()["state"].astype(np.float64)
        q[1] += 0.2
        arm.act(q)
        arm.read_joints()  # an answered request: the goal before it has been served
        assert emu.get(3, "Goal_Position") == emu.get(2, "Goal_Position")  # through the Secondary ID
        emu.slip(3, 200)  # 0.31 rad, more than shadow_tolerance_rad 0.1
        with pytest.raises(ShadowError, match=r"shoulder: its servos \(ids 2 and 3\) read 2\d\d ticks"):
            arm.observe()
    finally:
        arm.disconnect()
    # Connecting with the pair apart stops before torque comes on.
    again = BusArm(rc, emu.port, calibration=path, timeout_s=TIMEOUT_S)
    with pytest.raises(ShadowError, match="slipped horn or a broken gear"):
        again.connect()
    assert not any(emu.torque_on(i) for i in range(1, 10))


def test_calibration_refuses_a_shadow_that_turns_the_wrong_way(tmp_path):
    rc = load_robot_config("vx300s")
    # The shoulder's shadow mounted the same way round as its primary, but the config says reverse.
    emu = ServoEmulator("dynamixel", rc.servos(), coupled={3: (2, False), 5: (4, True)})
    with emu, pytest.raises(CalibrationError, match="moved apart .* shadow `reverse:` is wrong"):
        PosedArm(emu, rc).calibrate(tmp_path / "bad.yaml", timeout_s=TIMEOUT_S)


def test_a_calibration_file_without_the_shadows_is_refused(viperx, tmp_path):
    rc, emu, _hand, path = viperx
    text = path.read_text()
    bad = tmp_path / "old.yaml"
    bad.write_text(text[: text.index("shadows:")])
    with pytest.raises(CalibrationError, match="shadow servos"):
        BusArm(rc, emu.port, calibration=bad, timeout_s=TIMEOUT_S).connect()


def test_a_servo_of_another_model_is_refused_by_name(tmp_path):
    rc = load_robot_config("vx300s")
    emu = ServoEmulator("dynamixel", rc.servos() | {8: "xl430-w250"}, coupled=rc.coupled())
    with emu:
        arm = BusArm(rc, emu.port, calibration=tmp_path / "none.yaml", timeout_s=TIMEOUT_S)
        with pytest.raises(
            Exception, match=r"wrist_rotate \(id 8\) is model number 1060, the config says xm430-w350"
        ):
            arm.connect()


@pytest.fixture
def aloha(tmp_path):
    """The follower pair and the leader pair, each arm on its own emulated bus, all calibrated."""
    rigs = {}
    for robot in ("aloha", "aloha_leader"):
        rc = load_robot_config(robot)
        emus, hands = {}, {}
        for k, (arm, part) in enumerate(rc.arms.items()):
            emus[arm] = for_arm(part.config, tau_s=0.01)
            emus[arm].start()
            hands[arm] = PosedArm(emus[arm], part.config, seed=k + (10 if robot == "aloha_leader" else 0))
            hands[arm].calibrate(tmp_path / robot / f"{arm}.yaml", timeout_s=TIMEOUT_S)
        rigs[robot] = (rc, emus, hands)
    yield rigs, tmp_path
    for _rc, emus, _h in rigs.values():
        for e in emus.values():
            e.stop()


def test_the_pair_is_one_robot_read_in_parallel(aloha, monkeypatch):
    rigs, tmp = aloha
    rc, emus, _hands = rigs["aloha"]
    ports = ",".join(f"{a}={e.port}" for a, e in emus.items())
    robot = make_robot("aloha", ports, calibration=tmp / "aloha", timeout_s=TIMEOUT_S)
    assert robot.spec.joint_names[:2] == ("left/waist", "left/shoulder") and len(robot.spec.joint_names) == 14
    robot.connect()
    try:
        obs = robot.observe()
        assert obs["state"].shape == (14,)
        assert set(obs) >= {"arm_timestamp/left", "arm_timestamp/right", "arm_skew_s"}
        # Both arms are read in the same tick, each on its own thread: two reads that wait for each
        # other finish only when they run at the same time.
        barrier = threading.Barrier(2, timeout=10)
        for arm in robot.arms.values():
            real = arm.read_joints
            monkeypatch.setattr(arm, "read_joints", lambda real=real: (barrier.wait(), real())[1])
        assert robot.observe()["state"].shape == (14,)
        sent = robot.act(obs["state"])
        assert sent.shape == (14,)
        assert robot.stats()["ticks"] == 2
    finally:
        robot.disconnect()
    assert not any(e.torque_on(i) for e in emus.values() for i in e.servo_ids)


def test_the_leader_pair_maps_each_leader_onto_its_follower(aloha):
    from imitation.teleop import make_teleop

    rigs, tmp = aloha
    rc, emus, hands = rigs["aloha_leader"]
    ports = ",".join(f"{a}={e.port}" for a, e in emus.items())
    teleop = make_teleop(
        "aloha-leader", port=ports, calibration=tmp / "aloha_leader", timeout_s=TIMEOUT_S, events=_NoEvents()
    )
    teleop.connect()
    try:
        left = np.array([0.3, -0.4, 0.5, 0.1, -0.2, 0.6, 0.25])
        right = np.array([-0.3, 0.2, -0.5, -0.1, 0.4, -0.6, 0.75])
        hands["left"].pose(left)
        hands["right"].pose(right)
        got = teleop.read({"state": np.zeros(14)})
        np.testing.assert_allclose(got, np.concatenate([left, right]), atol=2e-3)
        hands["left"].pose(np.where(hands["left"].gripper, 1.4, 0.0))  # the handle past its open end
        assert teleop.read({})[6] == 1.0
    finally:
        teleop.close()


class _NoEvents:
    def events(self):
        return []


def test_ports_per_arm():
    rc = load_robot_config("aloha")
    assert parse_ports(rc, None) == {"left": "/dev/ttyDXL_puppet_left", "right": "/dev/ttyDXL_puppet_right"}
    assert parse_ports(rc, "right=/dev/b")["right"] == "/dev/b"
    with pytest.raises(ConfigError, match="left=<path>,right=<path>"):
        parse_ports(rc, "/dev/ttyUSB0")
    with pytest.raises(ConfigError, match="no port for arm"):
        parse_ports(load_robot_config("so101_bimanual"), "left=/dev/a")


def test_the_latency_timer_is_checked_through_the_udev_link(tmp_path, caplog):
    sysfs = tmp_path / "sys"
    (sysfs / "ttyUSB3").mkdir(parents=True)
    (sysfs / "ttyUSB3" / "latency_timer").write_text("16\n")
    dev = tmp_path / "ttyUSB3"
    dev.touch()
    link = tmp_path / "ttyDXL_puppet_left"
    link.symlink_to(dev)
    with caplog.at_level(logging.WARNING):
        assert warn_latency_timer(str(link), sysfs) == 16
    assert "latency timer is 16 ms; a 50 Hz loop needs 1 ms" in caplog.text
    assert "ttyUSB3/latency_timer" in caplog.text
    (sysfs / "ttyUSB3" / "latency_timer").write_text("1\n")
    caplog.clear()
    assert warn_latency_timer(str(link), sysfs) == 1 and not caplog.text
    assert latency_timer_ms("/dev/pts/0", sysfs) is None


@pytest.mark.parametrize(
    ("motors", "match"),
    [
        ("{a: {id: 1, model: xm430-w350, speed: 3}}", "unknown key"),
        ("{a: {id: 1, model: xm430-w350, mode: turbo}}", "mode='turbo'"),
        ("{a: {id: 1, model: xc430-w150, mode: current_position}}", "no current sensing"),
        ("{a: {id: 1, model: xl430-w250, current_limit: 100}}", "no Current_Limit"),
        ("{a: {id: 1, model: xm430-w350, shadow: {id: 1}}}", "both have id 1"),
        ("{a: {id: 1, model: xm430-w350, shadow: 2}}", "shadow must be"),
    ],
)
def test_bad_servo_entries_are_one_clear_error(tmp_path, motors, match):
    f = tmp_path / "arm.yaml"
    f.write_text(
        "name: x\ncontrol_hz: 50\njoints: [{name: a, lower: -1, upper: 1}]\n"
        f"bus: {{protocol: dynamixel, motors: {motors}}}\n"
    )
    with pytest.raises(ConfigError, match=match):
        load_robot_config(f)


def test_bad_arms_are_one_clear_error(tmp_path):
    f = tmp_path / "pair.yaml"
    f.write_text("name: p\ncontrol_hz: 50\narms: {left: {robot: vx300s}}\n")
    with pytest.raises(ConfigError, match="two or more"):
        load_robot_config(f)
    f.write_text("name: p\ncontrol_hz: 50\narms: {left: {robot: vx300s}, right: {robot: wx250s_leader}}\n")
    with pytest.raises(ConfigError, match="role 'follower', but its arms are"):
        load_robot_config(f)
    f.write_text("name: p\ncontrol_hz: 50\njoints: []\narms: {l: {robot: vx300s}, r: {robot: vx300s}}\n")
    with pytest.raises(ConfigError, match="remove `joints:`"):
        load_robot_config(f)
