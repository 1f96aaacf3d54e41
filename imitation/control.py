"""Pacing and safety for anything that drives an arm at a fixed rate.

- ``RateLoop``: deadline-based pacing (tick k is due at ``t0 + k / hz``, so errors never accumulate)
  with ``TimingStats``: period p50/p99/max, the p99 error against the nominal period, overruns.
- ``SafetyLimits`` and ``SafeRobot``: a Robot wrapper that makes every command safe to send —
  non-finite values replaced, joint and gripper limits, a largest change per tick (from both
  ``max_step_rad`` and ``max_velocity_rad_s``), a slow safe start to the first commanded pose, a
  watchdog that holds (or releases) the arm when commands stop, and torque off on exit, on an
  exception and on SIGINT/SIGTERM. Every clamp is counted. Joint readings are checked too: a
  non-finite one, or one outside the limits by more than ``reading_margin_rad``, refuses a start
  (``connect``, ``resync``) and stops a running arm (``observe``), raising ``BadReading``.
- ``EStopKey``: a key on the terminal that stops the arm in interactive commands.

``termios``/``tty`` are imported in ``EStopKey`` only when stdin is a terminal (they are POSIX-only).
"""

from __future__ import annotations

import logging
import math
import os
import select
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from imitation.errors import ConfigError, ImitationError
from imitation.robots.base import Robot

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------ pacing
class TimingStats:
    """Tick start times and work times of a fixed-rate loop, summarised by ``summary()``."""

    def __init__(self, hz: float) -> None:
        self.hz = hz
        self.period = 1.0 / hz
        self.starts: list[float] = []
        self.work: list[float] = []
        self.overruns = 0  # ticks whose work outlasted the period
        self.missed = 0  # deadlines skipped after falling more than a period behind

    def summary(self) -> dict[str, float]:
        s = np.asarray(self.starts)
        out: dict[str, float] = {"ticks": float(len(s)), "hz": self.hz}
        if len(s) >= 2:
            out |= period_stats(np.diff(s), self.period)
            out["rate_hz"] = float((len(s) - 1) / (s[-1] - s[0]))
        if self.work:
            w = np.asarray(self.work) * 1e3
            out |= {"work_ms_p50": float(np.percentile(w, 50)), "work_ms_p99": float(np.percentile(w, 99))}
        out |= {"overruns": float(self.overruns), "missed": float(self.missed)}
        return out


def period_stats(periods_s: Any, period_s: float) -> dict[str, float]:
    """Percentiles of tick-to-tick periods (s) and of their error against ``period_s``, in ms."""
    ms = np.asarray(periods_s, dtype=np.float64) * 1e3
    err = np.abs(ms - 1e3 * period_s)
    return {
        "period_ms_p50": float(np.percentile(ms, 50)),
        "period_ms_p99": float(np.percentile(ms, 99)),
        "period_ms_max": float(ms.max()),
        "period_error_ms_p99": float(np.percentile(err, 99)),
    }


