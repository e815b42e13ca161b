"""The mask-site seam: broadcasting of unit and channel masks, the rescale rule, width errors."""

import pytest
import torch

from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import MaskSite, Site, apply_mask, site_features


def test_unit_mask_broadcasts_over_tokens_against_a_loop():
    site = Site(index=0, name="s", width=4, kind="unit")
    activation = torch.randn(3, 5, 4)
    mask = torch.bernoulli(torch.full((3, 4), 0.5))
    expected = torch.empty_like(activation)
    for b in range(3):
        for t in range(5):
            for i in range(4):
                expected[b, t, i] = activation[b, t, i] * mask[b, i]
    assert torch.equal(apply_mask(site, activation, mask), expected)


def test_channel_mask_broadcasts_over_space_against_a_loop():
    site = Site(index=0, name="s", width=3, kind="channel")
    activation = torch.randn(2, 3, 4, 5)
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    expected = activation.clone()
    for b in range(2):
        for c in range(3):
            if mask[b, c] == 0:
                expected[b, c] = 0.0
    assert torch.equal(apply_mask(site, activation, mask), expected)


def test_rescale_rule_multiplies_kept_units_by_width_over_kept():
    site = Site(index=0, name="s", width=4, kind="unit", rescale=True)
    activation = torch.ones(2, 4)
    mask = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
    out = apply_mask(site, activation, mask)
    # by hand: row 0 keeps 1 of 4 -> x4; row 1 keeps 3 of 4 -> x4/3 (the 1e-6 guard is negligible)
    expected = torch.tensor([[4.0, 0, 0, 0], [4 / 3, 4 / 3, 0, 4 / 3]])
    assert torch.allclose(out, expected, rtol=1e-5)
    # an explicit scale overrides the site's rule
    assert torch.allclose(apply_mask(site, activation, mask, 2.0), 2.0 * mask)
    per_example = torch.tensor([1.0, 3.0])
    assert torch.allclose(apply_mask(site, activation, mask, per_example), mask * per_example[:, None])


def test_mask_of_wrong_shape_is_rejected_with_the_site_name():
    site = Site(index=0, name="hidden.2", width=4, kind="unit")
    with pytest.raises(ValueError, match="hidden.2.*expected \\(2, 4\\)"):
        apply_mask(site, torch.randn(2, 4), torch.ones(2, 5))


class _Tiny(MaskedNet):
    def __init__(self):
        super().__init__((3,), 2)
        self.site = MaskSite(3)
        self.register_sites()

    def body(self, x):
        return self.site(x)[:, :2]


def test_activation_of_wrong_width_at_a_site_is_rejected():
    net = _Tiny()
    net.site.width = 5  # a backbone bug: the declared width does not match the activation
    with pytest.raises(ValueError, match="expected width 5"):
        net(torch.randn(2, 3), lambda site, h: h)


def test_site_constructor_rejects_bad_width_and_kind():
    with pytest.raises(ValueError, match="width >= 1"):
        MaskSite(0)
    with pytest.raises(ValueError, match="kind"):
        MaskSite(3, "token")


def test_site_features_are_the_units_or_the_global_average_per_channel():
    unit = Site(index=0, name="u", width=4, kind="unit")
    channel = Site(index=1, name="c", width=3, kind="channel")
    flat = torch.randn(2, 4)
    assert torch.equal(site_features(unit, flat), flat)
    tokens = torch.randn(2, 6, 4)
    assert torch.allclose(site_features(unit, tokens), tokens.sum(dim=1) / 6)
    maps = torch.randn(2, 3, 4, 4)
    manual = torch.stack([torch.stack([maps[b, c].sum() / 16 for c in range(3)]) for b in range(2)])
    assert torch.allclose(site_features(channel, maps), manual, atol=1e-6)
