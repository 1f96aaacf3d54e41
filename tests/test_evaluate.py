"""The evaluator: interval arithmetic, batched rollouts equal serial ones, seeds, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from imitation.errors import ConfigError
from imitation.evaluate import EvalConfig, evaluate, rollout
from imitation.policies import ACTConfig, ACTPolicy, DiffusionConfig, DiffusionPolicy
from imitation.policies.common import IOSpec
from imitation.results import Episode, summarize, wilson_interval

PICK_PLACE_IO = IOSpec({"state": 6, "env_state": 17}, {}, 6)


def test_wilson_interval_by_hand():
    # 8/10: centre (0.8 + z²/20) / (1 + z²/10) = 0.7167, half-width 0.2266 (z = 1.96)
    lo, hi = wilson_interval(8, 10)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_summary_arithmetic():
    eps = [Episode(1, True, 2.0, 10, 0.9), Episode(2, False, -1.0, 30, 0.5), Episode(3, True, 5.0, 20, 1.0)]
    s = summarize(eps)
    assert s["successes"] == 2 and s["success_rate"] == pytest.approx(2 / 3)
    assert s["mean_return"] == pytest.approx(2.0) and s["mean_length"] == pytest.approx(20.0)
    assert (s["min_length"], s["max_length"]) == (10, 30)
    assert s["mean_max_coverage"] == pytest.approx(0.8)


def tiny_act_config() -> ACTConfig:
    return ACTConfig(
        obs_keys=("state", "env_state"),
        chunk_size=5,
        dim_model=16,
        n_heads=2,
        dim_feedforward=32,
        n_encoder_layers=1,
        n_vae_encoder_layers=1,
    )


def tiny(name: str):
    torch.manual_seed(0)
    if name == "act":
        return ACTPolicy(tiny_act_config(), PICK_PLACE_IO).eval()
    cfg = DiffusionConfig(
        obs_keys=("state", "env_state"),
        down_dims=(8, 16),
        diffusion_step_embed_dim=8,
        horizon=8,
        n_action_steps=4,
        scheduler="ddpm",
        num_inference_steps=3,
    )
    return DiffusionPolicy(cfg, PICK_PLACE_IO).eval()


@pytest.mark.parametrize("name", ["act", "diffusion"])
def test_batched_rollouts_give_the_same_per_seed_results_as_serial_ones(name):
    seeds = [11, 12, 13, 14, 15]
    kwargs = {"obs_mode": "state", "time_limit_s": 0.6}
    batched, _ = rollout(tiny(name), "imitation/PickPlace-v0", seeds, env_kwargs=kwargs, num_envs=3)
    serial, _ = rollout(tiny(name), "imitation/PickPlace-v0", seeds, env_kwargs=kwargs, num_envs=1)
    assert [e.seed for e in batched] == seeds
    # The same episodes; returns agree to float rounding (a batch's matrix products sum in another order).
    assert [(e.seed, e.success, e.length) for e in batched] == [(e.seed, e.success, e.length) for e in serial]
    assert [e.ret for e in batched] == pytest.approx([e.ret for e in serial], rel=1e-5)


def held_actions_reference(policy, env_id: str, seed: int, kwargs: dict) -> tuple[float, int]:
    """One episode by hand: the policy acts at ticks 0, k, 2k, ... and its action is held between."""
    from envs.mapping import make

    env = make(env_id, **kwargs)
    obs, _ = env.reset(seed=seed)
    policy.reset(seeds=[seed])
    ret, tick, done = 0.0, 0, False
    while not done:
        if tick % policy.cfg.frame_skip == 0:
            action = policy.select_action({k: torch.as_tensor(obs[k][None]) for k in policy.cfg.obs_keys})
        obs, reward, terminated, truncated, _ = env.step(action[0].numpy())
        ret, tick, done = ret + reward, tick + 1, terminated or truncated
    env.close()
    return ret, tick


@pytest.mark.parametrize("name", ["act", "diffusion"])
def test_frame_skip_episodes_see_the_policy_at_their_own_ticks_however_they_are_batched(name):
    # 29-tick episodes with a policy acting every 5 ticks: in a batch, or one after another in one
    # slot, each next episode would start between two policy steps; it waits for the next one.
    seeds = [21, 22, 23, 24]
    kwargs = {"obs_mode": "state", "time_limit_s": 0.58}
    policy = tiny(name)
    policy.cfg.frame_skip = 5
    batched, _ = rollout(policy, "imitation/PickPlace-v0", seeds, env_kwargs=kwargs, num_envs=3)
    serial, _ = rollout(policy, "imitation/PickPlace-v0", seeds, env_kwargs=kwargs, num_envs=1)
    by_hand = [held_actions_reference(policy, "imitation/PickPlace-v0", s, kwargs) for s in seeds]
    assert [e.length for e in batched] == [e.length for e in serial] == [n for _, n in by_hand]
    assert by_hand[0][1] % 5 != 0  # the episodes do end between two policy steps
    assert [e.ret for e in batched] == pytest.approx([r for r, _ in by_hand], rel=1e-5)
    assert [e.ret for e in serial] == pytest.approx([r for r, _ in by_hand], rel=1e-5)


def test_the_first_episodes_are_filmed_as_they_run_without_changing_them(tmp_path):
    import cv2

    # frame_skip 5 and 2 slots: seed 23 waits for a policy step before it starts, so its film
    # must restart with it.
    seeds = [21, 22, 23, 24]
    kwargs = {"obs_mode": "state", "time_limit_s": 0.58}
    policy = tiny("act")
    policy.cfg.frame_skip = 5
    plain, _ = rollout(policy, "imitation/PickPlace-v0", seeds, env_kwargs=kwargs, num_envs=2)
    filmed, _ = rollout(
        policy, "imitation/PickPlace-v0", seeds, env_kwargs=kwargs, num_envs=2, videos=3, video_dir=tmp_path
    )
    assert [(e.seed, e.success, e.length) for e in filmed] == [(e.seed, e.success, e.length) for e in plain]
    assert [e.ret for e in filmed] == pytest.approx([e.ret for e in plain], rel=1e-5)
    assert [e.video is not None for e in filmed] == [True, True, True, False]
    for e in filmed[:3]:
        assert Path(e.video).name == f"episode_seed{e.seed}_{'success' if e.success else 'failure'}.mp4"
        video = cv2.VideoCapture(e.video)
        frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, first = video.read()
        video.release()
        assert frames == e.length + 1  # the reset and every step
        assert ok and first.shape == (240, 320, 3) and first.std() > 5  # a rendered scene
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(e.video).name for e in filmed[:3])


def test_latency_changes_what_the_policy_sees():
    kwargs = {"obs_mode": "state", "time_limit_s": 0.4}
    now, _ = rollout(tiny("act"), "imitation/PickPlace-v0", [3], env_kwargs=kwargs, num_envs=1)
    late, _ = rollout(
        tiny("act"), "imitation/PickPlace-v0", [3], env_kwargs=kwargs, num_envs=1, latency_ticks=3
    )
    assert now[0].ret != late[0].ret


def test_eval_refuses_training_seeds_and_writes_its_outputs(tmp_path):
    from imitation.record import RecordConfig, record_scripted
    from imitation.train import TrainConfig, train

    store = tmp_path / "demo.zarr"
    record_scripted(
        RecordConfig(env="imitation/PickPlace-v0", episodes=2, out=store, seed=0, obs_mode="state")
    )
    cfg = TrainConfig(
        store=str(store),
        out=str(tmp_path / "run"),
        steps=2,
        batch_size=8,
        val_fraction=0.0,
        wandb="disabled",
        act=tiny_act_config(),
    )
    train(cfg)
    with pytest.raises(ConfigError, match="--force"):
        evaluate(
            EvalConfig(checkpoint=str(tmp_path / "run"), episodes=3, seed=0, out=str(tmp_path / "e")),
            progress=False,
        )
    s = evaluate(
        EvalConfig(
            checkpoint=str(tmp_path / "run"),
            episodes=2,
            seed=100_000,
            num_envs=2,
            videos=1,
            out=str(tmp_path / "e"),
        ),
        progress=False,
    )
    record = json.loads((tmp_path / "e" / "results.json").read_text())
    assert [e["seed"] for e in record["episodes"]] == [100_000, 100_001]
    assert record["summary"]["env"] == "imitation/PickPlace-v0" and s["episodes"] == 2
    assert (tmp_path / "e" / "summary.png").stat().st_size > 0
    assert len(s["videos"]) == 1 and (tmp_path / "e").glob("episode_seed100000_*.mp4")


def test_rollout_refuses_a_task_whose_layout_differs_from_the_policys():
    # A PickPlace policy on PushT: its env_state has another length; one clear line, no traceback.
    kwargs = {"obs_mode": "state", "time_limit_s": 0.2}
    with pytest.raises(
        ConfigError, match=r"reads env_state of shape \(17,\) but imitation/PushT-v0 gives \(27,\)"
    ):
        rollout(tiny("act"), "imitation/PushT-v0", [0], env_kwargs=kwargs, num_envs=1)
    with pytest.raises(ConfigError, match="gives no observation 'images/top'"):
        policy = tiny("act")
        policy.io = IOSpec(dict(policy.io.lowdim), {"images/top": (96, 96, 3)}, policy.io.action_dim)
        rollout(policy, "imitation/PickPlace-v0", [0], env_kwargs=kwargs, num_envs=1)


@pytest.mark.parametrize("bad", [{"episodes": 0}, {"num_envs": 0}, {"latency_ticks": -1}, {"videos": -1}])
def test_eval_config_refuses_negative_counts(bad):
    with pytest.raises(ConfigError, match="give a value ≥"):
        EvalConfig(**bad)


def test_a_film_shows_what_the_policy_saw_beside_the_scene():
    import numpy as np

    from imitation.evaluate import with_policy_view

    scene = np.full((240, 320, 3), 7, np.uint8)
    top = np.arange(96 * 96 * 3, dtype=np.uint32).reshape(96, 96, 3).astype(np.uint8)
    wrist = np.full((96, 96, 3), 200, np.uint8)
    frame = with_policy_view(scene, {"state": np.zeros(6), "images/top": top, "images/wrist": wrist})
    assert frame.shape == (240, 320 + 120, 3)
    assert (frame[:, :320] == 7).all()
    # Sorted by key: images/top first, enlarged 120/96 without smoothing; images/wrist below it.
    assert (frame[0, 320] == top[0, 0]).all() and (frame[119, 439] == top[95, 95]).all()
    assert (frame[120:240, 320:] == 200).all()
    assert with_policy_view(scene, {"state": np.zeros(6)}) is scene
