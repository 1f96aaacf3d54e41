"""ACT: Action Chunking with Transformers (Zhao et al. 2023, "Learning Fine-Grained Bimanual
Manipulation with Low-Cost Hardware").

A conditional VAE. In training, a transformer encoder reads [CLS, joint state, the action chunk]
and gives the style latent z; at test time z = 0. The policy proper is a DETR-like transformer:
its encoder reads [z, one token per low-dimensional input, the image feature maps' cells] (2-D
sine position embeddings for the cells, learned ones for the rest); its decoder turns
``chunk_size`` learned queries into the next ``chunk_size`` actions. Loss: L1 on the actions (padded
steps left out) plus ``kl_weight`` × KL(q(z) ‖ N(0, I)).

At deploy time the policy either executes ``n_action_steps`` of each chunk, or (the paper's
choice) predicts a chunk every step and averages all predictions for the current step with
weights exp(-k·i), oldest first (temporal ensembling).

Decoder layers: the reference code declares 7 but its forward pass returns the output of the
first one only, so the paper's results come from a 1-layer decoder. ``n_decoder_layers`` is what
runs here; the paper-scale config sets 1 to reproduce that behaviour.

Cameras on a CPU (``configs/train/*_act_camera_cpu.yaml``). The paper's ResNet-18 on 480x640
frames costs over a second per batch of 64 images on a 2-core CPU. The camera configs keep what
matters to a policy and drop the rest, each choice measured on PickPlace (BENCHMARKS.md):
96x96 frames with random 88x88 crops (a shift of up to 8 px); a ResNet-18 at a quarter of its
width (``vision_width: 16``) without its last stage (``vision_layers: 3``), so an 88x88 crop gives
a 6x6 grid of feature cells instead of 3x3 (where the cube is matters to within a few pixels); one
backbone per camera, GroupNorm, trained from scratch; a learned embedding per camera added to the
cells' positions (``camera_embedding``: the two cameras' grids share their sine positions); and
the top picture turned about the base pixel with the state (``--augment-yaw``, ``data/augment.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
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
    Schedule,
    TemporalEnsembler,
    rows_of,
    sine_embedding_2d,
    sine_table_1d,
)
from imitation.policies.graphs import CudaGraphs
from imitation.policies.vision import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NORMS,
    ResNet,
    crop,
    load_resnet_weights,
    to_unit,
)

log = logging.getLogger(__name__)


@dataclass
class ACTConfig:
    """ACT's architecture, deploy behaviour and optimiser settings (paper defaults)."""

    obs_keys: tuple[str, ...] = ("state", "images/top")
    """Store features the policy reads: low-dimensional vectors and camera images."""
    chunk_size: Annotated[int, Range(ge=1, le=100_000)] = 100
    """Actions predicted per chunk (k in the paper)."""
    n_action_steps: Annotated[int, Range(ge=1, le=100_000)] = 100
    """Without temporal ensembling: actions executed from each chunk before predicting the next."""
    temporal_ensemble_coeff: Annotated[float | None, Range(ge=0)] = 0.01
    """k of the exp(-k·i) ensembling weights; None executes chunks plainly (n_action_steps)."""
    frame_skip: Annotated[int, Range(ge=1, le=1000)] = 1
    """Control ticks per policy step."""
    dim_model: Annotated[int, Range(ge=1, le=65_536)] = 512
    """Transformer width."""
    n_heads: Annotated[int, Range(ge=1, le=1024)] = 8
    """Attention heads."""
    dim_feedforward: Annotated[int, Range(ge=1, le=262_144)] = 3200
    """Feed-forward width of each transformer layer."""
    n_encoder_layers: Annotated[int, Range(ge=1, le=256)] = 4
    """Layers of the policy's transformer encoder."""
    n_decoder_layers: Annotated[int, Range(ge=1, le=256)] = 1
    """Layers of the decoder (the reference code effectively ran 1; see the module docstring)."""
    n_vae_encoder_layers: Annotated[int, Range(ge=1, le=256)] = 4
    """Layers of the CVAE encoder."""
    latent_dim: Annotated[int, Range(ge=1, le=65_536)] = 32
    """Size of the style latent z."""
    use_vae: bool = True
    """Train with the CVAE encoder; False trains a plain deterministic transformer."""
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.1
    """Dropout in the transformer layers."""
    pre_norm: bool = False
    """LayerNorm before each sub-layer instead of after (the reference uses post-norm)."""
    kl_weight: Annotated[float, Range(ge=0)] = 10.0
    """Weight of the KL term."""
    vision_width: Annotated[int, Range(ge=1, le=4096)] = 64
    """Backbone base width: 64 is ResNet-18; smaller keeps CPU runs quick."""
    vision_layers: Annotated[int, Range(ge=1, le=4)] = 4
    """Backbone stages: 4 is ResNet-18 (feature cells every 32 px); 3 stops at every 16 px, which
    keeps a 6x6 grid of tokens from an 88x88 image instead of 3x3."""
    camera_embedding: bool = False
    """Add a learned embedding per camera to its feature cells' positions, so the transformer can
    tell the cameras' cells apart (their 2-D sine positions are the same)."""
    vision_norm: Annotated[str, OneOf(NORMS)] = "frozen_bn"
    """Backbone normalisation: frozen_bn (the reference, with pretrained weights), group, batch."""
    pretrained_backbone: Annotated[str | None, InPath("file")] = None
    """Local file of ResNet-18 weights (torchvision naming). Without it the backbone trains from scratch."""
    shared_encoder: bool = True
    """One backbone for all cameras (the reference) or one per camera."""
    crop_shape: Annotated[tuple[int, int] | None, Range(ge=1, le=8192)] = None
    """Random crop in training / centre crop at evaluation; None uses whole images (the reference)."""
    lr: Annotated[float, Range(gt=0, le=1)] = 1e-5
    """AdamW learning rate of everything but the backbone."""
    lr_backbone: Annotated[float, Range(ge=0, le=1, meaning="0: a frozen backbone")] = 1e-5
    """AdamW learning rate of the backbone."""
    weight_decay: Annotated[float, Range(ge=0)] = 1e-4
    """AdamW weight decay."""
    betas: Annotated[tuple[float, float], Range(ge=0, lt=1)] = (0.9, 0.999)
    """AdamW betas."""
    warmup_steps: Annotated[int, Range(ge=0)] = 0
    """Linear warm-up before the cosine schedule (the reference uses a constant rate)."""
    ema: bool = False
    """Keep an EMA of the weights for evaluation (not in the reference)."""
    binary_actions: Annotated[tuple[int, ...] | None, Range(ge=0, le=10_000)] = None
    """Action dimensions the demonstrations hold at two values (a gripper open or closed), learnt
    as a logit with a cross-entropy loss and executed at the nearer value; None: found in the store
    when training starts (imitation/recipes.py); []: none."""

    def __post_init__(self) -> None:
        check_fields(self)
        self.obs_keys = tuple(self.obs_keys)
        if self.binary_actions is not None:
            self.binary_actions = tuple(int(d) for d in self.binary_actions)
        if self.crop_shape is not None:
            self.crop_shape = tuple(int(x) for x in self.crop_shape)
        if self.dim_model % self.n_heads:
            raise ConfigError(
                f"act.dim_model={self.dim_model} is not divisible by act.n_heads={self.n_heads}; "
                "pick a width that is a multiple of the head count"
            )
        if self.temporal_ensemble_coeff is None and not 1 <= self.n_action_steps <= self.chunk_size:
            raise ConfigError(
                f"act.n_action_steps={self.n_action_steps} must be in 1..chunk_size ({self.chunk_size})"
            )

    @property
    def obs_offsets(self) -> tuple[int, ...]:
        return (0,)

    @property
    def action_offsets(self) -> tuple[int, ...]:
        return tuple(range(self.chunk_size))

    @property
    def schedule(self) -> Schedule:
        """Temporal ensembling over every chunk that covers a tick, or each chunk's first
        ``n_action_steps`` rows in turn."""
        if self.temporal_ensemble_coeff is not None:
            return Schedule(
                "ensemble", 0, self.chunk_size, self.frame_skip, 1, float(self.temporal_ensemble_coeff)
            )
        return Schedule("queue", 0, self.n_action_steps, self.frame_skip, 1)


