"""Training: ``imitation train --config configs/train/<name>.yaml [--flag value ...]``.

The loop, top to bottom: open the store, split episodes into train/val, build the policy with
the store's normalisation statistics, then repeat { next batch, loss, backward, clip, AdamW,
cosine schedule, EMA } with logging, validation, checkpoints and an evaluation hook.

One process or many: under ``torchrun`` every process takes its slice of each global batch
(``batch_size`` is the global batch), gradients are averaged by DistributedDataParallel (NCCL
on GPUs, gloo on CPUs) and only rank 0 logs and writes. Every random draw of a sample is keyed
by (seed, step, the sample's position in the global batch), so the split changes nothing but
speed. ``--resume <run dir>`` continues from the last checkpoint exactly where it stopped,
mid-epoch included.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from envs.mapping import check_env_id, locate
from imitation import checkpoint
from imitation.checkpoint import is_checkpoint, read_meta
from imitation.checks import DEMO_STORE, DEVICE, SEED, InPath, OneOf, OutPath, Range, check_fields
from imitation.config import from_dict, parse, save, saved_by_imitation, to_dict
from imitation.data.augment import check_symmetry, task_symmetry, turn, widen_stats
from imitation.data.dataset import ResumableSampler, WindowDataset, WindowSpec, split_episodes
from imitation.data.device import DATA_PATHS, DeviceWindows, choose_data_path
from imitation.data.store import DemoStore
from imitation.errors import ConfigError, ImitationError, add_note
from imitation.evaluate import env_kwargs_for, rollout
from imitation.policies import ACTConfig, DiffusionConfig, PolicyName, policy_classes
from imitation.policies.common import EMA, Draws, IOSpec, draw_seed_tensor
from imitation.recipes import binary_action_dims, check_rate, describe, recipe, store_actions
from imitation.results import summarize
from imitation.robots.geometry import FITS, camera_fit_meta

log = logging.getLogger(__name__)
WANDB_MODES = ("offline", "online", "disabled")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class TrainConfig:
    """Train an ACT or Diffusion Policy model on a demo store."""

    store: Annotated[str, DEMO_STORE] = "demos/quickstart.zarr"
    """Demo store to learn from."""
    policy: PolicyName = "act"
    """Which policy (its settings are in the section of that name)."""
    act: ACTConfig = field(default_factory=ACTConfig)
    """ACT settings (used when policy is act)."""
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    """Diffusion Policy settings (used when policy is diffusion)."""
    out: Annotated[str, OutPath("dir")] = "runs/train"
    """Run directory: config, metrics.jsonl, checkpoints/."""
    overwrite: bool = False
    """Start afresh in an existing run directory (its checkpoints are deleted)."""
    resume: Annotated[str | None, InPath("dir", "run directory", "pass the --out of an earlier run")] = None
    """Continue the run in this directory from its last checkpoint, with its saved config (flags given
    now still apply on top, e.g. more --steps)."""
    fps: Annotated[float | None, Range(gt=0, le=10_000)] = None
    """Control rate (Hz) the config's tick counts (chunk, horizon, executed actions) were set for;
    a store of another rate is refused unless --rescale converts them. None: not declared."""
    rescale: bool = False
    """Convert the tick counts of a config set at another ``fps`` to the store's rate (same spans
    in seconds) instead of refusing the store."""
    steps: Annotated[int, Range(ge=1, le=10**9)] = 100_000
    """Optimiser steps in total."""
    batch_size: Annotated[int, Range(ge=1, le=2**16)] = 8
    """Global batch size (split evenly over torchrun processes)."""
    grad_clip_norm: Annotated[float, Range(ge=0, meaning="0: no clipping")] = 10.0
    """Clip the gradient norm to this (0: no clipping)."""
    seed: Annotated[int, SEED] = 0
    """Seed of the sample order, the initial weights and every random draw."""
    device: Annotated[str, DEVICE] = "auto"
    """auto (CUDA when present), cpu, cuda or cuda:N."""
    num_workers: Annotated[int, Range(ge=0, le=256)] = 0
    """DataLoader worker processes (0 reads in the training process; best with the RAM cache)."""
    cache: Annotated[str, OneOf(("auto", "ram", "none"))] = "auto"
    """Decoded-image cache: auto (when it fits in RAM), ram, none."""
    data_path: Annotated[str, OneOf(DATA_PATHS)] = "auto"
    """Where batches are built: device (the decoded store uploaded to the training device once and
    windows gathered there), loader (a DataLoader on the host), auto (device on a GPU the store
    fits, loader otherwise)."""
    augment_yaw: Annotated[float, Range(ge=0, le=math.pi, meaning="0: off")] = 0.0
    """Turn each training sample's scene by a random angle in ±this (rad) about the arm's base
    (tasks that declare this symmetry; cameras looking straight down turn as pictures, wrist cameras
    stay; see ``imitation/data/augment.py``).
    0: off."""
    val_fraction: Annotated[float, Range(ge=0, lt=1)] = 0.1
    """Share of episodes held out for the validation loss (0: none)."""
    val_every: Annotated[int, Range(ge=0, meaning="0: never")] = 1000
    """Validation loss every N steps (0: never)."""
    val_batches: Annotated[int, Range(ge=1, le=10**6)] = 8
    """Batches per validation."""
    save_every: Annotated[int, Range(ge=1)] = 5000
    """Checkpoint every N steps (and always at the end)."""
    log_every: Annotated[int, Range(ge=1)] = 50
    """Append to metrics.jsonl (and wandb) every N steps."""
    max_minutes: Annotated[float, Range(ge=0, meaning="0: no limit")] = 0.0
    """Stop after this much training wall time (0: no limit), saving the last checkpoint then (under
    torchrun, at the first log step past it)."""
    fit_schedule: bool = True
    """With --max-minutes: end the learning-rate schedule where the time runs out (the step the
    measured rate reaches by then, re-estimated at every log step), not at --steps; a run that
    finishes its steps in time is unchanged."""
    eval_every: Annotated[int, Range(ge=0, meaning="0: never")] = 0
    """Measure the success rate in simulation every N steps (0: never); the best checkpoint is kept."""
    eval_episodes: Annotated[int, Range(ge=1, le=100_000)] = 50
    """Episodes per evaluation during training."""
    eval_seed: Annotated[int, SEED] = 200_000
    """First seed of the evaluations during training (keep them apart from the seeds you report)."""
    camera_fit: Annotated[str | None, OneOf(FITS)] = None
    """How a deployed camera's frames of another size reach the policy's image size: resize, or
    center_crop_resize (crop to the trained aspect ratio about the centre, then resize). Saved in the
    checkpoint; deploy --camera-fit overrides it. None: not declared (deploy refuses another size)."""
    env: str | None = None
    """Task of the evaluations during training (default: the one the store was recorded in; a task
    the store names is never allowed to import code, so name such a mapping here if you trust it)."""
    amp: bool = True
    """bf16 autocast where the hardware computes in bf16: on CUDA, and on a CPU with AMX (Intel Xeon
    since Sapphire Rapids) for camera policies, whose steps measured 1.3-1.4x faster there
    (``use_bf16``; BENCHMARKS.md). State-only policies, which measured slower in bf16 there, and
    every policy on other CPUs train in fp32. --no-amp: fp32 everywhere. The weights stay fp32."""
    compile: bool = False
    """torch.compile the policy's loss computation (on a GPU with static shapes: --compile-mode
    max-autotune-no-cudagraphs or reduce-overhead; on a CPU it rarely pays, BENCHMARKS.md)."""
    compile_mode: Annotated[str, OneOf(COMPILE_MODES)] = "default"
    """torch.compile's mode when --compile is given."""
    deterministic: bool = False
    """Deterministic kernels (slower; for exact reproduction)."""
    wandb: Literal["offline", "online", "disabled"] | None = None
    """wandb mode: offline (files in the run directory), online, or disabled. Not given (here or in
    a config file): $WANDB_MODE when it is one of these, else offline (``wandb_mode``)."""
    wandb_project: str = "imitation"
    """wandb project name."""

    def __post_init__(self) -> None:
        check_fields(self)  # every range and choice above, declared on its field
        policy_classes(self.policy)

    @property
    def policy_config(self) -> ACTConfig | DiffusionConfig:
        return getattr(self, self.policy)


