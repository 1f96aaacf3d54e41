"""SpaceMouse teleop: raw hidraw reports of both layouts (translation and rotation in reports 1
and 2, or all six axes in a 13-byte report 1) and button reports through the parser and the
mapping; button gestures (injected clock); discovery through a sysfs tree."""

from __future__ import annotations

import numpy as np
import pytest

from imitation.errors import ImitationError
from imitation.teleop.base import Event
from imitation.teleop.spacemouse import (
    SpaceMouseReport,
    SpaceMouseTeleop,
    list_spacemice,
    parse_report,
)

# Reports as one read of /dev/hidrawN gives them (report id first, int16 little-endian).
# SpaceNavigator-style (separate reports): cap pushed fully away (y = -350 = 0xfea2), then
# twisted clockwise (rz = +300 = 0x012c), then let go; left button down, up.
OLD_LAYOUT = [
    bytes.fromhex("010000a2fe0000"),
    bytes.fromhex("02000000002c01"),
    bytes.fromhex("01000000000000"),
    bytes.fromhex("02000000000000"),
    bytes.fromhex("030100"),
    bytes.fromhex("030000"),
]
# SpaceMouse Compact-style (all six axes in report 1): lifted (z = -350) and tilted forward
# (rx = -175), x = +20 (noise inside the dead zone).
NEW_LAYOUT = bytes.fromhex("0114000000a2fe51ff00000000")


class Clock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t


def test_parse_both_layouts_and_buttons():
    assert parse_report(OLD_LAYOUT[0]) == SpaceMouseReport(translation=(0, -350, 0))
    assert parse_report(OLD_LAYOUT[1]) == SpaceMouseReport(rotation=(0, 0, 300))
    assert parse_report(NEW_LAYOUT) == SpaceMouseReport(translation=(20, 0, -350), rotation=(-175, 0, 0))
    assert parse_report(bytes.fromhex("030300")) == SpaceMouseReport(buttons=3)
    assert parse_report(bytes.fromhex("1764")) is None  # e.g. a battery report
    assert parse_report(b"\x01\x00") is None  # too short


def test_old_layout_moves_forward_then_turns():
    sm = SpaceMouseTeleop(clock=Clock())
    v, w = sm.speed_m_s, sm.angular_speed_rad_s
    sm.feed(OLD_LAYOUT[0])
    np.testing.assert_allclose(sm.twist(), [v, 0, 0, 0, 0, 0])  # pushed away: forward
    sm.feed(OLD_LAYOUT[1])
    turn = (300 / 350 - 0.08) / 0.92 * w
    np.testing.assert_allclose(sm.twist(), [v, 0, 0, 0, 0, turn])  # clockwise: +wz
    sm.feed(OLD_LAYOUT[2])
    sm.feed(OLD_LAYOUT[3])
    assert not sm.twist().any()
    for r in OLD_LAYOUT[4:]:
        sm.feed(r)
    assert sm.events() == [Event.TOGGLE]  # a left click


def test_new_layout_lifts_and_tilts():
    sm = SpaceMouseTeleop(clock=Clock())
    sm.feed(NEW_LAYOUT)
    v, w = sm.speed_m_s, sm.angular_speed_rad_s
    tilt = -(175 / 350 - 0.08) / 0.92 * w  # tilted forward: the tip swings forward (-wy)
    np.testing.assert_allclose(sm.twist(), [0, 0, v, 0, tilt, 0])


def test_button_gestures():
    clock = Clock()
    sm = SpaceMouseTeleop(clock=clock, long_press_s=1.0)
    left, right, both, none = (bytes.fromhex(h) for h in ("030100", "030200", "030300", "030000"))

    sm.feed(right)
    sm.feed(none)  # right click: gripper
    assert not sm.gripper_open and sm.events() == []

    sm.feed(left)
    clock.t += 0.5
    assert sm.events() == []  # not yet long
    clock.t += 0.6
    assert sm.events() == [Event.RERECORD]  # held left 1 s, reported while still held
    sm.feed(none)
    assert sm.events() == []  # the release adds nothing

    sm.feed(right)
    clock.t += 1.2
    sm.feed(none)
    assert sm.events() == [Event.DISCARD] and not sm.gripper_open

    sm.feed(left)
    sm.feed(both)  # the second button a moment later: quit, and no click on release
    sm.feed(right)
    sm.feed(none)
    assert sm.events() == [Event.QUIT]


def test_extra_buttons_of_bigger_models_are_ignored():
    sm = SpaceMouseTeleop(clock=Clock())
    sm.feed(bytes.fromhex("0304000000"))
    sm.feed(bytes.fromhex("0300000000"))
    assert sm.events() == []


def test_discovery(tmp_path):
    def add(name: str, hid_id: str, hid_name: str) -> None:
        d = tmp_path / name / "device"
        d.mkdir(parents=True)
        (d / "uevent").write_text(
            f"DRIVER=hid-generic\nHID_ID={hid_id}\nHID_NAME={hid_name}\nHID_PHYS=usb-0000:00:14.0-2/input0\n"
        )

    add("hidraw0", "0003:0000046D:0000C31C", "Logitech USB Keyboard")
    add("hidraw1", "0003:0000046D:0000C626", "3Dconnexion SpaceNavigator")
    add("hidraw2", "0003:0000256F:0000C635", "3Dconnexion SpaceMouse Compact")
    (tmp_path / "hidraw3").mkdir()  # no uevent: skipped
    found = list_spacemice(tmp_path, "/dev")
    assert [(d.path, d.vendor, d.product) for d in found] == [
        ("/dev/hidraw1", 0x046D, 0xC626),
        ("/dev/hidraw2", 0x256F, 0xC635),
    ]
    assert found[1].name == "3Dconnexion SpaceMouse Compact"


def test_missing_device_is_a_clear_error(tmp_path):
    with pytest.raises(ImitationError, match="cannot open"):
        SpaceMouseTeleop(device=tmp_path / "hidraw7").connect()


def test_no_spacemouse_is_a_clear_error(monkeypatch):
    import imitation.teleop.spacemouse as spacemouse

    monkeypatch.setattr(spacemouse, "list_spacemice", lambda: [])
    with pytest.raises(ImitationError, match="no 3Dconnexion device found"):
        SpaceMouseTeleop().connect()
