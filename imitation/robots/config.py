"""Robot configs (``configs/robots/<name>.yaml``): joints, rate, bus, safety, cameras, sensors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from imitation.errors import ConfigError
from imitation.robots.base import CameraSpec, RobotSpec

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "robots"
KEYS = {"name", "role", "control_hz", "joints", "bus", "safety", "cameras", "env_state"}


@dataclass
class RobotConfig:
    """One arm as its config file declares it."""

    name: str
    path: Path
    role: str  # follower | leader
    control_hz: float
    joint_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    protocol: str | None = None
    baudrate: int = 1_000_000
    motors: dict[str, dict[str, Any]] = field(default_factory=dict)
    safety: dict[str, Any] = field(default_factory=dict)
    cameras: dict[str, dict[str, Any]] = field(default_factory=dict)
    # An external object tracker providing `env_state` (e.g. {source: sim} under --emulate), or None.
    env_state: dict[str, Any] | None = None

    def spec(self) -> RobotSpec:
        cams = tuple(
            CameraSpec(name, int(c.get("height", 480)), int(c.get("width", 640)))
            for name, c in self.cameras.items()
        )
        env_dim = int(self.env_state.get("dim", 0)) if self.env_state else 0
        return RobotSpec(
            name=self.name,
            joint_names=self.joint_names,
            lower=self.lower,
            upper=self.upper,
            control_hz=self.control_hz,
            cameras=cams,
            env_state_dim=env_dim,
        )


def resolve(robot: str | Path) -> Path:
    """``so100`` -> configs/robots/so100.yaml; a path is taken as is."""
    p = Path(robot)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise ConfigError(f"robot config {p} does not exist")
        return p
    cand = CONFIGS / f"{robot}.yaml"
    if not cand.is_file():
        known = sorted(f.stem for f in CONFIGS.glob("*.yaml"))
        raise ConfigError(
            f"unknown robot {str(robot)!r}; choose one of {', '.join(known)} or give a config path"
        )
    return cand


def load_robot_config(robot: str | Path) -> RobotConfig:
    path = resolve(robot)
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    unknown = set(d) - KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(KEYS)}")
    for key in ("name", "control_hz", "joints"):
        if key not in d:
            raise ConfigError(f"{path}: missing {key!r}")
    joints = d["joints"]
    try:
        names = tuple(str(j["name"]) for j in joints)
        lower = np.array([float(j["lower"]) for j in joints])
        upper = np.array([float(j["upper"]) for j in joints])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{path}: each joint needs name, lower and upper (radians)") from None
    if not (lower < upper).all():
        raise ConfigError(f"{path}: a joint has lower >= upper")
    role = d.get("role", "follower")
    if role not in ("follower", "leader"):
        raise ConfigError(f"{path}: role={role!r} must be follower or leader")
    bus = d.get("bus") or {}
    motors = {str(k): dict(v) for k, v in (bus.get("motors") or {}).items()}
    if motors and list(motors) != list(names):
        raise ConfigError(f"{path}: bus.motors must list the joints in order: {', '.join(names)}")
    protocol = bus.get("protocol")
    if bus and protocol not in ("dynamixel", "feetech"):
        raise ConfigError(f"{path}: bus.protocol={protocol!r} must be dynamixel or feetech")
    return RobotConfig(
        name=str(d["name"]),
        path=path,
        role=role,
        control_hz=float(d["control_hz"]),
        joint_names=names,
        lower=lower,
        upper=upper,
        protocol=protocol,
        baudrate=int(bus.get("baudrate", 1_000_000)),
        motors=motors,
        safety=dict(d.get("safety") or {}),
        cameras={str(k): dict(v) for k, v in (d.get("cameras") or {}).items()},
        env_state=dict(d["env_state"]) if d.get("env_state") else None,
    )
