"""``imitation quickstart``: the project's main job, end to end on a laptop CPU.

What runs today: a scripted expert drives a synthetic 6-joint arm (smooth minimum-jerk reaches
between random poses, drawn by a small top-down camera) through the real episode writer into a
real demo store; the store is then summarised, validated, its normalisation statistics computed,
and a batch of training windows is read from it. The simulated MuJoCo tasks, training and
evaluation join this command as they land.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imitation import config

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
LIMITS_RAD = np.array([[-1.9, 1.9], [-1.7, 1.7], [-1.6, 1.6], [-1.7, 1.7], [-2.8, 2.8], [0.0, 1.0]])


@dataclass
class QuickstartConfig:
    """Record scripted demonstrations into a demo store, then inspect, validate and read it."""

    out: Path = Path("demos/quickstart.zarr")
    """Where to write the demo store."""
    episodes: int = 20
    """Number of demonstrations to record."""
    fps: float = 50.0
    """Control rate (frames per second)."""
    image_size: int = 96
    """Side of the square camera image, in pixels."""
    image_codec: str = "jpeg"
    """Codec of the camera: jpeg (lossy, small) or zstd/blosc (lossless)."""
    seed: int = 0
    """Seed of the scripted expert (episode e uses seed + e)."""
    overwrite: bool = False
    """Replace an existing store at --out."""
    fast: bool = False
    """A tiny run (4 short episodes) for tests."""


def min_jerk(q0: np.ndarray, q1: np.ndarray, n: int) -> np.ndarray:
    """Minimum-jerk interpolation (Flash & Hogan 1985): smooth start and stop, (n, D)."""
    s = np.linspace(0.0, 1.0, n)[:, None]
    blend = 10 * s**3 - 15 * s**4 + 6 * s**5
    return q0 + (q1 - q0) * blend


def draw_arm(q: np.ndarray, size: int) -> np.ndarray:
    """A top-down picture of a planar 3-link arm from joint angles: links, joints and gripper."""
    img = np.full((size, size, 3), (200, 190, 170), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    angles = np.cumsum([q[0], q[1] * 0.8, q[2] * 0.8])
    lengths = np.array([0.3, 0.25, 0.15]) * size
    p = np.array([size / 2, size * 0.9])
    colors = ((40, 90, 200), (40, 160, 90), (200, 120, 30))
    for a, length, c in zip(angles, lengths, colors, strict=True):
        tip = p + length * np.array([np.sin(a), -np.cos(a)])
        for t in np.linspace(0, 1, int(length)):
            x, y = p + t * (tip - p)
            img[(xx - x) ** 2 + (yy - y) ** 2 <= 4] = c
        p = tip
    r = 2 + 3 * q[5]
    img[(xx - p[0]) ** 2 + (yy - p[1]) ** 2 <= r * r] = (220, 40, 40)
    return img


def record(cfg: QuickstartConfig) -> Path:
    from tqdm import tqdm

    from imitation.data.store import EpisodeWriter

    features = {
        "state": {"shape": [6], "dtype": "float32", "kind": "state", "names": list(JOINTS)},
        "action": {"shape": [6], "dtype": "float32", "kind": "action", "names": list(JOINTS)},
        "images/top": {
            "shape": [cfg.image_size, cfg.image_size, 3],
            "dtype": "uint8",
            "kind": "image",
            "codec": cfg.image_codec,
        },
    }
    robot = {"name": "synthetic-6dof", "joint_names": list(JOINTS), "limits_rad": LIMITS_RAD.tolist()}
    n_episodes = 4 if cfg.fast else cfg.episodes
    with EpisodeWriter(cfg.out, features=features, fps=cfg.fps, robot=robot) as w:
        for e in tqdm(range(n_episodes), desc="recording", unit="episode", disable=not sys.stderr.isatty()):
            rng = np.random.default_rng(cfg.seed + e)
            poses = rng.uniform(LIMITS_RAD[:, 0] * 0.6, LIMITS_RAD[:, 1] * 0.6, size=(4, 6))
            poses[:, 5] = [1.0, 0.0, 0.0, 1.0]  # open, close on the object, carry, release
            steps = 10 if cfg.fast else int(cfg.fps)
            path = np.concatenate([min_jerk(poses[i], poses[i + 1], steps) for i in range(3)])
            w.start_episode(task="reach, grasp and place", operator="scripted", seed=cfg.seed + e)
            q = path[0].copy()
            for i, target in enumerate(path):
                # First-order servo: the joints lag the commanded target, as position servos do.
                q += 0.5 * (target - q)
                w.add_frame(
                    {
                        "state": q,
                        "action": target,
                        "images/top": draw_arm(q, cfg.image_size),
                        "timestamp": i / cfg.fps,
                    }
                )
            w.save_episode(outcome="success")
    return cfg.out


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
    print(f"== 1/4 recording scripted demonstrations into {cfg.out}")
    record(cfg)
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
