"""Editing stores: exact copies, merge, select/filter/split, delete in place and swap recovery."""

from __future__ import annotations

import numpy as np
import pytest

from imitation.data import edit
from imitation.data.durable import SimulatedCrash
from imitation.data.store import DemoStore, EpisodeWriter, StoreError

FEATURES = {
    "state": {"shape": [4], "dtype": "float32", "kind": "state", "names": ["a", "b", "c", "d"]},
    "action": {"shape": [4], "dtype": "float32", "kind": "action"},
    "env_state": {"shape": [3], "dtype": "float64", "kind": "state"},
    "contacts": {"shape": [], "dtype": "int16", "kind": "scalar"},
    "images/top": {
        "shape": [24, 32, 3],
        "dtype": "uint8",
        "kind": "image",
        "codec": {"name": "jpeg"},
        "frames_per_file": 8,
    },
    "images/wrist": {
        "shape": [16, 16, 3],
        "dtype": "uint8",
        "kind": "image",
        "codec": {"name": "zstd"},
        "frames_per_file": 5,
    },
}
ROBOT = {"name": "so100", "joints": ["a", "b", "c", "d"]}
# (length, task, operator, outcome) per episode
EPISODES = [
    (9, "pick", "ana", "success"),
    (14, "place", "ben", "failure"),
    (6, "pick", "ben", "success"),
    (11, "pick", "ana", "failure"),
    (9, "place", "ana", "success"),
]


def camera(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w)], axis=-1)
    return np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)


def make_store(path, episodes=EPISODES, *, features=FEATURES, fps=20.0, robot=ROBOT, seed=0):
    rng = np.random.default_rng(seed)
    with EpisodeWriter(path, features=features, fps=fps, robot=robot) as w:
        t = 0.0
        for e, (n, task, operator, outcome) in enumerate(episodes):
            w.start_episode(
                task=task,
                operator=operator,
                seed=10 * e + seed,
                info={"episode": e, "note": "x" * e},
                start_time=1.7e9 + 100.0 * e + 0.123456789 * seed,
            )
            for _ in range(n):
                frame = {"timestamp": t}
                for key, spec in w.features.items():
                    if spec.kind == "image":
                        frame[key] = camera(rng, *spec.shape[:2])
                    elif key != "timestamp":
                        frame[key] = rng.normal(size=spec.shape).astype(spec.dtype) * 5
                w.add_frame(frame)
                t += 1 / fps + rng.uniform(0, 0.003)  # jittery times: duration is not recomputable
            w.save_episode(outcome=outcome, dropped_frames=e)
    return DemoStore.open(path)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> DemoStore:
    return make_store(tmp_path_factory.mktemp("src") / "src.zarr")


def assert_same_episode(a: DemoStore, ea: int, b: DemoStore, eb: int) -> None:
    """Episode ``ea`` of ``a`` equals episode ``eb`` of ``b``: frames bit-exact, metadata identical."""
    assert a.episode_meta(ea) == b.episode_meta(eb)
    (sa, xa), (sb, xb) = a.episode_range(ea), b.episode_range(eb)
    for key, feat in a.features.items():
        va, vb = a.read(key, sa, xa), b.read(key, sb, xb)
        assert va.dtype == vb.dtype and np.array_equal(va, vb), key
        if feat.sharded:  # the stored JPEG/zstd bytes themselves, not a re-encoding
            assert a.read_encoded(key, sa, xa) == b.read_encoded(key, sb, xb), key


def test_copy_is_bit_exact_with_metadata_in_the_given_order(store, tmp_path):
    out = edit.copy_episodes(store, tmp_path / "copy.zarr", [3, 0, 4], progress=False)
    assert out.n_episodes == 3
    for i, e in enumerate([3, 0, 4]):
        assert_same_episode(store, e, out, i)
    assert {k: f.to_dict() for k, f in out.features.items()} == {
        k: f.to_dict() for k, f in store.features.items()
    }
    assert (out.fps, out.robot) == (store.fps, store.robot)
    # nothing is left beside the output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.zarr"]


def test_full_copy_has_the_same_fingerprint(store, tmp_path):
    out = edit.copy_episodes(store, tmp_path / "all.zarr", range(store.n_episodes), progress=False)
    assert out.fingerprint() == store.fingerprint()


def test_copy_refuses_existing_destination_and_bad_ids(store, tmp_path):
    (tmp_path / "taken.zarr").mkdir()
    with pytest.raises(StoreError, match="already exists"):
        edit.copy_episodes(store, tmp_path / "taken.zarr", [0], progress=False)
    with pytest.raises(StoreError, match=r"episode 5 is out of range.*0\.\.4"):
        edit.copy_episodes(store, tmp_path / "x.zarr", [0, 5], progress=False)
    with pytest.raises(StoreError, match="given twice"):
        edit.copy_episodes(store, tmp_path / "x.zarr", [1, 1], progress=False)
    with pytest.raises(StoreError, match="out of range"):
        edit.copy_episodes(store, tmp_path / "x.zarr", [-1], progress=False)
    assert not (tmp_path / "x.zarr").exists()


