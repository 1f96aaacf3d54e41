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
from typing import Annotated

import cv2
import numpy as np

from envs.mapping import check_env_id, locate, make
from imitation import config, outputs
from imitation.checks import DEMO_STORE, SEED, OutPath, Range, check_fields
from imitation.data.shards import frame_reader
from imitation.data.store import DemoStore
from imitation.errors import ConfigError, ImitationError


@dataclass
class ViewConfig:
    """Write an mp4 (or, with --png, one picture) of stored episodes or of a live simulated episode."""

    out: Annotated[Path, OutPath("file", (".mp4", ".png"))] = Path("view.mp4")
    """Output file: .mp4 for a video, .png for the first frame only."""
    store: Annotated[Path | None, DEMO_STORE] = None
    """Demo store to show episodes of."""
    episodes: Annotated[tuple[int, ...], Range(ge=0)] = (0,)
    """Episodes of --store to show, one after another."""
    env: str | None = None
    """Simulated task to show live with its scripted expert; with --store, the task to re-simulate
    the episodes in (default: the store's; one that imports code runs only when named here)."""
    seed: Annotated[int, SEED] = 0
    """Seed of the live episode."""
    camera: str = "front"
    """Camera to show (a stored images/<camera>, or a simulation camera: top, front, wrist)."""
    size: Annotated[tuple[int, int], Range(ge=8, le=4096)] = (480, 640)
    """Height and width of re-rendered simulation frames."""
    fps: Annotated[float | None, Range(gt=0, le=1000)] = None
    """Frames per second of the video (default: the control rate)."""
    overwrite: bool = False
    """Replace --out even if imitation did not write it."""

    def __post_init__(self) -> None:
        check_fields(self)


def _sim_frames(env_id: str, seed: int, actions: np.ndarray | None, cfg: ViewConfig) -> Iterator[np.ndarray]:
    env = make(env_id, render_mode="rgb_array").unwrapped
    if not hasattr(env, "_render") or (actions is None and not hasattr(env, "expert")):
        env.close()
        raise ConfigError(
            f"{env_id}: view renders the project's own tasks (envs/); for another task record it with "
            "cameras (--obs-mode images) and view the store"
        )
    obs, _ = env.reset(seed=seed)
    expert = env.expert() if actions is None else None
    steps = actions if actions is not None else range(round(env.time_limit_s * env.arm.control_hz))
    try:
        first = env._render(cfg.camera, cfg.size)
    except (ValueError, KeyError) as e:
        cams = [env.model.camera(i).name for i in range(env.model.ncam)]
        env.close()
        raise ConfigError(
            f"--camera {cfg.camera!r} --size {cfg.size[0]} {cfg.size[1]}: {env_id} cannot render it ({e}); "
            f"its cameras: {', '.join(c.replace('/wrist', '_wrist') for c in cams)}"
        ) from None
    yield first
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

    bad = [e for e in cfg.episodes if not 0 <= e < store.n_episodes]
    if bad:
        raise ConfigError(
            f"--episodes {' '.join(map(str, bad))}: {cfg.store} holds {store.n_episodes} episode(s); "
            f"give indices 0..{store.n_episodes - 1}"
        )
    if key not in store.features and not env_id:
        cams = [k.removeprefix("images/") for k in store.features if k.startswith("images/")]
        raise ConfigError(
            f"--camera {cfg.camera!r}: {cfg.store} has no images/{cfg.camera} (its cameras: "
            f"{', '.join(cams) or 'none'}) and names no simulated task to re-render it in"
        )

    def gen() -> Iterator[np.ndarray]:
        for e in cfg.episodes:
            start, end = store.episode_range(e)
            if key in store.features:
                yield from frame_reader(store, key)(np.arange(start, end))
            else:
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
                if not writer.isOpened():
                    raise ImitationError(
                        f"--out {path}: OpenCV cannot open an mp4 writer there (a full disk, or no mp4 "
                        "encoder); free some space or choose another directory"
                    )
            writer.write(cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
            n += 1
        if writer is not None:
            writer.release()
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise ImitationError(
                    f"--out {path}: the video could not be written (no space left on the device, or no "
                    "writable mp4 encoder); free some space or choose another directory"
                )
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
    if n == 0:
        raise ImitationError(f"{cfg.out}: no frames to write (the episodes are empty)")
    print(f"{cfg.out}: {n} frame(s)")
    return 0
