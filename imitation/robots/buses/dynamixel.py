"""Dynamixel Protocol 2.0: the packet codec and ``DynamixelBus``.

Instruction: ``FF FF FD 00 | ID | LEN_L LEN_H | INST | params | CRC_L CRC_H``; a status packet has
INST = 0x55 followed by an error byte. LEN counts everything after itself. Inside INST..params every
``FF FF FD`` is followed by an extra ``FD`` (byte stuffing), so a header never appears in a body;
the CRC (CRC-16, polynomial 0x8005, initial value 0) covers the stuffed bytes from the header on.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .bus import MotorBus

HEADER = b"\xff\xff\xfd\x00"
BROADCAST_ID = 0xFE
MAX_ID = 252
STATUS = 0x55
PING, READ, WRITE, REG_WRITE, ACTION, REBOOT = 0x01, 0x02, 0x03, 0x04, 0x05, 0x08
SYNC_READ, SYNC_WRITE, FAST_SYNC_READ, BULK_READ, BULK_WRITE = 0x82, 0x83, 0x8A, 0x92, 0x93
INSTRUCTIONS = {
    PING: "PING",
    READ: "READ",
    WRITE: "WRITE",
    REG_WRITE: "REG_WRITE",
    ACTION: "ACTION",
    REBOOT: "REBOOT",
    SYNC_READ: "SYNC_READ",
    SYNC_WRITE: "SYNC_WRITE",
    FAST_SYNC_READ: "FAST_SYNC_READ",
    BULK_READ: "BULK_READ",
    BULK_WRITE: "BULK_WRITE",
}
# The vendor SDK refuses longer packets; the LEN field itself could say up to 65535.
MAX_LENGTH = 1024
ERRORS = {
    1: "result fail",
    2: "instruction error",
    3: "CRC error",
    4: "data range error",
    5: "data length error",
    6: "data limit error",
    7: "access error",
}
HARDWARE_ALERT = 0x80


def _crc_table(poly: int = 0x8005) -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = (crc << 1) ^ poly if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray, crc: int = 0) -> int:
    """CRC-16 (polynomial 0x8005, no reflection) of ``data``, continuing from ``crc``."""
    for b in data:
        crc = ((crc << 8) ^ CRC_TABLE[((crc >> 8) ^ b) & 0xFF]) & 0xFFFF
    return crc


def stuff(body: bytes) -> bytes:
    """Insert ``FD`` after every ``FF FF FD`` (the pattern cannot overlap itself)."""
    return body.replace(b"\xff\xff\xfd", b"\xff\xff\xfd\xfd")


def unstuff(body: bytes) -> bytes:
    """Inverse of :func:`stuff`."""
    return body.replace(b"\xff\xff\xfd\xfd", b"\xff\xff\xfd")


class DecodeError(ValueError):
    """Bytes that are not one well-formed packet."""


@dataclass(frozen=True)
class Packet:
    """A decoded packet; ``params`` are unstuffed. A status packet has ``instruction == STATUS``."""

    id: int
    instruction: int
    params: bytes = b""
    error: int = 0

    @property
    def is_status(self) -> bool:
        return self.instruction == STATUS


def _frame(servo_id: int, body: bytes) -> bytes:
    if not 0 <= servo_id <= BROADCAST_ID:
        raise ValueError(f"servo id {servo_id} is out of range [0, {BROADCAST_ID}]")
    stuffed = stuff(body)
    length = len(stuffed) + 2
    if length > MAX_LENGTH:
        raise ValueError(f"packet length {length} exceeds {MAX_LENGTH}; split the transfer")
    packet = HEADER + bytes([servo_id, length & 0xFF, length >> 8]) + stuffed
    return packet + struct.pack("<H", crc16(packet))


def encode_instruction(servo_id: int, instruction: int, params: bytes = b"") -> bytes:
    """An instruction packet, stuffed and with its CRC."""
    return _frame(servo_id, bytes([instruction]) + bytes(params))


def encode_status(servo_id: int, error: int = 0, params: bytes = b"") -> bytes:
    """A status packet (what a servo answers), stuffed and with its CRC."""
    return _frame(servo_id, bytes([STATUS, error]) + bytes(params))


def _parse(frame: bytes) -> Packet:
    body = unstuff(frame[7:-2])
    if not body:
        raise DecodeError("no instruction byte")
    if body[0] == STATUS:
        if len(body) < 2:
            raise DecodeError("status packet without an error byte")
        return Packet(frame[4], STATUS, bytes(body[2:]), body[1])
    return Packet(frame[4], body[0], bytes(body[1:]))


def decode(frame: bytes) -> Packet:
    """Exactly one packet; DecodeError when the header, length or CRC is wrong."""
    frame = bytes(frame)
    if len(frame) < 10 or not frame.startswith(HEADER):
        raise DecodeError(f"not a Protocol 2.0 packet: {frame.hex(' ')}")
    length = frame[5] | frame[6] << 8
    if length != len(frame) - 7:
        raise DecodeError(f"LEN says {length} bytes follow, {len(frame) - 7} do")
    if crc16(frame[:-2]) != frame[-2] | frame[-1] << 8:
        raise DecodeError("bad CRC")
    return _parse(frame)


class Decoder:
    """Finds packets in a byte stream fed in arbitrary chunks; skips garbage and bad frames.

    ``want``: "status" or "instruction" keeps only those packets (None: both). ``corrupt`` counts
    frames rejected for a bad CRC or length; ``on_corrupt(frame)`` sees each of them.
    """

    def __init__(self, want: str | None = None, on_corrupt: Callable[[bytes], None] | None = None) -> None:
        if want not in (None, "status", "instruction"):
            raise ValueError(f"want={want!r} must be None, 'status' or 'instruction'")
        self.want = want
        self.on_corrupt = on_corrupt
        self.buffer = bytearray()
        self.corrupt = 0

    def _reject(self, frame: bytes) -> None:
        self.corrupt += 1
        if self.on_corrupt is not None:
            self.on_corrupt(frame)
        del self.buffer[:1]

    def feed(self, data: bytes) -> list[Packet]:
        buf = self.buffer
        buf += data
        out: list[Packet] = []
        while True:
            start = buf.find(HEADER[:3])
            if start < 0:
                del buf[: max(0, len(buf) - 2)]  # keep a possible partial header
                return out
            del buf[:start]
            if len(buf) < 7:
                return out
            length = buf[5] | buf[6] << 8
            if buf[3] != 0 or not 3 <= length <= MAX_LENGTH:
                del buf[:1]
                continue
            if len(buf) < 7 + length:
                return out
            frame = bytes(buf[: 7 + length])
            if crc16(frame[:-2]) != frame[-2] | frame[-1] << 8:
                self._reject(frame)
                continue
            try:
                packet = _parse(frame)
            except DecodeError:
                self._reject(frame)
                continue
            del buf[: 7 + length]
            if self.want is None or (self.want == "status") == packet.is_status:
                out.append(packet)


def describe_error(error: int) -> str:
    """Words for a status packet's error byte, e.g. 0x87 -> 'hardware alert, access error'."""
    parts = []
    if error & HARDWARE_ALERT:
        parts.append("hardware alert (read Hardware_Error_Status)")
    code = error & 0x7F
    if code:
        parts.append(ERRORS.get(code, f"unknown error {code}"))
    return ", ".join(parts) or "no error"


