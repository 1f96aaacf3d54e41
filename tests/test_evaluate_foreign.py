"""The evaluator on third-party gymnasium environments through a mapping file (``tests/fake_gym.py``):
finished episodes are never stepped again, actions are clipped to the action space and counted,
videos run at the task's rate with its camera's aspect ratio."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fake_gym import ConstantPolicy, fake_checkpoint, write_mapping

from imitation.evaluate import EvalConfig, evaluate, format_summary, rollout


@pytest.mark.parametrize("asynchronous", [False, True])
@pytest.mark.parametrize("frame_skip", [1, 2])
def test_a_slot_whose_episode_ended_is_never_stepped_again(
    tmp_path: Path, asynchronous: bool, frame_skip: int
) -> None:
    # Episodes of 3 + seed % 4 steps, ended by truncation; stepping one again raises (as Meta-World
    # does). Three slots, four seeds of uneven lengths: slots run out of seeds while others still run.
    mapping = write_mapping(tmp_path, "fake/Truncating-v0")
    seeds = [0, 3, 1, 6]
    episodes, _ = rollout(
        ConstantPolicy(2, frame_skip=frame_skip),
        str(mapping),
        seeds,
        num_envs=3,
        asynchronous=asynchronous,
    )
    assert [e.seed for e in episodes] == seeds
    assert [e.length for e in episodes] == [3 + s % 4 for s in seeds]


def test_eval_clips_actions_to_the_action_space_and_counts_them(tmp_path: Path) -> None:
    # The policy asks for 1.5 in a [-1, 1] space; the env raises on an action outside it.
    mapping = write_mapping(tmp_path, "fake/Truncating-v0")
    seeds = [0, 1, 2]
    episodes, _ = rollout(ConstantPolicy(2, value=1.5), str(mapping), seeds, num_envs=2)
    assert [e.clipped_actions for e in episodes] == [3 + s % 4 for s in seeds]
    inside, _ = rollout(ConstantPolicy(2, value=0.5), str(mapping), seeds, num_envs=2)
    assert [e.clipped_actions for e in inside] == [0, 0, 0]

    ckpt = fake_checkpoint(tmp_path / "ckpt", str(mapping), 3, 2)
    cfg = EvalConfig(checkpoint=str(ckpt), episodes=3, num_envs=2, videos=0, out=str(tmp_path / "ev"))
    summary = evaluate(cfg, policy=ConstantPolicy(2, value=-1.5), progress=False)
    record = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert summary["clipped_actions"] == record["summary"]["clipped_actions"] == 3 + 4 + 5
    assert [e["clipped_actions"] for e in record["episodes"]] == [3, 4, 5]  # seeds 100000..100002
    assert "12 step(s) had an action outside the action space" in format_summary(summary)


def test_record_clips_actions_to_the_action_space_and_counts_them(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from imitation.data.store import DemoStore
    from imitation.record import main

    mapping = write_mapping(tmp_path, "fake/Truncating-v0", expert="fake_gym:overreaching")
    out = tmp_path / "demos.zarr"
    argv = [
        "--env",
        str(mapping),
        "--episodes",
        "2",
        "--keep-failed",
        "--obs-mode",
        "state",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert "7 action(s) clipped to the action space" in capsys.readouterr().out  # seeds 0, 1: 3 + 4 steps
    store = DemoStore.open(out)
    assert float(np.abs(store.read_episode(0, ["action"])["action"]).max()) == 1.0


def test_videos_run_at_the_tasks_rate_in_its_cameras_aspect_ratio(tmp_path: Path) -> None:
    import cv2

    # dt 0.1 s (10 Hz), a 60 x 120 camera (1:2), 5-step episodes. Filming workers start from a fresh
    # process: the mapping imports the module that registers the env.
    mapping = write_mapping(tmp_path, "fake/Wide-v0", imports=["fake_gym"])
    episodes, _ = rollout(
        ConstantPolicy(4), str(mapping), [0, 1], num_envs=2, videos=1, video_dir=tmp_path / "ev", trusted=True
    )
    video = cv2.VideoCapture(episodes[0].video)
    fps, count = video.get(cv2.CAP_PROP_FPS), int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    ok, frame = video.read()
    video.release()
    assert fps == pytest.approx(10.0) and count == episodes[0].length + 1 == 6
    assert ok and frame.shape == (240, 480, 3)  # 240 high, as wide as the camera's 1:2 makes it
