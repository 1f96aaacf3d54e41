"""The demo store: round trips, schema checks, episode control, locking, format checks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import zarr

from imitation.data.check import validate
from imitation.data.schema import Feature, SchemaError
from imitation.data.store import (
    DemoStore,
    EpisodeWriter,
    StoreError,
    check_record,
    committed_count,
    length_problems,
    timestamp_problems,
)

LOWDIM = {
    "state": {"shape": [6], "dtype": "float32", "kind": "state", "names": [f"j{i}" for i in range(6)]},
    "action": {"shape": [6], "dtype": "float32", "kind": "action"},
}


def smooth_image(rng: np.random.Generator, h: int = 32, w: int = 40) -> np.ndarray:
    """A camera-like image (gradients plus mild noise) that JPEG codes with small error."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=-1)
    return np.clip(base + rng.normal(0, 2, base.shape) + rng.uniform(0, 40), 0, 255).astype(np.uint8)


def write_episodes(path, features, lengths, *, seed=0, fps=50, **kw):
    """Write episodes of the given lengths; returns the frames written, per episode."""
    rng = np.random.default_rng(seed)
    written = []
    with EpisodeWriter(path, features=features, fps=fps, **kw) as w:
        t = 0.0
        for e, n in enumerate(lengths):
            w.start_episode(task=f"task {e}", operator="op", seed=100 + e, info={"e": e})
            frames = []
            for _ in range(n):
                f = {}
                for key, spec in w.features.items():
                    if key == "timestamp":
                        f[key] = t
                    elif spec.kind == "image":
                        f[key] = smooth_image(rng, *spec.shape[:2])
                    else:
                        f[key] = (rng.normal(size=spec.shape) * 3).astype(spec.dtype)
                t += 1 / fps
                frames.append(f)
                w.add_frame(f)
            w.save_episode(outcome="success" if e % 2 == 0 else "failure")
            written.append(frames)
    return written


def stacked(frames, key):
    return np.stack([np.asarray(f[key]) for f in frames])


def test_round_trip_every_dtype_and_codec(tmp_path):
    features = {}
    for dtype in (
        "float32",
        "float64",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "bool",
    ):
        for codec in ("blosc", "zstd", "none"):
            features[f"{dtype}_{codec}"] = {
                "shape": [3],
                "dtype": dtype,
                "kind": "scalar",
                "codec": {"name": codec},
            }
    for codec in ("blosc", "zstd", "none"):
        features[f"images/rgb_{codec}"] = {
            "shape": [24, 32, 3],
            "dtype": "uint8",
            "kind": "image",
            "codec": {"name": codec},
            "frames_per_file": 7,
        }
    features["images/depth"] = {
        "shape": [24, 32],
        "dtype": "uint16",
        "kind": "image",
        "codec": {"name": "zstd"},
    }
    features["images/jpeg"] = {
        "shape": [24, 32, 3],
        "dtype": "uint8",
        "kind": "image",
        "codec": {"name": "jpeg", "quality": 95},
        "frames_per_file": 5,
    }
    path = tmp_path / "all.zarr"
    rng = np.random.default_rng(1)
    episodes = []
    with EpisodeWriter(path, features=features, fps=30) as w:
        t = 0.0
        for n in (9, 4, 13):
            w.start_episode()
            frames = []
            for _ in range(n):
                f = {"timestamp": t}
                for key, spec in w.features.items():
                    if key == "timestamp":
                        continue
                    dt = spec.np_dtype
                    if key == "images/jpeg":
                        f[key] = smooth_image(rng, 24, 32)
                    elif dt.kind == "b":
                        f[key] = rng.random(spec.shape) < 0.5
                    elif dt.kind in "iu":
                        info = np.iinfo(dt)
                        f[key] = rng.integers(info.min, info.max, spec.shape, dtype=dt, endpoint=True)
                    else:
                        f[key] = rng.normal(size=spec.shape).astype(dt) * 1e3
                frames.append(f)
                w.add_frame(f)
                t += 1 / 30
            w.save_episode()
            episodes.append(frames)
    store = DemoStore.open(path)
    assert store.n_episodes == 3 and store.n_frames == 26
    assert store.episode_ends.tolist() == [9, 13, 26]
    plain = zarr.open_group(path, mode="r")
    for e, frames in enumerate(episodes):
        got = store.read_episode(e)
        for key in features:
            want = stacked(frames, key)
            assert got[key].dtype == want.dtype, key
            if key == "images/jpeg":
                err = np.abs(got[key].astype(int) - want.astype(int)).mean()
                assert err < 3, err  # lossy, but close on camera-like images
            else:
                np.testing.assert_array_equal(got[key], want, err_msg=key)
            lo, hi = store.episode_range(e)
            np.testing.assert_array_equal(np.asarray(plain["data"][key][lo:hi]), got[key])
    assert validate(store, progress=False).ok


