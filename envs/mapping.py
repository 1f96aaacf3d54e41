"""Third-party gymnasium environments, seen through a small mapping file.

A mapping (YAML, e.g. ``configs/envs/pusher.yaml``) says how an environment's observations,
actions and success map onto this project's keys, so that the recorder, the trainer and the
evaluator work on it unchanged::

    env_id: Pusher-v5                 # any gymnasium id
    imports: []                       # modules that register it (e.g. gymnasium_robotics)
    env_kwargs: {}                    # passed to gymnasium.make
    state: "[0:14]"                   # selector of the policy's proprioception
    state_names: [...]                # optional: names of the state's values (default s0, s1, ...)
    action_kind: torque               # joints, ee_delta, ee_pose, torque or other (the default)
    action_names: [...]               # optional: names of the action's values (default a0, a1, ...)
    grippers: [...]                   # optional: which of them are grippers (default: names holding "grip")
    env_state: "[14:23]"              # optional: object poses (privileged state)
    images:                           # optional cameras: name -> source and size
      front: {from: render, size: [96, 96]}
      wrist: {from: "camera:gripperPOV", size: [96, 96]}
    success: {info: reward_dist, min: -0.1}
    terminate_on_success: true
    expert: envs.third_party:PusherReach   # optional scripted policy for `imitation record`

A selector picks from the observation: ``"[a:b]"`` slices a flat (Box) observation, ``"key"``
takes one entry of a Dict observation, ``"key[a:b]"`` slices that entry. Image sources are
``render`` (``env.render()``), ``camera:<name>`` (a camera of the env's MuJoCo model, rendered here
from the env's ``MjData``: a wrist camera beside the env's own view) or a selector of an image
entry; each is resized to ``size`` (H, W). ``flip: vertical`` (or ``horizontal``, ``both``) turns a
camera's picture over, for a model whose camera frames render it upside down (Meta-World's fixed
cameras do; ``envs/metaworld.py``'s ``render()`` turns its own view over).
``success`` reads one ``info`` entry: ``{info: is_success}`` takes it as a truth value,
``min``/``max`` compare a number against a bound.

``action_kind`` says what the action's values are: only ``joints`` (joint position targets) makes
them the robot's joints in what is recorded (a store's and a checkpoint's ``joint_names`` and
``limits_rad``); any other kind is recorded as ``action_kind``, ``action_names`` and
``action_limits``, with no joints. ``state`` is named by ``state_names`` (default ``s0``, ``s1``, ...),
never by the action's names. ``grippers`` names the action's gripper values, which
``record --action-noise`` leaves alone; by default they are the values whose name holds "grip"
(``[]``: none).

Wherever a task id is expected (``--env``), the path of a mapping file works too. A mapping that
imports code (``imports``, ``expert`` or a ``module:Env`` id, outside this project's ``envs``
package) is loaded only when the user names it on the command line; one named by a checkpoint or a
demo store is refused (``check_env_id``).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import math
import re
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import yaml

import envs
from imitation.errors import ConfigError
from imitation.robots.base import RobotSpec

ACTION_KINDS = ("joints", "ee_delta", "ee_pose", "torque", "other")
_SELECTOR = re.compile(r"^(?P<key>[A-Za-z_][\w./-]*)?(?:\[(?P<a>-?\d*):(?P<b>-?\d*)\])?$")


@dataclass
class EnvMapping:
    """How a gymnasium environment maps onto ``state`` / ``env_state`` / ``images/<cam>`` / success."""

    env_id: str
    state: str
    env_state: str | None = None
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    success: dict[str, Any] = field(default_factory=lambda: {"info": "is_success"})
    terminate_on_success: bool = True
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    imports: list[str] = field(default_factory=list)
    action_kind: str = "other"
    action_names: list[str] | None = None
    grippers: list[str] | None = None
    state_names: list[str] | None = None
    expert: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or "mapping"
        for name in ("state", "env_state"):
            sel = getattr(self, name)
            if sel is not None and not _SELECTOR.match(sel):
                raise ConfigError(
                    f"{where}: {name}={sel!r} is not a selector; use '[a:b]', 'key' or 'key[a:b]'"
                )
        for cam, spec in self.images.items():
            unknown = set(spec) - {"from", "size", "flip"}
            if unknown or "size" not in spec:
                raise ConfigError(
                    f"{where}: images.{cam} needs 'size: [H, W]' and optionally 'from' (render, camera:<name> "
                    "or a selector) and 'flip'; "
                    f"got keys {sorted(spec)}"
                )
            if spec.get("flip", "none") not in FLIPS:
                raise ConfigError(
                    f"{where}: images.{cam}.flip={spec['flip']!r} must be one of {', '.join(FLIPS)}"
                )
            if len(spec["size"]) != 2 or min(spec["size"]) < 1:
                raise ConfigError(f"{where}: images.{cam}.size={spec['size']} must be [H, W] with H, W ≥ 1")
            src = spec.get("from", "render")
            if not isinstance(src, str) or not (src == "render" or _camera_name(src) or _SELECTOR.match(src)):
                raise ConfigError(
                    f"{where}: images.{cam}.from={src!r} must be render, camera:<name> (a MuJoCo camera "
                    "of the env's model) or a selector of an image entry"
                )
        if self.action_kind not in ACTION_KINDS:
            raise ConfigError(
                f"{where}: action_kind={self.action_kind!r} is not one of {', '.join(ACTION_KINDS)}; "
                "joints only for joint position targets"
            )
        ok = set(self.success) <= {"info", "min", "max"} and "info" in self.success
        if not ok:
            raise ConfigError(
                f"{where}: success={self.success} must be {{info: KEY}} with optional min/max bounds"
            )

    @classmethod
    def load(cls, path: str | Path) -> EnvMapping:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"environment mapping {path} does not exist; pass a YAML file such as configs/envs/pusher.yaml"
            )
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            where = getattr(e, "problem_mark", None)
            at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"{path}: not valid YAML{at}: {problem}; fix the file") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot be read as text ({e})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: an environment mapping is a YAML mapping of keys to values")
        names = {f.name for f in fields(cls)} - {"source"}
        unknown = set(raw) - names
        if unknown:
            raise ConfigError(
                f"{path}: unknown key(s) {sorted(unknown)}; valid keys: {', '.join(sorted(names))}"
            )
        for required in ("env_id", "state"):
            if required not in raw:
                raise ConfigError(f"{path}: missing '{required}'")
        return cls(**raw, source=str(path))


# A camera's ``flip``: cv2.flip's code for each (some models define their cameras upside down).
FLIPS: dict[str, int | None] = {"none": None, "vertical": 0, "horizontal": 1, "both": -1}


def is_mapping_id(env_id: str) -> bool:
    """Whether a task id names a mapping file rather than a registered task."""
    return env_id.endswith((".yaml", ".yml"))


def recorded_env(env_id: str) -> dict[str, Any]:
    """What a demo store records of the task it was recorded in: ``env_id`` as typed and, for a
    mapping, ``env_path``, its absolute path (a relative path holds only from where recording ran),
    and ``camera_sources``, where each of its cameras renders from (``render``, ``camera:<name>``...):
    the mapping file may change later, and a policy shown another view than its demos fails quietly
    (``camera_changes``)."""
    if not is_mapping_id(env_id):
        return {"env_id": env_id}
    out: dict[str, Any] = {"env_id": env_id, "env_path": str(Path(env_id).resolve())}
    images = EnvMapping.load(env_id).images
    if images:
        out["camera_sources"] = {cam: camera_source(spec) for cam, spec in images.items()}
    return out


def camera_source(spec: dict[str, Any]) -> str:
    """What a mapping's camera shows, as recorded: its source, and its flip where it has one."""
    flip = spec.get("flip", "none")
    return str(spec.get("from", "render")) + ("" if flip == "none" else f" flipped {flip}")


