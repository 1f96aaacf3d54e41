"""What every arm task shares: arms in a scene, joint-target actions, observations, cameras.

A task subclass builds its scene (``build_scene``), places its objects (``place_objects``), and
says what ``env_state``, the reward and success are. Arms are SO-100 models attached under a
prefix ("" for a single arm, "left/" and "right/" for a pair); actions and ``state`` are the
arms' joint vectors one after another, each with its gripper last.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from envs.so100 import ARM_JOINTS, ARM_XML, GRIPPER_OPEN_M, HOME_QPOS, ArmDriver, load_arm_spec
from imitation.robots.base import RobotSpec

CONTROL_HZ = 50
SUBSTEPS = 10  # 2 ms physics steps per 20 ms control tick
OBS_MODES = ("state", "images", "both")


def rot6d(mat: np.ndarray) -> np.ndarray:
    """The 6-D rotation representation (Zhou et al. 2019): the first two columns of the matrix."""
    return mat.reshape(3, 3)[:, :2].T.reshape(6)


def new_scene(
    name: str, arms: dict[str, tuple[list[float], list[float]]], max_render: tuple[int, int]
) -> mujoco.MjSpec:
    """A table with lights and the given arms: prefix -> (base position, base quaternion)."""
    single = list(arms) == [""]
    # One arm is the arm file itself (its names unprefixed); several are attached under prefixes.
    spec = mujoco.MjSpec.from_file(str(ARM_XML)) if single else mujoco.MjSpec()
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
        arm = mujoco.MjSpec.from_file(str(ARM_XML))
        world.add_frame(pos=pos, quat=quat).attach_body(arm.body("base"), prefix, "")
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
    ARMS: tuple[str, ...] = ("",)
    CAMERAS: tuple[str, ...] = ("top", "front")
    ENV_STATE_DIM = 0
    TURN_SYMMETRY: dict[str, dict[str, list[int]]] | None = None  # see imitation/data/augment.py
    TIME_LIMIT_S = 10.0  # default episode length; the ``time_limit_s`` argument overrides it
    HOME = HOME_QPOS  # each arm's joints at reset
    EXPERT_SUCCESS = 0.98  # the scripted expert's promised success rate (tested over 200 seeds)

    def __init__(
        self,
        obs_mode: str = "state",
        cameras: tuple[str, ...] = ("top",),
        image_size: tuple[int, int] = (96, 96),
        render_mode: str | None = None,
        render_size: tuple[int, int] = (480, 640),
        time_limit_s: float | None = None,
    ) -> None:
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode {obs_mode!r} is not one of {OBS_MODES}")
        unknown = [c for c in cameras if c not in self.CAMERAS]
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; choose from {self.CAMERAS}")
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
        one = load_arm_spec()
        prefixes = self.ARMS
        self.arm = RobotSpec(
            name=one.name if prefixes == ("",) else f"{len(prefixes)}x{one.name}",
            joint_names=tuple(f"{p}{n}" for p in prefixes for n in one.joint_names),
            lower=np.tile(one.lower, len(prefixes)),
            upper=np.tile(one.upper, len(prefixes)),
            control_hz=one.control_hz,
        )
        self._arm_qpos = [np.array([m.joint(f"{p}{n}").qposadr[0] for n in ARM_JOINTS]) for p in prefixes]
        self._arm_ctrl = [np.array([m.actuator(f"{p}{n}").id for n in ARM_JOINTS]) for p in prefixes]
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
        mujoco.mj_resetData(self.model, self.data)
        d = self.data
        for qpos, ctrl, gq, gc in zip(
            self._arm_qpos, self._arm_ctrl, self._grip_qpos, self._grip_ctrl, strict=True
        ):
            d.qpos[qpos] = self.HOME
            d.ctrl[ctrl] = self.HOME
            d.qpos[gq] = GRIPPER_OPEN_M
            d.ctrl[gc] = GRIPPER_OPEN_M
        self.place_objects(self.np_random)
        mujoco.mj_forward(self.model, d)
        return self._obs(), {"is_success": self.success(), **self.extra_info()}

    def step(self, action: np.ndarray) -> tuple[dict, float, bool, bool, dict]:
        a = np.clip(np.asarray(action, dtype=np.float64), self.arm.lower, self.arm.upper).reshape(
            len(self.ARMS), 6
        )
        for i, (ctrl, gc) in enumerate(zip(self._arm_ctrl, self._grip_ctrl, strict=True)):
            self.data.ctrl[ctrl] = a[i, :5]
            self.data.ctrl[gc] = a[i, 5] * GRIPPER_OPEN_M
        mujoco.mj_step(self.model, self.data, nstep=SUBSTEPS)
        ok = self.success()
        truncated = self.data.time >= self.time_limit_s - 1e-9
        info = {"is_success": ok, **self.extra_info()}
        return self._obs(), self.reward(ok), ok, bool(truncated and not ok), info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self._render("front", self.render_size)

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    # ------------------------------------------------------------------ helpers
    def _state(self) -> np.ndarray:
        q = self.data.qpos
        parts = [
            np.concatenate([q[a], [q[g] / GRIPPER_OPEN_M]])
            for a, g in zip(self._arm_qpos, self._grip_qpos, strict=True)
        ]
        return np.concatenate(parts).astype(np.float32)

    def _obs(self) -> dict[str, np.ndarray]:
        obs = {
            "state": self._state(),
            "env_state": self.env_state().astype(np.float32),
            "timestamp": np.array(self.data.time),
        }
        if self.obs_mode != "state":
            for c in self.cameras:
                obs[f"images/{c}"] = self._render(c, self.image_size)
        return obs

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
        )
        spec.worldbody.add_camera(name="top", pos=[0.0, 0.0, 0.6], xyaxes=[1, 0, 0, 0, 1, 0], fovy=55)
        spec.worldbody.add_camera(
            name="front", pos=[0.0, -0.5, 0.32], xyaxes=[1, 0, 0, 0, 0.5, 0.87], fovy=55
        )
        return spec

    def _render(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        # Image keys allow one '/', so the wrist cameras "left/wrist" are named "left_wrist".
        return super()._render(camera.replace("_wrist", "/wrist"), size)


class TwoArmExpert:
    """What the bimanual experts share: a driver per arm, started from the first observation, and
    a phase counter with a hold count."""

    def __init__(self, model: mujoco.MjModel) -> None:
        self.left, self.right = ArmDriver(model, "left/"), ArmDriver(model, "right/")
        self.phase, self.hold, self.started = 0, 0, False

    def begin(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """Start both drivers on the first call; returns ``env_state`` as float64."""
        if not self.started:
            s = np.asarray(obs["state"], dtype=np.float64)
            self.left.start(s[:6])
            self.right.start(s[6:])
            self.started = True
        return np.asarray(obs["env_state"], dtype=np.float64)
