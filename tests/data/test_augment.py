"""Turning samples about the arm's base (--augment-yaw): state vectors, and the pictures of
cameras that look straight down."""

from __future__ import annotations

import math

import pytest
import torch

from imitation.data.augment import check_symmetry, task_symmetry, turn, turn_images
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
    with pytest.raises(ConfigError, match="images/front .* looks obliquely"):
        task_symmetry(
            "imitation/PickPlace-v0", ["state", "images/front", "action"], {"images/front": (96, 96)}
        )
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


def _centroid(image, colour):
    r, g, b = (image[..., i].astype(int) for i in range(3))
    mask = (r > 150) & (g < 80) & (b < 80) if colour == "red" else (g > 120) & (r < 80) & (b < 100)
    ys, xs = mask.nonzero()
    return xs.mean(), ys.mean()


def test_a_picture_turned_about_the_base_pixel_shows_the_turned_scene():
    """Turn a PickPlace scene by 0.4 rad (base joint, cube, target), render it, and compare with the
    top camera's picture turned about the base pixel: the cube lands within a pixel and a half;
    the wrist camera is declared unchanged."""
    import mujoco
    import numpy as np

    from envs.mapping import make

    size = (96, 96)
    sym = task_symmetry(
        "imitation/PickPlace-v0",
        ["state", "images/top", "images/wrist", "action"],
        dict.fromkeys(["images/top", "images/wrist"], size),
    )
    assert sym["images/wrist"] == {"image": None} and sym["state"] == {"angles": [0]}
    env = make("imitation/PickPlace-v0", obs_mode="images", cameras=("top",), image_size=size)
    try:
        obs, _ = env.reset(seed=3)
        u = env.unwrapped
        m, d, a = u.model, u.data, 0.4
        turn2 = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        d.qpos[m.jnt_qposadr[0]] += a  # the base joint
        q = u._cube_qpos
        d.qpos[q : q + 2] = turn2 @ d.qpos[q : q + 2]
        quat = np.zeros(4)
        mujoco.mju_mulQuat(
            quat, np.array([math.cos(a / 2), 0, 0, math.sin(a / 2)]), d.qpos[q + 3 : q + 7].copy()
        )
        d.qpos[q + 3 : q + 7] = quat
        d.mocap_pos[u._target_mocap][:2] = turn2 @ d.mocap_pos[u._target_mocap][:2]
        mujoco.mj_forward(m, d)
        rendered = u._render("top", size)
    finally:
        env.close()
    before = torch.from_numpy(obs["images/top"])[None, None]  # (B, T, H, W, C)
    turned = turn({"images/top": before}, sym, torch.tensor([a]))["images/top"][0, 0].numpy()
    wrong = turn({"images/top": before}, sym, torch.tensor([-a]))["images/top"][0, 0].numpy()
    want = np.array(_centroid(rendered, "red"))
    assert np.linalg.norm(np.array(_centroid(turned, "red")) - want) < 1.5
    assert np.linalg.norm(np.array(_centroid(wrong, "red")) - want) > 10  # the direction matters


def test_turning_a_picture_by_zero_keeps_it_and_the_turn_is_per_sample():
    rng = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 16, 20, 3), generator=rng, dtype=torch.uint8)
    same = turn_images(images, (10.0, 8.0, 1.0), torch.zeros(2))
    assert torch.equal(same, images)
    half = turn_images(images, (10.0, 8.0, 1.0), torch.tensor([0.0, math.pi]))
    assert torch.equal(half[0], images[0])
    # Half a turn about the image centre maps pixel (u, v) to (W-1-u, H-1-v).
    assert torch.equal(half[1], images[1].flip(-2).flip(-3))
