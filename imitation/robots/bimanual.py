"""Several arms as one robot: ALOHA's two ViperX followers (or its two WidowX leaders), two SO-101s.

A config with ``arms:`` (``configs/robots/aloha.yaml``) names each arm's own config and port. The
robot's joints are the arms' joints one arm after another (``left/waist`` … ``left/gripper``,
``right/waist`` …), each arm in the project's convention, so policies, demo stores and the safety
layer see one vector. Each arm is its own driver (``BusArm``, its calibration file
``<calibration dir>/<arm>.yaml``) on its own bus.

One tick reads every arm at once: each bus is read from its own thread (a serial transaction
waits on the port, not on the interpreter), so four buses take about as long as one. The
observation carries each arm's read time (``arm_timestamp/<arm>``: the middle of its
transaction) and the tick's skew between arms (``arm_skew_s``); ``stats()`` sums the skews up.
Commands go out the same way, split per arm.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from imitation.errors import ConfigError
from imitation.robots.base import Robot
from imitation.robots.calibration import default_dir
from imitation.robots.config import RobotConfig

log = logging.getLogger(__name__)

SKEW_WINDOW = 100_000


def parse_ports(config: RobotConfig, port: str | None) -> dict[str, str]:
    """Each arm's port: ``--port left=/dev/a,right=/dev/b`` over the config's ``port:`` entries."""
    ports = {a: p.port for a, p in config.arms.items() if p.port}
    for item in filter(None, (port or "").split(",")):
        arm, sep, path = item.partition("=")
        if not sep or arm.strip() not in config.arms or not path.strip():
            raise ConfigError(
                f"--port {port!r}: for robot {config.name} give each arm's port as "
                + ",".join(f"{a}=<path>" for a in config.arms)
            )
        ports[arm.strip()] = path.strip()
    missing = [a for a in config.arms if a not in ports]
    if missing:
        raise ConfigError(
            f"robot {config.name}: no port for arm(s) {', '.join(missing)}; pass --port "
            + ",".join(f"{a}=<path>" for a in config.arms)
            + f" or set each arm's port in {config.path}"
        )
    return ports


def calibration_dir(config: RobotConfig, calibration: str | Path | None = None) -> Path:
    """Where the arms' calibration files are: ``calibration`` or ~/.imitation/calibration/<robot>/."""
    return Path(calibration) if calibration else default_dir() / config.name


