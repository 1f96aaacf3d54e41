"""Test-wide settings (headless MuJoCo rendering, no wandb network access) and a small synthetic
demo store that the policy and training tests learn from.

The store: six episodes of 40 frames; a 4-D state that drifts smoothly, a 3-D env_state, a 32×32
camera whose picture moves with the state, and actions that are a smooth function of the state,
so a policy has something real to fit.
"""

import os

import numpy as np
import pytest

# Must be set before mujoco is imported anywhere; EGL renders without a display.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("WANDB_MODE", "disabled")

from imitation.data.store import EpisodeWriter  # noqa: E402

FEATURES = {
    "state": {"shape": [4], "dtype": "float32", "kind": "state"},
    "env_state": {"shape": [3], "dtype": "float32", "kind": "state"},
    "action": {"shape": [4], "dtype": "float32", "kind": "action"},
    "images/top": {"shape": [32, 32, 3], "dtype": "uint8", "kind": "image", "codec": {"name": "zstd"}},
}


def write_store(path, episodes: int = 6, length: int = 40, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    with EpisodeWriter(
        path, features=FEATURES, fps=50, robot={"name": "synthetic", "joint_names": ["a", "b", "c", "d"]}
    ) as w:
        for _ in range(episodes):
            w.start_episode(task="synthetic")
            phase = rng.uniform(0, 2 * np.pi, 4)
            target = rng.uniform(-1, 1, 3)
            for t in range(length):
                state = np.sin(phase + 0.1 * t).astype(np.float32)
                cx, cy = 16 + 10 * state[0], 16 + 10 * state[1]
                img = np.zeros((32, 32, 3), np.uint8)
                img[..., 0] = (255 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 20)).astype(np.uint8)
                img[..., 2] = 80
                w.add_frame(
                    {
                        "state": state,
                        "env_state": target.astype(np.float32),
                        "action": np.sin(phase + 0.1 * (t + 1)).astype(np.float32) * 2 + 1,
                        "images/top": img,
                        "timestamp": t / 50,
                    }
                )
            w.save_episode(outcome="success")


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthetic") / "demo.zarr"
    write_store(path)
    return path


@pytest.fixture(scope="session")
def pick_place_checkpoint(tmp_path_factory):
    """A tiny state-based ACT checkpoint trained briefly on two scripted PickPlace demos (it acts
    like a policy, shapes and meta included; it is not meant to succeed)."""
    from imitation.config import from_dict
    from imitation.record import RecordConfig, record_scripted
    from imitation.train import TrainConfig, train

    root = tmp_path_factory.mktemp("pp_ckpt")
    store = root / "demos.zarr"
    record_scripted(
        RecordConfig(env="imitation/PickPlace-v0", episodes=2, out=store, obs_mode="state"), progress=False
    )
    act = {
        "obs_keys": ["state", "env_state"],
        "chunk_size": 10,
        "n_action_steps": 10,
        "temporal_ensemble_coeff": 0.01,
        "dim_model": 32,
        "n_heads": 2,
        "dim_feedforward": 64,
        "n_encoder_layers": 1,
        "n_decoder_layers": 1,
        "n_vae_encoder_layers": 1,
        "latent_dim": 8,
    }
    cfg = {"store": str(store), "out": str(root / "run"), "policy": "act", "act": act, "steps": 20}
    cfg |= {"batch_size": 16, "val_fraction": 0.0, "log_every": 10, "save_every": 20, "wandb": "disabled"}
    cfg["augment_yaw"] = 0.3  # as the shipped PickPlace config trains
    return train(from_dict(TrainConfig, cfg))
