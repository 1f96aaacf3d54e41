"""Feetech STS/SMS servos ("protocol 0", little-endian): the packet codec and ``FeetechBus``.

Instruction: ``FF FF | ID | LEN | INST | params | CHK``; status: ``FF FF | ID | LEN | ERR | params | CHK``,
with LEN = len(params) + 2 and CHK = ~(ID + LEN + INST-or-ERR + sum(params)) & 0xFF. Addresses and
lengths are one byte. Signed registers are sign-magnitude (see ``tables``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .bus import MotorBus
from .tables import from_sign_magnitude, to_sign_magnitude

__all__ = [
    "FeetechBus",
    "Decoder",
    "Packet",
    "checksum",
    "decode",
    "encode_instruction",
    "encode_status",
    "from_sign_magnitude",
    "to_sign_magnitude",
]

HEADER = b"\xff\xff"
BROADCAST_ID = 0xFE
MAX_ID = 252
PING, READ, WRITE, REG_WRITE, ACTION, RESET = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
SYNC_READ, SYNC_WRITE = 0x82, 0x83
INSTRUCTIONS = {
    PING: "PING",
    READ: "READ",
    WRITE: "WRITE",
    REG_WRITE: "REG_WRITE",
    ACTION: "ACTION",
    RESET: "RESET",
    SYNC_READ: "SYNC_READ",
    SYNC_WRITE: "SYNC_WRITE",
}
ERROR_BITS = {
    0x01: "input voltage",
    0x02: "angle sensor",
    0x04: "overheat",
    0x08: "overcurrent",
    0x20: "overload",
    # Bit 6 is the instruction error of the protocol this one derives from (Dynamixel 1.0); the
    # emulator sets it on a refused EEPROM write.
    0x40: "instruction error (write refused)",
}


class DecodeError(ValueError):
    """Bytes that are not one well-formed packet."""


@dataclass(frozen=True)
class Packet:
    """A decoded packet. A status packet has ``instruction`` None and its ERR byte in ``error``."""

    id: int
    instruction: int | None
    params: bytes = b""
    error: int = 0

    @property
    def is_status(self) -> bool:
        return self.instruction is None


def checksum(body: bytes | bytearray) -> int:
    """~sum & 0xFF over ID, LEN, INST/ERR and the params (the header excluded)."""
    return ~sum(body) & 0xFF


def _frame(servo_id: int, code: int, params: bytes) -> bytes:
    if not 0 <= servo_id <= BROADCAST_ID:
        raise ValueError(f"servo id {servo_id} is out of range [0, {BROADCAST_ID}]")
    length = len(params) + 2
    if length > 0xFF:
        raise ValueError(f"packet length {length} exceeds 255; split the transfer")
    body = bytes([servo_id, length, code]) + bytes(params)
    return HEADER + body + bytes([checksum(body)])


def encode_instruction(servo_id: int, instruction: int, params: bytes = b"") -> bytes:
    """An instruction packet with its checksum."""
    return _frame(servo_id, instruction, params)


def encode_status(servo_id: int, error: int = 0, params: bytes = b"") -> bytes:
    """A status packet (what a servo answers) with its checksum."""
    return _frame(servo_id, error, params)


def decode(frame: bytes, status: bool = False) -> Packet:
    """Exactly one packet (a status packet if ``status``); DecodeError when it is malformed."""
    frame = bytes(frame)
    if len(frame) < 6 or not frame.startswith(HEADER):
        raise DecodeError(f"not a Feetech packet: {frame.hex(' ')}")
    if frame[3] != len(frame) - 4:
        raise DecodeError(f"LEN says {frame[3]} bytes follow, {len(frame) - 4} do")
    if checksum(frame[2:-1]) != frame[-1]:
        raise DecodeError("bad checksum")
    return _packet(frame, status)


def _packet(frame: bytes, status: bool) -> Packet:
    if status:
        return Packet(frame[2], None, frame[5:-1], frame[4])
    return Packet(frame[2], frame[4], frame[5:-1])


class Decoder:
    """Finds packets in a byte stream fed in arbitrary chunks; skips garbage and bad frames.

    Status and instruction packets look alike, so ``want`` ("status" or "instruction") says how to
    read byte 4. ``corrupt`` counts frames rejected for a bad checksum; ``on_corrupt(frame)`` sees them.
    """

    def __init__(self, want: str = "status", on_corrupt: Callable[[bytes], None] | None = None) -> None:
        if want not in ("status", "instruction"):
            raise ValueError(f"want={want!r} must be 'status' or 'instruction'")
        self.status = want == "status"
        self.on_corrupt = on_corrupt
        self.buffer = bytearray()
        self.corrupt = 0

    def feed(self, data: bytes) -> list[Packet]:
        buf = self.buffer
        buf += data
        out: list[Packet] = []
        while True:
            start = buf.find(HEADER)
            if start < 0:
                del buf[: max(0, len(buf) - 1)]
                return out
            del buf[:start]
            if len(buf) < 4:
                return out
            length = buf[3]
            if buf[2] > BROADCAST_ID or length < 2:
                del buf[:1]
                continue
            if len(buf) < 4 + length:
                return out
            frame = bytes(buf[: 4 + length])
            if checksum(frame[2:-1]) != frame[-1]:
                self.corrupt += 1
                if self.on_corrupt is not None:
                    self.on_corrupt(frame)
                del buf[:1]
                continue
            del buf[: 4 + length]
            out.append(_packet(frame, self.status))


def describe_error(error: int) -> str:
    """Words for a status packet's error bits, e.g. 0x21 -> 'input voltage, overload'."""
    parts = [text for bit, text in ERROR_BITS.items() if error & bit]
    unknown = error & ~sum(ERROR_BITS)
    parts += [f"bit {b}" for b in range(8) if unknown & (1 << b)]
    return ", ".join(parts) or "no error"


