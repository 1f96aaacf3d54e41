"""Turning state-based samples about the arm's base (--augment-yaw)."""

from __future__ import annotations

import math

import pytest
import torch

from imitation.data.augment import check_symmetry, task_symmetry, turn
from imitation.errors import ConfigError
from imitation.train import Dist, TrainConfig, turn_angles

SYM = {"state": {"angles": [0]}, "env_state": {"xy": [0], "angles": [2]}}


def test_turn_by_hand():
    batch = {
        "state": torch.tensor([[[0.1, 0.5]], [[0.2, 0.5]]]),  # (B, T, D)
        "env_state": torch.tensor([[[1.0, 0.0, 0.3, 7.0]], [[0.0, 2.0, -0.1, 7.0]]]),
        "obs_is_pad": torch.zeros(2, 1, dtype=torch.bool),
    }
    out = turn(batch, SYM, torch.tensor([math.pi / 2, -math.pi / 2]))
    torch.testing.assert_close(
        out["state"], torch.tensor([[[0.1 + math.pi / 2, 0.5]], [[0.2 - math.pi / 2, 0.5]]])
    )
    # (1, 0) turned by +90° is (0, 1); (0, 2) turned by -90° is (2, 0); the bearing turns; the rest stays
    want = torch.tensor([[[0.0, 1.0, 0.3 + math.pi / 2, 7.0]], [[2.0, 0.0, -0.1 - math.pi / 2, 7.0]]])
    torch.testing.assert_close(out["env_state"], want, atol=1e-6, rtol=0)
    assert out["obs_is_pad"] is batch["obs_is_pad"]
    torch.testing.assert_close(batch["state"][0, 0, 0], torch.tensor(0.1))  # the input is untouched


def test_turning_by_zero_changes_nothing_and_turns_compose():
    x = {"env_state": torch.randn(4, 3, 4), "state": torch.randn(4, 3, 2)}
    same = turn(x, SYM, torch.zeros(4))
    for k in x:
        torch.testing.assert_close(same[k], x[k])
    a, b = torch.rand(4), torch.rand(4)
    twice = turn(turn(x, SYM, a), SYM, b)
    once = turn(x, SYM, a + b)
    for k in x:
        torch.testing.assert_close(twice[k], once[k], atol=1e-5, rtol=0)


def test_angles_are_reproducible_bounded_and_split_over_processes():
    cfg = TrainConfig(augment_yaw=0.3)
    a = turn_angles(cfg, 5, Dist(), 64)
    assert torch.equal(a, turn_angles(cfg, 5, Dist(), 64)) and not torch.equal(
        a, turn_angles(cfg, 6, Dist(), 64)
    )
    assert a.abs().max() <= 0.3 and a.std() > 0.1
    halves = [turn_angles(cfg, 5, Dist(rank=r, world=2), 32) for r in (0, 1)]
    assert torch.equal(torch.cat(halves), a)  # two processes draw the one-process batch's angles


def test_which_tasks_and_policies_can_be_turned():
    sym = task_symmetry("imitation/PickPlace-v0", ["state", "env_state", "action"])
    assert sym["state"] == {"angles": [0]} and set(sym) == {"state", "env_state", "action"}
    check_symmetry(sym, {"state": 6, "env_state": 17, "action": 6})
    with pytest.raises(ConfigError, match="entry 15, but the feature has 12"):
        check_symmetry(sym, {"state": 6, "env_state": 12, "action": 6})  # a store of an older layout
    with pytest.raises(ConfigError, match="does not declare a turn symmetry"):
        task_symmetry("imitation/TransferCube-v0", ["state", "action"])  # two arms, two bases
    with pytest.raises(ConfigError, match="names no task"):
        task_symmetry(None, ["state", "action"])
    with pytest.raises(ConfigError, match="images/top"):
        task_symmetry("imitation/PickPlace-v0", ["state", "images/top", "action"])
    with pytest.raises(ConfigError, match="augment_yaw"):
        TrainConfig(augment_yaw=-0.1)


def test_training_on_a_store_without_a_task_says_so(synthetic_store, tmp_path):
    from imitation.config import from_dict
    from imitation.train import train

    cfg = from_dict(
        TrainConfig,
        {
            "store": str(synthetic_store),
            "out": str(tmp_path / "r"),
            "steps": 1,
            "wandb": "disabled",
            "augment_yaw": 0.2,
        },
    )
    with pytest.raises(ConfigError, match="augment-yaw"):
        train(cfg)


def test_widened_statistics_hold_every_turned_sample():
    from imitation.data.augment import widen_stats

    g = torch.Generator().manual_seed(0)
    x = {"env_state": torch.rand(500, 4, generator=g) * torch.tensor([0.1, 0.3, 1.0, 1.0]) + 0.1}
    x["state"] = torch.rand(500, 2, generator=g)
    stats = {
        k: {
            "min": v.amin(0).tolist(),
            "max": v.amax(0).tolist(),
            "mean": v.mean(0).tolist(),
            "std": v.std(0).tolist(),
        }
        for k, v in x.items()
    }
    wide = widen_stats(stats, SYM, 0.4)
    turned = turn(x, SYM, (2 * torch.rand(500, generator=g) - 1) * 0.4)
    for k, v in turned.items():
        assert (v >= torch.tensor(wide[k]["min"]) - 1e-6).all() and (
            v <= torch.tensor(wide[k]["max"]) + 1e-6
        ).all(), k
    assert wide["state"]["min"][1] == stats["state"]["min"][1]  # what does not turn keeps its range
    assert wide["state"]["min"][0] == pytest.approx(stats["state"]["min"][0] - 0.4)
    assert wide["env_state"]["mean"] == stats["env_state"]["mean"]
