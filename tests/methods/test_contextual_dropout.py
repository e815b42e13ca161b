"""Contextual dropout: ARM against the exact gradient by enumeration, KLs, groups, batch-norm stats."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Normal, kl_divergence

from gflowout.methods.contextual import ContextualDropout, bernoulli_kl, gaussian_kl
from gflowout.nets.mlp import MLP
from gflowout.nets.resnet import CifarResNet18
from gflowout.nets.sites import apply_mask


def _spread_method(seed, hidden, bottleneck_factor, kl_weight=0.0):
    """A float64 MLP 4 -> hidden -> 3 under contextual dropout with N(0, 1) bottleneck weights: with k = 1 the keep
    probabilities spread over (0, 1), so the gradient tests have signal."""
    torch.manual_seed(seed)
    net = MLP(input_shape=(4,), hidden=hidden, num_classes=3).double()
    method = ContextualDropout(net, k=1.0, bottleneck_factor=bottleneck_factor, kl_weight=kl_weight).double()
    with torch.no_grad():
        for p in method.bottlenecks.parameters():
            p.normal_(0.0, 1.0)
    return method


def _tiny_method():
    """One site of 6 units; a wider bottleneck (factor 2) also spreads the keep probabilities."""
    return _spread_method(seed=0, hidden=(6,), bottleneck_factor=2)


def _exact_expected_loss(method, x, y):
    """E_z[CE] with z ~ q(z | x) by enumerating all 2^6 masks of the single site."""
    net, site = method.net, method.net.sites[0]
    hidden = F.leaky_relu(net.hidden[0](x), 0.01)
    logits_q = method.keep_logits(site, hidden)  # [batch, 6]
    total = 0.0
    for bits in itertools.product([0.0, 1.0], repeat=site.width):
        mask = torch.tensor(bits, dtype=x.dtype).expand(x.shape[0], -1)
        log_prob = (mask * F.logsigmoid(logits_q) + (1 - mask) * F.logsigmoid(-logits_q)).sum(dim=1)
        with torch.no_grad():
            ce = F.cross_entropy(net.head(apply_mask(site, hidden, mask)), y, reduction="none")
        total = total + (log_prob.exp() * ce).mean()
    return total


def test_arm_gradient_matches_the_exact_gradient_by_enumeration():
    method = _tiny_method()
    params = list(method.bottlenecks.parameters())
    x = torch.randn(3, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    exact = torch.autograd.grad(_exact_expected_loss(method, x, y), params)
    exact = torch.cat([g.flatten() for g in exact])

    # Each estimate averages ARM over the 3 examples repeated 500 times; 40 independent estimates.
    repeats, estimates = 500, []
    torch.manual_seed(1)
    for _ in range(40):
        result = method.training_losses(x.repeat(repeats, 1), y.repeat(repeats))
        grads = torch.autograd.grad(result.losses["dropout"], params)
        estimates.append(torch.cat([g.flatten() for g in grads]))
    estimates = torch.stack(estimates)
    mean = estimates.mean(0)
    standard_error = estimates.std(0) / math.sqrt(estimates.shape[0])
    assert exact.abs().max() > 10 * standard_error.max()  # the test has signal
    assert torch.all((mean - exact).abs() <= 4.5 * standard_error + 1e-9)


def test_a_wrong_estimator_sign_would_fail_the_enumeration_check():
    # The same comparison against the negated gradient must fail: the tolerance is tight enough.
    method = _tiny_method()
    params = list(method.bottlenecks.parameters())
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 1, 2])
    exact = torch.cat([g.flatten() for g in torch.autograd.grad(_exact_expected_loss(method, x, y), params)])
    torch.manual_seed(2)
    result = method.training_losses(x.repeat(4000, 1), y.repeat(4000))
    estimate = torch.cat([g.flatten() for g in torch.autograd.grad(result.losses["dropout"], params)])
    assert F.cosine_similarity(estimate, exact, dim=0) > 0.9
    assert F.cosine_similarity(estimate, -exact, dim=0) < -0.9


def test_kl_terms_match_torch_distributions():
    q, p = torch.randn(50, dtype=torch.float64) * 3, torch.randn(50, dtype=torch.float64) * 3
    assert torch.allclose(bernoulli_kl(q, p), kl_divergence(Bernoulli(logits=q), Bernoulli(logits=p)))
    sigma = lambda logits: torch.exp(-0.5 * logits)  # noqa: E731 - sigma^2 = (1 - pi) / pi
    assert torch.allclose(gaussian_kl(q, p), kl_divergence(Normal(1.0, sigma(q)), Normal(1.0, sigma(p))))


def test_initial_keep_and_prior_follow_the_published_defaults():
    net = MLP(input_shape=(5,), hidden=(20,), num_classes=2)
    method = ContextualDropout(net, init_drop=0.2)
    assert float(method.k * method.prior_eta[0].detach()) == pytest.approx(math.log(0.8 / 0.2))  # eta = 138.6
    assert float(method.prior_eta[0].detach()) == pytest.approx(138.629, abs=1e-3)
    with torch.no_grad():
        method.bottlenecks[0].outer.weight.zero_()
    logits = method.keep_logits(net.sites[0], torch.randn(3, 20))
    assert torch.allclose(torch.sigmoid(logits), torch.full((3, 20), 0.8))


def test_gaussian_noise_has_mean_one_and_variance_from_the_keep_probability():
    torch.manual_seed(3)
    net = MLP(input_shape=(5,), hidden=(4,), num_classes=2).double()
    method = ContextualDropout(net, variant="gaussian", k=1.0).double()
    with torch.no_grad():
        method.bottlenecks[0].outer.weight.zero_()
        method.bottlenecks[0].outer.bias.copy_(torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    site, n = net.sites[0], 40000
    z = method.sample_masked(site, torch.ones(n, 4, dtype=torch.float64))
    pi = torch.sigmoid(torch.tensor([-1.0, 0.0, 1.0, 2.0], dtype=torch.float64))
    variance = (1 - pi) / pi
    assert torch.all((z.mean(0) - 1).abs() <= 5 * (variance / n).sqrt())
    assert torch.allclose(z.var(0), variance, rtol=0.05)


def test_bernoulli_losses_reach_only_their_own_group():
    torch.manual_seed(4)
    method = ContextualDropout(MLP(input_shape=(5,), hidden=(8, 8), num_classes=3))
    result = method.training_losses(torch.randn(6, 5), torch.randint(0, 3, (6,)))
    groups = method.param_groups()
    for loss_name, other in (("backbone", "dropout"), ("dropout", "backbone")):
        own = torch.autograd.grad(result.losses[loss_name], groups[loss_name], retain_graph=True, allow_unused=True)
        foreign = torch.autograd.grad(result.losses[loss_name], groups[other], retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in own)
        assert all(g is None or g.abs().sum() == 0 for g in foreign)


def test_arm_pseudo_pass_leaves_batch_norm_running_statistics_alone():
    torch.manual_seed(5)
    net = CifarResNet18(mask_blocks="last2")
    method = ContextualDropout(net)
    x = torch.randn(2, 3, 32, 32)
    method.training_losses(x, torch.tensor([0, 1]))
    stem_bn = net.stem[1]
    with torch.no_grad():
        batch_mean = net.stem[0](x).mean(dim=(0, 2, 3))
    # one update with momentum 0.1 from zero, by hand; a second (pseudo-pass) update would give 0.19x
    assert torch.allclose(stem_bn.running_mean, 0.1 * batch_mean, atol=1e-6)
    assert int(stem_bn.num_batches_tracked) == 1


def test_bad_options_are_rejected():
    net = MLP(input_shape=(3,), hidden=(4,), num_classes=2)
    with pytest.raises(ValueError, match="variant"):
        ContextualDropout(net, variant="beta")
    with pytest.raises(ValueError, match="init_drop"):
        ContextualDropout(net, init_drop=1.0)


def test_gaussian_objective_gradient_matches_finite_differences_with_the_same_noise():
    torch.manual_seed(6)
    net = MLP(input_shape=(5,), hidden=(10, 10), num_classes=3).double()
    method = ContextualDropout(net, variant="gaussian", k=1.0).double()
    x, y = torch.randn(8, 5, dtype=torch.float64), torch.randint(0, 3, (8,))
    # The last site's bottleneck and the prior: the bottleneck inputs are detached (as published), so
    # an earlier site's parameters also act through later sites' inputs, which the gradient ignores.
    checked = [method.bottlenecks[-1].outer.bias, method.bottlenecks[-1].inner.bias, method.prior_eta]

    def objective():
        torch.manual_seed(11)  # the same noise every call
        return sum(method.training_losses(x, y).losses.values())

    gradients = torch.autograd.grad(objective(), checked)
    step = 1e-6
    for parameter, gradient in zip(checked, gradients):
        for i in (0, parameter.numel() - 1):
            with torch.no_grad():
                parameter[i] += step
                upper = float(objective())
                parameter[i] -= 2 * step
                lower = float(objective())
                parameter[i] += step
            assert float(gradient[i]) == pytest.approx((upper - lower) / (2 * step), rel=1e-4, abs=1e-8)


# --- two sites: the second site's keep probabilities depend on the first site's masks ------------


def _two_site_method(kl_weight=0.0):
    """MLP 4 -> 3 -> 3 -> 3: site 1's bottleneck reads the hidden layer computed from site 0's masked output."""
    method = _spread_method(seed=7, hidden=(3, 3), bottleneck_factor=1, kl_weight=kl_weight)
    if kl_weight:
        with torch.no_grad():
            method.prior_eta.fill_(2.0)  # prior keep sigmoid(2) = 0.88: the KL has signal
    return method


def _exact_two_site_gradient(method, x, y):
    """d (E_{z0, z1}[CE] + kl_weight KL(q(z0, z1 | x) || p)) / d(bottleneck parameters), by enumerating all
    2^3 x 2^3 mask pairs; KL(q || p) = KL_0 + E_{z0}[KL_1(z0)].

    z1's keep logits are computed from the activation that z0 produced, so the enumeration follows
    the dependence of q(z1 | z0, x) on z0 exactly (also through site 1's KL: a score-function term
    for site 0's bottleneck that the estimator must carry).
    """
    net, (site0, site1) = method.net, method.net.sites

    def log_q(mask, logits):
        return (mask * F.logsigmoid(logits) + (1 - mask) * F.logsigmoid(-logits)).sum(dim=1)

    masks = [
        torch.tensor(bits, dtype=x.dtype).expand(x.shape[0], -1) for bits in itertools.product([0.0, 1.0], repeat=3)
    ]
    hidden0 = F.leaky_relu(net.hidden[0](x), 0.01)
    logits0 = method.keep_logits(site0, hidden0)
    prior = method.k * method.prior_eta.detach()
    total = method.kl_weight * bernoulli_kl(logits0, prior[0]).sum(dim=1).mean()
    for mask0 in masks:
        hidden1 = F.leaky_relu(net.hidden[3](apply_mask(site0, hidden0, mask0)), 0.01)
        logits1 = method.keep_logits(site1, hidden1)
        kl1 = bernoulli_kl(logits1, prior[1]).sum(dim=1)
        total = total + (log_q(mask0, logits0).exp() * method.kl_weight * kl1).mean()
        for mask1 in masks:
            with torch.no_grad():
                ce = F.cross_entropy(net.head(apply_mask(site1, hidden1, mask1)), y, reduction="none")
            total = total + ((log_q(mask0, logits0) + log_q(mask1, logits1)).exp() * ce).mean()
    grads = torch.autograd.grad(total, list(method.bottlenecks.parameters()))
    return torch.cat([g.flatten() for g in grads])


def _two_site_arm_estimates(method, x, y, estimates=60, repeats=2000, seed=8):
    """Mean and standard error of `estimates` ARM gradients, each over x repeated `repeats` times."""
    params = list(method.bottlenecks.parameters())
    torch.manual_seed(seed)
    rows = []
    for _ in range(estimates):
        result = method.training_losses(x.repeat(repeats, 1), y.repeat(repeats))
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(result.losses["dropout"], params)]))
    rows = torch.stack(rows)
    return rows.mean(0), rows.std(0) / math.sqrt(estimates)


def _parameter_slices(method):
    """{name: slice into the flattened bottleneck-parameter vector}."""
    slices, start = {}, 0
    for name, p in method.bottlenecks.named_parameters():
        slices[name] = slice(start, start + p.numel())
        start += p.numel()
    return slices


def test_two_site_arm_is_unbiased_for_the_first_site_and_the_second_sites_output_bias():
    # Site 0's ARM term is unbiased although the pseudo pass changes site 1's keep probabilities
    # (u1 is shared and independent of u0); site 1's output bias has d phi1 / d b = 1 in every
    # context, so its estimate is unbiased too. These 27 parameters, each within 4.5 standard errors.
    method = _two_site_method()
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 1, 2])
    exact = _exact_two_site_gradient(method, x, y)
    mean, standard_error = _two_site_arm_estimates(method, x, y)
    slices = _parameter_slices(method)
    names = ("0.inner.weight", "0.inner.bias", "0.outer.weight", "0.outer.bias", "1.outer.bias")
    checked = torch.cat([torch.arange(slices[n].start, slices[n].stop) for n in names])
    assert exact[checked].abs().max() > 10 * standard_error[checked].max()  # the test has signal
    assert torch.all((mean - exact)[checked].abs() <= 4.5 * standard_error[checked] + 1e-12)


def test_two_site_arm_matches_the_exact_gradient_for_every_parameter():
    method = _two_site_method()
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 1, 2])
    exact = _exact_two_site_gradient(method, x, y)
    mean, standard_error = _two_site_arm_estimates(method, x, y)
    assert exact.abs().max() > 10 * standard_error.max()
    assert torch.all((mean - exact).abs() <= 4.5 * standard_error + 1e-12)


def test_two_site_arm_with_the_kl_matches_the_exact_gradient_for_every_parameter():
    """kl_weight > 0: site 1's KL depends on z0 (its keep logits read z0's masked activation), so site 0's
    ARM term must score the later sites' KL with the loss (it used to miss it: |z| of 180-280 for site 0)."""
    method = _two_site_method(kl_weight=1.0)
    x, y = torch.randn(3, 4, dtype=torch.float64), torch.tensor([0, 1, 2])
    exact = _exact_two_site_gradient(method, x, y)
    mean, standard_error = _two_site_arm_estimates(method, x, y)
    assert exact.abs().max() > 10 * standard_error.max()
    assert torch.all((mean - exact).abs() <= 4.5 * standard_error + 1e-12), (
        ((mean - exact) / standard_error).abs().max()
    )
