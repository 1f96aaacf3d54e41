"""`imitation import-checkpoint --from lerobot`: a LeRobot 0.4 ACT or Diffusion Policy, converted,
predicts what LeRobot's own code predicts from the same inputs and the same noise.

Runs where lerobot is installed (it is not a dependency of this project):
    python -m pytest tests/policies/test_lerobot_import.py      # in an environment with lerobot 0.4.4
"""

from __future__ import annotations

import pytest
import torch

lerobot = pytest.importorskip("lerobot")

from lerobot.configs.types import FeatureType, PolicyFeature  # noqa: E402
from lerobot.policies.factory import make_pre_post_processors  # noqa: E402

from imitation.checkpoint import load_policy  # noqa: E402
from imitation.import_checkpoint import main as import_main  # noqa: E402

H = W = 32


def features(env: bool = True):
    inputs = {
        "observation.state": PolicyFeature(FeatureType.STATE, (4,)),
        "observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, H, W)),
        "observation.images.side": PolicyFeature(FeatureType.VISUAL, (3, H, W)),
    }
    if env:
        inputs["observation.environment_state"] = PolicyFeature(FeatureType.ENV, (3,))
    return inputs, {"action": PolicyFeature(FeatureType.ACTION, (4,))}


def random_stats(g):
    def vec(n, lo=0.0):
        return torch.rand(n, generator=g) + lo

    return {
        "observation.state": {"mean": vec(4), "std": vec(4, 0.5), "min": -vec(4, 1.0), "max": vec(4, 1.0)},
        "observation.environment_state": {
            "mean": vec(3),
            "std": vec(3, 0.5),
            "min": -vec(3, 1.0),
            "max": vec(3, 1.0),
        },
        "observation.images.top": {"mean": vec(3).view(3, 1, 1), "std": vec(3, 0.2).view(3, 1, 1)},
        "observation.images.side": {"mean": vec(3).view(3, 1, 1), "std": vec(3, 0.2).view(3, 1, 1)},
        "action": {"mean": vec(4), "std": vec(4, 0.5), "min": -vec(4, 1.0), "max": vec(4, 1.0)},
    }


def raw_obs(g, batch: int, steps: int):
    """Pixels are whole numbers /255, so LeRobot's float images and our uint8 ones are the same."""
    pixels = {cam: torch.randint(0, 256, (batch, steps, 3, H, W), generator=g) for cam in ("top", "side")}
    return {
        "observation.state": torch.randn(batch, steps, 4, generator=g),
        "observation.environment_state": torch.randn(batch, steps, 3, generator=g),
        **{f"observation.images.{c}": p.float() / 255 for c, p in pixels.items()},
    }, {
        "state": None,
        **{f"images/{c}": p.permute(0, 1, 3, 4, 2).to(torch.uint8) for c, p in pixels.items()},
    }


def save(policy, cfg, stats, path):
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    policy.save_pretrained(path)
    pre.save_pretrained(path)
    post.save_pretrained(path)
    return pre, post


def convert(src, out):
    assert import_main(["--from", "lerobot", str(src), "--out", str(out)]) == 0
    return load_policy(out)


def perturb(policy, g):
    """Random weights everywhere, frozen-BN statistics included, so nothing is trivially zero."""
    with torch.no_grad():
        for t in list(policy.parameters()) + [b for n, b in policy.named_buffers() if "running" in n]:
            t.copy_(torch.randn(t.shape, generator=g) * 0.1)
        for n, b in policy.named_buffers():
            if n.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)


def test_act_matches_lerobot(tmp_path):
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy

    g = torch.Generator().manual_seed(0)
    inputs, outputs = features()
    cfg = ACTConfig(
        input_features=inputs,
        output_features=outputs,
        chunk_size=10,
        n_action_steps=10,
        dim_model=32,
        n_heads=4,
        dim_feedforward=64,
        n_encoder_layers=2,
        n_decoder_layers=2,
        n_vae_encoder_layers=2,
        pretrained_backbone_weights=None,
        device="cpu",
    )
    theirs = ACTPolicy(cfg)
    perturb(theirs, g)
    theirs.eval()
    pre, post = save(theirs, cfg, random_stats(g), tmp_path / "act")
    ours = convert(tmp_path / "act", tmp_path / "ours")

    lr_obs, our_imgs = raw_obs(g, 3, 1)
    batch = pre({k: v[:, 0] for k, v in lr_obs.items()})
    expected = post(theirs.predict_action_chunk(batch))
    obs = {"state": lr_obs["observation.state"], "env_state": lr_obs["observation.environment_state"]}
    obs |= {k: v for k, v in our_imgs.items() if v is not None}
    got = ours.predict_chunk(obs)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("separate", [False, True], ids=["shared-encoder", "encoder-per-camera"])
def test_diffusion_matches_lerobot(tmp_path, separate):
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

    g = torch.Generator().manual_seed(1)
    inputs, outputs = features()
    cfg = DiffusionConfig(
        input_features=inputs,
        output_features=outputs,
        n_obs_steps=2,
        horizon=8,
        n_action_steps=4,
        down_dims=(16, 32),
        diffusion_step_embed_dim=16,
        crop_shape=(28, 28),
        spatial_softmax_num_keypoints=8,
        use_separate_rgb_encoder_per_camera=separate,
        noise_scheduler_type="DDIM",
        num_inference_steps=5,
        pretrained_backbone_weights=None,
        device="cpu",
    )
    theirs = DiffusionPolicy(cfg)
    perturb(theirs, g)
    theirs.eval()
    pre, post = save(theirs, cfg, random_stats(g), tmp_path / "dp")
    ours = convert(tmp_path / "dp", tmp_path / "ours")

    lr_obs, our_imgs = raw_obs(g, 2, 2)
    batch = pre(dict(lr_obs))
    batch["observation.images"] = torch.stack([batch[k] for k in cfg.image_features], dim=-4)
    noise_seeds = [5, 6]
    noise = torch.cat([torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(s)) for s in noise_seeds])
    expected = post(theirs.diffusion.generate_actions(batch, noise=noise))  # (B, n_action_steps, A)
    obs = {"state": lr_obs["observation.state"], "env_state": lr_obs["observation.environment_state"]}
    obs |= {k: v for k, v in our_imgs.items() if v is not None}
    gens = [torch.Generator().manual_seed(s) for s in noise_seeds]
    got = ours.predict_chunk(obs, gens)[:, 1:5]  # from index n_obs_steps - 1, n_action_steps long
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