def camera_changes(env_id: str, recorded: dict[str, str], cameras: Sequence[str]) -> list[str]:
    """The cameras of ``cameras`` that the mapping ``env_id`` now renders from another source than
    the one ``recorded`` (a store's or a checkpoint's ``camera_sources``) says, each as
    ``"NAME: RECORDED -> NOW"``. Empty for a task of ``envs``, for cameras with no recorded source
    (stores written before sources were recorded) and for cameras the mapping no longer has (the
    env's own check names those)."""
    if not is_mapping_id(env_id) or not recorded:
        return []
    from imitation.data.store import source_changes

    now = {cam: camera_source(spec) for cam, spec in EnvMapping.load(env_id).images.items()}
    return source_changes(recorded, now, cameras)


def locate(
    env_id: str,
    *,
    env_path: str | None = None,
    near: Sequence[str | Path] = (),
    origin: str = "a file",
) -> str:
    """The path from here of a mapping that a checkpoint or a demo store (``origin``) names, by its
    ``env_id`` as typed when recording and its absolute ``env_path``: the path as stored, then the
    absolute path, then the stored path under each folder of ``near`` (the checkpoint, the store) and
    every folder above them. A task of ``envs`` is returned as it is. Only finds the file: whether it
    may import code is ``check_env_id``'s to say."""
    if not is_mapping_id(env_id) or Path(env_id).is_file():
        return env_id
    if env_path and Path(env_path).is_file():
        return env_path
    stored = Path(env_id)
    if not stored.is_absolute():
        for base in near:
            base = Path(base).resolve()
            for folder in (base, *base.parents):
                if (folder / stored).is_file():
                    return str(folder / stored)
    tried = [env_id, *([env_path] if env_path else [])]
    under = (
        f", nor under {', '.join(str(b) for b in near)} or a folder above"
        if near and not stored.is_absolute()
        else ""
    )
    raise ConfigError(
        f"{origin} names the mapping {env_id!r}, which is not at {' or '.join(tried)} from here{under}; "
        "pass --env PATH with the mapping's path"
    )


