"""Pacing and safety: RateLoop deadlines, SafeRobot limits, watchdog, signals."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from imitation.control import RateLoop, SafeRobot, SafetyLimits, SafetyStop
from imitation.errors import ConfigError
from imitation.robots.base import Robot, RobotSpec

LOWER = np.array([-1.9, -1.7, -1.6, -1.9, -2.7, 0.0])
UPPER = np.array([1.9, 1.7, 1.6, 1.9, 2.7, 1.0])
NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


class FakeArm(Robot):
    """Records every command; ``torque`` mirrors what a real arm's servos would hold."""

    def __init__(self, hz: float = 50.0) -> None:
        self.spec = RobotSpec("fake", NAMES, LOWER, UPPER, hz)
        self.sent: list[np.ndarray] = []
        self.q = np.zeros(6)
        self.q[5] = 0.5
        self.torque = False
        self.events: list[tuple[str, float]] = []

    def connect(self) -> None:
        self.torque = True

    def observe(self) -> dict[str, np.ndarray]:
        return {"state": self.q.astype(np.float32), "timestamp": np.float64(time.monotonic())}

    def act(self, action: np.ndarray) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        self.sent.append(a.copy())
        self.q = a
        return a

    def hold(self) -> np.ndarray:
        self.events.append(("hold", time.monotonic()))
        return self.q.copy()

    def release(self) -> None:
        self.events.append(("release", time.monotonic()))
        self.torque = False

    def disconnect(self) -> None:
        self.torque = False


def limits(**kw) -> SafetyLimits:
    base = dict(lower=LOWER, upper=UPPER, control_hz=50.0, gripper_index=(5,), safe_start_rad_s=100.0)
    return SafetyLimits(**(base | kw))


def test_rate_loop_keeps_deadlines_and_counts_overruns():
    clock = [0.0]
    loop = RateLoop(
        10.0, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s), spin_s=0.0
    )
    ticks = []
    for k in loop:
        ticks.append((k, clock[0]))
        clock[0] += 0.25 if k == 3 else 0.01  # tick 3 works 2.5 periods
        if len(ticks) == 7:
            break
    assert [k for k, _ in ticks] == [0, 1, 2, 3, 5, 6, 7]  # tick 4 was skipped, not burst
    assert ticks[1][1] == pytest.approx(0.1) and ticks[5][1] == pytest.approx(0.6)
    s = loop.stats.summary()
    assert s["overruns"] == 1 and s["missed"] == 1


def test_rate_loop_on_the_real_clock_never_releases_a_tick_early():
    """What holds however loaded the machine is: no tick before its deadline, ticks in order (a
    late loop skips deadlines, counted as missed). The rate it keeps is measured by
    tools/bench_control.py (BENCHMARKS.md), not asserted here."""
    calls: list[float] = []

    def clock() -> float:
        calls.append(time.perf_counter())
        return calls[-1]

    loop = RateLoop(100.0, clock=clock)
    ticks = []
    for k in loop:
        ticks.append(k)
        if k >= 30:
            break
    t0 = calls[0]
    assert all(b > a for a, b in zip(ticks, ticks[1:], strict=False))
    assert all(start >= t0 + k * loop.period for k, start in zip(ticks, loop.stats.starts, strict=True))
    assert len(ticks) + loop.stats.missed == 31


def test_ten_thousand_random_actions_never_exceed_the_limits():
    arm = FakeArm()
    lim = limits(max_step_rad=0.1, max_velocity_rad_s=2.0)  # step limit 0.04 rad at 50 Hz
    rng = np.random.default_rng(0)
    specials = np.array([np.nan, np.inf, -np.inf, 1e9, -1e9, 0.0])
    with SafeRobot(arm, lim, watchdog=False) as robot:
        prev = arm.q.copy()
        for i in range(10_000):
            a = rng.uniform(-5, 5, 6)
            mask = rng.random(6) < 0.2
            a[mask] = rng.choice(specials, mask.sum())
            if i % 997 == 0:
                a = np.full(6, np.nan)
            sent = robot.act(a)
            assert np.isfinite(sent).all()
            assert (sent >= LOWER).all() and (sent <= UPPER).all()
            assert np.abs(sent - prev)[:5].max() <= lim.step_limit + 1e-12
            prev = sent
    assert len(arm.sent) == 10_000
    report = robot.report()
    assert report["clamps"]["nonfinite"] > 0 and report["clamps"]["step"] > 0
    assert report["clamps"]["position"] > 0 and report["clamps"]["gripper"] > 0
    assert not arm.torque  # torque off on exit


