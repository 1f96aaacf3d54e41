"""Robot configs (``configs/robots/<name>.yaml``): joints, rate, bus, safety, cameras, sensors.

One arm's config lists its joints and the servos of its bus. A servo entry is
``{id, model}`` and optionally:

- ``mode``: ``position`` (the default), ``extended_position`` (multi-turn; the servo ignores its
  position-limit registers, the driver clamps goals itself) or ``current_position`` (a position
  goal pursued with at most the servo's current limit: a gripper that closes on an object);
  Dynamixel only;
- ``current_limit``: the servo's ``Current_Limit`` register (2.69 mA units on X-series);
- ``shadow: {id, reverse}``: a second servo on the same joint (the ViperX's shoulder and elbow),
  following this one through its Secondary ID; ``reverse`` when it is mounted facing it and runs
  in reverse drive mode. It is named ``<joint>_shadow`` on the bus.

``bus.velocity_limit`` sets every servo's ``Velocity_Limit`` register.

A config of several arms (``arms: {left: {robot: <arm config>, port: <default port>}, right: ...}``)
has no ``joints`` or ``bus`` of its own: its joints are each arm's, prefixed ``<arm>/``, arms in the
order listed; its cameras, safety and rate are the whole robot's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from imitation.errors import ConfigError
from imitation.robots.base import CameraSpec, RobotSpec

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "robots"
KEYS = {"name", "role", "control_hz", "joints", "bus", "safety", "cameras", "env_state", "arms"}
MOTOR_KEYS = {"id", "model", "mode", "current_limit", "shadow"}
MODES = {"position": 3, "extended_position": 4, "current_position": 5}  # Dynamixel Operating_Mode


@dataclass
class ArmPart:
    """One arm of a several-arm robot: its own config and the port it is usually on."""

    name: str
    config: RobotConfig
    port: str | None = None


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
    velocity_limit: int | None = None
    # The arms of a several-arm robot (``arms:``), in joint order; empty for one arm.
    arms: dict[str, ArmPart] = field(default_factory=dict)

    @property
    def shadows(self) -> dict[str, tuple[str, int, bool]]:
        """joint -> (its shadow's bus name, the shadow's id, reverse) for the joints with two servos."""
        return {
            n: (f"{n}_shadow", int(m["shadow"]["id"]), bool(m["shadow"].get("reverse", False)))
            for n, m in self.motors.items()
            if m.get("shadow")
        }

    def bus_motors(self) -> dict[str, dict[str, Any]]:
        """Every servo on the bus by name, shadows too: name -> {id, model}."""
        out: dict[str, dict[str, Any]] = {}
        for n, m in self.motors.items():
            out[n] = {"id": int(m["id"]), "model": str(m["model"])}
            if m.get("shadow"):
                out[f"{n}_shadow"] = {"id": int(m["shadow"]["id"]), "model": str(m["model"])}
        return out

    def servos(self) -> dict[int, str]:
        """id -> model of every servo on the bus (what an emulator of this arm serves)."""
        return {int(m["id"]): str(m["model"]) for m in self.bus_motors().values()}

    def coupled(self) -> dict[int, tuple[int, bool]]:
        """shadow id -> (primary id, mounted facing it): the emulator's coupled servos."""
        return {sid: (int(self.motors[n]["id"]), rev) for n, (_, sid, rev) in self.shadows.items()}

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
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected a mapping of keys ({', '.join(sorted(KEYS))})")
    unknown = set(d) - KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(KEYS)}")
    if d.get("arms"):
        return _load_arms(path, d)
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
    _check_motors(path, protocol, motors)
    velocity_limit = bus.get("velocity_limit")
    if velocity_limit is not None and (protocol != "dynamixel" or not isinstance(velocity_limit, int)):
        raise ConfigError(
            f"{path}: bus.velocity_limit={velocity_limit!r}: an integer (0.229 rpm units) on a dynamixel bus"
        )
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
        velocity_limit=velocity_limit,
    )


