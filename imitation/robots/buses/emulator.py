"""A bus of emulated servos behind a pseudo-terminal: drivers (ours and the vendors' SDKs) open its
port like a USB adapter's.

Each servo keeps a register memory initialised from its model's table. Behaviour follows the real
servos where the drivers can tell:

- PING, READ, WRITE, SYNC_READ, SYNC_WRITE, REG_WRITE/ACTION and (Dynamixel) REBOOT; a broadcast
  PING is answered by every servo in id order.
- Dynamixel: a bad CRC is answered with error 3 (no answer to a broadcast); writing an EEPROM
  register with torque on, or a read-only register, is refused with error 7 (access).
- Feetech: a bad checksum gets no answer. An EEPROM write needs ``Torque_Enable`` 0 and ``Lock`` 0
  (``Lock`` starts at 1); otherwise nothing changes and the status carries bit 6 (0x40, the
  instruction error of the protocol Feetech's derives from). Real STS servos accept such writes
  without persisting them; refusing makes a missing unlock visible. Read-only registers ignore
  writes silently, as on the servos.
- ``Goal_Position`` is clamped to [``Min_Position_Limit``, ``Max_Position_Limit``] in position mode
  (Dynamixel mode 3, Feetech mode 0). Turning torque on sets the goal to the present position, so
  the servo holds where it is.
- ``Homing_Offset``: Dynamixel reports present = actual + offset, Feetech present = actual - offset
  (as the vendors document and LeRobot relies on); goals are in the same frame as present. Writing
  the offset shifts the reported position, not the shaft. Feetech positions in mode 0 wrap to
  [0, 4096).
- Dynamixel ``Secondary_ID`` (0..252; 253..255 off): a servo whose Secondary ID is X executes
  what is addressed to id X (WRITE, REG_WRITE/ACTION, REBOOT, its block of a SYNC_WRITE) without
  answering; PING and READ addressed to X are answered by X alone. Only RAM registers change that
  way: "The EEPROM area cannot be modified with Secondary ID" (ROBOTIS e-Manual, X-series control
  table, Secondary ID), so a write of Drive_Mode or Homing_Offset to a primary leaves its shadow's.
- Dynamixel ``Drive_Mode`` bit 0 (reverse): "Goal Position, Present Position will have an
  inverted direction" (e-Manual, Drive Mode); modelled as present = ``ticks_per_turn`` -
  (shaft + offset). The e-Manual gives no formula; calibration works with either sign of offset.
- Coupled servos (``coupled={shadow: (primary, mirrored)}``): two servos on one joint, as a
  ViperX's shoulder and elbow are. The shadow's shaft turns with the primary's (the other way
  round when ``mirrored``: it is mounted facing it); ``slip(shadow, ticks)`` turns it against the
  primary, as a slipped horn or a broken gear would.
- Dynamixel ``Bus_Watchdog`` (1..127, 20 ms units): with no packet on the bus for that long a
  servo stops where it is and enters fail-safe (the register reads 255, goal writes are refused
  with error 7) until the register is written 0. Any packet on the bus counts as traffic.
- Motion: the physics hook runs before each request; the default one moves the present position
  toward the goal with a first-order lag (time constant ``tau_s``) while torque is on.
- Each answer is sent ``return_delay_s`` after the request (None: each servo's
  ``Return_Delay_Time``, in 2 us units).

Faults for tests: ``inject("drop" | "corrupt" | "error" | "disappear", servo_id, count, ...)``.

Run ``python -m imitation.robots.buses.emulator --robot so100`` (or ``imitation emulate``) to serve
a robot config's servos until Ctrl-C; a robot of several arms (``--robot aloha``) gets a
pseudo-terminal per arm.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import logging
import math
import os
import select
import struct
import sys
import threading
import time
import tty
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from imitation.errors import ConfigError, ImitationError

from . import dynamixel, feetech
from .tables import MODELS, ModelTable, Register

log = logging.getLogger(__name__)

FAULTS = ("drop", "corrupt", "error", "disappear")


class Physics(Protocol):
    """Moves the emulated servos; called under the emulator's lock before each request is served."""

    def sync(self, emulator: ServoEmulator, now: float) -> None: ...


