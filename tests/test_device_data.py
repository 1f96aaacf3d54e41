"""The device data path: windows gathered on the training device equal the DataLoader's, training
on either path gives the same weights, and a resumed run stays exact."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from imitation.data.dataset import WindowDataset, WindowSpec
from imitation.data.device import DeviceWindows, choose_data_path
from imitation.errors import ConfigError
from imitation.train import Dist, GlobalBatches, train
from tests.test_train import config, weights

SPECS = {
    "act": WindowSpec.act(8, ["state", "images/top"]),
    "diffusion": WindowSpec.diffusion(2, 8, ["state", "env_state", "images/top"]),
    "skip": WindowSpec(
        obs_offsets=(-2, 0), action_offsets=(-1, 0, 1, 2), frame_skip=3, obs_keys=("images/top",)
    ),
}


def assert_same_batch(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert torch.equal(a[k].cpu(), b[k].cpu()), k


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("cache", ["ram", "none"])
def test_device_batches_equal_the_readers(synthetic_store, name, cache):
    ds = WindowDataset(synthetic_store, SPECS[name], episodes=[0, 2, 3, 5], cache=cache)
    windows = DeviceWindows(ds, "cpu")
    rng = np.random.default_rng(0)
    for size in (1, 7, 32):
        idx = rng.integers(0, len(ds), size)
        assert_same_batch(windows.get_batch(torch.from_numpy(idx)), ds.get_batch(idx))
    edges = np.array([0, len(ds) - 1, 39, 40, 41])  # the first, last and episode-boundary samples
    assert_same_batch(windows.get_batch(torch.from_numpy(edges)), ds.get_batch(edges))
    assert windows.nbytes == sum(a.nbytes for a in ds._lowdim.values()) + 160 * 32 * 32 * 3
    assert windows.images["images/top"].shape == (160, 32, 32, 3)


def test_global_batches_on_the_device_are_the_loaders(synthetic_store):
    for rank in (0, 1):
        a = GlobalBatches(100, 16, seed=3, dist=Dist(rank=rank, world=2))
        a.epoch, a.position = 1, 32  # a resumed run
        lists, tensors = iter(a), a.on_device(torch.device("cpu"))
        for _ in range(15):  # past the end of an epoch
            assert next(tensors).tolist() == next(lists)


@pytest.mark.parametrize("policy", ["act", "diffusion"])
def test_training_on_either_path_gives_the_same_weights(synthetic_store, tmp_path, policy):
    kw = {"steps": 6, "save_every": 3, "deterministic": True}
    loader = train(config(synthetic_store, tmp_path / "loader", policy, data_path="loader", **kw))
    device = train(config(synthetic_store, tmp_path / "device", policy, data_path="device", **kw))
    a, b = weights(loader), weights(device)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k

    # Interrupted after step 5 (checkpoint at 3) and resumed on the device path: the same weights.
    def crash(policy_, step):
        raise KeyboardInterrupt

    resumed = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        train(config(synthetic_store, resumed, policy, data_path="device", eval_every=5, **kw), on_eval=crash)
    train(config(synthetic_store, resumed, policy, data_path="device", resume=str(resumed), **kw))
    c = weights(resumed)
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_the_choice_is_logged_and_bad_modes_refused(synthetic_store, caplog):
    ds = WindowDataset(synthetic_store, SPECS["act"], cache="ram")
    with caplog.at_level(logging.INFO, logger="imitation.data.device"):
        assert choose_data_path("auto", ds, torch.device("cpu")) == "loader"
        assert choose_data_path("device", ds, torch.device("cpu")) == "device"
        assert choose_data_path("loader", ds, torch.device("cpu")) == "loader"
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "data path: DataLoader",
        "data path: device",
        "data path: DataLoader",
    ]
    with pytest.raises(ConfigError, match="--data-path 'gpu' is not one of"):
        choose_data_path("gpu", ds, torch.device("cpu"))


def test_a_store_too_big_for_the_gpu_stays_on_the_loader(synthetic_store, monkeypatch, caplog):
    """The decision on a GPU, with its free memory faked: the decoded store must fit in half."""
    ds = WindowDataset(synthetic_store, SPECS["act"], cache="ram")
    need = ds.cache_nbytes + sum(a.nbytes for a in ds._lowdim.values())
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * need + 2, 10 * need))
    assert choose_data_path("auto", ds, cuda) == "device"
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2 * need - 2, 10 * need))
    with caplog.at_level(logging.INFO, logger="imitation.data.device"):
        assert choose_data_path("auto", ds, cuda) == "loader"
    assert "does not fit in half of cuda's" in caplog.records[-1].getMessage()
    with pytest.raises(ConfigError, match="--data-path device: .* use --data-path loader"):
        choose_data_path("device", ds, cuda)


@pytest.mark.gpu
def test_gpu_batches_equal_the_readers(synthetic_store):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    ds = WindowDataset(synthetic_store, SPECS["diffusion"], cache="ram")
    assert choose_data_path("auto", ds, torch.device("cuda")) == "device"
    windows = DeviceWindows(ds, "cuda")
    idx = np.random.default_rng(1).integers(0, len(ds), 64)
    batch = windows.get_batch(torch.from_numpy(idx).cuda())
    assert all(v.is_cuda for v in batch.values())
    assert_same_batch(batch, ds.get_batch(idx))
