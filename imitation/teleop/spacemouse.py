"""3Dconnexion SpaceMouse teleop over Linux hidraw (``/dev/hidrawN``), with no dependency.

The device's raw HID input reports are read straight from the hidraw device file (one report
per ``read``, its report id first), so no driver (spacenavd, 3DxWare), no hidapi and no X server
is needed. Report layouts:

- id 1: translation x, y, z as int16 little-endian (7 bytes with the id); newer models (e.g.
  SpaceMouse Compact/Wireless with recent firmware, the Universal Receiver) put all six axes in
  report 1 (13 bytes: x, y, z, rx, ry, rz);
- id 2: rotation rx, ry, rz, int16 little-endian;
- id 3: buttons, a little-endian bitmask (bit 0 left, bit 1 right).

Other report ids (battery, LEDs) are ignored. Axis values reach about ±350 at full deflection.
Assumed raw axis directions (as other raw-HID readers use them): x right, y toward the operator,
z down, rotations right-handed about those axes. Devices are found through
``/sys/class/hidraw/*/device/uevent`` (``HID_ID`` bus:vendor:product, ``HID_NAME``): vendor 0x256F
(3Dconnexion), or 0x046D (Logitech, which made the older models) with a known 3Dconnexion product
id or name. Reading ``/dev/hidraw*`` usually needs a udev rule, e.g.
``KERNEL=="hidraw*", ATTRS{idVendor}=="256f", MODE="0660", TAG+="uaccess"``.
Linux only: other systems have no hidraw; there a SpaceMouse would need hidapi or the vendor's
driver, which this module does not use.

Mapping, for an operator standing behind the arm (facing its +x): push the cap away = forward
(+x), to the left = left (+y), lift = up (+z); tilt the cap forward = tilt the gripper's tip
forward; twist it = turn the gripper about its axis (same sense). Left button click = start /
save an episode; right click = open / close the gripper; hold left 1 s = re-record; hold right
1 s = discard; both buttons together = quit. Speed: the cap's deflection scales the current
speed level (``speed_level`` when constructing; the device has no buttons to spare for it).
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imitation.errors import ConfigError, ImitationError
from imitation.teleop.base import CartesianTeleop, Event

log = logging.getLogger(__name__)

VENDOR_3DCONNEXION = 0x256F
VENDOR_LOGITECH = 0x046D
# 3Dconnexion devices sold under Logitech's vendor id (SpaceMouse Plus XT ... SpaceMouse Pro).
LOGITECH_PRODUCTS = frozenset(
    {0xC603, 0xC605, 0xC606, 0xC621, 0xC623, 0xC625, 0xC626, 0xC627, 0xC628, 0xC629, 0xC62B, 0xC640}
)
FULL_SCALE = 350.0
LEFT, RIGHT = 0x1, 0x2
_AXES = struct.Struct("<3h")

# Raw unit axes (x, y, z, rx, ry, rz) -> twist directions (vx, vy, vz, wx, wy, wz); see the
# module docstring for the raw frame. wx (a rotation the 5-joint arm cannot make) stays 0.
DEVICE_TO_TWIST = np.array(
    [
        [0, -1, 0, 0, 0, 0],  # push away (-y) -> forward
        [-1, 0, 0, 0, 0, 0],  # push left (-x) -> left
        [0, 0, -1, 0, 0, 0],  # lift (-z) -> up
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],  # tilt forward (-rx) -> tip forward (-wy)
        [0, 0, 0, 0, 0, 1],  # twist clockwise seen from above (+rz) -> clockwise (+wz)
    ],
    dtype=float,
)

HELP = """\
SpaceMouse:
  left click         start an episode; click again to save it
  hold left 1 s      re-record the current episode
  hold right 1 s     discard the current episode
  both buttons       quit (the demo store is closed cleanly)
  right click        open / close the gripper
  push / pull cap    move the gripper (away = forward, left = left, lift = up)
  tilt cap fwd/back  tilt the gripper's tip forward / back
  twist cap          turn the gripper about its axis"""


@dataclass(frozen=True)
class SpaceMouseReport:
    """What one raw report carries: raw translation and/or rotation axes, or the button bits."""

    translation: tuple[int, int, int] | None = None
    rotation: tuple[int, int, int] | None = None
    buttons: int | None = None


def parse_report(data: bytes) -> SpaceMouseReport | None:
    """Decode one hidraw input report (report id first); None for ids this module ignores."""
    if len(data) < 2:
        return None
    rid, body = data[0], bytes(data[1:])
    if rid == 1 and len(body) >= 12:
        return SpaceMouseReport(translation=_AXES.unpack_from(body, 0), rotation=_AXES.unpack_from(body, 6))
    if rid == 1 and len(body) >= 6:
        return SpaceMouseReport(translation=_AXES.unpack_from(body, 0))
    if rid == 2 and len(body) >= 6:
        return SpaceMouseReport(rotation=_AXES.unpack_from(body, 0))
    if rid == 3:
        return SpaceMouseReport(buttons=int.from_bytes(body, "little"))
    return None


@dataclass(frozen=True)
class HidDevice:
    path: str
    name: str
    vendor: int
    product: int


def _uevent(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def list_spacemice(
    sys_root: str | Path = "/sys/class/hidraw", dev_root: str | Path = "/dev"
) -> list[HidDevice]:
    """3Dconnexion devices among the hidraw nodes, in number order."""
    found = []
    for entry in sorted(Path(sys_root).glob("hidraw*"), key=lambda p: (len(p.name), p.name)):
        try:
            info = _uevent((entry / "device" / "uevent").read_text())
            _bus, vendor, product = (int(x, 16) for x in info["HID_ID"].split(":"))
        except (OSError, KeyError, ValueError):
            continue
        name = info.get("HID_NAME", "")
        low = name.lower()
        ours = vendor == VENDOR_3DCONNEXION or (
            vendor == VENDOR_LOGITECH and (product in LOGITECH_PRODUCTS or "3dconnexion" in low)
        )
        if ours:
            found.append(HidDevice(str(Path(dev_root) / entry.name), name, vendor, product))
    return found


def _deadzone(u: np.ndarray, dz: float) -> np.ndarray:
    mag = np.abs(u)
    return np.where(mag <= dz, 0.0, np.sign(u) * np.minimum(1.0, (mag - dz) / (1.0 - dz)))


class SpaceMouseTeleop(CartesianTeleop):
    """Cartesian teleop from a SpaceMouse; see the module docstring.

    ``device``: the hidraw path (default: the first of ``list_spacemice()``). ``full_scale``: raw
    value of a full deflection; ``deadzone``: share of it ignored. ``long_press_s``: how long a
    button is held for re-record / discard. ``device_to_twist``: a 6x6 matrix from raw unit
    axes to twist directions (default ``DEVICE_TO_TWIST``), to flip or swap axes. ``clock`` (s)
    times the button holds.
    """

    name = "spacemouse"
    help = HELP

    def __init__(
        self,
        control_hz: float = 50.0,
        xml: str | Path | None = None,
        prefix: str = "",
        *,
        device: str | Path | None = None,
        full_scale: float = FULL_SCALE,
        deadzone: float = 0.08,
        long_press_s: float = 1.0,
        device_to_twist: np.ndarray | None = None,
        clock: Callable[[], float] = time.monotonic,
        **kw: Any,
    ) -> None:
        super().__init__(control_hz, xml, prefix, **kw)
        if not full_scale > 0 or not 0 <= deadzone < 1:
            raise ConfigError(
                f"spacemouse: full_scale={full_scale!r} must be > 0 and deadzone={deadzone!r} in [0, 1)"
            )
        self.device = str(device) if device is not None else None
        self.full_scale, self.deadzone, self.long_press_s = (
            float(full_scale),
            float(deadzone),
            float(long_press_s),
        )
        m = DEVICE_TO_TWIST if device_to_twist is None else np.asarray(device_to_twist, dtype=float)
        if m.shape != (6, 6):
            raise ConfigError(f"spacemouse: device_to_twist must be 6x6, got shape {m.shape}")
        self.device_to_twist = m
        self.clock = clock
        self.raw = np.zeros(6)  # last raw x, y, z, rx, ry, rz
        self.buttons = 0
        self._fd: int | None = None
        self._gesture_start = 0.0
        self._gesture_seen = 0
        self._gesture_done = True

    # -------------------------------------------------------------- device
    def connect(self) -> None:
        if self._fd is not None:
            return
        if self.device is None:
            mice = list_spacemice()
            if not mice:
                raise ImitationError(
                    "spacemouse: no 3Dconnexion device found among /sys/class/hidraw/*; plug it in "
                    "(vendor ids 0x256F, 0x046D), or pass device=/dev/hidrawN"
                )
            self.device = mice[0].path
            log.info("spacemouse: using %s (%s)", self.device, mice[0].name)
        try:
            self._fd = os.open(self.device, os.O_RDONLY | os.O_NONBLOCK)
        except PermissionError as e:
            raise ImitationError(
                f"spacemouse: no permission to read {self.device}; add a udev rule, e.g. "
                '/etc/udev/rules.d/99-spacemouse.rules: KERNEL=="hidraw*", ATTRS{idVendor}=="256f", '
                'MODE="0660", TAG+="uaccess" (046d for older models), then replug the device'
            ) from e
        except OSError as e:
            raise ImitationError(f"spacemouse: cannot open {self.device}: {e.strerror}") from e

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def poll(self) -> None:
        if self._fd is not None:
            for _ in range(256):  # one report per read
                try:
                    report = os.read(self._fd, 64)
                except BlockingIOError:
                    break
                except OSError as e:
                    if e.errno == errno.EAGAIN:
                        break
                    raise ImitationError(
                        f"spacemouse: {self.device} stopped answering ({e.strerror}); was it unplugged?"
                    ) from e
                if not report:
                    break
                self.feed(report)
        self._check_long_press(self.clock())

    # -------------------------------------------------------------- reports
    def feed(self, report: bytes) -> None:
        """Take in one raw report (what one read of the device gives; tests feed recordings)."""
        r = parse_report(report)
        if r is None:
            return
        if r.translation is not None:
            self.raw[:3] = r.translation
        if r.rotation is not None:
            self.raw[3:] = r.rotation
        if r.buttons is not None:
            self._on_buttons(r.buttons & (LEFT | RIGHT), self.clock())

    def _on_buttons(self, mask: int, now: float) -> None:
        self._check_long_press(now)  # a hold that outlasted the long-press time before this report
        before, self.buttons = self.buttons, mask
        if mask and not before:  # a new gesture
            self._gesture_start, self._gesture_seen, self._gesture_done = now, mask, False
        self._gesture_seen |= mask
        if self._gesture_done:
            return
        if self._gesture_seen == LEFT | RIGHT:
            self._gesture_done = True
            self.emit(Event.QUIT)
        elif not mask and before:  # released before the long-press time: a click
            self._gesture_done = True
            if self._gesture_seen == LEFT:
                self.emit(Event.TOGGLE)
            elif self._gesture_seen == RIGHT:
                self.toggle_gripper()

    def _check_long_press(self, now: float) -> None:
        if self._gesture_done or not self.buttons or now - self._gesture_start < self.long_press_s:
            return
        self._gesture_done = True
        self.emit(Event.RERECORD if self._gesture_seen == LEFT else Event.DISCARD)

    def unit_axes(self) -> np.ndarray:
        """Raw axes scaled to [-1, 1] with the dead zone cut out."""
        return _deadzone(np.clip(self.raw / self.full_scale, -1.0, 1.0), self.deadzone)

    def twist(self) -> np.ndarray:
        scale = np.array([self.speed_m_s] * 3 + [self.angular_speed_rad_s] * 3)
        return (self.device_to_twist @ self.unit_axes()) * scale
