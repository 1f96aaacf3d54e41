"""robomimic HDF5 in (``imitation data import robomimic``): the committed file in robomimic's layout
(``tools/robomimic_fixture.py``) imports bit-exact to what robomimic 0.3.0's own SequenceDataset
read of it; rate, task, splits and demo names are kept; damaged files are refused with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from imitation.data.store import StoreError

h5py = pytest.importorskip("h5py")  # the formats extra (installed by tools/setup.sh)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "robomimic" / "lift_tiny.hdf5"
READ = FIXTURE.with_name("lift_tiny.robomimic_read.npz")


def test_imports_what_robomimic_reads(tmp_path: Path) -> None:
    from imitation.data.robomimic import import_robomimic

    read = np.load(READ)
    assert str(read["robomimic_version"]) == "0.3.0"
    store = import_robomimic(FIXTURE, tmp_path / "out.zarr", image_codec="zstd", progress=False)
    # robomimic's standard low-dimensional inputs, concatenated in order, are the state.
    parts = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]
    assert np.array_equal(store.read("state"), np.concatenate([read[k] for k in parts], axis=1))
    assert store.features["state"].names[:4] == (
        "robot0_eef_pos[0]",
        "robot0_eef_pos[1]",
        "robot0_eef_pos[2]",
        "robot0_eef_quat[0]",
    )
    assert np.array_equal(store.read("env_state"), read["object"])
    assert np.array_equal(store.read("action"), read["actions"])
    assert np.array_equal(store.read("images/agentview"), read["agentview_image"])
    assert np.array_equal(store.read("images/robot0_eye_in_hand"), read["robot0_eye_in_hand_image"])
    assert store.fps == 20.0  # env_args' control_freq
    assert list(store.episode_lengths) == [9, 6, 11]
    with h5py.File(FIXTURE) as f:
        states = np.concatenate([f[f"data/demo_{i}/states"][()] for i in range(3)])
    assert np.array_equal(store.read("sim_state"), states)
    metas = [store.episode_meta(e) for e in range(3)]
    assert [m["info"]["demo"] for m in metas] == ["demo_0", "demo_1", "demo_2"]
    assert [m["info"]["splits"] for m in metas] == [["train"], ["valid"], ["train"]]
    assert {m["task"] for m in metas} == {"Lift"} and {m["outcome"] for m in metas} == {"success"}
    assert np.allclose(store.read("timestamp")[:9], np.arange(9) / 20.0)
    assert store.attrs["robot"]["action_kind"] == "ee_delta"


def test_renames_drops_and_demo_order(tmp_path: Path) -> None:
    from imitation.data.robomimic import import_robomimic

    src = tmp_path / "f.hdf5"
    shutil.copy(FIXTURE, src)
    with h5py.File(src, "a") as f:  # demo_10 sorts after demo_2, as robomimic numbers them
        f.move("data/demo_1", "data/demo_10")
    store = import_robomimic(
        src, tmp_path / "out.zarr", progress=False,
        mapping={"obs/object": "object_pose", "obs/robot0_eye_in_hand_image": "", "states": ""},
    )  # fmt: skip
    assert set(store.features) == {
        "state",
        "action",
        "object_pose",
        "images/agentview",
        "reward",
        "done",
        "timestamp",
    }
    assert [store.episode_meta(e)["info"]["demo"] for e in range(3)] == ["demo_0", "demo_2", "demo_10"]


def test_damaged_files_are_refused(tmp_path: Path) -> None:
    from imitation.data.robomimic import import_robomimic

    src = tmp_path / "f.hdf5"
    shutil.copy(FIXTURE, src)
    with h5py.File(src, "a") as f:
        f["data/demo_1"].attrs["num_samples"] = 99
    with pytest.raises(StoreError, match="num_samples=99 but holds 6 frames"):
        import_robomimic(src, tmp_path / "a.zarr", progress=False)
    shutil.copy(FIXTURE, src)
    with h5py.File(src, "a") as f:
        f["data"].attrs["env_args"] = json.dumps({"env_name": "Lift"})
    with pytest.raises(StoreError, match="pass --fps"):
        import_robomimic(src, tmp_path / "b.zarr", progress=False)
    assert import_robomimic(src, tmp_path / "b.zarr", fps=10, progress=False).fps == 10.0
    (tmp_path / "not.hdf5").write_text("hello")
    with pytest.raises(StoreError, match="not an HDF5 file"):
        import_robomimic(tmp_path / "not.hdf5", tmp_path / "c.zarr", progress=False)
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "c.zarr").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