def test_plain_zarr_reads_the_store_without_project_imports(tmp_path):
    path = tmp_path / "p.zarr"
    features = {
        **LOWDIM,
        "images/top": {"shape": [16, 16, 3], "dtype": "uint8", "kind": "image", "codec": "jpeg"},
    }
    write_episodes(path, features, [5, 7])
    code = (
        "import sys, zarr, json\n"
        f"g = zarr.open_group({str(path)!r}, mode='r')\n"
        "assert 'imitation' not in sys.modules\n"
        "print(json.dumps([g.attrs['format'], g['meta/episode_ends'][:].tolist(), list(g['data/images/top'][11].shape),"
        " g['data/state'].shape[0]]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["imitation.demos", [5, 12], [16, 16, 3], 12]


def test_episode_metadata_and_timestamps(tmp_path):
    path = tmp_path / "m.zarr"
    write_episodes(path, LOWDIM, [10, 20], fps=10)
    store = DemoStore.open(path)
    m = store.episode_meta(1)
    assert m["task"] == "task 1" and m["operator"] == "op" and m["seed"] == 101 and m["info"] == {"e": 1}
    assert m["outcome"] == "failure" and m["length"] == 20 and m["dropped_frames"] == 0
    assert m["duration_s"] == pytest.approx(2.0)  # 20 frames at 10 fps
    assert m["start_time"] > 1.6e9
    assert store.meta_table()["length"].tolist() == [10, 20]


def test_discard_and_rerecord_leave_nothing_behind(tmp_path):
    path = tmp_path / "d.zarr"
    rng = np.random.default_rng(0)
    features = {
        **LOWDIM,
        "images/top": {
            "shape": [8, 8, 3],
            "dtype": "uint8",
            "kind": "image",
            "codec": "zstd",
            "frames_per_file": 4,
        },
    }

    def frame(t, value):
        return {
            "state": np.full(6, value, "f4"),
            "action": np.zeros(6, "f4"),
            "images/top": np.full((8, 8, 3), int(value) % 256, np.uint8),
            "timestamp": t,
        }

    with EpisodeWriter(path, features=features, fps=10) as w:
        w.start_episode(task="a")
        for i in range(6):
            w.add_frame(frame(i / 10, 1))
        w.save_episode()
        w.start_episode(task="b")
        for i in range(9):
            w.add_frame(frame(i / 10, 99))
        w.discard_episode()
        w.start_episode(task="c", seed=7)
        for i in range(3):
            w.add_frame(frame(i / 10, 98))
        w.rerecord()
        for i in range(5):
            w.add_frame(frame(i / 10, 2 + rng.integers(0, 1)))
        w.save_episode()
    store = DemoStore.open(path)
    assert store.episode_ends.tolist() == [6, 11]
    assert store.episode_meta(1)["task"] == "c" and store.episode_meta(1)["seed"] == 7
    assert set(np.unique(store.read("state"))) == {1.0, 2.0}
    assert set(np.unique(store.read("images/top"))) == {1, 2}
    assert store.uncommitted_frames == 0


def test_queued_saves_keep_their_order_and_become_durable(tmp_path):
    """save_episode(wait=False) returns the index at once; the episode is committed in order."""
    path = tmp_path / "q.zarr"
    with EpisodeWriter(path, features=LOWDIM, fps=10) as w:
        indices = []
        for e, n in enumerate([4, 7, 3]):
            w.start_episode(task=f"t{e}")
            for i in range(n):
                w.add_frame({"state": np.full(6, e, "f4"), "action": np.zeros(6, "f4"), "timestamp": i / 10})
            indices.append(w.save_episode(wait=False))
        assert indices == [0, 1, 2]
        w.flush()
        assert all(w.is_saved(i) for i in indices) and not w.is_saved(3)
        w.start_episode(task="late")
        w.add_frame({"state": np.full(6, 9, "f4"), "action": np.zeros(6, "f4"), "timestamp": 0.0})
        assert w.save_episode(wait=False) == 3
    store = DemoStore.open(path)  # close waited for the queued save
    assert store.episode_ends.tolist() == [4, 11, 14, 15]
    assert [store.episode_meta(i)["task"] for i in range(4)] == ["t0", "t1", "t2", "late"]
    assert store.read("state")[11:14, 0].tolist() == [2, 2, 2]


def test_append_to_existing_store_and_schema_mismatch(tmp_path):
    path = tmp_path / "a.zarr"
    first = write_episodes(path, LOWDIM, [4], seed=1)
    second = write_episodes(path, LOWDIM, [3, 2], seed=2)
    store = DemoStore.open(path)
    assert store.episode_ends.tolist() == [4, 7, 9]
    np.testing.assert_array_equal(store.read("state", 0, 4), stacked(first[0], "state"))
    np.testing.assert_array_equal(store.read("state", 4, 7), stacked(second[0], "state"))
    other = {**LOWDIM, "action": {"shape": [7], "dtype": "float32", "kind": "action"}}
    with pytest.raises(StoreError, match="different feature schema.*action"):
        EpisodeWriter(path, features=other, fps=50)
    with pytest.raises(StoreError, match="recorded at 50.0 fps"):
        EpisodeWriter(path, features=LOWDIM, fps=30)


def test_appending_frames_of_other_camera_sources_is_refused(tmp_path):
    path = tmp_path / "a.zarr"
    robot = {"name": "sim:task.yaml", "camera_sources": {"corner": "render", "wrist": "camera:hand"}}
    with EpisodeWriter(path, features=LOWDIM, fps=50, robot=robot):
        pass
    moved = {**robot, "camera_sources": {"corner": "camera:corner4", "wrist": "camera:hand"}}
    with pytest.raises(
        StoreError, match=r"other camera sources .*\(corner: render -> camera:corner4\); record into"
    ):
        EpisodeWriter(path, features=LOWDIM, fps=50, robot=moved)
    from imitation.data.check import format_info, info

    assert "cameras    corner from render, wrist from camera:hand" in format_info(info(DemoStore.open(path)))
    # The same sources, a camera only one side names, or no sources at all: appended as before.
    for same in (robot, {"camera_sources": {"top": "render"}}, {"name": "x"}):
        with EpisodeWriter(path, features=LOWDIM, fps=50, robot=same):
            pass


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"state": np.zeros(5, "f4")}, r"'state': expected shape \(6,\), got \(5,\)"),
        ({"state": np.zeros(6, "i4")}, "'state': expected dtype float32, got int32"),
        ({"action": np.array([0, 0, np.nan, 0, 0, 0], "f4")}, r"'action': non-finite value .* index \[2\]"),
        ({"state": np.array([np.inf, 0, 0, 0, 0, 0])}, "'state': non-finite"),
        ({"extra": 1.0}, r"unknown feature\(s\) \['extra'\]"),
        ({"action": None}, r"lacks feature\(s\) \['action'\]"),
        ({"timestamp": -1.0}, "'timestamp'.*does not increase"),
    ],
)
def test_bad_frames_are_refused_and_committed_data_is_untouched(tmp_path, bad, match):
    path = tmp_path / "b.zarr"
    first = write_episodes(path, LOWDIM, [5])
    with EpisodeWriter(path) as w:
        w.start_episode()
        good = {"state": np.ones(6, "f4"), "action": np.ones(6, "f4"), "timestamp": 0.0}
        w.add_frame(good)
        frame = {**good, "timestamp": 0.1, **bad}
        frame = {k: v for k, v in frame.items() if v is not None}
        with pytest.raises(SchemaError, match=match):
            w.add_frame(frame)
        w.add_frame({**good, "timestamp": 0.2})
        w.save_episode()
    store = DemoStore.open(path)
    assert store.episode_ends.tolist() == [5, 7]
    np.testing.assert_array_equal(store.read("state", 0, 5), stacked(first[0], "state"))


