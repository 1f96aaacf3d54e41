"""Every kind of damage a store can suffer, applied to a small store: ``validate`` reports it,
``repair`` never removes a committed episode (it refuses, or drops only a proven tail), training
and appending refuse, and ``repair --force`` keeps what can be proven with the original as a backup.

The store: three episodes of 152, 192 and 152 frames (ends 152, 344, 496), timestamps restarting
at 0 in each episode as in simulation, small chunks (64 frames; images 32 per shard) so that
damage hits one episode and not all of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from imitation.data.check import validate
from imitation.data.dataset import WindowDataset, WindowSpec
from imitation.data.repair import repair
from imitation.data.store import DemoStore, EpisodeWriter
from imitation.errors import StoreDamage, StoreError

LENGTHS = (152, 192, 152)
FEATURES = {
    "state": {"shape": [4], "dtype": "float32", "kind": "state", "frames_per_file": 64},
    "action": {"shape": [4], "dtype": "float32", "kind": "action", "frames_per_file": 64},
    "env_state": {"shape": [3], "dtype": "float32", "kind": "state", "frames_per_file": 64},
    "images/top": {"shape": [8, 8, 3], "dtype": "uint8", "kind": "image", "frames_per_file": 32},
    "timestamp": {"shape": [], "dtype": "float64", "kind": "scalar", "frames_per_file": 64},
}


def make_store(path: Path) -> Path:
    rng = np.random.default_rng(0)
    with EpisodeWriter(path, features=FEATURES, fps=50, robot={"name": "toy"}) as w:
        for e, n in enumerate(LENGTHS):
            w.start_episode(task="toy", seed=e, start_time=1.7e9 + 100 * e)
            for t in range(n):
                w.add_frame(
                    {
                        "state": rng.normal(size=4),
                        "action": rng.normal(size=4),
                        "env_state": rng.normal(size=3),
                        "images/top": rng.integers(0, 256, (8, 8, 3), dtype=np.uint8),
                        "timestamp": t / 50,
                    }
                )
            w.save_episode(outcome="success")
    DemoStore.open(path).stats()
    return path


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("damage") / "pristine.zarr")


@pytest.fixture
def store(pristine, tmp_path) -> Path:
    path = tmp_path / "demo.zarr"
    shutil.copytree(pristine, path)
    return path


# ----------------------------------------------------------------------------------- damages


def _json(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def set_ends(ends):
    def damage(path: Path) -> None:
        g = zarr.open_group(path, mode="r+")
        g["meta/episode_ends"][:] = np.asarray(ends, dtype=np.int64)

    return damage


def set_shape(array: str, rows: int):
    def damage(path: Path) -> None:
        _json(path / array / "zarr.json", lambda d: d.__setitem__("shape", [rows, *d["shape"][1:]]))

    return damage


def delete(rel: str):
    def damage(path: Path) -> None:
        (path / rel).unlink()

    return damage


def flip(rel: str, offset: int = 24, n: int = 8):
    def damage(path: Path) -> None:
        f = path / rel
        data = bytearray(f.read_bytes())
        for i in range(offset, offset + n):
            data[i] ^= 0xFF
        f.write_bytes(bytes(data))

    return damage


def truncate(rel: str):
    def damage(path: Path) -> None:
        f = path / rel
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])

    return damage


def garble(rel: str):
    def damage(path: Path) -> None:
        (path / rel).write_bytes(b"\x00garbage{{")

    return damage


def edit_attrs(edit):
    def damage(path: Path) -> None:
        _json(path / "zarr.json", lambda d: edit(d["attributes"]))

    return damage


def edited_stats(attrs) -> None:
    attrs["stats"]["features"]["action"]["mean"] = [100.0] * 4


# A damaged commit record: refused at opening. Each with the episodes repair --force keeps: the
# length column gives the boundaries back; None where nothing can be proven (the store is left as it is).
RECORD = {
    "ends chunk deleted": (delete("meta/episode_ends/c/0"), [0, 1, 2]),
    "ends not increasing": (set_ends([152, 100, 496]), [0, 1, 2]),
    "ends shifted": (set_ends([100, 344, 496]), [0, 1, 2]),
    "state shorter than the ends": (set_shape("data/state", 400), [0, 1]),
    "meta/task shorter than the ends": (set_shape("meta/task", 2), [0, 1]),
    "meta/seed with extra entries": (set_shape("meta/seed", 5), [0, 1, 2]),
    "timestamp chunk truncated": (truncate("data/timestamp/c/3"), [0, 2]),
    "state zarr.json garbled": (garble("data/state/zarr.json"), None),
}
# Committed chunks that do not read back: found where they are read. Each with what it damages and
# the episodes repair --force keeps (None: nothing can be proven, the store is left as it is).
CHUNKS = {
    "state: 8 bytes flipped": ("state", flip("data/state/c/3/0"), [0, 2]),
    "action: 8 bytes flipped": ("action", flip("data/action/c/0/0"), [1, 2]),
    "action: chunk deleted": ("action", delete("data/action/c/5/0"), [0]),
    "image: 8 bytes flipped in a frame": ("images/top", flip("data/images/top/c/13/0/0/0", offset=4), [0, 1]),
    "image: shard deleted": ("images/top", delete("data/images/top/c/1/0/0/0"), [1, 2]),
    "meta/seed: bytes flipped": ("meta", flip("meta/seed/c/0", offset=4, n=2), None),
    "meta/info: bytes flipped": ("meta", flip("meta/info/c/0", offset=6, n=2), None),
}
# Root metadata: no store can be opened from it.
ROOT = {
    "zarr.json garbled": garble("zarr.json"),
    "no features attribute": edit_attrs(lambda a: a.pop("features")),
    "fps 0": edit_attrs(lambda a: a.__setitem__("fps", 0)),
}


def tree_digest(path: Path, skip_root: bool = False) -> str:
    """A digest of every file of the store (the root zarr.json, which holds caches, optionally aside)."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and p.name != ".writer.lock"):
        if skip_root and f == path / "zarr.json":
            continue
        h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def episodes_of(path: Path) -> list[dict[str, np.ndarray]]:
    s = DemoStore.open(path)
    return [s.read_episode(e) for e in range(s.n_episodes)]