def test_wrong_length_action_is_refused():
    with SafeRobot(FakeArm(), limits(), watchdog=False) as robot, pytest.raises(ValueError, match="takes 6"):
        robot.act(np.zeros(5))


def test_safe_start_moves_slowly_to_the_first_pose():
    arm = FakeArm()
    lim = limits(safe_start_rad_s=5.0, safe_start_skip_rad=0.01, max_step_rad=0.2, max_velocity_rad_s=10.0)
    target = np.array([0.3, 0, 0, 0, 0, 0.5])
    with SafeRobot(arm, lim, watchdog=False) as robot:
        n = robot.move_to(target)
        assert n == 3  # 0.3 rad at 5 rad/s, 50 Hz: 0.1 rad per tick
        assert np.allclose(arm.sent[-1], target)
        assert np.allclose([s[0] for s in arm.sent], [0.1, 0.2, 0.3])
        far = np.array([-0.3, 0, 0, 0, 0, 0.5])
        assert robot.act(far)[0] == pytest.approx(0.3 - 0.2)  # then the normal step limit


def wait_until(predicate, timeout_s: float = 30.0) -> bool:
    """Poll for what a background thread does; the generous timeout only matters on failure."""
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.005)
    return predicate()


def test_watchdog_holds_never_early_then_resumes():
    """How soon after ``watchdog_s`` it trips depends on the machine's load (tools/bench_control.py
    watchdog measures it); that it trips, never before ``watchdog_s``, holds and lets commands
    resume does not."""
    arm = FakeArm()
    lim = limits(watchdog_s=0.1, on_timeout="hold")
    with SafeRobot(arm, lim) as robot:
        robot.act(arm.q)
        assert wait_until(lambda: bool(arm.events))
        assert arm.events[0][0] == "hold" and arm.torque
        assert robot.trips[0] >= lim.watchdog_s
        sent = robot.act(arm.q)  # commands resume after a hold
        assert np.allclose(sent, arm.q)


def test_watchdog_release_stops_the_arm():
    arm = FakeArm()
    with SafeRobot(arm, limits(watchdog_s=0.05, on_timeout="release")) as robot:
        robot.act(arm.q)
        assert wait_until(lambda: bool(arm.events))
        assert arm.events[0][0] == "release" and not arm.torque and robot.trips[0] >= 0.05
        with pytest.raises(SafetyStop, match="watchdog"):
            robot.act(arm.q)


def test_torque_off_on_exception_and_on_sigterm():
    arm = FakeArm()
    with pytest.raises(RuntimeError), SafeRobot(arm, limits(), watchdog=False):
        assert arm.torque
        raise RuntimeError("boom")
    assert not arm.torque
    arm2 = FakeArm()
    with pytest.raises(SystemExit) as exc, SafeRobot(arm2, limits(), watchdog=False):
        assert arm2.torque
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to this (the main) thread
        time.sleep(60)  # the handler interrupts this at once: no race with another thread
    assert exc.value.code == 128 + signal.SIGTERM and not arm2.torque
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def test_bad_safety_config_is_one_clear_error():
    with pytest.raises(ConfigError, match="on_timeout"):
        limits(on_timeout="explode")
    with pytest.raises(ConfigError, match="max_step_rad"):
        limits(max_step_rad=float("nan"))
    with pytest.raises(ConfigError, match="unknown key"):
        SafetyLimits.for_robot(FakeArm(), {"max_stepp": 1})