def test_a_failing_copy_leaves_nothing_under_any_name(store, tmp_path, monkeypatch):
    calls = []

    def failing(key, start, end, _orig=store.read_encoded):
        calls.append(key)
        if len(calls) > 3:
            raise OSError("disk unplugged")
        return _orig(key, start, end)

    monkeypatch.setattr(store, "read_encoded", failing)
    with pytest.raises(OSError, match="unplugged"):
        edit.copy_episodes(store, tmp_path / "c.zarr", [0, 1, 2], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_merge_concatenates_every_episode(store, tmp_path):
    other = make_store(tmp_path / "other.zarr", EPISODES[:2], seed=1)
    out = edit.merge([store.path, other.path], tmp_path / "merged.zarr", progress=False)
    assert out.n_episodes == store.n_episodes + 2
    for e in range(store.n_episodes):
        assert_same_episode(store, e, out, e)
    for e in range(2):
        assert_same_episode(other, e, out, store.n_episodes + e)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"features": {**FEATURES, "action": {"shape": [5], "dtype": "float32", "kind": "action"}}},
            "'action'",
        ),
        ({"features": {k: v for k, v in FEATURES.items() if k != "contacts"}}, "lacks feature 'contacts'"),
        (
            {"features": {**FEATURES, "images/top": {**FEATURES["images/top"], "codec": {"name": "zstd"}}}},
            "'images/top'",
        ),
        ({"fps": 30.0}, "30.0 fps"),
        ({"robot": {"name": "koch"}}, "koch"),
    ],
)
def test_merge_refuses_a_mismatch_naming_store_and_feature(store, tmp_path, change, match):
    bad = make_store(tmp_path / "bad.zarr", [(2, "pick", "ana", "success")], **change)
    with pytest.raises(StoreError, match=match) as err:
        edit.merge([store.path, store.path, bad.path], tmp_path / "m.zarr", progress=False)
    assert "bad.zarr" in str(err.value)
    assert not (tmp_path / "m.zarr").exists()


def test_select_by_outcome_task_operator_and_length(store):
    assert edit.select(store, outcome="success") == [0, 2, 4]
    assert edit.select(store, task="pick", outcome="failure") == [3]
    assert edit.select(store, operator=["ben"]) == [1, 2]
    assert edit.select(store, task=["pick", "place"]) == [0, 1, 2, 3, 4]
    assert edit.select(store, min_length=9, max_length=11) == [0, 3, 4]
    assert edit.select(store, ids=[4, 1, 0], outcome="success") == [4, 0]
    assert edit.select(store, task="unknown") == []


def test_filter_store_copies_matching_episodes(store, tmp_path):
    out = edit.filter_store(store.path, tmp_path / "ok.zarr", outcome="success", task="pick", progress=False)
    assert out.n_episodes == 2
    assert_same_episode(store, 0, out, 0)
    assert_same_episode(store, 2, out, 1)
    with pytest.raises(StoreError, match=r"no episode .* matches outcome='crashed'.*'failure', 'success'"):
        edit.filter_store(store, tmp_path / "none.zarr", outcome="crashed", progress=False)


def test_split_by_fraction_is_disjoint_complete_and_seeded(store, tmp_path):
    seed = 3
    a, b = edit.split(
        store, tmp_path / "train.zarr", tmp_path / "val.zarr", fraction=0.6, seed=seed, progress=False
    )
    assert (a.n_episodes, b.n_episodes) == (3, 2)
    starts = lambda s: [s.episode_meta(e)["start_time"] for e in range(s.n_episodes)]  # noqa: E731
    src = starts(store)
    assert sorted(starts(a) + starts(b)) == sorted(src)  # disjoint and complete
    assert starts(a) == sorted(starts(a), key=src.index)  # source order kept
    a2, _ = edit.split(
        store, tmp_path / "t2.zarr", tmp_path / "v2.zarr", fraction=0.6, seed=seed, progress=False
    )
    assert starts(a2) == starts(a)


def test_split_by_ids_and_its_errors(store, tmp_path):
    a, b = edit.split(store, tmp_path / "a.zarr", tmp_path / "b.zarr", ids=[4, 1], progress=False)
    assert_same_episode(store, 1, a, 0)
    assert_same_episode(store, 4, a, 1)
    assert [b.episode_meta(e)["seed"] for e in range(b.n_episodes)] == [0, 20, 30]
    with pytest.raises(StoreError, match="each side needs at least one"):
        edit.split(store, tmp_path / "c.zarr", tmp_path / "d.zarr", fraction=0.99, progress=False)
    with pytest.raises(StoreError, match="exactly one of"):
        edit.split(store, tmp_path / "c.zarr", tmp_path / "d.zarr", progress=False)
    with pytest.raises(StoreError, match="strictly between 0 and 1"):
        edit.split(store, tmp_path / "c.zarr", tmp_path / "d.zarr", fraction=1.5, progress=False)
    with pytest.raises(StoreError, match="already exists"):
        edit.split(store, tmp_path / "c.zarr", tmp_path / "a.zarr", fraction=0.5, progress=False)
    assert not (tmp_path / "c.zarr").exists()


