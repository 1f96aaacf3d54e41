"""``imitation quickstart``: the project's main job, end to end on a laptop CPU.

A task's scripted expert records demonstrations into a demo store through the real recorder;
the store is summarised and validated; a small policy trains on it (ACT by default, Diffusion
Policy with ``--policy diffusion``); the evaluator rolls it out on unseen seeds and reports its
success rate, videos and a plot.

``--obs state`` (the default) records joint state, object poses and a 96x96 top camera and trains
``configs/train/<task>_<policy>_state.yaml`` on the state and the object poses. ``--obs images``
records what a real cell has, joint state and the cameras, and nothing else, and trains the
camera-based CPU config ``configs/train/<task>_<policy>_camera_cpu.yaml``; the cameras recorded
are those that config reads.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from envs import ENVS, TASK_NAMES, first_camera
from imitation import config
from imitation.checks import SEED, OneOf, OutPath, Range, check_fields
from imitation.data.check import format_info, info, validate
from imitation.data.store import FORMAT, DemoStore
from imitation.errors import ConfigError
from imitation.evaluate import EvalConfig, check_outputs, evaluate, format_summary
from imitation.policies import PolicyName
from imitation.record import RecordConfig, record_scripted
from imitation.train import TrainConfig, check_run_dir, simulation_eval, train

ROOT = Path(__file__).resolve().parents[1]


CONFIG_SUFFIX = {"state": "state", "images": "camera_cpu"}


def train_config(env: str, policy: str, obs: str = "state") -> Path:
    """The shipped training config of a task, a policy and an observation set (state: the
    object poses; images: the cameras, CPU-sized)."""

    if env not in TASK_NAMES:
        raise ConfigError(f"the quickstart runs the tasks of envs/: {', '.join(TASK_NAMES)}; got {env!r}")
    path = ROOT / "configs" / "train" / f"{TASK_NAMES[env]}_{policy}_{CONFIG_SUFFIX[obs]}.yaml"
    if not path.is_file():
        raise ConfigError(f"there is no {obs}-based {policy} config for {env} ({path.name}); try --obs state")
    return path


@dataclass
class QuickstartConfig:
    """Record scripted demonstrations into a demo store, inspect and validate it, train a policy on it."""

    out: Annotated[Path, OutPath("dir")] = Path("demos/quickstart.zarr")
    """Where to write the demo store."""
    env: str = "imitation/PickPlace-v0"
    """Simulated task whose scripted expert records the demonstrations."""
    policy: PolicyName = "act"
    """Policy to train: act or diffusion."""
    obs: Literal["state", "images"] = "state"
    """What the policy sees: state (joints and the simulator's object poses, <task>_<policy>_state.yaml)
    or images (joints and the cameras a real cell has, nothing privileged; <task>_<policy>_camera_cpu.yaml)."""
    episodes: Annotated[int, Range(ge=1, le=100_000)] = 50
    """Number of demonstrations to record."""
    image_size: Annotated[int, Range(ge=8, le=1024)] = 96
    """Side of the square camera images, in pixels."""
    image_codec: Annotated[str, OneOf(("zstd", "blosc", "jpeg", "none"))] = "zstd"
    """Codec of the camera: zstd/blosc (lossless) or jpeg."""
    seed: Annotated[int, SEED] = 0
    """First simulation seed (episode attempts use seed, seed + 1, ...)."""
    overwrite: bool = False
    """Replace an existing demo store at --out and the training run at --run (nothing else is
    ever replaced)."""
    train_steps: Annotated[int | None, Range(ge=1, le=10**9)] = None
    """Training steps (default: those of the training config)."""
    run: Annotated[Path, OutPath("dir")] = Path("runs/quickstart")
    """Run directory of the training (checkpoints, metrics.jsonl)."""
    eval_episodes: Annotated[int, Range(ge=1, le=100_000)] = 100
    """Unseen seeds to evaluate the trained policy on."""
    eval_seed: Annotated[int, SEED] = 100_000
    """First evaluation seed (the demos use seeds from --seed up)."""
    eval_out: Annotated[Path, OutPath("dir")] = Path("eval/quickstart")
    """Where the evaluation writes results.json, videos and its plot."""
    fast: bool = False
    """A tiny run (4 episodes, 10 training steps, 4 evaluation episodes) for tests."""

    def __post_init__(self) -> None:
        check_fields(self)


def is_demo_store(path: Path) -> bool:
    """Whether ``path`` is a demo store (its root zarr.json says so): what --overwrite may replace."""

    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("attributes", {}).get("format") == FORMAT


def record(cfg: QuickstartConfig, obs_keys: Sequence[str]) -> dict:
    """Record the demos: with --obs images, the cameras ``obs_keys`` reads and no object poses."""

    cameras = tuple(k.removeprefix("images/") for k in obs_keys if k.startswith("images/"))
    rec = RecordConfig(
        env=cfg.env,
        episodes=4 if cfg.fast else cfg.episodes,
        out=cfg.out,
        seed=cfg.seed,
        obs_mode="both" if cfg.obs == "state" else "images",
        cameras=(first_camera(cfg.env) if cfg.env in ENVS else "top",) if cfg.obs == "state" else cameras,
        image_size=(cfg.image_size, cfg.image_size),
        image_codec=cfg.image_codec,
    )
    return record_scripted(rec)


def main(argv: Sequence[str], prog: str = "imitation quickstart") -> int:
    cfg = config.parse(QuickstartConfig, argv, prog=prog)
    train_yaml = train_config(
        cfg.env, cfg.policy, cfg.obs
    )  # an unknown task fails here, before anything runs

    tc = config.load_yaml(TrainConfig, train_yaml)
    tc.store, tc.out, tc.overwrite = str(cfg.out), str(cfg.run), cfg.overwrite
    # Everything that would refuse to be replaced refuses now, before minutes of recording.
    sidecar = cfg.out.with_suffix(".yaml")
    config.check_save(cfg, sidecar)
    if (cfg.run / "checkpoints").exists() and not cfg.overwrite:
        raise ConfigError(
            f"{cfg.run} already holds a training run; pass --overwrite to replace it or --run to choose another"
        )
    check_run_dir(tc, flag="--run")

    eval_cfg = EvalConfig(
        checkpoint=str(cfg.run),
        episodes=4 if cfg.fast else cfg.eval_episodes,
        seed=cfg.eval_seed,
        videos=2 if cfg.fast else 4,
        out=str(cfg.eval_out),
    )
    check_outputs(eval_cfg)
    t0 = time.perf_counter()
    if cfg.out.exists():
        if not cfg.overwrite:
            raise ConfigError(
                f"{cfg.out} already exists; pass --overwrite to replace it or --out to choose another"
            )
        if not is_demo_store(cfg.out):
            raise ConfigError(
                f"{cfg.out} exists and is not a demo store, so --overwrite does not replace it; "
                "move it away or choose another --out"
            )

        shutil.rmtree(cfg.out)
    print(f"== 1/5 recording scripted {cfg.env} demonstrations into {cfg.out}")
    result = record(cfg, getattr(tc, cfg.policy).obs_keys)
    print(
        f"{result['episodes']} episodes, {result['frames']} frames in {result['wall_s']:.1f} s "
        f"({result['failed']} failed expert episode(s) discarded)"
    )
    config.save(cfg, sidecar)  # the resolved configuration, next to the store
    store = DemoStore.open(cfg.out)
    print("\n== 2/5 imitation data info --stats")
    print(format_info(info(store, with_stats=True)))
    print("\n== 3/5 imitation data validate")
    report = validate(store)
    for line in report.warnings + report.errors:
        print(line)
    print("OK" if report.ok else "FAILED")
    print(f"\n== 4/5 imitation train --config {train_yaml.relative_to(ROOT)} --store {cfg.out}")
    tc.steps = 10 if cfg.fast else (cfg.train_steps or tc.steps)
    tc.log_every = max(1, tc.steps // 10)
    tc.val_every = tc.save_every = max(1, tc.steps // 4)
    tc.wandb = "disabled"
    if cfg.fast and tc.eval_every:  # the selection path too, in miniature
        tc.eval_every, tc.eval_episodes = tc.steps, 2
    t = time.perf_counter()
    # A config that selects its checkpoint by success in simulation (--eval-every) does so here too.
    run = train(tc, on_eval=simulation_eval(tc) if tc.eval_every else None)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        if "loss" in r:
            print(f"step {r['step']:>6}  loss {r['loss']:.4f}  ({r['steps_per_s']:.1f} steps/s)")
        if "val_loss" in r:
            print(f"step {r['step']:>6}  validation loss {r['val_loss']:.4f}")
        if "success_rate" in r:
            print(
                f"step {r['step']:>6}  success {r['success_rate']:.0%} on {tc.eval_episodes} selection "
                f"seeds from {tc.eval_seed}"
            )
    print(f"trained {tc.steps} steps in {time.perf_counter() - t:.1f} s; checkpoint in {run / 'checkpoints'}")

    best = run / "checkpoints" / "best"  # kept by the config's --eval-every selection, if any
    eval_cfg.checkpoint = str(best if best.exists() else run)
    print(
        f"\n== 5/5 imitation eval --checkpoint {eval_cfg.checkpoint} --episodes {eval_cfg.episodes} --seed {cfg.eval_seed}"
    )
    summary = evaluate(eval_cfg)
    print(format_summary(summary))
    if summary.get("videos"):
        seen = (
            " (the scene, and beside it the camera images the policy received)" if cfg.obs == "images" else ""
        )
        print(f"videos{seen}: {', '.join(summary['videos'])}")
    print(
        f"\ndone in {time.perf_counter() - t0:.1f} s; the store is at {cfg.out}, its config at "
        f"{cfg.out.with_suffix('.yaml')}"
    )
    return 0 if report.ok else 1
