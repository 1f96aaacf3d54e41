"""Default recipes: spans in seconds at the store's rate, configs that say their rate, and
two-valued action dimensions (a gripper open or closed) learnt and executed as such."""

import numpy as np
import pytest
import torch
import yaml

from imitation.config import from_dict
from imitation.data.store import DemoStore, EpisodeWriter
from imitation.errors import ConfigError
from imitation.policies import ACTConfig, ACTPolicy, DiffusionConfig, DiffusionPolicy
from imitation.policies.common import IOSpec, snap_binary
from imitation.recipes import binary_action_dims, check_rate, recipe
from imitation.train import TrainConfig, train
from imitation.train import main as train_main

FEATURES = {
    "state": {"shape": [2], "dtype": "float32", "kind": "state"},
    "env_state": {"shape": [2], "dtype": "float32", "kind": "state"},
    "action": {"shape": [3], "dtype": "float32", "kind": "action"},
}


def gripper_store(path, fps: float, episodes: int = 6, seconds: float = 2.0) -> None:
    """Two arm dims that follow the state, and a gripper that closes (1) halfway through each
    episode and stays closed: the gripper command is exactly 0 or 1, as scripted demos give it."""
    rng = np.random.default_rng(0)
    n = int(round(seconds * fps))
    with EpisodeWriter(path, features=FEATURES, fps=fps, robot={"name": "toy"}) as w:
        for _ in range(episodes):
            w.start_episode(task="toy")
            goal = rng.uniform(-1, 1, 2).astype(np.float32)
            for t in range(n):
                s = np.array([t / n, np.sin(t / n)], np.float32)
                grip = 1.0 if t >= n // 2 else 0.0
                w.add_frame(
                    {
                        "state": s,
                        "env_state": goal,
                        "action": np.array([s[0] + 0.1, goal[1], grip], np.float32),
                        "timestamp": t / fps,
                    }
                )
            w.save_episode(outcome="success")


def test_binary_dims_found_only_where_the_demos_hold_two_values():
    rng = np.random.default_rng(0)
    n = 1000
    actions = np.stack(
        [
            rng.normal(size=n),  # continuous
            (rng.random(n) > 0.5).astype(float),  # a binary gripper
            np.full(n, 0.3),  # constant: nothing to learn
            np.where(rng.random(n) > 0.5, -1.0, 1.0) + rng.normal(0, 0.005, n),  # binary, a little noisy
            np.linspace(0, 1, n),  # a ramp reaching both ends
            np.r_[np.zeros(n - 3), np.ones(3)],  # at two values, but the high one is 3 frames: a blip
        ],
        axis=1,
    )
    assert binary_action_dims(actions) == (1, 3)


def test_recipe_spans_seconds_at_the_store_rate(tmp_path):
    for fps in (10.0, 50.0):
        gripper_store(tmp_path / f"s{fps:g}.zarr", fps, seconds=4.0)
    act10, act50 = (recipe(str(tmp_path / f"s{f}.zarr"), "act")["act"] for f in ("10", "50"))
    # A quarter of the 4-s episodes: 1 s, whatever the rate.
    assert act10["chunk_size"] == 10 and act50["chunk_size"] == 50
    dp10, dp50 = (recipe(str(tmp_path / f"s{f}.zarr"), "diffusion")["diffusion"] for f in ("10", "50"))
    assert dp10["horizon"] == 8 and dp50["horizon"] == 32  # 0.64 s (at least 8, a multiple of 4)
    assert dp50["n_action_steps"] == 16
    r = recipe(str(tmp_path / "s10.zarr"), "act")
    assert r["fps"] == 10.0 and r["act"]["obs_keys"] == ["state", "env_state"]
    assert r["act"]["binary_actions"] == [2]


def test_a_config_of_another_rate_is_refused_or_rescaled(tmp_path):
    gripper_store(tmp_path / "ten.zarr", 10.0)
    act = {"obs_keys": ["state"], "chunk_size": 100, "n_action_steps": 100}
    cfg = from_dict(TrainConfig, {"store": str(tmp_path / "ten.zarr"), "fps": 50, "act": act})
    with pytest.raises(ConfigError, match=r"tuned at 50 Hz.*recorded at 10 Hz.*--rescale"):
        check_rate(cfg, 10.0, "configs/x.yaml")
    cfg.rescale = True
    check_rate(cfg, 10.0, "configs/x.yaml")
    assert cfg.act.chunk_size == 20 and cfg.act.n_action_steps == 20 and cfg.fps == 10.0
    dp = from_dict(
        TrainConfig,
        {"store": "x", "policy": "diffusion", "fps": 50, "rescale": True, "diffusion": {"horizon": 32}},
    )
    check_rate(dp, 10.0, "configs/y.yaml")
    assert dp.diffusion.horizon == 8  # 6.4 ticks, at least 8 and a multiple of 4


