"""An emulated real arm whose physics is the simulator.

``SimPhysics`` plugs into the servo emulator: the servos' goal positions (ticks) go through a
*mounting* — an arbitrary offset and sign per servo, as horns are mounted on a real arm — to joint
targets of a MuJoCo task, the task steps in real time, and its joint positions come back as the
servos' present positions through the same mounting. A driver on the other side of the serial
port knows nothing of this: it must calibrate the arm like a real one, so the whole chain
ticks → calibration → radians is exercised before a real arm is plugged in.

The simulator can also be the arm's cameras and its external object tracker (``env_state``),
but only where the robot config declares them with ``source: sim``.

A robot of several arms (``arms:`` in its config) has a bus, so an emulator, per arm: each is
``attach``-ed with its arm's name, and the physics reads the goals of, and writes the positions
to, each joint's own servo on its own bus. The emulators then share one lock (``ServoEmulator``'s
``lock``), so that whichever bus is served, the whole robot moves in one step. The simulator and
its renderer (whose GL context belongs to one thread) run only in the first attached emulator's
thread; a request on another bus reads and writes its servos against the latest step.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imitation.robots.calibration import REFERENCE_RAD, Calibration, calibrate
from imitation.robots.config import RobotConfig

# The bus timeout for a driver talking to the emulator. A real servo answers within a
# millisecond, so a real bus gives up after 50 ms; the emulator answers from a thread of the same
# process, which a loaded machine can leave unscheduled for far longer without anything being
# wrong with the (virtual) wiring.
EMULATED_BUS_TIMEOUT_S = 2.0


@dataclass
class Mounting:
    """How each servo's raw position relates to the joint (radians; gripper [0, 1])."""

    offset: np.ndarray  # raw ticks at 0 rad (gripper: at closed)
    sign: np.ndarray  # +1 / -1
    gripper_span: int = 1400  # raw ticks from closed to open
    ticks_per_turn: int = 4096

    @classmethod
    def random(cls, n: int, rng: np.random.Generator) -> Mounting:
        return cls(offset=rng.integers(1200, 2900, n), sign=rng.choice([-1, 1], n))

    def to_raw(self, q: np.ndarray, gripper: np.ndarray) -> np.ndarray:
        scale = np.where(gripper, self.gripper_span, self.ticks_per_turn / (2 * math.pi))
        return np.rint(self.offset + self.sign * np.asarray(q) * scale).astype(np.int64)

    def to_joint(self, raw: np.ndarray, gripper: np.ndarray) -> np.ndarray:
        scale = np.where(gripper, self.gripper_span, self.ticks_per_turn / (2 * math.pi))
        return self.sign * (np.asarray(raw, dtype=np.float64) - self.offset) / scale


def homing_sign(protocol: str) -> int:
    """present = raw + homing_sign * Homing_Offset, as the emulator (and the servos) apply it."""
    return 1 if protocol == "dynamixel" else -1