# ------------------------------------------------------------------------------ processes and devices
def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matrix products natively: a CUDA GPU, or a CPU with AMX
    tiles. Other CPUs convert bf16 in software; autocast was not measured there and stays off."""
    if device.type == "cuda":
        return True
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(check and check())


def use_bf16(amp: bool, device: torch.device, images: bool) -> bool:
    """Whether ``imitation train --amp`` trains under bf16 autocast on ``device`` a policy that
    reads cameras (``images``) or not. On a GPU, always. On a CPU with AMX, camera policies only:
    their convolutions gain (ACT's and Diffusion Policy's camera recipes measured 1.3-1.4x faster
    end to end); a state-only policy's small products measured slower in bf16 there (ACT, and
    Diffusion Policy at a 16-tick horizon) and stay fp32 (BENCHMARKS.md, "bf16 on a CPU with AMX")."""
    return amp and bf16_native(device) and (device.type == "cuda" or images)


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Join the torchrun group when launched by torchrun; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dist = Dist(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    if device_name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device_name!r} is not available: this torch build or machine has no CUDA GPU; "
                "use --device cpu (or auto)"
            )
        index = dist.local_rank if device_name == "cuda" else int(device_name.split(":")[1])
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device cuda:{index} does not exist; this machine has {torch.cuda.device_count()} GPU(s)"
            )
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    elif device_name == "cpu":
        device = torch.device("cpu")
    else:
        raise ConfigError(f"device {device_name!r} is not one of auto, cpu, cuda, cuda:N")
    if world > 1:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist, device


# ------------------------------------------------------------------------------ data order
class GlobalBatches:
    """Global batches in the seeded order of each epoch; this process's slice of each.

    Epoch e's order is ``ResumableSampler.order(e)`` (``default_rng((seed, e)).permutation(n)``),
    the one a ``DataLoader`` gets from the sampler; a final partial batch is dropped. ``epoch`` and
    ``position`` say where the next batch starts, and a checkpoint saves them.
    """

    def __init__(self, n: int, batch_size: int, seed: int, dist: Dist) -> None:
        if n < batch_size:
            raise ConfigError(
                f"the training split has {n} samples, fewer than batch_size={batch_size}; "
                "lower batch_size or record more episodes"
            )
        self.n, self.batch_size, self.seed, self.dist = n, batch_size, seed, dist
        self.sampler = ResumableSampler(n, seed=seed)
        self.per_rank = batch_size // dist.world
        self.epoch, self.position = 0, 0

    def advance(self) -> None:
        self.position += self.batch_size
        if self.position + self.batch_size > self.n:
            self.epoch, self.position = self.epoch + 1, 0

    def __iter__(self) -> Iterator[list[int]]:
        for mine in self._slices(lambda order: order):
            yield mine.tolist()

    def on_device(self, device: torch.device) -> Iterator[torch.Tensor]:
        """The same slices as index tensors on ``device``: each epoch's order is uploaded once
        and sliced there (the device data path)."""
        return self._slices(lambda order: torch.from_numpy(order).to(device))

    def _slices(self, convert: Callable[[np.ndarray], Any]) -> Iterator[Any]:
        epoch, position = self.epoch, self.position
        while True:
            order = convert(self.sampler.order(epoch))
            while position + self.batch_size <= self.n:
                start = position + self.dist.rank * self.per_rank
                yield order[start : start + self.per_rank]
                position += self.batch_size
            epoch, position = epoch + 1, 0


def make_optimizer(policy: torch.nn.Module, pc: ACTConfig | DiffusionConfig) -> torch.optim.Optimizer:
    """AdamW over the policy's parameter groups. The fused kernel (CPU and CUDA) is about 4x faster
    on CPU than the per-tensor loop for models made of many small tensors."""
    return torch.optim.AdamW(
        policy.parameter_groups(), lr=pc.lr, betas=pc.betas, weight_decay=pc.weight_decay, fused=True
    )


class CosineSchedule:
    """The learning-rate factor at a step: a linear warm-up over ``warmup`` steps, then a cosine
    decay that reaches 0 at step ``total``. A callable object rather than a closure, so that
    ``LambdaLR.state_dict`` saves ``total`` and a resumed run continues a fitted schedule."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = int(warmup), int(total)

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def fitted_total(step: int, steps: int, rate: float, seconds_left: float) -> int:
    """The step at which a run that makes ``rate`` steps per second, with ``seconds_left`` of its
    time budget left, will stop: the end of its learning-rate schedule (never past ``steps``)."""
    return max(step + 1, min(steps, step + int(rate * max(0.0, seconds_left))))


