"""LeRobot datasets in (``imitation data import lerobot``), on datasets LeRobot 0.4.4's own recorder
wrote (``tests/fixtures/lerobot``, made by ``tools/lerobot_fixture.py``): values bit-exact, every
camera frame the right one (its index is drawn in its pixels) and identical to what LeRobot read,
episodes, tasks, timestamps and rate kept; a killed import carries on without duplicates; paths
outside the dataset, damaged files and missing parts refused with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tool_modules import load_tool

from imitation.data.lerobot import Frames, import_lerobot, partial_path
from imitation.data.store import DemoStore, StoreError
from imitation.errors import ConfigError

pytest.importorskip("av")  # the formats extra (installed by tools/setup.sh)
pq = pytest.importorskip("pyarrow.parquet")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lerobot"
fixture = load_tool("lerobot_fixture")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("name", ["so101_av1_v30", "so101_h264_v30", "so101_hevc_v30"])
def test_a_dataset_lerobot_wrote_imports_exactly(tmp_path: Path, name: str) -> None:
    src = FIXTURES / name
    written = json.loads((src / "WRITTEN_BY").read_text())
    assert written["lerobot"] == "0.4.4"
    expected = np.load(FIXTURES / f"{name}.expected.npz")
    store = import_lerobot(src, tmp_path / "out.zarr", image_codec="zstd", progress=False)

    # Values bit-exact, under our names.
    for key, want in (("state", "state"), ("action", "action"), ("env_state", "env_state")):
        got = store.read(key)
        assert got.dtype == np.float32 and np.array_equal(got, expected[want]), key
    # Episodes, lengths, tasks, rate.
    info = json.loads((src / "meta/info.json").read_text())
    assert store.fps == info["fps"]
    assert list(store.episode_lengths) == list(expected["lengths"])
    table = pq.read_table(next((src / "meta/episodes").rglob("*.parquet"))).to_pylist()
    for e, row in enumerate(table):
        meta = store.episode_meta(e)
        assert meta["task"] == "; ".join(row["tasks"])
        assert meta["info"]["source_episode"] == row["episode_index"]
    # Timestamps are the parquet's (float32 seconds), per episode from 0.
    data = pq.read_table(next((src / "data").rglob("*.parquet")))
    assert np.array_equal(store.read("timestamp"), data.column("timestamp").to_numpy().astype(np.float64))
    # Every camera frame is the one recorded at that row, pixel for pixel what LeRobot's own
    # reader (torchcodec) returned for it, and as close to the original as the codec keeps it
    # (LeRobot's default CRF 30 on this pattern of hard-edged blocks: 33-39 dB).
    cams = [str(c) for c in expected["cameras"]]
    for c, cam in enumerate(cams):
        frames = store.read("images/" + cam.removeprefix("observation.images."))
        assert [fixture.read_frame_index(f) for f in frames] == list(range(len(frames)))
        assert np.array_equal(frames, expected[f"lerobot_read/{cam}"]), cam
        worst = min(psnr(f, fixture.frame_pattern(i, f.shape[:2], c)) for i, f in enumerate(frames))
        assert worst >= 32.0, (cam, worst)
    # What the store says of the units: LeRobot's, not radians.
    robot = store.attrs["robot"]
    assert robot["units"] == "lerobot" and robot["name"] == "so101_follower"
    assert robot["state_names"][0] == "shoulder_pan.pos"


def test_jpeg_by_default_and_the_frames_are_still_the_right_ones(tmp_path: Path) -> None:
    store = import_lerobot(FIXTURES / "so101_av1_v30", tmp_path / "out.zarr", progress=False)
    assert store.features["images/front"].codec["name"] == "jpeg"
    frames = store.read("images/wrist")
    assert [fixture.read_frame_index(f) for f in frames] == list(range(35))


def test_a_killed_import_leaves_no_store_and_carries_on_without_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = FIXTURES / "so101_av1_v30", tmp_path / "out.zarr"
    real = Frames.episode
    calls = []

    def dies_on_the_third(self: Frames, ep):  # noqa: ANN001
        calls.append(ep.index)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process is stopped while reading episode 2
        return real(self, ep)

    monkeypatch.setattr(Frames, "episode", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        import_lerobot(src, dst, progress=False)
    assert not dst.exists()
    assert DemoStore.open(partial_path(dst)).n_episodes == 2

    monkeypatch.setattr(Frames, "episode", real)
    store = import_lerobot(src, dst, progress=False)
    assert not partial_path(dst).exists()
    assert [store.episode_meta(e)["info"]["source_episode"] for e in range(store.n_episodes)] == [0, 1, 2]
    expected = np.load(FIXTURES / "so101_av1_v30.expected.npz")
    assert np.array_equal(store.read("state"), expected["state"])
    assert [fixture.read_frame_index(f) for f in store.read("images/front")] == list(range(35))


def test_an_interrupted_import_of_another_dataset_is_not_continued(tmp_path: Path) -> None:
    dst = tmp_path / "out.zarr"
    import_lerobot(FIXTURES / "so101_hevc_v30", tmp_path / "other.zarr", progress=False)
    shutil.move(tmp_path / "other.zarr", partial_path(dst))
    with pytest.raises(StoreError, match="interrupted import of another dataset"):
        import_lerobot(FIXTURES / "so101_h264_v30", dst, progress=False)


def copy(tmp_path: Path, name: str = "so101_h264_v30") -> Path:
    out = tmp_path / name
    shutil.copytree(FIXTURES / name, out)
    return out


def edit_info(src: Path, **changes: object) -> None:
    info = json.loads((src / "meta/info.json").read_text())
    info.update(changes)
    (src / "meta/info.json").write_text(json.dumps(info))


def test_paths_the_metadata_names_stay_inside_the_dataset(tmp_path: Path) -> None:
    src = copy(tmp_path)
    edit_info(src, video_path="../../{video_key}/file-{file_index:03d}.mp4")
    with pytest.raises(ConfigError, match="outside"):
        import_lerobot(src, tmp_path / "a.zarr", progress=False)
    edit_info(src, video_path="/etc/{video_key}.mp4")
    with pytest.raises(ConfigError, match="absolute path"):
        import_lerobot(src, tmp_path / "b.zarr", progress=False)
    edit_info(src, video_path="videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4")
    # A symlink in the dataset that points outside it is refused like a ../ path.
    outside = tmp_path / "elsewhere.parquet"
    shutil.copy(next((src / "data").rglob("*.parquet")), outside)
    data = next((src / "data").rglob("*.parquet"))
    data.unlink()
    data.symlink_to(outside)
    with pytest.raises(ConfigError, match="outside"):
        import_lerobot(src, tmp_path / "c.zarr", progress=False)
    assert not any(p.name.endswith(".zarr") for p in tmp_path.iterdir())


def test_damaged_or_missing_parts_are_named(tmp_path: Path) -> None:
    src = copy(tmp_path)
    video = next((src / "videos").rglob("*.mp4"))
    video.unlink()
    with pytest.raises(StoreError, match=r"file-000\.mp4 is missing"):
        import_lerobot(src, tmp_path / "a.zarr", progress=False)
    src = copy(tmp_path / "2")
    data = next((src / "data").rglob("*.parquet"))
    data.write_bytes(data.read_bytes()[:-40])  # a crash before the footer was written
    with pytest.raises(StoreError, match="not a readable parquet file"):
        import_lerobot(src, tmp_path / "b.zarr", progress=False)
    src = copy(tmp_path / "3")
    edit_info(src, codebase_version="v1.6")
    with pytest.raises(StoreError, match="v1.6"):
        import_lerobot(src, tmp_path / "c.zarr", progress=False)
    with pytest.raises(StoreError, match="meta/info.json is missing"):
        import_lerobot(tmp_path, tmp_path / "d.zarr", progress=False)


def test_renames_and_drops(tmp_path: Path) -> None:
    store = import_lerobot(
        FIXTURES / "so101_av1_v30",
        tmp_path / "out.zarr",
        mapping={"observation.images.front": "images/high", "observation.environment_state": None},
        progress=False,
    )
    assert set(store.features) == {"state", "action", "images/high", "images/wrist", "timestamp"}
    with pytest.raises(StoreError, match="both become 'state'"):
        import_lerobot(FIXTURES / "so101_av1_v30", tmp_path / "x.zarr",
                       mapping={"action": "state"}, progress=False)  # fmt: skip


def write_v21(tmp_path: Path) -> tuple[Path, np.ndarray, list[int]]:
    """A v2.1 dataset in LeRobot's documented layout (one parquet and one mp4 per episode,
    meta/episodes.jsonl, meta/tasks.jsonl): LeRobot 0.4 writes only v3.0, so this one is ours."""
    import av
    import pyarrow as pa

    root = tmp_path / "v21"
    (root / "meta").mkdir(parents=True)
    lengths, fps, shape = [5, 4], 10, (32, 48)
    state = np.random.default_rng(0).normal(size=(sum(lengths), 2)).astype(np.float32)
    info = {
        "codebase_version": "v2.1", "fps": fps, "robot_type": "koch", "chunks_size": 1000,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": {
            "observation.state": {"dtype": "float32", "shape": [2], "names": {"motors": ["a", "b"]}},
            "action": {"dtype": "float32", "shape": [2], "names": {"motors": ["a", "b"]}},
            "observation.images.top": {"dtype": "video", "shape": [*shape, 3], "names": ["height", "width", "channel"]},
            "timestamp": {"dtype": "float32", "shape": [1]}, "frame_index": {"dtype": "int64", "shape": [1]},
            "episode_index": {"dtype": "int64", "shape": [1]}, "index": {"dtype": "int64", "shape": [1]},
            "task_index": {"dtype": "int64", "shape": [1]},
        },
    }  # fmt: skip
    (root / "meta/info.json").write_text(json.dumps(info))
    (root / "meta/tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "grasp"}) + "\n")
    episodes = []
    g = 0
    for e, n in enumerate(lengths):
        episodes.append(json.dumps({"episode_index": e, "tasks": ["grasp"], "length": n}))
        rows = range(g, g + n)
        table = pa.table({
            "observation.state": pa.array(list(state[g : g + n]), pa.list_(pa.float32(), 2)),
            "action": pa.array(list(state[g : g + n] * 2), pa.list_(pa.float32(), 2)),
            "timestamp": pa.array([i / fps for i in range(n)], pa.float32()),
            "frame_index": list(range(n)), "episode_index": [e] * n, "index": list(rows), "task_index": [0] * n,
        })  # fmt: skip
        path = root / f"data/chunk-000/episode_{e:06d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        video = root / f"videos/chunk-000/observation.images.top/episode_{e:06d}.mp4"
        video.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(video), "w") as out:
            stream = out.add_stream("libx264", rate=fps, options={"crf": "10"})
            stream.width, stream.height, stream.pix_fmt = shape[1], shape[0], "yuv420p"
            for i in rows:
                frame = av.VideoFrame.from_ndarray(fixture.frame_pattern(i, shape), format="rgb24")
                out.mux(stream.encode(frame))
            out.mux(stream.encode())
        g += n
    (root / "meta/episodes.jsonl").write_text("\n".join(episodes) + "\n")
    return root, state, lengths


def test_a_v21_dataset_imports_too(tmp_path: Path) -> None:
    src, state, lengths = write_v21(tmp_path)
    store = import_lerobot(src, tmp_path / "out.zarr", progress=False)
    assert list(store.episode_lengths) == lengths
    assert np.array_equal(store.read("state"), state)
    assert store.features["state"].names == ("a", "b")
    assert [fixture.read_frame_index(f) for f in store.read("images/top")] == list(range(sum(lengths)))
    assert store.episode_meta(1)["task"] == "grasp" and store.attrs["robot"]["name"] == "koch"
