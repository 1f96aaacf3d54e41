"""Training windows: offsets and edge padding worked out by hand, batched and cached reads against
plain ones, the direct shard reader against zarr for every codec, DataLoader workers, episode
selection and the resumable sampler."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import BatchSampler, DataLoader

from imitation.data.dataset import (
    ResumableSampler,
    WindowDataset,
    WindowSpec,
    filter_episodes,
    split_episodes,
)
from imitation.data.store import DemoStore, EpisodeWriter, StoreError
from imitation.errors import ConfigError

# The tiny store: episodes of 3, 5 and 1 frames, global frames 0-2 | 3-7 | 8.
# state = [g, -g] and action = [100 + g, 0] encode the global frame index g; the image has g in
# channel 0 and noise in the others. Image shards hold 3 frames, so shards straddle episodes.
LENGTHS = (3, 5, 1)
META = [("success", "pick", "ana"), ("failure", "place", "bo"), ("success", "place", "ana")]
H = W = 4
TINY_FEATURES = {
    "state": {"shape": [2], "dtype": "float32", "kind": "state"},
    "action": {"shape": [2], "dtype": "float32", "kind": "action"},
    "images/top": {
        "shape": [H, W, 3],
        "dtype": "uint8",
        "kind": "image",
        "codec": {"name": "zstd"},
        "frames_per_file": 3,
    },
}


def tiny_image(g: int, rng: np.random.Generator) -> np.ndarray:
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    img[..., 0] = g
    return img


def write_tiny(path, lengths=LENGTHS, start=0, seed=0):
    rng = np.random.default_rng(seed)
    g = start
    with EpisodeWriter(path, features=TINY_FEATURES, fps=50) as w:
        for e, n in enumerate(lengths):
            outcome, task, operator = META[e % len(META)]
            w.start_episode(task=task, operator=operator)
            for _ in range(n):
                w.add_frame(
                    {
                        "state": np.array([g, -g], np.float32),
                        "action": np.array([100 + g, 0], np.float32),
                        "images/top": tiny_image(g, rng),
                        "timestamp": g / 50,
                    }
                )
                g += 1
            w.save_episode(outcome=outcome)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.zarr"
    write_tiny(path)
    return path


def frames_of(batch, key):
    """The global frame index each window entry holds (channel 0 of state/image, action - 100)."""
    if key == "action":
        return (batch["action"][..., 0] - 100).long().tolist()
    if key == "state":
        return batch["state"][..., 0].long().tolist()
    return batch[key][..., 0, 0, 0].long().tolist()


# ---------------------------------------------------------------------------------------------
# Windows and padding, by hand. Sample i is global frame i (all episodes selected). Padded
# entries repeat the episode's edge frame: episode 0 is frames 0..2, episode 1 is 3..7, episode 2
# is frame 8 alone.

T, F = True, False

# ACT, chunk_size 4, frame_skip 1: obs [t]; actions t..t+3, clamped to the episode.
ACT_1 = [
    # (obs, obs_pad, actions, action_pad)
    ([0], [F], [0, 1, 2, 2], [F, F, F, T]),
    ([1], [F], [1, 2, 2, 2], [F, F, T, T]),
    ([2], [F], [2, 2, 2, 2], [F, T, T, T]),
    ([3], [F], [3, 4, 5, 6], [F, F, F, F]),
    ([4], [F], [4, 5, 6, 7], [F, F, F, F]),
    ([5], [F], [5, 6, 7, 7], [F, F, F, T]),
    ([6], [F], [6, 7, 7, 7], [F, F, T, T]),
    ([7], [F], [7, 7, 7, 7], [F, T, T, T]),
    ([8], [F], [8, 8, 8, 8], [F, T, T, T]),
]
# ACT, chunk_size 4, frame_skip 2: actions t, t+2, t+4, t+6.
ACT_2 = [
    ([0], [F], [0, 2, 2, 2], [F, F, T, T]),
    ([1], [F], [1, 2, 2, 2], [F, T, T, T]),
    ([2], [F], [2, 2, 2, 2], [F, T, T, T]),
    ([3], [F], [3, 5, 7, 7], [F, F, F, T]),
    ([4], [F], [4, 6, 7, 7], [F, F, T, T]),
    ([5], [F], [5, 7, 7, 7], [F, F, T, T]),
    ([6], [F], [6, 7, 7, 7], [F, T, T, T]),
    ([7], [F], [7, 7, 7, 7], [F, T, T, T]),
    ([8], [F], [8, 8, 8, 8], [F, T, T, T]),
]
# Diffusion Policy, n_obs_steps 2, horizon 5, frame_skip 1: obs t-1, t; actions t-1..t+3.
DP_1 = [
    ([0, 0], [T, F], [0, 0, 1, 2, 2], [T, F, F, F, T]),
    ([0, 1], [F, F], [0, 1, 2, 2, 2], [F, F, F, T, T]),
    ([1, 2], [F, F], [1, 2, 2, 2, 2], [F, F, T, T, T]),
    ([3, 3], [T, F], [3, 3, 4, 5, 6], [T, F, F, F, F]),
    ([3, 4], [F, F], [3, 4, 5, 6, 7], [F, F, F, F, F]),
    ([4, 5], [F, F], [4, 5, 6, 7, 7], [F, F, F, F, T]),
    ([5, 6], [F, F], [5, 6, 7, 7, 7], [F, F, F, T, T]),
    ([6, 7], [F, F], [6, 7, 7, 7, 7], [F, F, T, T, T]),
    ([8, 8], [T, F], [8, 8, 8, 8, 8], [T, F, T, T, T]),
]
# Diffusion Policy, n_obs_steps 2, horizon 5, frame_skip 2: obs t-2, t; actions t-2, t, ..., t+6.
DP_2 = [
    ([0, 0], [T, F], [0, 0, 2, 2, 2], [T, F, F, T, T]),
    ([0, 1], [T, F], [0, 1, 2, 2, 2], [T, F, T, T, T]),
    ([0, 2], [F, F], [0, 2, 2, 2, 2], [F, F, T, T, T]),
    ([3, 3], [T, F], [3, 3, 5, 7, 7], [T, F, F, F, T]),
    ([3, 4], [T, F], [3, 4, 6, 7, 7], [T, F, F, T, T]),
    ([3, 5], [F, F], [3, 5, 7, 7, 7], [F, F, F, T, T]),
    ([4, 6], [F, F], [4, 6, 7, 7, 7], [F, F, T, T, T]),
    ([5, 7], [F, F], [5, 7, 7, 7, 7], [F, F, T, T, T]),
    ([8, 8], [T, F], [8, 8, 8, 8, 8], [T, F, T, T, T]),
]
OBS_KEYS = ("state", "images/top")


@pytest.mark.parametrize(
    "spec, table",
    [
        (WindowSpec.act(4, OBS_KEYS), ACT_1),
        (WindowSpec.act(4, OBS_KEYS, frame_skip=2), ACT_2),
        (WindowSpec.diffusion(2, 5, OBS_KEYS), DP_1),
        (WindowSpec.diffusion(2, 5, OBS_KEYS, frame_skip=2), DP_2),
    ],
    ids=["act-skip1", "act-skip2", "dp-skip1", "dp-skip2"],
)
@pytest.mark.parametrize("cache", ["none", "ram"])
def test_windows_match_hand_worked_tables(tiny, spec, table, cache):
    ds = WindowDataset(tiny, spec, cache=cache)
    assert len(ds) == len(table) == sum(LENGTHS)
    batch = ds.get_batch(range(len(ds)))
    assert frames_of(batch, "state") == [row[0] for row in table]
    assert frames_of(batch, "images/top") == [row[0] for row in table]
    assert batch["obs_is_pad"].tolist() == [row[1] for row in table]
    assert frames_of(batch, "action") == [row[2] for row in table]
    assert batch["action_is_pad"].tolist() == [row[3] for row in table]
    assert batch["episode_index"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 2]
    assert batch["frame_index"].tolist() == [0, 1, 2, 0, 1, 2, 3, 4, 0]
    assert batch["images/top"].dtype == torch.uint8
    assert batch["state"].dtype == batch["action"].dtype == torch.float32
    assert batch["images/top"].shape == (len(table), spec.n_obs, H, W, 3)
    assert batch["action"].shape == (len(table), spec.n_actions, 2)


def test_spec_constructors_give_the_paper_offsets():
    act = WindowSpec.act(3, ["state"])
    assert (act.obs_offsets, act.action_offsets, act.obs_keys) == ((0,), (0, 1, 2), ("state",))
    dp = WindowSpec.diffusion(2, 16, ["state"])
    assert dp.obs_offsets == (-1, 0)
    assert dp.action_offsets == tuple(range(-1, 15)) and dp.n_actions == 16
    # From YAML: lists become tuples, so specs compare and hash.
    assert WindowSpec(obs_offsets=[0], action_offsets=[0, 1], obs_keys=["state"]) == WindowSpec.act(
        2, ["state"]
    )


def test_episode_subset_keeps_windows_inside_each_episode(tiny):
    ds = WindowDataset(tiny, WindowSpec.diffusion(2, 5, OBS_KEYS), episodes=[2, 1], cache="ram")
    assert len(ds) == 1 + 5
    batch = ds.get_batch(range(len(ds)))
    assert batch["episode_index"].tolist() == [2, 1, 1, 1, 1, 1]
    assert batch["frame_index"].tolist() == [0, 0, 1, 2, 3, 4]
    expected = [DP_1[8]] + DP_1[3:8]
    assert frames_of(batch, "images/top") == [row[0] for row in expected]
    assert frames_of(batch, "action") == [row[2] for row in expected]
    assert batch["action_is_pad"].tolist() == [row[3] for row in expected]
    assert ds._cache["images/top"].shape[0] == 6  # only the selected episodes are cached


def test_single_items_batches_and_cache_agree(tiny):
    spec = WindowSpec.diffusion(2, 5, OBS_KEYS, frame_skip=2)
    disk = WindowDataset(tiny, spec, cache="none")
    ram = WindowDataset(tiny, spec, cache="ram")
    idx = [8, 0, 3, 3, 7, 1]
    items = disk.__getitems__(idx)
    assert [set(s) for s in items] == [
        {*OBS_KEYS, "action", "obs_is_pad", "action_is_pad", "episode_index", "frame_index"}
    ] * len(idx)
    for i, sample in zip(idx, items, strict=True):
        for other in (disk[i], ram[i], ram.__getitems__([i])[0]):
            assert set(other) == set(sample)
            for k, v in sample.items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(other[k])), (i, k)
    assert disk[-1]["frame_index"] == 0 and disk[-1]["episode_index"] == 2
    for k, v in disk.get_batch(idx).items():
        assert torch.equal(v, ram.get_batch(idx)[k]) and torch.equal(v, disk[idx][k]), k


def test_default_collate_through_workers(tiny):
    spec = WindowSpec.diffusion(2, 5, OBS_KEYS)
    ds = WindowDataset(tiny, spec, cache="none")
    loader = DataLoader(ds, batch_size=4, num_workers=2, sampler=ResumableSampler(len(ds), shuffle=False))
    batches = list(loader)
    assert len(batches) == 3
    b = batches[0]
    assert b["images/top"].shape == (4, 2, H, W, 3) and b["images/top"].dtype == torch.uint8
    assert b["state"].shape == (4, 2, 2) and b["action"].shape == (4, 5, 2)
    assert b["obs_is_pad"].shape == (4, 2) and b["action_is_pad"].shape == (4, 5)
    assert b["episode_index"].dtype == torch.int64
    for start, b in zip((0, 4, 8), batches, strict=True):
        want = ds.get_batch(range(start, min(start + 4, len(ds))))
        assert set(b) == set(want)
        for k in want:
            assert torch.equal(b[k], want[k]), k
    # Batched loading without collation: the loader hands each list of indices to ds[indices].
    fast = DataLoader(ds, batch_size=None, num_workers=2, sampler=BatchSampler(range(len(ds)), 4, False))
    for b, ref in zip(fast, batches, strict=True):
        for k in ref:
            assert torch.equal(b[k], ref[k]), k


def test_dataset_pickles_for_spawned_workers(tiny):
    ds = WindowDataset(tiny, WindowSpec.act(4, OBS_KEYS), cache="none")
    before = ds.get_batch([0, 5])  # opens per-process resources that must not be pickled
    clone = pickle.loads(pickle.dumps(ds))
    for k, v in clone.get_batch([0, 5]).items():
        assert torch.equal(v, before[k]), k


def test_spawned_workers_read_the_same_batches(tiny):
    ds = WindowDataset(tiny, WindowSpec.act(4, OBS_KEYS), cache="ram")
    sampler = ResumableSampler(len(ds), shuffle=False)
    loader = DataLoader(ds, batch_size=5, num_workers=1, sampler=sampler, multiprocessing_context="spawn")
    got = torch.cat([b["images/top"] for b in loader])
    assert torch.equal(got, ds.get_batch(range(len(ds)))["images/top"])


def test_cache_auto_follows_the_budget(tiny):
    spec = WindowSpec.act(2, OBS_KEYS)
    assert WindowDataset(tiny, spec, cache="auto", ram_budget_gb=1.0).cache == "ram"
    small = WindowDataset(tiny, spec, cache="auto", ram_budget_gb=1e-9)
    assert small.cache == "none" and not small._cache


@settings(max_examples=40, deadline=None)
@given(
    obs=st.sets(st.integers(-4, 0), min_size=1),
    act=st.sets(st.integers(-3, 6), min_size=1),
    skip=st.integers(1, 3),
    picks=st.lists(st.integers(0, sum(LENGTHS) - 1), min_size=1, max_size=12),
)
def test_windows_match_a_plain_reference(tiny, obs, act, skip, picks):
    spec = WindowSpec(
        obs_offsets=sorted(obs), action_offsets=sorted(act), frame_skip=skip, obs_keys=["state"]
    )
    ds = WindowDataset(tiny, spec)
    ends = np.cumsum(LENGTHS)
    batch = ds.get_batch(picks)
    for b, t in enumerate(picks):  # sample t is global frame t
        e = int(np.searchsorted(ends, t, side="right"))
        lo, hi = (ends[e - 1] if e else 0), ends[e] - 1
        for key, offsets, pad in (
            ("state", spec.obs_offsets, "obs_is_pad"),
            ("action", spec.action_offsets, "action_is_pad"),
        ):
            raw = [t + o * skip for o in offsets]
            assert frames_of(batch, key)[b] == [min(max(r, lo), hi) for r in raw]
            assert batch[pad][b].tolist() == [not lo <= r <= hi for r in raw]


# ---------------------------------------------------------------------------------------------
# The direct shard reader against zarr

CODECS = {
    "images/none": ([6, 5, 3], {"name": "none"}),
    "images/zstd": ([6, 5, 3], {"name": "zstd"}),
    "images/blosc": ([6, 5, 3], {"name": "blosc"}),
    "images/jpeg": ([16, 16, 3], {"name": "jpeg", "quality": 80}),
    "images/gray": ([16, 16, 1], {"name": "jpeg"}),
}


@pytest.fixture(scope="module")
def codec_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("codecs") / "codecs.zarr"
    features = {
        "state": {"shape": [1], "dtype": "float32", "kind": "state"},
        "action": {"shape": [1], "dtype": "float32", "kind": "action"},
        **{
            k: {"shape": shape, "dtype": "uint8", "kind": "image", "codec": codec, "frames_per_file": 4}
            for k, (shape, codec) in CODECS.items()
        },
    }
    rng = np.random.default_rng(1)
    g = 0
    with EpisodeWriter(path, features=features, fps=10) as w:
        for n in (5, 7, 2):
            w.start_episode()
            for _ in range(n):
                frame = {"state": [float(g)], "action": [float(g)], "timestamp": g / 10}
                for k, (shape, _) in CODECS.items():
                    frame[k] = rng.integers(0, 256, shape, dtype=np.uint8)
                w.add_frame(frame)
                g += 1
            w.save_episode()
    return path


@pytest.mark.parametrize("key", list(CODECS))
def test_shard_reader_matches_zarr_for_every_codec(codec_store, key):
    ds = WindowDataset(codec_store, WindowSpec.diffusion(2, 3, [key]), decode_threads=2)
    assert key in ds._readers  # the direct path is in use for stores the writer made
    arr = zarr.open_array(store=str(codec_store / "data" / key), mode="r")
    frames = np.array([13, 0, 5, 4, 3, 3, 12, 7])
    want = arr.get_orthogonal_selection((frames,))
    assert np.array_equal(ds.read_frames(key, frames), want)
    assert np.array_equal(ds.read_frames(key, range(14)), arr[:14])
    via_zarr = WindowDataset(codec_store, ds.spec, disk_reader="zarr")
    assert not via_zarr._readers
    idx = list(range(len(ds)))
    for k, v in ds.get_batch(idx).items():
        assert torch.equal(v, via_zarr.get_batch(idx)[k]), k
    cached = WindowDataset(codec_store, ds.spec, cache="ram")
    assert np.array_equal(cached._cache[key], arr[:14])
    # Episodes out of order: rows of one shard come unsorted, through both readers.
    for reader in ("auto", "zarr"):
        shuffled = WindowDataset(codec_store, ds.spec, episodes=[2, 0, 1], cache="ram", disk_reader=reader)
        assert np.array_equal(shuffled._cache[key], arr[[12, 13, *range(12)]])


def test_reads_stay_exact_while_a_recorder_appends(tmp_path):
    path = tmp_path / "growing.zarr"
    write_tiny(path, lengths=(4,))  # frames 0-3: shard 1 (frames 3-5) is partly filled
    ds = WindowDataset(path, WindowSpec.act(2, OBS_KEYS))
    before = ds.get_batch(range(4))
    write_tiny(path, lengths=(1, 2), start=4, seed=5)  # the writer rewrites shard 1
    after = ds.get_batch(range(4))
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert len(ds) == 4 and DemoStore.open(path).n_frames == 7
    assert frames_of(after, "images/top") == [[0], [1], [2], [3]]


def test_damaged_shard_index_is_reported(tiny, tmp_path):
    path = tmp_path / "damaged.zarr"
    shutil.copytree(tiny, path)
    shard = path / "data" / "images" / "top" / "c" / "1" / "0" / "0" / "0"
    blob = bytearray(shard.read_bytes())
    blob[-10] ^= 0xFF
    shard.write_bytes(bytes(blob))
    ds = WindowDataset(path, WindowSpec.act(1, OBS_KEYS))
    assert ds[0]["frame_index"] == 0  # shard 0 is intact
    with pytest.raises(StoreError, match="checksum"):
        ds[4]


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"obs_offsets": (0, -1), "action_offsets": (0,)}, "strictly increasing"),
        ({"obs_offsets": (), "action_offsets": (0,)}, "empty"),
        ({"obs_offsets": (0, 1), "action_offsets": (0,)}, "must be ≤ 0"),
        ({"obs_offsets": (0,), "action_offsets": (1, 1)}, "strictly increasing"),
        ({"obs_offsets": (0,), "action_offsets": (0.5,)}, "not an integer"),
        ({"obs_offsets": (0,), "action_offsets": (0,), "frame_skip": 0}, "frame_skip=0"),
        ({"obs_offsets": (0,), "action_offsets": (0,), "obs_keys": ()}, "obs_keys is empty"),
        ({"obs_offsets": (0,), "action_offsets": (0,), "obs_keys": ("state", "state")}, "twice"),
        ({"obs_offsets": (0,), "action_offsets": (0,), "obs_keys": ("action",)}, "clash"),
    ],
)
def test_bad_specs_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        WindowSpec(**{"obs_keys": ("state",), **kwargs})


def test_bad_constructor_values_are_refused():
    with pytest.raises(ConfigError, match="horizon=1 is shorter than n_obs_steps=2"):
        WindowSpec.diffusion(2, 1, ["state"])
    with pytest.raises(ConfigError, match="chunk_size=0"):
        WindowSpec.act(0, ["state"])


def test_bad_dataset_arguments_are_refused(tiny):
    spec = WindowSpec.act(2, ["state"])
    with pytest.raises(ConfigError, match=r"\['images/side'\].*'action', 'images/top', 'state', 'timestamp'"):
        WindowDataset(tiny, WindowSpec.act(2, ["state", "images/side"]))
    with pytest.raises(ConfigError, match="action_key 'images/top' is an image"):
        WindowDataset(
            tiny, WindowSpec(obs_offsets=[0], action_offsets=[0], obs_keys=["state"], action_key="images/top")
        )
    with pytest.raises(ConfigError, match="episode 3 is not a committed episode.*0..2"):
        WindowDataset(tiny, spec, episodes=[0, 3])
    with pytest.raises(ConfigError, match=r"episodes \[1\] are selected more than once"):
        WindowDataset(tiny, spec, episodes=[1, 0, 1])
    with pytest.raises(ConfigError, match="no episodes selected"):
        WindowDataset(tiny, spec, episodes=[])
    with pytest.raises(ConfigError, match="cache='disk'"):
        WindowDataset(tiny, spec, cache="disk")
    ds = WindowDataset(tiny, spec)
    with pytest.raises(IndexError, match="sample index 9 out of range"):
        ds[9]
    with pytest.raises(IndexError, match="sample index -1 out of range"):
        ds.__getitems__([0, -1])


# ---------------------------------------------------------------------------------------------
# Episode selection


def test_split_is_deterministic_disjoint_and_complete():
    train, val = split_episodes(20, 0.2, seed=3)
    assert (train, val) == split_episodes(20, 0.2, seed=3)
    assert len(val) == 4 and not set(train) & set(val) and sorted(train + val) == list(range(20))
    assert train == sorted(train) and val == sorted(val)
    assert split_episodes(20, 0.2, seed=4) != (train, val)
    for fraction in (0.01, 0.5, 0.99):  # both sides keep at least one episode
        tr, va = split_episodes(2, fraction, seed=0)
        assert len(tr) == len(va) == 1 and sorted(tr + va) == [0, 1]


@pytest.mark.parametrize(
    "n, fraction, match", [(1, 0.5, "at least 2"), (10, 0.0, "between 0 and 1"), (10, 1.0, "between 0 and 1")]
)
def test_split_refuses_impossible_splits(n, fraction, match):
    with pytest.raises(ConfigError, match=match):
        split_episodes(n, fraction, seed=0)


def test_filter_episodes(tiny):
    # META: 0 = success/pick/ana (3 frames), 1 = failure/place/bo (5), 2 = success/place/ana (1)
    assert filter_episodes(tiny) == [0, 1, 2]
    assert filter_episodes(tiny, outcome="success") == [0, 2]
    assert filter_episodes(tiny, task="place", operator="ana") == [2]
    assert filter_episodes(tiny, operator=["bo", "ana"], min_length=3) == [0, 1]
    assert filter_episodes(DemoStore.open(tiny), outcome="success", ids=[1, 2]) == [2]
    assert filter_episodes(tiny, task="nothing") == []
    with pytest.raises(StoreError, match="episode 7 is out of range"):
        filter_episodes(tiny, ids=[7])


# ---------------------------------------------------------------------------------------------
# The sampler


def test_sampler_is_a_fresh_deterministic_permutation_each_epoch():
    a, b = ResumableSampler(50, seed=7), ResumableSampler(50, seed=7)
    epochs = [list(a) for _ in range(3)]
    assert epochs == [list(b) for _ in range(3)]
    assert all(sorted(e) == list(range(50)) for e in epochs)
    assert epochs[0] != epochs[1] and a.epoch == 2
    assert epochs[1] == np.random.default_rng((7, 1)).permutation(50).tolist()
    assert list(ResumableSampler(50, seed=8)) != epochs[0]
    assert list(ResumableSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]
    a.set_epoch(1)
    assert list(a) == epochs[1]


def test_sampler_resumes_mid_epoch_at_the_next_sample():
    reference = ResumableSampler(23, seed=1, batch_size=4)
    epochs = [list(reference) for _ in range(3)]
    run = ResumableSampler(23, seed=1, batch_size=4)
    assert list(run) == epochs[0]
    # A DataLoader has drawn 12 indices ahead, but the trainer consumed only 2 batches of epoch 1.
    it = iter(run)
    drawn = [next(it) for _ in range(20)]
    assert drawn == epochs[1][:20]
    state = run.state_dict(samples_consumed=8)
    assert state == {"epoch": 1, "position": 8, "seed": 1, "n": 23}
    resumed = ResumableSampler(23, seed=99, batch_size=4)
    resumed.load_state_dict(state)
    assert len(resumed) == 15
    assert list(resumed) == epochs[1][8:]
    assert list(resumed) == epochs[2]
    # Through a DataLoader: the batches after the checkpoint, exactly.
    again = ResumableSampler(23, seed=1, batch_size=4)
    again.load_state_dict(state)
    loader = DataLoader(list(range(23)), batch_size=4, sampler=again)
    assert torch.cat(list(loader)).tolist() == epochs[1][8:]


def test_sampler_state_at_epoch_edges_and_bad_states():
    s = ResumableSampler(6, seed=0, batch_size=4)
    assert s.state_dict() == {"epoch": 0, "position": 0, "seed": 0, "n": 6}
    first = list(s)
    assert s.state_dict() == {"epoch": 1, "position": 0, "seed": 0, "n": 6}  # finished epoch 0
    assert s.state_dict(samples_consumed=6) == {"epoch": 1, "position": 0, "seed": 0, "n": 6}
    it = iter(s)
    next(it)
    assert s.state_dict() == {"epoch": 1, "position": 1, "seed": 0, "n": 6}
    t = ResumableSampler(6, seed=0)
    t.load_state_dict({"epoch": 0, "position": 2, "seed": 0})
    abandoned = iter(t)
    next(abandoned)
    assert list(t) == first[2:]  # an abandoned iteration restarts from the saved position
    with pytest.raises(ValueError, match="not a whole number of batches of 4"):
        s.state_dict(samples_consumed=3)
    with pytest.raises(ValueError, match="outside 0..6"):
        s.state_dict(samples_consumed=7)
    with pytest.raises(ValueError, match="for 9 samples but this dataset has 6"):
        t.load_state_dict({"epoch": 0, "position": 0, "seed": 0, "n": 9})
    with pytest.raises(ConfigError, match="n ≥ 1"):
        ResumableSampler(0)


def test_the_window_helpers_agree_with_the_policies_configs():
    """The policies' configs declare their windows (the trainer reads WindowSpec.of); the
    helpers give the same windows from bare numbers."""
    from imitation.policies import ACTConfig, DiffusionConfig

    for chunk, skip in ((4, 1), (100, 2)):
        pc = ACTConfig(obs_keys=("state",), chunk_size=chunk, n_action_steps=chunk, frame_skip=skip)
        assert WindowSpec.of(pc) == WindowSpec.act(chunk, ["state"], frame_skip=skip)
    for n_obs, horizon in ((2, 16), (1, 8), (3, 32)):
        pc = DiffusionConfig(obs_keys=("state",), n_obs_steps=n_obs, horizon=horizon, n_action_steps=1)
        assert WindowSpec.of(pc) == WindowSpec.diffusion(n_obs, horizon, ["state"])


def test_the_trainers_batches_follow_the_samplers_order():
    from imitation.train import GlobalBatches

    class One:
        rank, world = 0, 1

    batches = iter(GlobalBatches(10, 5, seed=3, dist=One()))
    order = ResumableSampler(10, seed=3).order(0)
    assert next(batches) + next(batches) == order.tolist()
