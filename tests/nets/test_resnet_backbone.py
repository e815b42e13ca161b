"""CifarResNet18: shapes, the 8 (or 2) channel sites on the residual branches, masks really applied."""

import pytest
import torch
import torch.nn.functional as F

from gflowout.nets.resnet import CifarResNet18


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return CifarResNet18(num_classes=10).eval()


def test_shapes_and_all_eight_sites(resnet):
    assert resnet(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert [s.width for s in resnet.sites] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert all(s.kind == "channel" and not s.rescale for s in resnet.sites)
    assert [s.index for s in resnet.sites] == list(range(8))


def test_last2_has_two_sites_on_layer4():
    net = CifarResNet18(num_classes=100, mask_blocks="last2")
    assert [(s.name, s.width) for s in net.sites] == [("blocks.6.mask", 512), ("blocks.7.mask", 512)]
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 100)
    with pytest.raises(ValueError, match="mask_blocks"):
        CifarResNet18(mask_blocks="first")


def test_sampler_sees_the_residual_branch_maps_in_order(resnet):
    shapes = []
    resnet(torch.randn(2, 3, 32, 32), lambda site, h: shapes.append((site.index, tuple(h.shape))) or h)
    expected_maps = [(64, 32), (64, 32), (128, 16), (128, 16), (256, 8), (256, 8), (512, 4), (512, 4)]
    assert shapes == [(i, (2, c, s, s)) for i, (c, s) in enumerate(expected_maps)]


def test_all_ones_masks_are_the_identity(resnet):
    x = torch.randn(2, 3, 32, 32)
    ones = lambda site, h: h * torch.ones(h.shape[0], site.width)[:, :, None, None]  # noqa: E731
    assert torch.allclose(resnet(x, ones), resnet(x), atol=1e-6)


def test_zero_mask_on_last_block_removes_its_residual_branch(resnet):
    x = torch.randn(2, 3, 32, 32)
    zero_last = lambda site, h: h * 0 if site.index == 7 else h  # noqa: E731
    # Reference by hand: block 7 has an identity shortcut, so without its branch it is relu(input).
    features = resnet.blocks[:7](resnet.stem(x))
    expected = resnet.head(F.relu(features).mean(dim=(2, 3)))
    out = resnet(x, zero_last)
    assert torch.allclose(out, expected, atol=1e-5)
    assert not torch.allclose(out, resnet(x), atol=1e-3)


def test_site_consumers_are_the_next_blocks_convs_or_the_head(resnet):
    consumers = resnet.site_consumers()
    assert len(consumers) == 8
    assert consumers[0][0] is resnet.blocks[1].conv1.weight and len(consumers[0]) == 1
    assert consumers[1][1] is resnet.blocks[2].shortcut[0].weight  # stage change: conv1 and the 1x1 shortcut
    assert consumers[7] == [resnet.head.weight]