# ------------------------------------------------------------------ joint readings
def test_a_non_finite_reading_at_connect_refuses_to_start_with_torque_off():
    from imitation.control import BadReading

    arm = FakeArm()
    arm.q[2] = np.nan  # a servo that did not answer its position
    robot = SafeRobot(arm, limits(), watchdog=False)
    with pytest.raises(BadReading) as e:
        robot.connect()
    msg = str(e.value)
    assert "elbow_flex" in msg and "nan" in msg and "[-1.600, 1.600]" in msg and "\n" not in msg
    assert not arm.torque and arm.sent == []
    with pytest.raises(SafetyStop):
        robot.act(np.zeros(6))


def test_an_out_of_limit_reading_at_connect_refuses_beyond_the_margin_only():
    from imitation.control import BadReading

    arm = FakeArm()
    arm.q[0] = UPPER[0] + 0.5
    with pytest.raises(
        BadReading, match=r"shoulder_pan reads 2\.400 rad.*\[-1\.900, 1\.900\].*reading_margin_rad"
    ):
        SafeRobot(arm, limits(), watchdog=False).connect()
    assert not arm.torque
    rest = FakeArm()  # a real arm resting a little outside its soft limits starts
    rest.q[0] = UPPER[0] + 0.05
    rest.q[5] = -0.02
    with SafeRobot(rest, limits(), watchdog=False) as robot:
        sent = robot.act(np.zeros(6))
        assert np.isfinite(sent).all() and (sent >= LOWER).all() and (sent <= UPPER).all()


def test_a_non_finite_reading_at_resync_stops_the_arm():
    from imitation.control import BadReading

    arm = FakeArm()
    with SafeRobot(arm, limits(), watchdog=False) as robot:
        robot.act(arm.q)
        arm.q = arm.q.copy()
        arm.q[1] = np.inf
        with pytest.raises(BadReading, match="shoulder_lift reads inf"):
            robot.resync()
        assert not arm.torque
        with pytest.raises(SafetyStop):
            robot.act(np.zeros(6))


@pytest.mark.parametrize("value", [np.nan, 3.0], ids=["nan", "far-out-of-limit"])
def test_a_bad_reading_mid_run_holds_then_releases_and_stops(value):
    from imitation.control import BadReading

    arm = FakeArm()
    with SafeRobot(arm, limits(), watchdog=False) as robot:
        robot.act(robot.observe()["state"])
        arm.q = arm.q.copy()
        arm.q[3] = value
        with pytest.raises(BadReading, match="wrist_flex") as e:
            robot.observe()
        assert "held" in str(e.value) and "torque" in str(e.value)
        assert [name for name, _ in arm.events] == ["hold", "release"] and not arm.torque
        with pytest.raises(SafetyStop):
            robot.act(np.zeros(6))
        assert robot.report()["stopped"]


def test_nothing_non_finite_becomes_the_last_command():
    """A robot echoing NaN for what it sent, or a hold that reads NaN, never makes later
    (finite) commands NaN."""

    class Echo(FakeArm):
        def act(self, action):
            super().act(action)
            return np.full(6, np.nan)

        def hold(self):
            super().hold()
            return np.full(6, np.nan)

    arm = Echo()
    with SafeRobot(arm, limits(), watchdog=False) as robot:
        robot.act(np.zeros(6))
        assert np.isfinite(robot.act(np.full(6, 0.01))).all()
        robot._trip(0.1)  # what the watchdog does when commands stop
        assert np.isfinite(robot.act(np.full(6, 0.02))).all()


def test_a_nan_in_the_safe_start_target_keeps_that_joint_where_it_is():
    arm = FakeArm()
    arm.q[0] = 0.5
    lim = limits(safe_start_rad_s=5.0, safe_start_skip_rad=0.01, max_step_rad=0.2, max_velocity_rad_s=10.0)
    with SafeRobot(arm, lim, watchdog=False) as robot:
        robot.move_to(np.array([np.nan, 0.3, 0, 0, 0, 0.5]))
        assert arm.sent[-1][0] == pytest.approx(0.5) and arm.sent[-1][1] == pytest.approx(0.3)


def test_reading_margin_is_a_safety_key():
    assert SafetyLimits.for_robot(FakeArm(), {"reading_margin_rad": 0.3}).reading_margin_rad == 0.3
    with pytest.raises(ConfigError, match="reading_margin_rad"):
        limits(reading_margin_rad=-0.1)
