"""A robot of two arms through the whole stack, with no hardware: two SO-101 servo buses emulated
with the TransferCube simulator as their physics (``configs/robots/so101_bimanual_emulated.yaml``),
calibrated through the buses, recorded in an operator session, killed mid-session, deployed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imitation.control import RateLoop
from imitation.data.check import validate
from imitation.data.store import DemoStore
from imitation.record import RecordConfig
from tests.test_session import CHILD, KeyScript, kill_sessions, sim_loop

ROOT = Path(__file__).resolve().parents[1]
PAIR = "configs/robots/so101_bimanual_emulated.yaml"
ENV = "imitation/TransferCube-v0"


def session_on(robot: str, env: str, out) -> DemoStore:
    """One 10-frame episode of an operator session on an emulated robot, on a simulated clock."""
    from imitation.session import record_session

    cfg = RecordConfig(
        env=env, robot=robot, emulate=True, teleop="keyboard", out=out, episodes=1, warmup_s=0.0, ui="none"
    )
    assert record_session(cfg, teleop=KeyScript({2: "TOGGLE", 12: "TOGGLE"}), loop=sim_loop())["saved"] == 1
    store = DemoStore.open(out)
    assert store.episode_lengths[0] == 10 and validate(store).ok
    return store


def test_a_session_on_the_emulated_pair(tmp_path):
    store = session_on(PAIR, ENV, tmp_path / "pair.zarr")
    assert store.features["state"].shape == (12,) and store.features["action"].shape == (12,)
    assert store.robot["joint_names"][:2] == ["left/shoulder_pan", "left/shoulder_lift"]
    assert store.robot["joint_names"][6] == "right/shoulder_pan"
    state = store.read_episode(0, ["state"])["state"]
    assert np.isfinite(state).all() and np.abs(state[:, [5, 11]] - 0.5).max() < 0.6  # grippers in range


def test_a_session_on_the_emulated_aloha(tmp_path):
    """ALOHA's follower pair: two ViperX buses with their shadow servos, the AlohaTransferCube
    simulator as physics, its four cameras and tracker declared in the robot config."""
    store = session_on(
        "configs/robots/aloha_emulated.yaml", "imitation/AlohaTransferCube-v0", tmp_path / "a.zarr"
    )
    assert store.features["state"].shape == (14,) and store.robot["joint_names"][7] == "right/waist"
    cameras = {f"images/{c}" for c in ("cam_high", "cam_low", "cam_left_wrist", "cam_right_wrist")}
    assert cameras <= set(store.features)


def test_sigkill_during_a_two_arm_session_loses_no_saved_episode(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT), env=ENV, robot=str(ROOT / PAIR), emulate=True))
    assert kill_sessions(script, tmp_path / "kill.zarr", trials=4, seed=1, wait_s=120) >= 4


def test_deploy_on_the_emulated_pair(tmp_path):
    from imitation.config import from_dict
    from imitation.deploy import DeployConfig, deploy
    from imitation.record import record_scripted
    from imitation.train import TrainConfig, train

    store = tmp_path / "demos.zarr"
    record_scripted(RecordConfig(env=ENV, episodes=2, out=store, obs_mode="state"), progress=False)
    act = {"obs_keys": ["state", "env_state"], "chunk_size": 10, "n_action_steps": 10, "dim_model": 32,
           "n_heads": 2, "dim_feedforward": 64, "n_encoder_layers": 1, "n_decoder_layers": 1,
           "n_vae_encoder_layers": 1, "latent_dim": 8}  # fmt: skip
    cfg = {"store": str(store), "out": str(tmp_path / "run"), "policy": "act", "act": act, "steps": 10}
    cfg |= {"batch_size": 8, "num_workers": 0, "device": "cpu", "wandb": "disabled", "log_every": 5}
    train(from_dict(TrainConfig, cfg))
    s = deploy(
        DeployConfig(
            checkpoint=str(tmp_path / "run"), robot=PAIR, emulate=True, episodes=1, episode_s=0.5, env=ENV
        ),
        loop=RateLoop.simulated(50.0),
    )
    assert s["episodes"][0]["ticks"] == 25 and s["stopped"] is None


def test_replay_of_a_scripted_demo_on_the_emulated_pair_succeeds(tmp_path):
    """The whole chain of two arms (each bus calibrated, both arms in one tick, the safety layer)
    retraces a scripted demonstration closely enough that the simulated task succeeds again."""
    from imitation.record import record_scripted
    from imitation.replay import ReplayConfig, replay

    store = tmp_path / "demos.zarr"
    record_scripted(RecordConfig(env=ENV, episodes=1, out=store, obs_mode="state", seed=3), progress=False)
    out = replay(ReplayConfig(store=str(store), robot=PAIR, emulate=True), loop=sim_loop())
    assert out["success"] is True and out["seed"] == 3
    assert out["tracking_error_max"] < 0.2


def test_a_scene_prepared_in_the_reset_period_is_not_reset_again_at_the_start(monkeypatch):
    """A session resets the emulated scene when its reset period begins (``prepare``), so that the
    tick starting the next episode does not wait for it; ``begin`` then only re-reads the arm."""
    from imitation.robots.stack import Needs, RobotOptions, RobotStack

    setup = RobotStack(
        RobotOptions(robot=PAIR, emulate=True, env=ENV), Needs(env_id=ENV), clock=sim_loop().clock
    )
    try:
        setup.robot.connect()
        resets = []
        real = setup.physics.reset
        monkeypatch.setattr(setup.physics, "reset", lambda seed: (resets.append(seed), real(seed)))
        setup.prepare(7)
        setup.physics.wait_ready()
        setup.begin(7)
        assert resets == [7] and setup.physics.sim.seed == 7
        setup.begin(8)  # not prepared: reset here
        assert resets == [7, 8]
    finally:
        setup.close()