def training_refuses(path: Path) -> None:
    with pytest.raises(StoreError):
        WindowDataset(path, WindowSpec.act(4, ("state", "images/top")), cache="ram")


def appending_refuses(path: Path) -> None:
    with pytest.raises(StoreError):
        EpisodeWriter(path)


# ----------------------------------------------------------------------------------- the sweep


def check_forced_repair(store: Path, pristine: Path, before: str, kept: list[int] | None, name: str) -> None:
    """repair --force keeps exactly ``kept`` (bit-exact) and the original whole as a backup, or,
    with nothing to prove, refuses and leaves the store as it is."""
    if kept is None:
        with pytest.raises(StoreDamage, match="no episode can be proven"):
            repair(store, force=True)
        assert tree_digest(store) == before and not list(store.parent.glob("demo.zarr.backup-*"))
        return
    lines, clean = repair(store, force=True)
    assert clean, lines
    backups = list(store.parent.glob("demo.zarr.backup-*"))
    assert len(backups) == 1 and tree_digest(backups[0]) == before, lines
    want = episodes_of(pristine)
    got = episodes_of(store)
    assert len(got) == len(kept), lines
    for g, e in zip(got, kept, strict=True):
        for key in want[e]:
            np.testing.assert_array_equal(g[key], want[e][key], err_msg=f"{name}: episode {e} {key}")
    assert validate(DemoStore.open(store), progress=False).ok


@pytest.mark.parametrize("name", list(RECORD))
def test_a_damaged_commit_record_is_reported_refused_and_rebuilt_with_a_backup(store, pristine, name):
    damage, kept = RECORD[name]
    damage(store)
    before = tree_digest(store)
    with pytest.raises(StoreDamage, match="commit record is inconsistent"):
        DemoStore.open(store)
    report = validate(DemoStore.open(store, check=False), progress=False)
    assert any(e.startswith("commit record:") for e in report.errors), report
    with pytest.raises(StoreDamage, match="nothing was written"):
        repair(store)
    training_refuses(store)
    appending_refuses(store)
    assert tree_digest(store) == before  # nothing of it was touched
    check_forced_repair(store, pristine, before, kept, name)


@pytest.mark.parametrize("name", list(CHUNKS))
def test_a_damaged_chunk_is_found_where_it_is_read_and_never_repaired_away_silently(store, pristine, name):
    what, damage, kept = CHUNKS[name]
    damage(store)
    opened = DemoStore.open(store, check=False)
    assert not opened.problems  # the record itself is whole
    with pytest.raises(StoreDamage, match="damaged"):
        if what == "meta":
            opened.meta_table()
        for e in range(opened.n_episodes):
            opened.read_episode(e)
    report = validate(opened, progress=False)
    assert not report.ok and any(what in e for e in report.errors), report
    # The failed validation is remembered: training and appending refuse before reading anything.
    training_refuses(store)
    appending_refuses(store)

    data_before = tree_digest(store, skip_root=True)
    lines, clean = repair(store)
    assert not clean and any("still damaged" in line for line in lines), lines
    assert tree_digest(store, skip_root=True) == data_before  # no committed episode removed
    check_forced_repair(store, pristine, tree_digest(store), kept, name)


