"""``imitation view``: write what a store or a simulated task shows to an mp4 (or a PNG).

- ``imitation view --store demos/pick.zarr --episodes 0 1`` — the episodes' camera frames; a store
  without images is re-simulated from its actions and seeds (the task is in the store's attrs;
  ``--env`` names it instead, and must where that task imports code).
- ``imitation view --env imitation/PickPlace-v0 --seed 3`` — a live episode of the task's
  scripted expert.

The file is marked as imitation's (``imitation.outputs``); an existing --out without that mark is
refused before any frame is made, unless ``--overwrite``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from envs.mapping import check_env_id, locate, make
from imitation import config, outputs
from imitation.data.shards import frame_reader
from imitation.data.store import DemoStore
from imitation.errors import ConfigError


@dataclass
class ViewConfig:
    """Write an mp4 (or, with --png, one picture) of stored episodes or of a live simulated episode."""

    out: Path = Path("view.mp4")
    """Output file: .mp4 for a video, .png for the first frame only."""
    store: Path | None = None
    """Demo store to show episodes of."""
    episodes: tuple[int, ...] = (0,)
    """Episodes of --store to show, one after another."""
    env: str | None = None
    """Simulated task to show live with its scripted expert; with --store, the task to re-simulate
    the episodes in (default: the store's; one that imports code runs only when named here)."""
    seed: int = 0
    """Seed of the live episode."""
    camera: str = "front"
    """Camera to show (a stored images/<camera>, or a simulation camera: top, front, wrist)."""
    size: tuple[int, int] = (480, 640)
    """Height and width of re-rendered simulation frames."""
    fps: float | None = None
    """Frames per second of the video (default: the control rate)."""
    overwrite: bool = False
    """Replace --out even if imitation did not write it."""


def _sim_frames(env_id: str, seed: int, actions: np.ndarray | None, cfg: ViewConfig) -> Iterator[np.ndarray]:
    env = make(env_id, render_mode="rgb_array").unwrapped
    obs, _ = env.reset(seed=seed)
    expert = env.expert() if actions is None else None
    steps = actions if actions is not None else range(round(env.time_limit_s * env.arm.control_hz))
    yield env._render(cfg.camera, cfg.size)
    for a in steps:
        obs, _, terminated, truncated, _ = env.step(expert(obs) if expert else a)
        yield env._render(cfg.camera, cfg.size)
        if expert and (terminated or truncated):
            break
    env.close()


def frames(cfg: ViewConfig) -> tuple[Iterator[np.ndarray], float]:
    if cfg.store is None and cfg.env is None:
        raise ConfigError("give --store (recorded episodes) or --env (a live simulated episode)")
    if cfg.store is None:
        return _sim_frames(cfg.env, cfg.seed, None, cfg), 50.0

    store = DemoStore.open(cfg.store)
    key = f"images/{cfg.camera}"
    env_id = cfg.env or store.robot.get("env_id")
    if key not in store.features and env_id:
        if not cfg.env:  # a mapping's path as typed when recording, found from here
            env_id = locate(
                env_id,
                env_path=store.robot.get("env_path"),
                near=[cfg.store],
                origin=f"demo store {cfg.store}",
            )
        # Before any frame: a task the store names may not import code (the user's --env may).
        check_env_id(env_id, trusted=cfg.env is not None, origin=f"demo store {cfg.store}")

    def gen() -> Iterator[np.ndarray]:
        for e in cfg.episodes:
            start, end = store.episode_range(e)
            if key in store.features:
                yield from frame_reader(store, key)(np.arange(start, end))
            else:
                if not env_id:
                    cams = [k for k in store.features if k.startswith("images/")]
                    raise ConfigError(
                        f"{cfg.store} has no {key!r} (cameras: {cams}) and no simulated task to re-render"
                    )
                seed = int(store.episode_meta(e)["seed"])
                yield from _sim_frames(env_id, seed, store.read("action", start, end), cfg)

    return gen(), store.fps


def write_video(path: Path, images: Iterator[np.ndarray], fps: float) -> int:
    """Write RGB frames to an mp4 (or the first one to a PNG), marked as imitation's; returns the
    number of frames. The file appears complete or not at all (written beside it, then renamed)."""

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        outputs.write_png(path, next(iter(images)))
        return 1
    tmp = outputs.temporary_video(path)
    writer = None
    n = 0
    try:
        for img in images:
            if writer is None:
                h, w = img.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            writer.write(cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
            n += 1
        if writer is not None:
            writer.release()
            if path.suffix.lower() == ".mp4":
                outputs.mark_mp4(tmp)
            tmp.replace(path)
    finally:
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
    return n


def main(argv: Sequence[str], prog: str = "imitation view") -> int:
    cfg = config.parse(ViewConfig, argv, prog=prog)
    outputs.check_file(cfg.out, command="imitation view", overwrite=cfg.overwrite)
    images, fps = frames(cfg)
    n = write_video(cfg.out, images, cfg.fps or fps)
    print(f"{cfg.out}: {n} frame(s)")
    return 0
