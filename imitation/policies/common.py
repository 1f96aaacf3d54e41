"""Building blocks both policies use unchanged: normalisation, observation layout, random draws,
sine embeddings, and the per-environment bookkeeping that makes batched rollouts equal serial ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from imitation.data.stats import minmax_scale_offset, safe_std
from imitation.errors import ConfigError

NORM_MODES = ("mean_std", "min_max")


# ------------------------------------------------------------------------------ what a policy reads
@dataclass(frozen=True)
class IOSpec:
    """The features a policy reads and writes, with their shapes, as the demo store declares them.

    ``lowdim`` are vectors (``state``, ``env_state``); ``images`` are camera keys with (H, W, C).
    """

    lowdim: dict[str, int]  # key -> dimension
    images: dict[str, tuple[int, int, int]]  # key -> (H, W, C)
    action_dim: int

    @classmethod
    def from_features(cls, features: Mapping[str, Any], obs_keys: Sequence[str], action_key: str = "action"):
        lowdim: dict[str, int] = {}
        images: dict[str, tuple[int, int, int]] = {}
        for key in obs_keys:
            if key not in features:
                raise ConfigError(
                    f"the policy reads {key!r} but the store has only {sorted(features)}; "
                    "set the policy's obs_keys to features the store has"
                )
            f = features[key]
            if f.kind == "image":
                h, w = f.shape[:2]
                images[key] = (int(h), int(w), int(f.shape[2]) if len(f.shape) == 3 else 1)
            elif len(f.shape) == 1:
                lowdim[key] = int(f.shape[0])
            else:
                raise ConfigError(
                    f"obs key {key!r} has shape {f.shape}; policies read vectors (state, env_state) and images"
                )
        a = features[action_key]
        if len(a.shape) != 1:
            raise ConfigError(f"the action feature {action_key!r} has shape {a.shape}; expected a vector")
        return cls(lowdim, images, int(a.shape[0]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "lowdim": dict(self.lowdim),
            "images": {k: list(v) for k, v in self.images.items()},
            "action_dim": self.action_dim,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> IOSpec:
        return cls(
            {k: int(v) for k, v in d["lowdim"].items()},
            {k: tuple(int(x) for x in v) for k, v in d["images"].items()},
            int(d["action_dim"]),
        )


# ------------------------------------------------------------------------------ two-valued actions
class BinaryActions(nn.Module):
    """Action dimensions the demonstrations hold at two values (a gripper open or closed).

    Regressing such a dimension learns the mean of its two values where the demonstrations switch
    late or early, and a gripper commanded halfway neither holds nor lets go. Here a dimension of
    ``dims`` is learnt as what it is: ``targets`` gives 0 (low) / 1 (high) for a cross-entropy
    loss on a logit (ACT), ``from_logits`` turns a logit back into robot units, and ``snap`` sends
    a predicted action to the nearer of the two values (both policies, every chunk; an ensemble of
    chunks is snapped again, a weighted vote). Levels come from the store's min and
    max; with no dims the module holds nothing (checkpoints without it load unchanged).
    """

    def __init__(self, action_dim: int, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = tuple(int(d) for d in dims)
        bad = [d for d in self.dims if not 0 <= d < action_dim]
        if bad:
            raise ConfigError(
                f"binary_actions={list(self.dims)} names dimension(s) {bad} of a {action_dim}-D action; "
                f"use indices 0..{action_dim - 1}"
            )
        if self.dims:
            mask = torch.zeros(action_dim, dtype=torch.bool)
            mask[list(self.dims)] = True
            self.register_buffer("mask", mask)
            self.register_buffer("low", torch.zeros(action_dim))
            self.register_buffer("high", torch.ones(action_dim))

    def __bool__(self) -> bool:
        return bool(self.dims)

    def set_stats(self, action_stats: Mapping[str, Any]) -> None:
        if self.dims:
            self.low.copy_(torch.as_tensor(np.asarray(action_stats["min"], dtype=np.float32)))
            self.high.copy_(torch.as_tensor(np.asarray(action_stats["max"], dtype=np.float32)))

    def targets(self, actions: Tensor) -> Tensor:
        """Actions in robot units -> 1.0 where a two-valued dimension is at its high value, else 0."""
        return (actions > (self.low + self.high) / 2).float()

    def from_logits(self, logits: Tensor) -> Tensor:
        return self.low + (self.high - self.low) * torch.sigmoid(logits)

    def to_dict(self) -> dict[str, list]:
        """Dims and levels, for the checkpoint's metadata (the deploy loop snaps its ensembles)."""
        if not self.dims:
            return {}
        m = self.mask.cpu()
        return {
            "dims": list(self.dims),
            "low": self.low.cpu()[m].tolist(),
            "high": self.high.cpu()[m].tolist(),
        }

    def snap(self, actions: Tensor) -> Tensor:
        """Actions in robot units with each two-valued dimension at the nearer of its two values."""
        if not self.dims:
            return actions
        snapped = torch.where(actions > (self.low + self.high) / 2, self.high, self.low)
        return torch.where(self.mask, snapped.to(actions.dtype), actions)