class SimulatedClock:
    """Time that moves only when something sleeps on it. A ``RateLoop`` on it (``RateLoop.simulated``)
    releases every tick on time unless a tick's work advances the clock itself, which is how tests
    check pacing without depending on the machine's load."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.now = float(start_s)

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += max(0.0, s)


class RateLoop:
    """Yields tick numbers at ``hz``; each tick is released at its deadline ``t0 + k / hz``.

    Sleeps until shortly before the deadline and spins the last ``spin_s`` (sleep alone overshoots
    by up to a millisecond under load). A tick whose work outlasts the period is an overrun; a loop
    that falls more than one period behind skips the missed deadlines instead of bursting.
    """

    def __init__(
        self,
        hz: float,
        *,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
        spin_s: float = 0.0005,
    ) -> None:
        if not hz > 0:
            raise ConfigError(f"rate {hz!r} Hz must be > 0")
        self.hz, self.period = float(hz), 1.0 / hz
        self.clock, self.sleep, self.spin_s = clock, sleep, spin_s
        self.stats = TimingStats(hz)
        self.tick_time = 0.0  # when the current tick was released

    @classmethod
    def simulated(cls, hz: float, clock: SimulatedClock | None = None) -> RateLoop:
        """A loop on a ``SimulatedClock`` (a new one unless given): no real time passes."""
        clock = clock or SimulatedClock()
        return cls(hz, clock=clock, sleep=clock.sleep, spin_s=0.0)

    def __iter__(self) -> Iterator[int]:
        t0 = self.clock()
        k = 0
        while True:
            due = t0 + k * self.period
            now = self.clock()
            if now < due:
                if due - now > self.spin_s:
                    self.sleep(due - now - self.spin_s)
                while (now := self.clock()) < due:
                    pass
            elif now - due > self.period:  # more than a period late: skip to the next deadline
                skipped = int((now - due) / self.period)
                self.stats.missed += skipped
                k += skipped
            self.tick_time = now
            self.stats.starts.append(now)
            yield k
            work = self.clock() - now
            self.stats.work.append(work)
            if work > self.period:
                self.stats.overruns += 1
            k += 1


# ------------------------------------------------------------------------------------ safety
class SafetyStop(ImitationError):
    """The arm was stopped by a safety function (watchdog release, emergency stop)."""


class BadReading(SafetyStop):
    """A joint reading that cannot be trusted (not a number, or far outside the limits): the arm
    was not started, or was held and then released."""


@dataclass
class SafetyLimits:
    """What ``SafeRobot`` lets through. Arrays are per joint, in the robot's joint order."""

    lower: np.ndarray
    upper: np.ndarray
    control_hz: float
    max_step_rad: float = 0.15
    max_velocity_rad_s: float = 4.0
    watchdog_s: float = 0.5
    on_timeout: str = "hold"  # hold | release
    gripper_torque_limit: float = 0.5
    safe_start_rad_s: float = 0.5
    safe_start_skip_rad: float = 0.25
    # How far outside its limits a joint reading may be (radians; the gripper: the same number in
    # its [0, 1] units). A real arm rests a little past its soft limits (on a hard stop, or
    # calibrated a few degrees off); the default is one max_step_rad, so the first command pulls
    # such a joint inside by no more than one step. Beyond it the calibration or the sensor is wrong.
    reading_margin_rad: float = 0.15
    gripper_index: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.lower = np.asarray(self.lower, dtype=np.float64)
        self.upper = np.asarray(self.upper, dtype=np.float64)
        if self.lower.shape != self.upper.shape or not (self.lower < self.upper).all():
            raise ConfigError("safety limits: each joint needs lower < upper")
        for name in ("max_step_rad", "max_velocity_rad_s", "watchdog_s", "safe_start_rad_s", "control_hz"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ConfigError(f"safety: {name}={v!r} must be a positive number")
        if self.on_timeout not in ("hold", "release"):
            raise ConfigError(f"safety: on_timeout={self.on_timeout!r} must be hold or release")
        m = self.reading_margin_rad
        if not (isinstance(m, int | float) and math.isfinite(m) and m >= 0):
            raise ConfigError(f"safety: reading_margin_rad={m!r} must be a number ≥ 0 (radians)")
        if not 0 < self.gripper_torque_limit <= 1:
            raise ConfigError(f"safety: gripper_torque_limit={self.gripper_torque_limit!r} must be in (0, 1]")

    @property
    def step_limit(self) -> float:
        """Largest change of a joint target in one tick."""
        return min(self.max_step_rad, self.max_velocity_rad_s / self.control_hz)

    @classmethod
    def for_robot(cls, robot: Robot, safety: Mapping[str, Any] | None) -> SafetyLimits:
        """Limits from a robot's spec and the ``safety:`` section of its config."""
        safety = dict(safety or {})
        known = {
            "max_step_rad",
            "max_velocity_rad_s",
            "watchdog_s",
            "on_timeout",
            "gripper_torque_limit",
            "safe_start_rad_s",
            "safe_start_skip_rad",
            "reading_margin_rad",
        }
        # Read by the arm's driver itself (imitation/robots/shadows.py), not by these limits.
        safety.pop("shadow_tolerance_rad", None)
        unknown = set(safety) - known
        if unknown:
            raise ConfigError(f"safety: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        spec = robot.spec
        grippers = tuple(i for i, n in enumerate(spec.joint_names) if n.split("/")[-1] == "gripper")
        return cls(
            lower=spec.lower, upper=spec.upper, control_hz=spec.control_hz, gripper_index=grippers, **safety
        )


class SafeRobot(Robot):
    """``robot`` behind limits that no command can pass. Use it as a context manager.

    ``act`` returns what was sent. ``clamps`` counts every change made to a command: ``nonfinite``
    (NaN/inf replaced by the last sent value), ``position`` (joint limits), ``gripper`` (gripper
    range), ``step`` (change per tick of an arm joint). ``move_to`` is the safe start: a slow, paced move to the
    first commanded pose before a policy takes over.
    The watchdog trips when no ``act`` arrives within ``watchdog_s``: ``hold`` makes the arm hold
    where it is (``robot.hold()``) until the next command, ``release`` turns torque off and every
    later ``act`` raises ``SafetyStop``.
    A joint reading is the base of the next command's step limit, so it must be trusted: a
    non-finite one, or one outside the limits by more than ``reading_margin_rad``, makes
    ``connect`` and ``resync`` turn torque off and raise ``BadReading``; in ``observe`` (mid-run)
    the arm is held, then released, and every later ``act`` raises ``SafetyStop``.
    """

    def __init__(self, robot: Robot, limits: SafetyLimits, *, watchdog: bool = True) -> None:
        self.robot = robot
        self.spec = robot.spec
        self.limits = limits
        self.clamps: Counter[str] = Counter()
        self.trips: list[float] = []  # watchdog trip delays (s past the last command)
        self._lock = threading.RLock()
        self._last_sent: np.ndarray | None = None
        self._last_cmd = time.monotonic()
        self._stopped: str | None = None
        self._held = False
        self._armed = False  # the watchdog counts from the first command on
        self._use_watchdog = watchdog
        self._wd_thread: threading.Thread | None = None
        self._wd_stop = threading.Event()
        self._wd_kick = threading.Event()
        self._old_handlers: dict[int, Any] = {}
        self._connected = False

    # -------------------------------------------------------------- lifecycle
    def connect(self) -> None:
        self.robot.connect()
        self._connected = True
        try:
            self._last_sent = self._start_pose(self.robot.observe(), "at connect")
            self._install_signal_handlers()
            self._last_cmd = time.monotonic()
            if self._use_watchdog:
                self._wd_stop.clear()
                self._wd_thread = threading.Thread(target=self._watchdog, name="watchdog", daemon=True)
                self._wd_thread.start()
        except BaseException:
            self.disconnect()
            raise

    def disconnect(self) -> None:
        self._wd_stop.set()
        self._wd_kick.set()
        if self._wd_thread is not None and self._wd_thread is not threading.current_thread():
            self._wd_thread.join(timeout=2.0)
        self._wd_thread = None
        with self._lock:
            if self._connected:
                self._connected = False
                self.robot.disconnect()  # torque off
        self._restore_signal_handlers()

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: Any) -> None:
            log.warning("signal %d: stopping the arm (torque off)", signum)
            self.disconnect()
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)

        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[sig] = signal.signal(sig, handler)

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers.clear()

    # -------------------------------------------------------------- the interface
    def observe(self) -> dict[str, np.ndarray]:
        with self._lock:
            obs = self.robot.observe()
            problem = self._reading_problem(obs)
            if problem is None:
                return obs
            if not self._stopped:  # a fault: stop where it is, then no torque
                self._stopped = f"bad joint reading: {problem}"
                log.error("%s: %s; holding, then torque off", self.spec.name, problem)
                try:
                    self.robot.hold()
                finally:
                    self.robot.release()
        raise BadReading(
            f"{self.spec.name}: while running, {problem}; the arm was held, then its torque turned off "
            "(restart the command once fixed)"
        )

    def _reading_problem(self, obs: Mapping[str, Any]) -> str | None:
        """Why this observation's joint reading cannot be trusted, or None."""
        lim = self.limits
        q = np.asarray(obs["state"], dtype=np.float64).reshape(-1)[: len(lim.lower)]
        # Only joint positions have the joint limits; a third-party env's state (state_dim) may not.
        positions = self.spec.state_dim is None
        for i, v in enumerate(q):
            name = self.spec.joint_names[i] if i < len(self.spec.joint_names) else f"#{i}"
            lo, hi = lim.lower[i], lim.upper[i]
            unit = "" if i in lim.gripper_index else " rad"
            if not math.isfinite(v):
                return (
                    f"joint {name} reads {v}{unit} (limits [{lo:.3f}, {hi:.3f}]): its position sensor gave "
                    "no number; check the servo's cable, power and id"
                )
            m = lim.reading_margin_rad
            if positions and not lo - m <= v <= hi + m:
                return (
                    f"joint {name} reads {v:.3f}{unit}, outside its limits [{lo:.3f}, {hi:.3f}] by more than "
                    f"safety.reading_margin_rad={m:g}; check the calibration (imitation calibrate) and that "
                    "nothing forces the joint"
                )
        return None

    def _start_pose(self, obs: Mapping[str, Any], when: str) -> np.ndarray:
        """The reading a start (connect, resync) takes as the last command, once it is trusted;
        otherwise torque off and ``BadReading``."""
        problem = self._reading_problem(obs)
        if problem is not None:
            self._stopped = f"bad joint reading {when}: {problem}"
            raise BadReading(
                f"{self.spec.name}: {when}, {problem}; torque is off and nothing was sent (a joint "
                "resting outside its range: move it inside by hand, then start again)"
            )
        lim = self.limits
        q = np.asarray(obs["state"], dtype=np.float64)[: len(lim.lower)]
        # Within the margin, past a limit: the step limit counts from the limit, not from outside it.
        return np.clip(q, lim.lower, lim.upper) if self.spec.state_dim is None else q.copy()

    def filter(self, action: Any) -> np.ndarray:
        """The command ``act`` would send for ``action`` now (counts clamps; no side effect besides)."""
        lim = self.limits
        n = len(lim.lower)
        last = self._last_sent if self._last_sent is not None else (lim.lower + lim.upper) / 2
        try:
            a = np.asarray(action, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            a = np.full(n, np.nan)
        if a.shape != (n,):
            raise ValueError(
                f"action has {a.size} values; {self.spec.name} takes {n} ({', '.join(self.spec.joint_names)})"
            )
        bad = ~np.isfinite(a)
        if bad.any():
            self.clamps["nonfinite"] += int(bad.sum())
            a = np.where(bad, last, a)
        clipped = np.clip(a, lim.lower, lim.upper)
        moved = clipped != a
        if moved.any():
            grip = np.zeros(n, dtype=bool)
            grip[list(lim.gripper_index)] = True
            self.clamps["gripper"] += int((moved & grip).sum())
            self.clamps["position"] += int((moved & ~grip).sum())
        a = clipped
        step = np.full(n, lim.step_limit)
        step[list(lim.gripper_index)] = np.inf  # a gripper is bounded by its range and torque limit
        delta = a - last
        limited = np.clip(delta, -step, step)
        if (limited != delta).any():
            self.clamps["step"] += int((limited != delta).sum())
        return np.clip(last + limited, lim.lower, lim.upper)

    def move_to(self, target: Any, speed_rad_s: float | None = None) -> int:
        """The safe start: move to ``target`` at ``safe_start_rad_s`` (paced at the control rate)
        before a policy takes over; returns the ticks it took."""
        lim = self.limits
        speed = speed_rad_s or lim.safe_start_rad_s
        with self._lock:
            goal = np.asarray(target, dtype=np.float64).copy()
            start = self._last_sent.copy() if self._last_sent is not None else None
            # A joint without a finite target stays where it is (as filter() treats it), not at 0.
            fallback = start if start is not None else (lim.lower + lim.upper) / 2
            goal = np.clip(np.where(np.isfinite(goal), goal, fallback), lim.lower, lim.upper)
            if start is None:
                start = goal.copy()
        arm = np.ones(len(goal), dtype=bool)
        arm[list(lim.gripper_index)] = False
        dist = float(np.abs(goal - start)[arm].max(initial=0.0))
        if dist <= lim.safe_start_skip_rad:
            return 0  # close enough: the per-tick step limit takes it there
        n = max(1, math.ceil(dist / (speed / lim.control_hz)))
        loop = RateLoop(lim.control_hz)
        for k in loop:
            self.act(start + (goal - start) * min(1.0, (k + 1) / n))
            if k + 1 >= n:
                break
        if n > 1:
            self.clamps["safe_start_ticks"] += n
        return n

    def act(self, action: Any) -> np.ndarray:
        with self._lock:
            if self._stopped:
                raise SafetyStop(
                    f"{self.spec.name}: the arm was stopped ({self._stopped}); restart the command"
                )
            if not self._connected:
                raise SafetyStop(f"{self.spec.name}: not connected")
            cmd = self.filter(action)
            sent = np.asarray(self.robot.act(cmd), dtype=np.float64)
            # What the robot says it sent is the next step's base: never a non-finite value.
            sent = np.where(np.isfinite(sent), sent, cmd)
            self._last_sent = sent
            self._last_cmd = time.monotonic()
            self._held = False
            self._armed = True
        self._wd_kick.set()
        return sent

    def disarm(self) -> None:
        """Commands stop on purpose (the end of a session): the watchdog waits for the next one."""
        with self._lock:
            self._armed = False
        self._wd_kick.set()

    def stop(self, reason: str) -> None:
        """Emergency stop: torque off, every later ``act`` refused."""
        with self._lock:
            self._stopped = reason
            log.warning("%s: stopping the arm: %s", self.spec.name, reason)
            if self._connected:
                self.robot.release()

    def resync(self) -> None:
        """Take the arm's present pose as the last command (after a scene reset moved it) and make
        watchdog's clock start again."""
        with self._lock:
            rearm = getattr(self.robot, "rearm", None)
            if callable(rearm):
                rearm()
            try:
                self._last_sent = self._start_pose(self.robot.observe(), "before the episode")
            except BadReading:
                self.disconnect()  # torque off
                raise
            self._last_cmd = time.monotonic()
            self._held = False
        self._wd_kick.set()

    def report(self) -> dict[str, Any]:
        return {
            "clamps": dict(self.clamps),
            "clamps_total": int(sum(self.clamps.values())),
            "watchdog_trips": len(self.trips),
            "stopped": self._stopped,
        }

    # -------------------------------------------------------------- watchdog
    def _watchdog(self) -> None:
        timeout = self.limits.watchdog_s
        while not self._wd_stop.is_set():
            with self._lock:
                due = self._last_cmd + timeout
                held = self._held or self._stopped is not None or not self._armed
            wait = due - time.monotonic()
            if held:
                self._wd_kick.wait()
                self._wd_kick.clear()
                continue
            if wait > 0:
                self._wd_kick.wait(wait)
                self._wd_kick.clear()
                continue
            with self._lock:
                if self._wd_stop.is_set() or not self._connected:
                    return
                if time.monotonic() < self._last_cmd + timeout:
                    continue  # a command came in meanwhile
                self._trip(time.monotonic() - self._last_cmd)

    def _trip(self, late: float) -> None:
        """What the watchdog does ``late`` seconds after the last command (the lock held)."""
        timeout = self.limits.watchdog_s
        self.trips.append(late)
        if self.limits.on_timeout == "release":
            self._stopped = f"no command for {late:.3f} s (watchdog {timeout} s, release)"
            log.warning("%s: watchdog: %s", self.spec.name, self._stopped)
            self.robot.release()
            return
        log.warning("%s: watchdog: no command for %.3f s; holding position", self.spec.name, late)
        held_at = self.robot.hold()
        if held_at is not None:
            held = np.asarray(held_at, dtype=np.float64)
            if held.shape == (len(self.limits.lower),) and np.isfinite(held).all():
                self._last_sent = held  # a non-finite reading never becomes the next step's base
        self._held = True


# ------------------------------------------------------------------------------------ e-stop key
class EStopKey:
    """Watches the terminal for an emergency-stop key (space, Esc or q) in a background thread.

    ``on_stop`` is called once when one is pressed. Without a terminal on stdin it does nothing
    (Ctrl-C, SIGINT, still stops the arm through ``SafeRobot``).
    """

    KEYS = {" ": "space", "\x1b": "Esc", "q": "q"}

    def __init__(self, on_stop: Callable[[str], None]) -> None:
        self.on_stop = on_stop
        self.pressed: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved: Any = None

    def __enter__(self) -> EStopKey:
        if not sys.stdin.isatty():
            return self
        import termios
        import tty

        fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self._thread = threading.Thread(target=self._run, args=(fd,), name="estop-key", daemon=True)
        self._thread.start()
        return self

    def _run(self, fd: int) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            ch = os.read(fd, 1).decode(errors="ignore")
            if ch in self.KEYS and self.pressed is None:
                self.pressed = self.KEYS[ch]
                self.on_stop(f"emergency-stop key ({self.pressed})")

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        if self._saved is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)
