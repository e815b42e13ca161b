"""CifarResNet18's `width` option: stages of width x (1, 2, 4, 8) channels, the default the standard net."""

import pytest
import torch

from gflowout.nets.resnet import CifarResNet18


def hand_parameter_count(width: int, classes: int) -> int:
    """Parameters of the CIFAR ResNet-18 (3x3 stem, no bias, BasicBlocks [2, 2, 2, 2]) counted by hand."""
    total = 3 * width * 9 + 2 * width  # stem conv + BN
    c_in = width
    for c in (width, 2 * width, 4 * width, 8 * width):
        for _block in range(2):
            total += c_in * c * 9 + 2 * c + c * c * 9 + 2 * c
            if c_in != c:
                total += c_in * c + 2 * c  # 1x1 shortcut conv + BN
            c_in = c
    return total + 8 * width * classes + classes


def test_default_width_is_the_standard_resnet18():
    net = CifarResNet18(num_classes=10)
    # 11,173,962: the widely quoted size of the CIFAR-10 ResNet-18 (kuangliu/pytorch-cifar, torchvision-style)
    assert sum(p.numel() for p in net.parameters()) == 11_173_962 == hand_parameter_count(64, 10)
    explicit = CifarResNet18(num_classes=10, width=64)
    assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in explicit.state_dict().items()}


@pytest.mark.parametrize("width", [4, 6])
def test_narrow_widths_scale_every_stage(width):
    torch.manual_seed(0)
    net = CifarResNet18(num_classes=7, width=width).eval()
    assert [s.width for s in net.sites] == [
        width,
        width,
        2 * width,
        2 * width,
        4 * width,
        4 * width,
        8 * width,
        8 * width,
    ]
    assert sum(p.numel() for p in net.parameters()) == hand_parameter_count(width, 7)
    assert net(torch.randn(3, 3, 32, 32)).shape == (3, 7)
    last2 = CifarResNet18(num_classes=7, width=width, mask_blocks="last2")
    assert [s.width for s in last2.sites] == [8 * width, 8 * width]


@pytest.mark.parametrize("width", [0, -4, 2.5, True])
def test_bad_width_is_refused(width):
    with pytest.raises(ValueError, match="width must be a positive int"):
        CifarResNet18(width=width)