@pytest.mark.parametrize(
    "feature, match",
    [
        ({"shape": [3], "dtype": "float32", "kind": "joint"}, "kind 'joint' is unknown"),
        ({"shape": [3], "dtype": "complex64", "kind": "state"}, "not numeric"),
        ({"shape": [0], "dtype": "float32", "kind": "state"}, "non-positive"),
        ({"shape": [3], "dtype": "float32", "kind": "state", "codec": "jpeg"}, "needs a uint8 image"),
        ({"shape": [3], "dtype": "float32", "kind": "state", "codec": "lz77"}, "unknown codec 'lz77'"),
        ({"shape": [3], "dtype": "float32", "kind": "state", "names": ["a"]}, "1 names given"),
    ],
)
def test_bad_feature_declarations(feature, match):
    with pytest.raises(SchemaError, match=match):
        Feature.from_dict(feature)


def test_create_errors(tmp_path):
    with pytest.raises(SchemaError, match="must be named 'images/<camera>'"):
        DemoStore.create(
            tmp_path / "x.zarr", {"top": {"shape": [4, 4, 3], "dtype": "uint8", "kind": "image"}}, fps=10
        )
    with pytest.raises(StoreError, match="fps must be > 0"):
        DemoStore.create(tmp_path / "y.zarr", LOWDIM, fps=0)
    DemoStore.create(tmp_path / "z.zarr", LOWDIM, fps=10)
    with pytest.raises(StoreError, match="already exists"):
        DemoStore.create(tmp_path / "z.zarr", LOWDIM, fps=10)
    with pytest.raises(StoreError, match="no demo store"):
        DemoStore.open(tmp_path / "missing.zarr")
    assert not list(tmp_path.glob(".*creating*"))