class FirstOrderPhysics:
    """Present position follows the goal with a first-order lag while torque is on; stays otherwise."""

    def __init__(self, tau_s: float = 0.05) -> None:
        self.tau_s = float(tau_s)
        self._last: float | None = None

    def sync(self, emulator: ServoEmulator, now: float) -> None:
        dt = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        for i in emulator.servo_ids:
            model = emulator.model(i)
            pos = emulator.position(i)
            goal = emulator.get(i, "Goal_Position")
            new = pos
            if emulator.torque_on(i):
                keep = math.exp(-dt / self.tau_s) if self.tau_s > 0 else 0.0
                new = goal + (pos - goal) * keep
                emulator.set_position(i, new)
            speed = (new - pos) / dt if dt > 0 else 0.0  # ticks/s
            if model.protocol == "dynamixel":
                speed = speed * 60 / model.ticks_per_turn / 0.229  # 0.229 rpm units
            reg = model.reg("Present_Velocity")
            lo, hi = reg.value_range
            emulator.set(i, "Present_Velocity", int(max(lo, min(hi, round(speed)))))
            if "Moving" in model.registers:
                emulator.set(i, "Moving", int(emulator.torque_on(i) and abs(goal - new) >= 1))


class _Servo:
    def __init__(self, servo_id: int, model: ModelTable) -> None:
        self.model = model
        self.memory = bytearray(max(r.address + r.size for r in model.registers.values()))
        for reg in model.registers.values():
            self.store(reg, reg.default)
        self.store(model.reg("ID"), servo_id)
        self.pos = float(model.reg("Present_Position").default)
        # REG_WRITE waiting for ACTION: address, data, whether it came through the Secondary ID
        self.registered: tuple[int, bytes, bool] | None = None
        self.last_rx = time.monotonic()  # last packet received (the bus watchdog's clock)

    def raw(self, reg: Register) -> int:
        return int.from_bytes(self.memory[reg.address : reg.address + reg.size], "little")

    def value(self, name: str) -> int:
        reg = self.model.reg(name)
        return reg.from_raw(self.raw(reg))

    def store(self, reg: Register, value: int) -> None:
        self.memory[reg.address : reg.address + reg.size] = reg.to_raw(value).to_bytes(reg.size, "little")

    @property
    def feetech(self) -> bool:
        return self.model.protocol == "feetech"

    def wraps(self) -> bool:
        return self.feetech and self.value("Operating_Mode") == 0

    def set_position(self, pos: float) -> None:
        if self.wraps():
            pos %= self.model.ticks_per_turn
        self.pos = float(pos)
        reg = self.model.reg("Present_Position")
        present = round(self.pos)
        if self.wraps():
            present %= self.model.ticks_per_turn
        lo, hi = reg.value_range
        self.store(reg, max(lo, min(hi, present)))

    def shift_offset(self, old: int, new: int) -> None:
        """The offset changed from ``old`` to ``new`` (already stored): the shaft stays put."""
        self.set_shaft(self.shaft(offset=old))

    def reversed(self) -> bool:
        return (
            not self.feetech and "Drive_Mode" in self.model.registers and bool(self.value("Drive_Mode") & 1)
        )

    def shaft(self, offset: int | None = None, reverse: bool | None = None) -> float:
        """The shaft's angle in ticks, whatever the offset and drive mode make of it. Dynamixel:
        present = shaft + offset (reverse: turns - (shaft + offset)); Feetech: shaft - offset."""
        off = self.value("Homing_Offset") if offset is None else offset
        if self.feetech:
            return self.pos + off
        rev = self.reversed() if reverse is None else reverse
        return (self.model.ticks_per_turn - self.pos if rev else self.pos) - off

    def set_shaft(self, shaft: float) -> None:
        off = self.value("Homing_Offset")
        if self.feetech:
            self.set_position(shaft - off)
            return
        self.set_position(self.model.ticks_per_turn - (shaft + off) if self.reversed() else shaft + off)

    def secondary(self) -> int | None:
        """The id whose instructions this servo also executes (its Secondary ID), or None."""
        if "Secondary_ID" not in self.model.registers:
            return None
        sid = self.value("Secondary_ID")
        return sid if sid <= 252 and sid != self.value("ID") else None

    def position_mode(self) -> bool:
        return self.value("Operating_Mode") == (0 if self.feetech else 3)


