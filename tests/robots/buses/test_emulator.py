"""Our buses against the servo emulator over a pseudo-terminal: every bus operation, the servo
behaviours drivers rely on (EEPROM refusal, offsets, limits, motion), injected faults and the
``emulate`` command."""

from __future__ import annotations

import contextlib
import math
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import serial

from imitation.robots.buses import MODELS, BusError, Motor, ServoError, make_bus
from imitation.robots.buses import dynamixel as dxl
from imitation.robots.buses.emulator import FirstOrderPhysics, ServoEmulator

NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
MODEL = {"feetech": "sts3215", "dynamixel": "xl330-m288"}
# How long the bus waits for an answer that must come. The emulator's thread shares the machine
# with everything else: with two busy loops on a 2-core machine it answered 6,000 requests within
# 19 ms at worst, so the 20 ms of a real bus would fail now and then. Only tests of lost answers
# wait this out.
ANSWER_TIMEOUT_S = 0.5
# For requests nobody may answer (an absent id, a servo whose every answer is lost): no answer can
# come late, so a short wait decides nothing by timing.
SILENCE_TIMEOUT_S = 0.02
REPO = Path(__file__).resolve().parents[3]


def _rig(protocol: str, **emu_kw):
    model = MODEL[protocol]
    emu = ServoEmulator(protocol, {i + 1: model for i in range(6)}, **emu_kw)
    port = emu.start()
    motors = {n: {"id": i + 1, "model": model} for i, n in enumerate(NAMES)}
    bus = make_bus(protocol, port, motors, timeout_s=ANSWER_TIMEOUT_S, retries=3)
    bus.connect()
    return SimpleNamespace(emu=emu, bus=bus, port=port, protocol=protocol, table=MODELS[model])


@contextlib.contextmanager
def silence(bus):
    """Requests inside the block expect no answer: the bus waits SILENCE_TIMEOUT_S for it."""
    before, bus.timeout_s = bus.timeout_s, SILENCE_TIMEOUT_S
    try:
        yield
    finally:
        bus.timeout_s = before


@pytest.fixture(params=["feetech", "dynamixel"])
def rig(request):
    r = _rig(request.param, tau_s=0.02)
    yield r
    r.bus.close()
    r.emu.stop()


# ---------------------------------------------------------------------------- operations
def test_ping_and_scan(rig):
    number = rig.table.model_number
    assert rig.bus.ping(1) == number
    assert rig.bus.scan(range(1, 7)) == {i: number for i in range(1, 7)}
    with silence(rig.bus):
        assert rig.bus.ping(9) is None
        assert rig.bus.scan([0, 7, 8, 9]) == {}


def test_read_and_write(rig):
    bus, emu = rig.bus, rig.emu
    emu.set(3, "Present_Position", 1234)
    assert bus.read("Present_Position", "elbow_flex") == 1234
    bus.write("Goal_Position", "gripper", 1500)
    assert emu.get(6, "Goal_Position") == 1500
    bus.write("Goal_Speed" if rig.protocol == "feetech" else "Goal_Velocity", "gripper", -120)
    assert bus.read("Goal_Speed" if rig.protocol == "feetech" else "Goal_Velocity", "gripper") == -120
    assert bus.read("Model_Number", "wrist_roll") == rig.table.model_number


def test_sync_read_is_one_instruction_in_motor_order(rig):
    bus, emu = rig.bus, rig.emu
    for i in range(1, 7):
        emu.set(i, "Present_Position", 1000 + 100 * i)
    before = emu.stats["SYNC_READ"]
    got = bus.sync_read("Present_Position")
    assert list(got) == list(NAMES)
    assert got == {n: 1000 + 100 * (i + 1) for i, n in enumerate(NAMES)}
    assert emu.stats["SYNC_READ"] == before + 1
    assert bus.sync_read("Present_Position", ["gripper", "shoulder_pan"]) == {
        "gripper": 1600,
        "shoulder_pan": 1100,
    }


def test_sync_write(rig):
    bus, emu = rig.bus, rig.emu
    values = {n: 500 + 7 * i for i, n in enumerate(NAMES)}
    bus.sync_write("Goal_Position", values)
    bus.ping(1)  # the emulator serves in order: once this is answered the sync write is applied
    assert {n: emu.get(i + 1, "Goal_Position") for i, n in enumerate(NAMES)} == values
    assert bus.sync_read("Goal_Position") == values


def test_torque_enable_disable(rig):
    bus, emu = rig.bus, rig.emu
    bus.enable_torque()
    assert all(emu.torque_on(i) for i in range(1, 7))
    bus.disable_torque(["gripper"])
    assert [emu.torque_on(i) for i in range(1, 7)] == [True] * 5 + [False]
    bus.disable_torque()
    assert not any(emu.torque_on(i) for i in range(1, 7))