class BimanualRobot(Robot):
    """Arms on their own buses behind one ``Robot`` (see the module doc). A leader pair's
    ``action()`` is every leader's reading, arm after arm: the follower pair's joint targets."""

    def __init__(
        self,
        config: RobotConfig,
        arms: Mapping[str, Any],
        *,
        cameras: dict[str, Any] | None = None,
        env_state_source: Callable[[], np.ndarray] | None = None,
    ) -> None:
        """``arms``: each arm's driver, by the config's arm names (``make_robot`` builds them)."""
        self.config = config
        if not config.arms:
            raise ConfigError(f"{config.path}: no `arms:` section; use make_robot for one arm")
        if list(arms) != list(config.arms):
            raise ValueError(f"{config.name}: arms {list(arms)}, the config has {list(config.arms)}")
        if env_state_source is not None and not config.env_state:
            raise ConfigError(
                f"{config.name}: an env_state source was given, but {config.path} declares no "
                "`env_state:` sensor"
            )
        self.spec = config.spec()
        self.arms = dict(arms)
        self.ports = {a: getattr(arm, "port", "") for a, arm in self.arms.items()}
        self.cameras = dict(cameras or {})
        self.env_state_source = env_state_source
        self.skews: deque[float] = deque(maxlen=SKEW_WINDOW)
        self._sizes = [len(p.config.joint_names) for p in config.arms.values()]
        self._pool: ThreadPoolExecutor | None = None

    @property
    def leader(self) -> bool:
        return self.config.role == "leader"

    # -------------------------------------------------------------- lifecycle
    def connect(self) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=len(self.arms), thread_name_prefix=f"{self.config.name}-bus"
        )
        done: list[Robot] = []
        try:
            for arm in self.arms.values():
                arm.connect()
                done.append(arm)
            for cam in self.cameras.values():
                if hasattr(cam, "connect"):
                    cam.connect()
        except BaseException:
            for arm in reversed(done):
                try:
                    arm.disconnect()
                except Exception as e:  # the others must still be released
                    log.error("%s: disconnect failed: %s", getattr(arm, "port", arm), e)
            self._shutdown()
            raise

    def disconnect(self) -> None:
        for cam in self.cameras.values():
            if hasattr(cam, "close"):
                cam.close()
        errors = []
        for arm in self.arms.values():
            try:
                arm.disconnect()
            except Exception as e:  # every arm gets its torque turned off
                errors.append(e)
        self._shutdown()
        if errors:
            raise errors[0]

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _each(self, fn: Callable[[Any, Any], Any], args: list[Any] | None = None) -> list[Any]:
        """``fn(arm, arg)`` for every arm at once (each on its own bus), results in arm order."""
        arms = list(self.arms.values())
        args = args if args is not None else [None] * len(arms)
        if self._pool is None:
            return [fn(a, x) for a, x in zip(arms, args, strict=True)]
        futures = [self._pool.submit(fn, a, x) for a, x in zip(arms, args, strict=True)]
        return [f.result() for f in futures]  # the first arm's error first

    def _split(self, action: np.ndarray) -> list[np.ndarray]:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.size != sum(self._sizes):
            raise ValueError(
                f"{self.config.name}: an action of {a.size} values, the arms take {sum(self._sizes)}"
            )
        return np.split(a, np.cumsum(self._sizes)[:-1])

    # -------------------------------------------------------------- the interface
    @staticmethod
    def _read(arm: Any, _: Any) -> tuple[np.ndarray, float]:
        t0 = time.monotonic()
        q = arm.read_joints()
        return q, (t0 + time.monotonic()) / 2

    def read_joints(self) -> np.ndarray:
        return np.concatenate([q for q, _ts in self._each(self._read)])

    def observe(self) -> dict[str, np.ndarray]:
        got = self._each(self._read)
        now = time.monotonic()
        stamps = [ts for _q, ts in got]
        skew = max(stamps) - min(stamps)
        self.skews.append(skew)
        obs: dict[str, Any] = {
            "state": np.concatenate([q for q, _ts in got]).astype(np.float32),
            "timestamp": np.float64(now),
            "arm_skew_s": np.float64(skew),
        }
        for a, ts in zip(self.arms, stamps, strict=True):
            obs[f"arm_timestamp/{a}"] = np.float64(ts)
        for name, cam in self.cameras.items():
            frame, ts, _seq = cam.read(now)
            obs[f"images/{name}"] = frame
            obs[f"timestamp/{name}"] = np.float64(ts)
        if self.env_state_source is not None:
            obs["env_state"] = np.asarray(self.env_state_source(), dtype=np.float32)
        return obs

    def act(self, action: np.ndarray) -> np.ndarray:
        if self.leader:
            raise ConfigError(f"{self.config.name} is a pair of leader arms: moved by hand, not driven")
        return np.concatenate(self._each(lambda arm, a: arm.act(a), self._split(action)))

    def action(self) -> np.ndarray:
        """A leader pair: the followers' joint targets, each leader's ``action()``, read at once."""
        return np.concatenate(self._each(lambda arm, _: arm.action()))

    def hold(self) -> np.ndarray:
        return np.concatenate(self._each(lambda arm, _: arm.hold()))

    def release(self) -> None:
        self._each(lambda arm, _: arm.release())

    def rearm(self) -> None:
        self._each(lambda arm, _: arm.rearm())

    def stats(self) -> dict[str, Any]:
        """The skew between the arms' reads over the ticks so far (ms)."""
        s = np.asarray(self.skews, dtype=np.float64) * 1000.0
        if not s.size:
            return {"ticks": 0}
        return {
            "ticks": int(s.size),
            "arm_skew_ms_p50": float(np.percentile(s, 50)),
            "arm_skew_ms_p99": float(np.percentile(s, 99)),
            "arm_skew_ms_max": float(s.max()),
        }
