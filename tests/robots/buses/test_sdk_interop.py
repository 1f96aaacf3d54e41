"""The vendors' own SDKs (dynamixel_sdk, scservo_sdk) drive the servo emulator over its pseudo-terminal:
ping, read, write, sync read and sync write give the right values, so the emulator speaks the
protocols as the vendors implement them, not only as our codecs do."""

from __future__ import annotations

import pytest

from imitation.robots.buses.emulator import ServoEmulator

dxl_sdk = pytest.importorskip("dynamixel_sdk")
scs_sdk = pytest.importorskip("scservo_sdk")

IDS = range(1, 7)


@pytest.fixture(autouse=True)
def patient_sdks(monkeypatch):
    """The SDKs wait 2 x LATENCY_TIMER + 2 ms (about 34 ms) for an answer, the latency of a USB
    adapter; the emulator in a thread of a loaded 2-core machine has taken up to 19 ms. Give them
    a second per latency period so that no answer is missed for load, even with another test suite
    running beside this one (absent ids still time out, after 2 s)."""
    import dynamixel_sdk.port_handler
    import scservo_sdk.port_handler

    monkeypatch.setattr(dynamixel_sdk.port_handler, "LATENCY_TIMER", 1000)
    monkeypatch.setattr(scservo_sdk.port_handler, "LATENCY_TIMER", 1000)


@pytest.fixture
def dynamixel():
    emu = ServoEmulator("dynamixel", {i: "xl330-m288" for i in IDS})
    emu.start()
    port = dxl_sdk.PortHandler(emu.port)
    assert port.openPort() and port.setBaudRate(1_000_000)
    yield emu, port, dxl_sdk.PacketHandler(2.0)
    port.closePort()
    emu.stop()


@pytest.fixture
def feetech():
    emu = ServoEmulator("feetech", {i: "sts3215" for i in IDS})
    emu.start()
    port = scs_sdk.PortHandler(emu.port)
    assert port.openPort() and port.setBaudRate(1_000_000)
    yield emu, port, scs_sdk.PacketHandler(0)  # 0: STS/SMS, little-endian
    port.closePort()
    emu.stop()


def test_dynamixel_sdk_ping_read_write(dynamixel):
    emu, port, ph = dynamixel
    ok = dxl_sdk.COMM_SUCCESS
    assert ph.ping(port, 3) == (1200, ok, 0)
    assert ph.ping(port, 9)[1] == dxl_sdk.COMM_RX_TIMEOUT
    emu.set(2, "Present_Position", -300)
    value, result, error = ph.read4ByteTxRx(port, 2, 132)
    assert (result, error) == (ok, 0) and value == (-300) & 0xFFFFFFFF
    assert ph.write4ByteTxRx(port, 2, 116, 1000) == (ok, 0)
    assert emu.get(2, "Goal_Position") == 1000
    assert ph.write1ByteTxRx(port, 2, 64, 1) == (ok, 0)
    assert emu.torque_on(2)
    # EEPROM (Homing_Offset) under torque: access error 7, nothing written.
    assert ph.write4ByteTxRx(port, 2, 20, 50) == (ok, 7)
    assert emu.get(2, "Homing_Offset") == 0
    assert ph.write1ByteTxRx(port, 2, 64, 0) == (ok, 0)
    assert ph.write4ByteTxRx(port, 2, 20, 50) == (ok, 0)
    assert emu.get(2, "Homing_Offset") == 50
    data, result, error = ph.readTxRx(port, 2, 0, 3)  # Model_Number + Model_Information
    assert result == ok and bytes(data) == (1200).to_bytes(2, "little") + b"\x00"


def test_dynamixel_sdk_sync_read_and_sync_write(dynamixel):
    emu, port, ph = dynamixel
    ok = dxl_sdk.COMM_SUCCESS
    for i in IDS:
        emu.set(i, "Present_Position", 1000 + 11 * i)
    reader = dxl_sdk.GroupSyncRead(port, ph, 132, 4)
    for i in IDS:
        assert reader.addParam(i)
    assert reader.txRxPacket() == ok
    assert [reader.getData(i, 132, 4) for i in IDS] == [1000 + 11 * i for i in IDS]

    # Profile_Velocity values whose bytes hold the header pattern FF FF FD.
    writer = dxl_sdk.GroupSyncWrite(port, ph, 112, 4)
    values = {i: 0x00FDFFFF + (i << 24) for i in IDS}
    for i in IDS:
        assert writer.addParam(i, list(values[i].to_bytes(4, "little")))
    assert writer.txPacket() == ok
    assert ph.ping(port, 1)[1] == ok  # served in order: the sync write is applied by now
    assert {i: emu.get(i, "Profile_Velocity") for i in IDS} == values
    # ... and read back: the emulator's answers are stuffed, the SDK unstuffs them.
    reader = dxl_sdk.GroupSyncRead(port, ph, 112, 4)
    for i in IDS:
        reader.addParam(i)
    assert reader.txRxPacket() == ok
    assert {i: reader.getData(i, 112, 4) for i in IDS} == values
    assert ph.read4ByteTxRx(port, 3, 112) == (values[3], ok, 0)


