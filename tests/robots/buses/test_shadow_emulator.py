"""Dynamixel Secondary (Shadow) ID, reverse drive mode and two servos on one joint, as the servo
emulator implements them (the ViperX's shoulder and elbow): what a shadow executes, what it never
answers, and why writing to a primary is a write to its shadow too."""

from __future__ import annotations

import contextlib

import pytest

from imitation.robots.buses import BusError, make_bus
from imitation.robots.buses.emulator import ServoEmulator

ANSWER_TIMEOUT_S = 0.5
SILENCE_TIMEOUT_S = 0.02
MOTORS = {
    "shoulder": {"id": 2, "model": "xm540-w270"},
    "shoulder_shadow": {"id": 3, "model": "xm540-w270"},
    "gripper": {"id": 9, "model": "xm430-w350"},
}


@pytest.fixture
def rig():
    emu = ServoEmulator(
        "dynamixel", {2: "xm540-w270", 3: "xm540-w270", 9: "xm430-w350"}, coupled={3: (2, True)}
    )
    port = emu.start()
    bus = make_bus("dynamixel", port, MOTORS, timeout_s=ANSWER_TIMEOUT_S)
    bus.connect()
    yield emu, bus
    bus.close()
    emu.stop()


@contextlib.contextmanager
def silence(bus):
    before, bus.timeout_s = bus.timeout_s, SILENCE_TIMEOUT_S
    try:
        yield
    finally:
        bus.timeout_s = before


def test_model_numbers_of_the_aloha_servos():
    with ServoEmulator("dynamixel", {1: "xm540-w270", 8: "xl430-w250", 9: "xc430-w150"}) as emu:
        bus = make_bus(
            "dynamixel",
            emu.port,
            {"a": {"id": 1, "model": "xm540-w270"}, "b": {"id": 8, "model": "xl430-w250"}},
            timeout_s=ANSWER_TIMEOUT_S,
        )
        with bus:
            assert bus.scan([1, 8, 9]) == {1: 1120, 8: 1060, 9: 1070}


def test_a_shadow_executes_its_primarys_writes_without_answering(rig):
    emu, bus = rig
    bus.write_eeprom("Secondary_ID", "shoulder_shadow", 2)
    assert bus.read("Secondary_ID", "shoulder_shadow") == 2
    # One answer (the primary's) to a write addressed to id 2; both servos changed.
    bus.write("Profile_Velocity", "shoulder", 77)
    assert emu.get(2, "Profile_Velocity") == emu.get(3, "Profile_Velocity") == 77
    bus.sync_write("Goal_Position", {"shoulder": 2100})
    bus.read("LED", "gripper")  # an answered request: the unanswered one before it has been served
    assert emu.get(3, "Goal_Position") == 2100
    # Reads and pings of id 2 are the primary's alone; the shadow still answers its own id.
    emu.set(3, "LED", 1)
    assert bus.read("LED", "shoulder") == 0 and bus.read("LED", "shoulder_shadow") == 1
    assert bus.scan([2, 3]) == {2: 1120, 3: 1120}
    served = emu.stats["WRITE"]
    bus.write("LED", "gripper", 1)  # another id: the shadow does nothing
    assert emu.get(3, "LED") == 1 and emu.stats["WRITE"] == served + 1


def test_eeprom_is_out_of_reach_of_the_secondary_id(rig):
    """ "The EEPROM area cannot be modified with Secondary ID" (ROBOTIS e-Manual): a Drive_Mode or
    Homing_Offset written to the primary stays the primary's; RAM (torque, goals) reaches both."""
    emu, bus = rig
    bus.write_eeprom("Drive_Mode", "shoulder_shadow", 1)
    bus.write_eeprom("Secondary_ID", "shoulder_shadow", 2)
    bus.write_eeprom("Drive_Mode", "shoulder", 0)
    bus.write_eeprom("Homing_Offset", "shoulder", 100)
    assert emu.get(3, "Drive_Mode") == 1 and emu.get(3, "Homing_Offset") == 0
    bus.write("Torque_Enable", "shoulder", 1)
    assert emu.torque_on(3)


def test_a_primary_absent_leaves_a_write_to_its_id_unanswered(rig):
    emu, bus = rig
    bus.write_eeprom("Secondary_ID", "gripper", 5)  # nothing has id 5
    lonely = make_bus(
        "dynamixel", bus.port, {"x": {"id": 5, "model": "xm430-w350"}}, timeout_s=SILENCE_TIMEOUT_S
    )
    bus.close()
    with lonely, pytest.raises(BusError, match="did not answer"):
        lonely.write("LED", "x", 1)
    assert emu.get(9, "LED") == 1  # executed all the same


def test_reverse_drive_mode_counts_the_other_way_and_keeps_the_shaft(rig):
    emu, bus = rig
    emu.set_position(9, 1000)
    bus.write_eeprom("Drive_Mode", "gripper", 1)
    assert bus.read("Present_Position", "gripper") == 4096 - 1000
    emu.set_position(9, 3000)  # present 3000 is shaft 1096
    bus.write_eeprom("Drive_Mode", "gripper", 0)
    assert bus.read("Present_Position", "gripper") == 1096
    bus.write_eeprom("Drive_Mode", "gripper", 1)
    bus.write_eeprom("Homing_Offset", "gripper", 50)  # reversed: the offset counts the other way
    assert bus.read("Present_Position", "gripper") == 4096 - 1096 - 50


def test_a_mirrored_shadow_in_reverse_mode_reads_as_its_primary_until_it_slips(rig):
    emu, bus = rig
    emu.set_position(2, 2500)
    assert bus.read("Present_Position", "shoulder_shadow") == 4096 - 2500  # mirrored, not reversed
    bus.write_eeprom("Drive_Mode", "shoulder_shadow", 1)
    assert bus.sync_read("Present_Position", ["shoulder", "shoulder_shadow"]) == {
        "shoulder": 2500,
        "shoulder_shadow": 2500,
    }
    # Torque on the pair, a goal to the primary's id: both move, together.
    bus.write_eeprom("Secondary_ID", "shoulder_shadow", 2)
    bus.enable_torque(["shoulder"])
    assert emu.torque_on(3)
    bus.sync_write("Goal_Position", {"shoulder": 1800})
    got = bus.sync_read("Present_Position", ["shoulder", "shoulder_shadow"])
    assert got["shoulder"] == got["shoulder_shadow"] < 2500
    emu.slip(3, 150)
    got = bus.sync_read("Present_Position", ["shoulder", "shoulder_shadow"])
    assert abs(got["shoulder"] - got["shoulder_shadow"] - 150) <= 1  # rounding of a moving joint
    with pytest.raises(ValueError, match="not coupled"):
        emu.slip(2, 1)


def test_coupling_names_emulated_servos():
    with pytest.raises(ValueError, match="coupled servo 7"):
        ServoEmulator("dynamixel", {2: "xm540-w270"}, coupled={7: (2, True)})
