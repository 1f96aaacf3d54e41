"""The ResNet backbone, loading torchvision-named weights, crops and spatial-softmax keypoints."""

from __future__ import annotations

import pytest
import torch

from imitation.errors import ConfigError
from imitation.policies.vision import ResNet, SpatialSoftmax, _crop_gather, crop, load_resnet_weights


def test_resnet18_shapes_and_parameter_count():
    net = ResNet(64, norm="batch")
    # torchvision's resnet18 has 11,689,512 parameters, 513,000 of them in the fc head we leave out.
    assert sum(p.numel() for p in net.parameters()) == 11_689_512 - 513_000
    assert net(torch.zeros(2, 3, 96, 96)).shape == (2, 512, 3, 3)
    small = ResNet(16, norm="group")
    assert small(torch.zeros(1, 3, 84, 84)).shape == (1, 128, 3, 3)


def test_pretrained_weights_load_from_a_torchvision_named_file(tmp_path):
    source = ResNet(64, norm="batch")
    for m in source.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    state = {**source.state_dict(), "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    torch.save(state, tmp_path / "resnet18.pth")
    target = ResNet(64, norm="frozen_bn")
    load_resnet_weights(target, tmp_path / "resnet18.pth")
    source.eval()
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(target(x), source(x))
    assert not any(p.requires_grad for n, p in target.named_parameters() if "bn" in n)  # frozen statistics
    with pytest.raises(ConfigError, match="GroupNorm"):
        load_resnet_weights(ResNet(64, norm="group"), tmp_path / "resnet18.pth")
    with pytest.raises(ConfigError, match="width 64"):
        load_resnet_weights(ResNet(32, norm="frozen_bn"), tmp_path / "resnet18.pth")
    with pytest.raises(ConfigError, match="not found"):
        load_resnet_weights(target, tmp_path / "missing.pth")


def test_crops():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    torch.testing.assert_close(crop(x, (4, 4)), x[:, :, 1:5, 1:5])
    out = crop(x, (3, 2), torch.tensor([[0, 0], [3, 4]]))
    torch.testing.assert_close(out[0], x[0, :, 0:3, 0:2])
    torch.testing.assert_close(out[1], x[1, :, 3:6, 4:6])
    with pytest.raises(ConfigError):
        crop(x, (8, 8))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_per_image_crops_on_a_cpu_match_the_gather_and_keep_the_memory_format(layout):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 12, 10, generator=g).contiguous(memory_format=layout)
    offsets = torch.stack(
        [torch.randint(0, 5, (16,), generator=g), torch.randint(0, 3, (16,), generator=g)], 1
    )
    out = crop(x, (8, 8), offsets)  # the CPU path: one slice per image
    assert torch.equal(out, _crop_gather(x, (8, 8), offsets))
    for i, (top, left) in enumerate(offsets.tolist()):
        assert torch.equal(out[i], x[i, :, top : top + 8, left : left + 8])
    assert out.is_contiguous(memory_format=layout)


def test_spatial_softmax_finds_a_bright_spot():
    ss = SpatialSoftmax(1, 5, 5, 1)
    ss.proj.weight.data.fill_(50.0)
    ss.proj.bias.data.zero_()
    fmap = torch.zeros(1, 1, 5, 5)
    fmap[0, 0, 4, 0] = 1.0  # bottom-left: x = -1, y = +1
    torch.testing.assert_close(ss(fmap), torch.tensor([[-1.0, 1.0]]), atol=1e-3, rtol=0)
