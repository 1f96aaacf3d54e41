"""Diffusion Policy, CNN variant (Chi et al. 2023, "Diffusion Policy: Visuomotor Policy Learning via
Action Diffusion").

A 1-D temporal UNet denoises a window of ``horizon`` actions. It is conditioned, through FiLM
(a per-channel scale and bias in every residual block), on one global vector: the diffusion
step's sine embedding and the observation features of the last ``n_obs_steps`` steps, flattened.
Observation features are the low-dimensional inputs, min-max normalised to [-1, 1], and, per
camera, spatial-softmax keypoints of a GroupNorm ResNet trained from scratch.

Training: DDPM with 100 steps and the squaredcos_cap_v2 schedule, predicting the noise (epsilon),
samples clipped to [-1, 1]. Inference: DDPM or DDIM with a configurable number of steps, from
``diffusers``. The policy executes ``n_action_steps`` actions from index ``n_obs_steps - 1`` of each
predicted window, then predicts again. An EMA of the weights (power 0.75, at most 0.9999) is what
evaluation uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imitation.checks import InPath, OneOf, Range, check_fields
from imitation.errors import ConfigError
from imitation.policies.common import (
    ActionQueue,
    BinaryActions,
    Draws,
    EnvGenerators,
    IOSpec,
    Normalizer,
    ObsHistory,
    Schedule,
    randn_rows,
    rows_of,
    sine_embedding_1d,
)
from imitation.policies.graphs import CudaGraphs
from imitation.policies.vision import (
    NORMS,
    ResNet,
    SpatialSoftmax,
    crop,
    load_resnet_weights,
    to_unit,
)

SCHEDULERS = ("ddpm", "ddim")
NOISE = "noise"  # the starting noise's key among predict_chunk's graph inputs


@dataclass
class DiffusionConfig:
    """Diffusion Policy's architecture, diffusion schedule and optimiser settings (paper defaults)."""

    obs_keys: tuple[str, ...] = ("state", "images/top")
    """Store features the policy reads: low-dimensional vectors and camera images."""
    n_obs_steps: Annotated[int, Range(ge=1, le=1000)] = 2
    """Observation steps the policy conditions on (To)."""
    horizon: Annotated[int, Range(ge=1, le=100_000)] = 16
    """Actions denoised per window (Tp)."""
    n_action_steps: Annotated[int, Range(ge=1, le=100_000)] = 8
    """Actions executed from each window before predicting again (Ta)."""
    frame_skip: Annotated[int, Range(ge=1, le=1000)] = 1
    """Control ticks per policy step (the paper's horizons were tuned for 10 Hz control)."""
    down_dims: Annotated[tuple[int, ...], Range(ge=1, le=65_536)] = (512, 1024, 2048)
    """UNet channel widths per level (the paper: 512/1024/2048 with images, 256/512/1024 low-dim)."""
    kernel_size: Annotated[int, Range(ge=1, le=63)] = 5
    """Temporal convolution kernel."""
    n_groups: Annotated[int, Range(ge=1, le=4096)] = 8
    """GroupNorm groups in the UNet."""
    diffusion_step_embed_dim: Annotated[int, Range(ge=1, le=65_536)] = 128
    """Size of the diffusion-step embedding."""
    num_train_timesteps: Annotated[int, Range(ge=1, le=100_000)] = 100
    """DDPM training steps."""
    beta_schedule: Annotated[str, OneOf(("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"))] = (
        "squaredcos_cap_v2"
    )
    """Noise schedule."""
    prediction_type: Annotated[str, OneOf(("epsilon", "sample"))] = "epsilon"
    """What the UNet predicts: epsilon (the noise) or sample (the clean actions)."""
    clip_sample: bool = True
    """Clip denoised samples to [-1, 1] (the actions' normalised range)."""
    scheduler: Annotated[str, OneOf(SCHEDULERS)] = "ddpm"
    """Inference sampler: ddpm (the paper in simulation) or ddim (fewer steps, the paper on robots)."""
    num_inference_steps: Annotated[int | None, Range(ge=1, le=100_000)] = None
    """Denoising steps at inference; None uses num_train_timesteps."""
    vision_width: Annotated[int, Range(ge=1, le=4096)] = 64
    """Backbone base width: 64 is ResNet-18; smaller keeps CPU runs quick."""
    vision_layers: Annotated[int, Range(ge=1, le=4)] = 4
    """Backbone stages: 4 is ResNet-18 (a feature map every 32 px); 3 stops at every 16 px, a
    finer grid for the keypoints of small images."""
    vision_norm: Annotated[str, OneOf(NORMS)] = "group"
    """Backbone normalisation: group (the paper), frozen_bn or batch (for pretrained weights)."""
    pretrained_backbone: Annotated[str | None, InPath("file")] = None
    """Local file of ResNet-18 weights (torchvision naming); the paper trains from scratch."""
    shared_encoder: bool = False
    """One backbone for all cameras, or one per camera (the paper)."""
    n_keypoints: Annotated[int, Range(ge=1, le=4096)] = 32
    """Spatial-softmax keypoints per camera."""
    image_feature_dim: Annotated[int, Range(ge=1, le=65_536)] = 64
    """Features per camera after the keypoints' projection."""
    crop_shape: Annotated[tuple[int, int] | None, Range(ge=1, le=8192)] = (84, 84)
    """Random crop in training / centre crop at evaluation (84 from 96 on PushT); None for none."""
    lr: Annotated[float, Range(gt=0, le=1)] = 1e-4
    """AdamW learning rate."""
    weight_decay: Annotated[float, Range(ge=0)] = 1e-6
    """AdamW weight decay."""
    betas: Annotated[tuple[float, float], Range(ge=0, lt=1)] = (0.95, 0.999)
    """AdamW betas."""
    warmup_steps: Annotated[int, Range(ge=0)] = 500
    """Linear warm-up before the cosine schedule."""
    ema: bool = True
    """Keep an EMA of the weights and evaluate with it."""
    ema_power: Annotated[float, Range(gt=0, le=10)] = 0.75
    """EMA warm-up power: decay = 1 - (1 + step)^-power."""
    ema_max_decay: Annotated[float, Range(ge=0, le=1)] = 0.9999
    """Largest EMA decay."""
    binary_actions: Annotated[tuple[int, ...] | None, Range(ge=0, le=10_000)] = None
    """Action dimensions the demonstrations hold at two values (a gripper open or closed), executed
    at the nearer of the two (a thresholded output); None: found in the store when training starts
    (imitation/recipes.py); []: none."""

    def __post_init__(self) -> None:
        check_fields(self)
        self.obs_keys = tuple(self.obs_keys)
        if self.binary_actions is not None:
            self.binary_actions = tuple(int(d) for d in self.binary_actions)
        self.down_dims = tuple(int(x) for x in self.down_dims)
        if self.crop_shape is not None:
            self.crop_shape = tuple(int(x) for x in self.crop_shape)
        if self.horizon < self.n_obs_steps + self.n_action_steps - 1:
            raise ConfigError(
                f"diffusion.horizon={self.horizon} cannot hold n_obs_steps - 1 + n_action_steps = "
                f"{self.n_obs_steps - 1 + self.n_action_steps} actions; raise horizon or lower n_action_steps"
            )
        factor = 2 ** (len(self.down_dims) - 1)
        if self.horizon % factor:
            raise ConfigError(
                f"diffusion.horizon={self.horizon} must be divisible by {factor} (the UNet halves it "
                f"{len(self.down_dims) - 1} times); e.g. 16"
            )
        if any(d % self.n_groups for d in self.down_dims):
            raise ConfigError(
                f"diffusion.down_dims={self.down_dims} must be multiples of n_groups={self.n_groups}"
            )
        steps = self.num_inference_steps
        if steps is not None and not 1 <= steps <= self.num_train_timesteps:
            raise ConfigError(
                f"diffusion.num_inference_steps={steps} must be in 1..num_train_timesteps ({self.num_train_timesteps})"
            )

    @property
    def obs_offsets(self) -> tuple[int, ...]:
        return tuple(range(1 - self.n_obs_steps, 1))

    @property
    def action_offsets(self) -> tuple[int, ...]:
        return tuple(range(1 - self.n_obs_steps, self.horizon - self.n_obs_steps + 1))

    @property
    def schedule(self) -> Schedule:
        """``n_action_steps`` rows in turn, from the one of the current observation (row
        ``n_obs_steps - 1`` of the horizon)."""
        return Schedule("queue", self.n_obs_steps - 1, self.n_action_steps, self.frame_skip, self.n_obs_steps)