def test_unknown_format_version_is_refused(tmp_path):
    path = tmp_path / "v.zarr"
    write_episodes(path, LOWDIM, [3])
    g = zarr.open_group(path, mode="r+")
    g.attrs["format_version"] = 99
    with pytest.raises(StoreError, match="format_version 99.*upgrade imitation"):
        DemoStore.open(path)
    g.attrs["format"] = "something.else"
    with pytest.raises(StoreError, match="not a demo store"):
        DemoStore.open(path)


def test_one_writer_at_a_time(tmp_path):
    path = tmp_path / "l.zarr"
    with (
        EpisodeWriter(path, features=LOWDIM, fps=10),
        pytest.raises(StoreError, match="open for writing by another"),
    ):
        EpisodeWriter(path)
    EpisodeWriter(path).close()  # released on close


def test_reader_sees_only_committed_episodes_while_recording(tmp_path):
    path = tmp_path / "r.zarr"
    with EpisodeWriter(path, features=LOWDIM, fps=10) as w:
        for e in range(2):
            w.start_episode()
            for i in range(30):
                w.add_frame({"state": np.full(6, e, "f4"), "action": np.zeros(6, "f4"), "timestamp": i / 10})
            if e == 0:
                w.save_episode()
        w.flush()
        reader = DemoStore.open(path)
        assert reader.n_episodes == 1 and reader.n_frames == 30
        assert (reader.read("state") == 0).all()
        w.discard_episode()