def test_dynamixel_sdk_broadcast_ping(dynamixel):
    emu, port, ph = dynamixel
    found, result = ph.broadcastPing(port)
    assert result == dxl_sdk.COMM_SUCCESS
    assert found == {i: [1200, 48] for i in IDS}


def test_feetech_sdk_ping_read_write(feetech):
    emu, port, ph = feetech
    ok = scs_sdk.COMM_SUCCESS
    assert ph.ping(port, 4) == (777, ok, 0)
    assert ph.ping(port, 9)[1] == scs_sdk.COMM_RX_TIMEOUT
    emu.set(4, "Present_Position", 3210)
    assert ph.read2ByteTxRx(port, 4, 56) == (3210, ok, 0)
    assert ph.write2ByteTxRx(port, 4, 42, 1500) == (ok, 0)
    assert emu.get(4, "Goal_Position") == 1500
    # Sign-magnitude, bit 15: the SDK's own conversion.
    assert ph.write2ByteTxRx(port, 4, 46, scs_sdk.SCS_TOSCS(-250, 15)) == (ok, 0)
    assert emu.get(4, "Goal_Speed") == -250
    raw, _, _ = ph.read2ByteTxRx(port, 4, 46)
    assert scs_sdk.SCS_TOHOST(raw, 15) == -250
    # EEPROM (Min_Position_Limit) while locked: refused with bit 6; unlocked with torque off: written.
    assert ph.write2ByteTxRx(port, 4, 9, 100) == (ok, 0x40)
    assert emu.get(4, "Min_Position_Limit") == 0
    assert ph.write1ByteTxRx(port, 4, 55, 0) == (ok, 0)
    assert ph.write2ByteTxRx(port, 4, 9, 100) == (ok, 0)
    assert emu.get(4, "Min_Position_Limit") == 100


def test_feetech_sdk_sync_read_and_sync_write(feetech):
    emu, port, ph = feetech
    ok = scs_sdk.COMM_SUCCESS
    for i in IDS:
        emu.set(i, "Present_Position", 2000 + 13 * i)
    reader = scs_sdk.GroupSyncRead(port, ph, 56, 2)
    for i in IDS:
        assert reader.addParam(i)
    assert reader.txRxPacket() == ok
    assert [reader.getData(i, 56, 2) for i in IDS] == [2000 + 13 * i for i in IDS]

    writer = scs_sdk.GroupSyncWrite(port, ph, 42, 2)
    for i in IDS:
        assert writer.addParam(i, [scs_sdk.SCS_LOBYTE(900 + i), scs_sdk.SCS_HIBYTE(900 + i)])
    assert writer.txPacket() == ok
    assert ph.ping(port, 1)[1] == ok  # served in order: the sync write is applied by now
    assert [emu.get(i, "Goal_Position") for i in IDS] == [900 + i for i in IDS]


def test_dynamixel_sdk_on_the_emulated_aloha_buses():
    """`imitation emulate --robot aloha` serves each follower arm on its own pseudo-terminal: the
    vendor's SDK finds the ViperX servos by model number, the shadows at their own ids with their
    Secondary ID and reverse drive mode set, and a goal sync-written to a primary moves its shadow."""
    import re
    import signal

    from tests.robots.buses.test_emulator import emulate_command

    proc = emulate_command("aloha")
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        ports = dict(re.findall(r"(left|right)=(/dev/pts/\d+)", lines[2]))
        assert set(ports) == {"left", "right"} and "aloha left" in lines[0], lines
        ok = dxl_sdk.COMM_SUCCESS
        ph = dxl_sdk.PacketHandler(2.0)
        for path in ports.values():
            port = dxl_sdk.PortHandler(path)
            assert port.openPort() and port.setBaudRate(1_000_000)
            try:
                models = {i: ph.ping(port, i)[0] for i in range(1, 10)}
                assert models == {**{i: 1120 for i in range(1, 8)}, 8: 1020, 9: 1020}
                assert ph.read1ByteTxRx(port, 3, 12) == (2, ok, 0)  # Secondary ID of the shoulder's shadow
                assert ph.read1ByteTxRx(port, 5, 12) == (4, ok, 0)
                assert ph.read1ByteTxRx(port, 3, 10)[0] & 1 == 1  # reverse drive mode
                assert ph.write1ByteTxRx(port, 2, 64, 1) == (ok, 0)  # torque on: the pair
                writer = dxl_sdk.GroupSyncWrite(port, ph, 116, 4)
                writer.addParam(2, (2300).to_bytes(4, "little"))
                assert writer.txPacket() == ok
                assert ph.read4ByteTxRx(port, 3, 116) == (2300, ok, 0)  # the shadow's goal too
                assert ph.read1ByteTxRx(port, 3, 64) == (1, ok, 0)
            finally:
                port.closePort()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
