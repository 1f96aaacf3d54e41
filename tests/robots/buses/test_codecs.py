"""Packet codecs and register tables: the reference test vectors, and round trips found by hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from imitation.robots.buses import MODELS
from imitation.robots.buses import dynamixel as dxl
from imitation.robots.buses import feetech as ft
from imitation.robots.buses.tables import from_sign_magnitude, from_twos, to_sign_magnitude, to_twos

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# /work/shared/reference/servo-protocols.md
DXL_INSTRUCTIONS = [
    ("ping id 1", 1, dxl.PING, b"", "FF FF FD 00 01 03 00 01 19 4E"),
    (
        "read id 1 addr 132 len 4",
        1,
        dxl.READ,
        bytes([132, 0, 4, 0]),
        "FF FF FD 00 01 07 00 02 84 00 04 00 1D 15",
    ),
    (
        "write id 1 addr 116 value 512",
        1,
        dxl.WRITE,
        bytes([116, 0]) + (512).to_bytes(4, "little"),
        "FF FF FD 00 01 09 00 03 74 00 00 02 00 00 CA 89",
    ),
]
FT_INSTRUCTIONS = [
    ("ping id 1", 1, ft.PING, b"", "FF FF 01 02 01 FB"),
    ("read Present_Position id 1", 1, ft.READ, bytes([0x38, 2]), "FF FF 01 04 02 38 02 BE"),
    ("write Goal_Position 2048 id 1", 1, ft.WRITE, bytes([0x2A, 0x00, 0x08]), "FF FF 01 05 03 2A 00 08 C4"),
]


@pytest.mark.parametrize(
    "what,servo_id,inst,params,wire", DXL_INSTRUCTIONS, ids=[v[0] for v in DXL_INSTRUCTIONS]
)
def test_dynamixel_instruction_vectors(what, servo_id, inst, params, wire):
    assert dxl.encode_instruction(servo_id, inst, params) == bytes.fromhex(wire)
    assert dxl.decode(bytes.fromhex(wire)) == dxl.Packet(servo_id, inst, params)


def test_dynamixel_ping_status_vector():
    # model 1030 = 0x0406, firmware 38 = 0x26
    wire = bytes.fromhex("FF FF FD 00 01 07 00 55 00 06 04 26 65 5D")
    assert dxl.encode_status(1, 0, bytes([0x06, 0x04, 38])) == wire
    p = dxl.decode(wire)
    assert p.is_status and p.id == 1 and p.error == 0
    assert int.from_bytes(p.params[:2], "little") == 1030 and p.params[2] == 38


@pytest.mark.parametrize(
    "what,servo_id,inst,params,wire", FT_INSTRUCTIONS, ids=[v[0] for v in FT_INSTRUCTIONS]
)
def test_feetech_instruction_vectors(what, servo_id, inst, params, wire):
    assert ft.encode_instruction(servo_id, inst, params) == bytes.fromhex(wire)
    assert ft.decode(bytes.fromhex(wire)) == ft.Packet(servo_id, inst, params)


def test_feetech_vectors_match_the_vendor_sdk_checksum():
    # scservo_sdk computes the checksum in txPacket; feed it the same packet and compare.
    from scservo_sdk.protocol_packet_handler import protocol_packet_handler

    class Port:
        is_using = False
        sent = b""

        def clearPort(self):
            pass

        def writePort(self, packet):
            self.sent = bytes(packet)
            return len(packet)

    for _, servo_id, inst, params, wire in FT_INSTRUCTIONS:
        port = Port()
        protocol_packet_handler().txPacket(port, [0, 0, servo_id, len(params) + 2, inst, *params, 0])
        assert port.sent == bytes.fromhex(wire)


def test_crc_is_crc16_0x8005_worked_by_hand():
    # CRC-16/BUYPASS (poly 0x8005, init 0, no reflection) of "123456789" is 0xFEE8 by definition.
    assert dxl.crc16(b"123456789") == 0xFEE8
    assert dxl.CRC_TABLE[1] == 0x8005 and dxl.CRC_TABLE[0] == 0


def test_stuffing_examples():
    assert dxl.stuff(b"\xff\xff\xfd") == b"\xff\xff\xfd\xfd"
    assert dxl.stuff(b"\xff\xff\xfd\xff\xff\xfd") == b"\xff\xff\xfd\xfd\xff\xff\xfd\xfd"
    assert dxl.stuff(b"\xff\xff\xfd\xfd") == b"\xff\xff\xfd\xfd\xfd"
    assert dxl.unstuff(b"\xff\xff\xfd\xfd\xfd") == b"\xff\xff\xfd\xfd"
    # LEN counts the stuffing byte: WRITE of FF FF FD at address 0x100.
    pkt = dxl.encode_instruction(1, dxl.WRITE, b"\x00\x01\xff\xff\xfd")
    assert pkt[5] == 1 + 5 + 1 + 2 and pkt[7:-2] == b"\x03\x00\x01\xff\xff\xfd\xfd"
    assert dxl.decode(pkt).params == b"\x00\x01\xff\xff\xfd"


def test_decoders_reject_bad_crc_and_length():
    good = dxl.encode_instruction(3, dxl.READ, bytes([132, 0, 4, 0]))
    bad = bytearray(good)
    bad[-1] ^= 1
    with pytest.raises(dxl.DecodeError, match="CRC"):
        dxl.decode(bytes(bad))
    with pytest.raises(dxl.DecodeError, match="LEN"):
        dxl.decode(good[:-1])
    dec = dxl.Decoder()
    assert dec.feed(bytes(bad) + good) == [dxl.decode(good)]
    assert dec.corrupt == 1

    good = ft.encode_instruction(3, ft.READ, bytes([0x38, 2]))
    bad = bytearray(good)
    bad[5] ^= 0x10
    with pytest.raises(ft.DecodeError, match="checksum"):
        ft.decode(bytes(bad))
    dec = ft.Decoder(want="instruction")
    assert dec.feed(bytes(bad) + good) == [ft.decode(good)]
    assert dec.corrupt == 1


def test_feetech_status_decoding():
    wire = ft.encode_status(6, 0x20, b"\x00\x08")
    assert wire == bytes([0xFF, 0xFF, 6, 4, 0x20, 0, 8, ~(6 + 4 + 0x20 + 8) & 0xFF])
    p = ft.decode(wire, status=True)
    assert p.is_status and p.error == 0x20 and p.params == b"\x00\x08"
    assert ft.describe_error(0x21) == "input voltage, overload"
    assert dxl.describe_error(0x87) == "hardware alert (read Hardware_Error_Status), access error"


# ---------------------------------------------------------------------------- properties
ids = st.integers(0, 0xFE)
instructions = st.sampled_from(sorted(dxl.INSTRUCTIONS))
# Params biased toward the byte-stuffing pattern.
chunks = st.one_of(
    st.binary(max_size=6), st.just(b"\xff\xff\xfd"), st.just(b"\xff\xff\xfd\xfd"), st.just(b"\xff")
)
params = st.lists(chunks, max_size=12).map(b"".join)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


@FAST
@given(servo_id=ids, inst=instructions, params=params, status=st.booleans(), error=st.integers(0, 255))
def test_dynamixel_round_trip(servo_id, inst, params, status, error):
    if status:
        wire = dxl.encode_status(servo_id, error, params)
        want = dxl.Packet(servo_id, dxl.STATUS, params, error)
    else:
        wire = dxl.encode_instruction(servo_id, inst, params)
        want = dxl.Packet(servo_id, inst, params)
    assert dxl.decode(wire) == want
    # Between header and CRC no header appears: a decoder cannot mistake a body for a packet start.
    assert b"\xff\xff\xfd\x00" not in wire[4:-2]


@FAST
@given(
    servo_id=ids,
    inst=instructions,
    params=params,
    before=st.binary(max_size=40),
    after=st.binary(max_size=40),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
)
def test_dynamixel_stream_decoding(servo_id, inst, params, before, after, cuts):
    # Garbage that itself holds a header could claim any length and hide what follows: excluded.
    assume(b"\xff\xff\xfd" not in before)
    wire = dxl.encode_instruction(servo_id, inst, params)
    second = dxl.encode_status(7, 0, params)
    dec = dxl.Decoder()
    got = [p for chunk in _split(before + wire + second + after, cuts) for p in dec.feed(chunk)]
    assert got[:2] == [dxl.Packet(servo_id, inst, params), dxl.Packet(7, dxl.STATUS, params, 0)]


@FAST
@given(servo_id=ids, inst=st.integers(0, 255), params=st.binary(max_size=60), error=st.integers(0, 127))
def test_feetech_round_trip(servo_id, inst, params, error):
    assert ft.decode(ft.encode_instruction(servo_id, inst, params)) == ft.Packet(servo_id, inst, params)
    assert ft.decode(ft.encode_status(servo_id, error, params), status=True) == ft.Packet(
        servo_id, None, params, error
    )


@FAST
@given(
    servo_id=ids,
    params=st.binary(max_size=60),
    before=st.binary(max_size=40),
    after=st.binary(max_size=40),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
)
def test_feetech_stream_decoding(servo_id, params, before, after, cuts):
    assume(b"\xff\xff" not in before)
    wire = ft.encode_status(servo_id, 0, params) + ft.encode_status(5, 0x20, b"\x01")
    dec = ft.Decoder(want="status")
    got = [p for chunk in _split(before + wire + after, cuts) for p in dec.feed(chunk)]
    assert got[:2] == [ft.Packet(servo_id, None, params, 0), ft.Packet(5, None, b"\x01", 0x20)]


@FAST
@given(data=st.data(), sign_bit=st.sampled_from([10, 11, 15]))
def test_sign_magnitude_round_trip(data, sign_bit):
    value = data.draw(st.integers(-(2**sign_bit) + 1, 2**sign_bit - 1))
    raw = to_sign_magnitude(value, sign_bit)
    assert 0 <= raw < 2 ** (sign_bit + 1)
    assert from_sign_magnitude(raw, sign_bit) == value
    assert (raw >> sign_bit) == (value < 0)


def test_sign_magnitude_by_hand():
    assert to_sign_magnitude(-5, 15) == 0x8005
    assert to_sign_magnitude(-2047, 11) == 0xFFF
    assert from_sign_magnitude(0x0805, 11) == -5
    with pytest.raises(ValueError):
        to_sign_magnitude(2048, 11)


@FAST
@given(data=st.data(), size=st.sampled_from([1, 2, 4]))
def test_twos_complement_round_trip(data, size):
    value = data.draw(st.integers(-(2 ** (8 * size - 1)), 2 ** (8 * size - 1) - 1))
    raw = to_twos(value, size)
    assert 0 <= raw < 2 ** (8 * size)
    assert from_twos(raw, size) == value


@FAST
@given(data=st.data(), model=st.sampled_from(sorted(MODELS)))
def test_register_values_round_trip(data, model):
    reg = data.draw(st.sampled_from(list(MODELS[model].registers.values())))
    lo, hi = reg.value_range
    value = data.draw(st.integers(lo, hi))
    raw = reg.to_raw(value)
    assert 0 <= raw < 2 ** (8 * reg.size)
    assert reg.from_raw(raw) == value
    with pytest.raises(ValueError, match=reg.name):
        reg.to_raw(hi + 1)


# ---------------------------------------------------------------------------- tables
@pytest.mark.parametrize("name", sorted(MODELS))
def test_tables_are_consistent(name):
    t = MODELS[name]
    assert t.name == name and t.registers["Model_Number"].default == t.model_number
    spans = sorted((r.address, r.address + r.size, r.name) for r in t.registers.values())
    for (_, end, a), (start, _, b) in zip(spans, spans[1:], strict=False):
        assert end <= start, f"{name}: {a} overlaps {b}"
    for r in t.registers.values():
        assert r.size in (1, 2, 4) and r.area in ("EEPROM", "RAM") and r.access in ("R", "RW")
        lo, hi = r.value_range
        assert lo <= r.default <= hi, r.name
    common = [
        "Model_Number",
        "ID",
        "Baud_Rate",
        "Return_Delay_Time",
        "Operating_Mode",
        "Homing_Offset",
        "Min_Position_Limit",
        "Max_Position_Limit",
        "Torque_Enable",
        "Goal_Position",
        "Present_Position",
        "Present_Velocity",
    ]
    assert set(common) <= set(t.registers)
    with pytest.raises(ValueError, match=f"{name} has no register 'Nope'.*Goal_Position"):
        t.reg("Nope")


def test_table_addresses_from_the_reference():
    x = MODELS["xl330-m288"].registers
    assert [(x[n].address, x[n].size) for n in ("Homing_Offset", "Goal_Position", "Present_Position")] == [
        (20, 4),
        (116, 4),
        (132, 4),
    ]
    assert x["Present_Position"].sign == "twos" and x["Torque_Enable"].area == "RAM"
    s = MODELS["sts3215"].registers
    assert (s["Homing_Offset"].address, s["Homing_Offset"].sign) == (31, 11)
    assert (s["Goal_Position"].address, s["Present_Position"].address, s["Lock"].address) == (42, 56, 55)
    assert MODELS["sts3215"].model_number == 777 and MODELS["xl430-w250"].model_number == 1060
    assert "Current_Limit" not in MODELS["xl430-w250"].registers


@FAST
@given(data=st.binary(max_size=64))
def test_crc_matches_the_vendor_sdk(data):
    from dynamixel_sdk.protocol2_packet_handler import Protocol2PacketHandler

    assert dxl.crc16(data) == Protocol2PacketHandler().updateCRC(0, list(data), len(data))