def test_episode_control_errors(tmp_path):
    path = tmp_path / "e.zarr"
    with EpisodeWriter(path, features=LOWDIM, fps=10) as w:
        with pytest.raises(StoreError, match="call start_episode"):
            w.add_frame({"state": np.zeros(6), "action": np.zeros(6), "timestamp": 0.0})
        with pytest.raises(StoreError, match="nothing to save"):
            w.save_episode()
        w.start_episode()
        with pytest.raises(StoreError, match="already being recorded"):
            w.start_episode()
        with pytest.raises(StoreError, match="no frames"):
            w.save_episode()
    with pytest.raises(StoreError, match="is closed"):
        w.start_episode()


def test_committed_count_rule():
    # ends must be strictly increasing, positive and within the data: the prefix that is, counts.
    assert committed_count(np.array([3, 5, 9]), 9, 3) == 3
    assert committed_count(np.array([3, 5, 0]), 9, 3) == 2  # resize done, value not yet written
    assert committed_count(np.array([3, 5, 12]), 9, 3) == 2  # frames not all there
    assert committed_count(np.array([3, 5, 9]), 9, 2) == 2  # metadata of the 3rd not there
    assert committed_count(np.array([0]), 9, 1) == 0
    assert committed_count(np.array([], dtype=np.int64), 0, 0) == 0


def test_check_record_accepts_only_what_a_crash_can_leave():
    data, meta = {"state": 9, "action": 9}, {"task": 3, "seed": 3}
    assert check_record(np.array([3, 5, 9]), data, meta) == (3, [])
    # A crash leaves: frames past the last end, one metadata entry more, a trailing end still 0.
    assert check_record(np.array([3, 5]), {"state": 9, "action": 7}, meta) == (2, [])
    assert check_record(np.array([3, 5, 0]), data, meta) == (2, [])
    # Anything else is damage, named: ends going back, arrays shorter than the ends, metadata gaps.
    n, problems = check_record(np.array([3, 2, 9]), data, meta)
    assert problems == ["meta/episode_ends does not increase at episode 1 (3 then 2)"]
    n, problems = check_record(np.array([3, 5, 12]), data, meta)
    assert problems == [
        "data/state holds 9 frames, but meta/episode_ends commits 12",
        "data/action holds 9 frames, but meta/episode_ends commits 12",
    ]
    assert check_record(np.array([3, 5, 9]), data, {"task": 2, "seed": 3})[1] == [
        "meta/task has 2 entries for 3 committed episodes"
    ]
    assert check_record(np.array([3]), data, {"task": 3, "seed": 1})[1] == [
        "meta/task has 3 entries, but meta/episode_ends commits 1 episodes (an interrupted save leaves at most one more)"
    ]
    assert check_record(np.array([0, 0]), data, meta)[1]  # only the last entry may be an unwritten 0


def test_length_column_and_timestamps_locate_a_wrong_boundary():
    assert length_problems(np.array([3, 5, 9]), np.array([3, 2, 4, 7])) == []  # the 4th: uncommitted
    assert length_problems(np.array([2, 5, 9]), np.array([3, 2, 4])) == [
        "episode 0: meta/length records 3 frames, but meta/episode_ends gives it 2 (frames 0..1)"
    ]
    # Timestamps restart per episode (simulation time): an end at 2 instead of 3 puts the restart
    # inside episode 1, at frame 3.
    ts = np.array([0.0, 0.1, 0.2, 0.0, 0.1, 0.0, 0.1, 0.2, 0.3])
    assert timestamp_problems(ts, np.array([3, 5, 9])) == []
    (problem,) = timestamp_problems(ts, np.array([2, 5, 9]))
    assert problem.startswith("episode 1: its timestamp does not increase at frame 3 (0.2 then 0.0")