# ------------------------------------------------------------------------------ transformer layers
def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout. On a CPU each element's mask comes from 16 random bits (four per 64-bit draw):
    dropped with probability round(p * 2^16) / 2^16, within 1e-5 of p. Drawing those bits costs a
    third of F.dropout's Bernoulli sampling, which was a third of a small ACT's training step."""
    if not training or p == 0.0:
        return x
    if x.is_cuda:
        return F.dropout(x, p, True)
    n = x.numel()
    bits = torch.randint(-(2**63), 2**63 - 1, (-(-n // 4),), dtype=torch.int64, device=x.device)
    drop = round(p * 65536)
    keep = bits.view(torch.int16)[:n].view(x.shape) >= drop - 32768  # (int16 + 32768) >= drop
    return x * keep.to(x.dtype).mul_(65536 / (65536 - drop))  # 0 or 1/(1-p), in x's dtype


def attention(
    mha: nn.MultiheadAttention, q_in: Tensor, k_in: Tensor, v_in: Tensor, pad: Tensor | None, training: bool
) -> Tensor:
    """Multi-head attention with ``mha``'s weights, on (B, L, D) tensors without transposing them to
    sequence-first and back; attention-weight dropout uses the cheaper mask above."""
    b, n_q, d = q_in.shape
    n_k, h = k_in.shape[1], mha.num_heads
    w, bias = mha.in_proj_weight, mha.in_proj_bias
    if q_in is k_in:  # self-attention: one projection for queries and keys
        q, k = F.linear(q_in, w[: 2 * d], bias[: 2 * d]).chunk(2, dim=-1)
    else:
        q, k = F.linear(q_in, w[:d], bias[:d]), F.linear(k_in, w[d : 2 * d], bias[d : 2 * d])
    v = F.linear(v_in, w[2 * d :], bias[2 * d :])
    q = q.view(b, n_q, h, -1).transpose(1, 2)  # (B, H, Lq, hd)
    k = k.view(b, n_k, h, -1).transpose(1, 2)  # (B, H, Lk, hd)
    v = v.view(b, n_k, h, -1).transpose(1, 2)
    if training and mha.dropout > 0:
        scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # (B, H, Lq, Lk)
        if pad is not None:
            scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        out = dropout(scores.softmax(-1), mha.dropout, True) @ v
    else:
        mask = None if pad is None else ~pad[:, None, None, :]  # True: may attend
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return mha.out_proj(out.transpose(1, 2).reshape(b, n_q, d))


class EncoderLayer(nn.Module):
    """Self-attention and feed-forward; position embeddings are added to queries and keys only."""

    def __init__(self, cfg: ACTConfig) -> None:
        super().__init__()
        d = cfg.dim_model
        self.self_attn = nn.MultiheadAttention(d, cfg.n_heads, dropout=cfg.dropout, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d, cfg.dim_feedforward), nn.Linear(cfg.dim_feedforward, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.dropout = cfg.dropout
        self.pre_norm = cfg.pre_norm

    def _ff(self, x: Tensor) -> Tensor:
        return self.linear2(dropout(F.relu(self.linear1(x)), self.dropout, self.training))

    def forward(self, x: Tensor, pos: Tensor | None, pad_mask: Tensor | None = None) -> Tensor:
        h = self.norm1(x) if self.pre_norm else x
        qk = h if pos is None else h + pos
        x = x + dropout(
            attention(self.self_attn, qk, qk, h, pad_mask, self.training), self.dropout, self.training
        )
        if self.pre_norm:
            return x + dropout(self._ff(self.norm2(x)), self.dropout, self.training)
        x = self.norm1(x)
        return self.norm2(x + dropout(self._ff(x), self.dropout, self.training))


class DecoderLayer(nn.Module):
    """Self-attention over the queries, cross-attention to the encoder's output, feed-forward."""

    def __init__(self, cfg: ACTConfig) -> None:
        super().__init__()
        d = cfg.dim_model
        self.self_attn = nn.MultiheadAttention(d, cfg.n_heads, dropout=cfg.dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d, cfg.n_heads, dropout=cfg.dropout, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d, cfg.dim_feedforward), nn.Linear(cfg.dim_feedforward, d)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.dropout = cfg.dropout
        self.pre_norm = cfg.pre_norm

    def forward(self, x: Tensor, memory: Tensor, query_pos: Tensor, memory_pos: Tensor) -> Tensor:
        drop = lambda t: dropout(t, self.dropout, self.training)  # noqa: E731
        h = self.norm1(x) if self.pre_norm else x
        qk = h + query_pos
        x = x + drop(attention(self.self_attn, qk, qk, h, None, self.training))
        if not self.pre_norm:
            x = self.norm1(x)
        h = self.norm2(x) if self.pre_norm else x
        x = x + drop(
            attention(self.cross_attn, h + query_pos, memory + memory_pos, memory, None, self.training)
        )
        if not self.pre_norm:
            x = self.norm2(x)
        h = self.norm3(x) if self.pre_norm else x
        x = x + drop(self.linear2(drop(F.relu(self.linear1(h)))))
        return x if self.pre_norm else self.norm3(x)


