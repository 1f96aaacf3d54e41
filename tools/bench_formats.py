"""Import speed of a LeRobot dataset, beside LeRobot's own frame-reading rate on the same dataset.

    python tools/bench_formats.py --lerobot-python /path/to/lerobot-env/bin/python

One run: (1) LeRobot's recorder (``LeRobotDataset.create`` / ``add_frame`` / ``save_episode``, run with
``--lerobot-python``) writes a two-camera 480 x 640 dataset with LeRobot's default video settings
(AV1 by libsvtav1, yuv420p, GOP 2, CRF 30), unless ``--dataset`` already holds it; (2) this
project imports it (``imitation data import lerobot``, JPEG cameras, the default) and the time per
timestep is taken; (3) LeRobot's ``LeRobotDataset`` reads every item of the same dataset (its default
decoder, torchcodec) in its own process, timed the same way. Prints a JSON line per step and a
Markdown row. The LeRobot environment needs FFmpeg's libraries for torchcodec (see
``tools/lerobot_fixture.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CAMERAS = ("observation.images.high", "observation.images.wrist")
SHAPE = (480, 640)


def frame(i: int, camera: int) -> np.ndarray:
    """A moving scene: smooth colour fields and a bright square crossing the frame."""
    h, w = SHAPE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = 120 + 80 * np.sin(xx / 90 + 0.05 * i + camera)
    img[..., 1] = 120 + 80 * np.cos(yy / 70 - 0.04 * i)
    img[..., 2] = 100 + (xx + yy) / (w + h) * 100
    x0 = (7 * i + 200 * camera) % (w - 80)
    img[200:280, x0 : x0 + 80] = 250
    return img


def make(out: Path, episodes: int, length: int) -> None:
    """Runs with LeRobot installed: the dataset as LeRobot's recorder writes it."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": [f"j{i}" for i in range(6)]},
        "action": {"dtype": "float32", "shape": (6,), "names": [f"j{i}" for i in range(6)]},
        **{
            k: {"dtype": "video", "shape": (*SHAPE, 3), "names": ["height", "width", "channels"]}
            for k in CAMERAS
        },
    }
    ds = LeRobotDataset.create(repo_id="bench/two_cameras", fps=30, features=features, root=out,
                               robot_type="so101_follower", use_videos=True)  # fmt: skip
    rng = np.random.default_rng(0)
    g = 0
    for _ in range(episodes):
        for _ in range(length):
            ds.add_frame({"observation.state": rng.normal(size=6).astype(np.float32),
                          "action": rng.normal(size=6).astype(np.float32), "task": "pick",
                          **{k: frame(g, c) for c, k in enumerate(CAMERAS)}})  # fmt: skip
            g += 1
        ds.save_episode()
    ds.finalize()


def read(root: Path) -> dict:
    """Runs with LeRobot installed: every item of the dataset through LeRobotDataset."""
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    torch.set_num_threads(os.cpu_count() or 1)
    ds = LeRobotDataset("bench/two_cameras", root=root)
    t0 = time.perf_counter()
    for i in range(len(ds)):
        item = ds[i]
        assert item[CAMERAS[0]].shape[-2:] == SHAPE
    wall = time.perf_counter() - t0
    import lerobot

    return {"step": "lerobot_read", "lerobot": lerobot.__version__, "timesteps": len(ds), "wall_s": wall,
            "timesteps_per_s": len(ds) / wall, "decoder": ds.video_backend}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lerobot-python", help="the Python of an environment with LeRobot installed")
    ap.add_argument("--dataset", type=Path, default=ROOT / "bench/formats/two_cameras")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--length", type=int, default=60, help="timesteps per episode")
    ap.add_argument("--role", choices=["make", "read"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "make":
        make(args.dataset, args.episodes, args.length)
        return 0
    if args.role == "read":
        print(json.dumps(read(args.dataset)))
        return 0
    rows = []
    if not (args.dataset / "meta/info.json").exists():
        if not args.lerobot_python:
            raise SystemExit(
                f"error: {args.dataset} does not exist; pass --lerobot-python to make it with LeRobot"
            )
        t0 = time.perf_counter()
        subprocess.run([args.lerobot_python, __file__, "--role", "make", "--dataset", str(args.dataset),
                        "--episodes", str(args.episodes), "--length", str(args.length)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        rows.append({"step": "lerobot_record", "wall_s": time.perf_counter() - t0})
        print(json.dumps(rows[-1]), flush=True)
    sys.path.insert(0, str(ROOT))
    from imitation.data.lerobot import import_lerobot

    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
        t0 = time.perf_counter()
        store = import_lerobot(args.dataset, Path(tmp) / "imported.zarr", progress=False)
        wall = time.perf_counter() - t0
        n = store.n_frames
        rows.append({"step": "import", "timesteps": n, "camera_frames": 2 * n, "wall_s": wall,
                     "timesteps_per_s": n / wall, "camera_frames_per_s": 2 * n / wall})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
        shutil.rmtree(Path(tmp) / "imported.zarr")
    if args.lerobot_python:
        done = subprocess.run([args.lerobot_python, __file__, "--role", "read", "--dataset", str(args.dataset)],
                              check=True, capture_output=True, text=True)  # fmt: skip
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    imp = next(r for r in rows if r["step"] == "import")
    lr = next((r for r in rows if r["step"] == "lerobot_read"), None)
    print(f"| {imp['timesteps']} timesteps, 2 x {SHAPE[0]}x{SHAPE[1]} AV1 | import {imp['timesteps_per_s']:.0f} "
          f"timesteps/s ({imp['camera_frames_per_s']:.0f} frames/s) | LeRobot read "
          + (f"{lr['timesteps_per_s']:.0f} timesteps/s ({lr['decoder']}, LeRobot {lr['lerobot']})" if lr else "not run")
          + " |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
