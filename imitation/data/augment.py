"""Symmetry augmentation of state-based training samples: turning the scene about the arm's base.

A one-arm table task looks the same after the whole scene (arm, objects, targets) is turned about
the vertical axis of the arm's base: the physics, the task and a good demonstration all turn with
it. Its observations and actions then change in a known way: the base joint's angle and every
bearing gain the turn, every horizontal (x, y) pair rotates, and everything else (heights,
distances, the other joints, yaw relative to a bearing) stays. A task that has this symmetry
declares which entries are which in ``TURN_SYMMETRY`` (see ``envs/pick_place.py``)::

    {"state": {"angles": [0]}, "action": {"angles": [0]},
     "env_state": {"xy": [0, 3, 6, 9], "angles": [12, 15]}}

``"xy": [i]`` means entries i and i+1 are x and y about the base axis (a position, or a direction
such as a column of a rotation matrix); ``"angles"`` are turned by adding the angle. Training with
``--augment-yaw a`` turns each sample by its own angle drawn uniformly from [-a, a]: from 50 demos
the policy sees the task at every bearing, not at 50 of them, and learns that its base joint
follows the object — the relation it otherwise has to interpolate between demos.

Camera images turn too, where a picture allows it. A camera fixed to the world and looking
straight down sees the turned scene as its image turned about the pixel where the base axis meets
the table (exact for everything at table height, where the objects are; parts of the arm high above
the table land a few pixels off, which the policy also sees in ``state``). A camera carried by
the arm (a wrist camera) turns with the scene, so its image does not change. Any other camera
(an oblique front view) cannot be turned as a picture, and training refuses it with this
augmentation. ``image_turns`` derives all of this from the task's MuJoCo model.

The simulator (mujoco, envs) and torch are imported inside the functions that need them: the
data layer does not load them to read a store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from imitation.errors import ConfigError

KINDS = ("xy", "angles", "image")


def task_symmetry(
    env_id: str | None, keys: Sequence[str], image_hw: Mapping[str, tuple[int, int]] | None = None
) -> dict[str, dict[str, Any]]:
    """The turn symmetry of ``env_id`` for the features ``keys`` (observations and "action"), or a
    ConfigError saying why it cannot be used. A camera key gets ``{"image": (u, v, sign)}`` (its
    image turns about pixel (u, v); ``image_hw`` gives each camera's size) or ``{"image": None}``
    (it does not change)."""
    if not env_id:
        raise ConfigError(
            "--augment-yaw needs demos recorded in a simulated task that declares its turn symmetry; "
            "this store names no task (use --augment-yaw 0)"
        )
    import gymnasium as gym

    import envs

    # Only this project's own tasks declare a symmetry; a task id read from the store is never
    # looked up in gymnasium's registry, which would import the module a "module:Env" id names.
    cls = gym.spec(env_id).entry_point if env_id in envs.ENVS else None
    if isinstance(cls, str):
        import importlib

        module, _, name = cls.partition(":")
        cls = getattr(importlib.import_module(module), name)
    sym = getattr(cls, "TURN_SYMMETRY", None)
    if not sym:
        raise ConfigError(
            f"{env_id} does not declare a turn symmetry (TURN_SYMMETRY), so --augment-yaw cannot be "
            "used with it; use --augment-yaw 0"
        )
    out: dict[str, dict[str, Any]] = {k: dict(sym[k]) for k in keys if k in sym}
    cameras = [k for k in keys if k.startswith("images/")]
    if cameras:
        for key, how in image_turns(env_id, cameras, image_hw or {}).items():
            out[key] = {"image": how}
    return out


def image_turns(
    env_id: str, cameras: Sequence[str], image_hw: Mapping[str, tuple[int, int]]
) -> dict[str, tuple[float, float, float] | None]:
    """How each camera's image turns with the scene: (u, v, sign) for a world-fixed camera looking
    down (turn by ``sign * angle`` about pixel (u, v), continuous pixel coordinates, u across), None
    for a camera the arm carries (the image stays). A ConfigError for any other camera."""
    import mujoco

    from envs.mapping import make

    env = make(env_id, obs_mode="state")
    try:
        env.reset(seed=0)
        model, data = env.unwrapped.model, env.unwrapped.data
        mujoco.mj_forward(model, data)
        pan = int(np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)[0])  # the base joint
        anchor, axis = data.xanchor[pan].copy(), data.xaxis[pan].copy()
        base = anchor - axis * (anchor[2] / axis[2])  # where the base axis meets the table (z = 0)
        out: dict[str, tuple[float, float, float] | None] = {}
        for key in cameras:
            name = key.removeprefix("images/")
            cam = model.camera(name.replace("_wrist", "/wrist")).id
            if model.cam_bodyid[cam] != 0:
                out[key] = None  # carried by the arm: it turns with the scene
                continue
            rot = data.cam_xmat[cam].reshape(3, 3)  # columns: the camera's x, y, z in the world
            if rot[2, 2] < 0.98:
                raise ConfigError(
                    f"--augment-yaw turns images of cameras that look straight down or ride on the arm; "
                    f"{key} of {env_id} looks obliquely, so its view does not turn as a picture: train "
                    "without it or use --augment-yaw 0"
                )
            h, w = image_hw[key]
            view = (data.cam_xpos[cam].copy(), rot, np.radians(model.cam_fovy[cam]), h, w)
            c = _pixel(base, *view)
            r = np.array([0.2, 0.0, 0.0])
            turned = np.array([0.2 * np.cos(0.1), 0.2 * np.sin(0.1), 0.0])
            a0, a1 = (_pixel(base + p, *view) - c for p in (r, turned))
            sign = float(np.sign(np.arctan2(a1[1], a1[0]) - np.arctan2(a0[1], a0[0])))
            out[key] = (float(c[0]), float(c[1]), sign)
        return out
    finally:
        env.close()


def _pixel(point: np.ndarray, pos: np.ndarray, rot: np.ndarray, fovy: float, h: int, w: int) -> np.ndarray:
    """Where a MuJoCo camera (at ``pos``, axes the columns of ``rot``, vertical field ``fovy``)
    sees a world point, in continuous pixel coordinates (u across, v down) of an h x w image."""
    f = (h / 2) / np.tan(fovy / 2)
    d = rot.T @ (point - pos)  # the camera's frame: it looks along -z, y is up
    return np.array([w / 2 + f * d[0] / -d[2], h / 2 - f * d[1] / -d[2]])


def turn_images(
    images: torch.Tensor, centre: tuple[float, float, float], angle: torch.Tensor
) -> torch.Tensor:
    """uint8 images (B, ..., H, W, C) turned by ``sign * angle[b]`` about pixel (u, v), edges
    extended; the same code on CPU and GPU."""
    import torch.nn.functional as F

    u, v, sign = centre
    b, h, w, c = images.shape[0], images.shape[-3], images.shape[-2], images.shape[-1]
    x = images.reshape(b, -1, h, w, c).movedim(-1, 2).float()  # (B, T, C, H, W)
    t = x.shape[1]
    phi = (sign * angle).to(x.device, torch.float32).repeat_interleave(t)  # (B*T,)
    cos, sin = torch.cos(phi), torch.sin(phi)
    # An output pixel q samples the input at c + R(-phi) (q - c); in grid_sample's [-1, 1]
    # coordinates (align_corners=False) a pixel coordinate p is 2 p / size - 1 on each axis.
    sx, sy = w / 2, h / 2
    theta = torch.zeros(b * t, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin * sy / sx
    theta[:, 1, 0], theta[:, 1, 1] = -sin * sx / sy, cos
    cu, cv = u / sx - 1, v / sy - 1
    theta[:, 0, 2] = cu - (cos * cu + sin * sy / sx * cv)
    theta[:, 1, 2] = cv - (-sin * sx / sy * cu + cos * cv)
    flat = x.reshape(b * t, c, h, w)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return (
        out.round().clamp(0, 255).to(torch.uint8).reshape(b, t, c, h, w).movedim(2, -1).reshape(images.shape)
    )


def check_symmetry(sym: Mapping[str, Mapping[str, Sequence[int]]], dims: Mapping[str, int]) -> None:
    """Every index a symmetry names lies inside its feature (``dims``: feature -> width)."""
    for key, parts in sym.items():
        for kind, idx in parts.items():
            if kind not in KINDS:
                raise ConfigError(f"turn symmetry of {key!r}: unknown kind {kind!r} (one of {KINDS})")
            if kind == "image":
                continue
            top = max((i + (kind == "xy") for i in idx), default=-1)
            if key in dims and top >= dims[key]:
                raise ConfigError(
                    f"turn symmetry of {key!r} names entry {top}, but the feature has {dims[key]}; "
                    "were the demos recorded with another version of the task?"
                )


def turn(
    batch: dict[str, torch.Tensor], sym: Mapping[str, Mapping[str, Sequence[int]]], angle: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The batch with sample b's scene turned by ``angle[b]`` (rad) about the base axis.

    Features are (B, ..., D) float tensors, images (B, ..., H, W, C) uint8; new tensors are
    returned for the features ``sym`` turns, the others are passed through."""
    out = dict(batch)
    for key, parts in sym.items():
        if key not in batch:
            continue
        if "image" in parts:
            if parts["image"] is not None:
                out[key] = turn_images(batch[key], parts["image"], angle)
            continue
        x = batch[key].clone()
        a = angle.to(x.device, x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        cos, sin = torch.cos(a)[..., 0], torch.sin(a)[..., 0]
        for i in parts.get("xy", ()):
            px, py = batch[key][..., i], batch[key][..., i + 1]
            x[..., i] = cos * px - sin * py
            x[..., i + 1] = sin * px + cos * py
        for i in parts.get("angles", ()):
            x[..., i] = batch[key][..., i] + a[..., 0]
        out[key] = x
    return out


def widen_stats(
    stats: Mapping[str, Mapping[str, object]],
    sym: Mapping[str, Mapping[str, Sequence[int]]],
    max_angle: float,
) -> dict[str, dict[str, object]]:
    """Normalisation statistics that cover the turned samples too: an angle's range grows by
    ``max_angle`` each way; an x-y pair's range becomes that of its min/max box turned through
    [-max_angle, max_angle] (a superset of where its turned points can lie). Means and standard
    deviations stay (turns of at most a few tenths of a radian move them little), so min-max
    normalisation (Diffusion Policy) keeps turned actions inside [-1, 1]."""
    out = {k: dict(v) for k, v in stats.items()}
    turns = np.linspace(-max_angle, max_angle, 33)
    for key, parts in sym.items():
        if key not in out or "image" in parts:
            continue
        lo = np.array(out[key]["min"], dtype=np.float64).reshape(-1)
        hi = np.array(out[key]["max"], dtype=np.float64).reshape(-1)
        for i in parts.get("angles", ()):
            lo[i], hi[i] = lo[i] - max_angle, hi[i] + max_angle
        for i in parts.get("xy", ()):
            corners = np.array([[x, y] for x in (lo[i], hi[i]) for y in (lo[i + 1], hi[i + 1])])
            c, s = np.cos(turns)[:, None], np.sin(turns)[:, None]
            xs = c * corners[:, 0] - s * corners[:, 1]
            ys = s * corners[:, 0] + c * corners[:, 1]
            lo[i], hi[i], lo[i + 1], hi[i + 1] = xs.min(), xs.max(), ys.min(), ys.max()
        out[key]["min"], out[key]["max"] = lo.tolist(), hi.tolist()
    return out
