"""Write the robomimic fixture of the import tests, and record what robomimic's own reader reads of it.

    python tools/robomimic_fixture.py tests/fixtures/robomimic

``write`` makes a small file in robomimic's documented layout (``data/demo_N/{obs/*, actions, states,
rewards, dones}``, ``data.attrs["env_args"]``, ``num_samples``, ``mask/train`` and ``mask/valid``), as
robomimic's conversion of a robosuite Lift dataset leaves it, with two cameras. Where robomimic
installs (0.3.0 made the committed record: ``pip install --no-deps robomimic==0.3.0`` plus
termcolor, h5py and tensorboardX, beside torch), its ``SequenceDataset`` reads the file and every
sample it returns (observations and actions per demo and frame) goes to ``<name>.robomimic_read.npz``:
the import tests compare the store with what robomimic itself read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

NAME = "lift_tiny"
LENGTHS = [9, 6, 11]
LOW_DIM = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "object": 10}
CAMERAS = {"agentview_image": (32, 32), "robot0_eye_in_hand_image": (24, 32)}
ENV_ARGS = {
    "env_name": "Lift",
    "type": 1,
    "env_kwargs": {"has_renderer": False, "control_freq": 20, "robots": ["Panda"],
                   "controller_configs": {"type": "OSC_POSE"}, "camera_names": ["agentview", "robot0_eye_in_hand"]},
}  # fmt: skip


def write(path: Path) -> Path:
    import h5py

    rng = np.random.default_rng(3)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps(ENV_ARGS)
        total = 0
        for i, n in enumerate(LENGTHS):
            demo = data.create_group(f"demo_{i}")
            demo.attrs["num_samples"] = n
            demo.attrs["model_file"] = "<mujoco/>"
            obs = demo.create_group("obs")
            nxt = demo.create_group("next_obs")
            for key, width in LOW_DIM.items():
                x = rng.normal(size=(n + 1, width))
                obs.create_dataset(key, data=x[:n])
                nxt.create_dataset(key, data=x[1:])
            for key, (h, w) in CAMERAS.items():
                img = rng.integers(0, 256, (n + 1, h, w, 3), dtype=np.uint8)
                obs.create_dataset(key, data=img[:n])
                nxt.create_dataset(key, data=img[1:])
            demo.create_dataset("actions", data=rng.uniform(-1, 1, (n, 7)))
            demo.create_dataset("states", data=rng.normal(size=(n, 32)))
            demo.create_dataset("rewards", data=(np.arange(n) == n - 1).astype(np.float64))
            demo.create_dataset("dones", data=(np.arange(n) == n - 1).astype(np.int64))
            total += n
        data.attrs["total"] = total
        mask = f.create_group("mask")
        mask.create_dataset("train", data=np.array([b"demo_0", b"demo_2"]))
        mask.create_dataset("valid", data=np.array([b"demo_1"]))
    return path


def read_with_robomimic(path: Path) -> dict[str, np.ndarray]:
    """Every frame as robomimic's SequenceDataset returns it (sequence length 1, no padding)."""
    import robomimic
    import robomimic.utils.obs_utils as obs_utils
    from robomimic.utils.dataset import SequenceDataset

    obs_keys = [*LOW_DIM, *CAMERAS]
    obs_utils.initialize_obs_utils_with_obs_specs({"obs": {"low_dim": list(LOW_DIM), "rgb": list(CAMERAS)}})
    ds = SequenceDataset(
        hdf5_path=str(path), obs_keys=obs_keys, dataset_keys=("actions", "rewards", "dones"),
        load_next_obs=False, frame_stack=1, seq_length=1, pad_frame_stack=True, pad_seq_length=True,
        get_pad_mask=False, goal_mode=None, hdf5_cache_mode=None, hdf5_use_swmr=True,
        hdf5_normalize_obs=False, filter_by_attribute=None,
    )  # fmt: skip
    out: dict[str, list] = {k: [] for k in [*obs_keys, "actions"]}
    for i in range(len(ds)):
        item = ds[i]
        for k in obs_keys:
            out[k].append(np.asarray(item["obs"][k][0]))
        out["actions"].append(np.asarray(item["actions"][0]))
    read = {k: np.stack(v) for k, v in out.items()}
    read["robomimic_version"] = np.array(robomimic.__version__)
    return read


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="folder of the fixture (tests/fixtures/robomimic)")
    args = ap.parse_args()
    path = write(args.out / f"{NAME}.hdf5")
    print(f"wrote {path}")
    try:
        read = read_with_robomimic(path)
    except ImportError as e:
        print(f"robomimic is not installed here ({e}); its record of the file was not made")
        return 1
    np.savez_compressed(args.out / f"{NAME}.robomimic_read.npz", **read)
    print(f"robomimic {read['robomimic_version']} read {len(read['actions'])} frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