def test_shipped_configs_say_their_rate():
    from pathlib import Path

    for path in sorted(Path("configs/train").glob("*.yaml")):
        assert yaml.safe_load(path.read_text()).get("fps") == 50, f"{path} does not say its rate (fps: 50)"


@pytest.mark.parametrize("name", ["act", "diffusion"])
def test_two_valued_dims_are_executed_at_one_of_their_values(tmp_path, name):
    gripper_store(tmp_path / "g.zarr", 20.0)
    store = DemoStore.open(tmp_path / "g.zarr")
    io = IOSpec.from_features(store.features, ("state", "env_state"))
    if name == "act":
        cfg = ACTConfig(obs_keys=("state", "env_state"), chunk_size=5, n_action_steps=5, dim_model=32,
                        n_heads=2, dim_feedforward=64, n_encoder_layers=1, use_vae=False,
                        binary_actions=(2,))  # fmt: skip
        policy = ACTPolicy(cfg, io)
    else:
        cfg = DiffusionConfig(obs_keys=("state", "env_state"), horizon=8, n_action_steps=4, down_dims=(16, 32),
                              scheduler="ddim", num_inference_steps=2, binary_actions=(2,))  # fmt: skip
        policy = DiffusionPolicy(cfg, io)
    policy.set_stats(store.stats())
    assert policy.binary.to_dict() == {"dims": [2], "low": [0.0], "high": [1.0]}
    policy.eval()
    obs = {"state": torch.zeros(3, 2), "env_state": torch.zeros(3, 2)}
    for _ in range(3):
        a = policy.select_action(obs)
        assert set(a[:, 2].tolist()) <= {0.0, 1.0}
    # An ensemble of snapped chunks, as the deploy loop forms it, is snapped again.
    assert snap_binary(np.array([0.2, 0.5, 0.4]), policy.binary.to_dict()).tolist() == [0.2, 0.5, 0.0]