class SimPhysics:
    """The servo emulator's physics: a simulated task as the arm (see the module doc)."""

    def __init__(
        self,
        config: RobotConfig,
        env_id: str,
        *,
        mounting: Mounting | None = None,
        seed: int = 0,
        obs_mode: str = "state",
        cameras: tuple[str, ...] | None = None,
        image_size: tuple[int, int] | None = None,
        max_catch_up: int = 5,
        clock: Callable[[], float] = time.monotonic,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        from imitation.robots.sim import SimRobot

        self.config = config
        self.sim = SimRobot(
            env_id, obs_mode=obs_mode, cameras=cameras, image_size=image_size, seed=seed, **(env_kwargs or {})
        )
        names = config.joint_names
        if tuple(self.sim.spec.joint_names) != tuple(names):
            raise ValueError(f"{env_id} has joints {self.sim.spec.joint_names}, {config.name} has {names}")
        if config.arms:
            self.ids = [
                int(p.config.motors[n]["id"]) for p in config.arms.values() for n in p.config.joint_names
            ]
            self.arm_of = [a for a, p in config.arms.items() for _ in p.config.joint_names]
            self.hsign = homing_sign(next(iter(config.arms.values())).config.protocol or "")
        else:
            self.ids = [int(config.motors[n]["id"]) for n in names]
            self.arm_of = [None] * len(names)
            self.hsign = homing_sign(config.protocol or "")
        self.buses: dict[str | None, Any] = {}  # arm -> its emulator (see ``attach``)
        self._sim_thread: int | None = None  # the thread that runs the simulator
        self.gripper = np.array([n.split("/")[-1] == "gripper" for n in names])
        self.mounting = mounting or Mounting.random(len(names), np.random.default_rng(seed))
        self.max_catch_up = max_catch_up
        self.clock = clock
        self.lock = threading.RLock()
        # The joint pose held by hand (calibration, before the first episode), or None: simulate.
        self.manual: np.ndarray | None = np.zeros(len(names))
        self.pending_seed: int | None = None
        self.ready = threading.Event()
        self.obs: dict[str, np.ndarray] | None = None
        self.episode_start = 0.0
        self.steps = 0
        self.done = False
        self.info: dict[str, Any] = {}

    def attach(self, arm: str | None, emulator: Any) -> None:
        """Serve arm ``arm``'s joints on ``emulator`` (a robot of several arms: one per arm; with a
        single arm, the emulator that calls ``sync`` is used when none is attached)."""
        self.buses[arm] = emulator

    def _servos(self, emulator: Any) -> list[tuple[Any, int]]:
        return [(self.buses.get(a, emulator), i) for a, i in zip(self.arm_of, self.ids, strict=True)]

    # -------------------------------------------------------------- episodes
    def reset(self, seed: int) -> None:
        """Start a new episode with ``seed``'s scene. It takes effect at the next bus request: the
        simulator (and its renderer, whose GL context belongs to one thread) runs only in the
        emulator's thread."""
        with self.lock:
            self.pending_seed = seed
            self.manual = None
            self.ready.clear()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until the emulator's thread has started the episode asked for by ``reset``."""
        if not self.ready.wait(timeout_s):
            raise RuntimeError(f"the simulated arm did not start its episode within {timeout_s:.0f} s")

    def _owner(self, emulator: Any) -> bool:
        """Whether ``emulator``'s thread runs the simulator: the first attached one, or any when
        a single emulator serves the arm."""
        return not self.buses or emulator is next(iter(self.buses.values()))

    def idle(self, emulator: Any, now: float) -> None:
        """Between requests: start a pending episode, so that no request waits for a scene reset."""
        if self.pending_seed is not None and self._owner(emulator):
            with self.lock:
                self._reset_now(self.pending_seed)
                self._write_present(emulator, np.asarray(self.obs["state"], dtype=np.float64))

    def _reset_now(self, seed: int) -> None:
        self._sim_thread = threading.get_ident()
        self.obs = self.sim.reset(seed)
        self.ready.set()
        self.pending_seed = None
        self.episode_start = self.clock()
        self.steps = 0
        self.done = False
        self.info = dict(self.sim.info)

    def set_pose(self, q: np.ndarray) -> None:
        """Hold the arm at ``q`` (radians; gripper [0, 1]) as a hand would, bypassing the simulator."""
        with self.lock:
            self.manual = np.asarray(q, dtype=np.float64)

    # -------------------------------------------------------------- the emulator hook
    def sync(self, emulator: Any, now: float) -> None:
        with self.lock:
            if self.manual is not None:
                self._write_present(emulator, self.manual)
                return
            if not self._owner(emulator):  # another bus of the robot: the latest step's positions
                if self.obs is not None and self.pending_seed is None:
                    self._write_present(emulator, np.asarray(self.obs["state"], dtype=np.float64))
                return
            if self.pending_seed is not None or self.obs is None:
                self._reset_now(self.sim.seed if self.pending_seed is None else self.pending_seed)
            servos = self._servos(emulator)
            torque = all(e.get(i, "Torque_Enable") for e, i in servos)
            due = int((self.clock() - self.episode_start) * self.sim.spec.control_hz)
            if torque and not self.done and due > self.steps:
                goal_raw = np.array([self._raw(e, i, e.get(i, "Goal_Position")) for e, i in servos])
                q_goal = self.mounting.to_joint(goal_raw, self.gripper)
                n = min(due - self.steps, self.max_catch_up)
                for _ in range(n):
                    self.obs = self._step(q_goal)
                    if self.done:
                        break
                self.steps = due  # steps beyond the catch-up are dropped, as a slow simulator would
            self._write_present(emulator, np.asarray(self.obs["state"], dtype=np.float64))

    def _step(self, q_goal: np.ndarray) -> dict[str, np.ndarray]:
        self.sim.act(q_goal)
        self.info = dict(self.sim.info)
        self.done = bool(self.sim.terminated or self.sim.truncated)
        return self.sim.observe()

    def _raw(self, emulator: Any, servo_id: int, present: int) -> int:
        return present - self.hsign * emulator.get(servo_id, "Homing_Offset")

    def _write_present(self, emulator: Any, q: np.ndarray) -> None:
        raw = self.mounting.to_raw(q, self.gripper)
        for (e, i), r in zip(self._servos(emulator), raw, strict=True):
            present = int(r) + self.hsign * e.get(i, "Homing_Offset")
            e.set(i, "Present_Position", present % self.mounting.ticks_per_turn)

    def close(self) -> None:
        """Release the simulator (the emulator calls this from its own thread when it stops; with
        several emulators, the one whose thread ran the simulator does)."""
        with self.lock:
            if self._sim_thread is not None and threading.get_ident() != self._sim_thread:
                return
            self.sim.disconnect()

    # -------------------------------------------------------------- sensors
    def latest(self) -> dict[str, np.ndarray]:
        with self.lock:
            if self.obs is None or self.pending_seed is not None:
                raise RuntimeError(
                    "the simulated arm's episode has not started: reset(seed), then a bus request"
                )
            return self.obs

    @property
    def env_state_dim(self) -> int:
        return int(self.sim.spec.env_state_dim)

    def env_state(self) -> np.ndarray:
        return np.asarray(self.latest()["env_state"], dtype=np.float32)

    def camera(self, name: str) -> SimCamera:
        return SimCamera(self, name)


class SimCamera:
    """A camera served by the simulator: the latest rendered frame and the wall time it was taken."""

    def __init__(self, physics: SimPhysics, name: str) -> None:
        self.physics, self.key = physics, f"images/{name}"
        self.frames = self.duplicates = 0
        self._last_step = -1

    def read(self, tick_time: float | None = None) -> tuple[np.ndarray, float, int]:
        with self.physics.lock:
            obs = self.physics.latest()
            step = self.physics.steps
            # A simulated camera with a rate or a latency (envs/base.py) shows an older capture:
            # its age in simulation time, taken off the current step's time on the arm's clock.
            env = self.physics.sim.env
            image_s = getattr(env, "image_time_s", None)
            age_s = float(env.data.time) - float(image_s) if image_s is not None else 0.0
        if self.key not in obs:
            raise KeyError(f"the simulator renders no camera {self.key.split('/')[1]!r}")
        if step == self._last_step:
            self.duplicates += 1
        self._last_step = step
        self.frames += 1
        ts = self.physics.episode_start + step / self.physics.sim.spec.control_hz - age_s
        return obs[self.key], ts, step


def scripted_calibration(
    bus: Any, config: RobotConfig, physics: SimPhysics, steps: int = 24, first: int = 0
) -> Calibration:
    """``calibrate`` with the simulated arm posed as an operator would pose a real one. ``config``
    is one arm's; ``first`` is the index of its first joint in the physics' joints (the second
    arm of a pair starts after the first's), the other arms rest at zero."""
    n = len(physics.gripper)
    mine = np.zeros(n, dtype=bool)
    mine[first : first + len(config.joint_names)] = True
    zero = np.zeros(n)
    ref = np.where(mine, np.where(physics.gripper, 1.0, REFERENCE_RAD), 0.0)
    poses = iter([zero, ref])

    def ask(_text: str) -> None:
        pose = next(poses, None)
        if pose is not None:
            physics.set_pose(pose)

    def sweep(read: Callable[[], dict[str, int]]) -> None:
        for i in range(first, first + len(config.joint_names)):
            k = i - first
            lo, hi = (0.0, 1.0) if physics.gripper[i] else (config.lower[k] - 0.05, config.upper[k] + 0.05)
            for v in np.linspace(lo, hi, steps):
                q = np.zeros(n)
                q[i] = v
                physics.set_pose(q)
                read()
        physics.set_pose(zero)

    return calibrate(bus, config, ask=ask, sweep=sweep)


class PosedArm:
    """An emulated arm without a simulator, posed as an operator's hand would pose it: joint angles
    (radians; gripper [0, 1]) through a random mounting onto its primary servos' shafts (shadows
    turn with them). What a leader arm is, and what calibration needs, with no simulator at all."""

    def __init__(self, emulator: Any, config: RobotConfig, seed: int = 0, gripper_span: int = 900) -> None:
        rng = np.random.default_rng(seed)
        self.emulator, self.config = emulator, config
        self.ids = [int(config.motors[n]["id"]) for n in config.joint_names]
        self.gripper = np.array([n.split("/")[-1] == "gripper" for n in config.joint_names])
        self.mounting = Mounting(
            offset=rng.integers(1500, 2600, len(self.ids)),
            sign=rng.choice([-1, 1], len(self.ids)),
            gripper_span=gripper_span,
        )

    def pose(self, q: np.ndarray) -> None:
        for i, raw in zip(
            self.ids, self.mounting.to_raw(np.asarray(q, dtype=np.float64), self.gripper), strict=True
        ):
            self.emulator.turn(i, float(raw))

    def calibrate(
        self, path: str | Path, *, timeout_s: float = EMULATED_BUS_TIMEOUT_S, steps: int = 9
    ) -> Calibration:
        """The calibration procedure through the bus, the arm posed for each step; saved to ``path``.
        The reference pose turns each joint +1 rad (within every joint's range here)."""
        from imitation.robots.buses import make_bus

        config, n = self.config, len(self.ids)
        poses = iter([np.zeros(n), np.ones(n)])

        def ask(_text: str) -> None:
            q = next(poses, None)
            if q is not None:
                self.pose(q)

        def sweep(read: Callable[[], dict[str, int]]) -> None:
            for k in range(n):
                lo, hi = (0.0, 1.0) if self.gripper[k] else (config.lower[k] - 0.05, config.upper[k] + 0.05)
                for v in np.linspace(lo, hi, steps):
                    q = np.zeros(n)
                    q[k] = v
                    self.pose(q)
                    read()
            self.pose(np.zeros(n))

        with make_bus(
            config.protocol,
            self.emulator.port,
            config.bus_motors(),
            baudrate=config.baudrate,
            timeout_s=timeout_s,
        ) as bus:
            cal = calibrate(bus, config, ask=ask, sweep=sweep)
        cal.save(path)
        return cal
