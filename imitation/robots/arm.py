"""A real arm on a servo bus: ``BusArm`` (followers and leaders alike) and ``make_robot``.

Radians and a [0, 1] gripper at the interface; ticks only inside. On ``connect`` a follower:
checks that every servo answers, loads its calibration (refusing to move without one that
matches the servos), sets the return delay to 0, writes the calibrated joint limits into the
servos' position-limit registers, the gripper's torque limit and, on Dynamixel, the bus watchdog
(so the servos stop by themselves if the host dies), sets each goal to the present position and
only then turns torque on. ``disconnect`` turns torque off.

Each servo runs in the operating mode its config entry names (``mode``; by default position mode,
current-based position for a follower's gripper), with the config's ``current_limit`` and
``bus.velocity_limit``. EEPROM registers are written only where they differ. A joint with two
servos (``shadow:``) is configured as ``shadows.py`` describes, and both its servos are read every
tick. A USB-serial adapter whose latency timer is above 1 ms is reported at connect, with the fix.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from imitation.errors import ConfigError, ImitationError
from imitation.robots import shadows
from imitation.robots.base import Robot
from imitation.robots.calibration import Calibration, CalibrationError, default_path
from imitation.robots.config import MODES, RobotConfig, load_robot_config

log = logging.getLogger(__name__)

# Dynamixel X operating modes
POSITION, EXTENDED_POSITION, CURRENT_POSITION = (
    MODES["position"],
    MODES["extended_position"],
    MODES["current_position"],
)


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
        self.shadow_names = [name for name, _sid, _rev in self.config.shadows.values()]
        self.bus = make_bus(
            self.config.protocol,
            port,
            self.config.bus_motors(),
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
            warn_latency_timer(self.port)
            self._check_servos()
            self.calibration = Calibration.load(self.calibration_path, self.config)
            self._check_offsets()
            self._configure()
            if self.shadow_names:
                self.read_joints()  # a pair reading apart stops here, before torque comes on
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
        missing, wrong = [], []
        for n, m in self.bus.motors.items():
            number = self.bus.ping(m.id)
            if number is None:
                missing.append(f"{n} (id {m.id})")
            elif number != self.bus.model(n).model_number:
                wrong.append(f"{n} (id {m.id}) is model number {number}, the config says {m.model}")
        if missing:
            raise ImitationError(
                f"{self.port}: {self.config.name}: no answer from {', '.join(missing)}; check power, "
                "cabling and ids (imitation emulate serves a virtual arm to test the software)"
            )
        if wrong:
            raise ImitationError(
                f"{self.port}: {self.config.name}: {'; '.join(wrong)}; another arm on this port, or a "
                f"servo replaced by another model? Fix {self.config.path} or the wiring"
            )

    def _check_offsets(self) -> None:
        assert self.calibration is not None
        want_of = {n: self.calibration.joints[n].homing_offset for n in self.names}
        want_of |= {n: j.homing_offset for n, j in self.calibration.shadows.items()}
        for n, want in want_of.items():
            have = self.bus.read("Homing_Offset", n)
            if have != want:
                raise CalibrationError(
                    f"{self.port}: servo {n} has Homing_Offset {have}, the calibration file {self.calibration_path} "
                    f"says {want} (another arm, or recalibrated?); run imitation calibrate --robot "
                    f"{self.config.name} --port {self.port}"
                )

    def operating_mode(self, joint: str) -> int:
        """The Dynamixel operating mode of ``joint``'s servo(s): the config's ``mode``, else
        current-based position for a follower's gripper that senses current, else position."""
        mode = self.config.motors[joint].get("mode")
        if mode:
            return MODES[mode]
        model = self.bus.model(joint)
        if joint.endswith("gripper") and not self.leader and "Current_Limit" in model.registers:
            return CURRENT_POSITION
        return POSITION

    def eeprom_plan(self) -> list[tuple[str, str, int]]:
        """(servo, register, value) of every EEPROM setting the config asks for, shadows included."""
        assert self.calibration is not None
        plan: list[tuple[str, str, int]] = [(n, "Return_Delay_Time", 0) for n in self.bus.motors]
        limits = self.calibration.tick_limits(self.names, self.config.lower, self.config.upper)
        pair = {j: name for j, (name, _sid, _rev) in self.config.shadows.items()}
        dynamixel = self.config.protocol == "dynamixel"
        if dynamixel:
            plan += [
                (name, "Drive_Mode", v) for name, v in shadows.drive_modes(self.bus, self.config).items()
            ]
        for n in self.names:
            servos = [n, pair[n]] if n in pair else [n]
            m = self.config.motors[n]
            for servo in servos:
                if dynamixel:
                    plan.append((servo, "Operating_Mode", self.operating_mode(n)))
                    if self.config.velocity_limit is not None:
                        plan.append((servo, "Velocity_Limit", int(self.config.velocity_limit)))
                if "current_limit" in m:
                    plan.append((servo, "Current_Limit", int(m["current_limit"])))
                plan += [
                    (servo, "Min_Position_Limit", limits[n][0]),
                    (servo, "Max_Position_Limit", limits[n][1]),
                ]
        return plan

    def _configure(self) -> None:
        """Servo-side settings that protect the arm even without this process."""
        assert self.calibration is not None
        bus, names = self.bus, self.names
        bus.disable_torque()
        safety = self.config.safety
        if self.config.protocol == "dynamixel":  # leave a tripped bus watchdog's fail-safe state first
            for n in bus.motors:
                if "Bus_Watchdog" in bus.model(n).registers and bus.read("Bus_Watchdog", n):
                    bus.write("Bus_Watchdog", n, 0)
        plan = self.eeprom_plan()
        todo = [(n, reg, v) for n, reg, v in plan if bus.read(reg, n) != v]
        if self.config.shadows:
            # A write to a primary reaches a linked shadow: unlink those first, link again last.
            shadows.unlink(bus, self.config, [n for n, _reg, _v in todo if n in self.config.shadows])
        for n, reg, v in todo:
            bus.write_eeprom(reg, n, v)
        if self.config.shadows:
            shadows.link(bus, self.config)
        wrong = [
            f"{n}.{reg} reads {got}, {v} was written" for n, reg, v in todo if (got := bus.read(reg, n)) != v
        ]
        if wrong:
            raise ImitationError(f"{self.port}: {self.config.name}: {'; '.join(wrong)}; check the servos")
        value = {(n, reg): v for n, reg, v in plan}
        self.limits_ticks = {
            n: (value[n, "Min_Position_Limit"], value[n, "Max_Position_Limit"]) for n in names
        }
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
        ticks = self.bus.sync_read("Present_Position", [*self.names, *self.shadow_names])
        if self.shadow_names:
            shadows.check_agreement(self.bus, self.config, ticks)
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

    def action(self) -> np.ndarray:
        """A leader arm's reading as the follower's joint targets (clipped to the joint ranges)."""
        if not self.leader:
            raise ImitationError(f"{self.config.name} is a follower arm; read it with observe()")
        return np.clip(self.read_joints(), self.spec.lower, self.spec.upper)

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
        watched = [n for n in self.names if "Bus_Watchdog" in self.bus.model(n).registers]
        state = self.bus.sync_read("Bus_Watchdog", watched) if watched else {}  # one transaction
        for n in watched:
            if state[n] == 255:
                log.warning("%s: servo %s's bus watchdog had tripped; re-arming it", self.port, n)
                self.bus.write("Bus_Watchdog", n, 0)
                self.bus.write("Bus_Watchdog", n, units)
        self.hold()

    def release(self) -> None:
        self.bus.disable_torque()
        self._torque = False