class FeetechBus(MotorBus):
    """A bus of Feetech STS servos (SO-100 / SO-101 arms)."""

    protocol = "feetech"
    BROADCAST_ID = BROADCAST_ID
    PING, READ, WRITE, SYNC_READ, SYNC_WRITE = PING, READ, WRITE, SYNC_READ, SYNC_WRITE
    STATUS_OVERHEAD = 6

    def _instruction(self, servo_id: int, instruction: int, params: bytes = b"") -> bytes:
        return encode_instruction(servo_id, instruction, params)

    def _decoder(self) -> Decoder:
        return Decoder(want="status")

    def _read_params(self, address: int, size: int) -> bytes:
        return bytes([address, size])

    def _write_params(self, address: int, data: bytes) -> bytes:
        return bytes([address]) + data

    def _sync_read_params(self, address: int, size: int, ids: Sequence[int]) -> bytes:
        return bytes([address, size, *ids])

    def _sync_write_params(self, address: int, size: int, items: Iterable[tuple[int, bytes]]) -> bytes:
        return bytes([address, size]) + b"".join(bytes([i]) + d for i, d in items)

    def _ping_model(self, motor_id: int, tries: int) -> int | None:
        # A Feetech PING answers with an empty status; the model number is read from address 3.
        got = self._transact(
            self._instruction(motor_id, PING), [motor_id], what="ping", tries=tries, raise_errors=False
        )
        if motor_id not in got:
            return None
        got = self._transact(
            self._instruction(motor_id, READ, self._read_params(3, 2)),
            [motor_id],
            what="read",
            register="Model_Number",
            tries=tries,
            size=2,
            raise_errors=False,
        )
        if motor_id not in got:
            return None
        return int.from_bytes(got[motor_id].params[:2], "little")

    def _describe_error(self, error: int) -> str:
        return describe_error(error)

    def _access_error(self, error: int) -> bool:
        return bool(error & 0x40)
