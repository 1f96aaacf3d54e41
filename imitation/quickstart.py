"""``imitation quickstart``: the project's main job, end to end on a laptop CPU.

What runs today: the PickPlace task's scripted expert records demonstrations (joint state, object
poses and a 96x96 top camera) into a demo store through the real recorder; the store is then
summarised, validated, its normalisation statistics computed, and a batch of training windows is
read from it. Training and evaluation join this command as they land.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from imitation import config


@dataclass
class QuickstartConfig:
    """Record scripted demonstrations into a demo store, then inspect, validate and read it."""

    out: Path = Path("demos/quickstart.zarr")
    """Where to write the demo store."""
    env: str = "imitation/PickPlace-v0"
    """Simulated task whose scripted expert records the demonstrations."""
    episodes: int = 50
    """Number of demonstrations to record."""
    image_size: int = 96
    """Side of the square top-camera image, in pixels."""
    image_codec: str = "zstd"
    """Codec of the camera: zstd/blosc (lossless) or jpeg."""
    seed: int = 0
    """First simulation seed (episode attempts use seed, seed + 1, ...)."""
    overwrite: bool = False
    """Replace an existing store at --out."""
    fast: bool = False
    """A tiny run (4 episodes) for tests."""


def record(cfg: QuickstartConfig) -> dict:
    from imitation.record import RecordConfig, record_scripted

    rec = RecordConfig(
        env=cfg.env,
        episodes=4 if cfg.fast else cfg.episodes,
        out=cfg.out,
        seed=cfg.seed,
        obs_mode="both",
        cameras=("top",),
        image_size=(cfg.image_size, cfg.image_size),
        image_codec=cfg.image_codec,
    )
    return record_scripted(rec)


def main(argv: Sequence[str], prog: str = "imitation quickstart") -> int:
    from imitation.data.check import format_info, info, validate
    from imitation.data.dataset import WindowDataset, WindowSpec
    from imitation.data.store import DemoStore
    from imitation.errors import ConfigError

    cfg = config.parse(QuickstartConfig, argv, prog=prog)
    t0 = time.perf_counter()
    if cfg.out.exists():
        if not cfg.overwrite:
            raise ConfigError(
                f"{cfg.out} already exists; pass --overwrite to replace it or --out to choose another"
            )
        import shutil

        shutil.rmtree(cfg.out)
    print(f"== 1/4 recording scripted {cfg.env} demonstrations into {cfg.out}")
    result = record(cfg)
    print(
        f"{result['episodes']} episodes, {result['steps']} frames in {result['wall_s']:.1f} s "
        f"({result['failed']} failed expert episode(s) discarded)"
    )
    config.save(cfg, cfg.out.with_suffix(".yaml"))  # the resolved configuration, next to the store
    store = DemoStore.open(cfg.out)
    print("\n== 2/4 imitation data info --stats")
    print(format_info(info(store, with_stats=True)))
    print("\n== 3/4 imitation data validate")
    report = validate(store)
    for line in report.warnings + report.errors:
        print(line)
    print("OK" if report.ok else "FAILED")
    print("\n== 4/4 reading training windows (Diffusion Policy layout: 2 observations, 16 actions)")
    ds = WindowDataset(store, WindowSpec.diffusion(2, 16, ("state", "images/top")), cache="ram")
    t = time.perf_counter()
    batch = ds.get_batch(list(range(0, len(ds), max(1, len(ds) // 64)))[:64])
    ms = (time.perf_counter() - t) * 1e3
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in batch.items() if hasattr(v, "shape"))
    print(f"{len(ds)} windows; one batch in {ms:.1f} ms: {shapes}")
    print(
        f"\ndone in {time.perf_counter() - t0:.1f} s; the store is at {cfg.out}, its config at "
        f"{cfg.out.with_suffix('.yaml')}"
    )
    return 0 if report.ok else 1
