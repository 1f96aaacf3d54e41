"""The robot stack: what every loop that drives a robot runs on, built in one place.

Recording with an operator, deploying a policy, replaying an episode and evaluating on an arm
all need the same things: a robot (the simulated task paced in real time, the servo emulator
whose physics is the simulator, or a real arm on its serial port), its cameras and object
tracker, and the safety layer every command passes through. ``RobotStack`` builds them from two
explicit descriptions:

- ``RobotOptions``: which robot, as the command line says (``--robot``, ``--port``,
  ``--emulate``, ``--env``, ``--calibration``, and what the simulated cameras do:
  ``--camera-fps``, ``--camera-latency-ms``, ``--perturb``);
- ``Needs``: what the loop's source of actions needs from that robot: a checkpoint's joints,
  rate, cameras and object state (``Needs.of_checkpoint``), a demo store's joints and rate
  (replay), or the cameras an operator records (a session in simulation).

The stack refuses a robot that does not meet the needs (``check_compatible``, one line with every
reason) before anything moves, and says how an episode begins (``begin(seed)``: the scene reset
in simulation, the safety layer re-read from the joints), whether it is over (``done``), whether it
succeeded (``success``: only a simulator can tell), and how long it may last (``max_ticks``).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envs.mapping import check_env_id, is_mapping_id
from imitation.control import SafeRobot, SafetyLimits
from imitation.errors import ConfigError
from imitation.robots.base import Robot, RobotSpec
from imitation.robots.buses import make_bus
from imitation.robots.buses.emulator import ServoEmulator
from imitation.robots.cameras import make_camera
from imitation.robots.config import load_robot_config
from imitation.robots.emulated import EMULATED_BUS_TIMEOUT_S, SimPhysics, scripted_calibration
from imitation.robots.factory import make_robot
from imitation.robots.geometry import CameraFit, camera_fits
from imitation.robots.sim import SimRobot


@dataclass(frozen=True)
class RobotOptions:
    """Which robot a loop drives, and what its simulated cameras do."""

    robot: str = "sim"
    """sim (the simulated task in real time), or an arm: so100, so101, koch, a configs/robots/*.yaml."""
    port: str | None = None
    """Serial port of a real arm; a robot of several arms: ``left=<path>,right=<path>`` (or the
    ports its config names)."""
    emulate: bool = False
    """The servo emulator on a pseudo-terminal whose physics is the simulator, instead of an arm."""
    env: str | None = None
    """The task the user names (--env): trusted, so a mapping file that imports code may run."""
    calibration: str | None = None
    """Calibration file of a real arm (default: ~/.imitation/calibration/<robot>.yaml)."""
    camera_fps: float | None = None
    camera_latency_ms: float = 0.0
    perturb: bool = False

    @property
    def simulated(self) -> bool:
        """Whether a simulator runs the scene (and can reset it and judge success)."""
        return self.robot == "sim" or self.emulate

    def check(self) -> None:
        """Refuse options no robot can honour (one line naming the flag)."""
        if self.robot != "sim" and not self.emulate and not self.port and not _ports_in_config(self.robot):
            raise ConfigError(f"--robot {self.robot} needs --port (or --emulate for the virtual arm)")
        check_sim_camera_flags(self.camera_fps, self.camera_latency_ms)
        if not self.simulated and (self.camera_fps is not None or self.camera_latency_ms > 0 or self.perturb):
            raise ConfigError(
                "--camera-fps, --camera-latency-ms and --perturb act on simulated cameras (--robot sim or "
                f"--emulate); the cameras of --robot {self.robot} have their own rate, latency and light"
            )


def _ports_in_config(robot: str) -> bool:
    """Whether ``robot``'s config names a port for each of its arms (a robot of several arms)."""
    try:
        rc = load_robot_config(robot)
    except ConfigError:
        return False
    return bool(rc.arms) and all(p.port for p in rc.arms.values())


@dataclass(frozen=True)
class Needs:
    """What a loop's source of actions needs from the robot. Empty fields ask for nothing."""

    env_id: str | None = None
    """The task the source comes from (a checkpoint's demos, a store's episodes): the simulated
    scene under --robot sim and --emulate, unless RobotOptions.env names another."""
    joint_names: tuple[str, ...] = ()
    control_hz: float | None = None
    cameras: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """``images/<name>`` -> (H, W): the frames the source reads (a simulated robot renders them)."""
    needs_env_state: bool = False
    fits: Mapping[str, CameraFit] = field(default_factory=dict)
    """How a camera of another resolution is brought to the size of ``cameras`` (a checkpoint's
    declared fit, or --camera-fit)."""
    origin: str = "the checkpoint"
    """The file these needs came from (named in errors; a task it names may not import code)."""
    lowdim: Mapping[str, int] = field(default_factory=dict)
    """``state`` / ``env_state`` -> the length the source reads (empty: not known)."""
    action_dim: int | None = None
    units: str | None = None
    """The units of the joints the source was trained on, where they are not this project's
    (radians, a [0, 1] gripper): ``lerobot`` for a store imported from a LeRobot dataset."""

    @classmethod
    def of_checkpoint(
        cls, meta: Mapping[str, Any], camera_fit: tuple[str, ...] = (), origin: str = "the checkpoint"
    ) -> Needs:
        """A checkpoint's needs (its ``robot`` meta), with ``--camera-fit`` flags applied."""
        robot = meta.get("robot") or {}
        return cls(
            env_id=robot.get("env_id"),
            joint_names=tuple(robot.get("joint_names") or ()),
            control_hz=float(robot["control_hz"]) if robot.get("control_hz") else None,
            cameras={k: (int(v[0]), int(v[1])) for k, v in (robot.get("cameras") or {}).items()},
            needs_env_state=bool(robot.get("needs_env_state")),
            fits=camera_fits(meta, camera_fit),  # refused here, before anything connects
            origin=origin,
            lowdim={k: int(v) for k, v in ((meta.get("io") or {}).get("lowdim") or {}).items()},
            action_dim=(meta.get("io") or {}).get("action_dim"),
            units=robot.get("units"),
        )


def check_compatible(needs: Needs, spec: RobotSpec, has_env_state: bool) -> None:
    """Refuse a robot that does not meet ``needs`` (one line, every reason). A camera of another
    resolution is accepted where ``needs.fits`` says how its frames are fitted."""
    if needs.units:
        raise ConfigError(
            f"{needs.origin} was trained on {needs.units} units (a dataset imported from "
            f"{needs.units}: calibrated motor values, not radians and a [0, 1] gripper); its actions "
            f"would drive robot {spec.name} to wrong positions. Train on demos recorded here, or on "
            "an imported store whose joints were converted to radians"
        )
    problems = []
    if needs.joint_names and list(needs.joint_names) != list(spec.joint_names):
        problems.append(f"joints {list(needs.joint_names)} vs the robot's {list(spec.joint_names)}")
    hz = needs.control_hz
    if hz and abs(float(hz) - float(spec.control_hz)) > 1e-6:
        problems.append(f"made at {hz:g} Hz, the robot runs at {spec.control_hz:g} Hz")
    have = {f"images/{c.name}": (c.height, c.width) for c in spec.cameras}
    for key, shape in needs.cameras.items():
        name = key.split("/", 1)[1]
        if key not in have:
            problems.append(f"camera {name!r} is missing")
        elif tuple(have[key]) != tuple(shape[:2]) and key not in needs.fits:
            problems.append(
                f"camera {name!r} gives {have[key][0]}x{have[key][1]}, trained on {shape[0]}x{shape[1]} "
                f"(to fit its frames: --camera-fit {name}=center_crop_resize, or {name}=resize)"
            )
    # The vectors' lengths: a policy of another task with the same joints reads other objects.
    gives = {"state": spec.state_dim or len(spec.joint_names), "env_state": spec.env_state_dim}
    for key, n in needs.lowdim.items():
        if key in gives and gives[key] and gives[key] != n:
            problems.append(f"it reads a {n}-long {key}, the robot gives {gives[key]}")
    if needs.action_dim and spec.joint_names and int(needs.action_dim) != len(spec.joint_names):
        problems.append(
            f"it writes {needs.action_dim} action values, the robot takes {len(spec.joint_names)}"
        )
    if needs.needs_env_state and not has_env_state:
        problems.append(
            "it needs env_state (object poses), and the robot config declares no env_state sensor"
        )
    if problems:
        raise ConfigError(f"{needs.origin} does not fit robot {spec.name}: " + "; ".join(problems))


# ------------------------------------------------------------------------------ simulated cameras
def check_sim_camera_flags(camera_fps: float | None, camera_latency_ms: float) -> None:
    """Refuse a camera rate or latency no camera has (one line naming the value)."""
    if camera_fps is not None and not camera_fps > 0:
        raise ConfigError(
            f"--camera-fps {camera_fps} must be > 0 (leave it out: a frame at every control tick)"
        )
    if not camera_latency_ms >= 0:
        raise ConfigError(f"--camera-latency-ms {camera_latency_ms} must be ≥ 0")


def sim_camera_kwargs(
    camera_fps: float | None, camera_latency_ms: float, perturb: bool, reads_images: bool, env_id: str
) -> dict[str, Any]:
    """The env options behind --camera-fps, --camera-latency-ms and --perturb (none when unused:
    the environment then renders exactly as without them). Refused, in one line, for a policy that
    reads no images (they would change nothing it sees) and for a task of a mapping file."""

    asked = [
        flag
        for flag, on in (
            ("--camera-fps", camera_fps is not None),
            ("--camera-latency-ms", camera_latency_ms > 0),
            ("--perturb", perturb),
        )
        if on
    ]
    if not asked:
        return {}
    if not reads_images:
        raise ConfigError(
            f"{' and '.join(asked)} change only camera images, and this policy reads none (a state-based "
            "policy); leave them out"
        )
    if is_mapping_id(env_id):
        raise ConfigError(
            f"{' and '.join(asked)} work on the tasks of envs/ (their cameras are simulated here); "
            f"{env_id} is a mapped gymnasium environment"
        )
    kwargs: dict[str, Any] = {}
    if camera_fps is not None:
        kwargs["camera_fps"] = float(camera_fps)
    if camera_latency_ms > 0:
        kwargs["camera_latency_ms"] = float(camera_latency_ms)
    if perturb:
        kwargs["perturb"] = True
    return kwargs


# ------------------------------------------------------------------------------ the store's schema
def store_features(spec: RobotSpec) -> dict[str, dict[str, Any]]:
    """The demo-store schema of a robot's observations and actions."""
    n = len(spec.joint_names)
    names = list(spec.joint_names)
    state: dict[str, Any] = {"shape": [n], "dtype": "float32", "kind": "state", "names": names}
    if spec.state_dim is not None:  # not the joint positions: never the action's names
        state_names = list(spec.state_names or [f"s{i}" for i in range(spec.state_dim)])
        state = {"shape": [spec.state_dim], "dtype": "float32", "kind": "state", "names": state_names}
    feats: dict[str, dict[str, Any]] = {
        "state": state,
        "action": {"shape": [n], "dtype": "float32", "kind": "action", "names": names},
    }
    if spec.env_state_dim:
        feats["env_state"] = {"shape": [spec.env_state_dim], "dtype": "float32", "kind": "state"}
    for cam in spec.cameras:
        feats[f"images/{cam.name}"] = {"shape": [cam.height, cam.width, 3], "dtype": "uint8", "kind": "image"}
    return feats


# ------------------------------------------------------------------------------ the stack
SIM_READING_MARGIN = 0.5  # how far past its limits --robot sim lets a joint read (radians; gripper units)


class RobotStack:
    """A robot, its cameras and tracker, behind the safety layer: ``robot`` (the ``SafeRobot`` every
    command goes through), ``base`` (the robot under it), and where a simulator runs the scene,
    ``sim`` (--robot sim) or ``physics`` and ``emulator`` (--emulate)."""

    def __init__(
        self,
        options: RobotOptions,
        needs: Needs,
        *,
        env_kwargs: Mapping[str, Any] | None = None,
        clock: Callable[[], float] | None = None,
        seed: int = 0,
    ) -> None:
        """``env_kwargs``: options of the simulated task (e.g. a longer time limit for a person).
        ``seed``: the emulated scene's first seed (each episode's ``begin`` sets its own).
        ``clock``: the time the emulated arm's physics steps by (default: the wall clock; a
        simulated one in tests)."""
        options.check()
        self.options, self.needs = options, needs
        self.fits = dict(needs.fits)
        self.sim: Any = None
        self._prepared: int | None = None  # the seed the emulated scene was reset to ahead (prepare)
        self.physics: Any = None
        self.emulator: Any = None
        self.emulators: list[Any] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.env_id = options.env or needs.env_id
        if self.env_id and options.simulated:
            check_env_id(self.env_id, trusted=bool(options.env), origin=needs.origin)
        self._env_kwargs = dict(env_kwargs or {})
        self._seed = seed
        if options.robot == "sim":
            base, safety, has_env_state = self._simulated()
        else:
            base, safety, has_env_state = self._arm(clock)
        check_compatible(needs, base.spec, has_env_state)
        self.base: Robot = base
        self.robot = SafeRobot(base, SafetyLimits.for_robot(base, safety), watchdog=options.robot != "sim")

    def _sim_env_kwargs(self, reads_images: bool) -> dict[str, Any]:
        """The task's options, with those of --camera-fps, --camera-latency-ms and --perturb."""
        o = self.options
        return self._env_kwargs | sim_camera_kwargs(
            o.camera_fps, o.camera_latency_ms, o.perturb, reads_images, self.env_id or ""
        )

    def _simulated(self) -> tuple[Robot, dict[str, Any], bool]:
        if not self.env_id:
            raise ConfigError(f"--robot sim needs a task: {self.needs.origin} names none; pass --env")
        cams = self.needs.cameras
        sizes = {tuple(v) for v in cams.values()}
        if len(sizes) > 1:
            raise ConfigError(
                f"the cameras asked for have different sizes {sizes}; the simulator renders one size"
            )
        self.sim = SimRobot(
            self.env_id,
            obs_mode="both" if cams else "state",
            cameras=tuple(k.split("/", 1)[1] for k in cams) or None,
            image_size=next(iter(sizes)) if sizes else None,
            **self._sim_env_kwargs(bool(cams)),
        )
        # The reading check guards against a wrong calibration or a failing sensor, which a
        # simulator has neither of; its joints can be pushed past their range by contact (a
        # gripper forced open by the part in it reads above 1), which is no reason to stop.
        return self.sim, {"reading_margin_rad": SIM_READING_MARGIN}, self.sim.spec.env_state_dim > 0

    def _arm(self, clock: Callable[[], float] | None) -> tuple[Robot, dict[str, Any], bool]:
        o = self.options
        rc = load_robot_config(o.robot)
        sim_cams = [n for n, c in rc.cameras.items() if c.get("source") == "sim"]
        sim_env_state = bool(rc.env_state and rc.env_state.get("source") == "sim")
        if (sim_cams or sim_env_state) and not o.emulate:
            raise ConfigError(
                f"{rc.path}: cameras or env_state with `source: sim` exist only under --emulate"
            )
        bus_kw: dict[str, Any] = {}
        env_source = None
        port, calibration = o.port, o.calibration
        if o.emulate:
            port, calibration, bus_kw = self._emulate(rc, sim_cams, clock)
            cameras = {n: self.physics.camera(n) for n in sim_cams}
            cameras |= {n: make_camera(n, c) for n, c in rc.cameras.items() if n not in sim_cams}
            if sim_env_state:
                env_source = self.physics.env_state
                rc.env_state = dict(rc.env_state or {}) | {"dim": self.physics.env_state_dim}
        else:
            cameras = {n: make_camera(n, c) for n, c in rc.cameras.items()}
        base = make_robot(
            rc, port, calibration=calibration, cameras=cameras, env_state_source=env_source, **bus_kw
        )
        return base, rc.safety, env_source is not None

    def _emulate(
        self, rc: Any, sim_cams: list[str], clock: Callable[[], float] | None
    ) -> tuple[str, str, dict[str, Any]]:
        """The servo emulator with the simulator as its physics, calibrated as an arm would be:
        (its port, the calibration file, the bus options)."""

        if not self.env_id:
            raise ConfigError("--emulate needs a task for its physics: pass --env")
        sizes = {
            (int(rc.cameras[n].get("height", 96)), int(rc.cameras[n].get("width", 96))) for n in sim_cams
        }
        reads_images = any(f"images/{n}" in self.needs.cameras for n in sim_cams)
        self.physics = SimPhysics(
            rc,
            self.env_id,
            seed=self._seed,
            obs_mode="both" if sim_cams else "state",
            cameras=tuple(sim_cams) or None,
            image_size=next(iter(sizes)) if sizes else None,
            env_kwargs=self._sim_env_kwargs(reads_images),
            **({"clock": clock} if clock is not None else {}),
        )
        # One emulator per bus (per arm of a robot of several), sharing one lock: the physics moves
        # every arm in one step, whichever bus asks.
        parts = {a: p.config for a, p in rc.arms.items()} if rc.arms else {None: rc}
        lock = threading.RLock()
        self.emulators = []
        for arm, part in parts.items():
            emulator = ServoEmulator(
                part.protocol, part.servos(), physics=self.physics, coupled=part.coupled(), lock=lock
            )
            self.physics.attach(arm, emulator)
            self.emulators.append(emulator)
        self.emulator = self.emulators[0]
        ports = {arm: e.start() for arm, e in zip(parts, self.emulators, strict=True)}
        where = ", ".join(f"{a}: {p}" if a else p for a, p in ports.items())
        print(f"emulated {rc.name} on {where} (physics: {self.env_id})")
        self._tmp = tempfile.TemporaryDirectory()
        calibration = Path(self._tmp.name) / rc.name
        calibration.mkdir()
        first = 0
        for arm, part in parts.items():
            with make_bus(
                part.protocol,
                ports[arm],
                part.bus_motors(),
                baudrate=part.baudrate,
                timeout_s=EMULATED_BUS_TIMEOUT_S,
            ) as bus:
                cal = scripted_calibration(bus, part, self.physics, first=first)
            cal.save(calibration / f"{arm or rc.name}.yaml")
            first += len(part.joint_names)
        self.physics.reset(self._seed)
        if not rc.arms:
            return ports[None], str(calibration / f"{rc.name}.yaml"), {"timeout_s": EMULATED_BUS_TIMEOUT_S}
        port = ",".join(f"{a}={p}" for a, p in ports.items())
        return port, str(calibration), {"timeout_s": EMULATED_BUS_TIMEOUT_S}

    # -------------------------------------------------------------- episodes
    @property
    def simulated(self) -> bool:
        """Whether a simulator runs the scene (it can be reset to a seed and judge success)."""
        return self.sim is not None or self.physics is not None

    @property
    def task(self) -> Any:
        """The simulated task's robot (``SimRobot``: its scripted expert, its env), or None."""
        return self.sim if self.sim is not None else self.physics.sim if self.physics is not None else None

    def prepare(self, seed: int) -> None:
        """Reset the emulated scene to ``seed`` now, without waiting: the emulator's thread does it
        while the loop runs on (a session calls this when its reset period begins, so that the next
        ``begin(seed)`` finds the scene ready instead of waiting a tick for it)."""
        if self.physics is not None:
            self.physics.reset(seed)
            self._prepared = seed

    def begin(self, seed: int) -> None:
        """Start an episode: the simulated scene reset to ``seed`` (unless ``prepare(seed)`` has
        done it); the safety layer re-reads the joints."""
        if self.sim is not None:
            self.sim.reset(seed)
        if self.physics is not None:
            if self._prepared != seed:
                self.physics.reset(seed)
            self._prepared = None
            self.physics.wait_ready()
        self.robot.resync()

    def done(self) -> bool:
        """Whether the simulated task has ended the episode (never, on a real arm)."""
        if self.sim is not None:
            return bool(self.sim.terminated or self.sim.truncated)
        if self.physics is not None:
            return self.physics.done
        return False

    def success(self) -> bool | None:
        """The simulator's verdict on the episode; None on a real arm (a person judges)."""
        info = (
            self.sim.info if self.sim is not None else self.physics.info if self.physics is not None else None
        )
        return None if info is None else bool(info.get("is_success", False))

    def max_ticks(self, episode_s: float | None = None) -> int:
        """Ticks an episode may last: ``episode_s``, else the task's time limit plus a second, else 30 s."""
        hz = self.robot.spec.control_hz
        if episode_s:
            return int(episode_s * hz)
        task = self.task
        limit = getattr(task.env, "time_limit_s", None) if task is not None else None
        return int((limit + 1.0) * hz) if limit else int(30 * hz)

    def close(self) -> None:
        try:
            self.robot.disconnect()
        finally:
            self._release()

    def _release(self) -> None:
        for emulator in self.emulators:
            emulator.stop()
        self.emulators = []
        self.emulator = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