USB_SERIAL_SYSFS = Path("/sys/bus/usb-serial/devices")


def latency_timer_ms(port: str, sysfs: Path = USB_SERIAL_SYSFS) -> int | None:
    """The latency timer (ms) of the USB-serial adapter behind ``port`` (a udev symlink is followed),
    or None where the port has none (a native serial port, an ACM modem, a pseudo-terminal)."""
    try:
        tty = Path(port).resolve().name
        return int((sysfs / tty / "latency_timer").read_text().strip())
    except (OSError, ValueError):
        return None


def warn_latency_timer(port: str, sysfs: Path = USB_SERIAL_SYSFS) -> int | None:
    """Warn when ``port``'s adapter holds received bytes longer than 1 ms (FTDI's default is
    16 ms: one read then costs up to 16 ms, which alone breaks a 50 Hz loop); returns the value."""
    ms = latency_timer_ms(port, sysfs)
    if ms is not None and ms > 1:
        tty = Path(port).resolve().name
        log.warning(
            "%s: the USB-serial adapter's latency timer is %d ms; a 50 Hz loop needs 1 ms. Fix: "
            "echo 1 | sudo tee %s (until unplugged), or for good a udev rule: "
            'ACTION=="add", SUBSYSTEM=="usb-serial", DRIVER=="ftdi_sio", ATTR{latency_timer}="1"',
            port,
            ms,
            sysfs / tty / "latency_timer",
        )
    return ms
