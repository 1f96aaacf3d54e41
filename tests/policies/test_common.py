"""Normalisation, temporal ensembling, observation history, action queues, EMA, draw seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imitation.policies.common import (
    EMA,
    ActionQueue,
    Draws,
    Normalizer,
    ObsHistory,
    TemporalEnsembler,
    draw_seed,
    draw_seed_tensor,
    sine_embedding_2d,
    sine_table_1d,
)

STATS = {
    "x": {"mean": [1.0, 5.0, 0.0], "std": [2.0, 0.0, 0.001], "min": [-1.0, 5.0, -4.0], "max": [3.0, 5.0, 0.0]}
}


def test_mean_std_normalisation_and_back():
    n = Normalizer({"x": 3}, "mean_std")
    n.set_stats(STATS)
    x = torch.tensor([[3.0, 5.0, 0.02]])
    y = n.normalize("x", x)
    # (3-1)/2 = 1; a constant dimension -> 0; std floored at 0.01: 0.02/0.01 = 2
    torch.testing.assert_close(y, torch.tensor([[1.0, 0.0, 2.0]]))
    torch.testing.assert_close(n.unnormalize("x", y), x)


def test_min_max_normalisation_maps_onto_minus_one_one_and_back():
    n = Normalizer({"x": 3}, "min_max")
    n.set_stats(STATS)
    x = torch.tensor([[-1.0, 5.0, -4.0], [3.0, 5.0, 0.0], [1.0, 5.0, -2.0]])
    y = n.normalize("x", x)
    torch.testing.assert_close(y, torch.tensor([[-1.0, 0.0, -1.0], [1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    torch.testing.assert_close(n.unnormalize("x", y), x)  # the constant dimension comes back as 5


def test_temporal_ensembling_matches_hand_computed_weights():
    k = 0.5
    ens = TemporalEnsembler(chunk=3, coeff=k)
    c1 = torch.tensor([[[1.0], [2.0], [3.0]]])  # predicted at t=0 for t=0,1,2
    c2 = torch.tensor([[[10.0], [20.0], [30.0]]])  # at t=1 for t=1,2,3
    c3 = torch.tensor([[[100.0], [200.0], [300.0]]])  # at t=2 for t=2,3,4
    c4 = torch.tensor([[[1000.0], [2000.0], [3000.0]]])  # at t=3 for t=3,4,5
    w0, w1, w2 = 1.0, math.exp(-k), math.exp(-2 * k)  # i = 0 is the oldest prediction
    assert ens.update(c1).item() == pytest.approx(1.0)
    assert ens.update(c2).item() == pytest.approx((2 * w0 + 10 * w1) / (w0 + w1))
    assert ens.update(c3).item() == pytest.approx((3 * w0 + 20 * w1 + 100 * w2) / (w0 + w1 + w2))
    # t=3: c1 no longer covers it; c2 is now the oldest
    assert ens.update(c4).item() == pytest.approx((30 * w0 + 200 * w1 + 1000 * w2) / (w0 + w1 + w2))


def test_temporal_ensembling_resets_one_environment_only():
    ens = TemporalEnsembler(chunk=2, coeff=0.0)
    ens.update(torch.tensor([[[1.0], [2.0]], [[1.0], [2.0]]]))
    ens.reset(torch.tensor([False, True]))
    out = ens.update(torch.tensor([[[5.0], [6.0]], [[5.0], [6.0]]]))
    torch.testing.assert_close(out, torch.tensor([[3.5], [5.0]]))  # env 0 averages 2 and 5; env 1 starts over


def test_obs_history_repeats_the_first_observation_and_restarts_per_env():
    h = ObsHistory(3)
    w = h.push({"s": torch.tensor([[1.0], [10.0]])})
    torch.testing.assert_close(w["s"][:, :, 0], torch.tensor([[1.0, 1.0, 1.0], [10.0, 10.0, 10.0]]))
    w = h.push({"s": torch.tensor([[2.0], [20.0]])})
    torch.testing.assert_close(w["s"][:, :, 0], torch.tensor([[1.0, 1.0, 2.0], [10.0, 10.0, 20.0]]))
    h.reset(torch.tensor([True, False]))
    w = h.push({"s": torch.tensor([[7.0], [30.0]])})
    torch.testing.assert_close(w["s"][:, :, 0], torch.tensor([[7.0, 7.0, 7.0], [10.0, 20.0, 30.0]]))


def test_action_queue_refills_only_empty_environments():
    q = ActionQueue(2)
    need = q.need(2, torch.device("cpu"))
    assert need.tolist() == [True, True]
    q.fill(torch.tensor([0, 1]), torch.tensor([[[1.0], [2.0], [3.0]], [[10.0], [20.0], [30.0]]]))
    assert q.pop()[:, 0].tolist() == [1.0, 10.0]
    q.reset(torch.tensor([True, False]))
    assert q.need(2, torch.device("cpu")).tolist() == [True, False]
    q.fill(torch.tensor([0]), torch.tensor([[[5.0], [6.0]]]))
    assert q.pop()[:, 0].tolist() == [5.0, 20.0]
    assert q.need(2, torch.device("cpu")).tolist() == [False, True]


def test_ema_decay_schedule_and_average():
    model = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(model, power=0.75, max_decay=0.9999)
    decays = []
    for value in (1.0, 2.0, 3.0):
        model.weight.data.fill_(value)
        decays.append(ema.decay())
        ema.update(model)
    assert decays[:2] == [0.0, 0.0]
    assert decays[2] == pytest.approx(1 - 2**-0.75)
    assert ema.model.weight.item() == pytest.approx(decays[2] * 2.0 + (1 - decays[2]) * 3.0)


def test_draw_seeds_differ_by_seed_step_and_position():
    seeds = {draw_seed(s, t, p) for s in range(3) for t in range(3) for p in range(3)}
    assert len(seeds) == 27 and all(0 <= s < 2**63 for s in seeds)


def test_draw_seed_tensor_is_draw_seed():
    positions = torch.arange(0, 300, 7)
    for seed, step in ((0, 0), (3, 12_345), (2**40 + 5, 10**9)):
        got = draw_seed_tensor(seed, step, positions).tolist()
        assert got == [draw_seed(seed, step, int(p)) for p in positions]


def test_draws_are_functions_of_each_rows_seed():
    seeds = draw_seed_tensor(0, 5, torch.arange(64))
    d = Draws(seeds)
    u, n, k = d.uniform(3, 5), d.normal(Draws.NOISE, (4, 3)), d.randint(Draws.TIMESTEP, 100)
    assert u.shape == (64, 5) and n.shape == (64, 4, 3) and k.shape == (64,)
    # A row's draws do not depend on the other rows: the same seeds shuffled give shuffled draws.
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    e = Draws(seeds[perm])
    assert torch.equal(e.uniform(3, 5), u[perm]) and torch.equal(e.normal(Draws.NOISE, (4, 3)), n[perm])
    assert torch.equal(e.randint(Draws.TIMESTEP, 100), k[perm])
    # Different salts are different streams; the same salt repeats.
    assert not torch.equal(d.uniform(3, 5), d.uniform(5, 5)) and torch.equal(d.uniform(3, 5), u)


def test_draws_have_their_distributions():
    d = Draws(draw_seed_tensor(1, 0, torch.arange(4096)))
    u = d.uniform(9, 8)
    assert u.min() >= 0 and u.max() < 1 and abs(float(u.mean()) - 0.5) < 0.01
    z = d.normal(Draws.NOISE, (16,))
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02 and torch.isfinite(z).all()
    k = d.randint(Draws.TIMESTEP, 10)
    assert k.min() == 0 and k.max() == 9
    counts = torch.bincount(k, minlength=10).float()
    assert (counts / counts.mean() - 1).abs().max() < 0.15
    off = d.crop_offsets(Draws.CROP, (96, 96), (88, 88))
    assert off.shape == (4096, 2) and off.min() == 0 and off.max() == 8
    assert not torch.equal(off[:, 0], off[:, 1])


@pytest.mark.gpu
def test_draws_are_the_same_bits_on_a_gpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    seeds = draw_seed_tensor(7, 3, torch.arange(256))
    on_gpu = draw_seed_tensor(7, 3, torch.arange(256, device="cuda"))
    assert torch.equal(on_gpu.cpu(), seeds)
    cpu, gpu = Draws(seeds), Draws(on_gpu)
    assert torch.equal(gpu.randint(Draws.TIMESTEP, 100).cpu(), cpu.randint(Draws.TIMESTEP, 100))
    assert torch.equal(
        gpu.crop_offsets(16, (96, 96), (84, 84)).cpu(), cpu.crop_offsets(16, (96, 96), (84, 84))
    )
    torch.testing.assert_close(gpu.normal(Draws.NOISE, (16, 7)).cpu(), cpu.normal(Draws.NOISE, (16, 7)))


def test_sine_embeddings():
    t = sine_table_1d(4, 6)
    assert t[0, 0] == 0 and t[0, 1] == 1 and t[1, 0] == pytest.approx(math.sin(1.0))
    e = sine_embedding_2d(3, 5, 8)
    assert e.shape == (8, 3, 5) and np.isfinite(e.numpy()).all()
    assert not torch.allclose(e[:, 0, 0], e[:, 2, 4])
