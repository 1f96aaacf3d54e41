"""Write the LeRobot dataset fixtures of the import tests with LeRobot's own recorder code.

Runs in an environment where LeRobot is installed, not in this project's environment::

    python tools/lerobot_fixture.py tests/fixtures/lerobot

What it writes depends on the LeRobot it finds. Under LeRobot 0.4 (0.4.4 made the committed
``so101_*_v30`` fixtures and ``export_h264``: Python 3.11, torch 2.14.1, torchvision 0.29.1,
``pip install --no-deps lerobot==0.4.4`` plus its dataset dependencies), the format v3.0 datasets of
``DATASETS`` and the export check below. Under LeRobot 0.3.x, which writes format v2.1 (one parquet
and one mp4 per episode, ``meta/episodes.jsonl``, ``meta/tasks.jsonl``,
``meta/episodes_stats.jsonl``), the datasets of ``DATASETS_V21``. LeRobot 0.3.3 made the committed
``koch_av1_v21``, in this environment (Python 3.11)::

    python3.11 -m venv lr033 && . lr033/bin/activate
    pip install torch==2.13.0        # a CPU build: LeRobot's own pin (torch < 2.8) is not needed here
    pip install --no-deps lerobot==0.3.3 torchcodec==0.13.0
    pip install datasets==3.6.0 huggingface_hub==2.4.0 jsonlines==4.0.0 av==18.1.0 torch==2.13.0
    pip install pyarrow==26.0.1 numpy==2.4.6 pillow==13.0.0 packaging==26.4 draccus==0.10.0 torch==2.13.0

LeRobot 0.3.3 imports torchvision when its dataset module loads but does not use it to write videos
(PyAV encodes them, in-process, with LeRobot's default AV1 encoder ``libsvtav1``; 0.3.3 has no codec
argument) nor to read them back with torchcodec. The index's torchvision 0.28.0 does not load beside
the CPU build of torch 2.13.0 (``operator torchvision::nms does not exist``), so where no torchvision
is installed this script puts an empty stand-in module in its place, in its own process only
(``torchvision_stand_in``), whose every use raises.

LeRobot reads videos back with torchcodec, which loads FFmpeg 8's shared libraries; without a system
FFmpeg, PyAV's wheel carries them under hashed names: link them under their plain names
(``libavcodec.so.62``, ...) in a folder and put it and ``av.libs`` on ``LD_LIBRARY_PATH``::

    L=$(python -c 'import av, pathlib; print(pathlib.Path(av.__file__).parent.parent / "av.libs")')
    mkdir -p ffmpeg && for f in "$L"/libav*.so.* "$L"/libsw*.so.*; do
        b=$(basename "$f"); v=${b#*.so.}; ln -sf "$f" "ffmpeg/${b%%-*}.so.${v%%.*}"
    done
    LD_LIBRARY_PATH=$PWD/ffmpeg:$L python tools/lerobot_fixture.py tests/fixtures/lerobot

Each dataset is made with ``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` (and
``finalize``, which 0.3.x does not have), as LeRobot's recorder makes one. Every camera frame
carries its dataset-wide frame index in its pixels (``frame_pattern``: eight black or white blocks,
one bit each, over a smooth picture that moves with the index), so a test that decodes it knows
which frame it got: a PSNR alone would pass a neighbouring frame of a slow scene. ``expected.npz``
beside each dataset holds the state, action and environment-state values handed to LeRobot, for
bit-exact comparison, and what LeRobot's ``LeRobotDataset`` read back of every camera frame
(``lerobot_read/<key>``), and the tasks handed to it and those it read back (``tasks``,
``lerobot_read/task``; the committed v3.0 ones predate these two). ``WRITTEN_BY`` in each dataset
names the LeRobot that wrote it.

``frame_pattern`` and ``read_frame_index`` import nothing from LeRobot, so the tests use them too.

Then, under LeRobot 0.4, the other direction: ``sample_store`` (a small store of ours, with measured
timestamps that are not exactly frame index / fps) is exported with
``imitation.data.lerobot.export_lerobot`` to ``export_h264`` and read back with LeRobot's
``LeRobotDataset``; what LeRobot read (every frame's state, action, timestamp, task and camera
picture) goes to ``export_h264.lerobot_read.npz``. The tests export the same store again and compare
with both. Run with this project importable (``PYTHONPATH=.``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

# (name, codec, cameras {key: (H, W)}, episode lengths, tasks per episode)
DATASETS = [
    (
        "so101_av1_v30",
        "libsvtav1",  # LeRobot's default encoder
        {"observation.images.front": (64, 128), "observation.images.wrist": (48, 128)},
        [12, 8, 15],
        ["pick the cube", "place the cube", "pick the cube"],
    ),
    ("so101_h264_v30", "h264", {"observation.images.front": (48, 128)}, [6, 9], ["push", "push"]),
    ("so101_hevc_v30", "hevc", {"observation.images.front": (48, 128)}, [7], ["stack"]),
]
# Written under LeRobot 0.3.x (format v2.1). Its recorder has no codec choice: every video is AV1
# (libsvtav1), as LeRobot 0.3.3's ``encode_episode_videos`` encodes it.
DATASETS_V21 = [
    (
        "koch_av1_v21",
        "libsvtav1",
        {"observation.images.top": (48, 128), "observation.images.wrist": (48, 64)},
        [8, 5, 10],
        ["pick the cube", "place the cube", "pick the cube"],
    ),
]
FPS = 30
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
BITS = 8
BLOCK_H = 16


def frame_pattern(index: int, shape: tuple[int, int], camera: int = 0) -> np.ndarray:
    """An (H, W, 3) uint8 frame showing ``index`` (0..255) in its top band: ``BITS`` blocks, the
    most significant bit first, white for 1 and black for 0, each ``W // BITS`` wide and
    ``BLOCK_H`` high (16 x 16 at W = 128: on the codecs' block grid, so a lossy codec keeps their
    edges); below, a smooth colour field that shifts with the index and the camera."""
    h, w = shape
    img = np.empty((h, w, 3), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    phase = 0.05 * index + 1.3 * camera
    img[..., 0] = 128 + 40 * np.sin(xx / w * 2 * np.pi + phase)
    img[..., 1] = 128 + 40 * np.cos(yy / h * 2 * np.pi - phase)
    img[..., 2] = 80 + 30 * camera + (xx + yy) / (w + h) * 60
    bw = w // BITS
    for b in range(BITS):
        bit = (index >> (BITS - 1 - b)) & 1
        img[:BLOCK_H, b * bw : (b + 1) * bw] = 255 * bit
    return img


def read_frame_index(img: np.ndarray) -> int:
    """The index ``frame_pattern`` wrote into a (decoded, lossy) frame: each block's centre
    region thresholded at mid-grey."""
    w = img.shape[1]
    bw = w // BITS
    index = 0
    for b in range(BITS):
        centre = img[BLOCK_H // 4 : 3 * BLOCK_H // 4, b * bw + bw // 4 : b * bw + 3 * bw // 4]
        index = (index << 1) | int(centre.mean() > 127)
    return index


def lerobot_version() -> tuple[int, int]:
    from importlib.metadata import version

    major, minor = version("lerobot").split(".")[:2]
    return int(major), int(minor)


def torchvision_stand_in() -> None:
    """LeRobot 0.3.x imports torchvision when its dataset module loads (``transforms`` in
    ``datasets/utils.py``, the module in ``video_utils.py``), but writing a video dataset and reading
    it back with torchcodec use none of it: ``ToTensor`` only converts ``image`` features (PIL), and
    torchvision's video reader is only the ``pyav`` backend. No torchvision wheel loads beside the
    CPU build of torch, so an empty stand-in is imported in its place, in this process only;
    whatever of it LeRobot would call fails loudly, so the fixture cannot depend on it."""
    import importlib.machinery
    import sys
    import types

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("torchvision stand-in: the fixture's LeRobot path called torchvision")

    tv = types.ModuleType("torchvision")
    tv.__spec__ = importlib.machinery.ModuleSpec("torchvision", None, is_package=True)
    tv.__path__ = []
    tv.set_video_backend = unavailable
    tr = types.ModuleType("torchvision.transforms")
    tr.__spec__ = importlib.machinery.ModuleSpec("torchvision.transforms", None)
    tr.ToTensor = unavailable
    tv.transforms = tr
    sys.modules.update({"torchvision": tv, "torchvision.transforms": tr})


def write(root: Path, name: str, codec: str, cameras: dict, lengths: list[int], tasks: list[str]) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    v21 = lerobot_version() < (0, 4)  # 0.3.x: format v2.1, no codec choice, the task beside the frame

    out = root / name
    if out.exists():
        shutil.rmtree(out)
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": [f"{j}.pos" for j in JOINTS]},
        "action": {"dtype": "float32", "shape": (6,), "names": [f"{j}.pos" for j in JOINTS]},
        "observation.environment_state": {"dtype": "float32", "shape": (3,), "names": ["x", "y", "z"]},
        **{
            key: {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]}
            for key, (h, w) in cameras.items()
        },
    }
    ds = LeRobotDataset.create(
        repo_id=f"fixtures/{name}", fps=FPS, features=features, root=out,
        robot_type="koch_follower" if v21 else "so101_follower", use_videos=True,
        **({} if v21 else {"vcodec": codec}),
    )  # fmt: skip
    rng = np.random.default_rng(len(name))
    n = sum(lengths)
    # Calibrated motor values as LeRobot's SO-101 writes them: -100..100, the gripper 0..100.
    state = rng.uniform(-100, 100, (n, 6)).astype(np.float32)
    state[:, 5] = rng.uniform(0, 100, n)
    action = (state + rng.normal(0, 2, (n, 6))).astype(np.float32)
    env_state = rng.normal(0, 0.1, (n, 3)).astype(np.float32)
    g = 0
    for e, length in enumerate(lengths):
        for _ in range(length):
            frame = {
                "observation.state": state[g],
                "action": action[g],
                "observation.environment_state": env_state[g],
            }
            for c, (key, shape) in enumerate(cameras.items()):
                frame[key] = frame_pattern(g, shape, c)
            if v21:
                ds.add_frame(frame, task=tasks[e])
            else:
                ds.add_frame({**frame, "task": tasks[e]})
            g += 1
        ds.save_episode()
    if not v21:
        ds.finalize()
    # What LeRobot itself reads back (its default decoder, torchcodec), frame by frame: the importer's
    # frames are compared with these as well as with the originals.
    back = LeRobotDataset(f"fixtures/{name}", root=out, video_backend="torchcodec")
    read: dict[str, list] = {key: [] for key in cameras}
    read["task"] = []
    for i in range(len(back)):
        item = back[i]
        assert int(item["index"]) == i
        assert np.array_equal(item["observation.state"].numpy(), state[i])
        for key in cameras:
            chw = item[key].numpy()  # float in [0, 1], (C, H, W)
            read[key].append(np.round(chw.transpose(1, 2, 0) * 255).astype(np.uint8))
        read["task"].append(item["task"])
    np.savez_compressed(
        root / f"{name}.expected.npz", state=state, action=action, env_state=env_state,
        lengths=np.array(lengths), tasks=np.array(tasks), cameras=np.array(list(cameras)),
        **{f"lerobot_read/{key}": np.stack(values) for key, values in read.items()},
    )  # fmt: skip
    import lerobot

    (out / "WRITTEN_BY").write_text(
        json.dumps({"lerobot": lerobot.__version__, "tool": "tools/lerobot_fixture.py", "codec": codec})
        + "\n"
    )


def sample_store(path: Path) -> Any:
    """A small store as our recorder writes them: 3 episodes at 20 Hz, a 4-joint state and action,
    a 48 x 64 camera showing each frame's index, timestamps with a little measured jitter."""
    from imitation.data.store import EpisodeWriter

    rng = np.random.default_rng(7)
    names = ["j0", "j1", "j2", "gripper"]
    features = {
        "state": {"shape": [4], "dtype": "float32", "kind": "state", "names": names},
        "action": {"shape": [4], "dtype": "float32", "kind": "action", "names": names},
        "images/top": {"shape": [48, 64, 3], "dtype": "uint8", "kind": "image", "codec": "zstd"},
        "timestamp": {"shape": [], "dtype": "float64", "kind": "scalar"},
    }
    g = 0
    with EpisodeWriter(path, features=features, fps=20.0, robot={"name": "so101", "joint_names": names}) as w:
        for e, (n, task) in enumerate([(10, "pick"), (7, "place"), (12, "pick")]):
            w.start_episode(task=task, operator="ana", seed=100 + e, start_time=1.7e9 + 60 * e)
            t = np.arange(n) / 20.0 + rng.uniform(-0.002, 0.002, n)
            t[0] = 0.0
            for i in range(n):
                w.add_frame({
                    "state": rng.normal(size=4).astype(np.float32),
                    "action": rng.normal(size=4).astype(np.float32),
                    "images/top": frame_pattern(g, (48, 64)),
                    "timestamp": t[i],
                })  # fmt: skip
                g += 1
            w.save_episode(outcome="success" if e != 1 else "failure")
    return path


