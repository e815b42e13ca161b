"""The paper's MNIST MLP: shapes, its three unit sites, and masks really applied."""

import pytest
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


def test_forward_from_site_equals_the_full_pass_from_the_sites_activation():
    torch.manual_seed(1)
    net = MLP(input_shape=(6,), hidden=(5, 4, 3), num_classes=3)
    x = torch.randn(4, 6)
    seen = {}

    def scale_and_record(site, h):  # a deterministic sampler that changes every site's output
        seen[site.index] = h
        return h * torch.linspace(0.0, 1.0, h.shape[1])

    full = net(x, scale_and_record)
    for index in range(3):
        calls = []

        def counting(site, h):
            calls.append(site.index)
            return scale_and_record(site, h)

        resumed = net.forward_from_site(index, seen[index].clone(), counting)
        assert calls == list(range(index, 3))  # the site itself and every later site, in order
        assert torch.equal(resumed, full)
    assert not torch.equal(net.forward_from_site(2, seen[2]), full)  # no sampler: no masks
    with pytest.raises(IndexError, match="site index 3"):
        net.forward_from_site(3, seen[2])
