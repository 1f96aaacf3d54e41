"""``imitation import-checkpoint --from lerobot <dir> [--out DIR] [--overwrite]``: bring a trained model over.

Reads a LeRobot 0.4 policy directory (``config.json``, ``model.safetensors`` and the
normaliser statistics its pre/post-processors saved) for ACT or Diffusion Policy, and writes the
same network as one of our checkpoints. Weights are renamed, nothing is retrained: given the same
inputs (and, for diffusion, the same noise) the imported policy predicts what LeRobot's predicts.
LeRobot's normalisation (its statistics, with its small epsilon) becomes the policy's own
normalisation buffers, images included.

Feature names map as ``observation.state`` -> ``state``, ``observation.environment_state`` ->
``env_state`` and ``observation.images.<cam>`` -> ``images/<cam>``.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from imitation import checkpoint
from imitation.config import from_dict, to_dict
from imitation.errors import ConfigError, ImitationError
from imitation.paths import inside
from imitation.policies import policy_classes
from imitation.policies.common import IOSpec

SOURCES = ("lerobot",)


def _key(lerobot_name: str) -> str:
    if lerobot_name == "observation.state":
        return "state"
    if lerobot_name == "observation.environment_state":
        return "env_state"
    if lerobot_name.startswith("observation.images."):
        return "images/" + lerobot_name.removeprefix("observation.images.")
    if lerobot_name == "action":
        return "action"
    raise ConfigError(
        f"LeRobot feature {lerobot_name!r} has no counterpart here (state, env_state, images, action)"
    )


def _read_stats(src: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, str], float]:
    """Statistics, normalisation mode per feature type, and epsilon from the saved processors."""

    stats: dict[str, dict[str, torch.Tensor]] = {}
    norm_map: dict[str, str] = {}
    eps = 1e-8
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        f = src / name
        if not f.is_file():
            continue
        f = inside(src, name, source=src)  # a symlink out of the directory is refused too
        for step in json.loads(f.read_text()).get("steps", []):
            if step.get("registry_name") not in ("normalizer_processor", "unnormalizer_processor"):
                continue
            norm_map.update(step["config"].get("norm_map", {}))
            eps = float(step["config"].get("eps", eps))
            if step.get("state_file") is not None:
                # The processor file is foreign data: the statistics it names must be inside src.
                stats_path = inside(src, step["state_file"], source=f)
                if not stats_path.is_file():
                    raise ConfigError(
                        f"{f}: names the statistics file {step['state_file']!r}, which does not exist in "
                        f"{src}; copy the whole directory LeRobot saved"
                    )
                for flat, tensor in load_file(str(stats_path)).items():
                    feature, stat = flat.rsplit(".", 1)
                    stats.setdefault(feature, {})[stat] = tensor.float()
    if not stats:
        raise ConfigError(
            f"{src} has no normaliser statistics (policy_preprocessor.json and its .safetensors); "
            "import the directory LeRobot's training saved (…/checkpoints/<step>/pretrained_model)"
        )
    return stats, norm_map, eps


def _affine(mode: str, s: dict[str, torch.Tensor], eps: float, feature: str) -> tuple[torch.Tensor, ...]:
    """(scale, offset, inv_scale, inv_offset) reproducing LeRobot's normaliser for one feature."""
    if mode == "IDENTITY":
        return None, None, None, None  # the defaults: no change
    if mode == "MEAN_STD":
        mean, std = s["mean"].reshape(-1), s["std"].reshape(-1)
        denom = std + eps
        return 1 / denom, -mean / denom, std, mean
    if mode == "MIN_MAX":
        lo, hi = s["min"].reshape(-1), s["max"].reshape(-1)
        denom = torch.where(hi - lo == 0, torch.tensor(eps), hi - lo)
        return 2 / denom, -2 * lo / denom - 1, denom / 2, denom / 2 + lo
    raise ConfigError(
        f"LeRobot normalisation {mode!r} of {feature!r} is not supported (MEAN_STD, MIN_MAX, IDENTITY)"
    )


def _require(cfg: dict[str, Any], key: str, allowed: Sequence[Any], what: str) -> None:
    if cfg.get(key, allowed[0]) not in allowed:
        raise ConfigError(
            f"this LeRobot {what} uses {key}={cfg[key]!r}; only {list(allowed)} can be imported"
        )


