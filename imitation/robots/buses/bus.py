"""``MotorBus``: named motors on one serial port, read and written by register name.

The protocol-independent part lives here: opening the port, transactions with timeouts and
retries, value encoding per the register tables, and errors that name the port, the motor and the
register. ``DynamixelBus`` and ``FeetechBus`` add their packet formats.

pyserial is imported when a port is opened: the codecs and the emulator's tests need no serial port.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import select
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imitation.errors import ImitationError

from .tables import MODELS, ModelTable, Register

try:
    import termios

    _PORT_ERRORS: tuple[type[BaseException], ...] = (OSError, termios.error)
except ImportError:  # not POSIX
    _PORT_ERRORS = (OSError,)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Motor:
    """A servo on the bus: its id and its model (a key of ``MODELS``)."""

    id: int
    model: str


class BusError(ImitationError, IOError):
    """A transaction failed; the message names the port, the motor (name and id) and the register.
    The CLI prints it as one line (an ``ImitationError``); it is an ``IOError`` as well."""

    def __init__(self, message: str, port: str, motor_id: int | None = None, register: str | None = None):
        super().__init__(message)
        self.port = port
        self.motor_id = motor_id
        self.register = register

    def __str__(self) -> str:
        return str(self.args[0])


class ServoError(BusError):
    """A servo answered with a non-zero error byte (``error``); the message decodes its bits."""

    def __init__(
        self, message: str, port: str, motor_id: int | None, register: str | None, error: int
    ) -> None:
        super().__init__(message, port, motor_id, register)
        self.error = error


class MotorBus:
    """Motors on one serial port. Use a subclass (``make_bus`` picks it); as a context manager it
    connects and closes.

    ``timeout_s`` bounds the wait for the answers to one instruction; ``retries`` is how many times
    an instruction is tried in all before a ``BusError`` (3: a first try and two more).
    ``stats`` counts transactions, retries, timeouts (tries that missed an answer) and corrupt
    packets received.
    """

    protocol: str = ""
    BROADCAST_ID = 0xFE
    PING = READ = WRITE = SYNC_READ = SYNC_WRITE = -1
    STATUS_OVERHEAD = 0  # bytes of a status packet besides its data

    def __init__(
        self,
        port: str,
        motors: Mapping[str, Motor],
        *,
        baudrate: int = 1_000_000,
        timeout_s: float = 0.05,
        retries: int = 3,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s} must be > 0 (seconds to wait for an answer)")
        if int(retries) < 1:
            raise ValueError(f"retries={retries} must be >= 1 (tries of each instruction in all)")
        if baudrate <= 0:
            raise ValueError(f"baudrate={baudrate} must be > 0")
        self.port = str(port)
        self.motors: dict[str, Motor] = {}
        seen: dict[int, str] = {}
        for name, motor in motors.items():
            if not isinstance(motor, Motor):
                raise TypeError(f"motor {name!r}: expected a Motor, got {type(motor).__name__}; use make_bus")
            if motor.model not in MODELS:
                raise ValueError(f"motor {name}: unknown model {motor.model!r}; known: {', '.join(MODELS)}")
            if self.protocol and MODELS[motor.model].protocol != self.protocol:
                raise ValueError(
                    f"motor {name}: model {motor.model} speaks {MODELS[motor.model].protocol}, "
                    f"not {self.protocol}; one bus carries one protocol"
                )
            if not 0 <= motor.id <= 252:
                raise ValueError(f"motor {name}: id {motor.id} is out of range [0, 252]")
            if motor.id in seen:
                raise ValueError(
                    f"motors {seen[motor.id]} and {name} both have id {motor.id}; ids must differ"
                )
            seen[motor.id] = name
            self.motors[name] = motor
        self.baudrate = int(baudrate)
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.stats: dict[str, int] = {"transactions": 0, "retries": 0, "timeouts": 0, "corrupt": 0}
        self._names = {m.id: n for n, m in self.motors.items()}
        self._serial: Any = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ connection
    def connect(self) -> None:
        """Open the serial port; BusError saying why if it cannot be opened."""
        import serial

        if self.is_connected:
            return
        try:
            self._serial = serial.serial_for_url(
                self.port, baudrate=self.baudrate, timeout=0, write_timeout=1.0
            )
        except (serial.SerialException, OSError, ValueError) as e:
            raise BusError(
                f"{self.port}: cannot open the serial port ({e}); check that the adapter is plugged in, "
                "the path (ls /dev/serial/by-id/) and your permissions (the dialout group)",
                self.port,
            ) from None
        # FTDI adapters otherwise hold received bytes for up to 16 ms; not every port supports it.
        with contextlib.suppress(AttributeError, OSError, ValueError):
            self._serial.set_low_latency_mode(True)

    def close(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            finally:
                self._serial = None

    @property
    def is_connected(self) -> bool:
        return self._serial is not None and self._serial.is_open

    def __enter__(self) -> MotorBus:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.port!r}, {len(self.motors)} motors)"

    # ------------------------------------------------------------------ public API
    def model(self, motor: str) -> ModelTable:
        """The model table of the motor called ``motor``."""
        return MODELS[self._motor(motor).model]

    def ping(self, motor_id: int) -> int | None:
        """The model number of the servo with id ``motor_id``; None if it does not answer."""
        return self._ping_model(int(motor_id), self.retries)

    def scan(self, ids: Iterable[int] | None = None) -> dict[int, int]:
        """id -> model number of the servos that answer a ping (one try each; all ids 0-252 by default,
        which takes 253 timeouts when nothing answers)."""
        found = {}
        for i in range(253) if ids is None else ids:
            model = self._ping_model(int(i), 1)
            if model is not None:
                found[int(i)] = model
        return found

    def read(self, register: str, motor: str) -> int:
        """The decoded value of ``register`` of ``motor``."""
        m, reg = self._motor(motor), self._register(motor, register)
        packet = self._instruction(m.id, self.READ, self._read_params(reg.address, reg.size))
        got = self._transact(packet, [m.id], what="read", register=register, size=reg.size)
        return reg.from_raw(int.from_bytes(got[m.id].params[: reg.size], "little"))

    def write(self, register: str, motor: str, value: int) -> None:
        """Write ``value`` into ``register`` of ``motor`` and wait for the servo's acknowledgement."""
        self._write_id(self._motor(motor).id, motor, register, value)

    def sync_read(self, register: str, motors: Sequence[str] | None = None) -> dict[str, int]:
        """``register`` of several motors (all by default) with one SYNC_READ: name -> value."""
        names = list(dict.fromkeys(self.motors if motors is None else motors))
        out: dict[str, int] = {}
        for (address, size), group in self._groups(register, names).items():
            ids = [self.motors[n].id for n in group]
            packet = self._instruction(
                self.BROADCAST_ID, self.SYNC_READ, self._sync_read_params(address, size, ids)
            )
            got = self._transact(packet, ids, what="sync read", register=register, size=size)
            for n in group:
                raw = int.from_bytes(got[self.motors[n].id].params[:size], "little")
                out[n] = self.model(n).reg(register).from_raw(raw)
        return {n: out[n] for n in names}

    def sync_write(self, register: str, values: Mapping[str, int]) -> None:
        """Write ``register`` of several motors with one SYNC_WRITE (servos do not answer it)."""
        encoded = {n: self._encode(n, self._register(n, register), v) for n, v in values.items()}
        for (address, size), group in self._groups(register, list(encoded)).items():
            items = [(self.motors[n].id, encoded[n]) for n in group]
            packet = self._instruction(
                self.BROADCAST_ID, self.SYNC_WRITE, self._sync_write_params(address, size, items)
            )
            self._transact(packet, [], what="sync write", register=register)

    def enable_torque(self, motors: Sequence[str] | None = None) -> None:
        """Torque on, motor by motor, each acknowledged."""
        for n in self.motors if motors is None else motors:
            self.write("Torque_Enable", n, 1)

    def disable_torque(self, motors: Sequence[str] | None = None) -> None:
        """Torque off, motor by motor, each acknowledged."""
        for n in self.motors if motors is None else motors:
            self.write("Torque_Enable", n, 0)

    def write_eeprom(self, register: str, motor: str, value: int) -> None:
        """Write an EEPROM register: torque off first (servos refuse EEPROM writes under torque) and,
        where the model has a ``Lock`` (Feetech), unlock, write, lock again. Torque stays off.
        After writing ``ID`` the servo answers at the new id; make a new bus to address it by name."""
        reg = self._register(motor, register)
        self._encode(motor, reg, value)  # a bad value fails before torque goes off
        motor_id = self._motor(motor).id
        self._write_id(motor_id, motor, "Torque_Enable", 0)
        if "Lock" not in self.model(motor).registers:
            self._write_id(motor_id, motor, register, value)
            return
        self._write_id(motor_id, motor, "Lock", 0)
        try:
            self._write_id(motor_id, motor, register, value)
            if register == "ID":
                motor_id = int(value)
        finally:
            self._write_id(motor_id, motor, "Lock", 1)

    # ------------------------------------------------------------------ protocol hooks
    def _instruction(self, servo_id: int, instruction: int, params: bytes = b"") -> bytes:
        raise NotImplementedError

    def _decoder(self) -> Any:
        raise NotImplementedError

    def _read_params(self, address: int, size: int) -> bytes:
        raise NotImplementedError

    def _write_params(self, address: int, data: bytes) -> bytes:
        raise NotImplementedError

    def _sync_read_params(self, address: int, size: int, ids: Sequence[int]) -> bytes:
        raise NotImplementedError

    def _sync_write_params(self, address: int, size: int, items: Iterable[tuple[int, bytes]]) -> bytes:
        raise NotImplementedError

    def _ping_model(self, motor_id: int, tries: int) -> int | None:
        raise NotImplementedError

    def _describe_error(self, error: int) -> str:
        return f"error 0x{error:02X}"

    def _access_error(self, error: int) -> bool:
        return False

    # ------------------------------------------------------------------ helpers
    def _motor(self, name: str) -> Motor:
        try:
            return self.motors[name]
        except KeyError:
            raise ValueError(
                f"{self.port}: no motor {name!r} on this bus; its motors: {', '.join(self.motors) or 'none'}"
            ) from None

    def _register(self, motor: str, register: str) -> Register:
        return MODELS[self._motor(motor).model].reg(register)

    def _label(self, motor_id: int) -> str:
        name = self._names.get(motor_id)
        return f"motor {name} (id {motor_id})" if name else f"motor id {motor_id}"

    def _encode(self, motor: str, reg: Register, value: int) -> bytes:
        if reg.access != "RW":
            raise ValueError(f"{reg.name} of motor {motor} is read-only")
        if isinstance(value, bool):
            value = int(value)
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(
                f"{reg.name} of motor {motor}: the value must be an integer (ticks or raw units), "
                f"got {value!r} ({type(value).__name__}); round it first"
            ) from None
        lo, hi = reg.value_range
        if not lo <= value <= hi:
            raise ValueError(
                f"{reg.name}={value} for motor {motor} ({self._motor(motor).model}) is out of range [{lo}, {hi}]"
            )
        return reg.to_raw(value).to_bytes(reg.size, "little")

    def _write_id(self, motor_id: int, motor: str, register: str, value: int) -> None:
        reg = self._register(motor, register)
        data = self._encode(motor, reg, value)
        packet = self._instruction(motor_id, self.WRITE, self._write_params(reg.address, data))
        self._transact(packet, [motor_id], what="write", register=register)

    def _groups(self, register: str, names: Sequence[str]) -> dict[tuple[int, int], list[str]]:
        # Motors of different models may keep a register at different addresses: one instruction
        # per layout (X-series and STS3215 layouts agree, so normally one).
        groups: dict[tuple[int, int], list[str]] = {}
        for n in names:
            reg = self._register(n, register)
            groups.setdefault((reg.address, reg.size), []).append(n)
        return groups

    def _require_open(self) -> Any:
        if not self.is_connected:
            raise BusError(f"{self.port}: the bus is not connected; call connect() first", self.port)
        return self._serial

    def _send(self, ser: Any, packet: bytes) -> None:
        import serial

        try:
            ser.reset_input_buffer()  # stale answers of an earlier try must not be taken for this one
            ser.write(packet)
        except (serial.SerialException, *_PORT_ERRORS) as e:
            raise BusError(
                f"{self.port}: writing to the port failed ({e}); was the adapter unplugged?", self.port
            ) from None

    def _read_some(self, ser: Any, wait_s: float) -> bytes:
        import serial

        try:
            try:
                fd = ser.fileno()
            except (AttributeError, ValueError, serial.SerialException, *_PORT_ERRORS):
                fd = None
            if fd is None:  # a URL port (loop://...): poll
                n = ser.in_waiting
                if not n:
                    time.sleep(min(wait_s, 0.0005))
                    return b""
                return ser.read(n)
            ready, _, _ = select.select([fd], [], [], max(0.0, wait_s))
            if not ready:
                return b""
            n = ser.in_waiting
            # Readable with nothing to read: the device is gone; read() raises the error.
            return ser.read(n or 1)
        except (serial.SerialException, *_PORT_ERRORS) as e:
            raise BusError(
                f"{self.port}: reading from the port failed ({e}); was the adapter unplugged?", self.port
            ) from None

    def _transact(
        self,
        packet: bytes,
        ids: Sequence[int],
        *,
        what: str,
        register: str | None = None,
        tries: int | None = None,
        size: int | None = None,
        raise_errors: bool = True,
    ) -> dict[int, Any]:
        """Send ``packet``; collect one status packet from each of ``ids`` (``size`` data bytes each,
        when given). Retries the whole exchange; raises BusError/ServoError after the last try unless
        ``raise_errors`` is False (then returns what arrived)."""
        tries = self.retries if tries is None else tries
        with self._lock:
            ser = self._require_open()
            self.stats["transactions"] += 1
            got: dict[int, Any] = {}
            corrupt_total = 0
            for attempt in range(tries):
                if attempt:
                    self.stats["retries"] += 1
                    log.debug(
                        "%s: retrying a %s of %s (try %d of %d)",
                        self.port,
                        what,
                        register,
                        attempt + 1,
                        tries,
                    )
                self._send(ser, packet)
                if not ids:
                    return {}
                got, corrupt = self._collect(ser, ids, size)
                corrupt_total += corrupt
                missing = [i for i in ids if i not in got]
                failed = [i for i in ids if i in got and got[i].error]
                if missing:
                    self.stats["timeouts"] += 1
                if not missing and not failed:
                    return got
                if not raise_errors and not missing:
                    return got
            if not raise_errors:
                return got
            if missing:
                i = missing[0]
                others = f" ({len(missing) - 1} more motors missing)" if len(missing) > 1 else ""
                of = f" of {register}" if register else ""
                reason = (
                    f"; {corrupt_total} corrupt packets received (bad checksum or length): check the wiring"
                    if corrupt_total
                    else ""
                )
                raise BusError(
                    f"{self.port}: {self._label(i)} did not answer a {what}{of} after {tries} tries "
                    f"(timeout {self.timeout_s * 1000:g} ms){others}{reason}",
                    self.port,
                    i,
                    register,
                )
            i = failed[0]
            error = got[i].error
            hint = ""
            if register and self._access_error(error):
                reg = self.model(self._names[i]).reg(register) if i in self._names else None
                if reg is not None and reg.area == "EEPROM":
                    hint = "; EEPROM registers can be written only with torque off (and unlocked): use write_eeprom()"
            of = f" of {register}" if register else ""
            raise ServoError(
                f"{self.port}: {self._label(i)} reported error 0x{error:02X} ({self._describe_error(error)}) "
                f"to a {what}{of} after {tries} tries{hint}",
                self.port,
                i,
                register,
                error,
            )

    def _collect(self, ser: Any, ids: Sequence[int], size: int | None) -> tuple[dict[int, Any], int]:
        decoder = self._decoder()
        pending = set(ids)
        got: dict[int, Any] = {}
        # The timeout is for the first answer; each further one may take its own transfer time.
        per_packet_s = ((size or 0) + self.STATUS_OVERHEAD) * 10 / self.baudrate
        deadline = time.monotonic() + self.timeout_s + per_packet_s * len(ids)
        wrong_size = 0
        while pending:
            wait = deadline - time.monotonic()
            if wait <= 0:
                break
            data = self._read_some(ser, wait)
            if not data:
                continue
            for p in decoder.feed(data):
                if p.id not in pending:
                    continue  # another servo's, or a late answer to an earlier instruction
                if size is not None and not p.error and len(p.params) != size:
                    wrong_size += 1
                    continue
                got[p.id] = p
                pending.discard(p.id)
        corrupt = decoder.corrupt + wrong_size
        self.stats["corrupt"] += corrupt
        return got, corrupt
