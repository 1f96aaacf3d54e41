"""Meta-World's tasks through their mappings (configs/envs/metaworld/): a scene per reset seed, the
scripted policies as experts, and the whole path a user takes with the default recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from envs.mapping import make
from imitation.expert import run_expert

REPO = Path(__file__).resolve().parents[2]
REACH = str(REPO / "configs/envs/metaworld/reach.yaml")


def test_a_scene_per_seed_and_the_expert_succeeds() -> None:
    env = make(REACH, obs_mode="state")
    try:
        a = env.reset(seed=3)[0]["env_state"]
        env.reset(seed=4)
        env.reset(seed=5)
        b = env.reset(seed=3)[0]["env_state"]
        c = env.reset(seed=4)[0]["env_state"]
    finally:
        env.close()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    episodes, _ = run_expert(REACH, [100_000, 100_001, 100_002], progress=False)
    assert all(e.success for e in episodes)


def test_every_mt10_mapping_loads_and_labels_its_action() -> None:
    from envs.mapping import EnvMapping
    from envs.metaworld import MT10

    for task in MT10:
        m = EnvMapping.load(REPO / "configs/envs/metaworld" / f"{task.removesuffix('-v3')}.yaml")
        assert m.env_kwargs["task"] == task and m.action_kind == "ee_delta"


def test_hidden_gripper_reads_zero() -> None:
    env = make(str(REPO / "configs/envs/metaworld/pick-place-blind.yaml"), obs_mode="state")
    try:
        obs = env.reset(seed=0)[0]
        assert obs["state"][3] == 0.0 and obs["env_state"][21 - 4] == 0.0
        assert env.unwrapped.env.unwrapped.last_obs[3] != 0.0  # the expert still sees it
    finally:
        env.close()


def test_record_train_with_the_default_recipe_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from imitation.cli import main

    store, run, ev = tmp_path / "reach.zarr", tmp_path / "run", tmp_path / "ev"
    assert (
        main(["record", "--env", REACH, "--episodes", "3", "--obs-mode", "state", "--out", str(store)]) == 0
    )
    assert main(["train", "--store", str(store), "--policy", "act", "--out", str(run), "--steps", "4",
                 "--val-fraction", "0", "--wandb", "disabled"]) == 0  # fmt: skip
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["fps"] == 80.0 and cfg["act"]["obs_keys"] == ["state", "env_state"]
    assert main(["eval", "--checkpoint", str(run), "--env", REACH, "--episodes", "2", "--num-envs", "2",
                 "--videos", "1", "--out", str(ev)]) == 0  # fmt: skip
    summary = json.loads((ev / "results.json").read_text())["summary"]
    assert summary["episodes"] == 2 and summary["repeated_training_scenes"] == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "UserWarning" not in err