def test_eeprom_write_refused_under_torque_and_write_eeprom_works(rig):
    bus, emu = rig.bus, rig.emu
    bus.enable_torque()
    with pytest.raises(ServoError) as e:
        bus.write("Homing_Offset", "wrist_flex", 100)
    assert e.value.error == (7 if rig.protocol == "dynamixel" else 0x40)
    assert (e.value.port, e.value.motor_id, e.value.register) == (rig.port, 4, "Homing_Offset")
    assert "write_eeprom" in str(e.value) and "wrist_flex (id 4)" in str(e.value)
    assert emu.get(4, "Homing_Offset") == 0

    bus.write_eeprom("Homing_Offset", "wrist_flex", 100)
    assert emu.get(4, "Homing_Offset") == 100
    assert not emu.torque_on(4)  # left off: the caller decides
    if rig.protocol == "feetech":
        assert emu.get(4, "Lock") == 1  # locked again
        with pytest.raises(ServoError, match="write refused"):  # torque off but locked
            bus.write("Min_Position_Limit", "wrist_flex", 10)


def test_changing_an_id(rig):
    rig.bus.write_eeprom("ID", "gripper", 9)
    assert rig.bus.ping(9) == rig.table.model_number
    with silence(rig.bus):
        assert rig.bus.ping(6) is None
    assert rig.emu.servo_ids == [1, 2, 3, 4, 5, 9] and rig.emu.get(9, "ID") == 9
    if rig.protocol == "feetech":
        assert rig.emu.get(9, "Lock") == 1


def test_homing_offset_shifts_the_reading_the_vendors_way(rig):
    bus, emu = rig.bus, rig.emu
    emu.set(2, "Present_Position", 2000)
    bus.write_eeprom("Homing_Offset", "shoulder_lift", 100)
    # Dynamixel: present = actual + offset; Feetech: present = actual - offset.
    want = 2100 if rig.protocol == "dynamixel" else 1900
    assert bus.read("Present_Position", "shoulder_lift") == want
    bus.write_eeprom("Homing_Offset", "shoulder_lift", 0)
    assert bus.read("Present_Position", "shoulder_lift") == 2000


def test_goal_is_clamped_to_the_position_limits(rig):
    bus, emu = rig.bus, rig.emu
    bus.write_eeprom("Max_Position_Limit", "gripper", 3000)
    bus.write_eeprom("Min_Position_Limit", "gripper", 1000)
    bus.write("Goal_Position", "gripper", 3500)
    assert emu.get(6, "Goal_Position") == 3000
    bus.write("Goal_Position", "gripper", 10)
    assert bus.read("Goal_Position", "gripper") == 1000


def test_motion_is_first_order_toward_the_goal_while_torque_is_on(rig):
    bus, emu = rig.bus, rig.emu
    bus.enable_torque(["elbow_flex"])
    assert emu.get(3, "Goal_Position") == 2048  # torque on holds the present position
    bus.write("Goal_Position", "elbow_flex", 3048)
    seen = []
    deadline = time.monotonic() + 30.0  # a backstop: it gets there in about 0.2 s
    while time.monotonic() < deadline:
        seen.append(bus.read("Present_Position", "elbow_flex"))
        if seen[-1] >= 3047:
            break
        time.sleep(0.005)
    assert seen == sorted(seen) and seen[0] >= 2048 and seen[-1] >= 3047 and max(seen) <= 3048
    # Torque off: the goal no longer moves it, even after a whole simulated second (50 time
    # constants) of physics, whatever the wall clock did meanwhile.
    bus.disable_torque(["elbow_flex"])
    bus.write("Goal_Position", "elbow_flex", 1000)
    emu.physics.sync(emu, time.monotonic() + 1.0)
    assert abs(bus.read("Present_Position", "elbow_flex") - 3048) <= 1


def test_first_order_physics_worked_by_hand():
    emu = ServoEmulator("feetech", {1: "sts3215"})
    physics = FirstOrderPhysics(tau_s=0.1)
    emu.set(1, "Torque_Enable", 1)
    emu.set(1, "Goal_Position", 3048)
    physics.sync(emu, 10.0)
    physics.sync(emu, 10.1)  # one time constant: 1 - 1/e of the way
    assert emu.position(1) == pytest.approx(3048 - 1000 / math.e)
    assert emu.get(1, "Present_Position") == round(3048 - 1000 / math.e)
    assert emu.get(1, "Present_Velocity") == round((1000 - 1000 / math.e) / 0.1)  # steps/s
    assert emu.get(1, "Moving") == 1


