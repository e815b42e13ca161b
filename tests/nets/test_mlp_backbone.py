"""The paper's MNIST MLP: shapes, its three unit sites, and masks really applied."""

import torch
import torch.nn.functional as F

from gflowout.nets.mlp import MLP


def test_mlp_shapes_and_sites():
    net = MLP()
    assert [(s.index, s.width, s.kind, s.rescale) for s in net.sites] == [(i, 1024, "unit", True) for i in range(3)]
    assert net(torch.rand(5, 1, 28, 28)).shape == (5, 10)


def test_mlp_sampler_sees_each_site_in_order_with_the_post_activation_tensor():
    torch.manual_seed(0)
    net = MLP(input_shape=(6,), hidden=(5, 4), num_classes=3)
    x = torch.randn(2, 6)
    seen = []

    def record(site, h):
        seen.append((site.index, h.clone()))
        return h

    net(x, record)
    first = F.leaky_relu(net.hidden[0](x), 0.01)  # independent recomputation of layer 1
    assert [i for i, _ in seen] == [0, 1]
    assert torch.allclose(seen[0][1], first)
    assert seen[1][1].shape == (2, 4)


def test_zero_mask_on_last_site_leaves_only_the_head_bias():
    net = MLP(input_shape=(6,), hidden=(5, 4), num_classes=3)
    x = torch.randn(2, 6)

    def zero_last(site, h):
        return h * 0 if site.index == 1 else h

    assert torch.allclose(net(x, zero_last), net.head.bias.expand(2, 3))