# ------------------------------------------------------------------------------ ACT
def _act_config(cfg: dict[str, Any], obs_keys: tuple[str, ...]) -> dict[str, Any]:
    _require(cfg, "vision_backbone", ["resnet18"], "ACT")
    _require(cfg, "replace_final_stride_with_dilation", [False, 0], "ACT")
    _require(cfg, "feedforward_activation", ["relu"], "ACT")
    _require(cfg, "n_obs_steps", [1], "ACT")
    return {
        "obs_keys": obs_keys,
        "chunk_size": cfg["chunk_size"],
        "n_action_steps": cfg["n_action_steps"],
        "temporal_ensemble_coeff": cfg.get("temporal_ensemble_coeff"),
        "dim_model": cfg["dim_model"],
        "n_heads": cfg["n_heads"],
        "dim_feedforward": cfg["dim_feedforward"],
        "n_encoder_layers": cfg["n_encoder_layers"],
        "n_decoder_layers": cfg["n_decoder_layers"],
        "n_vae_encoder_layers": cfg["n_vae_encoder_layers"],
        "latent_dim": cfg["latent_dim"],
        "use_vae": cfg["use_vae"],
        "dropout": cfg["dropout"],
        "pre_norm": cfg["pre_norm"],
        "kl_weight": cfg["kl_weight"],
        "vision_width": 64,
        "vision_norm": "frozen_bn",
        "shared_encoder": True,
        "lr": cfg.get("optimizer_lr", 1e-5),
        "lr_backbone": cfg.get("optimizer_lr_backbone", 1e-5),
        "weight_decay": cfg.get("optimizer_weight_decay", 1e-4),
    }


ACT_RENAMES = [
    (r"^model\.vae_encoder\.layers\.", "model.vae_layers."),
    (r"^model\.vae_encoder_cls_embed\.", "model.vae_cls."),
    (r"^model\.vae_encoder_robot_state_input_proj\.", "model.vae_state_proj."),
    (r"^model\.vae_encoder_action_input_proj\.", "model.vae_action_proj."),
    (r"^model\.vae_encoder_latent_output_proj\.", "model.vae_out."),
    (r"^model\.backbone\.", "model.backbones.0."),
    (r"^model\.encoder\.layers\.", "model.encoder_layers."),
    (r"^model\.encoder\.norm\.", "model.encoder_norm."),
    (r"^model\.decoder\.layers\.(\d+)\.multihead_attn\.", r"model.decoder_layers.\1.cross_attn."),
    (r"^model\.decoder\.layers\.", "model.decoder_layers."),
    (r"^model\.decoder\.norm\.", "model.decoder_norm."),
    (r"^model\.encoder_robot_state_input_proj\.", "model.lowdim_proj.state."),
    (r"^model\.encoder_env_state_input_proj\.", "model.lowdim_proj.env_state."),
    (r"^model\.encoder_latent_input_proj\.", "model.latent_proj."),
    (r"^model\.encoder_img_feat_input_proj\.", "model.image_proj."),
    (r"^model\.encoder_1d_feature_pos_embed\.", "model.token_pos."),
    (r"^model\.decoder_pos_embed\.", "model.query_pos."),
]
ACT_DROP = ("model.vae_encoder_pos_enc",)  # a fixed sine table, recomputed here


# ------------------------------------------------------------------------------ Diffusion Policy
def _dp_config(cfg: dict[str, Any], obs_keys: tuple[str, ...]) -> dict[str, Any]:
    _require(cfg, "vision_backbone", ["resnet18"], "Diffusion Policy")
    _require(cfg, "use_film_scale_modulation", [True], "Diffusion Policy")
    _require(cfg, "clip_sample_range", [1.0], "Diffusion Policy")
    _require(cfg, "noise_scheduler_type", ["DDPM", "DDIM"], "Diffusion Policy")
    if (
        cfg.get("resize_shape")
        or float(cfg.get("crop_ratio", 1.0)) != 1.0
        or not cfg.get("crop_is_random", True)
    ):
        raise ConfigError(
            "this LeRobot Diffusion Policy resizes its images (resize_shape/crop_ratio) or crops them "
            "without randomness; only crop_shape with random training crops can be imported"
        )
    return {
        "obs_keys": obs_keys,
        "n_obs_steps": cfg["n_obs_steps"],
        "horizon": cfg["horizon"],
        "n_action_steps": cfg["n_action_steps"],
        "down_dims": tuple(cfg["down_dims"]),
        "kernel_size": cfg["kernel_size"],
        "n_groups": cfg["n_groups"],
        "diffusion_step_embed_dim": cfg["diffusion_step_embed_dim"],
        "num_train_timesteps": cfg["num_train_timesteps"],
        "beta_schedule": cfg["beta_schedule"],
        "prediction_type": cfg["prediction_type"],
        "clip_sample": cfg["clip_sample"],
        "scheduler": cfg["noise_scheduler_type"].lower(),
        "num_inference_steps": cfg.get("num_inference_steps"),
        "vision_width": 64,
        "vision_norm": "group" if cfg.get("use_group_norm", True) else "batch",
        "shared_encoder": not cfg.get("use_separate_rgb_encoder_per_camera", False),
        "n_keypoints": cfg["spatial_softmax_num_keypoints"],
        "image_feature_dim": cfg["spatial_softmax_num_keypoints"] * 2,
        "crop_shape": tuple(cfg["crop_shape"]) if cfg.get("crop_shape") else None,
        "lr": cfg.get("optimizer_lr", 1e-4),
        "weight_decay": cfg.get("optimizer_weight_decay", 1e-6),
        "betas": tuple(cfg.get("optimizer_betas", (0.95, 0.999))),
        "warmup_steps": cfg.get("scheduler_warmup_steps", 500),
    }