# ------------------------------------------------------------------------------ the UNet
class Conv1dBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish."""

    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int) -> None:
        super().__init__(
            nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(groups, c_out), nn.Mish()
        )


class ResidualBlock(nn.Module):
    """Two conv blocks; FiLM from the condition between them; a 1x1 skip when widths differ."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.block1 = Conv1dBlock(c_in, c_out, kernel, groups)
        self.block2 = Conv1dBlock(c_out, c_out, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.c_out = c_out

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        out = self.block1(x)  # (B, C, T)
        film = self.film(cond)[..., None]  # (B, 2C, 1)
        out = film[:, : self.c_out] * out + film[:, self.c_out :]
        return self.block2(out) + self.skip(x)


class ConditionalUnet1D(nn.Module):
    def __init__(self, action_dim: int, global_cond_dim: int, cfg: DiffusionConfig) -> None:
        super().__init__()
        e = cfg.diffusion_step_embed_dim
        self.step_embed_dim = e
        self.step_mlp = nn.Sequential(nn.Linear(e, 4 * e), nn.Mish(), nn.Linear(4 * e, e))
        cond = e + global_cond_dim
        k, g = cfg.kernel_size, cfg.n_groups
        dims = (action_dim, *cfg.down_dims)
        pairs = list(zip(dims[:-1], dims[1:], strict=True))
        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.down.append(
                nn.ModuleList(
                    [
                        ResidualBlock(c_in, c_out, cond, k, g),
                        ResidualBlock(c_out, c_out, cond, k, g),
                        nn.Identity() if last else nn.Conv1d(c_out, c_out, 3, 2, 1),
                    ]
                )
            )
        mid = cfg.down_dims[-1]
        self.mid = nn.ModuleList([ResidualBlock(mid, mid, cond, k, g), ResidualBlock(mid, mid, cond, k, g)])
        self.up = nn.ModuleList()
        for c_in, c_out in reversed(pairs[1:]):  # every level on the way up upsamples
            self.up.append(
                nn.ModuleList(
                    [
                        ResidualBlock(2 * c_out, c_in, cond, k, g),
                        ResidualBlock(c_in, c_in, cond, k, g),
                        nn.ConvTranspose1d(c_in, c_in, 4, 2, 1),
                    ]
                )
            )
        self.final = nn.Sequential(
            Conv1dBlock(cfg.down_dims[0], cfg.down_dims[0], k, g), nn.Conv1d(cfg.down_dims[0], action_dim, 1)
        )

    def forward(self, x: Tensor, timesteps: Tensor, global_cond: Tensor) -> Tensor:
        """x (B, T, A), timesteps (B,), global_cond (B, G) -> (B, T, A)."""
        cond = torch.cat([self.step_mlp(sine_embedding_1d(timesteps, self.step_embed_dim)), global_cond], -1)
        h = x.transpose(1, 2)  # (B, A, T)
        skips = []
        for res1, res2, down in self.down:
            h = res2(res1(h, cond), cond)
            skips.append(h)
            h = down(h)
        for res in self.mid:
            h = res(h, cond)
        for res1, res2, up in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = up(res2(res1(h, cond), cond))
        return self.final(h).transpose(1, 2)


# ------------------------------------------------------------------------------ observations
class ImageEncoder(nn.Module):
    """Normalised images (N, C, H, W) -> (N, feature_dim): crop, ResNet trunk, keypoints, linear, ReLU."""

    def __init__(self, cfg: DiffusionConfig, image_hw: tuple[int, int]) -> None:
        super().__init__()
        self.backbone = ResNet(cfg.vision_width, (2,) * cfg.vision_layers, norm=cfg.vision_norm)
        if cfg.pretrained_backbone:
            load_resnet_weights(self.backbone, cfg.pretrained_backbone)
        self.crop_shape = cfg.crop_shape
        h, w = cfg.crop_shape or image_hw
        with torch.no_grad():
            fh, fw = self.backbone(torch.zeros(1, 3, h, w)).shape[2:]
        self.keypoints = SpatialSoftmax(self.backbone.out_channels, fh, fw, cfg.n_keypoints)
        self.out = nn.Linear(2 * cfg.n_keypoints, cfg.image_feature_dim)

    def forward(self, x: Tensor, crop_offsets: Tensor | None) -> Tensor:
        if self.crop_shape:
            x = crop(x, self.crop_shape, crop_offsets)
        return F.relu(self.out(self.keypoints(self.backbone(x))))


# ------------------------------------------------------------------------------ the policy
class DiffusionPolicy(nn.Module):
    title = "Diffusion Policy"  # how tables and logs name it
    """Diffusion Policy behind the policy interface (``forward``, ``predict_chunk``, ``select_action``, ``reset``)."""

    name = "diffusion"
    norm_mode = "min_max"

    def __init__(self, cfg: DiffusionConfig, io: IOSpec) -> None:
        super().__init__()
        from diffusers import DDIMScheduler, DDPMScheduler  # slow to import: only when used

        self.cfg, self.io = cfg, io
        self.lowdim_keys, self.image_keys = tuple(io.lowdim), tuple(io.images)
        if not self.lowdim_keys and not self.image_keys:
            raise ConfigError("Diffusion Policy needs at least one observation (diffusion.obs_keys is empty)")
        # Images: [0, 1] -> [-1, 1], as the paper scales them.
        self.normalizer = Normalizer(
            {**io.lowdim, "action": io.action_dim},
            self.norm_mode,
            {k: v[2] for k, v in io.images.items()},
            ((2.0,), (-1.0,)),
        )
        if self.image_keys:
            n = 1 if cfg.shared_encoder else len(self.image_keys)
            hw = next(iter(io.images.values()))[:2]
            self.image_encoders = nn.ModuleList(ImageEncoder(cfg, hw) for _ in range(n))
        obs_dim = sum(io.lowdim.values()) + len(self.image_keys) * cfg.image_feature_dim
        self.unet = ConditionalUnet1D(io.action_dim, obs_dim * cfg.n_obs_steps, cfg)
        kwargs = {
            "num_train_timesteps": cfg.num_train_timesteps,
            "beta_schedule": cfg.beta_schedule,
            "clip_sample": cfg.clip_sample,
            "prediction_type": cfg.prediction_type,
        }
        self.train_scheduler = DDPMScheduler(**kwargs)
        self.sampler = (DDIMScheduler if cfg.scheduler == "ddim" else DDPMScheduler)(**kwargs)
        self.history = ObsHistory(cfg.n_obs_steps)
        self.queue = ActionQueue(cfg.n_action_steps)
        self.env_generators = EnvGenerators()
        self.binary = BinaryActions(io.action_dim, cfg.binary_actions or ())
        self.graphs: CudaGraphs | None = None
        self._ddim_table: tuple[tuple[int, torch.device], Tensor, Tensor] | None = None

    def set_stats(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Normalisation statistics (and two-valued action levels) from a store's ``stats()``."""
        self.normalizer.set_stats(stats)
        self.binary.set_stats(stats["action"])

    def parameter_groups(self) -> list[dict[str, Any]]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": self.cfg.lr}]

    @property
    def device(self) -> torch.device:
        return self.unet.final[1].weight.device

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.cfg)

    # ---- shared
    def _global_cond(self, obs: Mapping[str, Tensor], draws: Draws | None) -> Tensor:
        """Observation windows (B, To, ...) -> the UNet's global condition (B, To * obs_dim).

        Per step: the joint state, the cameras' features, then other low-dim inputs (env_state),
        the reference implementations' order.
        """
        b, to = next(iter(obs.values())).shape[:2]
        first = [k for k in self.lowdim_keys if k == "state"]
        rest = [k for k in self.lowdim_keys if k != "state"]
        feats = [self.normalizer.normalize(k, obs[k].float()) for k in first]  # (B, To, n)
        for i, key in enumerate(self.image_keys):
            images = self.normalizer.normalize_image(key, to_unit(obs[key].flatten(0, 1)))  # (B*To, C, H, W)
            offsets = None
            if self.training and self.cfg.crop_shape and draws is not None:
                # One crop per sample, shared by its To frames.
                per = draws.crop_offsets(Draws.CROP + 2 * i, images.shape[2:4], self.cfg.crop_shape)  # (B, 2)
                offsets = per.repeat_interleave(to, 0)
            enc = self.image_encoders[0 if self.cfg.shared_encoder else i]
            feats.append(enc(images, offsets).view(b, to, -1))
        feats += [self.normalizer.normalize(k, obs[k].float()) for k in rest]
        return torch.cat(feats, -1).flatten(1)

    # ---- training
    def forward(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Training loss of a batch from ``WindowDataset`` (+ ``draw_seed`` (B,) for the random draws)."""
        actions = self.normalizer.normalize("action", batch["action"].float())  # (B, Tp, A)
        b = actions.shape[0]
        draws = Draws(batch["draw_seed"]) if "draw_seed" in batch else None
        cond = self._global_cond(batch, draws)
        if draws is not None:
            noise = draws.normal(Draws.NOISE, actions.shape[1:])
            t = draws.randint(Draws.TIMESTEP, self.cfg.num_train_timesteps)
        else:
            noise = torch.randn_like(actions)
            t = torch.randint(self.cfg.num_train_timesteps, (b,), device=actions.device)
        noisy = self.train_scheduler.add_noise(actions, noise, t)
        pred = self.unet(noisy, t, cond)
        target = noise if self.cfg.prediction_type == "epsilon" else actions
        loss = F.mse_loss(pred, target)
        return loss, {"mse": loss.detach()}

    # ---- inference
    @torch.no_grad()
    def predict_chunk(
        self, obs: Mapping[str, Tensor], generators: Sequence[torch.Generator] | None = None
    ) -> Tensor:
        """Observation windows (B, To, ...) -> the denoised action window (B, horizon, A), robot units.

        Noise comes from ``generators`` (one per row), by default the environments' own. DDIM runs
        in closed form (``_ddim``), from a CUDA graph on a GPU (``use_cuda_graphs``).
        """
        b = next(iter(obs.values())).shape[0]
        gens = (
            list(generators) if generators is not None else self.env_generators.ensure(b, torch.device("cpu"))
        )
        x = randn_rows(gens, (self.cfg.horizon, self.io.action_dim), self.device)
        if self.cfg.scheduler == "ddim":
            inputs = {**{k: obs[k] for k in (*self.lowdim_keys, *self.image_keys)}, NOISE: x}
            if self.graphs is not None and x.is_cuda:
                out = self.graphs(inputs)
                if out is not None:
                    return out
            return self._ddim(inputs)
        cond = self._global_cond(obs, None)
        self.sampler.set_timesteps(self.cfg.num_inference_steps or self.cfg.num_train_timesteps)
        for t in self.sampler.timesteps:
            out = self.unet(x, t.expand(b).to(self.device), cond)
            # A list of generators makes diffusers draw each row's step noise from its own.
            x = self.sampler.step(out, t, x, generator=gens).prev_sample
        return self.binary.snap(self.normalizer.unnormalize("action", x))

    def ddim_steps(self) -> tuple[Tensor, Tensor]:
        """The sampler's DDIM steps on this policy's device: timesteps (S,) and per step the
        coefficients (S, 4) sqrt(a_t), sqrt(1 - a_t), sqrt(a_prev), sqrt(1 - a_prev), with a the
        cumulative alpha product (diffusers' DDIMScheduler with eta 0, whose step this mirrors)."""
        n = self.cfg.num_inference_steps or self.cfg.num_train_timesteps
        key = (n, self.device)
        if self._ddim_table is None or self._ddim_table[0] != key:
            sampler = self.sampler
            sampler.set_timesteps(n)
            cumprod = sampler.alphas_cumprod
            stride = sampler.config.num_train_timesteps // sampler.num_inference_steps
            rows = []
            for t in sampler.timesteps.tolist():
                a = cumprod[t]
                a_prev = cumprod[t - stride] if t - stride >= 0 else sampler.final_alpha_cumprod
                rows.append(torch.stack([a**0.5, (1 - a) ** 0.5, a_prev**0.5, (1 - a_prev) ** 0.5]))
            self._ddim_table = (key, sampler.timesteps.to(self.device), torch.stack(rows).to(self.device))
        return self._ddim_table[1], self._ddim_table[2]

    def _ddim(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """DDIM denoising of ``inputs[NOISE]`` (B, horizon, A) given the observation windows in
        ``inputs``: tensor arithmetic only, so a CUDA graph can capture it whole."""
        x = inputs[NOISE]
        b = x.shape[0]
        cond = self._global_cond(inputs, None)
        timesteps, coef = self.ddim_steps()
        config = self.sampler.config
        for i in range(len(timesteps)):
            out = self.unet(x, timesteps[i].expand(b), cond)
            sqrt_a, sqrt_1a, sqrt_ap, sqrt_1ap = coef[i]
            if self.cfg.prediction_type == "epsilon":
                x0, eps = (x - sqrt_1a * out) / sqrt_a, out
            else:
                x0 = out
                eps = (x - sqrt_a * x0) / sqrt_1a
            if config.clip_sample:
                x0 = x0.clamp(-config.clip_sample_range, config.clip_sample_range)
            x = sqrt_ap * x0 + sqrt_1ap * eps
        return self.binary.snap(self.normalizer.unnormalize("action", x))

    def use_cuda_graphs(self, enabled: bool = True) -> None:
        """Replay DDIM from CUDA graphs on a GPU (``imitation/policies/graphs.py``); off by default,
        on for the evaluator and the deploy loop (``checkpoint.load_policy``)."""
        self.graphs = CudaGraphs(self._ddim, "Diffusion Policy DDIM") if enabled else None

    @torch.no_grad()
    def select_action(self, obs: Mapping[str, Tensor]) -> Tensor:
        """This step's observations (B, ...) -> this step's actions (B, A)."""
        window = self.history.push({k: v for k, v in obs.items() if k in self.cfg.obs_keys})
        b = next(iter(window.values())).shape[0]
        need = self.queue.need(b, self.device)
        if need.any():
            rows = need.nonzero()[:, 0]
            gens = self.env_generators.ensure(b, torch.device("cpu"))
            chunk = self.predict_chunk(rows_of(window, rows), [gens[i] for i in rows.tolist()])
            start = self.cfg.n_obs_steps - 1
            self.queue.fill(rows, chunk[:, start : start + self.cfg.n_action_steps])
        return self.queue.pop()

    def reset(self, done_mask: Tensor | None = None, seeds: Sequence[int] | None = None) -> None:
        """Forget the history and queued actions of the environments in ``done_mask`` (all when None);
        reseed their noise from ``seeds`` (their new episodes' seeds) when given."""
        mask = None if done_mask is None else torch.as_tensor(done_mask, dtype=torch.bool)
        self.history.reset(mask)
        self.queue.reset(mask)
        if seeds is not None:
            full = torch.ones(len(seeds), dtype=torch.bool) if mask is None else mask
            self.env_generators.reset(full, seeds, torch.device("cpu"))
