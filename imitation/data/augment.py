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

Only state vectors are turned; camera images are not (a turned camera view is not a rotated
image), so image observations and this augmentation do not mix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from imitation.errors import ConfigError

KINDS = ("xy", "angles")


def task_symmetry(env_id: str | None, keys: Sequence[str]) -> dict[str, dict[str, list[int]]]:
    """The turn symmetry of ``env_id`` for the features ``keys`` (observations and "action"), or a
    ConfigError saying why it cannot be used."""
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
    images = [k for k in keys if k.startswith("images/")]
    if images:
        raise ConfigError(
            f"--augment-yaw turns state vectors only, but the policy also sees {images}; "
            "use --augment-yaw 0 for image policies"
        )
    return {k: sym[k] for k in keys if k in sym}


def check_symmetry(sym: Mapping[str, Mapping[str, Sequence[int]]], dims: Mapping[str, int]) -> None:
    """Every index a symmetry names lies inside its feature (``dims``: feature -> width)."""
    for key, parts in sym.items():
        for kind, idx in parts.items():
            if kind not in KINDS:
                raise ConfigError(f"turn symmetry of {key!r}: unknown kind {kind!r} (one of {KINDS})")
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

    Features are (B, ..., D) float tensors; new tensors are returned for the features ``sym``
    names, the others are passed through."""
    out = dict(batch)
    for key, parts in sym.items():
        if key not in batch:
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
        if key not in out:
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