def check_export(root: Path) -> None:
    """Export ``sample_store`` and record what LeRobot's LeRobotDataset reads of it."""
    import tempfile

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from imitation.data.lerobot import export_lerobot
    from imitation.data.store import DemoStore

    out = root / "export_h264"
    if out.exists():
        shutil.rmtree(out)
    with tempfile.TemporaryDirectory() as tmp:
        store = DemoStore.open(sample_store(Path(tmp) / "sample.zarr"))
        export_lerobot(store, out, progress=False)
        back = LeRobotDataset("fixtures/export_h264", root=out, video_backend="torchcodec")
        assert back.num_episodes == store.n_episodes and len(back) == store.n_frames
        read: dict[str, list] = {k: [] for k in ("state", "action", "timestamp", "episode", "frame")}
        tasks = []
        for i in range(len(back)):
            item = back[i]
            read["state"].append(item["observation.state"].numpy())
            read["action"].append(item["action"].numpy())
            read["timestamp"].append(float(item["timestamp"]))
            read["episode"].append(int(item["episode_index"]))
            read["frame"].append(
                np.round(item["observation.images.top"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
            )
            tasks.append(item["task"])
        np.savez_compressed(root / "export_h264.lerobot_read.npz", tasks=np.array(tasks),
                            **{k: np.stack(v) if k != "timestamp" else np.array(v) for k, v in read.items()})  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="folder of the fixtures (tests/fixtures/lerobot)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if lerobot_version() < (0, 4):  # format v2.1; our export (v3.0) is not for this LeRobot to read
        if importlib.util.find_spec("torchvision") is None:
            torchvision_stand_in()
        for spec in DATASETS_V21:
            write(args.out, *spec)
            print(f"wrote {args.out / spec[0]}")
        return 0
    for spec in DATASETS:
        write(args.out, *spec)
        print(f"wrote {args.out / spec[0]}")
    check_export(args.out)
    print(f"exported to {args.out / 'export_h264'} and read it with LeRobot")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