def test_act_learns_a_gripper_as_open_or_closed(tmp_path):
    """Trained briefly, ACT's gripper logit gets its cross-entropy loss (in the metrics) and the
    executed gripper commands are the demos' two values, closing where the demos close."""
    gripper_store(tmp_path / "g.zarr", 20.0)
    run = tmp_path / "run"
    train_main(["--store", str(tmp_path / "g.zarr"), "--policy", "act", "--out", str(run), "--steps", "300",
                "--act.chunk-size", "4", "--act.n-action-steps", "4", "--act.dim-model", "32", "--act.n-heads", "2",
                "--act.dim-feedforward", "64", "--val-fraction", "0", "--log-every", "100", "--wandb", "disabled",
                "--act.lr", "1e-3"])  # fmt: skip
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["act"]["binary_actions"] == [2] and saved["fps"] == 20.0
    rows = [yaml.safe_load(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert any("bce" in r for r in rows)
    from imitation.checkpoint import load_policy, read_meta

    assert read_meta(run)["binary_actions"]["dims"] == [2]
    policy = load_policy(run)
    t = torch.tensor([[0.1], [0.9]])
    obs = {"state": torch.cat([t, torch.sin(t)], 1), "env_state": torch.zeros(2, 2)}
    grip = policy.predict_chunk({k: v[:, None] for k, v in obs.items()})[:, 0, 2]
    assert grip.tolist() == [0.0, 1.0]


def test_train_without_config_uses_the_default_recipe(tmp_path, capsys):
    gripper_store(tmp_path / "g.zarr", 10.0, seconds=8.0)
    run = tmp_path / "run"
    train_main(["--store", str(tmp_path / "g.zarr"), "--policy", "diffusion", "--out", str(run),
                "--steps", "2", "--val-fraction", "0", "--wandb", "disabled"])  # fmt: skip
    out = capsys.readouterr().out
    assert "default diffusion recipe" in out and "10 Hz" in out
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["diffusion"]["horizon"] == 8 and saved["diffusion"]["binary_actions"] == [2]
    assert saved["fps"] == 10.0 and saved["steps"] == 2  # flags apply on top of the recipe
    # A config tuned at 50 Hz on this 10 Hz store: refused, naming the fix.
    cfg = TrainConfig(
        store=str(tmp_path / "g.zarr"), out=str(tmp_path / "r2"), fps=50, steps=1, wandb="disabled"
    )
    with pytest.raises(ConfigError, match="--rescale"):
        train(cfg)


def test_named_inputs_steer_the_recipe(tmp_path):
    """A simulated store holds object state and a camera; naming the camera (as a real arm would
    train) gives the camera settings, and a name the store lacks is refused with the choices."""
    from imitation.train import _store_and_policy

    features = {
        **FEATURES,
        "images/corner": {"shape": [40, 40, 3], "dtype": "uint8", "kind": "image", "codec": {"name": "zstd"}},
    }
    path = tmp_path / "cam.zarr"
    rng = np.random.default_rng(0)
    with EpisodeWriter(path, features=features, fps=20, robot={"name": "toy"}) as w:
        for _ in range(2):
            w.start_episode(task="toy")
            for t in range(10):
                w.add_frame({"state": np.zeros(2, np.float32), "env_state": np.zeros(2, np.float32),
                             "action": np.zeros(3, np.float32), "timestamp": t / 20,
                             "images/corner": rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)})  # fmt: skip
            w.save_episode(outcome="success")
    plain = recipe(str(path), "act")["act"]
    assert plain["obs_keys"] == ["state", "env_state"] and "crop_shape" not in plain
    argv = [
        "--store",
        str(path),
        "--policy",
        "act",
        "--act.obs-keys",
        "state",
        "images/corner",
        "--steps",
        "3",
    ]
    store, policy, keys = _store_and_policy(argv)
    assert keys == ("state", "images/corner")
    cam = recipe(store, policy, keys)
    assert cam["act"]["obs_keys"] == ["state", "images/corner"] and cam["act"]["crop_shape"] == [32, 32]
    assert cam["steps"] == 8_000  # the camera schedule
    dp = recipe(str(path), "diffusion", ("state", "images/corner"))["diffusion"]
    assert dp["crop_shape"] == [32, 32] and dp["shared_encoder"] is True
    # Cameras: a 0.40 s horizon (8 ticks at 20 Hz); state alone: 0.64 s (16 ticks). Two observations.
    assert (dp["horizon"], dp["n_action_steps"], dp["n_obs_steps"]) == (8, 4, 2)
    plain_dp = recipe(str(path), "diffusion")["diffusion"]
    assert (plain_dp["horizon"], plain_dp["n_action_steps"], plain_dp["n_obs_steps"]) == (16, 8, 2)
    with pytest.raises(
        ConfigError,
        match=r"'images/top' is not an input .* choose from \['env_state', 'images/corner', 'state'\]",
    ):
        recipe(str(path), "act", ("state", "images/top"))
    # The parsed config takes the names too (the recipe only decides the rest).
    cfg = from_dict(TrainConfig, cam, where="recipe")
    assert cfg.act.obs_keys == ("state", "images/corner")


@pytest.mark.parametrize("kind", ["ee_delta", "joints", None])
def test_a_camera_store_gives_the_arm_state_unless_actions_are_steps(tmp_path, kind, caplog):
    """A store with cameras and no object state (a real arm's): with end-effector steps for actions
    the recipe reads the cameras alone (the arm's path would give the target away); with joint
    targets, or no declared kind, the state too. Naming the state anyway is honoured, with a warning
    for step actions."""
    image = {"shape": [40, 40, 3], "dtype": "uint8", "kind": "image", "codec": {"name": "zstd"}}
    features = {"state": FEATURES["state"], "action": FEATURES["action"]}
    features |= {f"images/{c}": image for c in ("wrist", "corner")}
    path = tmp_path / "arm.zarr"
    robot = {"name": "toy", **({"action_kind": kind} if kind else {})}
    rng = np.random.default_rng(0)
    with EpisodeWriter(path, features=features, fps=20, robot=robot) as w:
        w.start_episode(task="toy")
        for t in range(10):
            w.add_frame({"state": np.zeros(2, np.float32), "action": np.zeros(3, np.float32), "timestamp": t / 20,
                         **{f"images/{c}": rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
                            for c in ("wrist", "corner")}})  # fmt: skip
        w.save_episode(outcome="success")
    cams = ["images/corner", "images/wrist"]
    want = cams if kind == "ee_delta" else ["state", *cams]
    for policy in ("act", "diffusion"):
        section = recipe(str(path), policy)[policy]
        assert section["obs_keys"] == want and section["crop_shape"] == [32, 32]
    caplog.clear()
    named = recipe(str(path), "act", ("state", "images/corner"))["act"]
    assert named["obs_keys"] == ["state", "images/corner"]
    warned = [r for r in caplog.records if "copy the arm's own path" in r.getMessage()]
    assert bool(warned) == (kind == "ee_delta")
    if warned:
        assert "--act.obs-keys images/corner" in warned[0].getMessage()
