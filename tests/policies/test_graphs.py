"""Inference in closed form and from CUDA graphs: Diffusion Policy's DDIM loop as tensor arithmetic
equals diffusers' scheduler; graphed predictions equal eager ones (gpu marker)."""

from __future__ import annotations

import pytest
import torch

from imitation.config import from_dict
from imitation.policies import ACTConfig, ACTPolicy, DiffusionConfig, DiffusionPolicy
from imitation.policies.common import IOSpec

IO = IOSpec({"state": 4}, {"images/top": (32, 32, 3)}, 3)
STATS = {
    "state": {"mean": [0.0] * 4, "std": [1.0] * 4, "min": [-1.0] * 4, "max": [1.0] * 4},
    "action": {"mean": [0.5] * 3, "std": [2.0] * 3, "min": [-3.0] * 3, "max": [4.0] * 3},
    "images/top": {"mean": [[[0.5]]] * 3, "std": [[[0.25]]] * 3, "min": [[[0.0]]] * 3, "max": [[[1.0]]] * 3},
}


def dp(**kw) -> DiffusionPolicy:
    torch.manual_seed(0)
    cfg = from_dict(DiffusionConfig, {
        "obs_keys": ["state", "images/top"], "down_dims": [16, 32], "diffusion_step_embed_dim": 16,
        "horizon": 8, "n_action_steps": 4, "vision_width": 16, "crop_shape": [28, 28],
        "scheduler": "ddim", "num_inference_steps": 5, **kw})  # fmt: skip
    policy = DiffusionPolicy(cfg, IO)
    policy.set_stats(STATS)
    return policy.eval()


def obs(b: int, device: str = "cpu") -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {
        "state": torch.randn(b, 2, 4, generator=g).to(device),
        "images/top": torch.randint(0, 256, (b, 2, 32, 32, 3), generator=g, dtype=torch.uint8).to(device),
    }


def diffusers_loop(policy: DiffusionPolicy, o: dict[str, torch.Tensor], noise: torch.Tensor) -> torch.Tensor:
    """The reference: diffusers' DDIMScheduler stepping the same UNet."""
    cond = policy._global_cond(o, None)
    policy.sampler.set_timesteps(policy.cfg.num_inference_steps)
    x = noise
    for t in policy.sampler.timesteps:
        out = policy.unet(x, t.expand(len(x)), cond)
        x = policy.sampler.step(out, t, x).prev_sample
    return policy.binary.snap(policy.normalizer.unnormalize("action", x))


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample"])
@pytest.mark.parametrize("clip_sample", [True, False])
def test_closed_form_ddim_is_diffusers_ddim(prediction_type, clip_sample):
    policy = dp(prediction_type=prediction_type, clip_sample=clip_sample)
    o = obs(3)
    noise = torch.randn(3, 8, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = policy._ddim({**o, "noise": noise})
        ref = diffusers_loop(policy, o, noise)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_graphs_stay_off_on_a_cpu():
    policy = dp()
    policy.use_cuda_graphs()  # asked for, but the tensors are on the CPU: the eager path answers
    policy.env_generators.reset(torch.ones(2, dtype=torch.bool), [5, 6], torch.device("cpu"))
    a = policy.predict_chunk(obs(2))
    assert not policy.graphs.graphs and policy.graphs.failed is None
    policy.env_generators.reset(torch.ones(2, dtype=torch.bool), [5, 6], torch.device("cpu"))
    assert torch.equal(a, policy.predict_chunk(obs(2)))  # seeded noise: the same actions


def act() -> ACTPolicy:
    torch.manual_seed(0)
    cfg = from_dict(ACTConfig, {
        "obs_keys": ["state", "images/top"], "chunk_size": 8, "n_action_steps": 8, "dim_model": 32,
        "n_heads": 2, "dim_feedforward": 64, "n_encoder_layers": 1, "vision_width": 16, "use_vae": False})  # fmt: skip
    policy = ACTPolicy(cfg, IO)
    policy.set_stats(STATS)
    return policy.eval()


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["act", "diffusion"])
def test_graphed_predictions_equal_eager_ones(name):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    policy = (act() if name == "act" else dp()).cuda()
    window = {k: v[:, -1:] for k, v in obs(4, "cuda").items()} if name == "act" else obs(4, "cuda")
    seeds = [11, 12, 13, 14]
    policy.env_generators.reset(torch.ones(4, dtype=torch.bool), seeds, torch.device("cpu"))
    eager = policy.predict_chunk(window)
    policy.use_cuda_graphs()
    for _ in range(2):  # captured on the first call, replayed on the second
        policy.env_generators.reset(torch.ones(4, dtype=torch.bool), seeds, torch.device("cpu"))
        graphed = policy.predict_chunk(window)
        assert policy.graphs.failed is None and len(policy.graphs.graphs) == 1
        torch.testing.assert_close(graphed, eager, rtol=1e-4, atol=1e-4)
    # Another batch size is another graph.
    policy.predict_chunk({k: v[:1] for k, v in window.items()})
    assert len(policy.graphs.graphs) == 2
