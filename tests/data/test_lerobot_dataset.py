"""LeRobot datasets in (``imitation data import lerobot``), on datasets LeRobot's own recorder wrote
(``tests/fixtures/lerobot``, made by ``tools/lerobot_fixture.py``: format v3.0 by LeRobot 0.4.4,
format v2.1 by LeRobot 0.3.3): values bit-exact, every camera frame the right one (its index is
drawn in its pixels), identical to what LeRobot read and within 35 dB of the original, episodes,
tasks, timestamps and rate kept; a killed import carries on without duplicates; paths outside the
dataset, damaged files and missing parts refused with one line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def assert_frames_are_the_recorded_ones(store: DemoStore, expected: Mapping[str, np.ndarray]) -> None:
    """Every camera frame is the one recorded at that row (its index, drawn in its pixels), pixel
    for pixel what LeRobot's own reader (torchcodec) returned for it, and within 35 dB of the
    original."""
    cams = [str(c) for c in expected["cameras"]]
    assert sorted(k for k in store.features if k.startswith("images/")) == sorted(
        "images/" + cam.removeprefix("observation.images.") for cam in cams
    )
    for c, cam in enumerate(cams):
        frames = store.read("images/" + cam.removeprefix("observation.images."))
        assert [fixture.read_frame_index(f) for f in frames] == list(range(len(frames))), cam
        assert np.array_equal(frames, expected[f"lerobot_read/{cam}"]), cam
        worst = min(psnr(f, fixture.frame_pattern(i, f.shape[:2], c)) for i, f in enumerate(frames))
        assert worst >= 35.0, (cam, worst)


def import_fixture(name: str, lerobot: str, tmp_path: Path) -> tuple[Path, Any, Any, dict]:
    """Import the fixture LeRobot ``lerobot`` wrote and check its low-dimensional values bit-exact:
    (source folder, store, the values handed to LeRobot, info.json)."""
    src = FIXTURES / name
    assert json.loads((src / "WRITTEN_BY").read_text())["lerobot"] == lerobot
    expected = np.load(FIXTURES / f"{name}.expected.npz")
    store = import_lerobot(src, tmp_path / "out.zarr", image_codec="zstd", progress=False)
    for key in ("state", "action", "env_state"):  # bit-exact, under our names
        got = store.read(key)
        assert got.dtype == np.float32 and np.array_equal(got, expected[key]), key
    return src, store, expected, json.loads((src / "meta/info.json").read_text())


@pytest.mark.parametrize("name", ["so101_av1_v30", "so101_h264_v30", "so101_hevc_v30"])
def test_a_dataset_lerobot_wrote_imports_exactly(tmp_path: Path, name: str) -> None:
    src, store, expected, info = import_fixture(name, "0.4.4", tmp_path)
    # Episodes, lengths, tasks, rate.
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
    assert_frames_are_the_recorded_ones(store, expected)
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


# ---------------------------------------------------------------------------------------------
# Format v2.1 (LeRobot 0.3.x): one parquet and one mp4 per episode, meta/episodes.jsonl,
# meta/tasks.jsonl, meta/episodes_stats.jsonl (tests/fixtures/lerobot/koch_av1_v21, written by
# LeRobot 0.3.3's own recorder code through tools/lerobot_fixture.py)

V21 = "koch_av1_v21"


def test_a_v21_dataset_lerobot_wrote_imports_exactly(tmp_path: Path) -> None:
    src, store, expected, info = import_fixture(V21, "0.3.3", tmp_path)
    assert info["codebase_version"] == "v2.1"
    # Episodes, lengths, tasks (two different ones), rate.
    assert store.fps == info["fps"] == 30
    lengths = [int(n) for n in expected["lengths"]]
    assert store.n_episodes == 3 and list(store.episode_lengths) == lengths
    tasks = [str(t) for t in expected["tasks"]]
    assert len(set(tasks)) == 2
    assert [store.episode_meta(e)["task"] for e in range(store.n_episodes)] == tasks
    assert [store.episode_meta(e)["info"]["source_episode"] for e in range(store.n_episodes)] == [0, 1, 2]
    # ... the tasks LeRobot itself read for every frame.
    assert list(expected["lerobot_read/task"]) == [
        t for t, n in zip(tasks, lengths, strict=True) for _ in range(n)
    ]
    # Timestamps are the episode files' (float32 seconds), per episode from 0.
    files = [src / f"data/chunk-000/episode_{e:06d}.parquet" for e in range(3)]
    ts = np.concatenate([pq.read_table(f).column("timestamp").to_numpy() for f in files]).astype(np.float64)
    assert np.array_equal(store.read("timestamp"), ts)
    assert np.array_equal(
        ts, np.concatenate([np.arange(n, dtype=np.float32) / np.float32(30) for n in lengths])
    )
    # Two cameras, one mp4 per episode each: every frame the recorded one.
    assert_frames_are_the_recorded_ones(store, expected)
    # Units: LeRobot's, not radians; the joint names are LeRobot's.
    robot = store.attrs["robot"]
    assert robot["units"] == "lerobot" and robot["name"] == "koch_follower"
    assert robot["source_version"] == "v2.1" and robot["state_names"][0] == "shoulder_pan.pos"
    assert store.attrs["lerobot"]["version"] == "v2.1"


def test_damaged_or_missing_parts_of_a_v21_dataset_are_named(tmp_path: Path) -> None:
    def damaged(part: str) -> Path:
        src = tmp_path / part / V21
        shutil.copytree(FIXTURES / V21, src)
        return src

    src = damaged("video")
    (src / "videos/chunk-000/observation.images.wrist/episode_000001.mp4").unlink()
    with pytest.raises(StoreError, match=r"observation\.images\.wrist/episode_000001\.mp4 is missing"):
        import_lerobot(src, tmp_path / "a.zarr", progress=False)
    # A video shorter than its episode (episode 1's 5 frames where episode 2's 10 should be).
    src = damaged("short")
    top = src / "videos/chunk-000/observation.images.top"
    shutil.copy(top / "episode_000001.mp4", top / "episode_000002.mp4")
    with pytest.raises(StoreError, match=r"episode_000002\.mp4: no frame at 0\.1667 s"):
        import_lerobot(src, tmp_path / "b.zarr", progress=False)
    # Another episode's rows in an episode's file.
    src = damaged("rows")
    data = src / "data/chunk-000"
    shutil.copy(data / "episode_000000.parquet", data / "episode_000001.parquet")
    with pytest.raises(StoreError, match="holds 0 row.s. of episode 1, but the episode table says 5"):
        import_lerobot(src, tmp_path / "c.zarr", progress=False)
    src = damaged("parquet")
    part = src / "data/chunk-000/episode_000002.parquet"
    part.write_bytes(part.read_bytes()[:-40])
    with pytest.raises(StoreError, match="not a readable parquet file"):
        import_lerobot(src, tmp_path / "d.zarr", progress=False)
    src = damaged("episodes")
    lines = (src / "meta/episodes.jsonl").read_text().splitlines()
    (src / "meta/episodes.jsonl").write_text("\n".join([lines[0], lines[1][:20], lines[2]]) + "\n")
    with pytest.raises(StoreError, match=r"episodes\.jsonl:2: not an episode record"):
        import_lerobot(src, tmp_path / "e.zarr", progress=False)
    (src / "meta/episodes.jsonl").unlink()
    with pytest.raises(StoreError, match=r"v2\.1 dataset without .*episodes\.jsonl"):
        import_lerobot(src, tmp_path / "f.zarr", progress=False)
    src = damaged("tasks")
    (src / "meta/tasks.jsonl").write_text('{"task_index": 0, "task": "pick the cube"}\n{"task_index": 1,\n')
    with pytest.raises(StoreError, match=r"tasks\.jsonl:2: not a task record"):
        import_lerobot(src, tmp_path / "g.zarr", progress=False)
    (src / "meta/tasks.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(StoreError, match=r"tasks\.jsonl is not readable text"):
        import_lerobot(src, tmp_path / "h.zarr", progress=False)
    assert not any(p.name.endswith(".zarr") for p in tmp_path.iterdir())  # no store where one failed


def write_v21(tmp_path: Path) -> tuple[Path, np.ndarray, list[int]]:
    """A v2.1 dataset in LeRobot's documented layout with what the LeRobot-written fixture lacks:
    joint names as ``{"motors": [...]}`` (as datasets converted from v2.0 keep them) and H.264
    videos."""
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


def test_a_v21_dataset_with_older_names_and_h264_imports_too(tmp_path: Path) -> None:
    src, state, lengths = write_v21(tmp_path)
    store = import_lerobot(src, tmp_path / "out.zarr", progress=False)
    assert list(store.episode_lengths) == lengths
    assert np.array_equal(store.read("state"), state)
    assert store.features["state"].names == ("a", "b")
    assert [fixture.read_frame_index(f) for f in store.read("images/top")] == list(range(sum(lengths)))
    assert store.episode_meta(1)["task"] == "grasp" and store.attrs["robot"]["name"] == "koch"


# ---------------------------------------------------------------------------------------------
# Export: checked against what LeRobot's own LeRobotDataset read of the same export
# (tests/fixtures/lerobot/export_h264, written by tools/lerobot_fixture.py)


def test_the_export_is_what_lerobot_loaded(tmp_path: Path) -> None:
    from imitation.data.lerobot import VideoReader, export_lerobot

    store = DemoStore.open(fixture.sample_store(tmp_path / "sample.zarr"))
    out = export_lerobot(store, tmp_path / "export", progress=False)
    golden = FIXTURES / "export_h264"
    assert json.loads((out / "meta/info.json").read_text()) == json.loads(
        (golden / "meta/info.json").read_text()
    )
    for part in (
        "data/chunk-000/file-000.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/tasks.parquet",
    ):
        assert pq.read_table(out / part).equals(pq.read_table(golden / part)), part
    assert json.loads((out / "meta/stats.json").read_text()) == json.loads(
        (golden / "meta/stats.json").read_text()
    )

    # What LeRobot read of it: every frame's values, task and picture are the store's.
    read = np.load(FIXTURES / "export_h264.lerobot_read.npz")
    assert np.array_equal(read["state"], store.read("state"))
    assert np.array_equal(read["action"], store.read("action"))
    tasks = [store.episode_meta(e)["task"] for e in range(store.n_episodes)]
    lengths = store.episode_lengths
    assert list(read["tasks"]) == [t for t, n in zip(tasks, lengths, strict=True) for _ in range(n)]
    # LeRobot's timestamps are nominal, frame index / fps; ours were measured.
    nominal = np.concatenate([np.arange(n) / store.fps for n in lengths]).astype(np.float32)
    assert np.array_equal(read["timestamp"].astype(np.float32), nominal)
    assert not np.array_equal(store.read("timestamp"), nominal.astype(np.float64))
    assert [fixture.read_frame_index(f) for f in read["frame"]] == list(range(store.n_frames))
    # The videos encoded now decode to the pictures LeRobot read from the committed ones.
    reader = VideoReader(out / "videos/observation.images.top/chunk-000/file-000.mp4", store.fps)
    frames = np.stack(list(reader.frames(np.arange(store.n_frames) / store.fps)))
    reader.close()
    assert min(psnr(a, b) for a, b in zip(frames, read["frame"], strict=True)) >= 40.0
    assert min(psnr(a, b) for a, b in zip(frames, store.read("images/top"), strict=True)) >= 30.0


def test_store_to_lerobot_to_store_keeps_every_value(tmp_path: Path) -> None:
    from imitation.data.lerobot import export_lerobot

    store = DemoStore.open(fixture.sample_store(tmp_path / "sample.zarr"))
    export_lerobot(store, tmp_path / "export", vcodec="av1", progress=False)
    back = import_lerobot(tmp_path / "export", tmp_path / "back.zarr", progress=False)
    for key in ("state", "action", "timestamp"):
        assert np.array_equal(back.read(key), store.read(key)), key
    assert back.features["state"].names == store.features["state"].names
    for e in range(store.n_episodes):
        a, b = store.episode_meta(e), back.episode_meta(e)
        for k in ("task", "outcome", "operator", "seed", "start_time", "length"):
            assert a[k] == b[k], (e, k)
    assert [fixture.read_frame_index(f) for f in back.read("images/top")] == list(range(store.n_frames))
    # And a LeRobot dataset imported and exported again keeps LeRobot's names.
    first = import_lerobot(FIXTURES / "so101_av1_v30", tmp_path / "first.zarr", progress=False)
    export_lerobot(first, tmp_path / "again", progress=False)
    info = json.loads((tmp_path / "again/meta/info.json").read_text())
    assert {"observation.state", "observation.environment_state", "observation.images.wrist"} <= set(
        info["features"]
    )
    assert info["robot_type"] == "so101_follower"


def test_export_refuses_what_it_cannot_write_and_leaves_nothing(tmp_path: Path) -> None:
    from imitation.data.lerobot import export_lerobot
    from imitation.data.store import EpisodeWriter

    store = DemoStore.open(fixture.sample_store(tmp_path / "sample.zarr"))
    (tmp_path / "taken").mkdir()
    with pytest.raises(StoreError, match="already exists"):
        export_lerobot(store, tmp_path / "taken", progress=False)
    with pytest.raises(ConfigError, match="--vcodec 'vp9'"):
        export_lerobot(store, tmp_path / "x", vcodec="vp9", progress=False)
    odd = tmp_path / "odd.zarr"
    feats = {"action": {"shape": [2], "dtype": "float32", "kind": "action"},
             "images/cam": {"shape": [33, 64, 3], "dtype": "uint8", "kind": "image", "codec": "zstd"}}  # fmt: skip
    with EpisodeWriter(odd, features=feats, fps=10.0) as w:
        w.start_episode(task="t")
        w.add_frame(
            {
                "action": np.zeros(2, np.float32),
                "images/cam": np.zeros((33, 64, 3), np.uint8),
                "timestamp": 0.0,
            }
        )
        w.save_episode(outcome="success")
    with pytest.raises(StoreError, match="33x64; the yuv420p videos LeRobot reads need even sizes"):
        export_lerobot(odd, tmp_path / "y", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.zarr", "sample.zarr", "taken"]


def test_the_cli_imports_and_exports(tmp_path: Path) -> None:
    from imitation import cli

    assert (
        cli.main(["data", "import", "lerobot", str(FIXTURES / "so101_h264_v30"), str(tmp_path / "a.zarr")])
        == 0
    )
    assert (
        cli.main(
            ["data", "export", "lerobot", str(tmp_path / "a.zarr"), str(tmp_path / "out"), "--vcodec", "hevc"]
        )
        == 0
    )
    info = json.loads((tmp_path / "out/meta/info.json").read_text())
    assert info["features"]["observation.images.front"]["info"]["video.codec"] == "hevc"


def test_training_reads_an_imported_dataset_with_its_cameras(tmp_path: Path) -> None:
    from imitation import cli

    store = import_lerobot(FIXTURES / "so101_av1_v30", tmp_path / "in.zarr", progress=False)
    args = ["train", "--store", str(store.path), "--policy", "act", "--out", str(tmp_path / "run"), "--steps", "2",
            "--batch-size", "4", "--wandb", "disabled", "--act.obs-keys", "state", "images/front", "images/wrist"]  # fmt: skip
    assert cli.main(args) == 0
    cfg = (tmp_path / "run/config.yaml").read_text()
    assert "images/front" in cfg and "images/wrist" in cfg

    # Its actions are LeRobot's calibrated motor values: no robot is driven with them.
    import yaml

    from imitation.robots.base import RobotSpec
    from imitation.robots.stack import Needs, check_compatible

    meta = yaml.safe_load(next((tmp_path / "run/checkpoints").glob("*/config.yaml")).read_text())
    assert meta["robot"]["units"] == "lerobot"
    arm = RobotSpec(name="so101", joint_names=tuple(f"j{i}" for i in range(6)), lower=np.full(6, -3.0),
                    upper=np.full(6, 3.0), control_hz=30.0)  # fmt: skip
    with pytest.raises(ConfigError, match="trained on lerobot units"):
        check_compatible(Needs.of_checkpoint(meta), arm, has_env_state=True)


def test_a_missing_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from imitation.data.lerobot import need

    real = importlib.import_module

    def without_av(name: str, *args: object) -> object:
        if name == "av":
            raise ImportError("No module named 'av'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_av)
    with pytest.raises(
        ConfigError,
        match=r"needs av, which is not installed; install the extra: pip install 'imitation\[formats\]'",
    ):
        need("av")
    assert need("numpy") is np