# The loop's clock (tests replace it with a simulated one).
clock = time.perf_counter


def draw_seeds(
    seed: int, step: int, dist: Dist, per_rank: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """This process's samples' draw seeds at ``step`` (``draw_seed`` of their places in the global
    batch), computed on ``device``: no host-to-device copy in the loop."""
    first = dist.rank * per_rank
    return draw_seed_tensor(seed, step, torch.arange(first, first + per_rank, device=device))


def turn_angles(
    cfg: TrainConfig, step: int, dist: Dist, per_rank: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """This step's --augment-yaw angles for this process's samples, on ``device``: a function of
    the seed, the step and the sample's place in the global batch (hashed like the policies'
    draws, ``Draws``), so a resumed run draws what it would have and any split over processes
    draws what one process would."""
    draws = Draws(draw_seeds(cfg.seed, step, dist, per_rank, device))
    return (2 * draws.uniform(Draws.TURN, 1)[:, 0] - 1) * cfg.augment_yaw


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np.frombuffer(json.dumps(_np_state()).encode(), dtype=np.uint8).copy()),
        "python": torch.from_numpy(np.frombuffer(json.dumps(_py_state()).encode(), dtype=np.uint8).copy()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _np_state() -> list:
    s = np.random.get_state()
    return [s[0], s[1].tolist(), s[2], s[3], s[4]]


def _py_state() -> list:
    v, inner, g = random.getstate()
    return [v, list(inner), g]


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    s = json.loads(bytes(state["numpy"].numpy()).decode())
    np.random.set_state((s[0], np.array(s[1], dtype=np.uint32), s[2], s[3], s[4]))
    p = json.loads(bytes(state["python"].numpy()).decode())
    random.setstate((p[0], tuple(p[1]), p[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------ the run
def wandb_mode(given: str | None) -> str:
    """The wandb mode of a run: ``given`` (--wandb, or ``wandb:`` in a config file) when set; else
    $WANDB_MODE when it is offline, online or disabled; else offline."""
    if given is not None:
        return given
    env = os.environ.get("WANDB_MODE")
    if env in WANDB_MODES:
        return env
    if env:
        log.warning("WANDB_MODE=%s is not one of %s; wandb runs offline", env, ", ".join(WANDB_MODES))
    return "offline"


class Logger:
    """metrics.jsonl (+ wandb, in the mode ``wandb_mode`` resolves) on rank 0."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, dist: Dist) -> None:
        self.enabled = dist.main
        self.file = open(run_dir / "metrics.jsonl", "a") if self.enabled else None  # noqa: SIM115
        self.wandb = None
        mode = wandb_mode(cfg.wandb)
        if self.enabled and mode != "disabled":
            try:
                import wandb
            except ImportError as e:
                raise ConfigError(
                    "wandb is not installed; pip install wandb, or pass --wandb disabled"
                ) from e
            self.wandb = wandb.init(
                project=cfg.wandb_project,
                dir=str(run_dir),
                mode=mode,
                config=to_dict(cfg),
                name=run_dir.name,
                resume="allow",
                id=_wandb_id(run_dir),
            )

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in row.items() if k != "step"}, step=row["step"])

    def close(self) -> None:
        if self.file:
            self.file.close()
        if self.wandb is not None:
            self.wandb.finish()


def _wandb_id(run_dir: Path) -> str:
    f = run_dir / "wandb_id"
    if not f.exists():
        f.write_text(os.urandom(6).hex())
    return f.read_text().strip()


def checkpoint_meta(
    cfg: TrainConfig, policy: torch.nn.Module, store: Any, episodes: list[int], step: int
) -> dict:
    pc = cfg.policy_config
    robot = dict(store.robot)
    return {
        "policy": cfg.policy,
        "policy_config": to_dict(pc),
        "io": policy.io.to_dict(),
        "step": step,
        "binary_actions": policy.binary.to_dict(),
        "robot": {
            "name": robot.get("name"),
            # Where the demos came from another project, the units of their joints (LeRobot's
            # calibrated motor values, not radians): nothing deploys such a policy on an arm.
            **({"units": robot["units"], "source": robot.get("source")} if robot.get("units") else {}),
            "joint_names": list(robot.get("joint_names", [])),
            "control_hz": float(store.fps),
            "cameras": {k: list(v) for k, v in policy.io.images.items()},
            "consumes": list(pc.obs_keys),
            "needs_env_state": "env_state" in pc.obs_keys,
            "env_id": robot.get("env_id"),
            "env_path": robot.get("env_path"),
            **(
                {
                    "camera_sources": {
                        c: sources[c] for k in policy.io.images if (c := k.removeprefix("images/")) in sources
                    }
                }
                if (sources := robot.get("camera_sources") or {}) and policy.io.images
                else {}
            ),
            **(
                {"camera_fit": camera_fit_meta(policy.io.images, cfg.camera_fit)}
                if cfg.camera_fit and policy.io.images
                else {}
            ),
        },
        "frame_skip": pc.frame_skip,
        "dataset": {"path": str(store.path), "fingerprint": store.fingerprint(), "train_episodes": episodes},
    }


def check_run_dir(cfg: TrainConfig, flag: str = "--out") -> None:
    """Refuse an output directory that training would mix its files into: one that exists, is not
    empty and is not a run directory (a config.yaml that imitation saved there). A run directory
    that already has checkpoints needs --resume or --overwrite."""
    run_dir = Path(cfg.out)
    if cfg.resume or not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise ConfigError(f"{flag} {run_dir} is a file, not a run directory; choose another {flag}")
    entries = sorted(p.name for p in run_dir.iterdir())
    if not entries:
        return
    if not (run_dir / "config.yaml").is_file() or not saved_by_imitation(cfg, run_dir / "config.yaml"):
        shown = [e for e in entries if not e.startswith(".")] or entries
        listed = ", ".join(shown[:3]) + (", ..." if len(shown) > 3 else "")
        raise ConfigError(
            f"{flag} {run_dir} exists and is not a run directory (it holds {listed}, and no config.yaml "
            f"that imitation train wrote); training writes config.yaml, metrics.jsonl and checkpoints/ "
            f"there: choose another {flag} (absent or empty)"
        )
    if (run_dir / "checkpoints").exists() and not cfg.overwrite:
        raise ConfigError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir}, start afresh with "
            f"--overwrite, or choose another {flag}"
        )


def train(
    cfg: TrainConfig, on_eval: Callable[[torch.nn.Module, int], dict[str, float]] | None = None
) -> Path:
    """Run training; returns the run directory.

    A run that fails (bad input, a full disk, Ctrl-C) before its first checkpoint leaves nothing
    behind if this call created the run directory: there is nothing in it to resume or keep.
    """
    run_dir = Path(cfg.out)
    created = int(os.environ.get("RANK", "0")) == 0 and not run_dir.exists()
    try:
        return _train(cfg, on_eval)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            _clean_up(run_dir, created, e)
            raise
        # A full disk anywhere in the run (metrics.jsonl, wandb): one line, and where to go on from.
        error = ImitationError(f"writing {e.filename or run_dir} failed: {e.strerror}; {_last_good(run_dir)}")
        _clean_up(run_dir, created, error)
        raise error from e
    except BaseException as e:
        _clean_up(run_dir, created, e)
        raise


def _has_checkpoint(run_dir: Path) -> bool:
    folder = run_dir / "checkpoints"
    return folder.is_dir() and any(is_checkpoint(p) for p in folder.iterdir() if not p.name.startswith("."))


def _last_good(run_dir: Path, advice: str = "free some space and ") -> str:
    """Where a run that stopped on an error can continue from, in words (``advice``: what to do
    before ``--resume``)."""

    try:
        step = checkpoint.read_meta(run_dir / "checkpoints")["step"]
    except (ImitationError, OSError):
        return "no checkpoint had been saved"
    return (
        f"the last good checkpoint is step {step} ({checkpoint.resolve(run_dir / 'checkpoints')}); "
        f"{advice}continue with --resume {run_dir}"
    )


def _clean_up(run_dir: Path, created: bool, error: BaseException) -> None:
    """Remove the run directory of a failed call that created it, unless it holds a checkpoint; say
    so in the error's own line where it is a user's error, as a log line otherwise."""

    if not created or not run_dir.is_dir() or _has_checkpoint(run_dir):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    note = f"removed {run_dir}, which this command had created"
    if not add_note(error, note):
        log.warning("%s", note)


def _train(
    cfg: TrainConfig, on_eval: Callable[[torch.nn.Module, int], dict[str, float]] | None = None
) -> Path:
    dist, device = setup_distributed(cfg.device)
    if cfg.batch_size % dist.world:
        raise ConfigError(f"batch_size={cfg.batch_size} must divide evenly over {dist.world} processes")
    run_dir = Path(cfg.out)
    if dist.main:
        check_run_dir(cfg)
    resume_state = None
    if cfg.resume:
        resume_state = checkpoint.load_train_state(Path(cfg.resume) / "checkpoints")
    elif (run_dir / "checkpoints").exists() and not cfg.overwrite:
        raise ConfigError(
            f"{run_dir} already holds a run; continue it with --resume {run_dir}, start afresh with "
            "--overwrite, or choose another --out"
        )
    if dist.main:
        if cfg.overwrite and not cfg.resume:
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        save(cfg, run_dir / "config.yaml")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    random.seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)

    # ---- data
    store = DemoStore.open(cfg.store)
    pc = cfg.policy_config
    if store.n_episodes < 1:
        raise ConfigError(f"{cfg.store} has no episodes to train on")
    if cfg.val_fraction > 0 and store.n_episodes >= 2:
        train_eps, val_eps = split_episodes(store.n_episodes, cfg.val_fraction, cfg.seed)
    else:
        train_eps, val_eps = list(range(store.n_episodes)), []
    check_rate(cfg, float(store.fps), f"the config of {cfg.out}")
    if pc.binary_actions is None:
        # Found in the store now and written into the run's config, so the checkpoint says them.
        pc.binary_actions = binary_action_dims(store_actions(store))
        if pc.binary_actions:
            log.info("two-valued action dimensions %s: predicted as open / closed", list(pc.binary_actions))
    pc = cfg.policy_config
    if dist.main:
        save(cfg, run_dir / "config.yaml")  # with the rate and dims resolved
    spec = WindowSpec.of(pc)
    symmetry = None
    if cfg.augment_yaw > 0:
        symmetry = task_symmetry(
            store.robot.get("env_id"),
            [*pc.obs_keys, "action"],
            {k: tuple(store.features[k].shape[:2]) for k in pc.obs_keys if store.features[k].sharded},
        )
        check_symmetry(symmetry, {k: int(np.prod(f.shape)) for k, f in store.features.items()})
    train_set = WindowDataset(store, spec, train_eps, cache=cfg.cache)
    val_set = WindowDataset(store, spec, val_eps, cache=cfg.cache) if val_eps else None
    batches = GlobalBatches(len(train_set), cfg.batch_size, cfg.seed, dist)

    # ---- policy, optimiser, schedule, EMA
    _, policy_cls = policy_classes(cfg.policy)
    policy = policy_cls(pc, IOSpec.from_features(store.features, pc.obs_keys))
    stats = store.stats(progress=dist.main)
    if symmetry is not None:
        stats = widen_stats(stats, symmetry, cfg.augment_yaw)
    policy.set_stats(stats)
    policy.to(device)
    bf16 = use_bf16(cfg.amp, device, bool(policy.io.images))
    if policy.io.images and (device.type == "cuda" or bf16):
        policy.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(policy, pc)
    schedule = CosineSchedule(pc.warmup_steps, cfg.steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    ema = (
        EMA(policy, getattr(pc, "ema_power", 0.75), getattr(pc, "ema_max_decay", 0.9999)) if pc.ema else None
    )
    step = 0
    if resume_state is not None:
        policy.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        if not (cfg.max_minutes and cfg.fit_schedule):
            schedule.total = cfg.steps  # the schedule spans this run's --steps, as given now
        if ema is not None:
            ema.load_state_dict(resume_state["ema"])
        step = int(resume_state["step"])
        batches.epoch, batches.position = int(resume_state["epoch"]), int(resume_state["position"])
        set_rng_state(resume_state["rng"])
        if dist.main:
            log.info(
                "resuming %s at step %d (epoch %d, sample %d)", run_dir, step, batches.epoch, batches.position
            )
    model: torch.nn.Module = policy
    if dist.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            policy, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.compile:
        model = torch.compile(model, mode=cfg.compile_mode)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    if dist.main and bf16 and device.type == "cpu":
        log.info("bf16 autocast on this CPU (it has AMX); --no-amp trains in fp32")
    elif dist.main and cfg.amp and device.type == "cpu" and bf16_native(device):
        log.info("a state-only %s trains in fp32 on this CPU (bf16 measured slower for it)", cfg.policy)

    path = choose_data_path(cfg.data_path, train_set, device) if dist.main else cfg.data_path
    if dist.world > 1:  # every process takes the main process's choice
        choice = [path]
        torch.distributed.broadcast_object_list(choice, src=0)
        path = choice[0]
    windows = DeviceWindows(train_set, device) if path == "device" else None
    loader = None
    if windows is None:
        loader = torch.utils.data.DataLoader(
            train_set,
            sampler=iter(batches),
            batch_size=None,
            num_workers=cfg.num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=cfg.num_workers > 0,
            prefetch_factor=4 if cfg.num_workers > 0 else None,
            # Its own generator: starting the workers must not consume the global RNG, whose state a
            # checkpoint restores (dropout draws from it).
            generator=torch.Generator().manual_seed(cfg.seed),
        )

    def to_device(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}

    def batch_source() -> Callable[[], dict[str, torch.Tensor]]:
        """The next training batch on the device: gathered there, or from the DataLoader."""
        if windows is not None:
            indices = batches.on_device(device)
            return lambda: windows.get_batch(next(indices))
        batch_iter = iter(loader)
        return lambda: to_device(next(batch_iter))

    def eval_policy() -> torch.nn.Module:
        return ema.model if ema is not None else policy

    def validate() -> float:
        m = eval_policy()
        was_training = m.training
        m.eval()
        losses = []
        rng = np.random.default_rng((cfg.seed, 7))  # the same validation samples every time
        with torch.no_grad(), autocast:
            for i in range(cfg.val_batches):
                idx = rng.choice(len(val_set), size=min(cfg.batch_size, len(val_set)), replace=False)
                batch = to_device(val_set.get_batch(idx))
                batch["draw_seed"] = draw_seeds(cfg.seed + 1, i, Dist(), len(idx), device)
                losses.append(float(m(batch)[0]))
        m.train(was_training)
        return float(np.mean(losses))

    def save_checkpoint(at: int, name: str | None = None) -> None:
        if not dist.main:
            return
        state = {
            "model": policy.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": at,
            "epoch": batches.epoch,
            "position": batches.position,
            "rng": rng_state(),
        }
        if ema is not None:
            state["ema"] = ema.state_dict()
        where = run_dir / "checkpoints" / (name or f"{at:07d}")
        try:
            checkpoint.save_checkpoint(
                where,
                eval_policy().state_dict(),
                checkpoint_meta(cfg, policy, store, list(train_eps), at),
                None if name else state,
                mark_last=name is None,
                overwrite=True,  # checkpoints/best, and a step saved again after --resume
            )
        except OSError as e:  # a full disk: its temporary folder is gone, the last one is intact
            raise ImitationError(
                f"writing the checkpoint of step {at} to {where} failed: {e.strerror or e}; "
                f"{_last_good(run_dir)}"
            ) from e

    # ---- the loop
    logger = Logger(cfg, run_dir, dist)
    best_score = (float("-inf"), float("-inf"))
    policy.train()
    bar = tqdm(total=cfg.steps, initial=step, disable=not dist.main or not sys.stderr.isatty(), desc="train")
    window_start, wait_s, window_steps = clock(), 0.0, 0
    next_batch = batch_source()
    deadline = clock() + 60.0 * cfg.max_minutes if cfg.max_minutes else None
    fit = deadline is not None and cfg.fit_schedule
    fit_from: tuple[int, float] | None = None  # (step, time) of the first log step: start-up excluded
    # A non-finite loss or gradient is flagged on the device at every step and read only where the
    # loop syncs anyway (log steps) and before every checkpoint, so a bad step is never saved. Under
    # torchrun no exchange is needed: gradients are averaged over the processes, so a NaN anywhere
    # makes every process's gradient norm NaN.
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)
    checked = step

    def check_finite() -> None:
        nonlocal checked
        if checked == step:
            return
        if nonfinite.item():
            raise ImitationError(
                f"the loss or its gradient became NaN or infinite between steps {checked} and {step} "
                f"(learning rate {scheduler.get_last_lr()[0]:.3g}); training stopped and nothing after "
                f"step {checked} was saved: {_last_good(run_dir, advice='')}. "
                f"Lower --{cfg.policy}.lr or --grad-clip-norm, or check the store ('imitation data "
                "validate')"
            )
        checked = step

    def fit_schedule(since: tuple[int, float] | None, now: float) -> tuple[int, float]:
        """Refit the schedule's end to the time left (at a log step); returns the rate's origin."""
        if since is None or step <= since[0]:
            return (step, now)
        total = fitted_total(step, cfg.steps, (step - since[0]) / max(now - since[1], 1e-9), deadline - now)
        if dist.world > 1:  # every process takes rank 0's clock
            shared = torch.tensor([total], device=device)
            torch.distributed.broadcast(shared, src=0)
            total = int(shared.item())
        if total != schedule.total and (dist.main and abs(total - schedule.total) > 0.05 * schedule.total):
            log.info("learning-rate schedule fitted to --max-minutes: it ends at step %d", total)
        schedule.total = total
        return since

    try:
        while step < cfg.steps:
            t0 = clock()
            batch = next_batch()
            wait_s += clock() - t0
            if symmetry is not None:
                batch = turn(batch, symmetry, turn_angles(cfg, step, dist, batches.per_rank, device))
            batch["draw_seed"] = draw_seeds(cfg.seed, step, dist, batches.per_rank, device)
            with autocast:
                loss, metrics = model(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(
                policy.parameters(), cfg.grad_clip_norm or float("inf")
            )
            nonfinite |= ~(torch.isfinite(loss.detach()) & torch.isfinite(grad_norm))
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update(policy)
            batches.advance()
            step += 1
            window_steps += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                check_finite()
                now = clock()
                elapsed = now - window_start
                if fit:
                    fit_from = fit_schedule(fit_from, now)
                global_loss = loss.detach().clone()
                if dist.world > 1:  # the mean over the processes' slices: the global batch's loss
                    torch.distributed.all_reduce(global_loss)
                    global_loss /= dist.world
                row = {
                    "step": step,
                    "loss": float(global_loss),
                    "grad_norm": float(grad_norm),
                    "lr": scheduler.get_last_lr()[0],
                    "schedule_steps": schedule.total,
                    "steps_per_s": window_steps / elapsed,
                    "samples_per_s": window_steps * cfg.batch_size / elapsed,
                    "data_wait": wait_s / elapsed,
                    "epoch": batches.epoch,
                    **{k: float(v) for k, v in metrics.items()},
                }
                logger.log(row)
                bar.set_postfix(
                    loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.1e}", wait=f"{row['data_wait']:.0%}"
                )
                window_start, wait_s, window_steps = clock(), 0.0, 0
            if val_set is not None and cfg.val_every and step % cfg.val_every == 0 and dist.main:
                logger.log({"step": step, "val_loss": validate()})
            if on_eval is not None and cfg.eval_every and step % cfg.eval_every == 0 and dist.main:
                m = eval_policy()
                was_training = m.training
                result = on_eval(m.eval(), step)
                m.train(was_training)
                logger.log({"step": step, **result})
                rate = result.get("success_rate")
                # Success rate first; coverage (PushT) breaks ties, which matter while it is 0. An
                # exact tie goes to the later checkpoint: the same evidence, more training.
                score = (rate, result.get("mean_max_coverage", 0.0))
                if rate is not None and score >= best_score:
                    best_score = score
                    check_finite()
                    save_checkpoint(step, name="best")
                    log.info("step %d: success %.1f%%, the best so far: checkpoints/best", step, 100 * rate)
            if step % cfg.save_every == 0 or step == cfg.steps:
                check_finite()
                save_checkpoint(step)
            if deadline is not None and out_of_time(deadline, dist, device, step % cfg.log_every == 0):
                log.info("max_minutes=%g reached at step %d: stopping", cfg.max_minutes, step)
                if step % cfg.save_every:
                    check_finite()
                    save_checkpoint(step)
                break
    finally:
        bar.close()
        logger.close()
        if dist.world > 1:
            torch.distributed.destroy_process_group()
    return run_dir


def out_of_time(deadline: float, dist: Dist, device: torch.device, log_step: bool) -> bool:
    """Whether the wall-time budget is spent: checked every step by a single process; torchrun
    processes follow rank 0's clock, shared at log steps (so they all stop at the same step)."""
    if dist.world == 1:
        return clock() > deadline
    if not log_step:
        return False
    over = torch.tensor([float(clock() > deadline)], device=device)
    torch.distributed.broadcast(over, src=0)
    return bool(over.item())


def simulation_eval(cfg: TrainConfig) -> Callable[[torch.nn.Module, int], dict[str, float]]:
    """The periodic evaluation: success rate on the task the demos came from."""

    robot = DemoStore.open(cfg.store).robot
    env_id = cfg.env or robot.get("env_id")
    if not env_id:
        raise ConfigError(
            f"--eval-every needs a simulated task, but {cfg.store} was not recorded in simulation; name one "
            "with --env, or use --eval-every 0"
        )
    if not cfg.env:
        # A mapping's path as typed when recording may be relative to where that ran.
        env_id = locate(
            env_id, env_path=robot.get("env_path"), near=[cfg.store], origin=f"demo store {cfg.store}"
        )
    # Before training starts, not at the first evaluation an hour later.
    check_env_id(env_id, trusted=cfg.env is not None, origin=f"the demo store {cfg.store}")
    seeds = list(range(cfg.eval_seed, cfg.eval_seed + cfg.eval_episodes))

    def run(policy: torch.nn.Module, step: int) -> dict[str, float]:
        kwargs = env_kwargs_for({"io": policy.io.to_dict()})
        episodes, infer_s = rollout(policy, env_id, seeds, env_kwargs=kwargs, trusted=cfg.env is not None)
        s = summarize(episodes)
        out = {
            "success_rate": s["success_rate"],
            "eval_return": s["mean_return"],
            "eval_length": s["mean_length"],
        }
        if "mean_max_coverage" in s:
            out["mean_max_coverage"] = s["mean_max_coverage"]
        return out

    return run


def _store_and_policy(argv: list[str]) -> tuple[str, str, tuple[str, ...] | None]:
    """``--store``, ``--policy`` and the policy's ``--<policy>.obs-keys`` from a command line
    (defaults: TrainConfig's, and the recipe's choice of inputs), which the default recipe needs
    before the rest is parsed on top of it."""
    found = {"--store": TrainConfig.store, "--policy": TrainConfig.policy}
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name in found:
            if eq:
                found[name] = value
            elif i + 1 < len(argv):
                found[name] = argv[i + 1]
    policy = found["--policy"]
    keys: tuple[str, ...] | None = None
    for i, arg in enumerate(argv):
        if arg.replace("_", "-") == f"--{policy}.obs-keys":
            rest = argv[i + 1 :]
            n = next((j for j, a in enumerate(rest) if a.startswith("--")), len(rest))
            keys = tuple(rest[:n])
    return found["--store"], policy, keys


def main(argv: list[str] | None = None, prog: str = "imitation train") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--resume" in argv:
        # The run's own config, with the flags given now on top (e.g. more --steps).
        i = argv.index("--resume")
        if i + 1 >= len(argv):
            raise ConfigError("--resume needs a run directory")
        run = Path(argv[i + 1])
        if not (run / "config.yaml").is_file():
            raise ConfigError(
                f"--resume {run}: not a run directory (no config.yaml); pass the --out of an earlier run"
            )
        argv = ["--config", str(run / "config.yaml"), *argv]
    default = None
    if "--config" not in argv and "--resume" not in argv and not {"-h", "--help"} & set(argv):
        default = from_dict(TrainConfig, recipe(*_store_and_policy(argv)), where="the default recipe")
    cfg = parse(TrainConfig, argv, prog=prog, description=TrainConfig.__doc__, default=default)
    if default is not None:
        print(describe(cfg, cfg.fps), flush=True)  # stdout: stderr is for the one line of an error
    if cfg.resume:
        cfg.out = cfg.resume
    run_dir = train(cfg, on_eval=simulation_eval(cfg) if cfg.eval_every else None)
    if int(os.environ.get("RANK", "0")) == 0:
        steps = read_meta(run_dir)["step"]
        print(f"{run_dir}: trained {steps} steps; checkpoints in {run_dir / 'checkpoints'}")
    return 0
