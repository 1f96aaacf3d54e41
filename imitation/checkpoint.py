"""Checkpoints: ``model.safetensors`` + ``config.yaml`` (+ ``train_state.pt`` to resume training).

A checkpoint is self-contained: the policy's config, its input/output layout and its
normalisation statistics (buffers in the weights) rebuild it without the demo store. It also
records what the policy needs from a robot (joint names and order, cameras and resolutions,
``control_hz``, the features it consumes) and the fingerprint of the data it learned from, so
that evaluation and deployment can refuse a mismatch. Nothing is unpickled: the weights are
safetensors, the config is YAML, and ``train_state.pt`` is loaded with ``weights_only=True``.

``config.yaml`` holds ``policy``, ``policy_config``, ``io`` (the features the policy reads and
their shapes), ``step``, ``frame_skip``, ``dataset`` and ``robot``: ``name``, ``joint_names``,
``control_hz``, ``cameras`` (key -> [H, W, C]), ``consumes`` (the observation keys it reads: the
only ones evaluation and deployment hand it), ``needs_env_state``, ``env_id`` and, optionally,
``camera_fit`` (per camera, how frames of another size reach its input:
``{images/top: {size: [96, 96], fit: resize | center_crop_resize}}``; ``imitation.robots.geometry``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file

from imitation.config import from_dict
from imitation.errors import ConfigError
from imitation.policies import policy_classes
from imitation.policies.common import IOSpec
from imitation.policies.graphs import graphs_enabled

WEIGHTS, CONFIG, TRAIN_STATE, LAST = "model.safetensors", "config.yaml", "train_state.pt", "last"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint directory this project wrote (weights + our config.yaml)."""
    if not ((path / WEIGHTS).is_file() and (path / CONFIG).is_file()):
        return False
    try:
        meta = yaml.safe_load((path / CONFIG).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(meta, dict) and "policy" in meta


def check_destination(directory: Path, overwrite: bool) -> None:
    """Refuse a checkpoint destination whose contents writing would destroy.

    Absent or empty: fine. A checkpoint: replaced only with ``overwrite``. Anything else (a demo
    store, a run, someone's files, or a checkpoint with files of theirs added) is never replaced.
    """
    directory = Path(directory)
    if not directory.exists():
        return
    if not directory.is_dir():
        raise ConfigError(f"{directory} is a file, not a checkpoint directory; choose another path")
    entries = sorted(p.name for p in directory.iterdir())
    if not entries:
        return
    if not is_checkpoint(directory):
        shown = [e for e in entries if not e.startswith(".")] or entries
        raise ConfigError(
            f"{directory} exists and is not a checkpoint (it holds {', '.join(shown[:3])}"
            f"{', ...' if len(shown) > 3 else ''}; no {WEIGHTS} + {CONFIG}); nothing was written: "
            "choose another path, or move that directory away"
        )
    foreign = [e for e in entries if e not in (WEIGHTS, CONFIG, TRAIN_STATE)]
    if foreign:
        raise ConfigError(
            f"{directory} holds a checkpoint and also {', '.join(foreign[:3])}, which a checkpoint does "
            "not; nothing was written: move those files away or choose another path"
        )
    if not overwrite:
        raise ConfigError(
            f"{directory} already holds a checkpoint; pass --overwrite to replace it, or choose another path"
        )


def _remove_own_temporary(tmp: Path) -> None:
    """Remove a checkpoint's temporary (or set-aside) folder left by an earlier, interrupted save;
    only if it holds nothing but a checkpoint's files (a folder of that name with more is not ours)."""
    if not tmp.exists():
        return
    if not tmp.is_dir() or any(p.name not in (WEIGHTS, CONFIG, TRAIN_STATE) for p in tmp.iterdir()):
        raise ConfigError(
            f"{tmp} is in the way of writing a checkpoint and was not left by one; move it away"
        )
    shutil.rmtree(tmp)


def save_checkpoint(
    directory: Path,
    weights: dict[str, torch.Tensor],
    meta: dict[str, Any],
    train_state: dict[str, Any] | None = None,
    mark_last: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a checkpoint directory atomically: built beside it, then renamed into place.

    An existing ``directory`` is replaced only when it is a checkpoint and ``overwrite`` is set
    (``check_destination``). If writing fails (a full disk), the temporary folder is removed, what
    was there before is untouched, and the ``OSError`` is raised.
    """

    directory = Path(directory)
    check_destination(directory, overwrite)
    tmp = directory.with_name(f".tmp-{directory.name}")
    _remove_own_temporary(tmp)
    try:
        tmp.mkdir(parents=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(tmp / WEIGHTS))
        (tmp / CONFIG).write_text(yaml.safe_dump(meta, sort_keys=False))
        if train_state is not None:
            torch.save(train_state, tmp / TRAIN_STATE)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if directory.exists():
        # The old checkpoint goes aside until the new one is in place: at no moment is there none.
        aside = directory.with_name(f".old-{directory.name}")
        _remove_own_temporary(aside)
        os.replace(directory, aside)
        os.replace(tmp, directory)
        shutil.rmtree(aside)
    else:
        os.replace(tmp, directory)
    _fsync_dir(directory.parent)
    if not mark_last:
        return directory
    # Point "last" at it (a one-line file, replaced atomically).
    last_tmp = directory.parent / f".{LAST}.tmp"
    try:
        last_tmp.write_text(directory.name + "\n")
        os.replace(last_tmp, directory.parent / LAST)
    except BaseException:
        last_tmp.unlink(missing_ok=True)
        raise
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


def consumed_keys(meta: dict[str, Any]) -> tuple[str, ...]:
    """The observation keys a checkpoint's policy reads, and so the only ones it is ever handed:
    the inputs of its ``io`` (what it was built with), which ``robot.consumes`` must agree with."""
    io = meta.get("io") or {}
    keys = (*(io.get("lowdim") or {}), *(io.get("images") or {}))
    declared = (meta.get("robot") or {}).get("consumes")
    if declared is not None and set(declared) != set(keys):
        raise ConfigError(
            f"the checkpoint's robot.consumes {sorted(declared)} disagrees with the inputs its io declares "
            f"{sorted(keys)}; the checkpoint was edited or written by another version: train or import it again"
        )
    return keys


def policy_config(meta: dict[str, Any], where: str = "the checkpoint's config.yaml") -> Any:
    """The policy's config (the class its registry names) from a checkpoint's meta."""

    cfg_cls, _ = policy_classes(meta["policy"])
    return from_dict(cfg_cls, meta["policy_config"], where=f"{where}: policy_config")


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The policy of a checkpoint, in eval mode, with its (EMA, where trained so) weights; on a
    GPU its predictions replay from CUDA graphs (``IMITATION_CUDA_GRAPHS=0``: eagerly)."""

    ckpt = resolve(path)
    meta = yaml.safe_load((ckpt / CONFIG).read_text())
    cfg = policy_config(meta, where=str(ckpt / CONFIG))
    policy = policy_classes(meta["policy"])[1](cfg, IOSpec.from_dict(meta["io"]))
    state = load_file(str(ckpt / WEIGHTS))
    missing, unexpected = policy.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(
            f"{ckpt / WEIGHTS} does not fit the policy its config describes (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); was it written by another version?"
        )
    policy.meta = meta
    policy = policy.to(device).eval()
    if torch.device(device).type == "cuda" and graphs_enabled():
        policy.use_cuda_graphs()  # inference replayed from CUDA graphs (imitation/policies/graphs.py)
    return policy


def load_train_state(path: str | Path) -> dict[str, Any]:
    ckpt = resolve(path)
    f = ckpt / TRAIN_STATE
    if not f.is_file():
        raise ConfigError(
            f"{ckpt} has no {TRAIN_STATE}; training can only resume from a checkpoint that has one"
        )
    return torch.load(f, map_location="cpu", weights_only=True)
