"""Gamepad teleop: a js_event byte stream (the kernel's joystick API) through the parser and the
Xbox mapping, for events and twist; device discovery; reading a device file."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from imitation.errors import ImitationError
from imitation.teleop.base import Event
from imitation.teleop.gamepad import (
    JS_EVENT,
    PLAYSTATION,
    XBOX,
    GamepadTeleop,
    JsEvent,
    list_gamepads,
    mapping_for,
    parse_js_events,
)

# What `cat /dev/input/js0` gives for an Xbox 360 pad (xpad layout): the burst of initial-state
# events on open (type 0x81/0x82: 11 buttons up, 8 axes centred, both triggers released at
# -32767), then: left stick full up, left stick x 1200 (inside the dead zone), A pressed and
# released, right trigger full, d-pad up and back, LB, X, B, Start (each pressed and released).
# Record layout, little-endian: u32 time ms, s16 value, u8 type, u8 number; e.g. the first
# record 11df3e00 0000 81 00 = time 4120337 ms, value 0, button | init, button 0.
RECORDING = bytes.fromhex(
    "11df3e000000810011df3e000000810111df3e000000810211df3e000000810311df3e000000810411df3e0000008105"
    "11df3e000000810611df3e000000810711df3e000000810811df3e000000810911df3e000000810a11df3e0000008200"
    "11df3e000000820111df3e000180820211df3e000000820311df3e000000820411df3e000180820511df3e0000008206"
    "11df3e000000820711e13e000180020123e13e00b004020032e23e00010001009ae23e000000010003e33e00ff7f0205"
    "c4e33e00018002071be43e00000002078de43e0001000104d9e43e000000010453e53e000100010298e53e0000000102"
    "19e63e000100010166e63e000000010118e73e000100010763e73e0000000107"
)


def test_parse_js_events():
    events = parse_js_events(RECORDING)
    assert len(events) == len(RECORDING) // 8 == 34
    assert events[0] == JsEvent(time_ms=4120337, value=0, type=1, number=0, init=True)
    assert events[13] == JsEvent(4120337, -32767, 2, 2, True)  # left trigger, released
    assert events[19] == JsEvent(4120849, -32767, 2, 1, False)  # left stick y, full up
    assert events[21] == JsEvent(4121138, 1, 1, 0, False)  # A down
    assert parse_js_events(RECORDING[:12]) == events[:1]  # a partial record is left alone


def test_recording_gives_the_mapped_events_and_twist():
    pad = GamepadTeleop(mapping=XBOX)
    pad.feed(RECORDING)
    assert pad.events() == [Event.TOGGLE, Event.SPEED_UP, Event.RERECORD, Event.DISCARD, Event.QUIT]
    assert pad.speed_m_s == 0.1  # d-pad up raised the level from 0.05
    assert not pad.gripper_open  # LB closed it
    np.testing.assert_allclose(pad.stick(), [0, -1, 0, 1, 0, 0])  # lx in the dead zone
    v = pad.speed_m_s
    np.testing.assert_allclose(pad.twist(), [v, 0, v, 0, 0, 0])  # forward and up


def test_records_split_across_reads_and_initial_state_is_no_press():
    pad = GamepadTeleop()
    held_a = JS_EVENT.pack(1, 1, 0x81, 0)  # A already held when the device was opened
    pad.feed(held_a[:5])
    pad.feed(held_a[5:])
    assert pad.buttons == {0: 1} and pad.events() == []
    right = JS_EVENT.pack(2, 16000, 2, 3) + JS_EVENT.pack(3, 32767, 2, 4)  # right stick right, down
    pad.feed(right)
    w = pad.angular_speed_rad_s
    # right: clockwise turn (+wz); down: tip back (+wy); 16000 of 32767 past a 0.12 dead zone
    expected = (16000 / 32767 - 0.12) / 0.88 * w
    np.testing.assert_allclose(pad.twist(), [0, 0, 0, 0, w, expected])
    pad.feed(JS_EVENT.pack(4, 1, 1, 5) + JS_EVENT.pack(5, 0, 1, 5) + JS_EVENT.pack(6, 1, 1, 3))
    assert not pad.gripper_open  # RB opened it, Y toggled it closed


def test_dead_zone_and_triggers():
    pad = GamepadTeleop(deadzone=0.2)
    assert pad.twist().tolist() == [0.0] * 6  # triggers start released, not half pressed
    pad.feed(JS_EVENT.pack(0, 0, 2, 2))  # left trigger half way
    v = pad.speed_m_s
    assert pad.twist()[2] == pytest.approx(-(0.5 - 0.2) / 0.8 * v)


def test_playstation_layout_by_name():
    assert mapping_for("Sony Interactive Entertainment Wireless Controller") is PLAYSTATION
    assert mapping_for("Microsoft X-Box 360 pad") is XBOX
    pad = GamepadTeleop(mapping=PLAYSTATION)
    pad.feed(b"".join(JS_EVENT.pack(t, 1, 1, n) for t, n in enumerate((0, 3, 1, 9))))
    assert pad.events() == [Event.TOGGLE, Event.RERECORD, Event.DISCARD, Event.QUIT]


def test_discovery(tmp_path):
    dev, sysfs = tmp_path / "dev", tmp_path / "sys"
    dev.mkdir()
    for name in ("js1", "js0", "event3", "js10"):
        (dev / name).touch()
    (sysfs / "js0" / "device").mkdir(parents=True)
    (sysfs / "js0" / "device" / "name").write_text("Microsoft X-Box 360 pad\n")
    pads = list_gamepads(dev, sysfs)
    assert [p.path for p in pads] == [str(dev / "js0"), str(dev / "js1"), str(dev / "js10")]
    assert pads[0].name == "Microsoft X-Box 360 pad" and pads[1].name == "?"


def test_missing_device_is_a_clear_error(tmp_path):
    with pytest.raises(ImitationError, match="cannot open"):
        GamepadTeleop(device=tmp_path / "js9").connect()


def test_reads_a_device_file(tmp_path):
    """The device path read nonblocking, as /dev/input/jsN is: here a FIFO the test writes."""
    fifo = tmp_path / "js0"
    os.mkfifo(fifo)
    pad = GamepadTeleop(device=fifo)
    with pad:
        pad.poll()  # nothing yet: returns at once
        writer = threading.Thread(target=lambda: fifo.write_bytes(RECORDING))
        writer.start()
        writer.join(timeout=30)
        events: list[Event] = []
        deadline = time.monotonic() + 30  # returns as soon as all five arrive; a loaded machine is slow
        while len(events) < 5 and time.monotonic() < deadline:
            events += pad.events()
            time.sleep(0.001)
        assert events == [Event.TOGGLE, Event.SPEED_UP, Event.RERECORD, Event.DISCARD, Event.QUIT]


def test_no_gamepad_is_a_clear_error(monkeypatch):
    import imitation.teleop.gamepad as gamepad

    monkeypatch.setattr(gamepad, "list_gamepads", lambda: [])
    with pytest.raises(ImitationError, match="no joystick device .* modprobe joydev"):
        GamepadTeleop().connect()