BIG = {  # 128x192x3 = 73,728 bytes a frame: large enough for the writer's reused buffers
    **LOWDIM,
    "images/top": {
        "shape": [128, 192, 3],
        "dtype": "uint8",
        "kind": "image",
        "codec": "zstd",
        "frames_per_file": 7,
    },
}


def test_reused_frame_buffers_never_leak_between_frames(tmp_path):
    """The caller overwrites one array in place every frame; the writer's own copies are reused
    buffers, and every stored frame is still the one handed over at its tick."""
    path = tmp_path / "d.zarr"
    rng = np.random.default_rng(3)
    frame_buf = np.zeros((128, 192, 3), np.uint8)
    sent = []
    with EpisodeWriter(path, features=BIG, fps=4) as w:  # keeps at most 4 spare buffers
        for n in (9, 12):
            w.start_episode()
            for i in range(n):
                frame_buf[...] = rng.integers(0, 256, frame_buf.shape, dtype=np.uint8)
                sent.append(frame_buf.copy())
                w.add_frame(
                    {"state": np.zeros(6), "action": np.zeros(6), "images/top": frame_buf, "timestamp": i}
                )
                if i % 5 == 4:
                    w.flush()  # the writer hands its buffers back
                    spare = w._pool.free["images/top"]
                    assert 1 <= len(spare) <= 4
                    assert all(b is not frame_buf for b in spare)
            w.save_episode()
        assert "state" not in w._pool.free  # small values are plain copies
    np.testing.assert_array_equal(DemoStore.open(path).read("images/top"), np.stack(sent))


def test_a_commit_keeps_its_shard_in_memory_for_the_next_episode(tmp_path, monkeypatch):
    """Episodes that share a shard: the next episode starts from the frames just committed, not
    from a read of the shard file; a new writer reads it back."""
    import imitation.data.store as store_module

    path = tmp_path / "d.zarr"
    written = write_episodes(path, BIG, [3])  # a shard of 7 frames with 3 committed
    reads = []
    real_split = store_module.split_shard
    monkeypatch.setattr(
        store_module, "split_shard", lambda *a, **k: reads.append(k.get("where")) or real_split(*a, **k)
    )
    rng = np.random.default_rng(9)
    more = [[smooth_image(rng, 128, 192) for _ in range(n)] for n in (2, 4, 1)]  # 3+2+4 crosses the shard
    with EpisodeWriter(path) as w:
        for frames in more:
            w.start_episode()
            for i, img in enumerate(frames):
                w.add_frame({"state": np.zeros(6), "action": np.zeros(6), "images/top": img, "timestamp": i})
            w.save_episode()
    assert len(reads) == 1  # the new writer's first episode only
    got = DemoStore.open(path).read("images/top")
    want = [f["images/top"] for f in written[0]] + [img for frames in more for img in frames]
    np.testing.assert_array_equal(got, np.stack(want))


def test_large_durable_files_leave_the_page_cache(tmp_path, monkeypatch):
    """A shard-sized file is dropped from the page cache once fsynced; small files stay cached."""
    import os

    from imitation.data import durable

    advised = []
    monkeypatch.setattr(durable.os, "posix_fadvise", lambda fd, off, n, advice: advised.append(advice))
    durable.atomic_write(tmp_path / "small", b"x" * 1000)
    assert advised == []
    big = [b"y" * (1 << 20)] * 5
    durable.atomic_write(tmp_path / "big", big)
    assert advised == [os.POSIX_FADV_DONTNEED]
    assert (tmp_path / "big").read_bytes() == b"".join(big)
    monkeypatch.setattr(durable, "_FADVISE", False)  # a platform without posix_fadvise (macOS)
    durable.atomic_write(tmp_path / "big2", big)
    assert advised == [os.POSIX_FADV_DONTNEED] and (tmp_path / "big2").read_bytes() == b"".join(big)
