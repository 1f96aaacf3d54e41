"""What every arm task shares: arms in a scene, joint-target actions, observations, cameras.

A task subclass builds its scene (``build_scene``), places its objects (``place_objects``), and
says what ``env_state``, the reward and success are. Its arms are the model its ``ARM`` names
(``envs/arms.py``: the SO-100 unless a task says otherwise), attached under a prefix ("" for a
single arm, "left/" and "right/" for a pair); actions and ``state`` are the arms' joint vectors
one after another, each with its gripper last.

Two options every task shares make its cameras behave more like a real cell's:

- **Camera rate and latency** (``camera_fps``, ``camera_latency_ms``). A real frame is older than
  the control tick that reads it. The camera captures at c = k / fps on its own clock (k = 0, 1, …;
  the first capture at the episode's start), each capture rendered from the simulation as it is at
  the last physics step at or before c; at tick time t the images are those of the newest capture
  with c ≤ t − latency (before the latency has passed, the first capture: the scene stood still
  before the start). ``state``, ``env_state`` and ``timestamp`` stay current. Only the captures
  still to be shown are kept. Without either option the images are rendered at the tick, as before.
- **Scene perturbation** (``perturb``). Each episode moves every camera fixed in the scene (not a
  wrist camera) by up to ±2 cm along each axis and turns it by up to 3° about a random axis, and
  scales the diffuse and ambient light of every light and of the headlight by one factor in
  [0.7, 1.3]. The draws come from the episode's seed alone (never from the generator that places
  the objects), so the physics, the state and a vectorised run's episodes are those of a serial
  run; the model's own values are put back at every reset, so an episode without perturbation
  renders exactly as if there had never been one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from envs.arms import SO100, Arm
from envs.so100 import HOME_QPOS, ArmDriver
from imitation.errors import ConfigError
from imitation.robots.base import RobotSpec

CONTROL_HZ = 50
SUBSTEPS = 10  # 2 ms physics steps per 20 ms control tick
OBS_MODES = ("state", "images", "both")
# Scene perturbation (``perturb``): what a camera bracket or a lamp in a real cell may be off by.
PERTURB_CAMERA_M = 0.02  # each axis of a scene camera's position, ±
PERTURB_CAMERA_DEG = 3.0  # a scene camera's turn about a random axis, ±
PERTURB_LIGHT = (0.7, 1.3)  # factor on every light's diffuse and ambient colour
_PERTURB_STREAM = 0x70657274  # "pert": keeps these draws apart from any other use of the seed
# Capture times are k / fps and tick times j / 50 s: compared in frames, with this much slack for
# the rounding of those quotients (a millionth of a frame).
_FRAME_EPS = 1e-6


def newest_capture(tick_s: float, camera_fps: float, latency_s: float) -> int:
    """The number k of the newest capture (at k / camera_fps s) at or before ``tick_s - latency_s``;
    0 before the first one (the scene stood still before the episode started)."""
    return max(0, math.floor((tick_s - latency_s) * camera_fps + _FRAME_EPS))


def capture_step(k: int, camera_fps: float, timestep_s: float) -> int:
    """The physics step whose state capture k (at k / camera_fps s) shows: the last one at or
    before the capture time."""
    return math.floor(k / (camera_fps * timestep_s) + _FRAME_EPS)


def rot6d(mat: np.ndarray) -> np.ndarray:
    """The 6-D rotation representation (Zhou et al. 2019): the first two columns of the matrix."""
    return mat.reshape(3, 3)[:, :2].T.reshape(6)


def new_scene(
    name: str,
    arms: dict[str, tuple[list[float], list[float]]],
    max_render: tuple[int, int],
    arm: Arm = SO100,
) -> mujoco.MjSpec:
    """A table with lights and the given arms (models of ``arm``): prefix -> (base position, base
    quaternion)."""
    single = list(arms) == [""]
    # One arm is the arm file itself (its names unprefixed); several are attached under prefixes.
    spec = mujoco.MjSpec.from_file(str(arm.xml)) if single else mujoco.MjSpec()
    spec.modelname = name
    spec.option.timestep = 0.002
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.compiler.autolimits = True
    spec.visual.global_.offheight = max(max_render[0], 480)
    spec.visual.global_.offwidth = max(max_render[1], 640)
    spec.visual.headlight.diffuse = [0.35, 0.35, 0.35]
    spec.visual.headlight.ambient = [0.25, 0.25, 0.25]
    spec.visual.headlight.specular = [0.0, 0.0, 0.0]
    world = spec.worldbody
    world.add_light(pos=[0.1, 0, 1.0], dir=[0, 0, -1], diffuse=[0.45, 0.45, 0.45], specular=[0.1, 0.1, 0.1])
    world.add_light(pos=[0.6, -0.4, 0.6], dir=[-0.6, 0.4, -0.6], diffuse=[0.3, 0.3, 0.3])
    world.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[0.8, 0.8, 0.01],
        rgba=[0.75, 0.7, 0.6, 1],
        friction=[1.0, 0.01, 0.001],
    )
    if single:
        spec.body("base").pos, spec.body("base").quat = arms[""]
        return spec
    for prefix, (pos, quat) in arms.items():
        one = mujoco.MjSpec.from_file(str(arm.xml))
        world.add_frame(pos=pos, quat=quat).attach_body(one.body("base"), prefix, "")
    return spec


def finish(spec: mujoco.MjSpec) -> mujoco.MjModel:
    with warnings.catch_warnings():
        # Attaching an arm file reports that its <compiler>/<option> differ from the scene's;
        # the scene's settings (set in new_scene) are the intended ones.
        warnings.filterwarnings("ignore", message="Attach conflict")
        model = spec.compile()
    # CPU rendering: shadows and multisampling off are 10-30x faster and change little here.
    model.vis.quality.shadowsize = 0
    model.vis.quality.offsamples = 0
    return model


class ArmTaskEnv(gym.Env):
    """Base class of the arm tasks; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_HZ}
    ARM: Arm = SO100  # the arm model (envs/arms.py); every arm of the task is one of these
    ARMS: tuple[str, ...] = ("",)
    CAMERAS: tuple[str, ...] = ("top", "front")  # the first is the default ``cameras``
    RENDER_CAMERA = "front"  # what ``render()`` shows
    ENV_STATE_DIM = 0
    TURN_SYMMETRY: dict[str, dict[str, list[int]]] | None = None  # see imitation/data/augment.py
    TIME_LIMIT_S = 10.0  # default episode length; the ``time_limit_s`` argument overrides it
    HOME = HOME_QPOS  # each arm's joints at reset (a task with another ARM sets its own)
    EXPERT_SUCCESS = 0.98  # the scripted expert's promised success rate (tested over 200 seeds)

    def __init__(
        self,
        obs_mode: str = "state",
        cameras: tuple[str, ...] | None = None,
        image_size: tuple[int, int] = (96, 96),
        render_mode: str | None = None,
        render_size: tuple[int, int] = (480, 640),
        time_limit_s: float | None = None,
        camera_fps: float | None = None,
        camera_latency_ms: float = 0.0,
        perturb: bool = False,
    ) -> None:
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode {obs_mode!r} is not one of {OBS_MODES}")
        if camera_fps is not None and not camera_fps > 0:
            raise ValueError(f"camera_fps={camera_fps} must be > 0 (None: a frame at every control tick)")
        if not camera_latency_ms >= 0:
            raise ValueError(f"camera_latency_ms={camera_latency_ms} must be ≥ 0")
        if len(self.HOME) != len(self.ARM.joints):
            name, arm = type(self).__name__, self.ARM
            raise TypeError(
                f"{name}.HOME has {len(self.HOME)} joints; its ARM {arm.name} has {len(arm.joints)}"
            )
        cameras = (self.CAMERAS[0],) if cameras is None else cameras
        unknown = [c for c in cameras if c not in self.CAMERAS]
        if unknown:
            raise ConfigError(
                f"--cameras {' '.join(unknown)}: {type(self).__name__} has no such camera; choose from "
                + ", ".join(self.CAMERAS)
            )
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported; use 'rgb_array' or None")
        self.obs_mode, self.cameras = obs_mode, tuple(cameras)
        self.image_size, self.render_mode, self.render_size = (
            tuple(image_size),
            render_mode,
            tuple(render_size),
        )
        self.time_limit_s = float(self.TIME_LIMIT_S if time_limit_s is None else time_limit_s)
        self.model = self.build_model(self.render_size)
        self.data = mujoco.MjData(self.model)
        m = self.model
        one = self.ARM.spec()
        joints, self._open_m = self.ARM.joints, self.ARM.gripper_open_m
        prefixes = self.ARMS
        self.arm = RobotSpec(
            name=one.name if prefixes == ("",) else f"{len(prefixes)}x{one.name}",
            joint_names=tuple(f"{p}{n}" for p in prefixes for n in one.joint_names),
            lower=np.tile(one.lower, len(prefixes)),
            upper=np.tile(one.upper, len(prefixes)),
            control_hz=one.control_hz,
        )
        self._arm_qpos = [np.array([m.joint(f"{p}{n}").qposadr[0] for n in joints]) for p in prefixes]
        self._arm_ctrl = [np.array([m.actuator(f"{p}{n}").id for n in joints]) for p in prefixes]
        self._grip_qpos = [m.joint(f"{p}finger_left").qposadr[0] for p in prefixes]
        self._grip_ctrl = [m.actuator(f"{p}gripper").id for p in prefixes]
        self._finger_geoms = [
            {
                g
                for g in range(m.ngeom)
                if m.geom_bodyid[g] in (m.body(f"{p}finger_left").id, m.body(f"{p}finger_right").id)
            }
            for p in prefixes
        ]
        box = gym.spaces.Box(self.arm.lower.astype(np.float32), self.arm.upper.astype(np.float32))
        self.action_space = box
        spaces: dict[str, gym.Space] = {
            "state": gym.spaces.Box(self.arm.lower.astype(np.float32), self.arm.upper.astype(np.float32)),
            "env_state": gym.spaces.Box(-10.0, 10.0, (self.ENV_STATE_DIM,), np.float32),
            "timestamp": gym.spaces.Box(0.0, np.inf, (), np.float64),
        }
        if obs_mode != "state":
            for c in self.cameras:
                spaces[f"images/{c}"] = gym.spaces.Box(0, 255, (*self.image_size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        # Camera timing: off (images rendered at the tick, exactly as without it) unless asked for.
        self.camera_fps, self.camera_latency_ms = camera_fps, float(camera_latency_ms)
        self._timed = obs_mode != "state" and (camera_fps is not None or camera_latency_ms > 0)
        self._fps = float(camera_fps) if camera_fps is not None else float(one.control_hz)
        self._captures: dict[int, dict[str, np.ndarray]] = {}  # capture number -> images
        self._next_capture = 0
        self._physics_step = 0  # physics steps since the episode's start
        self.image_time_s = 0.0  # simulation time the images of the last observation were captured
        # Scene perturbation: the model's own camera and light values, put back at every reset.
        self.perturb = bool(perturb)
        self.scene_cameras = tuple(
            mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(m.ncam) if m.cam_bodyid[i] == 0
        )
        self._scene0 = {
            "cam_pos": m.cam_pos.copy(),
            "cam_quat": m.cam_quat.copy(),
            "light_diffuse": m.light_diffuse.copy(),
            "light_ambient": m.light_ambient.copy(),
            "headlight_diffuse": m.vis.headlight.diffuse.copy(),
            "headlight_ambient": m.vis.headlight.ambient.copy(),
        }
        self.perturbation: dict[str, Any] = {}  # what this episode's perturbation drew (empty: none)
        self._perturb_key: tuple[int, int] | None = None  # (last reset seed, resets since it)

    # ------------------------------------------------------------------ for subclasses
    def build_model(self, max_render: tuple[int, int]) -> mujoco.MjModel:
        raise NotImplementedError

    def place_objects(self, rng: np.random.Generator) -> None:
        raise NotImplementedError

    def env_state(self) -> np.ndarray:
        raise NotImplementedError

    def success(self) -> bool:
        raise NotImplementedError

    def reward(self, success: bool) -> float:
        return float(success)

    def extra_info(self) -> dict[str, Any]:
        """Task measures reported in ``info`` beside ``is_success`` (e.g. PushT's coverage)."""
        return {}

    def expert(self) -> Any:
        raise NotImplementedError

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._set_scene(seed)
        mujoco.mj_resetData(self.model, self.data)
        d = self.data
        for qpos, ctrl, gq, gc in zip(
            self._arm_qpos, self._arm_ctrl, self._grip_qpos, self._grip_ctrl, strict=True
        ):
            d.qpos[qpos] = self.HOME
            d.ctrl[ctrl] = self.HOME
            d.qpos[gq] = self._open_m
            d.ctrl[gc] = self._open_m
        self.place_objects(self.np_random)
        mujoco.mj_forward(self.model, d)
        if self._timed:
            self._physics_step, self._next_capture = 0, 0
            self._captures.clear()
            self._capture_due()
        return self._obs(), {"is_success": self.success(), **self.extra_info()}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        n = len(self.ARM.joints)  # each arm's joints, then its gripper
        a = np.clip(np.asarray(action, dtype=np.float64), self.arm.lower, self.arm.upper).reshape(
            len(self.ARMS), n + 1
        )
        for i, (ctrl, gc) in enumerate(zip(self._arm_ctrl, self._grip_ctrl, strict=True)):
            self.data.ctrl[ctrl] = a[i, :n]
            self.data.ctrl[gc] = a[i, n] * self._open_m
        if self._timed:
            self._step_capturing(SUBSTEPS)
        else:
            mujoco.mj_step(self.model, self.data, nstep=SUBSTEPS)
        ok = self.success()
        truncated = self.data.time >= self.time_limit_s - 1e-9
        info = {"is_success": ok, **self.extra_info()}
        return self._obs(), self.reward(ok), ok, bool(truncated and not ok), info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._render(self.RENDER_CAMERA, self.render_size)

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    # ------------------------------------------------------------------ helpers
    def _state(self) -> np.ndarray:
        q = self.data.qpos
        parts = [
            np.concatenate([q[a], [q[g] / self._open_m]])
            for a, g in zip(self._arm_qpos, self._grip_qpos, strict=True)
        ]
        return np.concatenate(parts).astype(np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        obs = {
            "state": self._state(),
            "env_state": self.env_state().astype(np.float32),
            "timestamp": np.array(self.data.time),
        }
        if self.obs_mode != "state" and self._timed:
            tick_s = self._physics_step * self.model.opt.timestep
            k = newest_capture(tick_s, self._fps, self.camera_latency_ms / 1e3)
            for old in [j for j in self._captures if j < k]:
                del self._captures[old]  # never shown again: ticks only move forward
            obs |= {key: image.copy() for key, image in self._captures[k].items()}  # shown again later
            self.image_time_s = k / self._fps
        elif self.obs_mode != "state":
            for c in self.cameras:
                obs[f"images/{c}"] = self._render(c, self.image_size)
            self.image_time_s = float(self.data.time)
        return obs

    # ------------------------------------------------------------------ camera timing
    def _capture_due(self) -> None:
        """Render every capture whose physics step is the current one."""
        dt = self.model.opt.timestep
        while capture_step(self._next_capture, self._fps, dt) <= self._physics_step:
            # Rendered right after the physics step, as the tick's images are without timing, so
            # that a capture falling on a tick shows exactly what that tick would have shown.
            self._captures[self._next_capture] = {
                f"images/{c}": self._render(c, self.image_size) for c in self.cameras
            }
            self._next_capture += 1

    def _step_capturing(self, substeps: int) -> None:
        """Advance ``substeps`` physics steps, stopping at each capture on the way to render it."""
        end = self._physics_step + substeps
        dt = self.model.opt.timestep
        while self._physics_step < end:
            n = min(end, max(self._physics_step + 1, capture_step(self._next_capture, self._fps, dt)))
            mujoco.mj_step(self.model, self.data, nstep=n - self._physics_step)
            self._physics_step = n
            self._capture_due()

    # ------------------------------------------------------------------ scene perturbation
    def _set_scene(self, seed: int | None) -> None:
        """Put the model's cameras and lights back, then perturb them for this episode if asked."""
        m, s0 = self.model, self._scene0
        m.cam_pos[:], m.cam_quat[:] = s0["cam_pos"], s0["cam_quat"]
        m.light_diffuse[:], m.light_ambient[:] = s0["light_diffuse"], s0["light_ambient"]
        m.vis.headlight.diffuse[:] = s0["headlight_diffuse"]
        m.vis.headlight.ambient[:] = s0["headlight_ambient"]
        # The draws are keyed by the episode's seed (and, after an unseeded reset, the resets since
        # that seed), never taken from np_random: objects land where they would without perturbation.
        if seed is not None:
            self._perturb_key = (int(seed), 0)
        elif self._perturb_key is not None:
            self._perturb_key = (self._perturb_key[0], self._perturb_key[1] + 1)
        self.perturbation = {}
        if not self.perturb:
            return
        if self._perturb_key is None:  # never seeded: like the objects, not reproducible
            self._perturb_key = (int(np.random.SeedSequence().entropy % 2**63), 0)
        rng = np.random.default_rng(
            [self._perturb_key[0] & (2**63 - 1), self._perturb_key[1], _PERTURB_STREAM]
        )
        cameras = {}
        for name in self.scene_cameras:
            i = m.camera(name).id
            shift = rng.uniform(-PERTURB_CAMERA_M, PERTURB_CAMERA_M, 3)
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
            angle = np.deg2rad(rng.uniform(-PERTURB_CAMERA_DEG, PERTURB_CAMERA_DEG))
            turn = np.array([np.cos(angle / 2), *(np.sin(angle / 2) * axis)])
            quat = np.zeros(4)
            mujoco.mju_mulQuat(quat, turn, s0["cam_quat"][i])  # turned about a world axis
            m.cam_pos[i] = s0["cam_pos"][i] + shift
            m.cam_quat[i] = quat
            cameras[name] = {
                "shift_m": shift.tolist(),
                "axis": axis.tolist(),
                "angle_deg": float(np.rad2deg(angle)),
            }
        light = float(rng.uniform(*PERTURB_LIGHT))
        m.light_diffuse[:] = s0["light_diffuse"] * light
        m.light_ambient[:] = s0["light_ambient"] * light
        m.vis.headlight.diffuse[:] = s0["headlight_diffuse"] * light
        m.vis.headlight.ambient[:] = s0["headlight_ambient"] * light
        self.perturbation = {"cameras": cameras, "light": light}

    def _render(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        r = self._renderers.get(size)
        if r is None:
            r = self._renderers[size] = mujoco.Renderer(self.model, *size)
        r.update_scene(self.data, camera=camera)
        return r.render().copy()

    def touching(self, geom: int, arm: int) -> bool:
        """Whether any finger of arm number ``arm`` touches ``geom``."""
        d = self.data
        for c in d.contact[: d.ncon]:
            if geom in (c.geom1, c.geom2) and ({c.geom1, c.geom2} & self._finger_geoms[arm]):
                return True
        return False


class BimanualTaskEnv(ArmTaskEnv):
    """Two SO-100 arms facing each other across the table, bases ``BASE_X`` either side of the
    origin on the x axis: ``left/`` facing +x, ``right/`` facing -x. Cameras: an overhead ``top``,
    a ``front`` view from -y, and each arm's wrist camera (``left_wrist``, ``right_wrist``)."""

    ARMS = ("left/", "right/")
    CAMERAS = ("top", "front", "left_wrist", "right_wrist")
    BASE_X = 0.21

    def two_arm_scene(self, name: str, max_render: tuple[int, int]) -> mujoco.MjSpec:
        spec = new_scene(
            name,
            {"left/": ([-self.BASE_X, 0, 0], [1, 0, 0, 0]), "right/": ([self.BASE_X, 0, 0], [0, 0, 0, 1])},
            max_render,
            self.ARM,
        )
        spec.worldbody.add_camera(name="top", pos=[0.0, 0.0, 0.6], xyaxes=[1, 0, 0, 0, 1, 0], fovy=55)
        spec.worldbody.add_camera(
            name="front", pos=[0.0, -0.5, 0.32], xyaxes=[1, 0, 0, 0, 0.5, 0.87], fovy=55
        )
        return spec

    def _render(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        # Image keys allow one '/', so the wrist cameras "left/wrist" are named "left_wrist".
        return super()._render(camera.replace("_wrist", "/wrist"), size)


class HandOver:
    """What the hand-over tasks share (mixed into an ``ArmTaskEnv`` with ``left/`` and ``right/``
    arms): a free box on the table that the right arm passes to the left. ``env_state`` is its
    position and 6-D orientation; success is the box in the air (centre above ``LIFTED_Z``, off
    the table) held by the left fingers alone; the reward is ``-|right ee - box| + 2·(touched by
    the right fingers) + 4·success``, for diagnostics."""

    OBJECT = "block"  # the body, joint and geom name
    LIFTED_Z = 0.04

    def add_box(self, world: Any, half: Sequence[float], mass: float, x: float = 0.0) -> None:
        """The box, resting on the table at (x, 0) in the model (``place_box`` sets each scene's)."""
        body = world.add_body(name=self.OBJECT, pos=[x, 0.0, half[2]])
        body.add_freejoint(name=self.OBJECT)
        body.add_geom(
            name=self.OBJECT,
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=list(half),
            mass=mass,
            rgba=[0.85, 0.15, 0.15, 1],
            friction=[1.2, 0.05, 0.001],
            condim=4,
        )
        self._box_half_z = float(half[2])

    def bind_box(self, model: mujoco.MjModel) -> mujoco.MjModel:
        """Look up the box and table in the finished model; returns the model."""
        self._box_qpos = model.joint(self.OBJECT).qposadr[0]
        self._box_body = model.body(self.OBJECT).id
        self._box_geom = model.geom(self.OBJECT).id
        self._table_geom = model.geom("table").id
        self._right_ee = model.site("right/ee").id
        return model

    def place_box(self, x: float, y: float, yaw: float) -> None:
        """Lay the box flat on the table at (x, y), turned ``yaw`` about z."""
        q = self._box_qpos
        self.data.qpos[q : q + 7] = [x, y, self._box_half_z, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]

    def env_state(self) -> np.ndarray:
        d = self.data
        return np.concatenate([d.xpos[self._box_body], rot6d(d.xmat[self._box_body])])

    def _on_table(self) -> bool:
        d = self.data
        return any({c.geom1, c.geom2} == {self._box_geom, self._table_geom} for c in d.contact[: d.ncon])

    def success(self) -> bool:
        lifted = self.data.xpos[self._box_body][2] > self.LIFTED_Z and not self._on_table()
        return bool(lifted and self.touching(self._box_geom, 0) and not self.touching(self._box_geom, 1))

    def reward(self, success: bool) -> float:
        d = self.data
        r = -np.linalg.norm(d.site_xpos[self._right_ee] - d.xpos[self._box_body])
        r += 2.0 * self.touching(self._box_geom, 1) + 4.0 * success
        return float(r)


class TwoArmExpert:
    """What the bimanual experts share: a driver per arm (of the model ``arm``), started from the
    first observation, and a phase counter with a hold count. ``driver`` holds ArmDriver options."""

    def __init__(self, model: mujoco.MjModel, arm: Arm = SO100, **driver: Any) -> None:
        self.left = ArmDriver(model, "left/", joints=arm.joints, **driver)
        self.right = ArmDriver(model, "right/", joints=arm.joints, **driver)
        self.phase, self.hold, self.started = 0, 0, False

    def begin(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Start both drivers on the first call; returns ``env_state`` as float64."""
        if not self.started:
            s = np.asarray(obs["state"], dtype=np.float64)
            n = self.left.n + 1  # one arm's joints and gripper
            self.left.start(s[:n])
            self.right.start(s[n:])
            self.started = True
        return np.asarray(obs["env_state"], dtype=np.float64)
