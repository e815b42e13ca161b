"""`site_policy_step` (one autograd node per site, hand-written backward) against the generator modules.

The reference is the modules' own forward through autograd: same masks, same log-probabilities,
and the same gradient for every posterior and prior parameter, in float64, at the first site
(the posterior's learned constant) and at later sites (earlier masks of several widths).
"""

from __future__ import annotations

import pytest
import torch

from gflowout.methods.generators import PosteriorGenerator, PriorGenerator
from gflowout.methods.mask_sampling import bernoulli_log_prob
from gflowout.methods.site_policy import site_policy_step

WIDTHS = (7, 5, 6)  # three sites of different widths
CLASSES = 4


def site_generators(index: int, hidden=(6, 5)) -> tuple[PosteriorGenerator, PriorGenerator]:
    torch.manual_seed(10 + index)
    earlier = sum(WIDTHS[:index])
    posterior = PosteriorGenerator(earlier, WIDTHS[index], CLASSES, hidden, branch_out=3).double()
    prior = PriorGenerator(earlier, WIDTHS[index], hidden).double()
    with torch.no_grad():  # move every parameter off its initial value (biases start at zero or a constant)
        for p in [*posterior.parameters(), *prior.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
        for tail in (posterior.branch_tail,):
            for linear in tail.linears:
                linear.weight.mul_(linear.block_mask)  # block-diagonal, as the module keeps them
    return posterior, prior


def inputs(index: int, batch: int = 9):
    torch.manual_seed(100 + index)
    earlier = [(torch.rand(batch, w) < 0.5).double() for w in WIDTHS[:index]]
    features = torch.randn(batch, WIDTHS[index], dtype=torch.float64)
    labels = torch.randint(0, CLASSES, (batch,))
    mask = (torch.rand(batch, WIDTHS[index]) < 0.5).double()
    weights_q, weights_p = torch.randn(batch, dtype=torch.float64), torch.randn(batch, dtype=torch.float64)
    return earlier, features, labels, mask, weights_q, weights_p


def gradients(loss: torch.Tensor, modules) -> list[torch.Tensor]:
    params = [p for m in modules for p in m.parameters()]
    return list(torch.autograd.grad(loss, params, allow_unused=True))


@pytest.mark.parametrize("index", [0, 1, 2])
def test_values_and_gradients_equal_the_modules(index):
    posterior, prior = site_generators(index)
    earlier, features, labels, mask, weights_q, weights_p = inputs(index)

    reference_q = bernoulli_log_prob(posterior(earlier or None, features, labels), mask)
    reference_p = bernoulli_log_prob(prior(earlier or None, features), mask)
    reference_loss = (weights_q * reference_q).sum() + (weights_p * reference_p).sum()
    reference = gradients(reference_loss, (posterior, prior))

    fused_mask, log_q, log_p = site_policy_step(posterior, prior, earlier, features, labels, forced_mask=mask)
    fused = gradients((weights_q * log_q).sum() + (weights_p * log_p).sum(), (posterior, prior))

    assert torch.equal(fused_mask, mask)
    assert torch.allclose(log_q, reference_q, rtol=1e-10, atol=1e-10)
    assert torch.allclose(log_p, reference_p, rtol=1e-10, atol=1e-10)
    names = [n for m in ("posterior", "prior") for n, _ in (posterior if m == "posterior" else prior).named_parameters()]
    for name, a, b in zip(names, fused, reference):
        assert a is not None and b is not None, name
        assert a.shape == b.shape, name
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-10), f"{name}: max difference {float((a - b).abs().max())}"


def test_one_log_probability_alone_trains_only_its_generator():
    posterior, prior = site_generators(1)
    earlier, features, labels, mask, _, _ = inputs(1)
    _, _, log_p = site_policy_step(posterior, prior, earlier, features, labels, forced_mask=mask)
    log_p.sum().backward()
    assert all(p.grad is None or not p.grad.any() for p in posterior.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in prior.parameters())


def test_frozen_prior_gets_no_gradient_and_posterior_still_does():
    posterior, prior = site_generators(2)
    prior.requires_grad_(False)
    earlier, features, labels, mask, weights_q, weights_p = inputs(2)
    _, log_q, log_p = site_policy_step(posterior, prior, earlier, features, labels, forced_mask=mask)
    ((weights_q * log_q).sum() + (weights_p * log_p).sum()).backward()
    assert all(p.grad is None for p in prior.parameters())
    assert all(p.grad is not None for p in posterior.parameters())


def test_sampled_masks_follow_the_posterior_at_the_temperature():
    """Without a forced mask the draw is from sigmoid(posterior logits / T): its mean matches within 5 SE."""
    posterior, prior = site_generators(1)
    torch.manual_seed(0)
    batch = 4000
    earlier = [torch.ones(batch, WIDTHS[0], dtype=torch.float64)]
    features = torch.randn(1, WIDTHS[1], dtype=torch.float64).expand(batch, -1).contiguous()
    labels = torch.full((batch,), 2)
    with torch.no_grad():
        mask, log_q, _ = site_policy_step(posterior, prior, earlier, features, labels, temperature=2.0)
        keep = torch.sigmoid(posterior([e[:1] for e in earlier], features[:1], labels[:1]) / 2.0)[0]
        expected_log_q = bernoulli_log_prob(posterior(earlier, features, labels), mask)
    tolerance = 5 * torch.sqrt(keep * (1 - keep) / batch) + 1e-3
    assert ((mask.mean(dim=0) - keep).abs() <= tolerance).all()
    assert torch.allclose(log_q, expected_log_q, rtol=1e-10, atol=1e-10)  # scored at T = 1


def test_bad_inputs_are_refused():
    posterior, prior = site_generators(1)
    earlier, features, labels, mask, _, _ = inputs(1)
    with pytest.raises(ValueError, match="earlier masks"):
        site_policy_step(posterior, prior, [torch.ones(9, 3, dtype=torch.float64)], features, labels)
    with pytest.raises(ValueError, match="detached"):
        site_policy_step(posterior, prior, earlier, features.requires_grad_(), labels)
    other_prior = PriorGenerator(WIDTHS[0], WIDTHS[1], (8, 5)).double()
    with pytest.raises(ValueError, match="generator_hidden"):
        site_policy_step(posterior, other_prior, earlier, features.detach(), labels)


def test_bf16_autocast_still_scores_in_float32():
    """Under CPU bf16 autocast (Lightning's bf16-mixed) the node works in float32: same values as without it."""
    posterior, prior = site_generators(2)
    posterior.float(), prior.float()
    earlier, features, labels, mask, weights_q, weights_p = inputs(2)
    earlier, features, mask = [e.float() for e in earlier], features.float(), mask.float()
    _, plain_q, plain_p = site_policy_step(posterior, prior, earlier, features, labels, forced_mask=mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, log_q, log_p = site_policy_step(posterior, prior, earlier, features.bfloat16(), labels, forced_mask=mask)
        ((weights_q.float() * log_q).sum() + (weights_p.float() * log_p).sum()).backward()
    assert log_q.dtype == torch.float32 and log_p.dtype == torch.float32
    assert torch.allclose(log_q, plain_q, atol=0.05) and torch.allclose(log_p, plain_p, atol=0.05)  # bf16 features only
    assert all(p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in posterior.parameters())
