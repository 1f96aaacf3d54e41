"""Training windows gathered on the training device: the store's frames uploaded once.

A ``WindowDataset`` builds each batch on the host (NumPy fancy indexing over its RAM cache) and
the trainer copies it to the GPU: per step, a host thread's work, a host-to-device copy of every
image window, and a DataLoader to hide them behind. When the decoded store fits in the device's
memory (a 50-demo store with two 96x96 cameras is about 0.5 GB), ``DeviceWindows`` uploads the
low-dimensional features and the decoded camera frames once, as float32 and uint8 tensors, and
gathers each batch's windows there by index: the same clamping at episode edges and the same pad
masks as ``WindowDataset._window_rows``, in tensor arithmetic, so a batch is a handful of gather
kernels and never touches the host. Batches equal ``WindowDataset.get_batch``'s for the same
indices, on a CPU as on a GPU (tests compare them).

``choose_data_path`` decides between the two: ``device`` when the training device is a GPU and
the decoded store fits in half of its free memory, the DataLoader otherwise; the choice and its
reason are logged. A store too big for the GPU stays on the DataLoader path (decoding JPEG on the
GPU would need nvJPEG through torchvision, which this project does not depend on).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from imitation.data.dataset import WindowDataset
from imitation.errors import ConfigError

log = logging.getLogger(__name__)

DATA_PATHS = ("auto", "device", "loader")
GPU_SHARE = 0.5  # of the GPU's free memory the uploaded store may take


def _tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(device)


class DeviceWindows:
    """The samples of ``dataset``, held and gathered on ``device`` (module docstring)."""

    def __init__(self, dataset: WindowDataset, device: torch.device | str) -> None:
        self.device = device = torch.device(device)
        self.spec = dataset.spec
        self.path = dataset.path
        self.n = len(dataset)
        self.lowdim = {k: _tensor(v, device) for k, v in dataset._lowdim.items()}
        self.images: dict[str, torch.Tensor] = {}
        for key in dataset.image_keys:
            frames = dataset._cache.get(key)
            self.images[key] = _tensor(frames if frames is not None else dataset._load_all(key), device)
        self.row_episode = _tensor(dataset._row_episode.astype(np.int64), device)  # (N,)
        self.row0 = _tensor(dataset._row0, device)  # (E,)
        self.row_last = _tensor(dataset._row_last, device)  # (E,)
        self.episode_ids = _tensor(dataset._episode_ids, device)  # (E,)
        self.obs_steps = _tensor(dataset._obs_steps, device)  # (To,)
        self.action_steps = _tensor(dataset._action_steps, device)  # (Ta,)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.lowdim.values(), *self.images.values()))

    def __len__(self) -> int:
        return self.n

    def get_batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """``WindowDataset.get_batch`` of ``indices`` (B,) int64 on this device, built there."""
        idx = indices.to(self.device, torch.int64)
        ep = self.row_episode[idx]  # (B,)
        lo, hi = self.row0[ep][:, None], self.row_last[ep][:, None]  # (B, 1)
        obs_raw = idx[:, None] + self.obs_steps  # (B, To)
        act_raw = idx[:, None] + self.action_steps  # (B, Ta)
        obs = torch.minimum(torch.maximum(obs_raw, lo), hi)
        act = torch.minimum(torch.maximum(act_raw, lo), hi)
        batch: dict[str, torch.Tensor] = {}
        for key in self.spec.obs_keys:
            source = self.lowdim[key] if key in self.lowdim else self.images[key]
            batch[key] = source[obs]  # (B, To, ...)
        batch["action"] = self.lowdim[self.spec.action_key][act]  # (B, Ta, A)
        batch["obs_is_pad"] = obs != obs_raw
        batch["action_is_pad"] = act != act_raw
        batch["episode_index"] = self.episode_ids[ep]
        batch["frame_index"] = idx - self.row0[ep]
        return batch


def choose_data_path(mode: str, dataset: WindowDataset, device: torch.device) -> str:
    """``device`` or ``loader`` for ``mode`` (``DATA_PATHS``), logged with its reason."""
    if mode not in DATA_PATHS:
        raise ConfigError(f"--data-path {mode!r} is not one of {DATA_PATHS}")
    need = dataset.cache_nbytes + sum(a.nbytes for a in dataset._lowdim.values())
    gb = need / 2**30
    if mode == "loader":
        log.info("data path: DataLoader (--data-path loader)")
        return "loader"
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        fits = need <= GPU_SHARE * free
        if mode == "device" and not fits:
            raise ConfigError(
                f"--data-path device: {dataset.path} needs {gb:.2f} GB on {device} but half of its free "
                f"memory is {GPU_SHARE * free / 2**30:.2f} GB; use --data-path loader (or auto)"
            )
        if fits:
            log.info("data path: device (%.2f GB of decoded frames uploaded to %s once)", gb, device)
            return "device"
        log.info(
            "data path: DataLoader (%.2f GB of decoded frames does not fit in half of %s's %.2f GB free)",
            gb,
            device,
            free / 2**30,
        )
        return "loader"
    if mode == "device":
        log.info("data path: device (%.2f GB of decoded frames gathered in place on %s)", gb, device)
        return "device"
    log.info("data path: DataLoader (training on %s)", device)
    return "loader"