@dataclass
class _Fault:
    kind: str
    servo_id: int | None
    count: int
    kw: dict[str, Any] = field(default_factory=dict)

    def matches(self, servo_id: int) -> bool:
        return self.servo_id is None or self.servo_id == servo_id


class ServoEmulator:
    """Servos of one protocol ("dynamixel" or "feetech") behind a pseudo-terminal.

    ``servos``: id -> model key. ``start()`` returns the port path (``/dev/pts/N``) for clients.
    ``get``/``set`` read and write registers directly (decoded values; no protocol, no checks);
    ``stats`` counts the requests served per instruction and the rejected packets.
    """

    def __init__(
        self,
        protocol: str,
        servos: Mapping[int, str],
        *,
        return_delay_s: float | None = 0.0,
        tau_s: float = 0.05,
        physics: Physics | None = None,
        baudrate: int = 1_000_000,
        coupled: Mapping[int, tuple[int, bool]] | None = None,
        lock: threading.RLock | None = None,
    ) -> None:
        """``coupled``: shadow id -> (primary id, mirrored): servos sharing a joint (module doc).
        ``lock``: one lock shared by emulators whose servos one physics moves together (the buses
        of a two-arm robot), so that it never waits on one bus while holding the other."""
        codecs = {"dynamixel": dynamixel, "feetech": feetech}
        if protocol not in codecs:
            raise ValueError(f"unknown protocol {protocol!r}; choose one of: {', '.join(codecs)}")
        self.protocol = protocol
        self.codec: Any = codecs[protocol]
        self._servos: dict[int, _Servo] = {}
        for i, model in servos.items():
            if model not in MODELS:
                raise ValueError(f"servo {i}: unknown model {model!r}; known: {', '.join(MODELS)}")
            if MODELS[model].protocol != protocol:
                raise ValueError(f"servo {i}: model {model} speaks {MODELS[model].protocol}, not {protocol}")
            if not 0 <= int(i) <= 252:
                raise ValueError(f"servo id {i} is out of range [0, 252]")
            self._servos[int(i)] = _Servo(int(i), MODELS[model])
        self.return_delay_s = return_delay_s
        self.physics: Physics = physics if physics is not None else FirstOrderPhysics(tau_s)
        self.baudrate = baudrate
        self.port: str | None = None
        self.stats: collections.Counter[str] = collections.Counter()
        self._faults: list[_Fault] = []
        self._lock = lock if lock is not None else threading.RLock()
        self._coupled: dict[int, tuple[int, bool]] = {}
        self._slip: dict[int, float] = {}
        for shadow, (primary, mirrored) in (coupled or {}).items():
            for i in (shadow, primary):
                if int(i) not in self._servos:
                    raise ValueError(
                        f"coupled servo {i} is not one of the emulated ids {sorted(self._servos)}"
                    )
            self._coupled[int(shadow)] = (int(primary), bool(mirrored))
        self._follow()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._addr_bytes = 2 if protocol == "dynamixel" else 1
        self._pending: list[tuple[float, bytes]] = []  # answers to corrupt requests

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        """Open the pseudo-terminal and serve from a daemon thread; returns the port path."""
        if self._thread is not None:
            assert self.port is not None
            return self.port
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        # The emulator keeps the slave end open too: with no slave open, reading the master fails
        # (EIO) between one client closing the port and the next opening it.
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name=f"servo-emulator {self.port}", daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop serving and close the pseudo-terminal (within a few tens of milliseconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self.port = None

    def __enter__(self) -> ServoEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ direct access
    @property
    def servo_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._servos)

    def model(self, servo_id: int) -> ModelTable:
        return self._servo(servo_id).model

    def get(self, servo_id: int, register: str) -> int:
        """The decoded value of ``register`` of servo ``servo_id``."""
        with self._lock:
            return self._servo(servo_id).value(register)

    def set(self, servo_id: int, register: str, value: int) -> None:
        """Write ``register`` directly. ``Present_Position`` moves the servo (as a hand would);
        ``Homing_Offset`` shifts the reported position as on the servo; ``ID`` re-addresses it."""
        with self._lock:
            s = self._servo(servo_id)
            reg = s.model.reg(register)
            if register == "Present_Position":
                s.set_position(value)
                self._follow()
            elif register == "Homing_Offset":
                old = s.value(register)
                s.store(reg, int(value))
                s.shift_offset(old, int(value))
            elif register == "ID":
                self._readdress(servo_id, int(value))
            else:
                s.store(reg, int(value))

    def slip(self, servo_id: int, ticks: float) -> None:
        """Turn a coupled (shadow) servo's shaft ``ticks`` against its primary's, for good: what a
        slipped horn or a broken gear does."""
        with self._lock:
            if servo_id not in self._coupled:
                raise ValueError(
                    f"servo {servo_id} is not coupled to another; coupled: {sorted(self._coupled)}"
                )
            self._slip[servo_id] = self._slip.get(servo_id, 0.0) + float(ticks)
            self._follow()

    def _follow(self) -> None:
        """Put each coupled servo's shaft where its primary's shaft has turned it."""
        for shadow, (primary, mirrored) in self._coupled.items():
            if shadow not in self._servos or primary not in self._servos:
                continue
            p = self._servos[primary]
            shaft = p.shaft()
            turns = p.model.ticks_per_turn - shaft if mirrored else shaft
            self._servos[shadow].set_shaft(turns + self._slip.get(shadow, 0.0))

    def turn(self, servo_id: int, shaft_ticks: float) -> None:
        """Turn servo ``servo_id``'s shaft to ``shaft_ticks`` (as a hand would), whatever its offset
        and drive mode make it read; its coupled shadows turn with it."""
        with self._lock:
            self._servo(servo_id).set_shaft(shaft_ticks)
            self._follow()

    def position(self, servo_id: int) -> float:
        """Present position (ticks, unrounded), in the frame of ``Present_Position``."""
        with self._lock:
            return self._servo(servo_id).pos

    def set_position(self, servo_id: int, ticks: float) -> None:
        """Set the present position (ticks, may be fractional)."""
        with self._lock:
            self._servo(servo_id).set_position(ticks)
            self._follow()

    def torque_on(self, servo_id: int) -> bool:
        return bool(self.get(servo_id, "Torque_Enable"))

    # ------------------------------------------------------------------ faults
    def inject(self, kind: str, servo_id: int | None = None, count: int = 1, **kw: Any) -> None:
        """Inject a fault for the next ``count`` requests or answers of ``servo_id`` (any if None):
        "drop" (the request is lost: not executed, not answered), "corrupt" (one byte of the answer
        flipped; kw ``index``, default the byte before the checksum), "error" (kw ``bits`` set in the
        answer's error byte), "disappear" (the servo ignores everything until ``clear_faults()``)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; choose one of: {', '.join(FAULTS)}")
        if kind == "error" and "bits" not in kw:
            raise ValueError("an 'error' fault needs bits=<error byte bits>")
        with self._lock:
            self._faults.append(_Fault(kind, servo_id, int(count), dict(kw)))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take(self, kind: str, servo_id: int) -> _Fault | None:
        for f in self._faults:
            if f.kind == kind and f.matches(servo_id) and f.count > 0:
                f.count -= 1
                return f
        return None

    def _gone(self, servo_id: int) -> bool:
        return any(f.kind == "disappear" and f.matches(servo_id) for f in self._faults)

    # ------------------------------------------------------------------ serving
    def _servo(self, servo_id: int) -> _Servo:
        try:
            return self._servos[servo_id]
        except KeyError:
            raise ValueError(f"no emulated servo with id {servo_id}; ids: {sorted(self._servos)}") from None

    def _readdress(self, old: int, new: int) -> None:
        if new != old:
            if new in self._servos or not 0 <= new <= 252:
                raise ValueError(f"cannot move servo {old} to id {new}: taken or out of range")
            self._servos[new] = self._servos.pop(old)
        s = self._servos[new]
        s.store(s.model.reg("ID"), new)

    def _serve(self) -> None:
        try:
            self._serve_loop()
        finally:
            # A physics that owns thread-bound resources (a simulator's GL context) releases them
            # in the thread that used them.
            close = getattr(self.physics, "close", None)
            if callable(close):
                close()

    def _serve_loop(self) -> None:
        master = self._master
        assert master is not None
        decoder = self.codec.Decoder(want="instruction", on_corrupt=self._on_corrupt)
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([master], [], [], 0.005)
            except (OSError, ValueError):
                return
            with self._lock:
                now = time.monotonic()
                self._check_watchdogs(now)
                idle = getattr(self.physics, "idle", None)
                if callable(idle):  # work a physics does between requests (e.g. a scene reset)
                    idle(self, now)
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno == errno.EIO:  # no client has the port open
                    time.sleep(0.01)
                    continue
                return
            for packet in decoder.feed(data):
                with self._lock:
                    replies = self._handle(packet)
                self._send(master, replies)
            if self._pending:
                self._send(master, self._pending)
                self._pending = []

    def _on_corrupt(self, frame: bytes) -> None:
        with self._lock:
            self.stats["bad_checksum"] += 1
            if self.protocol != "dynamixel" or len(frame) < 5:
                return
            i = frame[4]
            if i in self._servos and not self._gone(i):
                self._pending += self._status(i, 3)

    def _send(self, master: int, replies: list[tuple[float, bytes]]) -> None:
        for delay, data in replies:
            if delay > 0:
                time.sleep(delay)
            view = memoryview(data)
            deadline = time.monotonic() + 0.1
            while view and not self._stop.is_set():
                try:
                    view = view[os.write(master, view) :]
                except BlockingIOError:
                    if time.monotonic() > deadline:  # nobody reads the port: the bytes are lost
                        break
                    select.select([], [master], [], 0.01)
                except OSError:
                    return

    def _delay(self, s: _Servo) -> float:
        if self.return_delay_s is None:
            return s.value("Return_Delay_Time") * 2e-6
        return self.return_delay_s

    def _status(self, servo_id: int, error: int = 0, params: bytes = b"") -> list[tuple[float, bytes]]:
        """The answer of ``servo_id`` with the injected faults applied."""
        fault = self._take("error", servo_id)
        if fault is not None:
            error |= int(fault.kw["bits"])
        packet = bytearray(self.codec.encode_status(servo_id, error, params))
        fault = self._take("corrupt", servo_id)
        if fault is not None:
            index = fault.kw.get("index", -3 if self.protocol == "dynamixel" else -2)
            packet[index] ^= 0xFF
        s = self._servos.get(servo_id)  # None right after an ID change
        return [(self._delay(s) if s else self.return_delay_s or 0.0, bytes(packet))]

    def _listens(self, servo_id: int) -> bool:
        """Whether a request needing an answer reaches ``servo_id`` (a drop fault loses it)."""
        if servo_id not in self._servos or self._gone(servo_id):
            return False
        if self._take("drop", servo_id) is not None:
            self.stats["dropped"] += 1
            return False
        return True

    def _split(self, params: bytes, n: int) -> list[int]:
        w = self._addr_bytes
        return [int.from_bytes(params[k * w : (k + 1) * w], "little") for k in range(n)]

    def _check_watchdogs(self, now: float) -> None:
        """Dynamixel ``Bus_Watchdog`` (20 ms units, 1..127): with no packet for that long the servo
        stops where it is and enters its fail-safe state (the register reads 255; goal writes are
        refused until the register is written 0)."""
        for s in self._servos.values():
            if "Bus_Watchdog" not in s.model.registers:
                continue
            units = s.value("Bus_Watchdog")
            if 1 <= units <= 127 and now - s.last_rx > units * 0.02:
                self.physics.sync(self, now)
                self._follow()
                s.store(s.model.reg("Bus_Watchdog"), 255)
                s.store(s.model.reg("Goal_Position"), s.value("Present_Position"))
                self.stats["watchdog_trips"] += 1

    def _handle(self, p: Any) -> list[tuple[float, bytes]]:
        now = time.monotonic()
        self._check_watchdogs(now)
        for s in self._servos.values():  # the bus is alive (packets to any servo count)
            s.last_rx = now
        self.physics.sync(self, now)
        self._follow()
        c = self.codec
        name = c.INSTRUCTIONS.get(p.instruction, f"0x{p.instruction:02X}")
        self.stats[name] += 1
        dyn = self.protocol == "dynamixel"
        w = self._addr_bytes
        broadcast = p.id == c.BROADCAST_ID
        out: list[tuple[float, bytes]] = []

        if p.instruction == c.PING:
            for i in self.servo_ids if broadcast else [p.id]:
                if self._listens(i):
                    s = self._servos[i]
                    params = (
                        struct.pack("<HB", s.model.model_number, s.value("Firmware_Version")) if dyn else b""
                    )
                    out += self._status(i, 0, params)
            return out

        if p.instruction == c.SYNC_READ:
            if len(p.params) < 2 * w:
                return out
            address, size = self._split(p.params, 2)
            for i in p.params[2 * w :]:
                if self._listens(i):
                    error, data = self._read(self._servos[i], address, size)
                    out += self._status(i, error, data)
            return out

        if p.instruction == c.SYNC_WRITE:
            if len(p.params) < 2 * w:
                return out
            address, size = self._split(p.params, 2)
            body = p.params[2 * w :]
            for k in range(0, len(body) - size, size + 1):
                i = body[k]
                for j in self._executors(i):
                    self._write(self._servos[j], address, body[k + 1 : k + 1 + size], ram_only=j != i)
            return out

        targets = self.servo_ids if broadcast else self._executors(p.id)
        for i in targets:
            if i not in self._servos or self._gone(i):
                continue
            shadow = not broadcast and i != p.id  # executes a primary's instruction, never answers
            if not broadcast and not shadow and not self._listens(i):
                continue
            s = self._servos[i]
            error, data = 0, b""
            if p.instruction == c.READ and len(p.params) >= 2 * w:
                error, data = self._read(s, *self._split(p.params, 2))
            elif p.instruction in (c.WRITE, c.REG_WRITE) and len(p.params) > w:
                address = self._split(p.params, 1)[0]
                if p.instruction == c.WRITE:
                    error = self._write(s, address, p.params[w:], ram_only=shadow)
                else:
                    s.registered = (address, bytes(p.params[w:]), shadow)
            elif p.instruction == c.ACTION:
                if s.registered is not None:
                    error = self._write(s, *s.registered[:2], ram_only=s.registered[2])
                    s.registered = None
            elif dyn and p.instruction == dynamixel.REBOOT:
                s.store(s.model.reg("Torque_Enable"), 0)
                s.store(s.model.reg("Hardware_Error_Status"), 0)
            elif dyn:
                error = 2  # instruction error
            else:
                continue  # Feetech servos ignore instructions they do not know
            if not broadcast and not shadow and p.instruction != c.ACTION:
                out += self._status(i, error, data)
        return out

    def _executors(self, servo_id: int) -> list[int]:
        """The servos that execute an instruction addressed to ``servo_id``: that servo and those
        whose Secondary ID it is (present and not gone)."""
        out = [servo_id] if servo_id in self._servos and not self._gone(servo_id) else []
        return out + [
            i
            for i, s in sorted(self._servos.items())
            if i != servo_id and s.secondary() == servo_id and not self._gone(i)
        ]

    def _read(self, s: _Servo, address: int, size: int) -> tuple[int, bytes]:
        if size < 1 or address + size > len(s.memory):
            return (7 if not s.feetech else 0x40), b""
        return 0, bytes(s.memory[address : address + size])

    def _write(self, s: _Servo, address: int, data: bytes, ram_only: bool = False) -> int:
        """Apply a protocol write of ``data`` at ``address``; returns the status error byte.
        ``ram_only``: it came through the Secondary ID, which cannot change EEPROM."""
        end = address + len(data)
        if not data or end > len(s.memory):
            return 7 if not s.feetech else 0x40
        touched = [r for r in s.model.registers.values() if r.address < end and address < r.address + r.size]
        if ram_only and any(r.area == "EEPROM" for r in touched):
            return 0  # nobody hears about it: a shadow never answers
        if any(r.access == "R" for r in touched):
            if not s.feetech:
                return 7
            touched = [r for r in touched if r.access == "RW"]  # Feetech: read-only bytes are skipped
        failsafe = not s.feetech and "Bus_Watchdog" in s.model.registers and s.value("Bus_Watchdog") == 255
        if failsafe and any(r.name.startswith("Goal_") for r in touched):
            return 7  # fail-safe: goals are refused until Bus_Watchdog is written 0
        if any(r.area == "EEPROM" for r in touched):
            locked = s.feetech and s.value("Lock") != 0
            if s.value("Torque_Enable") or locked:
                return 7 if not s.feetech else 0x40
        before = {r.name: s.value(r.name) for r in touched}
        for r in touched:
            lo, hi = max(r.address, address), min(r.address + r.size, end)
            s.memory[lo:hi] = data[lo - address : hi - address]
        for r in touched:
            self._after_write(s, r, before[r.name])
        return 0

    def _after_write(self, s: _Servo, reg: Register, old: int) -> None:
        new = s.value(reg.name)
        if reg.name == "Homing_Offset":
            s.shift_offset(old, new)
        elif reg.name == "Drive_Mode" and (old ^ new) & 1:  # reverse bit: the shaft stays put
            s.set_shaft(s.shaft(reverse=bool(old & 1)))
        elif reg.name == "Torque_Enable" and new and not old:
            s.store(s.model.reg("Goal_Position"), s.value("Present_Position"))
        elif reg.name == "Goal_Position" and s.position_mode():
            lo, hi = s.value("Min_Position_Limit"), s.value("Max_Position_Limit")
            if lo <= hi:
                s.store(reg, max(lo, min(hi, new)))
        elif reg.name == "ID" and new != old:
            try:
                self._readdress(old, new)
            except ValueError:
                s.store(reg, old)


def parser(prog: str = "imitation emulate") -> argparse.ArgumentParser:
    from imitation.config import ArgParser, bounded

    parser = ArgParser(
        prog=prog,
        description="Emulate the servos of a robot's bus on a pseudo-terminal, so drivers, calibration "
        "and tools can run without the arm. Serves until Ctrl-C.",
    )
    parser.add_argument(
        "--robot", required=True, help="so100, so101, koch, ... or a configs/robots/*.yaml path"
    )
    parser.add_argument(
        "--return-delay-us",
        type=bounded(0, 1e6, " µs"),
        default=0.0,
        help="delay before each servo's answer (microseconds)",
    )
    parser.add_argument(
        "--tau-s", type=bounded(0, 60, " s"), default=0.05, help="time constant of the motion toward the goal"
    )
    return parser


def for_arm(config: Any, *, linked: bool = True, **kw: Any) -> ServoEmulator:
    """An emulator of one arm config's bus: every servo (shadows too, coupled to their primaries;
    ``linked``: with their Secondary ID and drive direction set, as an arm that has been in use
    comes; else as servos come from the factory). ``kw`` go to ``ServoEmulator``."""
    if not config.protocol or not config.motors:
        raise ConfigError(f"{config.path}: no `bus:` section with motors; nothing to emulate")
    try:
        emulator = ServoEmulator(config.protocol, config.servos(), coupled=config.coupled(), **kw)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{config.path}: bus.motors: {e}") from None
    if linked:
        for joint, (_name, sid, reverse) in config.shadows.items():
            emulator.set(sid, "Secondary_ID", int(config.motors[joint]["id"]))
            emulator.set(sid, "Drive_Mode", int(reverse))
    return emulator


def main(argv: Sequence[str] | None = None, prog: str = "imitation emulate") -> int:
    """Emulate a robot config's servos on a pseudo-terminal (one per arm) until Ctrl-C."""
    args = parser(prog).parse_args(list(sys.argv[1:] if argv is None else argv))

    from imitation.robots.config import load_robot_config

    rc = load_robot_config(args.robot)
    parts = {a: p.config for a, p in rc.arms.items()} if rc.arms else {"": rc}
    kw = {"return_delay_s": args.return_delay_us * 1e-6, "tau_s": args.tau_s}
    emulators = {a: for_arm(c, baudrate=c.baudrate, **kw) for a, c in parts.items()}
    try:
        ports = {}
        for a, c in parts.items():
            ports[a] = emulators[a].start()
            ids = ", ".join(f"{n}={m['id']}" for n, m in c.bus_motors().items())
            arm = f"{rc.name} {a}" if a else rc.name
            print(f"emulating {arm} ({c.protocol}: {ids}) on {ports[a]}", flush=True)
        if rc.arms:
            joined = ",".join(f"{a}={p}" for a, p in ports.items())
            print(f"connect with --port {joined}; Ctrl-C stops", flush=True)
        else:
            print(f"connect with --port {ports['']}; Ctrl-C stops", flush=True)
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        for e in emulators.values():
            e.stop()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ImitationError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
