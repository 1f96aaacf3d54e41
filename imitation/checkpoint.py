"""Checkpoints: ``model.safetensors`` + ``config.yaml`` (+ ``train_state.pt`` to resume training).

A checkpoint is self-contained: the policy's config, its input/output layout and its
normalisation statistics (buffers in the weights) rebuild it without the demo store. It also
records what the policy needs from a robot (joint names and order, cameras and resolutions,
``control_hz``, the features it consumes) and the fingerprint of the data it learned from, so
that evaluation and deployment can refuse a mismatch. Nothing is unpickled: the weights are
safetensors, the config is YAML, and ``train_state.pt`` is loaded with ``weights_only=True``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from imitation.errors import ConfigError

WEIGHTS, CONFIG, TRAIN_STATE, LAST = "model.safetensors", "config.yaml", "train_state.pt", "last"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    directory: Path,
    weights: dict[str, torch.Tensor],
    meta: dict[str, Any],
    train_state: dict[str, Any] | None = None,
    mark_last: bool = True,
) -> Path:
    """Write a checkpoint directory atomically: built beside it, then renamed into place."""
    from safetensors.torch import save_file

    directory = Path(directory)
    tmp = directory.with_name(f".tmp-{directory.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp / WEIGHTS))
    (tmp / CONFIG).write_text(yaml.safe_dump(meta, sort_keys=False))
    if train_state is not None:
        torch.save(train_state, tmp / TRAIN_STATE)
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if directory.exists():
        shutil.rmtree(directory)
    os.replace(tmp, directory)
    _fsync_dir(directory.parent)
    if not mark_last:
        return directory
    # Point "last" at it (a one-line file, replaced atomically).
    last_tmp = directory.parent / f".{LAST}.tmp"
    last_tmp.write_text(directory.name + "\n")
    os.replace(last_tmp, directory.parent / LAST)
    _fsync_dir(directory.parent)
    return directory


def resolve(path: str | Path) -> Path:
    """A checkpoint directory from a checkpoint, a ``checkpoints/`` folder or a run directory."""
    p = Path(path)
    if (p / WEIGHTS).is_file():
        return p
    for folder in (p / "checkpoints", p):
        last = folder / LAST
        if last.is_file():
            ckpt = folder / last.read_text().strip()
            if (ckpt / WEIGHTS).is_file():
                return ckpt
    raise ConfigError(
        f"{p} is not a checkpoint (no {WEIGHTS}) nor a run directory with checkpoints/{LAST}; "
        "pass a run directory or one of its checkpoints/<step> folders"
    )


def read_meta(path: str | Path) -> dict[str, Any]:
    return yaml.safe_load((resolve(path) / CONFIG).read_text())


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The policy of a checkpoint, in eval mode, with its (EMA, where trained so) weights."""
    from safetensors.torch import load_file

    from imitation.config import from_dict
    from imitation.policies import policy_classes
    from imitation.policies.common import IOSpec

    ckpt = resolve(path)
    meta = yaml.safe_load((ckpt / CONFIG).read_text())
    cfg_cls, policy_cls = policy_classes(meta["policy"])
    cfg = from_dict(cfg_cls, meta["policy_config"], where=f"{ckpt / CONFIG}: policy_config")
    policy = policy_cls(cfg, IOSpec.from_dict(meta["io"]))
    state = load_file(str(ckpt / WEIGHTS))
    missing, unexpected = policy.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"{ckpt / WEIGHTS} does not fit the policy its config describes (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); was it written by another version?"
        )
    policy.meta = meta
    return policy.to(device).eval()


def load_train_state(path: str | Path) -> dict[str, Any]:
    ckpt = resolve(path)
    f = ckpt / TRAIN_STATE
    if not f.is_file():
        raise ConfigError(
            f"{ckpt} has no {TRAIN_STATE}; training can only resume from a checkpoint that has one"
        )
    return torch.load(f, map_location="cpu", weights_only=True)