def test_delete_to_output_leaves_the_source_alone(store, tmp_path):
    before = store.fingerprint()
    out = edit.delete_episodes(store.path, [1, 3], output=tmp_path / "out.zarr", progress=False)
    for i, e in enumerate([0, 2, 4]):
        assert_same_episode(store, e, out, i)
    assert DemoStore.open(store.path).fingerprint() == before


def test_delete_in_place(store, tmp_path):
    path = tmp_path / "d.zarr"
    assert make_store(path).fingerprint() == store.fingerprint()  # the same content, to compare against
    out = edit.delete_episodes(path, [0, 2], progress=False)
    assert out.n_episodes == 3
    for i, e in enumerate([1, 3, 4]):
        assert_same_episode(store, e, out, i)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]
    # the edited store takes new episodes like any other
    with EpisodeWriter(path) as w:
        w.start_episode(task="more")
        w.add_frame(
            {k: np.zeros(f.shape, f.np_dtype) for k, f in w.features.items() if k != "timestamp"}
            | {"timestamp": 0.0}
        )
        w.save_episode()
    assert DemoStore.open(path).n_episodes == 4


def test_delete_errors(tmp_path):
    path = tmp_path / "d.zarr"
    make_store(path, EPISODES[:2])
    with pytest.raises(StoreError, match="given twice"):
        edit.delete_episodes(path, [1, 1], progress=False)
    with pytest.raises(StoreError, match="out of range"):
        edit.delete_episodes(path, [2], progress=False)
    with pytest.raises(StoreError, match="remove the directory instead"):
        edit.delete_episodes(path, [0, 1], progress=False)
    with pytest.raises(StoreError, match="no episodes given"):
        edit.delete_episodes(path, [], progress=False)
    assert DemoStore.open(path).n_episodes == 2
    with EpisodeWriter(path), pytest.raises(StoreError, match="open for writing by another process"):
        edit.delete_episodes(path, [0], progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]


def crash_at(step: str):
    def hook(s: str, p: str) -> None:
        if s == step:
            raise SimulatedCrash(f"killed before {step}")

    return hook


@pytest.mark.parametrize(
    ("step", "left", "finished"),
    [
        ("rename_old", {"d.zarr", "d.zarr.tmp-"}, False),  # new copy built, nothing renamed yet
        ("rename_new", {"d.zarr.old-", "d.zarr.tmp-"}, True),  # between the two renames: no d.zarr
        ("remove_old", {"d.zarr", "d.zarr.old-"}, True),  # swapped, old copy not yet removed
    ],
)
def test_interrupted_swap_is_recovered(tmp_path, step, left, finished):
    path = tmp_path / "d.zarr"
    original = make_store(path, EPISODES[:3])
    before = original.fingerprint()
    with pytest.raises(SimulatedCrash):
        edit.delete_episodes(path, [1], progress=False, hook=crash_at(step))
    names = {p.name.rstrip("0123456789") for p in tmp_path.iterdir()}
    assert names == left
    if step == "rename_new":
        with pytest.raises(StoreError, match="recover_swap"):
            edit.copy_episodes(path, tmp_path / "x.zarr", [0], progress=False)
    with pytest.raises(StoreError, match="recover_swap"):
        edit.delete_episodes(tmp_path / "d.zarr", [0], progress=False)

    done = edit.recover_swap(path)
    assert done and all(isinstance(m, str) for m in done)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]
    store = DemoStore.open(path)
    assert store.n_episodes == (2 if finished else 3)
    if not finished:
        assert store.fingerprint() == before
    assert edit.recover_swap(path) == []  # nothing left to do


def test_crash_while_building_the_new_copy_leaves_the_store_intact(tmp_path, monkeypatch):
    path = tmp_path / "d.zarr"
    before = make_store(path, EPISODES[:3]).fingerprint()
    real = edit._copy_into

    def dies_midway(writer, src, episodes, **kw):
        real(writer, src, episodes[:2], **kw)
        raise SimulatedCrash("killed while copying")

    monkeypatch.setattr(edit, "_copy_into", dies_midway)
    with pytest.raises(SimulatedCrash):
        edit.delete_episodes(path, [0], progress=False)
    assert DemoStore.open(path).fingerprint() == before  # readers see the untouched store meanwhile
    assert edit.recover_swap(path) == [f"removed the unfinished temporary store {path.name}.tmp-{_pid()}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.zarr"]


def test_recover_swap_refuses_a_live_edit(tmp_path):
    path = tmp_path / "d.zarr"
    make_store(path, EPISODES[:2])
    with pytest.raises(SimulatedCrash):
        edit.delete_episodes(path, [1], progress=False, hook=crash_at("rename_new"))
    old = next(tmp_path.glob("d.zarr.old-*"))
    from imitation.data.leftovers import acquire_lock

    lock = acquire_lock(old)  # as if the editing process were still running
    try:
        with pytest.raises(StoreError, match="in use by a running process"):
            edit.recover_swap(path)
    finally:
        lock.close()
    edit.recover_swap(path)
    assert DemoStore.open(path).n_episodes == 1


def _pid() -> int:
    import os

    return os.getpid()
