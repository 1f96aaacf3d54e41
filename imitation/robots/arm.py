"""A real arm on a servo bus: ``BusArm`` (followers and leaders alike) and ``make_robot``.

Radians and a [0, 1] gripper at the interface; ticks only inside. On ``connect`` a follower:
checks that every servo answers, loads its calibration (refusing to move without one that
matches the servos), sets the return delay to 0, writes the calibrated joint limits into the
servos' position-limit registers, the gripper's torque limit and, on Dynamixel, the bus watchdog
(so the servos stop by themselves if the host dies), sets each goal to the present position and
only then turns torque on. ``disconnect`` turns torque off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from imitation.errors import ConfigError, ImitationError
from imitation.robots.base import Robot
from imitation.robots.calibration import Calibration, CalibrationError, default_path, write_limits
from imitation.robots.config import RobotConfig, load_robot_config

log = logging.getLogger(__name__)

# Dynamixel X operating modes
POSITION, CURRENT_POSITION = 3, 5


class BusArm(Robot):
    """One arm on one bus. ``env_state`` comes only from a source the robot config declares."""

    def __init__(
        self,
        config: RobotConfig | str | Path,
        port: str,
        *,
        calibration: str | Path | None = None,
        cameras: dict[str, Any] | None = None,
        env_state_source: Callable[[], np.ndarray] | None = None,
        timeout_s: float = 0.05,
        retries: int = 3,
    ) -> None:
        from imitation.robots.buses import make_bus

        self.config = config if isinstance(config, RobotConfig) else load_robot_config(config)
        if not self.config.protocol or not self.config.motors:
            raise ConfigError(f"{self.config.path}: no `bus:` section; this robot has no servo bus to drive")
        if env_state_source is not None and not self.config.env_state:
            raise ConfigError(
                f"{self.config.name}: an env_state source was given, but {self.config.path} declares no "
                "`env_state:` sensor; declare it (e.g. env_state: {source: sim, dim: N})"
            )
        self.spec = self.config.spec()
        self.names = self.config.joint_names
        self.port = port
        self.calibration_path = Path(calibration) if calibration else default_path(self.config.name)
        self.calibration: Calibration | None = None
        self.bus = make_bus(
            self.config.protocol,
            port,
            self.config.motors,
            baudrate=self.config.baudrate,
            timeout_s=timeout_s,
            retries=retries,
        )
        self.cameras = dict(cameras or {})
        self.env_state_source = env_state_source
        self.limits_ticks: dict[str, tuple[int, int]] = {}
        self._torque = False

    @property
    def leader(self) -> bool:
        return self.config.role == "leader"

    # -------------------------------------------------------------- lifecycle
    def connect(self) -> None:
        self.bus.connect()
        try:
            self._check_servos()
            self.calibration = Calibration.load(self.calibration_path, self.config)
            self._check_offsets()
            self._configure()
            if not self.leader:
                present = self.bus.sync_read("Present_Position", list(self.names))
                self.bus.sync_write("Goal_Position", present)  # no jump when torque comes on
                self.bus.enable_torque()
                self._torque = True
            for cam in self.cameras.values():
                if hasattr(cam, "connect"):
                    cam.connect()
        except BaseException:
            self._torque_off_quietly()
            self.bus.close()
            raise

    def _check_servos(self) -> None:
        missing = []
        for n in self.names:
            m = self.config.motors[n]
            if self.bus.ping(int(m["id"])) is None:
                missing.append(f"{n} (id {m['id']})")
        if missing:
            raise ImitationError(
                f"{self.port}: {self.config.name}: no answer from {', '.join(missing)}; check power, "
                "cabling and ids (imitation emulate serves a virtual arm to test the software)"
            )

    def _check_offsets(self) -> None:
        assert self.calibration is not None
        for n in self.names:
            have = self.bus.read("Homing_Offset", n)
            want = self.calibration.joints[n].homing_offset
            if have != want:
                raise CalibrationError(
                    f"{self.port}: servo {n} has Homing_Offset {have}, the calibration file {self.calibration_path} "
                    f"says {want} (another arm, or recalibrated?); run imitation calibrate --robot "
                    f"{self.config.name} --port {self.port}"
                )

    def _configure(self) -> None:
        """Servo-side settings that protect the arm even without this process."""
        assert self.calibration is not None
        bus, names = self.bus, self.names
        bus.disable_torque()
        safety = self.config.safety
        if self.config.protocol == "dynamixel":  # leave a tripped bus watchdog's fail-safe state first
            for n in names:
                if "Bus_Watchdog" in bus.model(n).registers and bus.read("Bus_Watchdog", n):
                    bus.write("Bus_Watchdog", n, 0)
        for n in names:
            if bus.read("Return_Delay_Time", n) != 0:
                bus.write_eeprom("Return_Delay_Time", n, 0)
        if self.config.protocol == "dynamixel":
            for n in names:
                mode = CURRENT_POSITION if n.endswith("gripper") and not self.leader else POSITION
                if bus.read("Operating_Mode", n) != mode:
                    bus.write_eeprom("Operating_Mode", n, mode)
        self.limits_ticks = write_limits(bus, self.calibration, self.config)
        if self.leader:
            return
        share = float(safety.get("gripper_torque_limit", 0.5))
        grippers = [n for n in names if n.split("/")[-1] == "gripper"]
        for n in grippers:
            model = bus.model(n)
            if "Torque_Limit" in model.registers:  # Feetech: RAM limit, 0..1000
                bus.write("Torque_Limit", n, int(round(1000 * share)))
            elif "Goal_Current" in model.registers and "Current_Limit" in model.registers:
                limit = bus.read("Current_Limit", n)
                bus.write("Goal_Current", n, int(round(limit * share)))
        if self.config.protocol == "dynamixel" and "watchdog_s" in safety:
            units = max(1, min(127, int(round(float(safety["watchdog_s"]) / 0.02))))  # 20 ms units
            for n in names:
                if "Bus_Watchdog" in bus.model(n).registers:
                    bus.write("Bus_Watchdog", n, units)

    def disconnect(self) -> None:
        for cam in self.cameras.values():
            if hasattr(cam, "close"):
                cam.close()
        if self.bus.is_connected:
            self._torque_off_quietly()
            self.bus.close()

    def _torque_off_quietly(self) -> None:
        if not self.bus.is_connected:
            return
        for attempt in range(3):
            try:
                self.bus.disable_torque()
                self._torque = False
                return
            except Exception as e:  # keep trying: this is the arm's safe state
                log.error("%s: torque off failed (try %d of 3): %s", self.port, attempt + 1, e)

    # -------------------------------------------------------------- the interface
    def _require_calibration(self) -> Calibration:
        if self.calibration is None:
            raise CalibrationError(f"{self.config.name}: not connected (no calibration loaded)")
        return self.calibration

    def read_joints(self) -> np.ndarray:
        cal = self._require_calibration()
        ticks = self.bus.sync_read("Present_Position", list(self.names))
        return cal.to_rad(ticks, self.names)

    def observe(self) -> dict[str, np.ndarray]:
        state = self.read_joints()
        now = time.monotonic()
        obs: dict[str, Any] = {"state": state.astype(np.float32), "timestamp": np.float64(now)}
        for name, cam in self.cameras.items():
            frame, ts, _seq = cam.read(now)
            obs[f"images/{name}"] = frame
            obs[f"timestamp/{name}"] = np.float64(ts)
        if self.env_state_source is not None:
            obs["env_state"] = np.asarray(self.env_state_source(), dtype=np.float32)
        return obs

    def act(self, action: np.ndarray) -> np.ndarray:
        if self.leader:
            raise ImitationError(f"{self.config.name} is a leader arm: it is moved by hand, not driven")
        cal = self._require_calibration()
        a = np.clip(np.asarray(action, dtype=np.float64), self.spec.lower, self.spec.upper)
        ticks = cal.to_ticks(a, self.names)
        for n, (lo, hi) in self.limits_ticks.items():
            ticks[n] = min(max(ticks[n], lo), hi)
        self.bus.sync_write("Goal_Position", ticks)
        return cal.to_rad(ticks, self.names)

    def hold(self) -> np.ndarray:
        present = self.bus.sync_read("Present_Position", list(self.names))
        self.bus.sync_write("Goal_Position", present)
        return self._require_calibration().to_rad(present, self.names)

    def rearm(self) -> None:
        """After a pause in commands (the operator resetting the scene): leave a tripped Dynamixel
        bus watchdog's fail-safe state and hold the present pose, so the next goals are obeyed."""
        if self.config.protocol != "dynamixel" or self.leader:
            return
        units = max(1, min(127, int(round(float(self.config.safety.get("watchdog_s", 0.5)) / 0.02))))
        for n in self.names:
            if "Bus_Watchdog" in self.bus.model(n).registers and self.bus.read("Bus_Watchdog", n) == 255:
                log.warning("%s: servo %s's bus watchdog had tripped; re-arming it", self.port, n)
                self.bus.write("Bus_Watchdog", n, 0)
                self.bus.write("Bus_Watchdog", n, units)
        self.hold()

    def release(self) -> None:
        self.bus.disable_torque()
        self._torque = False
