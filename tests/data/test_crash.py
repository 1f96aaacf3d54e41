"""A writer killed at any instant never loses or damages a committed episode.

Two ways of killing it:
- deterministically, at every file write, torn write, fsync, rename, directory fsync and delete
  of a whole recording session (through the writer's fault-injection hook);
- with SIGKILL at random moments of a separate recording process, at least 20 times.
After each kill the store must open, recover, validate, and hold every committed episode bit-exact.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from imitation.data.check import validate
from imitation.data.durable import CrashAfter
from imitation.data.store import DemoStore, EpisodeWriter, StoreError

FEATURES = {
    "state": {"shape": [4], "dtype": "float32", "kind": "state", "frames_per_file": 8},
    "action": {"shape": [4], "dtype": "float32", "kind": "action", "frames_per_file": 8},
    "images/top": {
        "shape": [12, 16, 3],
        "dtype": "uint8",
        "kind": "image",
        "codec": "jpeg",
        "frames_per_file": 5,
    },
    "images/side": {
        "shape": [12, 16, 3],
        "dtype": "uint8",
        "kind": "image",
        "codec": "zstd",
        "frames_per_file": 5,
    },
}
LENGTHS = [7, 11, 3]  # crosses chunk and shard boundaries at different places


def episode_frames(episode: int, n: int) -> list[dict]:
    """Frames that depend only on the episode index, so a test can regenerate what was written."""
    rng = np.random.default_rng(episode)
    frames = []
    for i in range(n):
        frames.append(
            {
                "state": rng.normal(size=4).astype("f4"),
                "action": rng.normal(size=4).astype("f4"),
                "images/top": rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
                "images/side": rng.integers(0, 256, (12, 16, 3), dtype=np.uint8),
                "timestamp": i * 0.02,
            }
        )
    return frames


def check_store(path: Path, expected: dict[int, list[dict]], reference: DemoStore | None = None) -> DemoStore:
    """Recover, validate, and compare every committed episode with what was written.

    JPEG frames are compared bit-exact against the stored bytes of ``reference`` (a store written
    without crashes from the same frames), since JPEG is lossy against the input frames.
    """
    EpisodeWriter(path).close()  # recovery: drop any uncommitted tail
    store = DemoStore.open(path)
    report = validate(store, progress=False)
    assert report.ok, report.errors
    assert store.uncommitted_frames == 0
    for e in range(store.n_episodes):
        frames = expected[e]
        got = store.read_episode(e)
        assert len(got["state"]) == len(frames)
        for key in ("state", "action", "images/side", "timestamp"):
            np.testing.assert_array_equal(
                got[key], np.stack([np.asarray(f[key]) for f in frames]), err_msg=key
            )
        if reference is not None:
            lo, hi = store.episode_range(e)
            rlo, rhi = reference.episode_range(e)
            assert store.read_encoded("images/top", lo, hi) == reference.read_encoded("images/top", rlo, rhi)
    return store


def record_session(path: Path, hook: CrashAfter, save_starts: list[int] | None = None) -> list[int]:
    """Record LENGTHS episodes through the hook; returns the step index of each commit's rename.

    ``save_starts`` receives the index of the first step of each ``save_episode``.
    """
    commit_steps = []
    w = EpisodeWriter(path, hook=hook)
    try:
        for e, n in enumerate(LENGTHS):
            w.start_episode(task=f"t{e}")
            for f in episode_frames(e, n):
                w.add_frame(f)
            w.flush()
            if save_starts is not None:
                save_starts.append(len(hook.steps))
            w.save_episode()
            renames = [
                i for i, (step, p) in enumerate(hook.steps) if step == "rename" and "meta/episode_ends/c" in p
            ]
            commit_steps.append(renames[-1])
    finally:
        with contextlib.suppress(StoreError):
            w.close()
    return commit_steps


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[DemoStore, list[int], list[int], int]:
    path = tmp_path_factory.mktemp("ref") / "ref.zarr"
    DemoStore.create(path, FEATURES, fps=50)
    hook = CrashAfter(None)
    save_starts: list[int] = []
    commit_steps = record_session(path, hook, save_starts)
    return DemoStore.open(path), commit_steps, save_starts, len(hook.steps)


def test_dry_run_sees_every_kind_of_step(reference):
    _, commit_steps, save_starts, n_steps = reference
    assert len(commit_steps) == len(LENGTHS) and n_steps > commit_steps[-1]
    assert all(start < commit for start, commit in zip(save_starts, commit_steps, strict=True))


def test_crash_at_every_step_of_a_commit(reference, tmp_path):
    """Every write, torn write, fsync, rename and delete of the second episode's commit, which
    also rewrites a shard and a chunk that hold frames of the first, committed episode."""
    ref, commit_steps, save_starts, _ = reference
    crash_and_check(ref, commit_steps, range(save_starts[1], commit_steps[1] + 3), tmp_path)


@pytest.mark.slow
def test_crash_at_every_step_of_a_recording_session(reference, tmp_path):
    ref, commit_steps, _, n_steps = reference
    crash_and_check(ref, commit_steps, range(n_steps + 1), tmp_path)


def crash_and_check(ref: DemoStore, commit_steps: list[int], steps: range, tmp_path: Path) -> None:
    expected = {e: episode_frames(e, n) for e, n in enumerate(LENGTHS)}
    for n in steps:
        path = tmp_path / f"crash{n}.zarr"
        DemoStore.create(path, FEATURES, fps=50)
        hook = CrashAfter(n)
        with contextlib.suppress(StoreError):  # the writer reports the crash; what matters is the disk
            record_session(path, hook)
        store = check_store(path, expected, ref)
        # An episode exists exactly when the rename of its episode_ends chunk happened.
        want = sum(1 for step in commit_steps if step < n)
        assert store.n_episodes == want, f"crash at step {n}: {store.n_episodes} episodes, expected {want}"
        if n % 7 == 0:
            # The recovered store takes new episodes, and they read back bit-exact too.
            with EpisodeWriter(path) as w:
                for e in range(store.n_episodes, len(LENGTHS)):
                    w.start_episode()
                    for f in episode_frames(e, LENGTHS[e]):
                        w.add_frame(f)
                    w.save_episode()
            assert check_store(path, expected, ref).n_episodes == len(LENGTHS)
        if n % 25 != 0:
            shutil.rmtree(path)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_crash import episode_frames
    from imitation.data.store import EpisodeWriter

    with EpisodeWriter({path!r}, features={features!r}, fps=50) as w:
        print("READY", flush=True)
        e = w.n_episodes
        while True:
            w.start_episode(task=str(e))
            for f in episode_frames(e, 5 + e % 9):
                w.add_frame(f)
            w.save_episode()
            print("COMMITTED", e, flush=True)
            e += 1
    """
)


def test_sigkill_at_random_moments_never_loses_a_saved_episode(tmp_path):
    path = tmp_path / "killed.zarr"
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), path=str(path), features=FEATURES)
    rng = np.random.default_rng(1234)
    reported = -1
    kills = 0
    for _ in range(22):
        proc = subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(rng.uniform(0.0, 0.6))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        kills += proc.returncode == -signal.SIGKILL
        for line in out.splitlines():
            if line.startswith("COMMITTED"):
                reported = max(reported, int(line.split()[1]))
        store = check_store(path, {e: episode_frames(e, 5 + e % 9) for e in range(reported + 50)})
        # Every episode whose save returned is there (more may be, if the kill came just after).
        assert store.n_episodes >= reported + 1
    assert kills >= 20
    assert reported >= 5, "the writer should have committed episodes between kills"
