"""A real-arm driver against the servo emulator whose physics is the simulator: calibration,
safety through the bus, torque off, and deploy --emulate."""

from __future__ import annotations

import time

import mujoco
import numpy as np
import pytest

from imitation.control import SafeRobot, SafetyLimits
from imitation.robots.arm import BusArm
from imitation.robots.buses import make_bus
from imitation.robots.buses.emulator import ServoEmulator
from imitation.robots.calibration import CalibrationError
from imitation.robots.config import load_robot_config
from imitation.robots.emulated import EMULATED_BUS_TIMEOUT_S, Mounting, SimPhysics, scripted_calibration

ENV = "imitation/PickPlace-v0"


class Rig:
    """Emulator + simulator physics + a calibrated BusArm on the emulator's port."""

    def __init__(self, robot: str, seed: int, tmp_path, mounting: Mounting | None = None) -> None:
        self.rc = load_robot_config(robot)
        rng = np.random.default_rng(seed)
        self.physics = SimPhysics(self.rc, ENV, mounting=mounting or Mounting.random(6, rng), seed=seed)
        servos = {int(m["id"]): str(m["model"]) for m in self.rc.motors.values()}
        self.emu = ServoEmulator(self.rc.protocol, servos, physics=self.physics)
        self.port = self.emu.start()
        self.cal_path = tmp_path / f"{robot}_{seed}.yaml"

    def calibrate(self):
        with make_bus(
            self.rc.protocol,
            self.port,
            self.rc.motors,
            baudrate=self.rc.baudrate,
            timeout_s=EMULATED_BUS_TIMEOUT_S,
        ) as bus:
            cal = scripted_calibration(bus, self.rc, self.physics)
        cal.save(self.cal_path)
        return cal

    def arm(self, **kw) -> BusArm:
        return BusArm(
            self.rc, self.port, calibration=self.cal_path, **({"timeout_s": EMULATED_BUS_TIMEOUT_S} | kw)
        )

    def torque(self) -> list[int]:
        return [self.emu.get(int(m["id"]), "Torque_Enable") for m in self.rc.motors.values()]

    def close(self) -> None:
        self.emu.stop()


