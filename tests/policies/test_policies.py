"""Both policies on a small synthetic store: shapes, losses, learning, rollout bookkeeping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imitation.data.dataset import WindowDataset, WindowSpec
from imitation.data.store import DemoStore
from imitation.errors import ConfigError
from imitation.policies import ACTConfig, ACTPolicy, DiffusionConfig, DiffusionPolicy
from imitation.policies.act import kl_divergence
from imitation.policies.common import IOSpec, draw_seed

STATE_KEYS = ("state", "env_state")
IMAGE_KEYS = ("state", "images/top")


def small_config(name: str, obs_keys=STATE_KEYS, **overrides):
    if name == "act":
        base = dict(
            obs_keys=obs_keys,
            chunk_size=8,
            n_action_steps=4,
            dim_model=32,
            n_heads=2,
            dim_feedforward=64,
            n_encoder_layers=1,
            n_vae_encoder_layers=1,
            dropout=0.0,
            vision_width=16,
            lr=1e-3,
        )
        return ACTConfig(**{**base, **overrides})
    base = dict(
        obs_keys=obs_keys,
        down_dims=(16, 32),
        diffusion_step_embed_dim=16,
        horizon=8,
        n_action_steps=4,
        vision_width=16,
        crop_shape=(28, 28),
        scheduler="ddim",
        num_inference_steps=5,
        lr=1e-3,
    )
    return DiffusionConfig(**{**base, **overrides})


def build(store_path, name: str, obs_keys=STATE_KEYS, **overrides):
    torch.manual_seed(0)
    store = DemoStore.open(store_path)
    cfg = small_config(name, obs_keys, **overrides)
    cls = ACTPolicy if name == "act" else DiffusionPolicy
    policy = cls(cfg, IOSpec.from_features(store.features, cfg.obs_keys))
    policy.normalizer.set_stats(store.stats())
    spec = WindowSpec(obs_offsets=cfg.obs_offsets, action_offsets=cfg.action_offsets, obs_keys=cfg.obs_keys)
    return policy, WindowDataset(store, spec, cache="ram")


def a_batch(ds, n=8, step=0):
    batch = ds.get_batch(np.arange(0, 8 * n, 8)[:n])
    batch["draw_seed"] = torch.tensor([draw_seed(0, step, i) for i in range(n)])
    return batch


@pytest.mark.parametrize("name", ["act", "diffusion"])
@pytest.mark.parametrize("obs_keys", [STATE_KEYS, IMAGE_KEYS], ids=["state", "images"])
def test_shapes(synthetic_store, name, obs_keys):
    policy, ds = build(synthetic_store, name, obs_keys)
    batch = a_batch(ds, 4)
    loss, metrics = policy(batch)
    assert loss.dim() == 0 and torch.isfinite(loss) and metrics
    policy.eval()
    obs = {k: batch[k] for k in obs_keys}
    horizon = policy.cfg.chunk_size if name == "act" else policy.cfg.horizon
    assert policy.predict_chunk(obs).shape == (4, horizon, 4)
    policy.reset()
    assert policy.select_action({k: v[:, -1] for k, v in obs.items()}).shape == (4, 4)


def test_kl_divergence_by_hand():
    mu = torch.tensor([[1.0, 0.0]])
    log_sigma2 = torch.tensor([[0.0, math.log(4.0)]])
    # 0.5 * sum(mu² + sigma² - 1 - log sigma²) = 0.5 * (1) + 0.5 * (4 - 1 - log 4)
    assert kl_divergence(mu, log_sigma2).item() == pytest.approx(0.5 + 0.5 * (3 - math.log(4.0)))


def test_act_loss_is_masked_l1_plus_weighted_kl(synthetic_store):
    policy, ds = build(synthetic_store, "act", use_vae=False)
    batch = a_batch(ds, 8)
    batch["action_is_pad"][0, 4:] = True  # pretend the first sample's chunk ran past its episode
    loss, metrics = policy(batch)
    lowdim = {k: policy.normalizer.normalize(k, batch[k][:, -1]) for k in STATE_KEYS}
    pred = policy.model(lowdim, {}, torch.zeros(8, policy.cfg.latent_dim))
    target = policy.normalizer.normalize("action", batch["action"])
    err = (pred - target).abs()
    err[0, 4:] = 0
    assert loss.item() == pytest.approx(err.mean().item(), rel=1e-5)
    assert metrics["kld"] == 0.0


@pytest.mark.parametrize("name", ["act", "diffusion"])
def test_each_policy_overfits_one_batch(synthetic_store, name):
    policy, ds = build(synthetic_store, name, **({"kl_weight": 1.0} if name == "act" else {}))
    batch = a_batch(ds, 8)
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-3 if name == "act" else 3e-3)
    losses = []
    for _ in range(300):  # the same batch, and the same noise draws, every step
        loss, _ = policy(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:10]), np.mean(losses[-20:])
    assert last <= 0.1 * first, (first, last)


@pytest.mark.parametrize("prediction", ["epsilon", "sample"])
def test_diffusion_sampling_recovers_the_clean_actions_with_an_oracle(synthetic_store, prediction):
    """Noise -> denoise round trip through the schedulers: with a UNet that returns the true noise
    of a fixed clean window x0 (epsilon) or x0 itself (sample), DDIM and DDPM sampling end at x0."""
    for scheduler, steps in (("ddim", 10), ("ddpm", 100)):
        policy, ds = build(
            synthetic_store,
            "diffusion",
            scheduler=scheduler,
            num_inference_steps=steps,
            prediction_type=prediction,
        )
        policy.eval()
        x0 = torch.linspace(-0.9, 0.9, 8 * 4).view(1, 8, 4)
        alphas = policy.sampler.alphas_cumprod

        def oracle(x, t, cond, x0=x0, alphas=alphas):
            if prediction == "sample":
                return x0.expand_as(x)
            a = alphas[t].view(-1, 1, 1)
            return (x - a.sqrt() * x0) / (1 - a).sqrt()

        policy.unet.forward = oracle
        obs = {k: v[:1] for k, v in a_batch(ds, 1).items() if k in STATE_KEYS}
        out = policy.normalizer.normalize("action", policy.predict_chunk(obs))
        torch.testing.assert_close(out, x0, atol=1e-4, rtol=0)


def test_diffusion_loss_targets_the_noise_or_the_clean_actions(synthetic_store):
    for prediction in ("epsilon", "sample"):
        policy, ds = build(synthetic_store, "diffusion", prediction_type=prediction)
        batch = a_batch(ds, 4)
        seen = {}
        forward = policy.unet.forward

        def spy(x, t, cond, seen=seen, forward=forward):
            seen["noisy"], seen["t"] = x, t
            seen["pred"] = forward(x, t, cond)
            return seen["pred"]

        policy.unet.forward = spy
        loss, _ = policy(batch)
        x0 = policy.normalizer.normalize("action", batch["action"].float())
        a = policy.train_scheduler.alphas_cumprod[seen["t"]].view(-1, 1, 1)
        noise = (seen["noisy"] - a.sqrt() * x0) / (1 - a).sqrt()
        target = x0 if prediction == "sample" else noise
        assert loss.item() == pytest.approx(F.mse_loss(seen["pred"], target).item(), rel=1e-4)


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("act", {"temporal_ensemble_coeff": 0.01}),
        ("act", {"temporal_ensemble_coeff": None}),
        ("diffusion", {}),
    ],
    ids=["act-ensembled", "act-chunks", "diffusion"],
)
def test_batched_rollout_equals_serial(synthetic_store, name, overrides):
    policy, ds = build(synthetic_store, name, **overrides)
    policy.eval()
    steps = 10
    obs = [ds.get_batch(np.arange(3) * 40 + t) for t in range(steps)]  # 3 episodes, 10 steps each
    seeds = [11, 12, 13]
    # Batched: env 1 finishes at t = 5 and starts a new episode (seed 99) from t = 5.
    policy.reset(seeds=seeds)
    batched = []
    for t in range(steps):
        if t == 5:
            policy.reset(torch.tensor([False, True, False]), seeds=[0, 99, 0])
        batched.append(policy.select_action({k: obs[t][k][:, -1] for k in STATE_KEYS}))
    batched = torch.stack(batched, 1)  # (3, T, A)
    # Serial: each env alone.
    for env in range(3):
        for start, end, seed in ((0, steps, seeds[env]),) if env != 1 else ((0, 5, 12), (5, steps, 99)):
            policy.reset(seeds=[seed])
            for t in range(start, end):
                a = policy.select_action({k: obs[t][k][env : env + 1, -1] for k in STATE_KEYS})
                torch.testing.assert_close(a[0], batched[env, t], atol=1e-5, rtol=1e-5)


def test_a_store_without_the_policys_features_is_refused(synthetic_store):
    store = DemoStore.open(synthetic_store)
    with pytest.raises(ConfigError, match="images/wrist"):
        IOSpec.from_features(store.features, ("state", "images/wrist"))


def test_configs_check_themselves():
    with pytest.raises(ConfigError, match="divisible"):
        ACTConfig(dim_model=30, n_heads=4)
    with pytest.raises(ConfigError, match="horizon"):
        DiffusionConfig(horizon=6, n_obs_steps=2, n_action_steps=8)
    with pytest.raises(ConfigError, match="scheduler"):
        DiffusionConfig(scheduler="euler")


def test_act_attention_matches_torch_multihead_attention():
    from imitation.policies.act import attention

    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(32, 4, dropout=0.0, batch_first=True)
    x, y = torch.randn(3, 7, 32), torch.randn(3, 5, 32)
    pad = torch.zeros(3, 5, dtype=torch.bool)
    pad[1, 3:] = True
    ref = mha(x, y, y, key_padding_mask=pad, need_weights=False)[0]
    torch.testing.assert_close(attention(mha, x, y, y, pad, False), ref)
    mha.dropout = 1e-12  # the training path (explicit softmax), dropping nothing
    torch.testing.assert_close(attention(mha, x, y, y, pad, True), ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(attention(mha, x, x, x, None, False), mha(x, x, x, need_weights=False)[0])


def test_a_shallower_backbone_keeps_a_finer_grid_and_cameras_can_be_told_apart():
    import torch

    from imitation.policies.act import ACTConfig, ACTPolicy
    from imitation.policies.common import IOSpec

    io = IOSpec({"state": 6}, {"images/top": (96, 96, 3), "images/wrist": (96, 96, 3)}, 6)
    cfg = dict(obs_keys=("state", "images/top", "images/wrist"), dim_model=32, n_heads=2, dim_feedforward=64,
               n_encoder_layers=1, vision_width=16, vision_norm="group", crop_shape=(88, 88), chunk_size=4,
               n_action_steps=4, use_vae=False)  # fmt: skip
    images = {k: torch.zeros(2, 3, 96, 96) for k in io.images}
    deep = ACTPolicy(ACTConfig(**cfg), io).model
    tokens, _ = deep._image_tokens(images, None)
    assert tokens.shape == (2, 2 * 3 * 3, 32)  # 88 px every 32 px: 3 x 3 cells per camera
    fine = ACTPolicy(ACTConfig(**cfg, vision_layers=3, camera_embedding=True), io).model
    tokens, pos = fine._image_tokens(images, None)
    assert tokens.shape == (2, 2 * 6 * 6, 32)  # every 16 px: 6 x 6
    assert not torch.allclose(pos[:, :36], pos[:, 36:])  # the same cell of the two cameras differs
    _, same = deep._image_tokens(images, None)
    assert torch.allclose(same[:, :9], same[:, 9:])  # without the embedding it does not


@pytest.mark.parametrize("name", ["act", "diffusion"])
def test_image_augmentation_is_seeded_in_training_and_off_at_evaluation(synthetic_store, name):
    """Random crops come from each sample's draw seed: the same seeds give the same loss, other
    seeds another; in eval mode crops are centred, so the same observation gives the same chunk."""
    overrides = {"crop_shape": (28, 28)} if name == "act" else {}
    policy, ds = build(synthetic_store, name, IMAGE_KEYS, **overrides)
    batch = a_batch(ds, 4)
    again = dict(batch)
    other = {**batch, "draw_seed": batch["draw_seed"] + 1}
    assert torch.equal(policy(batch)[0], policy(again)[0])
    assert not torch.equal(policy(batch)[0], policy(other)[0])
    policy.eval()
    obs = {k: batch[k] for k in IMAGE_KEYS}
    if name == "diffusion":  # the sampling noise is drawn from per-environment generators
        policy.reset(seeds=[1, 2, 3, 4])
        first = policy.predict_chunk(obs)
        policy.reset(seeds=[1, 2, 3, 4])
    else:
        first = policy.predict_chunk(obs)
    assert torch.equal(first, policy.predict_chunk(obs))


def test_cpu_dropout_drops_at_its_rate_and_keeps_the_expectation():
    from imitation.policies.act import dropout

    torch.manual_seed(0)
    x = torch.ones(3, 1001, 7, requires_grad=True)  # an odd size: the last 64-bit draw is partly used
    y = dropout(x, 0.1, True)
    kept = y != 0
    assert y.shape == x.shape and abs(float(kept.float().mean()) - 0.9) < 0.005
    assert torch.allclose(y[kept], torch.tensor(65536 / (65536 - 6554)))  # 1 / (1 - p)
    assert abs(float(y.detach().mean()) - 1.0) < 0.01
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept)  # gradient only through what was kept
    assert torch.equal(dropout(x, 0.1, False), x) and torch.equal(dropout(x, 0.0, True), x)
    assert not torch.equal(dropout(x, 0.5, True), dropout(x, 0.5, True))  # a fresh mask each call
