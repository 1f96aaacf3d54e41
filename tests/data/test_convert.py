"""Importing diffusion_policy replay buffers (Zarr v2, built here the way diffusion_policy writes
them) and exporting stores back to that layout."""

from __future__ import annotations

import os
import zipfile

import numcodecs
import numpy as np
import pytest
import zarr

from imitation.data import convert
from imitation.data.store import DemoStore, EpisodeWriter, StoreError
from imitation.errors import ConfigError

BLOSC = numcodecs.Blosc(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.NOSHUFFLE)
LENGTHS = (12, 7, 16)


def pusht_image(rng: np.random.Generator, n: int) -> np.ndarray:
    """PushT's img: (n, 96, 96, 3) float32 holding whole numbers 0..255 (a smooth scene)."""
    y, x = np.mgrid[0:96, 0:96]
    frames = []
    for _ in range(n):
        cx, cy = rng.uniform(20, 76, 2)
        blob = 200 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 200)
        frames.append(np.stack([blob + 40, 0.5 * blob + 60, 255 - blob], axis=-1))
    return np.round(np.clip(np.stack(frames), 0, 255)).astype(np.float32)


def write_replay_buffer(path, arrays: dict[str, tuple[np.ndarray, tuple[int, ...], object]], episode_ends):
    """A Zarr v2 replay buffer: data/<key> (array, chunks, compressor) and meta/episode_ends."""
    root = zarr.open_group(path, mode="w", zarr_format=2)
    data = root.create_group("data")
    for key, (value, chunks, compressor) in arrays.items():
        arr = data.create_array(
            key, shape=value.shape, chunks=chunks, dtype=value.dtype, compressors=compressor
        )
        arr[:] = value
    ends = np.asarray(episode_ends, dtype=np.int64)
    meta = root.create_group("meta")
    meta.create_array(
        "episode_ends", shape=ends.shape, chunks=ends.shape or (1,), dtype="int64", compressors=None
    )[:] = ends
    return path


