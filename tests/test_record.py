"""Scripted recording into a demo store, its reproducibility, replay from stored seeds, and view."""

from __future__ import annotations

import numpy as np
import pytest
from replaying import replay_actions

from imitation.data.check import validate
from imitation.data.store import DemoStore
from imitation.record import RecordConfig, record_scripted
from imitation.view import ViewConfig, frames, write_video


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("rec")
    cfg = RecordConfig(episodes=3, out=root / "a.zarr", seed=11, obs_mode="both", image_size=(32, 32))
    result = record_scripted(cfg, progress=False)
    return cfg, result


def test_record_writes_successful_episodes_with_their_seeds(recorded):
    cfg, result = recorded
    assert result["episodes"] == 3
    store = DemoStore.open(cfg.out)
    assert store.n_episodes == 3 and validate(store, progress=False).ok
    # Frames are what the store holds; steps also count any attempt that was discarded.
    assert result["frames"] == store.n_frames <= result["steps"]
    assert set(store.features) == {"state", "action", "env_state", "images/top", "timestamp"}
    seeds = store.meta_table()["seed"].tolist()
    assert seeds[0] == 11 and len(set(seeds)) == 3 and all(s >= 11 for s in seeds)
    assert (store.meta_table()["outcome"] == "success").all()
    assert store.robot["env_id"] == "imitation/PickPlace-v0" and store.fps == 50


def test_same_command_and_seed_give_identical_arrays(recorded, tmp_path):
    cfg, _ = recorded
    again = RecordConfig(**{**cfg.__dict__, "out": tmp_path / "b.zarr"})
    record_scripted(again, progress=False)
    a, b = DemoStore.open(cfg.out), DemoStore.open(again.out)
    for key in ("state", "action", "env_state", "images/top", "timestamp"):
        np.testing.assert_array_equal(a.read(key), b.read(key), err_msg=key)


def test_replaying_stored_actions_reproduces_states_and_success(recorded):
    cfg, _ = recorded
    store = DemoStore.open(cfg.out)
    for e in range(store.n_episodes):
        start, end = store.episode_range(e)
        states, success = replay_actions(
            cfg.env, store.episode_meta(e)["seed"], store.read("action", start, end)
        )
        np.testing.assert_array_equal(np.stack(states), store.read("state", start, end))
        assert success


def test_view_writes_video_from_images_and_from_resimulation(recorded, tmp_path):
    import cv2

    cfg, _ = recorded
    store = DemoStore.open(cfg.out)
    out = tmp_path / "stored.mp4"
    images, fps = frames(ViewConfig(store=cfg.out, episodes=(0, 1), camera="top"))
    n = write_video(out, images, fps)
    assert n == int(store.episode_lengths[:2].sum())
    cap = cv2.VideoCapture(str(out))
    assert cap.read()[0]
    # No 'front' camera was recorded: the episode is re-simulated from its seed and actions.
    images, _ = frames(ViewConfig(store=cfg.out, episodes=(2,), camera="front", size=(48, 64)))
    pics = list(images)
    assert len(pics) == store.episode_lengths[2] + 1 and pics[0].shape == (48, 64, 3)
    png = tmp_path / "live.png"
    write_video(png, frames(ViewConfig(env=cfg.env, seed=0, size=(48, 64)))[0], 50)
    assert png.stat().st_size > 0


def test_appending_never_repeats_a_seed(tmp_path):
    cfg = RecordConfig(episodes=2, out=tmp_path / "c.zarr", seed=0, obs_mode="state")
    record_scripted(cfg, progress=False)
    record_scripted(cfg, progress=False)
    seeds = DemoStore.open(cfg.out).meta_table()["seed"].tolist()
    assert len(seeds) == 4 and len(set(seeds)) == 4


def test_action_noise_perturbs_the_arm_but_stores_the_experts_actions(recorded, tmp_path):
    """With --action-noise the executed path leaves the expert's, the labels stay the expert's."""
    cfg, _ = recorded
    clean = DemoStore.open(cfg.out)
    noisy_cfg = RecordConfig(
        episodes=1, out=tmp_path / "n.zarr", seed=cfg.seed, obs_mode="state", action_noise=0.03
    )
    record_scripted(noisy_cfg, progress=False)
    noisy = DemoStore.open(noisy_cfg.out)
    assert noisy.episode_meta(0)["info"]["action_noise"] == 0.03
    seed = noisy.episode_meta(0)["seed"]
    start, end = noisy.episode_range(0)
    actions, states = noisy.read("action", start, end), noisy.read("state", start, end)
    # The expert's joint targets move at most its rate limit per tick: noise would break that.
    arm_steps = np.abs(np.diff(actions[:, :5], axis=0)).max()
    assert arm_steps <= 0.05
    # The states differ from a noiseless run of the same scene.
    e = [i for i in range(clean.n_episodes) if clean.episode_meta(i)["seed"] == seed]
    if e:
        c0, c1 = clean.episode_range(e[0])
        n = min(end - start, c1 - c0, 50)
        assert np.abs(clean.read("state", c0, c0 + n) - states[:n]).max() > 1e-3
    # Replaying the labels is the noiseless expert, not this episode.
    replayed, _ = replay_actions(noisy_cfg.env, seed, actions)
    assert not np.array_equal(np.stack(replayed), states)
    # Same command, same seed: the same noise.
    again = RecordConfig(**{**noisy_cfg.__dict__, "out": tmp_path / "m.zarr"})
    record_scripted(again, progress=False)
    np.testing.assert_array_equal(DemoStore.open(again.out).read("state"), noisy.read("state"))


def test_action_noise_leaves_every_gripper_alone():
    """The offset moves the arm's dimensions only: a dimension named like a gripper (ours,
    a bimanual arm's, Meta-World's ``grip``) stays exactly as the expert sent it."""
    from imitation.record import ActionNoise
    from imitation.robots.base import RobotSpec

    def spec_of(names, hz, **kw):
        return RobotSpec("t", tuple(names), np.full(len(names), -1.0), np.ones(len(names)), hz, **kw)

    spec = spec_of(("dx", "dy", "dz", "grip"), 80.0)
    noise = ActionNoise(0.3, spec, seed=3)
    offsets = np.stack([noise() for _ in range(200)])
    assert np.all(offsets[:, 3] == 0.0)
    assert np.all(offsets[:, :3].std(axis=0) > 0.05)
    bimanual = spec_of(("left_waist", "left_gripper", "Right_Gripper"), 50.0)
    assert np.all(np.stack([ActionNoise(0.1, bimanual, seed=0)() for _ in range(5)])[:, 1:] == 0.0)

    # A mapping that names its gripper otherwise declares it (``grippers``); [] declares none.
    def offsets_of(spec):
        noise = ActionNoise(0.3, spec, seed=1)
        return np.stack([noise() for _ in range(100)])

    claw = offsets_of(spec_of(("dx", "dy", "claw"), 10.0, grippers=("claw",)))
    assert np.all(claw[:, 2] == 0.0) and np.all(claw[:, :2].std(axis=0) > 0.05)
    assert np.all(offsets_of(spec_of(("dx", "grip"), 10.0, grippers=())).std(axis=0) > 0.05)


def test_negative_action_noise_is_refused(tmp_path):
    from imitation.errors import ConfigError

    with pytest.raises(ConfigError, match="action_noise -1: out of range"):
        record_scripted(RecordConfig(episodes=1, out=tmp_path / "x.zarr", action_noise=-1), progress=False)
