"""GFlowOut's three losses term by term, without data: the reward log R = beta * log p(y | x, z) + log p(z | x)
(the prior's, never the posterior's), trajectory balance as a square, and the prior's loss -log p(z | x).

With epsilon = epsilon_keep = 1 every applied mask is all ones, so the masks do not depend on the posterior and
every term has an independent value: `score_masks` on all-ones masks and the unmasked forward pass.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import gflowout.methods.gflowout as gflowout_module
from gflowout.methods.gflowout import GFlowOut
from gflowout.methods.trajectory_balance import trajectory_balance_loss
from tests.helpers.methods import batch, small_mlp_method

BETA = 0.3  # not 1: a reward that drops beta is then wrong (the shipped MNIST configs start at 0.001)


def all_ones_method(**options) -> GFlowOut:
    """A seeded small GFlowOut whose training masks are all ones (epsilon = epsilon_keep = 1)."""
    return small_mlp_method(GFlowOut, **{"beta": BETA, "epsilon": 1.0, "epsilon_keep": 1.0, **options})


def recorded_terms(method: GFlowOut, x, y, monkeypatch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(the arguments `training_losses` gives trajectory balance, per example; its losses), one step, no update."""
    seen: dict[str, torch.Tensor] = {}

    def recording(log_z, log_forward, log_reward):
        seen.update(
            log_z=log_z.detach().clone(),
            log_forward=log_forward.detach().clone(),
            log_reward=log_reward.detach().clone(),
        )
        return trajectory_balance_loss(log_z, log_forward, log_reward)

    monkeypatch.setattr(gflowout_module, "trajectory_balance_loss", recording)
    return seen, method.training_losses(x, y).losses


def all_ones(method: GFlowOut, rows: int) -> list[torch.Tensor]:
    return [torch.ones(rows, site.width) for site in method.net.sites]


def test_reward_is_beta_log_likelihood_plus_the_priors_log_probability(monkeypatch):
    method = all_ones_method()
    x, y = batch(6)
    seen, _ = recorded_terms(method, x, y, monkeypatch)
    scores = method.score_masks(x, y, all_ones(method, 6))
    with torch.no_grad():
        log_likelihood = -F.cross_entropy(method.net(x, None), y, reduction="none")  # all-ones masks = no mask
    assert torch.allclose(scores["log_likelihood"], log_likelihood, atol=1e-5)
    expected = BETA * log_likelihood + scores["log_prior"]
    assert torch.allclose(seen["log_reward"], expected, rtol=1e-5, atol=1e-4)
    # the check can fail: beta = 1 and the posterior's log-probability in place of the prior's give other rewards
    assert (seen["log_reward"] - (log_likelihood + scores["log_prior"])).abs().min() > 1e-2
    assert (seen["log_reward"] - (BETA * log_likelihood + scores["log_forward"])).abs().min() > 1e-2
    assert method.training_losses(x, y).logs["log_reward"].item() == pytest.approx(expected.mean().item(), rel=1e-5)


def test_the_rewards_prior_term_moves_with_the_prior_and_not_with_the_posterior(monkeypatch):
    """log R - beta * log p(y | x, z) is the prior's log p(z | x): it follows a change of the prior's weights
    exactly and stays put when only the posterior's weights change (the masks are all ones either way)."""
    method = all_ones_method()
    x, y = batch(6)
    before, _ = recorded_terms(method, x, y, monkeypatch)
    prior_before = method.score_masks(x, y, all_ones(method, 6))["log_prior"]
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in method.posterior.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    after_posterior, _ = recorded_terms(method, x, y, monkeypatch)
    assert (after_posterior["log_forward"] - before["log_forward"]).abs().min() > 1e-2, "the posterior did move"
    assert torch.equal(after_posterior["log_reward"], before["log_reward"])
    with torch.no_grad():
        for parameter in method.prior.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    after_prior, _ = recorded_terms(method, x, y, monkeypatch)
    prior_after = method.score_masks(x, y, all_ones(method, 6))["log_prior"]
    assert (prior_after - prior_before).abs().min() > 1e-2, "the prior did move"
    assert torch.allclose(
        after_prior["log_reward"] - before["log_reward"], prior_after - prior_before, rtol=1e-4, atol=1e-4
    )


def test_trajectory_balance_is_the_mean_square_of_the_scored_residual(monkeypatch):
    """The "posterior" loss is mean((log Z(x, y) + log q(z | x, y) - log R)^2) of independently scored terms;
    the residuals are spread (not only 0 or 1), so a mean absolute residual would differ."""
    method = all_ones_method()
    x, y = batch(6)
    _, losses = recorded_terms(method, x, y, monkeypatch)
    scores = method.score_masks(x, y, all_ones(method, 6))
    residual = (
        scores["log_z"] + scores["log_forward"] - BETA * scores["log_likelihood"] - scores["log_prior"]
    ).double()
    expected = residual.pow(2).mean()
    assert losses["posterior"].item() == pytest.approx(expected.item(), rel=1e-5, abs=1e-4)
    assert abs(expected.item() - residual.abs().mean().item()) > 0.1 * expected.item()
    # its gradient in log Z(x, y) is the residual's, 2 r / B (a square; |r| would give sign(r) / B)
    log_z = scores["log_z"].clone().requires_grad_(True)
    trajectory_balance_loss(
        log_z, scores["log_forward"], BETA * scores["log_likelihood"] + scores["log_prior"]
    ).backward()
    assert torch.allclose(log_z.grad.double(), 2 * residual / len(residual), rtol=1e-4, atol=1e-5)


def descend_the_priors_loss(method: GFlowOut, x, y, steps: int = 3, seed: int | None = None) -> list[float]:
    """`steps` plain gradient-descent steps (lr 0.05) of the prior alone on the "prior" loss; the loss before each."""
    values = []
    for _ in range(steps):
        if seed is not None:
            torch.manual_seed(seed)  # the same masks every time: neither the posterior nor the backbone changes
        loss = method.training_losses(x, y).losses["prior"]
        values.append(loss.item())
        gradients = torch.autograd.grad(loss, list(method.prior.parameters()))
        with torch.no_grad():
            for parameter, gradient in zip(method.prior.parameters(), gradients):
                parameter.sub_(0.05 * gradient)
    return values


def test_the_priors_loss_is_minus_its_log_probability_and_descending_it_raises_that():
    """ "prior" = -mean log p(z | x) of the training masks, and descending it moves the prior towards those masks
    (the posterior's samples), never away: their log p(z | x), scored independently, rises."""
    method = all_ones_method()
    x, y = batch(6)
    ones = all_ones(method, 6)
    before = method.score_masks(x, y, ones)["log_prior"]
    losses = descend_the_priors_loss(method, x, y)
    assert losses[0] == pytest.approx(-before.mean().item(), rel=1e-5)
    after = method.score_masks(x, y, ones)["log_prior"]
    assert after.mean() > before.mean() + 1e-3, (before.mean().item(), after.mean().item())

    method = small_mlp_method(GFlowOut, beta=BETA)  # masks drawn from the posterior (no epsilon), at T = 2
    losses = descend_the_priors_loss(method, x, y, seed=7)
    assert losses[0] > losses[1] > losses[2], losses
