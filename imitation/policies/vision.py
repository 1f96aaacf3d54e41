"""Image encoders: a ResNet-18-family backbone written here, spatial-softmax keypoints, crops.

The backbone follows He et al. 2016 (basic blocks, [2, 2, 2, 2]) with a configurable base width
(64 is ResNet-18; 16 or 32 keep CPU configs small). Its parameter names are torchvision's, so
pretrained ResNet-18 weights load from a local state-dict file; nothing is ever downloaded.
Normalisation layers:
- ``group``: GroupNorm with channels/16 groups, as Diffusion Policy trains its encoder from scratch;
- ``frozen_bn``: BatchNorm with fixed statistics and affine parameters, as ACT's reference code
  uses on top of ImageNet weights;
- ``batch``: ordinary BatchNorm.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imitation.errors import ConfigError

NORMS = ("group", "frozen_bn", "batch")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d whose statistics and affine parameters are buffers: they never train."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        state_dict.pop(prefix + "num_batches_tracked", None)  # torchvision files carry it
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        return nn.GroupNorm(max(1, channels // 16), channels)
    if kind == "frozen_bn":
        return FrozenBatchNorm2d(channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ConfigError(f"norm {kind!r} is not one of {NORMS}")


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = make_norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = make_norm(norm, c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), make_norm(norm, c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """ResNet trunk (no pooling head): (B, C, H, W) -> feature map (B, 8·width, H/32, W/32)."""

    def __init__(self, width: int = 64, layers: tuple[int, ...] = (2, 2, 2, 2), norm: str = "group") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ConfigError(f"vision norm {norm!r} is not one of {NORMS}")
        if width < 16 or width % 16:
            raise ConfigError(f"vision width {width} must be a multiple of 16 (64 is ResNet-18)")
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = make_norm(norm, width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = width
        for i, n in enumerate(layers):
            c_out = width * 2**i
            blocks = [
                BasicBlock(c_in if j == 0 else c_out, c_out, 2 if (i > 0 and j == 0) else 1, norm)
                for j in range(n)
            ]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            c_in = c_out
        self.n_layers = len(layers)
        self.out_channels = c_in

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        for i in range(self.n_layers):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


def load_resnet_weights(model: ResNet, path: str | Path) -> None:
    """Load torchvision-named ResNet weights (``.safetensors``, ``.pt`` or ``.pth``) into ``model``.

    The classifier (``fc.*``) is ignored. Tensors are loaded without unpickling code objects.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"pretrained backbone weights {str(path)!r} not found; give the path of a local ResNet-18 "
            "state dict (torchvision naming), or leave it empty to train the backbone from scratch"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    if any(isinstance(m, nn.GroupNorm) for m in model.modules()):
        raise ConfigError(
            "pretrained ResNet weights carry BatchNorm statistics, but this backbone uses GroupNorm; "
            "set the vision norm to 'frozen_bn' (or 'batch') to use them"
        )
    own = model.state_dict()
    bad = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if bad:
        raise ConfigError(
            f"{path}: {bad[0]} has shape {tuple(state[bad[0]].shape)}, the backbone "
            f"{tuple(own[bad[0]].shape)}; ResNet-18 weights need vision width 64"
        )
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ConfigError(f"{path} lacks {missing[:3]}…; is it a ResNet-18 state dict?")
    model.load_state_dict(state, strict=False)


def crop(images: Tensor, size: tuple[int, int], offsets: Tensor | None = None) -> Tensor:
    """Crop (N, C, H, W) to ``size``: centred, or at per-image ``offsets`` (N, 2) of (top, left)."""
    h, w = images.shape[-2:]
    ch, cw = size
    if (ch, cw) == (h, w):
        return images
    if ch > h or cw > w:
        raise ConfigError(f"crop {size} is larger than the images ({h}, {w}); use a crop ≤ the image size")
    if offsets is None:  # centred, rounding as torchvision's CenterCrop does
        top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
        return images[..., top : top + ch, left : left + cw]
    if images.device.type == "cpu" and not torch.compiler.is_compiling():
        return _crop_each(images, size, offsets)
    return _crop_gather(images, size, offsets)


def _crop_each(images: Tensor, size: tuple[int, int], offsets: Tensor) -> Tensor:
    """``crop`` by one slice copy per image, keeping the memory format: on a CPU 2.2-2.3x faster than
    ``_crop_gather`` (BENCHMARKS.md, "Where a Diffusion Policy camera step goes")."""
    ch, cw = size
    last = images.is_contiguous(memory_format=torch.channels_last)
    out = torch.empty(
        (images.shape[0], images.shape[1], ch, cw),
        dtype=images.dtype,
        device=images.device,
        memory_format=torch.channels_last if last else torch.contiguous_format,
    )
    for i, (top, left) in enumerate(offsets.tolist()):
        out[i] = images[i, :, top : top + ch, left : left + cw]
    return out


def _crop_gather(images: Tensor, size: tuple[int, int], offsets: Tensor) -> Tensor:
    """``crop`` as one gather: no host round trip for the offsets (a GPU's choice), and a graph
    torch.compile can trace."""
    ch, cw = size
    rows = (offsets[:, 0, None] + torch.arange(ch, device=images.device))[:, :, None]  # (N, ch, 1)
    cols = (offsets[:, 1, None] + torch.arange(cw, device=images.device))[:, None, :]  # (N, 1, cw)
    n = torch.arange(images.shape[0], device=images.device)[:, None, None]
    return images.permute(0, 2, 3, 1)[n, rows, cols].permute(0, 3, 1, 2)  # (N, C, ch, cw)


class SpatialSoftmax(nn.Module):
    """Keypoints from a feature map (Levine et al. 2016): the expected (x, y) of each of ``n``
    learned attention maps, in [-1, 1] image coordinates -> (B, 2n)."""

    def __init__(self, channels: int, height: int, width: int, n_keypoints: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, n_keypoints, 1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1))  # (H*W, 2)

    def forward(self, features: Tensor) -> Tensor:
        attn = self.proj(features).flatten(2).softmax(dim=-1)  # (B, K, H*W)
        return (attn @ self.grid).flatten(1)  # (B, 2K)


def to_unit(images: Tensor) -> Tensor:
    """uint8 (…, H, W, C) -> float (…, C, H, W) in [0, 1]."""
    return images.movedim(-1, -3).float() / 255.0


def feature_map_size(image_hw: tuple[int, int], layers: int = 4) -> tuple[int, int]:
    """Spatial size after the stem (/4) and ``layers - 1`` stride-2 stages."""
    h, w = image_hw
    for _ in range(2 + layers - 1):
        h, w = (h + 1) // 2, (w + 1) // 2
    return h, w