def select(obs: Any, selector: str) -> np.ndarray:
    """Apply a selector (see the module docstring) to one observation."""
    m = _SELECTOR.match(selector)
    assert m is not None  # checked when the mapping was loaded
    value = obs
    if m["key"]:
        if not isinstance(obs, dict) or m["key"] not in obs:
            have = sorted(obs) if isinstance(obs, dict) else "a flat array"
            raise ConfigError(
                f"selector {selector!r}: the observation has no key {m['key']!r} (it has {have})"
            )
        value = obs[m["key"]]
    value = np.asarray(value)
    if m["a"] is not None or m["b"] is not None:
        a = int(m["a"]) if m["a"] else None
        b = int(m["b"]) if m["b"] else None
        value = value[..., a:b]
    return value


def _mujoco_parts(env: Any) -> tuple[list[Any], list[tuple[Any, str, Any]]]:
    """The ``mujoco.MjModel`` objects an env holds and the ``mujoco.Renderer`` objects it built, as
    ``(owner, attribute, renderer)``: its attributes and its ``model``, ``_model`` or ``mj_model``
    (a property too), and the attributes of its plain attributes one level down (``physics.model``,
    ``sim.renderer``, an inner env's ``model``...); an ``MjData`` or a ``Renderer`` gives its model,
    a wrapper its ``ptr``. Only those three names run a property; otherwise instance attributes."""
    import mujoco

    models: dict[int, Any] = {}
    renderers: list[tuple[Any, str, Any]] = []

    def look(owner: Any, name: str, value: Any) -> bool:
        if type(value).__module__.startswith("dm_control"):
            value = getattr(value, "ptr", value)  # dm_control's wrappers hold the MuJoCo object there
        if isinstance(value, mujoco.MjModel):
            models[id(value)] = value
        elif isinstance(value, mujoco.MjData):
            models[id(value.model)] = value.model
        elif isinstance(value, mujoco.Renderer):
            models[id(value.model)] = value.model
            renderers.append((owner, name, value))
        else:
            return False
        return True

    for name in ("model", "_model", "mj_model"):
        with contextlib.suppress(Exception):  # a property that cannot answer (yet)
            look(env, name, getattr(env, name, None))
    for name, value in list(vars(env).items()):
        if look(env, name, value) or isinstance(value, (type, ModuleType, np.ndarray)):
            continue
        for inner_name, inner in list(getattr(value, "__dict__", {}).items()):
            look(value, inner_name, inner)
    return list(models.values()), renderers


def _camera_name(src: str) -> str | None:
    """The MuJoCo camera an image source ``camera:<name>`` names, else None."""
    kind, _, name = src.partition(":")
    return (name.strip() or None) if kind == "camera" else None