@pytest.mark.parametrize("name", list(ROOT))
def test_damaged_root_metadata_is_one_clear_error_everywhere(store, name):
    ROOT[name](store)
    for open_it in (lambda: DemoStore.open(store), lambda: DemoStore.open(store, check=False)):
        with pytest.raises(StoreError):
            open_it()
    with pytest.raises(StoreError):
        repair(store)
    training_refuses(store)
    appending_refuses(store)
    proc = subprocess.run(
        [sys.executable, "-m", "imitation.cli", "data", "validate", str(store)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_statistics_edited_by_hand_are_reported_and_never_used(store):
    true_mean = DemoStore.open(store).stats()["action"]["mean"]
    edit_attrs(edited_stats)(store)
    report = validate(DemoStore.open(store), progress=False)
    assert any("cached statistics differ" in e and "action.mean" in e for e in report.errors), report
    assert DemoStore.open(store).stats()["action"]["mean"] == true_mean
    assert validate(DemoStore.open(store), progress=False).ok  # recomputed and cached again


def test_the_uncommitted_tail_of_a_killed_recorder_is_all_repair_drops(store, pristine):
    # What a recorder killed mid-episode leaves: frames and one metadata entry past the record.
    g = zarr.open_group(store, mode="r+")
    for key in ("state", "action", "env_state", "timestamp"):
        g["data"][key].resize((530, *g["data"][key].shape[1:]))
    g["meta/task"].resize((4,))
    g["meta/episode_ends"].resize((4,))  # resized, its value never written: reads as 0
    s = DemoStore.open(store)
    assert s.n_episodes == 3 and s.uncommitted_frames == 34
    report = validate(s, progress=False)
    assert report.ok and any("uncommitted frame" in w for w in report.warnings)
    lines, clean = repair(store)
    assert clean and any("dropped an uncommitted tail of 34 frame(s)" in line for line in lines), lines
    for got, want in zip(episodes_of(store), episodes_of(pristine), strict=True):
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])


def test_training_on_a_store_with_a_deleted_action_chunk_fails_with_one_line(store, tmp_path):
    delete("data/action/c/5/0")(store)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        "policy: act\nwandb: disabled\nsteps: 2\nbatch_size: 4\nval_fraction: 0.0\n"
        "act: {obs_keys: [state], chunk_size: 4, n_action_steps: 4, dim_model: 16, n_heads: 2, "
        "dim_feedforward: 32, n_encoder_layers: 1, n_vae_encoder_layers: 1}\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "imitation.cli",
            "train",
            "--config",
            str(cfg),
            "--store",
            str(store),
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "data/action" in last and "damaged" in last, proc.stderr[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_concurrent_creation_loser_gets_a_clear_error_and_leaves_nothing(pristine, tmp_path, monkeypatch):
    path = tmp_path / "race.zarr"
    real_replace = os.replace

    def other_process_wins(src, dst):
        if Path(dst) == path:  # the creation's final rename: the other recorder's store appears first
            shutil.copytree(pristine, path)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", other_process_wins)
    with pytest.raises(StoreError, match="created by another process"):
        DemoStore.create(path, FEATURES, fps=50)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["race.zarr"]
    assert DemoStore.open(path).n_episodes == 3


def test_a_creation_killed_midway_is_reported_and_cleaned_by_repair(store):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    leftover = store.with_name(f".{store.name}.creating-{int(dead.stdout)}")
    (leftover / "data").mkdir(parents=True)
    report = validate(DemoStore.open(store), progress=False)
    assert any(leftover.name in w for w in report.warnings), report
    lines, clean = repair(store)
    assert clean and not leftover.exists() and any(leftover.name in line for line in lines), lines


def test_a_format_1_store_reads_warns_refuses_appends_and_upgrades(tmp_path):
    path = tmp_path / "old.zarr"
    shutil.copytree(Path(__file__).parent / "fixtures" / "store_v1.zarr", path)
    old = DemoStore.open(path)
    assert old.version == 1 and not old.checksums and old.n_episodes == 2
    before = [old.read_episode(e) for e in range(2)]
    jpeg_before = old.read_encoded("images/wrist", 0, old.n_frames)
    report = validate(old, progress=False)
    assert report.ok and any("repair --upgrade" in w for w in report.warnings)
    with pytest.raises(StoreError, match="repair --upgrade"):
        EpisodeWriter(path)
    lines, clean = repair(path, upgrade=True)
    assert clean and any("upgraded to format 2" in line for line in lines), lines
    new = DemoStore.open(path)
    assert new.version == 2 and new.checksums and new.n_episodes == 2
    assert new.read_encoded("images/wrist", 0, new.n_frames) == jpeg_before  # JPEG bytes, not re-encoded
    for e in range(2):
        for key, want in before[e].items():
            np.testing.assert_array_equal(new.read_episode(e)[key], want)
        assert new.episode_meta(e)["seed"] == e
    assert validate(new, progress=False).ok
    with EpisodeWriter(path) as w:  # appending works once upgraded
        w.start_episode()
        w.add_frame({k: np.zeros(f.shape, f.np_dtype) for k, f in new.features.items()})
        w.save_episode()
    assert DemoStore.open(path).n_episodes == 3
