"""Keyboard teleop: a plain terminal (no X server needed) or keys from a camera window.

Terminal backend: the device puts its terminal (stdin, or the ``fd`` given) in cbreak mode
(no line buffering, no echo; Ctrl-C still interrupts) on ``connect`` and restores the saved mode
on ``close``. Reads never block: ``select`` with a zero timeout, then ``os.read`` of what is there
(the file stays in blocking mode, because stdin often shares its open file with stdout). Escape
sequences of arrow keys (``ESC [ A`` and the application-mode ``ESC O A``) are parsed, also when
split across reads. Needs POSIX ``termios`` (Linux, macOS); on Windows only the window backend
works.

Window backend: ``feed_key(code)`` takes the code an OpenCV window returns. Use
``cv2.waitKeyEx`` where possible: its arrow-key codes are recognised for GTK, Qt and Windows.
``cv2.waitKey`` masks codes to 8 bits, which turns GTK's arrows into 81-84 (the codes of
``Q R S T``) and Qt's into 18-21; these are taken as arrows, which is why every letter key of
this map is lower case.

A terminal reports key presses (and auto-repeats), never releases: a motion key counts as held
for ``first_hold_s`` after a first press (longer than the usual 0.25-0.5 s auto-repeat delay, so
holding a key moves without a pause) and for ``repeat_hold_s`` after each auto-repeat (longer
than the repeat interval of ~30 ms). The arm therefore coasts for up to ``repeat_hold_s`` after
a key is let go, and a single tap moves it for ``first_hold_s``. Opposite keys cancel each other.
The window backend has the same limits.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from imitation.errors import ImitationError
from imitation.teleop.base import CartesianTeleop, Event

log = logging.getLogger(__name__)

EVENT_KEYS = {"enter": Event.TOGGLE, "r": Event.RERECORD, "d": Event.DISCARD, "q": Event.QUIT}
SPEED_KEYS = {"+": Event.SPEED_UP, "=": Event.SPEED_UP, "-": Event.SPEED_DOWN, "_": Event.SPEED_DOWN}
GRIPPER_KEY = "space"
# key -> (twist component, sign): 0-2 linear x/y/z, 4 pitch, 5 turn about the tool axis
MOTION_KEYS: dict[str, tuple[int, int]] = {
    "up": (0, 1),
    "down": (0, -1),
    "left": (1, 1),
    "right": (1, -1),
    "i": (2, 1),
    "k": (2, -1),
    "u": (4, 1),
    "o": (4, -1),
    "j": (5, -1),
    "l": (5, 1),
}
OPPOSITE = {
    "up": "down",
    "down": "up",
    "left": "right",
    "right": "left",
    "i": "k",
    "k": "i",
    "u": "o",
    "o": "u",
    "j": "l",
    "l": "j",
}

EVENTS_HELP = """\
  Enter        start an episode; press again to save it
  r            re-record the current episode
  d            discard the current episode
  q            quit (the demo store is closed cleanly)"""

MOTION_HELP = """\
  Up / Down    move the gripper forward / back (x)
  Left / Right move it left / right (y)
  i / k        move it up / down (z)
  j / l        turn the gripper left / right about its axis
  u / o        tilt the gripper's tip back / forward
  space        open / close the gripper
  + / -        faster / slower (speed levels {speeds})
  A terminal reports no key releases: a key counts as held {first:g} s after a press,
  {repeat:g} s after each auto-repeat."""

HELP = (
    "Keyboard (terminal or camera window):\n"
    + EVENTS_HELP
    + "\n"
    + MOTION_HELP.format(speeds="0.02, 0.05, 0.1 m/s", first=0.55, repeat=0.12)
)

# ------------------------------------------------------------------------------------ parsing
_CSI_FINAL = {"A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end", "Z": "shift+tab"}
_CSI_TILDE = {
    "1": "home",
    "2": "insert",
    "3": "delete",
    "4": "end",
    "5": "pageup",
    "6": "pagedown",
    "7": "home",
    "8": "end",
}
_SS3 = {
    "A": "up",
    "B": "down",
    "C": "right",
    "D": "left",
    "H": "home",
    "F": "end",
    "M": "enter",  # keypad Enter in application keypad mode
    "k": "+",
    "m": "-",
    "P": "f1",
    "Q": "f2",
    "R": "f3",
    "S": "f4",
}
_CONTROL = {0x0D: "enter", 0x0A: "enter", 0x09: "tab", 0x7F: "backspace", 0x08: "backspace", 0x20: "space"}


def split_keys(data: bytes, final: bool = False) -> tuple[list[str], bytes]:
    """Key names in terminal input ``data`` and the bytes of an incomplete sequence at its end.

    Names: ``up down left right enter space esc tab backspace home end delete ...``, a printable
    character as itself, ``ctrl+x``, ``alt+x``, ``unknown`` for a sequence not known here.
    With ``final`` an incomplete tail is read as what it is so far (a lone ESC is ``esc``).
    """
    keys: list[str] = []
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == 0x1B:
            if i + 1 >= n:
                if not final:
                    return keys, data[i:]
                keys.append("esc")
                i += 1
                continue
            nxt = data[i + 1]
            if nxt == ord("["):
                j = i + 2
                while j < n and 0x20 <= data[j] <= 0x3F:  # parameter and intermediate bytes
                    j += 1
                if j >= n:
                    if not final:
                        return keys, data[i:]
                    keys.append("esc")
                    i += 1
                    continue
                if not 0x40 <= data[j] <= 0x7E:  # not a final byte: a malformed sequence
                    keys.append("esc")
                    i += 1
                    continue
                fin, params = chr(data[j]), data[i + 2 : j].decode("ascii", "replace")
                if fin == "~":
                    keys.append(_CSI_TILDE.get(params.split(";")[0], "unknown"))
                else:
                    keys.append(_CSI_FINAL.get(fin, "unknown"))  # modifiers (ESC [ 1;5A) ignored
                i = j + 1
            elif nxt == ord("O"):
                if i + 2 >= n:
                    if not final:
                        return keys, data[i:]
                    keys.append("alt+O")
                    i += 2
                    continue
                keys.append(_SS3.get(chr(data[i + 2]), "unknown"))
                i += 3
            elif nxt == 0x1B:
                keys.append("esc")
                i += 1
            else:
                sub, _ = split_keys(data[i + 1 : i + 2], final=True)
                keys.append("alt+" + (sub[0] if sub else "unknown"))
                i += 2
        elif b in _CONTROL:
            keys.append(_CONTROL[b])
            i += 1
        elif b < 0x20:
            keys.append("ctrl+" + chr(b + 0x60))
            i += 1
        elif b < 0x80:
            keys.append(chr(b))
            i += 1
        else:  # UTF-8: the lead byte gives the length
            length = 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 1
            if i + length > n and not final:
                return keys, data[i:]
            keys.append(data[i : i + length].decode("utf-8", "replace"))
            i += length
    return keys, b""


def parse_keys(data: bytes) -> list[str]:
    """Key names in a complete piece of terminal input (see ``split_keys``)."""
    return split_keys(data, final=True)[0]


# OpenCV key codes: full codes (waitKeyEx) for GTK (X keysyms), Qt and Windows, and the 8-bit
# codes cv2.waitKey leaves of GTK's (81-84) and Qt's (18-21) arrows.
_WINDOW_CODES: dict[int, str] = {
    10: "enter",
    13: "enter",
    27: "esc",
    32: "space",
    0xFF0D: "enter",
    0xFF8D: "enter",
    0x01000004: "enter",
    0x01000005: "enter",
}
for _names, _codes in (
    (("left", "up", "right", "down"), (0xFF51, 0xFF52, 0xFF53, 0xFF54)),
    (("left", "up", "right", "down"), (0x01000012, 0x01000013, 0x01000014, 0x01000015)),
    (("left", "up", "right", "down"), (0x250000, 0x260000, 0x270000, 0x280000)),
    (("left", "up", "right", "down"), (81, 82, 83, 84)),
    (("left", "up", "right", "down"), (18, 19, 20, 21)),
):
    _WINDOW_CODES.update(zip(_codes, _names, strict=True))


def window_key_name(code: int) -> str | None:
    """The key name of an OpenCV ``waitKey``/``waitKeyEx`` code (None for no key, -1)."""
    if code is None or code < 0:
        return None
    if code in _WINDOW_CODES:
        return _WINDOW_CODES[code]
    if 33 <= code <= 126:
        return chr(code)
    return "unknown"


# ------------------------------------------------------------------------------------ device
class KeyboardTeleop(CartesianTeleop):
    """Cartesian teleop from a keyboard; see the module docstring for the backends.

    ``fd``: the terminal to read (default stdin). ``terminal``: True to require a terminal,
    False for the window backend only, None (default) to use the terminal when ``fd`` is one.
    ``events_only``: only the episode keys (Enter, r, d, q), no arm motion and no IK model; for
    devices without buttons (a leader arm). ``clock`` (s) times the key holds.
    """

    name = "keyboard"

    def __init__(
        self,
        control_hz: float = 50.0,
        xml: str | Path | None = None,
        prefix: str = "",
        *,
        fd: int | None = None,
        terminal: bool | None = None,
        events_only: bool = False,
        first_hold_s: float = 0.55,
        repeat_hold_s: float = 0.12,
        clock: Callable[[], float] = time.monotonic,
        **kw: Any,
    ) -> None:
        super().__init__(control_hz, xml, prefix, **kw)
        self.events_only = events_only
        self.first_hold_s, self.repeat_hold_s = float(first_hold_s), float(repeat_hold_s)
        self.clock = clock
        self._fd_arg, self._terminal_arg = fd, terminal
        self._fd: int | None = None
        self._saved_mode: list[Any] | None = None
        self._pending = b""
        self._pending_since = 0.0
        self._pressed: dict[str, tuple[float, bool]] = {}  # key -> (last press time, repeating)
        if events_only:
            self.help = "Keyboard (terminal or camera window):\n" + EVENTS_HELP
        else:
            self.help = "Keyboard (terminal or camera window):\n" + EVENTS_HELP + "\n" + self._motion_help()

    def _motion_help(self) -> str:
        return MOTION_HELP.format(
            speeds=self.speed_text(), first=self.first_hold_s, repeat=self.repeat_hold_s
        )

    @property
    def terminal(self) -> bool:
        """Whether keys come from a terminal (after ``connect``)."""
        return self._fd is not None

    # -------------------------------------------------------------- terminal
    def connect(self) -> None:
        if self._fd is not None:
            return
        fd = self._fd_arg if self._fd_arg is not None else self._stdin_fd()
        is_tty = fd is not None and os.isatty(fd)
        if self._terminal_arg and not is_tty:
            raise ImitationError(
                f"keyboard teleop: file descriptor {fd} is not a terminal; run in a terminal, "
                "or use the camera window's keys (terminal=False)"
            )
        if self._terminal_arg is False or not is_tty:
            log.info("keyboard teleop: no terminal on stdin; keys come from the camera window only")
            return
        try:
            import termios
        except ImportError as e:  # Windows
            raise ImitationError(
                "keyboard teleop: this platform has no termios; use the camera window's keys (terminal=False)"
            ) from e
        self._saved_mode = termios.tcgetattr(fd)
        mode = termios.tcgetattr(fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO)  # cbreak: keys one by one, not echoed; ISIG kept
        mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
        termios.tcsetattr(fd, termios.TCSANOW, mode)
        self._fd = fd

    @staticmethod
    def _stdin_fd() -> int | None:
        try:
            return sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):  # replaced or closed stdin (pytest, daemons)
            return None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None and self._saved_mode is not None:
            import termios

            try:
                termios.tcsetattr(fd, termios.TCSADRAIN, self._saved_mode)
            except termios.error as e:  # the terminal is gone; nothing left to restore
                log.warning("keyboard teleop: could not restore the terminal mode: %s", e)
        self._saved_mode = None
        self._pending = b""

    def poll(self) -> None:
        fd = self._fd
        if fd is None:
            return
        data = b""
        for _ in range(64):  # bounded: a flood of input cannot stall the control loop
            ready, _, _ = select.select([fd], [], [], 0)
            if not ready:
                break
            try:
                chunk = os.read(fd, 1024)
            except OSError as e:
                raise ImitationError(f"keyboard teleop: cannot read the terminal: {e}") from e
            if not chunk:
                break
            data += chunk
        now = self.clock()
        if data:
            keys, self._pending = split_keys(self._pending + data)
            self._pending_since = now
        elif self._pending and now - self._pending_since > 0.1:
            # A lone ESC (or a cut-off sequence) that nothing followed: take it as it is.
            keys, self._pending = parse_keys(self._pending), b""
        else:
            return
        for key in keys:
            self.press(key, now)

    # -------------------------------------------------------------- window
    def feed_key(self, code: int) -> None:
        """A key code from an OpenCV window (``cv2.waitKeyEx``/``waitKey``); -1 (no key) is ignored."""
        name = window_key_name(code)
        if name is not None:
            self.press(name, self.clock())

    # -------------------------------------------------------------- keys
    def press(self, key: str, now: float | None = None) -> None:
        """Act on one key press (a name as ``parse_keys`` gives)."""
        now = self.clock() if now is None else now
        if key in EVENT_KEYS:
            self.emit(EVENT_KEYS[key])
            return
        if self.events_only:
            return
        if key in SPEED_KEYS:
            self.emit(SPEED_KEYS[key])
        elif key == GRIPPER_KEY:
            self.toggle_gripper()
        elif key in MOTION_KEYS:
            with self._lock:
                last = self._pressed.get(key)
                repeating = last is not None and now - last[0] <= (
                    self.repeat_hold_s if last[1] else self.first_hold_s
                )
                self._pressed[key] = (now, repeating)
                self._pressed.pop(OPPOSITE[key], None)

    def held(self, now: float | None = None) -> list[str]:
        """Motion keys that count as held now."""
        now = self.clock() if now is None else now
        with self._lock:
            for key, (t, repeating) in list(self._pressed.items()):
                if now - t > (self.repeat_hold_s if repeating else self.first_hold_s):
                    del self._pressed[key]
            return sorted(self._pressed)

    def twist(self) -> np.ndarray:
        unit = np.zeros(6)
        for key in self.held():
            axis, sign = MOTION_KEYS[key]
            unit[axis] += sign
        scale = np.array([self.speed_m_s] * 3 + [self.angular_speed_rad_s] * 3)
        return unit * scale

    def read(self, obs: dict[str, Any]) -> np.ndarray:
        if self.events_only:
            raise ImitationError(
                "keyboard teleop in events-only mode gives no joint targets; use it for events()"
            )
        return super().read(obs)