def _mujoco_data(env: Any) -> Any:
    """The ``mujoco.MjData`` an env steps: its ``data``, ``_data`` or ``mj_data`` (a property too), or
    such an attribute of one of its plain attributes (``physics.data``, an inner env's ``data``)."""
    import mujoco

    def data_of(owner: Any) -> Any:
        for name in ("data", "_data", "mj_data"):
            with contextlib.suppress(Exception):  # a property that cannot answer (yet)
                value = getattr(owner, name, None)
                value = (
                    getattr(value, "ptr", value) if type(value).__module__.startswith("dm_control") else value
                )
                if isinstance(value, mujoco.MjData):
                    return value
        return None

    found = data_of(env)
    for value in [] if found is not None else list(vars(env).values()):
        if not isinstance(value, (type, ModuleType, np.ndarray, int, float, str)):
            found = data_of(value)
            if found is not None:
                break
    return found


def _rebuilt(renderer: Any) -> Any:
    """A new ``mujoco.Renderer`` like ``renderer`` (same model, size, scene capacity and modes), whose
    GL context is made with its model's current settings; the old one is closed."""
    import mujoco

    new = mujoco.Renderer(renderer.model, renderer.height, renderer.width, max_geom=renderer.scene.maxgeom)
    if getattr(renderer, "_depth_rendering", False):
        new.enable_depth_rendering()
    if getattr(renderer, "_segmentation_rendering", False):
        new.enable_segmentation_rendering()
    renderer.close()
    return new


