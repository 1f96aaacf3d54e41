"""Seeds you can trust: ``record`` refuses a task whose scene does not follow its reset seed, and
``eval`` refuses evaluation episodes that start in a training demo's scene, whatever the seeds say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

from envs.mapping import make
from imitation.errors import ConfigError
from imitation.evaluate import EvalConfig, evaluate
from imitation.record import RecordConfig, record_scripted
from imitation.scenes import check_reproducible, repeated_scenes, training_firsts


class Scenes(gym.Env):
    """A one-step task whose scene (a goal) comes from ``scene(seed, resets)``."""

    metadata = {"render_modes": []}

    def __init__(self, rule: str = "seeded") -> None:
        self.rule, self.resets = rule, 0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.resets += 1
        if self.rule == "seeded":
            goal = float(self.np_random.uniform(-1, 1))
        elif self.rule == "cycling":  # as Meta-World's own classes: the reset count picks the scene
            goal = [-0.5, 0.0, 0.5][self.resets % 3]
        elif self.rule == "constant":
            goal = 0.25
        else:  # "few": the seed decides, but among five scenes only
            goal = [-0.8, -0.4, 0.0, 0.4, 0.8][(seed or 0) % 5]
        self.goal = goal
        return np.array([0.0, goal], np.float32), {"success": False}

    def step(self, action: np.ndarray):
        return np.array([1.0, self.goal], np.float32), 0.0, True, False, {"success": True}


class Expert:
    def __init__(self, env: Any) -> None:
        pass

    def __call__(self, obs: dict) -> np.ndarray:
        return np.zeros(1, np.float32)


for _rule in ("seeded", "cycling", "constant", "few"):
    if f"scenes/{_rule}-v0" not in gym.registry:
        gym.register(f"scenes/{_rule}-v0", entry_point=Scenes, kwargs={"rule": _rule}, max_episode_steps=5)


def mapping(tmp_path: Path, rule: str) -> str:
    path = tmp_path / f"{rule}.yaml"
    raw = {"env_id": f"scenes/{rule}-v0", "state": "[0:1]", "env_state": "[1:2]", "success": {"info": "success"},
           "expert": "test_scenes:Expert"}  # fmt: skip
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_a_seeded_task_passes_and_our_own_tasks_do(tmp_path: Path) -> None:
    check_reproducible(make(mapping(tmp_path, "seeded"), obs_mode="state"), 0, "seeded")
    check_reproducible(make("imitation/PickPlace-v0", obs_mode="state"), 0, "PickPlace")


@pytest.mark.parametrize(
    ("rule", "says"), [("cycling", "is not reproducible"), ("constant", "ignores the reset seed")]
)
def test_record_refuses_a_task_whose_scene_does_not_follow_the_seed(
    tmp_path: Path, rule: str, says: str
) -> None:
    out = tmp_path / "demos.zarr"
    with pytest.raises(ConfigError, match=says):
        record_scripted(RecordConfig(env=mapping(tmp_path, rule), episodes=2, out=out, obs_mode="state"))
    assert not out.exists()


def test_eval_refuses_episodes_that_start_in_a_training_scene(tmp_path: Path) -> None:
    """Seeds 0..9 recorded, 100000.. evaluated: disjoint seeds, but the task has five scenes only."""
    from fake_gym import ConstantPolicy, fake_checkpoint

    env_id = mapping(tmp_path, "few")
    store = tmp_path / "demos.zarr"
    record_scripted(RecordConfig(env=env_id, episodes=10, out=store, obs_mode="state"), progress=False)
    firsts, seeds = training_firsts(str(store))
    assert firsts.shape == (10, 2) and seeds == list(range(10))
    env = make(env_id, obs_mode="state")
    assert repeated_scenes(env, [100_000, 100_001], firsts) == {100_000: 0, 100_001: 1}
    seeded = make(mapping(tmp_path, "seeded"), obs_mode="state")
    assert repeated_scenes(seeded, range(100_000, 100_010), firsts) == {}

    ckpt = fake_checkpoint(tmp_path / "ckpt", env_id, 1, 1)
    meta = yaml.safe_load((ckpt / "config.yaml").read_text())
    meta["dataset"] = {"path": str(store)}
    (ckpt / "config.yaml").write_text(yaml.safe_dump(meta))
    cfg = EvalConfig(checkpoint=str(ckpt), env=env_id, episodes=4, videos=0, out=str(tmp_path / "ev"))
    with pytest.raises(
        ConfigError, match=r"4 of 4 evaluation episodes start in a scene of the training demos"
    ):
        evaluate(cfg, policy=ConstantPolicy(1), progress=False)
    assert not (tmp_path / "ev" / "results.json").exists()


def test_eval_expert_runs_the_tasks_scripted_expert(tmp_path: Path) -> None:
    cfg = EvalConfig(expert=True, env="imitation/PickPlace-v0", episodes=2, out=str(tmp_path / "ex"))
    summary = evaluate(cfg, progress=False)
    assert summary["expert"] and summary["episodes"] == 2 and summary["successes"] == 2
    assert (tmp_path / "ex" / "results.json").exists()
    with pytest.raises(ConfigError, match="--expert needs --env"):
        EvalConfig(expert=True)