_BACKBONE_INDEX = {"0": "conv1", "1": "bn1", "4": "layer1", "5": "layer2", "6": "layer3", "7": "layer4"}


def _dp_rename(name: str) -> str | None:
    m = re.match(r"^diffusion\.rgb_encoder\.(?:(\d+)\.)?(.*)$", name)
    if m:
        index, rest = m.group(1) or "0", m.group(2)
        b = re.match(r"^backbone\.(\d+)\.(.*)$", rest)
        if b:
            rest = f"backbone.{_BACKBONE_INDEX[b.group(1)]}.{b.group(2)}"
        rest = re.sub(r"^pool\.nets\.", "keypoints.proj.", rest)
        if rest.startswith("pool.pos_grid"):
            return None  # the keypoints' coordinate grid: recomputed here
        return f"image_encoders.{index}.{rest}"
    rest = name.removeprefix("diffusion.unet.")
    if rest == name:
        return None
    rest = re.sub(r"^diffusion_step_encoder\.1\.", "step_mlp.0.", rest)
    rest = re.sub(r"^diffusion_step_encoder\.3\.", "step_mlp.2.", rest)
    rest = re.sub(r"^down_modules\.", "down.", rest)
    rest = re.sub(r"^mid_modules\.", "mid.", rest)
    rest = re.sub(r"^up_modules\.", "up.", rest)
    rest = re.sub(r"^final_conv\.0\.block\.", "final.0.", rest)
    rest = re.sub(r"^final_conv\.1\.", "final.1.", rest)
    rest = re.sub(r"\.conv1\.block\.", ".block1.", rest)
    rest = re.sub(r"\.conv2\.block\.", ".block2.", rest)
    rest = re.sub(r"\.cond_encoder\.1\.", ".film.1.", rest)
    rest = re.sub(r"\.residual_conv\.", ".skip.", rest)
    return f"unet.{rest}"