def test_values_are_checked_before_sending(rig):
    bus = rig.bus
    lo, hi = rig.table.reg("Goal_Position").value_range
    with pytest.raises(ValueError, match=rf"Goal_Position={hi + 1} for motor gripper .*\[{lo}, {hi}\]"):
        bus.write("Goal_Position", "gripper", hi + 1)
    with pytest.raises(ValueError, match="read-only"):
        bus.write("Present_Position", "gripper", 1)
    with pytest.raises(ValueError, match="has no register 'Nope'"):
        bus.read("Nope", "gripper")
    with pytest.raises(ValueError, match="no motor 'elbow'.*shoulder_pan"):
        bus.read("Goal_Position", "elbow")
    with pytest.raises(TypeError, match="integer"):
        bus.sync_write("Goal_Position", {"gripper": 1.5})
    lo, hi = rig.table.reg("Homing_Offset").value_range
    with pytest.raises(ValueError, match="Homing_Offset"):
        bus.write_eeprom("Homing_Offset", "gripper", hi + 1)
    assert rig.emu.torque_on(6) is False and bus.stats["transactions"] == 0


def test_mixed_models_on_one_bus():
    # Koch: XL430 and XL330 share the X-series layout, so one SYNC_READ serves them all.
    servos = {1: "xl430-w250", 2: "xl430-w250", 3: "xl330-m288", 4: "xl330-m288"}
    with ServoEmulator("dynamixel", servos) as emu:
        motors = {f"m{i}": Motor(i, m) for i, m in servos.items()}
        with make_bus("dynamixel", emu.port, motors, timeout_s=ANSWER_TIMEOUT_S) as bus:
            assert bus.scan(range(1, 5)) == {1: 1060, 2: 1060, 3: 1200, 4: 1200}
            with silence(bus):
                assert bus.scan([5]) == {}
            for i in servos:
                emu.set(i, "Present_Position", -50 * i)  # two's complement on the wire
            assert bus.sync_read("Present_Position") == {f"m{i}": -50 * i for i in servos}
            assert emu.stats["SYNC_READ"] == 1


def test_dynamixel_bad_crc_is_answered_with_a_crc_error():
    with ServoEmulator("dynamixel", {1: "xl330-m288"}) as emu, serial.Serial(emu.port, timeout=30) as port:
        bad = bytearray(dxl.encode_instruction(1, dxl.READ, bytes([132, 0, 4, 0])))
        bad[-1] ^= 0xFF
        port.write(bytes(bad))
        reply = dxl.decode(port.read(11))
        assert reply.is_status and reply.error == 3
        assert emu.stats["bad_checksum"] == 1


def test_make_bus_and_connect_errors(tmp_path):
    motors = {"a": {"id": 1, "model": "sts3215"}}
    with pytest.raises(ValueError, match="unknown bus protocol 'can'.*dynamixel, feetech"):
        make_bus("can", "/dev/null", motors)
    with pytest.raises(ValueError, match="speaks feetech, not dynamixel"):
        make_bus("dynamixel", "/dev/null", motors)
    with pytest.raises(ValueError, match="both have id 1"):
        make_bus(
            "feetech", "/dev/null", {"a": {"id": 1, "model": "sts3215"}, "b": {"id": 1, "model": "sts3215"}}
        )
    with pytest.raises(ValueError, match="unknown model 'sts9'"):
        make_bus("feetech", "/dev/null", {"a": {"id": 1, "model": "sts9"}})
    bus = make_bus("feetech", str(tmp_path / "ttyNOPE"), motors)
    with pytest.raises(BusError, match=r"ttyNOPE: cannot open the serial port") as e:
        bus.connect()
    assert e.value.port == str(tmp_path / "ttyNOPE")
    with pytest.raises(BusError, match="not connected"):
        bus.read("Present_Position", "a")


def test_stop_ends_the_server_and_a_dead_port_is_a_bus_error():
    r = _rig("feetech")
    try:
        assert r.bus.ping(1) == 777
        server = r.emu._thread
        r.emu.stop()  # how soon it returns is load-dependent; that the server thread ends is not
        server.join(30.0)
        assert not server.is_alive() and r.emu.port is None
        with pytest.raises(BusError, match=re.escape(r.port)):
            r.bus.read("Present_Position", "gripper")
    finally:
        r.bus.close()
        r.emu.stop()


# ---------------------------------------------------------------------------- faults
def _fault_kw(protocol: str) -> dict:
    return {"bits": 0x20 if protocol == "feetech" else 0x80}