def _import_attr(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    if not attr:
        raise ConfigError(f"expert={spec!r} must be 'module:callable'")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import expert {spec!r}: {exc}") from exc


class MappedEnv(gym.Env):
    """A gymnasium environment wrapped to look like one of this project's tasks.

    Observations are a Dict of ``state``, ``env_state`` (when mapped), ``images/<cam>`` (when
    ``obs_mode`` includes images) and ``timestamp``; ``info["is_success"]`` follows the mapping's
    rule, and the episode terminates on success when the mapping says so.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        mapping: EnvMapping | str | Path,
        *,
        obs_mode: str = "state",
        cameras: tuple[str, ...] | None = None,
        image_size: tuple[int, int] | None = None,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (240, 320),
    ) -> None:
        self.mapping = m = mapping if isinstance(mapping, EnvMapping) else EnvMapping.load(mapping)
        for module in m.imports:
            importlib.import_module(module)
        if obs_mode not in ("state", "images", "both"):
            raise ConfigError(f"obs_mode={obs_mode!r} must be state, images or both")
        self.cameras = tuple(m.images) if cameras is None else tuple(cameras)
        if obs_mode == "state":
            self.cameras = ()
        missing = [c for c in self.cameras if c not in m.images]
        if missing:
            raise ConfigError(
                f"{m.source}: no camera {missing[0]!r}; the mapping has {sorted(m.images) or 'none'}"
            )
        self.sizes = {c: tuple(image_size or m.images[c]["size"]) for c in self.cameras}
        needs_render = render_mode is not None or any(
            m.images[c].get("from", "render") == "render" for c in self.cameras
        )
        kwargs = dict(m.env_kwargs)
        if needs_render:
            kwargs.setdefault("render_mode", "rgb_array")
        # Gymnasium's passive checker warns about the foreign env on every step, nothing a user of
        # the mapping can act on (a mapping may turn it back on: env_kwargs: {disable_env_checker: false}).
        kwargs.setdefault("disable_env_checker", True)
        try:
            self.env = gym.make(m.env_id, **kwargs)
        except gym.error.Error as exc:
            raise ConfigError(f"{m.source}: cannot make {m.env_id!r}: {exc}") from exc
        self.render_mode = render_mode
        self.render_size = render_size
        self._cheap_rendering()
        self._cameras: dict[str, tuple[Any, Any, str]] = {}  # camera:<name> sources: renderer, data, name
        for c in self.cameras:
            name = _camera_name(str(m.images[c].get("from", "render")))
            if name is not None:
                self._cameras[c] = self._camera_renderer(c, name)
        act = self.env.action_space
        if not isinstance(act, gym.spaces.Box) or len(act.shape) != 1:
            raise ConfigError(
                f"{m.source}: {m.env_id} has action space {act}; only flat Box actions are supported"
            )
        self.action_space = gym.spaces.Box(act.low.astype(np.float32), act.high.astype(np.float32))
        names = m.action_names or [f"a{i}" for i in range(act.shape[0])]
        if len(names) != act.shape[0]:
            raise ConfigError(f"{m.source}: {len(names)} action_names for {act.shape[0]} action dimensions")
        unknown = [g for g in m.grippers or [] if g not in names]
        if unknown:
            raise ConfigError(
                f"{m.source}: grippers {unknown} are not action names; choose from {list(names)} "
                "(name the action's values with action_names)"
            )
        dt = getattr(self.env.unwrapped, "dt", None)
        fps = self.env.metadata.get("render_fps")
        self.dt = float(dt) if dt else 1.0 / float(fps or 10)
        # Observation space from one reset's observation: shapes are what the selectors give.
        obs, _ = self.env.reset(seed=0)
        spaces: dict[str, gym.spaces.Space] = {
            "state": self._box(select(obs, m.state)),
            "timestamp": gym.spaces.Box(0.0, np.inf, (), np.float64),
        }
        n_state = spaces["state"].shape[0]
        self.state_names = tuple(m.state_names or [f"s{i}" for i in range(n_state)])
        if len(self.state_names) != n_state:
            raise ConfigError(
                f"{m.source}: {len(self.state_names)} state_names for a state of {n_state} values "
                f"({m.state}); give {n_state} names or leave state_names out"
            )
        # The action's names and bounds; they are the robot's joints only for action_kind joints.
        self.arm = RobotSpec(
            name=f"gym:{m.env_id}",
            joint_names=tuple(names),
            lower=act.low.astype(np.float64),
            upper=act.high.astype(np.float64),
            control_hz=1.0 / self.dt,
            state_dim=n_state,
            state_names=self.state_names,
            action_kind=m.action_kind,
            grippers=None if m.grippers is None else tuple(m.grippers),
        )
        if m.env_state:
            spaces["env_state"] = self._box(select(obs, m.env_state))
        for c in self.cameras:
            spaces[f"images/{c}"] = gym.spaces.Box(0, 255, (*self.sizes[c], 3), np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        self._t = 0
        _OPEN.add(self)

    def _cheap_rendering(self) -> None:
        """Render without shadows or multisampling, at the sizes asked for: MuJoCo's defaults (shadow
        maps, 4-8x multisampling; gymnasium's envs at 480 x 480) cost 10-30x what the small frames a
        policy sees need on a CPU renderer (~1 s a frame against 0.1 s).

        Gymnasium's own MuJoCo envs (``mujoco_renderer``) render at the largest size asked for. Any
        env: every ``mujoco.MjModel`` it holds (``_mujoco_parts``) loses shadows and multisampling,
        and its offscreen buffer fits the sizes asked for; a ``mujoco.Renderer`` it built already
        (its GL context made with the old settings) is rebuilt, same model and size, in its place.
        One built later (lazily, at the first ``render``) gets the new settings."""
        u = self.env.unwrapped
        sizes = [
            self.sizes[c] for c in self.cameras if self.mapping.images[c].get("from", "render") == "render"
        ]
        renderer = getattr(u, "mujoco_renderer", None)
        if renderer is not None and hasattr(renderer, "width"):
            # Large enough for every size asked for, in the camera's own aspect ratio (W / H): the
            # frames are resized to each size from there (``render`` needs only the height).
            aspect = renderer.width / renderer.height
            heights = [max(h, math.ceil(w / aspect)) for h, w in sizes]
            if self.render_mode is not None:
                heights.append(self.render_size[0])
            if heights:
                renderer.height = max(heights)
                renderer.width = round(renderer.height * aspect)
                sizes.append((renderer.height, renderer.width))
        elif self.render_mode is not None:
            sizes.append(tuple(self.render_size))
        models, renderers = _mujoco_parts(u)
        sizes += [
            self.sizes[c] for c in self.cameras if _camera_name(str(self.mapping.images[c].get("from", "")))
        ]
        for model in models:
            model.vis.quality.shadowsize = 0
            model.vis.quality.offsamples = 0
            if sizes:
                model.vis.global_.offheight = max(model.vis.global_.offheight, *(h for h, _ in sizes))
                model.vis.global_.offwidth = max(model.vis.global_.offwidth, *(w for _, w in sizes))
        for owner, name, old in renderers:
            setattr(owner, name, _rebuilt(old))

    def _camera_renderer(self, cam: str, name: str) -> tuple[Any, Any, str]:
        """A renderer of the MuJoCo camera ``name`` at camera ``cam``'s size, on the env's MjData."""
        import mujoco

        where = self.mapping.source or "mapping"
        data = _mujoco_data(self.env.unwrapped)
        if data is None:
            raise ConfigError(
                f"{where}: images.{cam} renders camera {name!r}, but {self.mapping.env_id} exposes no "
                "mujoco.MjData (as data, _data or mj_data); use 'from: render' or an image selector"
            )
        model = data.model
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        if name not in names:
            raise ConfigError(
                f"{where}: images.{cam}: the model has no camera {name!r}; its cameras are "
                f"{', '.join(n for n in names if n) or 'none'}"
            )
        h, w = self.sizes[cam]
        model.vis.global_.offheight = max(model.vis.global_.offheight, h)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, w)
        return mujoco.Renderer(model, h, w), data, name

    @staticmethod
    def _box(x: np.ndarray) -> gym.spaces.Box:
        if x.ndim != 1:
            raise ConfigError(f"a state selector must give a flat vector; it gives shape {x.shape}")
        return gym.spaces.Box(-np.inf, np.inf, x.shape, np.float32)

    def _image(self, obs: Any, cam: str) -> np.ndarray:
        src = self.mapping.images[cam].get("from", "render")
        if cam in self._cameras:
            renderer, data, name = self._cameras[cam]
            renderer.update_scene(data, camera=name)
            frame = renderer.render()
        else:
            frame = self.env.render() if src == "render" else select(obs, src)
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise ConfigError(f"camera {cam!r} ({src}) gives shape {frame.shape}; expected (H, W, 3)")
        if frame.dtype != np.uint8:
            scale = 255.0 if frame.max(initial=0) <= 1.0 else 1.0
            frame = np.clip(frame * scale, 0, 255).astype(np.uint8)
        flip = FLIPS[self.mapping.images[cam].get("flip", "none")]
        if flip is not None:
            frame = cv2.flip(frame, flip)
        h, w = self.sizes[cam]
        if frame.shape[:2] != (h, w):
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(frame)

    def _obs(self, obs: Any) -> dict[str, np.ndarray]:
        m = self.mapping
        out = {
            "state": select(obs, m.state).astype(np.float32),
            "timestamp": np.array(self._t * self.dt),
        }
        if m.env_state:
            out["env_state"] = select(obs, m.env_state).astype(np.float32)
        for c in self.cameras:
            out[f"images/{c}"] = self._image(obs, c)
        return out

    def _success(self, info: dict[str, Any]) -> bool:
        rule = self.mapping.success
        key = rule["info"]
        if key not in info:
            raise ConfigError(
                f"{self.mapping.source}: success reads info[{key!r}], which the env does not report (it reports {sorted(info)})"
            )
        value = info[key]
        if "min" not in rule and "max" not in rule:
            return bool(value)
        value = float(value)
        return ("min" not in rule or value >= rule["min"]) and ("max" not in rule or value <= rule["max"])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._t = 0
        obs, info = self.env.reset(seed=seed, options=options)
        if self.cameras or self.render_mode:
            self._refresh_kinematics()
        info = dict(info)
        info["is_success"] = False
        return self._obs(obs), info

    def _refresh_kinematics(self) -> None:
        """Recompute the positions a camera draws (bodies, sites, cameras, lights) from the state the
        reset left. An env that moves a model constant after its last ``mj_forward`` (Meta-World's
        reset places its goal site that way) otherwise shows the previous episode's scene in the first
        frame. Only derived quantities change: the next ``mj_step`` recomputes them anyway."""
        data = _mujoco_data(self.env.unwrapped)
        if data is None:
            return
        import mujoco

        mujoco.mj_kinematics(data.model, data)
        mujoco.mj_camlight(data.model, data)

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(
            np.asarray(action, dtype=self.env.action_space.dtype)
        )
        self._t += 1
        info = dict(info)
        info["is_success"] = success = self._success(info)
        if success and self.mapping.terminate_on_success:
            terminated = True
        return self._obs(obs), float(reward), bool(terminated), bool(truncated), info

    def render(self) -> np.ndarray | None:
        """The env's own frame, ``render_size[0]`` pixels high and as wide as its camera's aspect
        ratio makes it (a 480 x 640 camera at render_size (240, 320) gives 240 x 320; a square one
        240 x 240): frames are never stretched."""
        frame = self.env.render()
        if frame is None:
            return None
        frame = np.asarray(frame)
        h = self.render_size[0]
        w = max(1, round(h * frame.shape[1] / frame.shape[0]))
        if frame.shape[:2] == (h, w):
            return frame
        return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)

    @property
    def time_limit_s(self) -> float:
        steps = self.env.spec.max_episode_steps if self.env.spec else None
        return (steps or 1000) * self.dt

    def _render(self, camera: str, size: tuple[int, int]) -> np.ndarray:
        """A frame of the env's own view ``size[0]`` high, in its aspect ratio (``render``); mapped
        envs have one view."""
        self.render_size = size
        return self.render()

    def expert(self) -> Any:
        """The mapping's scripted policy (observation -> action), built for this env."""
        if not self.mapping.expert:
            raise ConfigError(
                f"{self.mapping.source} names no expert; add 'expert: module:callable' to record with --teleop scripted"
            )
        return _import_attr(self.mapping.expert)(self)

    def close(self) -> None:
        """Close the env, then every ``mujoco.Renderer`` it built and left open: one that the garbage
        collector frees at interpreter exit, after EGL is gone, prints "Exception ignored in ..."
        tracebacks. Envs still open at exit are closed then (``_close_open_envs``)."""
        self.env.close()
        for _, _, renderer in _mujoco_parts(self.env.unwrapped)[1]:
            renderer.close()
        for renderer, _, _ in getattr(self, "_cameras", {}).values():
            renderer.close()
        self._cameras = {}
        _OPEN.discard(self)


# Mapped envs not closed yet: closed at exit, before the interpreter tears EGL down.
_OPEN: weakref.WeakSet[MappedEnv] = weakref.WeakSet()


@atexit.register
def _close_open_envs() -> None:
    for env in list(_OPEN):
        with contextlib.suppress(Exception):  # exiting: one env's failure must not keep the others open
            env.close()


# This project's own task package: code the user already runs, so a mapping may name it freely.
_OWN_MODULE = re.compile(r"^envs(\.[A-Za-z_]\w*)+$")


def foreign_code(mapping: EnvMapping) -> list[str]:
    """What loading ``mapping`` would import from outside this project's ``envs`` package:
    its ``imports``, its expert's module, and the module of a gymnasium ``module:Env`` id."""
    named = [("imports", m) for m in mapping.imports]
    if mapping.expert:
        named.append(("expert", mapping.expert.partition(":")[0]))
    if ":" in mapping.env_id:
        named.append(("env_id", mapping.env_id.partition(":")[0]))
    return [f"{key}: {module}" for key, module in named if not _OWN_MODULE.match(str(module))]


def check_env_id(env_id: str, *, trusted: bool, origin: str = "") -> None:
    """Refuse, with one clear line, a task id that is neither a task of ``envs`` nor a valid
    mapping, and an untrusted one that would import code.

    ``trusted`` says the user typed the id on the command line (``--env``). An id read from a file
    (a checkpoint's config, a demo store's attributes; ``origin`` names it) must not make this
    process import code that file chose: a mapping's ``imports``, its ``expert`` and gymnasium's
    ``module:Env`` ids all import a module, so such a mapping is refused unless the user names it
    with ``--env``. Only the mapping's YAML is read before the refusal, with no side effect.
    """

    if is_mapping_id(env_id):
        mapping = EnvMapping.load(env_id)  # yaml.safe_load: no code runs
        code = [] if trusted else foreign_code(mapping)
        if code:
            where = f"{origin} names the task" if origin else "the task"
            raise ConfigError(
                f"{where} {env_id!r}, a mapping that would import code ({'; '.join(code)}); a task read "
                f"from a file never imports code: if you trust it, pass --env {env_id} on the command line"
            )
    elif env_id not in envs.ENVS:
        raise ConfigError(
            f"unknown simulated task {env_id!r}; choose one of: {', '.join(sorted(envs.ENVS))}, "
            "or pass an environment mapping file (configs/envs/*.yaml)"
        )


def make(env_id: str, **kwargs: Any) -> gym.Env:
    """A task by id: a task of ``envs`` or a mapping file's path. The id is taken as the user's
    (a caller with an id read from a file checks it first: ``check_env_id(id, trusted=False)``)."""
    check_env_id(env_id, trusted=True)
    if is_mapping_id(env_id):
        return MappedEnv(env_id, **kwargs)
    return gym.make(env_id, **kwargs)
