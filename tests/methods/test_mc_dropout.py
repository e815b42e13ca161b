"""MC dropout: inverted scaling keeps the mean activation, weight scaling, keep rate."""

import math

import pytest
import torch

from gflowout.methods.mc import MCDropout
from gflowout.nets.mlp import MLP
from gflowout.nets.sites import Site

SAMPLES = 20000


def _mean_within_standard_errors(masked, activation, keep):
    """Per-unit check: the mean of n masked copies is activation +- 5 standard errors, where one
    inverted-scaled Bernoulli sample has standard deviation |h| sqrt((1 - keep) / keep)."""
    n = masked.shape[0]
    mean = masked.mean(dim=0)
    standard_error = activation.abs() * math.sqrt((1 - keep) / keep) / math.sqrt(n)
    assert torch.all((mean - activation).abs() <= 5 * standard_error + 1e-6)


@pytest.mark.parametrize("keep", [0.5, 0.8])
def test_inverted_scaling_mean_equals_unmasked_activation_unit_site(keep):
    torch.manual_seed(0)
    method = MCDropout(MLP(input_shape=(3,), hidden=(4,), num_classes=2), keep_prob=keep)
    site = Site(index=0, name="s", width=40, kind="unit", rescale=True)
    activation = torch.randn(40, dtype=torch.float64)
    masked = method.sample_masked(site, activation.expand(SAMPLES, 40).clone())
    _mean_within_standard_errors(masked, activation, keep)
    kept = (masked != 0).double().mean()
    assert abs(kept - keep) <= 5 * math.sqrt(keep * (1 - keep) / masked.numel())
    # a kept unit is scaled by exactly 1 / keep
    nonzero = masked != 0
    assert torch.allclose(masked[nonzero], (activation.expand_as(masked) / keep)[nonzero])


def test_inverted_scaling_mean_equals_unmasked_activation_channel_site():
    torch.manual_seed(1)
    method = MCDropout(MLP(input_shape=(3,), hidden=(4,), num_classes=2), keep_prob=0.5)
    site = Site(index=0, name="c", width=3, kind="channel")
    activation = torch.randn(3, 2, 2, dtype=torch.float64)
    masked = method.sample_masked(site, activation.expand(SAMPLES, 3, 2, 2).clone())
    _mean_within_standard_errors(masked, activation, 0.5)
    # a channel is dropped as a whole: its map is all zero or all kept
    zero = (masked == 0).flatten(2)
    assert torch.all(zero.all(dim=2) | (~zero).all(dim=2))


def test_site_scaling_and_weight_scaling():
    torch.manual_seed(2)
    method = MCDropout(MLP(input_shape=(3,), hidden=(4,), num_classes=2), keep_prob=0.8, scaling="site")
    plain = Site(index=0, name="c", width=5, kind="channel", rescale=False)
    activation = torch.randn(5, dtype=torch.float64)
    masked = method.sample_masked(plain, activation.expand(SAMPLES, 5).clone())
    # no rescaling on a plain site: the mean is keep * h, and weight scaling gives exactly that
    n = masked.shape[0]
    error = (masked.mean(0) - 0.8 * activation).abs()
    assert torch.all(error <= 5 * activation.abs() * math.sqrt(0.8 * 0.2 / n) + 1e-9)
    assert torch.allclose(method.weight_scaled(plain, activation[None]), 0.8 * activation[None])
    inverted = MCDropout(method.net, keep_prob=0.8)
    assert torch.equal(inverted.weight_scaled(plain, activation[None]), activation[None])


def test_predictions_vary_across_samples_and_deterministic_pass_is_the_unmasked_net():
    torch.manual_seed(3)
    net = MLP(input_shape=(6,), hidden=(32, 32), num_classes=3)
    method = MCDropout(net)
    x = torch.randn(4, 6)
    logits = method.predict(x, samples=5)
    assert logits.shape == (5, 4, 3)
    assert not torch.allclose(logits[0], logits[1])
    with torch.no_grad():
        assert torch.allclose(method.predict_deterministic(x)[0], net(x))


def test_bad_keep_probability_is_rejected():
    net = MLP(input_shape=(3,), hidden=(4,), num_classes=2)
    with pytest.raises(ValueError, match="keep probabilities must be in"):
        MCDropout(net, keep_prob=0.0)
    with pytest.raises(ValueError, match="scaling"):
        MCDropout(net, scaling="bogus")


@pytest.mark.parametrize("keep", [0.0, 0.3, 1.0, "per-unit"])
def test_mask_draw_is_rand_below_keep_written_in_place(keep):
    """bernoulli_masks writes rand < p over its uniforms: the same 0/1 float mask as the plain formula, same seed."""
    from gflowout.methods.mc import bernoulli_masks

    keep_prob = torch.linspace(0, 1, 40) if keep == "per-unit" else keep
    torch.manual_seed(5)
    mask = bernoulli_masks(64, 40, keep_prob, torch.zeros(1, dtype=torch.float64))
    torch.manual_seed(5)
    expected = (torch.rand(64, 40, dtype=torch.float64) < keep_prob).double()
    assert mask.dtype == torch.float64 and torch.equal(mask, expected)
