"""Gamepad teleop over the Linux joystick API (``/dev/input/jsN``), with no dependency.

The kernel's joydev interface gives 8-byte ``js_event`` records: u32 time (ms), s16 value,
u8 type (1 button, 2 axis; 0x80 flags the synthetic events that report the initial state on
open), u8 number. Axis values span -32767..32767 (triggers too: -32767 released). Reading the
device file needs no X server or window and no library (pygame/SDL), so it works headless; it
needs Linux with the ``joydev`` module (``modprobe joydev``) and read access to the device (the
``input`` group, or a logged-in seat). Other operating systems have no ``/dev/input/js*``; there
this device is not available.

Button and axis numbers depend on the driver. ``XBOX`` is the layout of the ``xpad`` driver
(Xbox 360/One pads and most clones); ``PLAYSTATION`` that of ``hid-sony``/``hid-playstation``
(DualShock 4, DualSense), chosen by the device name. Other pads: pass ``mapping=GamepadMap(...)``
(``jstest /dev/input/js0`` shows the numbers).

Mapping (Xbox names): left stick = move x (forward/back) and y (left/right); right trigger /
left trigger = up / down; right stick = turn the gripper (x) and tilt it (y); LB = close the
gripper, RB = open it, Y = toggle it; A = start / save an episode, B = discard, X = re-record,
Back or Start = quit; d-pad up/down = faster/slower. Sticks and triggers have a dead zone.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imitation.errors import ConfigError, ImitationError
from imitation.teleop.base import CartesianTeleop, Event

log = logging.getLogger(__name__)

JS_EVENT = struct.Struct("<IhBB")  # time ms, value, type, number (little-endian, as on x86/ARM)
JS_EVENT_BUTTON, JS_EVENT_AXIS, JS_EVENT_INIT = 0x01, 0x02, 0x80
AXIS_MAX = 32767


@dataclass(frozen=True)
class JsEvent:
    """One joystick event; ``type`` is 1 (button) or 2 (axis), ``init`` marks an initial-state event."""

    time_ms: int
    value: int
    type: int
    number: int
    init: bool = False


def parse_js_events(data: bytes) -> list[JsEvent]:
    """The ``js_event`` records in ``data`` (a trailing partial record is ignored)."""
    out = []
    for off in range(0, len(data) - len(data) % JS_EVENT.size, JS_EVENT.size):
        t, value, typ, number = JS_EVENT.unpack_from(data, off)
        out.append(JsEvent(t, value, typ & ~JS_EVENT_INIT, number, bool(typ & JS_EVENT_INIT)))
    return out


@dataclass(frozen=True)
class GamepadMap:
    """Joystick-API button and axis numbers of a pad, by their Xbox names."""

    a: int = 0
    b: int = 1
    x: int = 2
    y: int = 3
    lb: int = 4
    rb: int = 5
    back: int = 6
    start: int = 7
    left_x: int = 0
    left_y: int = 1
    lt: int = 2
    right_x: int = 3
    right_y: int = 4
    rt: int = 5
    dpad_x: int = 6
    dpad_y: int = 7


XBOX = GamepadMap()
# hid-sony / hid-playstation: cross, circle, triangle, square, L1, R1, L2, R2, share, options.
PLAYSTATION = GamepadMap(a=0, b=1, x=3, y=2, lb=4, rb=5, back=8, start=9)


def mapping_for(name: str) -> GamepadMap:
    """The layout a pad of this name most likely has."""
    low = name.lower()
    if "sony" in low or "playstation" in low or "dualsense" in low or low == "wireless controller":
        return PLAYSTATION
    return XBOX


HELP = """\
Gamepad (Xbox names; PlayStation: A = cross, B = circle, X = square, Y = triangle):
  A            start an episode; press again to save it
  X            re-record the current episode
  B            discard the current episode
  Back / Start quit (the demo store is closed cleanly)
  left stick   move the gripper forward / back (x) and left / right (y)
  RT / LT      move it up / down (z)
  right stick  turn the gripper about its axis (left / right), tilt it (up / down)
  LB / RB      close / open the gripper (Y toggles it)
  d-pad up / down  faster / slower"""


@dataclass(frozen=True)
class InputDevice:
    path: str
    name: str


def list_gamepads(
    dev_root: str | Path = "/dev/input", sys_root: str | Path = "/sys/class/input"
) -> list[InputDevice]:
    """Joystick devices ``/dev/input/jsN`` with their names (from sysfs), in number order."""
    found = []
    for dev in sorted(Path(dev_root).glob("js*"), key=lambda p: (len(p.name), p.name)):
        if not dev.name[2:].isdigit():
            continue
        try:
            name = (Path(sys_root) / dev.name / "device" / "name").read_text().strip()
        except OSError:
            name = "?"
        found.append(InputDevice(str(dev), name))
    return found


def _unit(value: float, deadzone: float) -> float:
    """A stick value in [-1, 1] with the dead zone cut out and the rest stretched to full scale."""
    mag = abs(value)
    if mag <= deadzone:
        return 0.0
    return float(np.sign(value) * min(1.0, (mag - deadzone) / (1.0 - deadzone)))


class GamepadTeleop(CartesianTeleop):
    """Cartesian teleop from a gamepad; see the module docstring.

    ``device``: the joystick path (default: the first of ``list_gamepads()``). ``mapping``: its
    layout (default: by the device's name). ``deadzone``: share of the stick travel ignored.
    """

    name = "gamepad"
    help = HELP

    def __init__(
        self,
        control_hz: float = 50.0,
        xml: str | Path | None = None,
        prefix: str = "",
        *,
        device: str | Path | None = None,
        mapping: GamepadMap | None = None,
        deadzone: float = 0.12,
        **kw: Any,
    ) -> None:
        super().__init__(control_hz, xml, prefix, **kw)
        if not 0 <= deadzone < 1:
            raise ConfigError(f"gamepad: deadzone={deadzone!r} must be in [0, 1)")
        self.device = str(device) if device is not None else None
        self.mapping = mapping
        self.deadzone = float(deadzone)
        self.axes: dict[int, int] = {}
        self.buttons: dict[int, int] = {}
        self._fd: int | None = None
        self._partial = b""
        self._reset_axes()

    def _reset_axes(self) -> None:
        m = self.mapping or XBOX
        self.axes = {m.lt: -AXIS_MAX, m.rt: -AXIS_MAX}  # released triggers until the pad says otherwise
        self.buttons = {}

    # -------------------------------------------------------------- device
    def connect(self) -> None:
        if self._fd is not None:
            return
        if self.device is None:
            pads = list_gamepads()
            if not pads:
                raise ImitationError(
                    "gamepad: no joystick device (/dev/input/js*) found; plug a gamepad in, and on Linux "
                    "load the joystick interface (sudo modprobe joydev)"
                )
            self.device, found_name = pads[0].path, pads[0].name
            log.info("gamepad: using %s (%s)", self.device, found_name)
        else:
            found_name = next((p.name for p in list_gamepads() if p.path == self.device), "")
        if self.mapping is None:
            self.mapping = mapping_for(found_name)
        self._reset_axes()
        try:
            self._fd = os.open(self.device, os.O_RDONLY | os.O_NONBLOCK)
        except PermissionError as e:
            raise ImitationError(
                f"gamepad: no permission to read {self.device}; add yourself to its group "
                f"(ls -l {self.device}; e.g. sudo usermod -aG input $USER, then log in again)"
            ) from e
        except OSError as e:
            raise ImitationError(f"gamepad: cannot open {self.device}: {e.strerror}") from e

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def poll(self) -> None:
        if self._fd is None:
            return
        data = b""
        for _ in range(64):
            try:
                chunk = os.read(self._fd, JS_EVENT.size * 64)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    break
                raise ImitationError(
                    f"gamepad: {self.device} stopped answering ({e.strerror}); was it unplugged?"
                ) from e
            if not chunk:
                break
            data += chunk
        if data:
            self.feed(data)

    # -------------------------------------------------------------- events
    def feed(self, data: bytes) -> None:
        """Take in raw ``js_event`` bytes (what the device file gives; tests feed recordings)."""
        data = self._partial + data
        cut = len(data) - len(data) % JS_EVENT.size
        self._partial = data[cut:]
        for ev in parse_js_events(data[:cut]):
            self.handle(ev)

    def handle(self, ev: JsEvent) -> None:
        """Apply one event: update the stick state, act on button presses."""
        m = self.mapping or XBOX
        if ev.type == JS_EVENT_AXIS:
            before = self.axes.get(ev.number, 0)
            self.axes[ev.number] = ev.value
            if ev.number == m.dpad_y and not ev.init:
                half = AXIS_MAX // 2
                if ev.value < -half <= before:  # up (negative) just pressed
                    self.emit(Event.SPEED_UP)
                elif ev.value > half >= before:
                    self.emit(Event.SPEED_DOWN)
        elif ev.type == JS_EVENT_BUTTON:
            before = self.buttons.get(ev.number, 0)
            self.buttons[ev.number] = ev.value
            if ev.init or not ev.value or before:  # act on presses only, not on the initial state
                return
            n = ev.number
            if n == m.a:
                self.emit(Event.TOGGLE)
            elif n == m.b:
                self.emit(Event.DISCARD)
            elif n == m.x:
                self.emit(Event.RERECORD)
            elif n in (m.back, m.start):
                self.emit(Event.QUIT)
            elif n == m.lb:
                self.set_gripper(False)
            elif n == m.rb:
                self.set_gripper(True)
            elif n == m.y:
                self.toggle_gripper()

    def stick(self) -> np.ndarray:
        """The controls in use, dead zones applied: left x, left y, lt, rt, right x, right y
        (sticks in [-1, 1], up and left negative as the pad reports them; triggers in [0, 1])."""
        m = self.mapping or XBOX
        dz = self.deadzone

        def axis(n: int) -> float:
            return _unit(self.axes.get(n, 0) / AXIS_MAX, dz)

        def trigger(n: int) -> float:
            return _unit((self.axes.get(n, -AXIS_MAX) + AXIS_MAX) / (2 * AXIS_MAX), dz)

        return np.array(
            [axis(m.left_x), axis(m.left_y), trigger(m.lt), trigger(m.rt), axis(m.right_x), axis(m.right_y)]
        )

    def twist(self) -> np.ndarray:
        lx, ly, lt, rt, rx, ry = self.stick()
        v, w = self.speed_m_s, self.angular_speed_rad_s
        # stick up (negative y) = forward (+x); stick left (negative x) = left (+y);
        # right stick right = clockwise turn (+wz); right stick up = tip forward (-wy).
        return np.array([-ly * v, -lx * v, (rt - lt) * v, 0.0, ry * w, rx * w])