# ------------------------------------------------------------------------------ the model
class ACTModel(nn.Module):
    def __init__(self, cfg: ACTConfig, io: IOSpec) -> None:
        super().__init__()
        self.cfg, self.io = cfg, io
        d = cfg.dim_model
        self.lowdim_keys = tuple(io.lowdim)
        self.image_keys = tuple(io.images)
        if not self.lowdim_keys and not self.image_keys:
            raise ConfigError("ACT needs at least one observation (act.obs_keys is empty)")
        # The CVAE encoder reads the joint state when there is one.
        self.vae_state_key = "state" if "state" in io.lowdim else None
        if cfg.use_vae:
            self.vae_cls = nn.Embedding(1, d)
            if self.vae_state_key:
                self.vae_state_proj = nn.Linear(io.lowdim["state"], d)
            self.vae_action_proj = nn.Linear(io.action_dim, d)
            self.vae_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_vae_encoder_layers))
            self.vae_out = nn.Linear(d, 2 * cfg.latent_dim)
            n_vae_tokens = 1 + (1 if self.vae_state_key else 0) + cfg.chunk_size
            self.register_buffer("vae_pos", sine_table_1d(n_vae_tokens, d)[None], persistent=False)
        # The policy's encoder: latent, low-dim tokens, image cells.
        self.latent_proj = nn.Linear(cfg.latent_dim, d)
        self.lowdim_proj = nn.ModuleDict(
            {k.replace("/", "__"): nn.Linear(n, d) for k, n in io.lowdim.items()}
        )
        self.token_pos = nn.Embedding(1 + len(self.lowdim_keys), d)
        if self.image_keys:
            n_backbones = 1 if cfg.shared_encoder else len(self.image_keys)
            self.backbones = nn.ModuleList(
                ResNet(cfg.vision_width, (2,) * cfg.vision_layers, norm=cfg.vision_norm)
                for _ in range(n_backbones)
            )
            if cfg.camera_embedding:
                self.camera_pos = nn.Embedding(len(self.image_keys), d)
            if cfg.pretrained_backbone:
                for b in self.backbones:
                    load_resnet_weights(b, cfg.pretrained_backbone)
            else:
                log.info("ACT's backbone trains from scratch (no pretrained_backbone file given)")
            self.image_proj = nn.Conv2d(self.backbones[0].out_channels, d, 1)
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_encoder_layers))
        self.encoder_norm = nn.LayerNorm(d) if cfg.pre_norm else nn.Identity()
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.query_pos = nn.Embedding(cfg.chunk_size, d)
        self.action_head = nn.Linear(d, io.action_dim)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # Xavier-uniform for the transformer weight matrices, as DETR and the reference do.
        for layers in (
            self.encoder_layers,
            self.decoder_layers,
            getattr(self, "vae_layers", nn.ModuleList()),
        ):
            for p in layers.parameters():
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbones.parameters()) if self.image_keys else []

    def _image_tokens(
        self, images: dict[str, Tensor], crop_offsets: dict[str, Tensor] | None
    ) -> tuple[Tensor, Tensor]:
        """Normalised images (B, 3, H, W) -> feature-cell tokens (B, n, D) and their positions."""
        tokens, pos = [], []
        for i, key in enumerate(self.image_keys):
            x = images[key]
            if self.cfg.crop_shape:
                x = crop(x, self.cfg.crop_shape, None if crop_offsets is None else crop_offsets[key])
            fmap = self.image_proj(self.backbones[0 if self.cfg.shared_encoder else i](x))  # (B, D, h, w)
            tokens.append(fmap.flatten(2).transpose(1, 2))  # (B, h*w, D)
            emb = sine_embedding_2d(fmap.shape[2], fmap.shape[3], self.cfg.dim_model).to(fmap)
            emb = emb.flatten(1).T[None]  # (1, h*w, D)
            if self.cfg.camera_embedding:
                emb = emb + self.camera_pos.weight[i]
            pos.append(emb)
        return torch.cat(tokens, 1), torch.cat(pos, 1)

    def encode_latent(
        self, state: Tensor | None, actions: Tensor, action_is_pad: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The CVAE encoder: (mu, log sigma²), each (B, latent)."""
        b = actions.shape[0]
        parts = [self.vae_cls.weight[None].expand(b, -1, -1)]  # (B, 1, D)
        if self.vae_state_key:
            parts.append(self.vae_state_proj(state)[:, None])  # (B, 1, D)
        parts.append(self.vae_action_proj(actions))  # (B, S, D)
        x = torch.cat(parts, 1)  # (B, 1 + 1 + S, D)
        n_prefix = len(parts) - 1
        pad = torch.cat([action_is_pad.new_zeros(b, n_prefix), action_is_pad], 1)  # (B, 1+1+S)
        for layer in self.vae_layers:
            x = layer(x, self.vae_pos, pad)
        mu, log_sigma2 = self.vae_out(x[:, 0]).chunk(2, dim=-1)
        return mu, log_sigma2

    def forward(
        self,
        lowdim: dict[str, Tensor],
        images: dict[str, Tensor],
        z: Tensor,
        crop_offsets: dict[str, Tensor] | None = None,
    ) -> Tensor:
        """Normalised low-dim inputs (B, n) and images (B, C, H, W) -> normalised actions (B, S, A)."""
        b = z.shape[0]
        tokens = [self.latent_proj(z)[:, None]]  # (B, 1, D)
        tokens += [self.lowdim_proj[k.replace("/", "__")](lowdim[k])[:, None] for k in self.lowdim_keys]
        pos = self.token_pos.weight[None]  # (1, 1 + L, D)
        if self.image_keys:
            img_tokens, img_pos = self._image_tokens(images, crop_offsets)
            tokens.append(img_tokens)
            pos = torch.cat([pos, img_pos], 1)
        x = torch.cat(tokens, 1)  # (B, T, D)
        for layer in self.encoder_layers:
            x = layer(x, pos)
        memory = self.encoder_norm(x)
        q = torch.zeros(b, self.cfg.chunk_size, self.cfg.dim_model, device=z.device, dtype=x.dtype)
        query_pos = self.query_pos.weight[None]
        for layer in self.decoder_layers:
            q = layer(q, memory, query_pos, pos)
        return self.action_head(self.decoder_norm(q))  # (B, S, A)


# ------------------------------------------------------------------------------ the policy
def kl_divergence(mu: Tensor, log_sigma2: Tensor) -> Tensor:
    """KL(N(mu, sigma²) ‖ N(0, I)), summed over the latent and averaged over the batch."""
    return (-0.5 * (1 + log_sigma2 - mu.pow(2) - log_sigma2.exp())).sum(-1).mean()


class ACTPolicy(nn.Module):
    title = "ACT"  # how tables and logs name it
    """ACT behind the policy interface (``forward``, ``predict_chunk``, ``select_action``, ``reset``)."""

    name = "act"
    norm_mode = "mean_std"

    def __init__(self, cfg: ACTConfig, io: IOSpec) -> None:
        super().__init__()
        self.cfg, self.io = cfg, io
        # Images: /255, then ImageNet mean/std, as the reference does for its pretrained backbone.
        imagenet = (
            [1 / s for s in IMAGENET_STD],
            [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)],
        )
        self.normalizer = Normalizer(
            {**io.lowdim, "action": io.action_dim},
            self.norm_mode,
            {k: v[2] for k, v in io.images.items()},
            imagenet,
        )
        self.model = ACTModel(cfg, io)
        self.binary = BinaryActions(io.action_dim, cfg.binary_actions or ())
        self.ensembler = TemporalEnsembler(cfg.chunk_size, cfg.temporal_ensemble_coeff or 0.0)
        self.queue = ActionQueue(cfg.n_action_steps)
        self.env_generators = EnvGenerators()  # unused: ACT's inference draws nothing
        self.graphs: CudaGraphs | None = None

    def set_stats(self, stats: Mapping[str, Mapping[str, Any]]) -> None:
        """Normalisation statistics (and two-valued action levels) from a store's ``stats()``."""
        self.normalizer.set_stats(stats)
        self.binary.set_stats(stats["action"])

    # ---- training
    def parameter_groups(self) -> list[dict[str, Any]]:
        backbone = {id(p) for p in self.model.backbone_parameters()}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in backbone]
        groups = [{"params": rest, "lr": self.cfg.lr}]
        if backbone:
            groups.append(
                {
                    "params": [p for p in self.model.backbone_parameters() if p.requires_grad],
                    "lr": self.cfg.lr_backbone,
                }
            )
        return groups

    def _inputs(self, obs: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Observation windows (B, 1, ...) -> normalised low-dim (B, n) and images (B, C, H, W)."""
        lowdim = {k: self.normalizer.normalize(k, obs[k][:, -1].float()) for k in self.model.lowdim_keys}
        images = {
            k: self.normalizer.normalize_image(k, to_unit(obs[k][:, -1])) for k in self.model.image_keys
        }
        return lowdim, images

    def _crop_offsets(self, images: dict[str, Tensor], draws: Draws | None) -> dict[str, Tensor] | None:
        if not self.cfg.crop_shape or not self.training or draws is None:
            return None
        return {
            key: draws.crop_offsets(Draws.CROP + 2 * i, x.shape[2:4], self.cfg.crop_shape)
            for i, (key, x) in enumerate(images.items())
        }

    def forward(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Training loss of a batch from ``WindowDataset`` (+ ``draw_seed`` (B,) for the random draws)."""
        lowdim, images = self._inputs(batch)
        actions = self.normalizer.normalize("action", batch["action"].float())  # (B, S, A)
        pad = batch["action_is_pad"]  # (B, S)
        b = actions.shape[0]
        draws = Draws(batch["draw_seed"]) if "draw_seed" in batch else None
        if self.cfg.use_vae:
            state = lowdim.get("state")
            mu, log_sigma2 = self.model.encode_latent(state, actions, pad)
            eps = draws.normal(Draws.LATENT, (self.cfg.latent_dim,)) if draws else torch.randn_like(mu)
            z = mu + (0.5 * log_sigma2).exp() * eps
            kld = kl_divergence(mu, log_sigma2)
        else:
            z = actions.new_zeros(b, self.cfg.latent_dim)
            kld = actions.new_zeros(())
        pred = self.model(lowdim, images, z, self._crop_offsets(images, draws))  # (B, S, A)
        valid = ~pad[..., None]
        if not self.binary:
            l1 = ((pred - actions).abs() * valid).mean()
            loss = l1 + self.cfg.kl_weight * kld
            return loss, {"l1": l1.detach(), "kld": kld.detach()}
        # Two-valued dimensions: their outputs are logits, scored by cross-entropy against open /
        # closed; the L1 covers the others, averaged as it is without them.
        m = self.binary.mask
        l1 = ((pred - actions).abs() * valid)[..., ~m].mean()
        bce = F.binary_cross_entropy_with_logits(
            pred[..., m], self.binary.targets(batch["action"].float())[..., m], reduction="none"
        )
        bce = (bce * valid).mean()
        loss = l1 + bce + self.cfg.kl_weight * kld
        return loss, {"l1": l1.detach(), "bce": bce.detach(), "kld": kld.detach()}

    # ---- inference
    @torch.no_grad()
    def predict_chunk(self, obs: Mapping[str, Tensor]) -> Tensor:
        """Observation windows (B, 1, ...) -> actions (B, chunk_size, A) in robot units (z = 0);
        from a CUDA graph on a GPU (``use_cuda_graphs``)."""
        inputs = {k: obs[k] for k in (*self.model.lowdim_keys, *self.model.image_keys)}
        if self.graphs is not None and next(iter(inputs.values())).is_cuda:
            out = self.graphs(inputs)
            if out is not None:
                return out
        return self._chunk(inputs)

    def use_cuda_graphs(self, enabled: bool = True) -> None:
        """Replay the chunk prediction from CUDA graphs on a GPU (``imitation/policies/graphs.py``);
        off by default, on for the evaluator and the deploy loop (``checkpoint.load_policy``)."""
        self.graphs = CudaGraphs(self._chunk, "ACT") if enabled else None

    def _chunk(self, obs: Mapping[str, Tensor]) -> Tensor:
        lowdim, images = self._inputs(obs)
        b = next(iter(obs.values())).shape[0]
        z = torch.zeros(b, self.cfg.latent_dim, device=self.device)
        out = self.model(lowdim, images, z)
        actions = self.normalizer.unnormalize("action", out)
        if self.binary:
            actions = torch.where(self.binary.mask, self.binary.from_logits(out), actions)
        return self.binary.snap(actions)

    @torch.no_grad()
    def select_action(self, obs: Mapping[str, Tensor]) -> Tensor:
        """This step's observations (B, ...) -> this step's actions (B, A)."""
        window = {k: v[:, None] for k, v in obs.items() if k in self.cfg.obs_keys}
        if self.cfg.temporal_ensemble_coeff is not None:
            return self.binary.snap(self.ensembler.update(self.predict_chunk(window)))
        b = next(iter(window.values())).shape[0]
        need = self.queue.need(b, self.device)
        if need.any():
            rows = need.nonzero()[:, 0]
            self.queue.fill(rows, self.predict_chunk(rows_of(window, rows)))
        return self.binary.snap(self.queue.pop())

    def reset(self, done_mask: Tensor | None = None, seeds: list[int] | None = None) -> None:
        """Forget the running chunks of the environments in ``done_mask`` (all when None)."""
        mask = None if done_mask is None else torch.as_tensor(done_mask, dtype=torch.bool)
        self.ensembler.reset(mask)
        self.queue.reset(mask)

    @property
    def device(self) -> torch.device:
        return self.model.action_head.weight.device

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.cfg)