@pytest.mark.parametrize("kind", ["drop", "corrupt", "error"])
def test_a_transient_fault_is_recovered_by_a_retry(rig, kind):
    bus, emu = rig.bus, rig.emu
    emu.set(3, "Present_Position", 1111)
    emu.inject(kind, 3, count=1, **(_fault_kw(rig.protocol) if kind == "error" else {}))
    assert bus.read("Present_Position", "elbow_flex") == 1111
    assert bus.stats["retries"] == 1
    if kind == "corrupt":
        assert bus.stats["corrupt"] == 1


@pytest.mark.parametrize("kind", ["drop", "corrupt", "error", "disappear"])
def test_a_persistent_fault_gives_up_after_the_tries_with_a_clear_error(rig, kind):
    bus, emu = rig.bus, rig.emu
    kw = _fault_kw(rig.protocol) if kind == "error" else {}
    emu.inject(kind, 3, count=100, **kw)
    reads = emu.stats["READ"]
    # Lost requests are never answered; a corrupt or an error answer must arrive to be seen.
    silent = kind in ("drop", "disappear")
    with silence(bus) if silent else contextlib.nullcontext(), pytest.raises(BusError) as e:
        bus.read("Present_Position", "elbow_flex")
    msg = str(e.value)
    assert msg.startswith(f"{rig.port}: motor elbow_flex (id 3) ")
    assert "Present_Position" in msg and "after 3 tries" in msg
    assert (e.value.port, e.value.motor_id, e.value.register) == (rig.port, 3, "Present_Position")
    assert emu.stats["READ"] - reads == 3 and bus.stats["retries"] == 2
    if kind == "error":
        assert isinstance(e.value, ServoError) and e.value.error == kw["bits"]
        assert ("overload" if rig.protocol == "feetech" else "hardware alert") in msg
    else:
        assert not isinstance(e.value, ServoError)
        timeout_s = SILENCE_TIMEOUT_S if silent else ANSWER_TIMEOUT_S
        assert f"timeout {timeout_s * 1000:g} ms" in msg
        assert ("corrupt packets" in msg) == (kind == "corrupt")
    # Other servos are unaffected, and clearing the fault brings the servo back.
    assert bus.read("Present_Position", "gripper") == 2048
    emu.clear_faults()
    assert bus.read("Present_Position", "elbow_flex") == 2048


def test_sync_read_names_the_missing_motor(rig):
    bus, emu = rig.bus, rig.emu
    emu.inject("disappear", 4)
    with pytest.raises(
        BusError,
        match=r"motor wrist_flex \(id 4\) did not answer a sync read of Present_Position after 3 tries",
    ) as e:
        bus.sync_read("Present_Position")
    assert e.value.motor_id == 4
    with silence(bus):
        assert bus.ping(4) is None
    assert bus.sync_read("Present_Position", ["gripper"]) == {"gripper": 2048}
    emu.clear_faults()
    emu.inject("drop", None, count=1)  # any servo: the first answer of the sync read is lost
    assert len(bus.sync_read("Present_Position")) == 6 and bus.stats["retries"] >= 1


# ---------------------------------------------------------------------------- the command
def _first_line(proc: subprocess.Popen, timeout_s: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    assert ready, "the emulator printed nothing"
    return proc.stdout.readline()


def emulate_command(robot: str, **env: str) -> subprocess.Popen:
    """``imitation emulate --robot ROBOT`` in a child process, as run from a terminal: a suite
    started in the background (a non-interactive shell's `&`) hands its children SIGINT ignored,
    and Python then installs no KeyboardInterrupt, so the child puts Ctrl-C's handler back."""
    as_from_a_terminal = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv[0] = 'emulator'; runpy.run_module('imitation.robots.buses.emulator', run_name='__main__')"
    )
    return subprocess.Popen(
        [sys.executable, "-c", as_from_a_terminal, "--robot", robot],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def test_emulate_command_serves_a_robot_until_ctrl_c():
    proc = emulate_command("so100", PYTHONWARNINGS="error::RuntimeWarning")
    try:
        port = re.search(r"(/dev/pts/\d+)", _first_line(proc, 60)).group(1)
        assert f"connect with --port {port}" in proc.stdout.readline()  # printed with the first
        motors = {n: {"id": i + 1, "model": "sts3215"} for i, n in enumerate(NAMES)}
        with make_bus("feetech", port, motors, timeout_s=ANSWER_TIMEOUT_S) as bus:
            assert [bus.ping(i) for i in range(1, 7)] == [777] * 6
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert "stopped" in out and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_emulate_command_rejects_an_unknown_robot_in_one_line():
    done = subprocess.run(
        [sys.executable, "-m", "imitation.robots.buses.emulator", "--robot", "nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    err = done.stderr.strip()
    assert "\n" not in err and err.startswith("error: unknown robot 'nope'") and "so100" in err