def pusht_arrays(lengths=LENGTHS, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    return {
        "img": pusht_image(rng, n),
        "state": rng.uniform(0, 512, (n, 5)).astype(np.float32),
        "action": rng.uniform(0, 512, (n, 2)).astype(np.float32),
        "keypoint": rng.uniform(0, 512, (n, 9, 2)).astype(np.float32),
        "n_contacts": rng.integers(0, 3, (n, 1)).astype(np.float32),
    }


def write_pusht(path, lengths=LENGTHS, *, arrays=None, episode_ends=None):
    """Laid out like pusht_cchi_v7_replay.zarr: img chunks (100, 96, 96, 3), Blosc zstd."""
    arrays = arrays or pusht_arrays(lengths)
    spec = {
        k: (v, (100, *v.shape[1:]) if k == "img" else (1000, *v.shape[1:]), BLOSC) for k, v in arrays.items()
    }
    ends = np.cumsum(lengths) if episode_ends is None else episode_ends
    return write_replay_buffer(path, spec, ends), arrays


@pytest.fixture(scope="module")
def pusht(tmp_path_factory):
    return write_pusht(tmp_path_factory.mktemp("dp") / "pusht_replay.zarr")


def test_import_pusht_with_default_mapping(pusht, tmp_path):
    src, arrays = pusht
    store = convert.import_diffusion_policy(
        src, tmp_path / "pusht.zarr", fps=10, image_codec="zstd", progress=False
    )
    assert store.n_episodes == 3 and list(store.episode_lengths) == list(LENGTHS)
    kinds = {k: (f.kind, f.dtype, f.shape) for k, f in store.features.items()}
    assert kinds == {
        "action": ("action", "float32", (2,)),
        "state": ("state", "float32", (5,)),
        "images/img": ("image", "uint8", (96, 96, 3)),
        "keypoint": ("scalar", "float32", (9, 2)),
        "n_contacts": ("scalar", "float32", (1,)),
        "timestamp": ("scalar", "float64", ()),
    }
    img = store.read("images/img")
    assert img.dtype == np.uint8 and np.array_equal(img, arrays["img"].astype(np.uint8))  # lossless zstd
    for key in ("action", "state", "keypoint", "n_contacts"):
        assert np.array_equal(store.read(key), arrays[key]), key
    # no timestamps in PushT: frame_in_episode / fps
    start, end = store.episode_range(2)
    assert np.array_equal(store.read("timestamp", start, end), np.arange(LENGTHS[2]) / 10.0)
    meta = [store.episode_meta(e) for e in range(3)]
    assert {m["task"] for m in meta} == {"unknown"} and {m["outcome"] for m in meta} == {"unknown"}
    assert [m["info"]["source_episode"] for m in meta] == [0, 1, 2]
    assert len({m["start_time"] for m in meta}) == 3  # distinct, so the fingerprint tells edits apart
    assert meta[1]["duration_s"] == pytest.approx(LENGTHS[1] / 10)


def test_import_with_mapping_overrides_and_jpeg(pusht, tmp_path):
    src, arrays = pusht
    mapping = {"img": "images/top", "keypoint": "env_state", "n_contacts": ""}
    store = convert.import_diffusion_policy(
        src,
        tmp_path / "m.zarr",
        fps=10,
        mapping=mapping,
        task="push the T",
        outcome="success",
        progress=False,
    )
    assert sorted(store.features) == ["action", "env_state", "images/top", "state", "timestamp"]
    env = store.features["env_state"]
    assert (env.kind, env.dtype, env.shape) == ("state", "float32", (9, 2))
    assert store.features["images/top"].codec["name"] == "jpeg"
    assert store.read_encoded("images/top", 0, 1)[0][:2] == b"\xff\xd8"  # a JPEG frame
    err = np.abs(store.read("images/top").astype(int) - arrays["img"].astype(int)).mean()
    assert err < 2.0
    assert np.array_equal(store.read("env_state"), arrays["keypoint"])
    assert store.episode_meta(0)["task"] == "push the T" and store.episode_meta(2)["outcome"] == "success"


def test_real_robot_layout_from_a_zip_with_jpeg2k_cameras(tmp_path):
    """diffusion_policy's real-robot buffers: uint8 camera_<i> compressed per frame with
    imagecodecs' Jpeg2k, float64 robot arrays and absolute timestamps; cached as .zarr.zip."""
    import imagecodecs.numcodecs

    imagecodecs.numcodecs.register_codecs()
    rng = np.random.default_rng(3)
    lengths = (5, 8)
    n = sum(lengths)
    t = 1.7e9 + np.concatenate([np.arange(5) * 0.1, 60 + np.arange(8) * 0.1])
    arrays = {
        "camera_0": (
            rng.integers(0, 256, (n, 24, 32, 3), dtype=np.uint8),
            (1, 24, 32, 3),
            numcodecs.get_codec({"id": "imagecodecs_jpeg2k", "level": 50}),
        ),
        "robot_joint": (rng.normal(size=(n, 6)), (100, 6), BLOSC),
        "action": (rng.normal(size=(n, 6)), (100, 6), BLOSC),
        "timestamp": (t, (100,), BLOSC),
        "stage": (rng.integers(0, 3, n), (100,), BLOSC),
    }
    src = write_replay_buffer(tmp_path / "real.zarr", arrays, np.cumsum(lengths))
    zipped = tmp_path / "real.zarr.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        for root, _, files in os.walk(src):
            for f in files:
                z.write(os.path.join(root, f), os.path.relpath(os.path.join(root, f), src))
    reference = zarr.open_group(src, mode="r")
    store = convert.import_diffusion_policy(
        zipped,
        tmp_path / "real_demos.zarr",
        fps=10,
        mapping={"robot_joint": "state"},
        image_codec="zstd",
        progress=False,
    )
    assert np.array_equal(store.read("images/camera_0"), reference["data/camera_0"][:])
    assert store.read("state").dtype == np.float32
    assert np.array_equal(store.read("state"), arrays["robot_joint"][0].astype(np.float32))
    assert np.array_equal(store.read("stage"), arrays["stage"][0])
    assert np.array_equal(store.read("timestamp"), t)
    assert store.episode_meta(1)["start_time"] == t[5]


@pytest.mark.parametrize(
    ("ends", "match"),
    [
        ([12, 7, 35], "non-decreasing .* entry 1 is 7 after 12"),
        ([12, 19, 30], "ends at frame 30, but data/.* has 35 frames"),
        ([12, 19, 40], "ends at frame 40"),
        ([], "holds no episodes"),
    ],
)
def test_bad_episode_ends_are_refused(tmp_path, ends, match):
    src, _ = write_pusht(tmp_path / "bad.zarr", episode_ends=np.asarray(ends, dtype=np.int64))
    with pytest.raises(StoreError, match=match):
        convert.import_diffusion_policy(src, tmp_path / "out.zarr", fps=10, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zarr"]


def test_float_images_must_hold_whole_pixel_values(tmp_path):
    arrays = pusht_arrays()
    arrays["img"] = arrays["img"] / 255.0  # images in 0..1
    src, _ = write_pusht(tmp_path / "unit.zarr", arrays=arrays)
    with pytest.raises(
        StoreError,
        match=r"episode 0, frame 0: data/img: float image values must be whole numbers in 0\.\.255",
    ):
        convert.import_diffusion_policy(src, tmp_path / "out.zarr", fps=10, progress=False)
    assert not (tmp_path / "out.zarr").exists()


def test_timestamps_must_increase_within_an_episode(tmp_path):
    arrays = pusht_arrays((4, 4))
    arrays["timestamp"] = np.array([0, 1, 1, 2, 0, 1, 2, 3], dtype=np.float64)
    src, _ = write_pusht(tmp_path / "t.zarr", (4, 4), arrays=arrays)
    with pytest.raises(StoreError, match="episode 0, frame 2: .*does not increase"):
        convert.import_diffusion_policy(
            src, tmp_path / "out.zarr", fps=10, image_codec="zstd", progress=False
        )


def test_import_argument_errors(pusht, tmp_path):
    src, _ = pusht
    out = tmp_path / "out.zarr"
    with pytest.raises(StoreError, match="pass it .*PushT: 10"):
        convert.import_diffusion_policy(src, out, progress=False)
    with pytest.raises(StoreError, match=r"\['pixels'\] that data/ lacks; data/ holds \['action', 'img'"):
        convert.import_diffusion_policy(src, out, fps=10, mapping={"pixels": "images/top"}, progress=False)
    with pytest.raises(StoreError, match="data/.* and data/.* both map to 'state'"):
        convert.import_diffusion_policy(src, out, fps=10, mapping={"keypoint": "state"}, progress=False)
    with pytest.raises(StoreError, match=r"data/state \(shape \(35, 5\), float32\) cannot become 'images/s'"):
        convert.import_diffusion_policy(src, out, fps=10, mapping={"state": "images/s"}, progress=False)
    with pytest.raises(StoreError, match="cannot become 'timestamp': a timestamp needs one number per frame"):
        convert.import_diffusion_policy(src, out, fps=10, mapping={"action": "timestamp"}, progress=False)
    with pytest.raises(StoreError, match="cannot become 'meta'.*reserved"):
        convert.import_diffusion_policy(src, out, fps=10, mapping={"action": "meta"}, progress=False)
    with pytest.raises(StoreError, match="not a diffusion_policy replay buffer: it does not open"):
        convert.import_diffusion_policy(tmp_path, out, fps=10, progress=False)
    zarr.open_group(tmp_path / "nometa.zarr", mode="w", zarr_format=2).create_group("data")
    with pytest.raises(
        StoreError, match="no 'meta/episode_ends', so it is not a diffusion_policy replay buffer"
    ):
        convert.import_diffusion_policy(tmp_path / "nometa.zarr", out, fps=10, progress=False)
    with pytest.raises(
        StoreError, match="unknown import format 'lerobot_v9'; choose one of diffusion_policy"
    ):
        convert.importer("lerobot_v9")
    assert convert.importer("diffusion_policy") is convert.import_diffusion_policy
    assert not out.exists()


def test_a_demo_store_is_not_imported_as_a_replay_buffer(pusht, tmp_path):
    store = convert.import_diffusion_policy(
        pusht[0], tmp_path / "a.zarr", fps=10, image_codec="zstd", progress=False
    )
    with pytest.raises(StoreError, match="Zarr v3 store, not a diffusion_policy"):
        convert.import_diffusion_policy(store.path, tmp_path / "b.zarr", fps=10, progress=False)


def test_export_then_import_gives_the_store_back(tmp_path):
    features = {
        "state": {"shape": [3], "dtype": "float32", "kind": "state", "names": ["x", "y", "z"]},
        "action": {"shape": [3], "dtype": "float32", "kind": "action"},
        "contacts": {"shape": [], "dtype": "int16", "kind": "scalar"},
        "images/top": {"shape": [20, 24, 3], "dtype": "uint8", "kind": "image", "codec": {"name": "jpeg"}},
        "images/depth": {"shape": [20, 24, 1], "dtype": "uint8", "kind": "image", "codec": {"name": "zstd"}},
    }
    rng = np.random.default_rng(0)
    with EpisodeWriter(tmp_path / "ours.zarr", features=features, fps=25, robot={"name": "koch"}) as w:
        for e, n in enumerate((6, 9)):
            w.start_episode(task=f"t{e}", operator="ana", seed=e, info={"k": [e, 0.5]}, start_time=1.7e9 + e)
            for i in range(n):
                frame = {k: rng.integers(0, 255, f.shape).astype(f.dtype) for k, f in w.features.items()}
                w.add_frame(frame | {"timestamp": i / 25 + rng.uniform(0, 0.01)})
            w.save_episode(outcome=["success", "failure"][e], dropped_frames=e)
    ours = DemoStore.open(tmp_path / "ours.zarr")

    dp = convert.export_diffusion_policy(ours, tmp_path / "dp.zarr", progress=False)
    root = zarr.open_group(dp, mode="r")
    assert root.metadata.zarr_format == 2
    assert sorted(root["data"].array_keys()) == ["action", "contacts", "depth", "state", "timestamp", "top"]
    assert root["data/top"].dtype == np.uint8 and root["data/top"].shape == (15, 20, 24, 3)
    assert list(root["meta/episode_ends"][:]) == [6, 15]

    back = convert.import_diffusion_policy(dp, tmp_path / "back.zarr", image_codec="zstd", progress=False)
    assert (back.fps, back.robot) == (ours.fps, ours.robot)
    assert back.features["state"].names == ("x", "y", "z")
    assert sorted(back.features) == sorted(ours.features)
    for key in ours.features:
        assert np.array_equal(back.read(key), ours.read(key)), key
    for e in range(2):
        assert back.episode_meta(e) == ours.episode_meta(e)
    assert back.fingerprint() == ours.fingerprint()


def test_a_replay_buffer_linking_outside_itself_is_refused(pusht, tmp_path):
    import shutil

    src = tmp_path / "linked.zarr"
    shutil.copytree(pusht[0], src)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"not for the importer")
    chunk = next(p for p in (src / "data" / "state").iterdir() if p.name != ".zarray")
    chunk.unlink()
    chunk.symlink_to(secret)
    with pytest.raises(ConfigError, match="outside"):
        convert.importer("diffusion_policy")(src, tmp_path / "out.zarr", fps=10)
    assert not (tmp_path / "out.zarr").exists()