def snap_binary(action: np.ndarray, binary: Mapping[str, Sequence[float]] | None) -> np.ndarray:
    """``BinaryActions.snap`` for one action in NumPy, from ``BinaryActions.to_dict()``."""
    if not binary:
        return action
    out = np.array(action, copy=True)
    for d, lo, hi in zip(binary["dims"], binary["low"], binary["high"], strict=True):
        out[..., d] = np.where(out[..., d] > (lo + hi) / 2, hi, lo)
    return out


# ------------------------------------------------------------------------------ normalisation
def _buffer_name(key: str) -> str:
    return key.replace("/", "__")


class Normalizer(nn.Module):
    """Per-feature affine maps ``y = x * scale + offset`` and back, held as buffers.

    ``mean_std`` (ACT): (x - mean) / max(std, 0.01). ``min_max`` (Diffusion Policy): [min, max]
    onto [-1, 1]. A dimension that never varies maps to 0, and back to its constant value.
    The statistics come from the demo store; they travel inside the checkpoint.
    """

    def __init__(
        self,
        dims: Mapping[str, int],
        mode: str,
        images: Mapping[str, int] | None = None,
        image_affine: tuple[Sequence[float], Sequence[float]] = ((1.0,), (0.0,)),
    ) -> None:
        super().__init__()
        if mode not in NORM_MODES:
            raise ConfigError(f"normalisation {mode!r} is not one of {NORM_MODES}")
        self.mode = mode
        self.keys = tuple(dims)
        for key, dim in dims.items():
            name = _buffer_name(key)
            self.register_buffer(f"{name}_scale", torch.ones(dim))
            self.register_buffer(f"{name}_offset", torch.zeros(dim))
            self.register_buffer(f"{name}_inv_scale", torch.ones(dim))
            self.register_buffer(f"{name}_inv_offset", torch.zeros(dim))
        # Cameras: a per-channel affine map of pixels in [0, 1] (the policy's default, e.g.
        # ImageNet statistics for ACT; a checkpoint imported from elsewhere brings its own).
        self.image_keys = tuple(images or {})
        scale, offset = image_affine
        for key, channels in (images or {}).items():
            name = _buffer_name(key)
            self.register_buffer(
                f"{name}_scale", torch.ones(channels) * torch.tensor(scale, dtype=torch.float32)
            )
            self.register_buffer(
                f"{name}_offset", torch.zeros(channels) + torch.tensor(offset, dtype=torch.float32)
            )

    def set_stats(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Fill the buffers from a store's ``stats()`` (per key: min, max, mean, std)."""
        for key in self.keys:
            if key not in stats:
                raise ConfigError(f"the store's statistics have no {key!r}; run 'imitation data repair'")
            s = stats[key]
            if self.mode == "mean_std":
                mean = np.asarray(s["mean"], dtype=np.float64)
                std = safe_std(np.asarray(s["std"], dtype=np.float64)).astype(np.float64)
                scale, offset = 1.0 / std, -mean / std
                inv_scale, inv_offset = std, mean
            else:
                lo, hi = np.asarray(s["min"], dtype=np.float64), np.asarray(s["max"], dtype=np.float64)
                scale, offset = minmax_scale_offset(lo, hi)
                varies = scale != 0
                inv_scale = np.where(varies, (hi - lo) / 2, 0.0)
                inv_offset = np.where(varies, (hi + lo) / 2, lo)
            name = _buffer_name(key)
            for suffix, value in (
                ("scale", scale),
                ("offset", offset),
                ("inv_scale", inv_scale),
                ("inv_offset", inv_offset),
            ):
                buf = getattr(self, f"{name}_{suffix}")
                if buf.shape != np.shape(value):
                    raise ConfigError(
                        f"statistics of {key!r} have {np.shape(value)[0]} dimensions, the policy "
                        f"{buf.shape[0]}; train on a store with the same features"
                    )
                buf.copy_(torch.as_tensor(np.asarray(value), dtype=torch.float32))

    def set_affine(
        self,
        key: str,
        scale: Tensor,
        offset: Tensor,
        inv_scale: Tensor | None = None,
        inv_offset: Tensor | None = None,
    ) -> None:
        """Set one feature's map directly (importing a checkpoint that carries its own)."""
        name = _buffer_name(key)
        parts = {"scale": scale, "offset": offset, "inv_scale": inv_scale, "inv_offset": inv_offset}
        for suffix, value in parts.items():
            if value is not None:
                getattr(self, f"{name}_{suffix}").copy_(
                    torch.as_tensor(value, dtype=torch.float32).reshape(-1)
                )

    def normalize_image(self, key: str, x: Tensor) -> Tensor:
        """(N, C, H, W) pixels in [0, 1] -> the policy's input range."""
        name = _buffer_name(key)
        return (
            x * getattr(self, f"{name}_scale")[:, None, None] + getattr(self, f"{name}_offset")[:, None, None]
        )

    def normalize(self, key: str, x: Tensor) -> Tensor:
        name = _buffer_name(key)
        return x * getattr(self, f"{name}_scale") + getattr(self, f"{name}_offset")

    def unnormalize(self, key: str, y: Tensor) -> Tensor:
        name = _buffer_name(key)
        return y * getattr(self, f"{name}_inv_scale") + getattr(self, f"{name}_inv_offset")


# ------------------------------------------------------------------------------ random draws
def randn_rows(generators: Sequence[torch.Generator], shape: Sequence[int], device: torch.device) -> Tensor:
    """Standard normal noise (B, *shape), row b drawn from ``generators[b]``."""
    return torch.stack([torch.randn(tuple(shape), generator=g, device=g.device) for g in generators]).to(
        device
    )


def draw_seed(seed: int, step: int, position: int) -> int:
    """A 63-bit seed for one sample's draws at one training step (SplitMix64 of the three)."""
    x = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + position * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 31
    return x & 0x7FFF_FFFF_FFFF_FFFF


# Training draws keyed by each sample's draw seed, computed in tensor arithmetic on the batch's
# device: no per-sample generator objects, no host round trip, the same bits on a CPU and a GPU
# (integer hashing, not a device's random number generator), and capturable in a CUDA graph.
_MASK64 = 2**64 - 1
_SEED_MULTIPLIERS = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


def _signed(x: int) -> int:
    """A 64-bit pattern as the int64 constant with the same bits."""
    x &= _MASK64
    return x - 2**64 if x >= 2**63 else x


def _shr(x: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 bits (torch's ``>>`` keeps the sign)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def mix64(x: Tensor) -> Tensor:
    """SplitMix64's finaliser on int64 tensors (wrapping arithmetic): ``draw_seed``'s mixing."""
    x = x ^ _shr(x, 30)
    x = x * _signed(0xBF58476D1CE4E5B9)
    x = x ^ _shr(x, 27)
    x = x * _signed(0x94D049BB133111EB)
    return x ^ _shr(x, 31)


def draw_seed_tensor(seed: int, step: int, positions: Tensor) -> Tensor:
    """``draw_seed(seed, step, p)`` for every p in ``positions`` (int64), on their device."""
    c_seed, c_step, c_pos = _SEED_MULTIPLIERS
    base = _signed(seed * c_seed + step * c_step)
    return mix64(positions.long() * _signed(c_pos) + base) & 0x7FFF_FFFF_FFFF_FFFF


class Draws:
    """Random numbers for a batch, row b a function of ``seeds[b]`` and the draw's ``salt`` alone.

    ``uniform``, ``randint`` and ``normal`` hash (seed, salt, element) with SplitMix64 and take 24
    bits per number; normals by Box-Muller. A draw does not depend on the batch's other rows, on
    the device, or on the draws made before it.
    """

    # Salts of the training draws (one stream each).
    LATENT, NOISE, TIMESTEP, TURN, CROP = 6, 2, 4, 8, 16  # normal() and crops take salt and salt + 1

    def __init__(self, seeds: Tensor) -> None:
        self.seeds = seeds.long()

    def _bits(self, salt: int, n: int) -> Tensor:
        """(B, n) 24-bit integers."""
        arange = torch.arange(n, device=self.seeds.device, dtype=torch.int64)
        x = (
            self.seeds[:, None]
            + _signed(salt * 0xD1B54A32D192ED03)
            + arange[None] * _signed(0x9E3779B97F4A7C15)
        )
        return _shr(mix64(x), 40)

    def uniform(self, salt: int, n: int) -> Tensor:
        """(B, n) floats in [0, 1)."""
        return self._bits(salt, n).float() * 2.0**-24

    def randint(self, salt: int, high: int) -> Tensor:
        """(B,) integers in [0, high)."""
        return (self._bits(salt, 1)[:, 0] * high) >> 24

    def normal(self, salt: int, shape: Sequence[int]) -> Tensor:
        """(B, *shape) standard normal numbers."""
        n = int(math.prod(shape))
        u1 = (self._bits(salt, n).float() + 1.0) * 2.0**-24  # (0, 1]: log is finite
        u2 = self.uniform(salt + 1, n)
        z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
        return z.view(len(self.seeds), *shape)

    def crop_offsets(self, salt: int, image_hw: Sequence[int], size: Sequence[int]) -> Tensor:
        """(B, 2) random (top, left) of a ``size`` crop in ``image_hw`` images."""
        (h, w), (ch, cw) = image_hw, size
        return torch.stack([self.randint(salt, h - ch + 1), self.randint(salt + 1, w - cw + 1)], 1)


class EnvGenerators:
    """Sampling noise at rollout time: one generator per environment, seeded per episode.

    ``reset(done_mask, seeds)`` reseeds the environments that start a new episode, so the noise an
    episode sees depends only on its own seed, never on its neighbours in a batch.
    """

    def __init__(self) -> None:
        self.generators: list[torch.Generator] = []

    def ensure(self, n: int, device: torch.device) -> list[torch.Generator]:
        while len(self.generators) < n:
            g = torch.Generator(device=device)
            g.manual_seed(len(self.generators))
            self.generators.append(g)
        return self.generators[:n]

    def reset(
        self, done_mask: Tensor | np.ndarray, seeds: Sequence[int] | None, device: torch.device
    ) -> None:
        mask = np.asarray(done_mask.cpu() if isinstance(done_mask, Tensor) else done_mask, dtype=bool)
        self.ensure(mask.size, device)
        for i in np.flatnonzero(mask):
            self.generators[i] = torch.Generator(device=device)
            self.generators[i].manual_seed(int(seeds[i]) if seeds is not None else int(i))


# ------------------------------------------------------------------------------ embeddings
def sine_embedding_1d(positions: Tensor, dim: int) -> Tensor:
    """Transformer sine/cosine embedding of (N,) positions -> (N, dim): sin in the first half."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / max(half - 1, 1))
    angles = positions.float()[:, None] * freq[None]  # (N, half)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def sine_table_1d(n: int, dim: int) -> Tensor:
    """The original transformer's position table (n, dim): sin on even, cos on odd channels."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(dim, dtype=torch.float64)[None]
    angles = pos / torch.pow(10000.0, 2 * torch.div(i, 2, rounding_mode="floor") / dim)
    table = torch.where(i.long() % 2 == 0, angles.sin(), angles.cos())
    return table.float()


def sine_embedding_2d(height: int, width: int, dim: int, temperature: float = 10000.0) -> Tensor:
    """DETR's 2-D sine embedding of a (height, width) grid -> (dim, height, width).

    Half of the channels encode y, half x; positions are normalised to (0, 2π].
    """
    half = dim // 2
    eps = 1e-6
    y = torch.arange(1, height + 1, dtype=torch.float32)[:, None].expand(height, width)
    x = torch.arange(1, width + 1, dtype=torch.float32)[None, :].expand(height, width)
    y = y / (y[-1:, :] + eps) * 2 * math.pi
    x = x / (x[:, -1:] + eps) * 2 * math.pi
    t = temperature ** (2 * torch.div(torch.arange(half), 2, rounding_mode="floor") / half)
    px, py = x[..., None] / t, y[..., None] / t  # (H, W, half)
    px = torch.stack([px[..., 0::2].sin(), px[..., 1::2].cos()], dim=-1).flatten(2)
    py = torch.stack([py[..., 0::2].sin(), py[..., 1::2].cos()], dim=-1).flatten(2)
    return torch.cat([py, px], dim=-1).permute(2, 0, 1)  # (dim, H, W)


# ------------------------------------------------------------------------------ rollout state
class ObsHistory:
    """The last ``n`` observations of each environment, the first one repeated to fill the start.

    ``push(obs)`` adds a batch of observations (dict of (B, ...) tensors) and returns the window
    (dict of (B, n, ...)). Environments reset by ``reset(done_mask)`` start again from their next
    observation, as the training windows are padded at episode starts.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.window: dict[str, Tensor] = {}
        self.fresh: Tensor | None = None  # (B,) bool: no observation since reset

    def reset(self, done_mask: Tensor | None) -> None:
        if done_mask is None or self.fresh is None:
            self.window, self.fresh = {}, None
            return
        self.fresh = self.fresh | done_mask.to(self.fresh.device, torch.bool)

    def push(self, obs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        b = next(iter(obs.values())).shape[0]
        if self.fresh is None or not self.window or self.fresh.shape[0] != b:
            self.window = {k: v[:, None].repeat_interleave(self.n, 1) for k, v in obs.items()}
            self.fresh = torch.zeros(b, dtype=torch.bool, device=next(iter(obs.values())).device)
            return dict(self.window)
        for k, v in obs.items():
            w = torch.cat([self.window[k][:, 1:], v[:, None]], dim=1)  # (B, n, ...)
            fresh = self.fresh.view(-1, *([1] * (w.dim() - 1)))
            self.window[k] = torch.where(fresh, v[:, None].expand_as(w), w)
        self.fresh = torch.zeros_like(self.fresh)
        return dict(self.window)


class ActionQueue:
    """Executes ``n`` actions of each predicted chunk before asking for the next, per environment.

    ``need()`` says which environments have run out; ``fill(rows, chunks)`` gives those a new
    chunk; ``pop()`` returns every environment's next action.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.actions: Tensor | None = None  # (B, n, A)
        self.used: Tensor | None = None  # (B,) actions taken from the current chunk

    def reset(self, done_mask: Tensor | None) -> None:
        if done_mask is None or self.used is None:
            self.actions, self.used = None, None
        else:
            self.used = torch.where(done_mask.to(self.used.device, torch.bool), self.n, self.used)

    def need(self, batch: int, device: torch.device) -> Tensor:
        if self.used is None or self.used.shape[0] != batch:
            self.actions, self.used = None, torch.full((batch,), self.n, dtype=torch.long, device=device)
        return self.used >= self.n

    def fill(self, rows: Tensor, chunks: Tensor) -> None:
        if self.actions is None:
            self.actions = torch.zeros(self.used.shape[0], self.n, chunks.shape[-1], device=chunks.device)
        self.actions[rows] = chunks[:, : self.n].to(self.actions.dtype)
        self.used[rows] = 0

    def pop(self) -> Tensor:
        idx = torch.arange(self.used.shape[0], device=self.used.device)
        out = self.actions[idx, self.used]
        self.used = self.used + 1
        return out


@dataclass(frozen=True)
class Schedule:
    """How a policy's predicted chunks map onto control ticks; each policy's config declares its
    own (``schedule``), which the deploy loop executes (``imitation.deploy.ChunkExecutor``) as the
    policy's ``select_action`` does in simulation."""

    mode: str  # "ensemble" (ACT's temporal ensembling) or "queue" (a chunk's rows in turn)
    start: int  # first chunk row to execute (Diffusion Policy: n_obs_steps - 1)
    count: int  # rows executed per chunk
    frame_skip: int
    n_obs: int  # observations per window
    coeff: float = 0.01  # ensembling: weights exp(-coeff * i), i = 0 for the oldest chunk
    binary: dict | None = None  # two-valued action dims and levels (BinaryActions.to_dict), snapped


class TemporalEnsembler:
    """ACT's temporal ensembling: every step averages the predictions of all chunks that cover it.

    Weights exp(-k·i), i = 0 for the oldest prediction (Zhao et al. 2023, k = 0.01). Kept per
    environment: the last ``chunk`` chunks, each advanced to the current step.
    """

    def __init__(self, chunk: int, coeff: float) -> None:
        self.chunk, self.coeff = chunk, coeff
        self.buf: Tensor | None = None  # (B, C, C, A): [env, chunk age (oldest first), step ahead]
        self.count: Tensor | None = None  # (B,) chunks remembered

    def reset(self, done_mask: Tensor | None) -> None:
        if done_mask is None or self.count is None:
            self.buf, self.count = None, None
        else:
            self.count = torch.where(done_mask.to(self.count.device, torch.bool), 0, self.count)

    def update(self, chunks: Tensor) -> Tensor:
        """Add each environment's new chunk (B, C, A); return the ensembled action (B, A)."""
        b, c, a = chunks.shape
        if self.buf is None or self.buf.shape[0] != b:
            self.buf = chunks.new_zeros(b, c, c, a)
            self.count = torch.zeros(b, dtype=torch.long, device=chunks.device)
        self.buf = torch.cat([self.buf[:, 1:], chunks[:, None]], dim=1)
        self.count = torch.clamp(self.count + 1, max=c)
        rank = torch.arange(c, device=chunks.device)[None] - (c - self.count[:, None])  # (B, C): 0 = oldest
        weights = torch.where(rank >= 0, torch.exp(-self.coeff * rank.clamp(min=0).float()), 0.0)  # (B, C)
        action = (weights[..., None] * self.buf[:, :, 0]).sum(1) / weights.sum(1, keepdim=True)  # (B, A)
        self.buf = torch.cat([self.buf[:, :, 1:], self.buf[:, :, -1:]], dim=2)
        return action


def rows_of(obs: Mapping[str, Tensor], rows: Tensor) -> dict[str, Tensor]:
    return {k: v[rows] for k, v in obs.items()}


class EMA:
    """An exponential moving average of a model's weights, for evaluation (Diffusion Policy).

    decay = min(max_decay, 1 - (1 + n)^-power) with n counting updates from the second on, so the
    average follows the weights closely early in training and ever more slowly later (the
    reference's EMAModel: power 0.75, max 0.9999). Buffers (normalisation statistics) are copied.
    """

    def __init__(self, model: nn.Module, power: float = 0.75, max_decay: float = 0.9999) -> None:
        import copy

        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.power, self.max_decay = power, max_decay
        self.updates = 0

    def decay(self) -> float:
        n = max(0, self.updates - 1)
        return 0.0 if n == 0 else min(self.max_decay, 1.0 - (1.0 + n) ** -self.power)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.decay()
        # Multi-tensor kernels: one launch per group of tensors, not one per tensor.
        mine = list(self.model.parameters())
        theirs = [p.detach().to(e.dtype) for e, p in zip(mine, model.parameters(), strict=True)]
        torch._foreach_lerp_(mine, theirs, 1.0 - d)
        buffers = list(self.model.buffers())
        if buffers:
            torch._foreach_copy_(buffers, list(model.buffers()))
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "weights": self.model.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.model.load_state_dict(state["weights"])