def _check_motors(path: Path, protocol: str | None, motors: dict[str, dict[str, Any]]) -> None:
    """Refuse a servo entry no bus can honour (one line naming the joint and the key)."""
    from imitation.robots.buses.tables import MODELS

    ids: dict[int, str] = {}
    for n, m in motors.items():
        where = f"{path}: bus.motors.{n}"
        unknown = set(m) - MOTOR_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(MOTOR_KEYS)}")
        if "id" not in m or "model" not in m:
            raise ConfigError(f"{where}: needs id and model, e.g. {{id: 1, model: xm430-w350}}")
        model = MODELS.get(str(m["model"]))
        if model is None:
            raise ConfigError(f"{where}: unknown model {m['model']!r}; known: {', '.join(MODELS)}")
        mode = m.get("mode")
        if mode is not None:
            if protocol != "dynamixel" or mode not in MODES:
                raise ConfigError(
                    f"{where}: mode={mode!r}; on a dynamixel bus one of {', '.join(MODES)} (Feetech servos "
                    "run in position mode)"
                )
            if mode == "current_position" and "Current_Limit" not in model.registers:
                raise ConfigError(
                    f"{where}: {model.name} has no current sensing; mode current_position needs it"
                )
        if "current_limit" in m and "Current_Limit" not in model.registers:
            raise ConfigError(f"{where}: {model.name} has no Current_Limit register; remove current_limit")
        shadow = m.get("shadow")
        pairs = [(int(m["id"]), n)]
        if shadow is not None:
            if protocol != "dynamixel" or not isinstance(shadow, dict) or "id" not in shadow:
                raise ConfigError(
                    f"{where}: shadow must be {{id: <int>, reverse: <bool>}} on a dynamixel bus (Secondary ID)"
                )
            if set(shadow) - {"id", "reverse"}:
                raise ConfigError(
                    f"{where}: shadow takes id and reverse only, not {sorted(set(shadow) - {'id', 'reverse'})}"
                )
            pairs.append((int(shadow["id"]), f"{n}_shadow"))
        for i, name in pairs:
            if i in ids:
                raise ConfigError(f"{path}: servos {ids[i]} and {name} both have id {i}; ids must differ")
            ids[i] = name


def _load_arms(path: Path, d: dict[str, Any]) -> RobotConfig:
    """A robot of several arms (see the module doc)."""
    for key in ("joints", "bus"):
        if key in d:
            raise ConfigError(
                f"{path}: a config with `arms:` takes its {key} from each arm's config; remove `{key}:`"
            )
    for key in ("name", "control_hz"):
        if key not in d:
            raise ConfigError(f"{path}: missing {key!r}")
    if not isinstance(d["arms"], dict) or len(d["arms"]) < 2:
        raise ConfigError(f"{path}: arms must map two or more arm names to {{robot: <config>, port: <path>}}")
    arms: dict[str, ArmPart] = {}
    for arm, entry in d["arms"].items():
        if not isinstance(entry, dict) or "robot" not in entry or set(entry) - {"robot", "port"}:
            raise ConfigError(f"{path}: arms.{arm} must be {{robot: <arm config>, port: <serial port>}}")
        if "/" in str(arm):
            raise ConfigError(f"{path}: arm name {arm!r} may not contain '/'")
        target = Path(str(entry["robot"]))
        if target.suffix in (".yaml", ".yml") and not target.is_absolute():
            target = path.parent / target
        one = load_robot_config(target if target.suffix else str(entry["robot"]))
        if one.arms:
            raise ConfigError(f"{path}: arms.{arm} names {one.path}, itself several arms")
        if not one.protocol:
            raise ConfigError(f"{path}: arms.{arm}: {one.path} has no `bus:` section")
        arms[str(arm)] = ArmPart(str(arm), one, str(entry["port"]) if entry.get("port") else None)
    role = d.get("role", "follower")
    roles = {a.config.role for a in arms.values()}
    if roles != {role}:
        raise ConfigError(f"{path}: role {role!r}, but its arms are {sorted(roles)}")
    hz = float(d["control_hz"])
    names = tuple(f"{a}/{n}" for a, part in arms.items() for n in part.config.joint_names)
    return RobotConfig(
        name=str(d["name"]),
        path=path,
        role=role,
        control_hz=hz,
        joint_names=names,
        lower=np.concatenate([p.config.lower for p in arms.values()]),
        upper=np.concatenate([p.config.upper for p in arms.values()]),
        protocol=None,
        safety=dict(d.get("safety") or {}),
        cameras={str(k): dict(v) for k, v in (d.get("cameras") or {}).items()},
        env_state=dict(d["env_state"]) if d.get("env_state") else None,
        arms=arms,
    )
