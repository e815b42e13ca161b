"""`TrajectoryPolicy` (one autograd node per trajectory, hand-written backward) against the generator modules.

The reference is the modules' own forward through autograd (`PosteriorGenerator`, `PriorGenerator`,
`bernoulli_log_prob`), site by site: same masks, the same summed log-probabilities, and the same
gradient for every posterior and prior parameter of every site, in float64. Widths: all equal (the
MLP: one batched group), different (one group per site), repeated but not consecutive (a group
indexed by a tensor), a single site; generator depths 1 to 3; masks forced (teacher forcing) or drawn
by the policy.
"""

from __future__ import annotations

import pytest
import torch

from gflowout.methods.generators import PosteriorGenerator, PriorGenerator
from gflowout.methods.gflowout import GFlowOut, PosteriorSampler
from gflowout.methods.mask_sampling import bernoulli_log_prob, draw_policy_mask
from gflowout.methods.trajectory_policy import TrajectoryPolicy
from gflowout.nets.sites import site_features

CLASSES = 4
WIDTHS = {"equal": (6, 6, 6), "different": (7, 5, 6), "regrouped": (5, 7, 5, 7), "single": (8,)}


def generators(widths, hidden=(6, 5)) -> tuple[list[PosteriorGenerator], list[PriorGenerator]]:
    torch.manual_seed(10)
    posterior, prior = [], []
    for k, width in enumerate(widths):
        earlier = sum(widths[:k])
        q = PosteriorGenerator(earlier, width, CLASSES, hidden, branch_out=3).double()
        p = PriorGenerator(earlier, width, hidden).double()
        with torch.no_grad():  # move every parameter off its initial value (biases start at zero or a constant)
            for parameter in [*q.parameters(), *p.parameters()]:
                parameter.add_(0.3 * torch.randn_like(parameter))
            for linear in q.branch_tail.linears:
                linear.weight.mul_(linear.block_mask)  # block-diagonal, as the module keeps them
        posterior.append(q)
        prior.append(p)
    return posterior, prior


def inputs(widths, batch: int = 9):
    torch.manual_seed(100)
    features = [torch.randn(batch, w, dtype=torch.float64) for w in widths]
    masks = [(torch.rand(batch, w) < 0.5).double() for w in widths]
    labels = torch.randint(0, CLASSES, (batch,))
    weights = torch.randn(2, batch, dtype=torch.float64)
    return features, masks, labels, weights


def reference(posterior, prior, features, masks, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log q and log p through the modules' forward and autograd."""
    log_q = log_p = 0.0
    for k, (q, p) in enumerate(zip(posterior, prior)):
        earlier = masks[:k] or None
        log_q = log_q + bernoulli_log_prob(q(earlier, features[k], labels), masks[k])
        log_p = log_p + bernoulli_log_prob(p(earlier, features[k]), masks[k])
    return log_q, log_p


def run_policy(posterior, prior, features, labels, forced=None, **exploration) -> TrajectoryPolicy:
    policy = TrajectoryPolicy(posterior, prior, labels, **exploration)
    for k, f in enumerate(features):
        policy.step(f, None if forced is None else forced[k])
    return policy


def named_parameters(posterior, prior) -> list[tuple[str, torch.Tensor]]:
    modules = [
        (f"{kind}[{k}]", m)
        for k, pair in enumerate(zip(posterior, prior))
        for kind, m in zip(("posterior", "prior"), pair)
    ]
    return [(f"{label}.{name}", t) for label, m in modules for name, t in m.named_parameters()]


def assert_same_gradients(loss_new, loss_reference, posterior, prior) -> None:
    named = named_parameters(posterior, prior)
    params = [t for _, t in named]
    new = torch.autograd.grad(loss_new, params, allow_unused=True)
    expected = torch.autograd.grad(loss_reference, params, allow_unused=True)
    for (name, _), a, b in zip(named, new, expected):
        assert a is not None and b is not None, name
        assert a.shape == b.shape, name
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11), f"{name}: max difference {float((a - b).abs().max())}"


