"""Small third-party-like gymnasium environments (no extra package), a policy that always sends the
same action, and a writer of mapping files: what the tests of ``envs/mapping.py`` and of the
evaluator run foreign environments with.

Importing this module registers the environments (``fake/...``), so a mapping may name them either
directly (in this process and in forked workers) or with ``imports: [fake_gym]``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml

# A tiny MuJoCo scene with a light that casts shadows (shadows and multisampling are on by default).
SHADOW_XML = """
<mujoco>
  <visual><quality shadowsize="4096" offsamples="8"/></visual>
  <worldbody>
    <light pos="0 0 2" dir="0 0 -1" castshadow="true"/>
    <geom type="plane" size="1 1 0.1" rgba=".8 .8 .8 1"/>
    <body pos="0 0 0.2"><freejoint/><geom type="box" size=".05 .05 .05" rgba=".9 .2 .2 1"/></body>
    <camera name="front" pos="0 -1 0.6" xyaxes="1 0 0 0 0.5 1"/>
    <camera name="top" pos="0 0 1.5" xyaxes="1 0 0 0 1 0"/>
  </worldbody>
</mujoco>
"""


class Truncating(gym.Env):
    """Episodes whose length depends on the seed (``3 + seed % 4`` steps), ended by truncation, as
    Meta-World does: stepping a truncated episode again raises Meta-World's error, and so does an
    action outside the action space."""

    metadata = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.t, self.limit, self.over = 0, 0, True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t, self.limit, self.over = 0, 3 + (seed or 0) % 4, False
        # The scene follows the seed (record checks that it does).
        return np.array([0.0, (seed or 0) % 97, 0.0], np.float32), {"success": False}

    def step(self, action: np.ndarray):
        if self.over:
            raise ValueError("You must reset the env manually once truncate==True")
        if not self.action_space.contains(np.asarray(action, np.float32)):
            raise ValueError(f"action {action} outside the action space")
        self.t += 1
        self.over = self.t >= self.limit
        obs = np.array([self.t, *np.asarray(action, np.float32)], np.float32)
        return obs, 1.0, False, self.over, {"success": False}


class Shadowed(gym.Env):
    """A MuJoCo env that builds its own ``mujoco.Renderer`` at construction, as many third-party
    environments do (not gymnasium's ``mujoco_renderer``): shadows and 8x multisampling on."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    XML = SHADOW_XML

    def __init__(self, render_mode: str | None = None) -> None:
        import mujoco

        self.render_mode = render_mode
        self.model = mujoco.MjModel.from_xml_string(self.XML)
        self.data = mujoco.MjData(self.model)
        self.renderer = mujoco.Renderer(self.model, 64, 64)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (7,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.dt = 0.1

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        import mujoco

        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)
        return self.data.qpos.copy(), {"success": False}

    def step(self, action: np.ndarray):
        import mujoco

        mujoco.mj_step(self.model, self.data)
        return self.data.qpos.copy(), 0.0, False, False, {"success": False}

    def render(self) -> np.ndarray:
        self.renderer.update_scene(self.data, camera="front")
        return self.renderer.render()

    def close(self) -> None:
        self.renderer.close()


class Adapter(gym.Env):
    """Another library's env held as an attribute, its model behind a property (as an adapter of
    Meta-World does): what it built is one level down."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None) -> None:
        self.env = Shadowed(render_mode)
        self.observation_space, self.action_space = self.env.observation_space, self.env.action_space
        self.dt = self.env.dt

    @property
    def model(self) -> Any:
        return self.env.model

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return self.env.reset(seed=seed)

    def step(self, action: np.ndarray):
        return self.env.step(action)

    def render(self) -> np.ndarray:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


class MovingGoal(Shadowed):
    """Places a goal marker (a site) from the seed after its last ``mj_forward``, as Meta-World's
    reset does: the derived positions a camera draws still show the previous episode's goal."""

    XML = SHADOW_XML.replace(
        '<camera name="front"',
        '<site name="goal" pos="0 0 0.5" size="0.08" rgba="0 .9 0 1"/>\n    <camera name="front"',
    )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        x = -0.4 if (seed or 0) % 2 else 0.4
        self.model.site("goal").pos = [x, 0.0, 0.5]
        return obs, info


class Wide(gym.Env):
    """Renders 60 x 120 frames (1:2) at dt 0.1 s: a 10 Hz task whose camera is twice as wide as high."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.dt = 0.1
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 4).astype(np.float32), {"success": False}  # the seed's scene

    def step(self, action: np.ndarray):
        self.t += 1
        return np.full(4, self.t, np.float32), 0.0, False, self.t >= 5, {"success": False}

    def render(self) -> np.ndarray:
        frame = np.zeros((60, 120, 3), np.uint8)
        frame[:, : 12 * (self.t + 1)] = 200
        return frame


class Noisy(Wide):
    """A library that warns on every step (as foreign code does) and returns float64 observations
    from a float32 space (which gymnasium's passive checker warns about)."""

    def step(self, action: np.ndarray):
        warnings.warn("fake_gym: a foreign library's warning", UserWarning, stacklevel=2)
        obs, *rest = super().step(action)
        return obs.astype(np.float64), *rest


for _name, _cls, _steps in [
    ("fake/Truncating-v0", Truncating, None),
    ("fake/Shadowed-v0", Shadowed, 5),
    ("fake/Adapter-v0", Adapter, 5),
    ("fake/MovingGoal-v0", MovingGoal, 5),
    ("fake/Wide-v0", Wide, None),
    ("fake/Noisy-v0", Noisy, None),
]:
    if _name not in gym.registry:
        gym.register(_name, entry_point=_cls, max_episode_steps=_steps)


def overreaching(env: Any):  # noqa: ANN201
    """A scripted "expert" (``expert: fake_gym:overreaching``) that asks for 1.5 in every dimension
    of a [-1, 1] action space."""
    return lambda obs: np.full(env.action_space.shape, 1.5, np.float32)


def write_mapping(folder: Path, env_id: str, name: str = "fake.yaml", **over: Any) -> Path:
    """A mapping file of ``env_id`` in ``folder``: the whole observation is ``state``, success is
    ``info["success"]``."""
    raw = {"env_id": env_id, "state": "[0:]", "success": {"info": "success"}} | over
    path = Path(folder) / name
    path.write_text(yaml.safe_dump(raw))
    return path


def fake_checkpoint(folder: Path, env_id: str, state_dim: int, action_dim: int) -> Path:
    """A checkpoint folder with what ``evaluate`` reads before the policy (which the test passes)."""
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"")
    meta = {
        "policy": "act",
        "io": {"lowdim": {"state": state_dim}, "images": {}, "action_dim": action_dim},
        "robot": {"env_id": env_id},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(meta))
    return folder


class ConstantPolicy(torch.nn.Module):
    """Sends ``value`` in every action dimension, for every environment of the batch."""

    def __init__(self, action_dim: int, value: float = 0.0, frame_skip: int = 1) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # where the evaluator finds the device
        self.cfg = SimpleNamespace(obs_keys=("state",), frame_skip=frame_skip)
        self.action_dim, self.value = action_dim, value

    def reset(self, mask: torch.Tensor | None = None, seeds: list[int] | None = None) -> None:
        pass

    def select_action(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.full((obs["state"].shape[0], self.action_dim), self.value)