# ------------------------------------------------------------------------------ the conversion
def convert_lerobot(src: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Convert a LeRobot ACT or Diffusion Policy directory into our checkpoint at ``out``.

    ``out`` must be absent, empty, or (with ``overwrite``) a checkpoint: nothing else is replaced.
    """

    src = Path(src)
    checkpoint.check_destination(Path(out), overwrite)  # before the work, not after it
    if not (src / "config.json").is_file() or not (src / "model.safetensors").is_file():
        raise ConfigError(
            f"{src} is not a LeRobot policy directory (config.json and model.safetensors); pass e.g. "
            "outputs/train/<run>/checkpoints/last/pretrained_model"
        )
    try:
        return _convert(src, Path(out), overwrite)
    except ImitationError:
        raise
    except (
        KeyError,
        IndexError,
        TypeError,
        ValueError,
        AttributeError,
        RuntimeError,
        OSError,
        SafetensorError,
    ) as e:
        # Every file here is foreign input: whatever in it does not read as LeRobot writes it is
        # one line naming the directory and what was wrong, never a traceback.
        what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        raise ConfigError(
            f"{src}: not a LeRobot 0.4 ACT or Diffusion Policy directory that can be read ({what[:200]}); "
            "pass the pretrained_model directory LeRobot's training saved, unchanged"
        ) from e


def _convert(src: Path, out: Path, overwrite: bool) -> Path:
    cfg = json.loads(inside(src, "config.json", source=src).read_text())
    if not isinstance(cfg, dict):
        raise ConfigError(f"{src}/config.json: holds a {type(cfg).__name__}, not LeRobot's policy config")
    kind = {"act": "act", "diffusion": "diffusion"}.get(cfg.get("type", ""))
    if kind is None:
        raise ConfigError(
            f"{src}: LeRobot policy type {cfg.get('type')!r} cannot be imported; act and diffusion can"
        )
    inputs, outputs = cfg["input_features"], cfg["output_features"]
    lowdim = {_key(k): int(v["shape"][0]) for k, v in inputs.items() if v["type"] in ("STATE", "ENV")}
    images = {
        _key(k): (int(v["shape"][1]), int(v["shape"][2]), int(v["shape"][0]))
        for k, v in inputs.items()
        if v["type"] == "VISUAL"
    }
    order = [k for k in ("state", "env_state") if k in lowdim] + list(images)
    io = IOSpec({k: lowdim[k] for k in order if k in lowdim}, images, int(outputs["action"]["shape"][0]))
    cfg_cls, policy_cls = policy_classes(kind)
    values = (_act_config if kind == "act" else _dp_config)(cfg, tuple(order))
    pcfg = from_dict(cfg_cls, values, where=f"{src}/config.json")
    policy = policy_cls(pcfg, io)

    state = load_file(str(inside(src, "model.safetensors", source=src)))
    renamed: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if kind == "act":
            if name in ACT_DROP:
                continue
            new = name
            for pattern, repl in ACT_RENAMES:
                new, n = re.subn(pattern, repl, new)
                if n:
                    break
        else:
            new = _dp_rename(name)
            if new is None:
                continue
        renamed[new] = tensor
    own = policy.state_dict()
    missing = [
        k for k in own if k not in renamed and not k.startswith("normalizer.") and "keypoints.grid" not in k
    ]
    unknown = [k for k in renamed if k not in own]
    if missing or unknown:
        raise ConfigError(
            f"{src}: the weights do not map onto the network its config describes (missing {missing[:3]}, "
            f"unmapped {unknown[:3]}); is it a LeRobot 0.4 checkpoint?"
        )
    bad = [k for k, v in renamed.items() if own[k].shape != v.shape]
    if bad:
        raise ConfigError(
            f"{src}: {bad[0]} has shape {tuple(renamed[bad[0]].shape)}, expected {tuple(own[bad[0]].shape)}"
        )
    policy.load_state_dict(renamed, strict=False)

    stats, norm_map, eps = _read_stats(src)
    types = {**{k: v["type"] for k, v in inputs.items()}, **{k: v["type"] for k, v in outputs.items()}}
    for lr_name, ftype in types.items():
        mode = norm_map.get(ftype, "IDENTITY")
        if mode != "IDENTITY" and lr_name not in stats:
            raise ConfigError(f"{src}: no statistics for {lr_name!r}, which LeRobot normalises ({mode})")
        scale, offset, inv_scale, inv_offset = _affine(mode, stats.get(lr_name, {}), eps, lr_name)
        if scale is not None and ftype == "VISUAL":
            policy.normalizer.set_affine(_key(lr_name), scale, offset)
        elif scale is not None:
            policy.normalizer.set_affine(_key(lr_name), scale, offset, inv_scale, inv_offset)
        elif ftype == "VISUAL":  # identity: pixels in [0, 1] go in as they are
            policy.normalizer.set_affine(_key(lr_name), torch.ones(3), torch.zeros(3))

    meta = {
        "policy": kind,
        "policy_config": to_dict(pcfg),
        "io": io.to_dict(),
        "step": None,
        "robot": {
            "name": None,
            "joint_names": [],
            "control_hz": None,
            "cameras": {k: list(v) for k, v in images.items()},
            "consumes": list(order),
            "needs_env_state": "env_state" in order,
            "env_id": None,
        },
        "frame_skip": 1,
        "dataset": {"path": None, "fingerprint": None, "train_episodes": []},
        "imported_from": {"format": "lerobot", "path": str(src.resolve()), "type": cfg["type"]},
    }
    try:
        return checkpoint.save_checkpoint(
            Path(out), policy.state_dict(), meta, mark_last=False, overwrite=overwrite
        )
    except OSError as e:
        raise ImitationError(
            f"writing the checkpoint {out} failed: {e.strerror or e} ({e.filename or out}); "
            "nothing was written there"
        ) from e


def parser(prog: str = "imitation import-checkpoint") -> argparse.ArgumentParser:
    from imitation.config import ArgParser

    p = ArgParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", required=True, choices=SOURCES, help="the checkpoint's format")
    p.add_argument("path", type=Path, help="the checkpoint directory (LeRobot: …/pretrained_model)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write ours (default: <path>-imitation); it must be absent or empty, or a "
        "checkpoint with --overwrite: nothing else is ever replaced",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint already at --out")
    return p


def main(argv: Sequence[str], prog: str = "imitation import-checkpoint") -> int:
    args = parser(prog).parse_args(list(argv))
    out = args.out or args.path.with_name(args.path.name + "-imitation")
    done = convert_lerobot(args.path, out, overwrite=args.overwrite)
    print(f"{done}: imported {args.path} ({args.source}); load it with imitation.checkpoint.load_policy")
    return 0