class DynamixelBus(MotorBus):
    """A bus of Dynamixel servos speaking Protocol 2.0 (X-series)."""

    protocol = "dynamixel"
    BROADCAST_ID = BROADCAST_ID
    PING, READ, WRITE, SYNC_READ, SYNC_WRITE = PING, READ, WRITE, SYNC_READ, SYNC_WRITE
    STATUS_OVERHEAD = 11  # bytes of a status packet besides its data

    def _instruction(self, servo_id: int, instruction: int, params: bytes = b"") -> bytes:
        return encode_instruction(servo_id, instruction, params)

    def _decoder(self) -> Decoder:
        return Decoder(want="status")

    def _read_params(self, address: int, size: int) -> bytes:
        return struct.pack("<HH", address, size)

    def _write_params(self, address: int, data: bytes) -> bytes:
        return struct.pack("<H", address) + data

    def _sync_read_params(self, address: int, size: int, ids: Sequence[int]) -> bytes:
        return struct.pack("<HH", address, size) + bytes(ids)

    def _sync_write_params(self, address: int, size: int, items: Iterable[tuple[int, bytes]]) -> bytes:
        return struct.pack("<HH", address, size) + b"".join(bytes([i]) + d for i, d in items)

    def _ping_model(self, motor_id: int, tries: int) -> int | None:
        got = self._transact(
            self._instruction(motor_id, PING), [motor_id], what="ping", tries=tries, raise_errors=False
        )
        if motor_id not in got or len(got[motor_id].params) < 2:
            return None
        return struct.unpack_from("<H", got[motor_id].params)[0]

    def _describe_error(self, error: int) -> str:
        return describe_error(error)

    def _access_error(self, error: int) -> bool:
        return error & 0x7F == 7
