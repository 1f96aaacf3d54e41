"""Default training recipes, chosen from what a demo store holds.

``imitation train --store S --policy act|diffusion`` with no ``--config`` trains with the recipe
this module builds from the store: its features, its control rate and its episode lengths. Every
length that a policy counts in control ticks (ACT's chunk, Diffusion Policy's horizon, executed
actions and observation history) is set here in **seconds** and converted with the store's rate,
so a 10 Hz task and an 80 Hz task get the same span of time.

What the recipe picks, and why:

- **Inputs.** ``state`` and, when recorded, the simulator's ``env_state``; a store without
  ``env_state`` (a real arm) gives every camera, with ``state`` (``camera_inputs``) unless its
  actions are end-effector steps (``action_kind: ee_delta``). Such actions point from the arm to
  its target, and demonstrations that start from one pose and head straight for the target write
  the direction into the arm's own position a few ticks in: a policy given that position copies
  it and never learns to find the target in the picture, so its first move, made before the
  path says anything, goes the same way in every scene (de Haan et al. 2019, "Causal Confusion in
  Imitation Learning", call this causal confusion). Measured on Meta-World with two cameras
  (BENCHMARKS.md): reach 22 % with the hand's position, 73 % without; push 81 % -> 92 %; but
  peg-insert-side, which needs the hand's millimetres, 65 % -> 44 %. Joint-position targets keep
  ``state``: their action is a pose near the current one. Inputs named on the command line
  (``--act.obs-keys state images/corner``) replace that choice, and the rest of the recipe follows
  them: naming a camera gives the camera settings, so a simulated store can train the policy a
  real arm would run (no object state).
- **ACT** (``ACT_CHUNK_S``): chunks of a quarter of the median episode, clamped to 0.2-2 s (the
  ACT paper's 100 ticks at 50 Hz are 2 s of its 8-10 s tasks); temporal ensembling; no CVAE for
  scripted demonstrations (they are unimodal: same success, half the step time, measured
  on PickPlace in BENCHMARKS.md). A transformer of width 128 below 200,000
  frames, 256 above.
- **Diffusion Policy**: a 0.64 s horizon of which half is executed and two observations, the
  spans that took TransferCube and Insertion from 83 % to 92 % and beyond (BENCHMARKS.md); with
  cameras a 0.40 s horizon (``DIFFUSION_HORIZON_S_CAMERAS``); clean-action prediction with lr
  3e-4 (37 % -> 94 % on PickPlace); a (64, 128, 256) UNet.
- **Cameras** get the settings measured on the CPU camera configs (``_vision``), and ACT twice
  their steps (``ACT_STEPS_CAMERAS``).
- **Two-valued action dimensions** (a gripper the demonstrations hold open or closed) are found in
  the store (``binary_action_dims``) and predicted as such: a logit with a cross-entropy loss in
  ACT, a threshold at the midpoint in Diffusion Policy (``BinaryActions`` in
  ``imitation/policies/common.py``), never regressed to the mean of open and closed.

Measured on tasks it was not tuned on (Meta-World's MT10): BENCHMARKS.md, "Tasks nobody tuned for".
A shipped config says the rate it was tuned at (``fps``); training refuses a store of another rate
unless ``--rescale`` converts its tick counts (``rescale_ticks``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np

from imitation.data.store import DemoStore
from imitation.errors import ConfigError
from imitation.policies import ACTConfig, DiffusionConfig

log = logging.getLogger(__name__)

ACT_CHUNK_S = (0.2, 2.0)  # clamp of a quarter of the median episode
DIFFUSION_HORIZON_S = 0.64
DIFFUSION_OBS_STEPS = 2
# Cameras: a 0.40 s horizon. On Meta-World's MT10 with two cameras and the 15-minute cap it took
# the mean share of the expert from 87 % to 90 % (push 63 % -> 99 %, pick-place 78 % -> 88 %;
# peg-insert-side 43 % -> 28 %); one observation instead of two cost pick-place 14 points
# (BENCHMARKS.md, "Diffusion Policy with cameras at the 15-minute cap").
DIFFUSION_HORIZON_S_CAMERAS = 0.40
BIG_DATA_FRAMES = 200_000
ACT_STEPS = 10_000
# Cameras: 4,000 steps left button-press-topdown at 58% and its validation loss still falling;
# 8,000 took it to 100%, peg-insert-side from 5% to 65% (BENCHMARKS.md, "ACT's camera recipe at
# 8,000 steps"): 13-14 minutes with two 96x96 cameras on a 2-core CPU.
ACT_STEPS_CAMERAS = 8_000

# A dimension is two-valued when at least this share of its frames lies within BINARY_TOL of the
# range from its minimum or its maximum.
BINARY_SHARE = 0.97
BINARY_TOL = 0.05


def binary_action_dims(actions: np.ndarray) -> tuple[int, ...]:
    """Action dimensions whose demonstrated values sit at two levels (module docstring)."""
    actions = np.asarray(actions, dtype=np.float64).reshape(len(actions), -1)
    if len(actions) == 0:
        return ()
    lo, hi = actions.min(axis=0), actions.max(axis=0)
    span = hi - lo
    out = []
    for d in range(actions.shape[1]):
        if span[d] <= 1e-9:
            continue
        a = actions[:, d]
        near = (np.abs(a - lo[d]) <= BINARY_TOL * span[d]) | (np.abs(a - hi[d]) <= BINARY_TOL * span[d])
        both = (a <= lo[d] + BINARY_TOL * span[d]).mean() > 0.01 and (
            a >= hi[d] - BINARY_TOL * span[d]
        ).mean() > 0.01
        if near.mean() >= BINARY_SHARE and both:
            out.append(d)
    return tuple(out)


def store_actions(store: DemoStore) -> np.ndarray:
    """Every committed action of ``store``, read one chunk at a time (a damaged chunk then fails
    alone, with the store's clear error, and no other read is left in flight)."""
    n = int(store.n_frames)
    step = max(1, int(store.array("action").chunks[0]))
    blocks = [store.read("action", lo, min(n, lo + step)) for lo in range(0, n, step)]
    return np.concatenate(blocks) if blocks else np.zeros((0, *store.features["action"].shape))


def ticks(seconds: float, fps: float, *, minimum: int = 1, multiple: int = 1) -> int:
    """``seconds`` at ``fps`` in whole control ticks, at least ``minimum``, rounded up to ``multiple``."""
    n = max(minimum, int(round(seconds * fps)))
    return -(-n // multiple) * multiple


# Action kinds whose values are a step to take (not a place to be): with cameras, the recipe leaves
# the arm's state out of the inputs (module docstring, "Inputs").
RELATIVE_ACTIONS = ("ee_delta",)


def _steps(store: DemoStore) -> bool:
    """Whether ``store``'s actions are relative steps (``RELATIVE_ACTIONS``)."""
    return str(store.robot.get("action_kind")) in RELATIVE_ACTIONS


def camera_inputs(store: DemoStore) -> tuple[str, ...]:
    """The inputs the recipe gives a policy that sees ``store``'s cameras: every camera, and the
    arm's ``state`` unless the actions are relative steps (``RELATIVE_ACTIONS``)."""
    cams = tuple(sorted(k for k, f in store.features.items() if f.kind == "image"))
    if not cams:
        raise ConfigError(f"{store.path} holds no camera images; record with cameras (--obs-mode both)")
    return cams if _steps(store) else ("state", *cams)


def _obs_keys(store: DemoStore) -> tuple[str, ...]:
    features = store.features
    if "state" not in features:
        raise ConfigError(
            f"{store.path} has no 'state' feature; the default recipe reads the robot's state: record it, "
            "or give a --config that names the inputs (act.obs_keys / diffusion.obs_keys)"
        )
    if "env_state" in features:
        return ("state", "env_state")
    if any(f.kind == "image" for f in features.values()):
        return camera_inputs(store)
    return ("state",)


def _vision(store: DemoStore, obs_keys: tuple[str, ...]) -> dict[str, Any]:
    """The camera settings measured on our CPU camera configs (configs/train/*_camera_cpu.yaml):
    a quarter-width ResNet-18 without its last stage, GroupNorm, random crops 8 px smaller."""
    cams = [k for k in obs_keys if store.features[k].kind == "image"]
    h = min(int(store.features[k].shape[0]) for k in cams)
    w = min(int(store.features[k].shape[1]) for k in cams)
    return {
        "vision_width": 16,
        "vision_layers": 3,
        "vision_norm": "group",
        "shared_encoder": len(cams) == 1,
        "crop_shape": [h - 8, w - 8] if min(h, w) >= 32 else None,
    }


def _named_keys(store: DemoStore, policy: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """The inputs named with ``--<policy>.obs-keys``, each checked against the store's features."""
    features = store.features
    usable = sorted(k for k, f in features.items() if k not in ("action", "timestamp"))
    for key in names:
        if key not in features or key in ("action", "timestamp"):
            raise ConfigError(
                f"--{policy}.obs-keys: {key!r} is not an input {store.path} holds; choose from {usable}"
            )
    return names


def recipe(store_path: str, policy: str, obs_keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The default training configuration for ``store_path`` as plain values (a config file's
    content): what ``imitation train`` uses when no ``--config`` is given. ``obs_keys``, when
    given, are the inputs to train on in place of the recipe's choice (module docstring)."""
    store = DemoStore.open(store_path)
    if store.n_episodes < 1:
        raise ConfigError(f"{store_path} has no episodes to train on; record some first")
    fps = float(store.fps)
    lengths = np.asarray(store.episode_lengths, dtype=np.float64)
    median_s = float(np.median(lengths)) / fps
    obs_keys = _named_keys(store, policy, tuple(obs_keys)) if obs_keys else _obs_keys(store)
    cameras = any(store.features[k].kind == "image" for k in obs_keys)
    if cameras and "state" in obs_keys and _steps(store):
        log.warning(
            "%s: the policy reads 'state' beside its cameras while its actions are end-effector steps; it "
            "may copy the arm's own path instead of finding the target in the picture (imitation/recipes.py, "
            "'Inputs'). Without state: --%s.obs-keys %s",
            store.path, policy, " ".join(k for k in obs_keys if k != "state"),
        )  # fmt: skip
    binary = binary_action_dims(store_actions(store))
    frames = int(store.n_frames)
    common: dict[str, Any] = {
        "store": str(store_path),
        "policy": policy,
        "fps": fps,
        "val_every": 500,
        "save_every": 1000,
    }
    if policy == "act":
        chunk = ticks(min(max(median_s / 4, ACT_CHUNK_S[0]), ACT_CHUNK_S[1]), fps, minimum=2)
        width = 128 if frames < BIG_DATA_FRAMES else 256
        section = {
            "obs_keys": list(obs_keys),
            "chunk_size": chunk,
            "n_action_steps": chunk,
            "temporal_ensemble_coeff": 0.01,
            "dim_model": width,
            "n_heads": 4 if width == 128 else 8,
            "dim_feedforward": 4 * width,
            "n_encoder_layers": 2 if width == 128 else 4,
            "n_decoder_layers": 1,
            "latent_dim": 32,
            "dropout": 0.1,
            "use_vae": False,
            "binary_actions": list(binary),
            "lr": 2e-4 if not cameras else 3e-4,
            "lr_backbone": 3e-4,
            "weight_decay": 1e-4,
            **({**_vision(store, obs_keys), "camera_embedding": True} if cameras else {}),
        }
        return {
            **common,
            "act": section,
            "steps": ACT_STEPS_CAMERAS if cameras else ACT_STEPS,
            "batch_size": 32,
        }
    if policy == "diffusion":
        span_s = DIFFUSION_HORIZON_S_CAMERAS if cameras else DIFFUSION_HORIZON_S
        horizon = ticks(span_s, fps, minimum=8, multiple=4)
        section = {
            "obs_keys": list(obs_keys),
            "n_obs_steps": DIFFUSION_OBS_STEPS,
            "horizon": horizon,
            "n_action_steps": horizon // 2,
            "down_dims": [64, 128, 256],
            "scheduler": "ddim",
            "num_inference_steps": 10,
            "prediction_type": "sample",
            "binary_actions": list(binary),
            "lr": 3e-4,
            "weight_decay": 1e-6,
            "warmup_steps": 500,
            "ema": True,
            **(_vision(store, obs_keys) if cameras else {}),
        }
        return {**common, "diffusion": section, "steps": 5_000, "batch_size": 64}
    raise ConfigError(f"policy={policy!r} has no default recipe; choose act or diffusion")


def describe(cfg: Any, store_fps: float) -> str:
    """One line saying what the recipe chose, in ticks and seconds."""
    pc = cfg.policy_config
    if cfg.policy == "act":
        span = f"chunk {pc.chunk_size} ticks ({pc.chunk_size / store_fps:.2f} s), CVAE {'on' if pc.use_vae else 'off'}"
    else:
        span = (
            f"horizon {pc.horizon} ticks ({pc.horizon / store_fps:.2f} s), {pc.n_action_steps} executed, "
            f"{pc.n_obs_steps} observations"
        )
    binary = (
        f"two-valued action dims {list(pc.binary_actions)}"
        if pc.binary_actions
        else "no two-valued action dims"
    )
    return (
        f"default {cfg.policy} recipe for {cfg.store} at {store_fps:g} Hz: inputs {list(pc.obs_keys)}, {span}, "
        f"{binary}, {cfg.steps} steps"
    )


# Tick-count fields of each policy's settings: what --rescale converts between rates.
TICK_FIELDS = {"act": ("chunk_size", "n_action_steps"), "diffusion": ("horizon", "n_action_steps")}


def rescale_ticks(pc: ACTConfig | DiffusionConfig, policy: str, factor: float) -> ACTConfig | DiffusionConfig:
    """``pc`` with its tick counts scaled by ``factor`` (store rate / config rate): the same spans of
    time at the store's rate. A diffusion horizon stays a multiple of 4 (the UNet halves it twice)."""
    changes: dict[str, int] = {}
    for name in TICK_FIELDS[policy]:
        changes[name] = max(1, int(round(getattr(pc, name) * factor)))
    if policy == "diffusion":
        changes["horizon"] = max(8, -(-changes["horizon"] // 4) * 4)
        changes["n_action_steps"] = min(changes["n_action_steps"], changes["horizon"] - pc.n_obs_steps + 1)
    else:
        changes["n_action_steps"] = min(changes["n_action_steps"], changes["chunk_size"])
    return replace(pc, **changes)


def check_rate(cfg: Any, store_fps: float, where: str) -> None:
    """Refuse (or, with ``cfg.rescale``, convert) a config tuned at another control rate."""
    if cfg.fps is None or abs(cfg.fps - store_fps) <= 0.01 * store_fps:
        return
    pc = cfg.policy_config
    names = TICK_FIELDS[cfg.policy]
    if not cfg.rescale:
        spans = ", ".join(
            f"{n} {getattr(pc, n)} = {getattr(pc, n) / cfg.fps:.2f} s at {cfg.fps:g} Hz but "
            f"{getattr(pc, n) / store_fps:.2f} s at {store_fps:g} Hz"
            for n in names
        )
        raise ConfigError(
            f"{where} was tuned at {cfg.fps:g} Hz but {cfg.store} was recorded at {store_fps:g} Hz ({spans}); "
            "pass --rescale to convert its tick counts to the store's rate, or leave out --config for the default recipe"
        )
    factor = store_fps / cfg.fps
    new = rescale_ticks(pc, cfg.policy, factor)
    log.info(
        "rescaled %s from %g Hz to %g Hz: %s",
        where,
        cfg.fps,
        store_fps,
        ", ".join(f"{n} {getattr(pc, n)} -> {getattr(new, n)}" for n in names),
    )
    setattr(cfg, cfg.policy, new)
    cfg.fps = store_fps