@pytest.mark.parametrize("layout", sorted(WIDTHS))
@pytest.mark.parametrize("forced", [True, False], ids=["forced", "sampled"])
def test_values_and_gradients_equal_the_modules(layout, forced):
    widths = WIDTHS[layout]
    posterior, prior = generators(widths)
    features, masks, labels, weights = inputs(widths)
    torch.manual_seed(5)
    policy = run_policy(posterior, prior, features, labels, masks if forced else None, temperature=2.0)
    if forced:
        assert all(torch.equal(a, b) for a, b in zip(policy.masks, masks))
    masks = [m.clone() for m in policy.masks]
    log_q, log_p = policy.finish()
    reference_q, reference_p = reference(posterior, prior, features, masks, labels)
    assert torch.allclose(log_q, reference_q, rtol=1e-10, atol=1e-10)
    assert torch.allclose(log_p, reference_p, rtol=1e-10, atol=1e-10)
    loss = (weights[0] * log_q).sum() + (weights[1] * log_p).sum()
    loss_reference = (weights[0] * reference_q).sum() + (weights[1] * reference_p).sum()
    assert_same_gradients(loss, loss_reference, posterior, prior)


def test_hand_written_backward_equals_finite_differences_in_float64():
    """torch.autograd.gradcheck of the trajectory node against finite differences of its own forward, on small
    generators: independent of `bernoulli_log_prob`'s hand-written gradient, which the module reference uses."""
    widths = (3, 2)
    posterior, prior = generators(widths, hidden=(3, 2))
    features, masks, labels, weights = inputs(widths, batch=4)
    params = [t for _, t in named_parameters(posterior, prior)]

    def weighted_log_probs(*_: torch.Tensor) -> torch.Tensor:
        log_q, log_p = run_policy(posterior, prior, features, labels, masks).finish()  # reads the parameters in place
        return torch.stack([weights[0] * log_q, weights[1] * log_p])

    assert torch.autograd.gradcheck(weighted_log_probs, params, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("hidden", [(6,), (6, 5, 4)])
def test_other_generator_depths(hidden):
    """One hidden layer (no hidden-to-hidden linear) and three (two of them): same values and gradients."""
    widths = WIDTHS["regrouped"]
    posterior, prior = generators(widths, hidden)
    features, masks, labels, weights = inputs(widths)
    log_q, log_p = run_policy(posterior, prior, features, labels, masks).finish()
    reference_q, reference_p = reference(posterior, prior, features, masks, labels)
    assert torch.allclose(log_q, reference_q, rtol=1e-10) and torch.allclose(log_p, reference_p, rtol=1e-10)
    assert_same_gradients(
        (weights[0] * log_q).sum() + (weights[1] * log_p).sum(),
        (weights[0] * reference_q).sum() + (weights[1] * reference_p).sum(),
        posterior,
        prior,
    )


@pytest.mark.parametrize("layout", ["equal", "different"])
def test_sampled_masks_are_the_draws_of_the_posterior_in_site_order(layout):
    """The same random draws as `draw_policy_mask` on the posterior's logits, site after site (epsilon included)."""
    widths = WIDTHS[layout]
    posterior, prior = generators(widths)
    features, _, labels, _ = inputs(widths)
    torch.manual_seed(7)
    with torch.no_grad():
        policy = run_policy(posterior, prior, features, labels, temperature=2.0, epsilon=0.3, epsilon_keep=0.6)
    torch.manual_seed(7)
    expected = []
    with torch.no_grad():
        for k, q in enumerate(posterior):
            expected.append(draw_policy_mask(q(expected or None, features[k], labels), 2.0, 0.3, 0.6))
    assert all(torch.equal(a, b) for a, b in zip(policy.masks, expected))


def test_sampled_masks_follow_the_posterior_at_the_temperature():
    """A drawn mask comes from sigmoid(posterior logits / T): its mean matches within 5 SE; log q is still at T = 1."""
    widths = WIDTHS["different"]
    posterior, prior = generators(widths)
    torch.manual_seed(0)
    batch = 4000
    ones = torch.ones(batch, widths[0], dtype=torch.float64)
    features = [torch.randn(1, w, dtype=torch.float64).expand(batch, -1).contiguous() for w in widths[:2]]
    labels = torch.full((batch,), 2)
    with torch.no_grad():
        policy = TrajectoryPolicy(posterior[:2], prior[:2], labels, temperature=2.0)
        policy.step(features[0], ones)  # a forced first mask, the same for every row
        mask = policy.step(features[1])
        log_q, _ = policy.finish()
        keep = torch.sigmoid(posterior[1]([ones[:1]], features[1][:1], labels[:1]) / 2.0)[0]
        expected_log_q = bernoulli_log_prob(posterior[0](None, features[0], labels), ones)
        expected_log_q += bernoulli_log_prob(posterior[1]([ones], features[1], labels), mask)
    tolerance = 5 * torch.sqrt(keep * (1 - keep) / batch) + 1e-3
    assert ((mask.mean(dim=0) - keep).abs() <= tolerance).all()
    assert torch.allclose(log_q, expected_log_q, rtol=1e-10, atol=1e-10)  # scored at T = 1


def test_each_log_probability_trains_only_its_generators():
    posterior, prior = generators(WIDTHS["different"])
    features, masks, labels, _ = inputs(WIDTHS["different"])
    log_q, log_p = run_policy(posterior, prior, features, labels, masks).finish()
    log_p.sum().backward()
    assert all(p.grad is None or not p.grad.any() for q in posterior for p in q.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for r in prior for p in r.parameters())
    for m in (*posterior, *prior):
        m.zero_grad(set_to_none=True)
    log_q, log_p = run_policy(posterior, prior, features, labels, masks).finish()
    log_q.sum().backward()
    assert all(p.grad is None or not p.grad.any() for r in prior for p in r.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for q in posterior for p in q.parameters())


def test_frozen_prior_gets_no_gradient_and_posterior_still_does():
    posterior, prior = generators(WIDTHS["equal"])
    for p in prior:
        p.requires_grad_(False)
    features, masks, labels, weights = inputs(WIDTHS["equal"])
    log_q, log_p = run_policy(posterior, prior, features, labels, masks).finish()
    ((weights[0] * log_q).sum() + (weights[1] * log_p).sum()).backward()
    assert all(p.grad is None for r in prior for p in r.parameters())
    assert all(p.grad is not None for q in posterior for p in q.parameters())


def test_bad_inputs_are_refused():
    posterior, prior = generators(WIDTHS["different"])
    features, masks, labels, _ = inputs(WIDTHS["different"])
    with pytest.raises(ValueError, match=r"features of site 0 have shape \(9, 5\), expected \(9, 7\)"):
        TrajectoryPolicy(posterior, prior, labels).step(features[1])
    with pytest.raises(ValueError, match="detached"):
        TrajectoryPolicy(posterior, prior, labels).step(features[0].clone().requires_grad_())
    with pytest.raises(ValueError, match=r"forced_mask of site 0 has shape \(9, 5\)"):
        TrajectoryPolicy(posterior, prior, labels).step(features[0], masks[1])
    with pytest.raises(RuntimeError, match="1 of 3 sites"):
        run_policy(posterior, prior, features[:1], labels).finish()
    other_prior = [PriorGenerator(p.mask_features, p.site_width, (8, 5)).double() for p in prior]
    with pytest.raises(ValueError, match="generator_hidden"):
        TrajectoryPolicy(posterior, other_prior, labels)
    with pytest.raises(ValueError, match="got 3 and 2"):
        TrajectoryPolicy(posterior, prior[:2], labels)
    with pytest.raises(ValueError, match=r"labels have 8 rows but the features of site 0 have 9"):
        TrajectoryPolicy(posterior, prior, labels[:8]).step(features[0])
    with pytest.raises(ValueError, match="do not chain the site widths"):  # sites given out of order
        TrajectoryPolicy([posterior[1], posterior[0], posterior[2]], [prior[1], prior[0], prior[2]], labels)
    with pytest.raises(ValueError, match="only 0 and 1"):  # a relaxed mask is not a mask to score
        TrajectoryPolicy(posterior, prior, labels).step(features[0], torch.full_like(masks[0], 0.5))


def test_score_masks_refuses_a_wrong_number_of_masks_and_its_outputs_are_separate_tensors():
    from gflowout.nets.mlp import MLP

    torch.manual_seed(0)
    method = GFlowOut(MLP(hidden=(6, 6, 6)))
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    masks = [(torch.rand(4, 6) < 0.5).float() for _ in range(3)]
    for wrong in (masks[:2], masks + masks[:1]):
        with pytest.raises(ValueError, match=f"got {len(wrong)} masks to score, expected one per mask site \\(3\\)"):
            method.score_masks(x, y, wrong)
    scores = method.score_masks(x, y, masks)
    log_q, log_p = scores["log_forward"], scores["log_prior"]
    assert log_q._base is None and log_p._base is None
    expected = log_p.clone()
    log_q.add_(1.0)  # an in-place update of one output (allowed: they are not views of one tensor) ...
    assert torch.equal(log_p, expected)  # ... leaves the other alone


def test_buffers_first_made_under_inference_mode_serve_later_training_steps():
    """Lightning's validate/test/predict hooks run under torch.inference_mode; the reusable buffers (the
    trajectory arena, the draw scratch, prediction's logit buffers) made there must not be inference
    tensors, or every later training step of that shape fails (in-place update of an inference tensor)."""
    from gflowout.methods import mask_sampling, trajectory_arena
    from gflowout.nets.mlp import MLP

    torch.manual_seed(0)
    method = GFlowOut(MLP(hidden=(16, 16, 16)))
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    masks = [(torch.rand(8, 16) < 0.5).float() for _ in range(3)]
    for first_call in ("score_masks", "predict"):
        trajectory_arena._ARENAS.last = None
        mask_sampling._SCRATCH.__dict__.clear()
        with torch.inference_mode():
            if first_call == "score_masks":
                method.score_masks(x, y, masks)
            else:
                method.predict(x[:1], samples=8)  # the 8 copies give prediction buffers of the training shapes
        with torch.no_grad():
            method.predict(x[:1], samples=8)
        result = method.training_losses(x, y)  # same shapes: the buffers made above are reused
        sum(result.losses.values()).backward()
        assert all(torch.isfinite(v) for v in result.losses.values()), first_call


def test_bf16_autocast_still_scores_in_float32():
    """Under CPU bf16 autocast (Lightning's bf16-mixed) the node works in float32: close to the values without it."""
    posterior, prior = generators(WIDTHS["different"])
    for m in (*posterior, *prior):
        m.float()
    features, masks, labels, weights = inputs(WIDTHS["different"])
    features, masks, weights = [f.float() for f in features], [m.float() for m in masks], weights.float()
    plain_q, plain_p = run_policy(posterior, prior, features, labels, masks).finish()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_q, log_p = run_policy(posterior, prior, [f.bfloat16() for f in features], labels, masks).finish()
        ((weights[0] * log_q).sum() + (weights[1] * log_p).sum()).backward()
    assert log_q.dtype == torch.float32 and log_p.dtype == torch.float32
    assert torch.allclose(log_q, plain_q, atol=0.05) and torch.allclose(log_p, plain_p, atol=0.05)  # bf16 features only
    grads = [p.grad for q in posterior for p in q.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("backbone", ["mlp", "resnet"])
def test_training_losses_match_a_module_sampler_through_a_backbone(backbone):
    """End to end in float64 (MLP: three equal sites; CifarResNet18: widths 4, 8, 16, 32): GFlowOut's sampler gives
    the masks, log P_F, log p and generator gradients of a sampler built from the modules, for the same seed."""
    if backbone == "mlp":
        from gflowout.nets.mlp import MLP

        net, x = MLP(hidden=(12, 12, 12)), torch.rand(5, 1, 28, 28)
    else:
        from gflowout.nets.resnet import CifarResNet18

        net, x = CifarResNet18(mask_blocks="all", input_shape=(3, 8, 8), width=4), torch.randn(5, 3, 8, 8)
    torch.manual_seed(0)
    method = GFlowOut(net).double()
    x, y = x.double(), torch.tensor([0, 3, 5, 9, 3])

    def module_sampler(site, activation):
        features = site_features(site, activation).detach()
        earlier = list(masks) or None
        posterior_logits = method.posterior[site.index](earlier, features, y)
        mask = draw_policy_mask(posterior_logits, 2.0, 0.2, 0.5)
        totals[0] = totals[0] + bernoulli_log_prob(posterior_logits, mask)
        totals[1] = totals[1] + bernoulli_log_prob(method.prior[site.index](earlier, features), mask)
        masks.append(mask)
        if site.kind == "channel":
            return activation * mask.view(*mask.shape, *([1] * (activation.dim() - 2)))
        return activation * mask * (site.width / (mask.sum(1, keepdim=True) + 1e-6))

    masks, totals = [], [0.0, 0.0]
    torch.manual_seed(3)
    method.net(x, module_sampler)
    sampler = PosteriorSampler(method.posterior, method.prior, y, temperature=2.0, epsilon=0.2, epsilon_keep=0.5)
    torch.manual_seed(3)
    method.net(x, sampler)
    log_q, log_p = sampler.finish()
    assert all(torch.equal(a, b) for a, b in zip(sampler.chain.masks, masks))
    assert torch.allclose(log_q, totals[0], rtol=1e-10) and torch.allclose(log_p, totals[1], rtol=1e-10)
    weights = torch.randn(2, 5, dtype=torch.float64)
    assert_same_gradients(
        (weights[0] * log_q).sum() + (weights[1] * log_p).sum(),
        (weights[0] * totals[0]).sum() + (weights[1] * totals[1]).sum(),
        list(method.posterior),
        list(method.prior),
    )


def test_live_trajectories_keep_their_own_buffers_and_backward_can_run_twice():
    """A second trajectory started before the first one's backward (reusable buffers are leased, not shared),
    and a retained graph back-propagated twice, give the reference gradients each time."""
    widths = WIDTHS["equal"]
    posterior, prior = generators(widths)
    features, masks, labels, weights = inputs(widths)
    first = run_policy(posterior, prior, features, labels, masks).finish()
    other_masks = [1.0 - m for m in masks]
    second = run_policy(posterior, prior, features, labels, other_masks).finish()
    for (log_q, log_p), used in ((first, masks), (second, other_masks)):
        reference_q, reference_p = reference(posterior, prior, features, used, labels)
        loss = (weights[0] * log_q).sum() + (weights[1] * log_p).sum()
        loss_reference = (weights[0] * reference_q).sum() + (weights[1] * reference_p).sum()
        named = named_parameters(posterior, prior)
        once = torch.autograd.grad(loss, [t for _, t in named], retain_graph=True)
        twice = torch.autograd.grad(loss, [t for _, t in named])
        expected = torch.autograd.grad(loss_reference, [t for _, t in named])
        for (name, _), a, b, c in zip(named, once, twice, expected):
            assert torch.equal(a, b) and torch.allclose(a, c, rtol=1e-9, atol=1e-11), name


def test_a_dropped_trajectory_lends_its_arena_to_the_next_one_up_to_the_size_limit(monkeypatch):
    from gflowout.methods import trajectory_arena

    widths = WIDTHS["equal"]
    posterior, prior = generators(widths)
    features, masks, labels, _ = inputs(widths)
    first = run_policy(posterior, prior, features, labels, masks)
    arena = first.tape.arena
    first.finish()[0].sum().backward()
    del first
    assert run_policy(posterior, prior, features, labels, masks).tape.arena is arena  # reused once dropped
    monkeypatch.setattr(trajectory_arena, "ARENA_LIMIT", 10)
    trajectory_arena._ARENAS.last = None
    big = run_policy(posterior, prior, features, labels, masks).tape.arena
    assert run_policy(posterior, prior, features, labels, masks).tape.arena is not big  # over the limit: not kept