@pytest.fixture
def rigs(tmp_path):
    made = []

    def make(robot="so100", seed=0, **kw):
        r = Rig(robot, seed, tmp_path, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def wait_until(predicate, timeout_s: float = 30.0) -> bool:
    """Poll for what a background thread does; the generous timeout only matters on failure."""
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def ee_position(model, data, qpos_adr, q):
    data.qpos[:] = 0
    data.qpos[qpos_adr] = q
    mujoco.mj_kinematics(model, data)
    return data.site("ee").xpos.copy()


@pytest.mark.parametrize("robot,seed", [("so100", 1), ("so100", 2), ("koch", 3)])
def test_calibration_maps_random_mountings_onto_the_model_within_a_millimetre(rigs, robot, seed):
    rig = rigs(robot, seed)
    cal = rig.calibrate()
    assert {j.sign for j in cal.joints.values()} <= {1, -1}
    env = rig.physics.sim.env
    from envs.so100 import ArmIK

    ik = ArmIK(env.model)
    data = mujoco.MjData(env.model)
    rng = np.random.default_rng(seed + 100)
    lo, hi = rig.rc.lower * 0.9, rig.rc.upper * 0.9
    with rig.arm() as arm:
        assert all(rig.torque())  # a follower turns torque on only once calibrated and configured
        worst = 0.0
        for _ in range(20):
            q = rng.uniform(lo, hi)
            rig.physics.set_pose(q)
            got = arm.read_joints()
            err = np.linalg.norm(
                ee_position(env.model, data, ik.qpos_adr, q[:5])
                - ee_position(env.model, data, ik.qpos_adr, got[:5])
            )
            worst = max(worst, err)
            assert abs(got[5] - q[5]) < 0.01  # gripper, [0, 1]
        assert worst < 1e-3, f"end effector off by {1e3 * worst:.2f} mm"
        # The servos hold the calibrated limits themselves.
        for n, (tlo, thi) in arm.limits_ticks.items():
            assert (
                arm.bus.read("Min_Position_Limit", n) == tlo and arm.bus.read("Max_Position_Limit", n) == thi
            )
    assert not any(rig.torque())  # torque off on disconnect


def test_an_uncalibrated_or_mismatched_arm_refuses_to_move(rigs, tmp_path):
    rig = rigs("so100", 4)
    with pytest.raises(CalibrationError, match="no calibration file"):
        rig.arm().connect()
    assert not any(rig.torque())
    rig.calibrate()
    rig.emu.set(3, "Homing_Offset", rig.emu.get(3, "Homing_Offset") + 100)  # another arm's servo
    with pytest.raises(CalibrationError, match="Homing_Offset"):
        rig.arm().connect()
    assert not any(rig.torque())


def test_ten_thousand_random_commands_through_the_bus_stay_within_every_limit(rigs):
    rig = rigs("so100", 5)
    rig.calibrate()
    rig.physics.set_pose(np.array([0.0, 0.3, 1.2, 1.0, 0.0, 0.5]))
    arm = rig.arm()
    ids = [int(m["id"]) for m in rig.rc.motors.values()]
    rng = np.random.default_rng(0)
    specials = np.array([np.nan, np.inf, -np.inf, 1e6, -1e6])
    with SafeRobot(arm, SafetyLimits.for_robot(arm, rig.rc.safety), watchdog=False) as robot:
        lim = robot.limits
        cal = arm.calibration
        prev = None
        for _ in range(10_000):
            a = rng.uniform(-4, 4, 6)
            m = rng.random(6) < 0.15
            a[m] = rng.choice(specials, m.sum())
            robot.act(a)
            arm.bus.ping(ids[0])  # a round trip: the emulator has served the sync write before it
            goals = {n: rig.emu.get(i_, "Goal_Position") for n, i_ in zip(arm.names, ids, strict=True)}
            for n, (tlo, thi) in arm.limits_ticks.items():
                assert tlo <= goals[n] <= thi
            rad = cal.to_rad(goals, arm.names)
            assert (rad >= lim.lower - 1e-3).all() and (rad <= lim.upper + 1e-3).all()
            if prev is not None:  # one tick of rounding on top of the step limit
                assert np.abs(rad - prev)[:5].max() <= lim.step_limit + 2 * np.pi / 4096
            prev = rad
    assert robot.report()["clamps_total"] > 0
    assert not any(rig.torque())


def test_torque_is_off_after_an_exception(rigs):
    rig = rigs("so100", 6)
    rig.calibrate()
    arm = rig.arm()
    with (
        pytest.raises(ZeroDivisionError),
        SafeRobot(arm, SafetyLimits.for_robot(arm, rig.rc.safety)) as robot,
    ):
        robot.act(robot.observe()["state"])
        assert all(rig.torque())
        _ = 1 / 0
    assert not any(rig.torque())


def test_an_arm_resting_outside_its_range_does_not_start(rigs):
    """The servos read an elbow 0.4 rad past its limit (a calibration off by that much, or the
    arm forced): torque off, one line naming the joint; 0.05 rad past (an arm resting on its
    stop) starts, and its first command pulls the joint inside."""
    from imitation.control import BadReading

    rig = rigs("so100", 11)
    rig.calibrate()
    q = np.array([0.0, 0.3, rig.rc.upper[2] + 0.4, 0.5, 0.0, 0.5])
    rig.physics.set_pose(q)
    arm = rig.arm()
    with pytest.raises(BadReading, match=r"elbow_flex reads 2\.0\d\d rad, outside its limits") as e:
        SafeRobot(arm, SafetyLimits.for_robot(arm, rig.rc.safety), watchdog=False).connect()
    assert "\n" not in str(e.value) and not any(rig.torque())
    q[2] = rig.rc.upper[2] + 0.05
    rig.physics.set_pose(q)
    arm = rig.arm()
    with SafeRobot(arm, SafetyLimits.for_robot(arm, rig.rc.safety), watchdog=False) as robot:
        sent = robot.act(q)
        assert sent[2] <= rig.rc.upper[2] + 1e-3 and all(rig.torque())
    assert not any(rig.torque())


def test_deploy_on_the_emulated_arm(pick_place_checkpoint, tmp_path):
    from imitation.control import RateLoop
    from imitation.deploy import DeployConfig, deploy

    cfg = DeployConfig(
        checkpoint=str(pick_place_checkpoint),
        robot="configs/robots/so100_emulated.yaml",
        emulate=True,
        episodes=1,
        episode_s=1.0,
        env=ENV,
    )
    # On a simulated clock (which the emulated physics steps by too): a loaded machine slows the
    # ticks, not the task's time, so the episode is never cut short by the task's time limit.
    s = deploy(cfg, loop=RateLoop.simulated(50.0))
    # Starved ticks and periods depend on the machine's load: tools/bench_control.py measures them
    # (BENCHMARKS.md); here, what does not: every tick ran and sent a command through the bus.
    assert s["episodes"][0]["ticks"] == 50 and 0 <= s["starved"] < 50 and s["chunks"] >= 1
    assert s["episodes"][0]["success"] in (True, False)
    assert "period_ms_p99" in s["timing"] and s["stopped"] is None


@pytest.mark.parametrize("robot", ["so100_leader", "koch_leader"])
def test_a_leader_arm_reads_the_operators_pose(rigs, robot):
    from imitation.errors import ImitationError
    from imitation.robots.factory import make_robot

    rig = rigs(robot, 8)
    rig.calibrate()
    leader = make_robot(rig.rc, rig.port, calibration=rig.cal_path, timeout_s=EMULATED_BUS_TIMEOUT_S)
    q = np.array([0.4, -0.3, 0.8, 0.5, -1.0, 0.7])
    with leader:
        torque = rig.torque()
        assert not any(torque[:5])  # the joints stay free for the operator's hand
        assert bool(torque[5]) == (robot == "koch_leader")  # Koch's gripper is a sprung trigger
        rig.physics.set_pose(q)
        np.testing.assert_allclose(leader.action(), q, atol=0.01)
        with pytest.raises(ImitationError, match="leader"):
            leader.act(q)


def test_the_watchdog_holds_the_real_arm_where_it_is(rigs):
    rig = rigs("so100", 9)
    rig.calibrate()
    arm = rig.arm()
    lim = SafetyLimits.for_robot(arm, rig.rc.safety | {"watchdog_s": 0.1})
    with SafeRobot(arm, lim) as robot:
        robot.act(robot.observe()["state"])
        # How late past watchdog_s it trips depends on the load (tools/bench_control.py watchdog).
        assert wait_until(lambda: bool(robot.trips))
        assert robot.trips[0] >= lim.watchdog_s
        for m in rig.rc.motors.values():  # holding: each goal is the present position
            i = int(m["id"])
            assert abs(rig.emu.get(i, "Goal_Position") - rig.emu.get(i, "Present_Position")) <= 1
        assert all(rig.torque())


def test_dynamixel_bus_watchdog_stops_the_arm_when_the_host_goes_silent(rigs):
    """What protects the arm from a SIGKILL: the servos' own watchdog, written at connect."""
    rig = rigs("koch", 10)
    rig.calibrate()
    arm = rig.arm()
    arm.connect()  # then the host "dies": no disconnect, no more packets
    units = round(rig.rc.safety["watchdog_s"] / 0.02)
    assert [rig.emu.get(i, "Bus_Watchdog") for i in range(1, 7)] == [units] * 6
    # The emulator's thread trips it after watchdog_s; when exactly depends on the load.
    assert wait_until(lambda: rig.emu.stats["watchdog_trips"] == 6)
    assert [rig.emu.get(i, "Bus_Watchdog") for i in range(1, 7)] == [255] * 6  # fail-safe
    for i in range(1, 7):
        assert rig.emu.get(i, "Goal_Position") == rig.emu.get(i, "Present_Position")
    assert rig.emu.stats["watchdog_trips"] == 6
    with SafeRobot(arm, SafetyLimits.for_robot(arm, rig.rc.safety), watchdog=False) as robot:
        robot.resync()  # what deploy does before each episode: re-arm after a pause
        assert [rig.emu.get(i, "Bus_Watchdog") for i in range(1, 7)] == [units] * 6
    arm.bus.close()
    again = rig.arm()
    with again:  # a new connection clears the fail-safe and works normally
        assert [rig.emu.get(i, "Bus_Watchdog") for i in range(1, 7)] == [units] * 6
        again.act(again.read_joints())
