"""GFlowOut's building blocks as pure maths, without a method: trajectory balance, Bernoulli log-probabilities,
the grouped generator tail, the 16-bit mask sampler and its fast path, the block projection of earlier masks,
and the posterior generator's use of the label. (The method's behaviour is in test_gflowout_engine.py.)"""

import math

import pytest
import torch
import torch.nn.functional as F

from gflowout.errors import NonFiniteLossError
from gflowout.methods.generators import GroupedMLPTail, PosteriorGenerator, project_earlier_masks
from gflowout.methods.mask_sampling import (
    bernoulli_log_prob,
    keep_with_16_bits,
    log_prob_grad,
    mask_with_16_bits,
    sample_and_apply,
)
from gflowout.methods.trajectory_balance import log_variance_loss, trajectory_balance_loss
from gflowout.nets.sites import Site, apply_mask


def test_trajectory_balance_loss_matches_a_hand_computation():
    log_z = torch.tensor([0.5, -1.0], requires_grad=True)
    log_forward = torch.tensor([-2.0, -3.0], requires_grad=True)
    log_reward = torch.tensor([-1.0, -4.5], requires_grad=True)
    loss = trajectory_balance_loss(log_z, log_forward, log_reward)
    assert loss.item() == pytest.approx(((0.5 - 2.0 + 1.0) ** 2 + (-1.0 - 3.0 + 4.5) ** 2) / 2)
    loss.backward()
    assert log_reward.grad is None, "log R must be detached inside trajectory balance"
    assert torch.allclose(log_z.grad, torch.tensor([-0.5, 0.5]))  # d/dlogZ mean(r^2) = r
    scalar = trajectory_balance_loss(torch.tensor(1.0), torch.tensor([-1.0, -2.0]), torch.tensor([0.0, 0.0]))
    assert scalar.item() == pytest.approx((0.0 + 1.0) / 2)


def test_log_variance_loss_is_the_batch_variance_and_its_gradient_is_vargrads():
    """loss = population variance of d = log q - log R (numpy); log Z_hat = mean(log R - log q); the gradient with
    the detached estimate equals the gradient of the variance taken with the estimate attached (autograd of
    torch.var), and equals VarGrad's (2 / B) sum_i (d_i - mean d) grad d_i by hand."""
    log_forward = torch.tensor([-2.0, -3.0, -0.5, -4.0], dtype=torch.float64, requires_grad=True)
    log_reward = torch.tensor([-1.0, -4.5, 2.0, -3.0], dtype=torch.float64, requires_grad=True)
    loss, log_z_hat = log_variance_loss(log_forward, log_reward)
    d = (log_forward - log_reward).detach().numpy()
    assert loss.item() == pytest.approx(float(((d - d.mean()) ** 2).mean()))
    assert log_z_hat.item() == pytest.approx(float(-d.mean())) and not log_z_hat.requires_grad
    loss.backward()
    assert log_reward.grad is None, "log R must be detached"
    attached = log_forward.detach().clone().requires_grad_(True)
    torch.var(attached - log_reward.detach(), unbiased=False).backward()
    assert torch.allclose(log_forward.grad, attached.grad)
    assert torch.allclose(log_forward.grad, torch.from_numpy(2.0 * (d - d.mean()) / len(d)))
    with pytest.raises(ValueError, match="at least 2"):
        log_variance_loss(torch.zeros(1), torch.zeros(1))


@pytest.mark.parametrize("bad_term", ["log_z", "log_forward", "log_reward"])
def test_trajectory_balance_raises_on_non_finite_terms(bad_term):
    terms = {"log_z": torch.zeros(3), "log_forward": torch.zeros(3), "log_reward": torch.zeros(3)}
    terms[bad_term] = torch.tensor([0.0, float("nan"), float("-inf")])
    with pytest.raises(NonFiniteLossError, match=rf"{bad_term}[^;]*: 2 non-finite of 3"):
        trajectory_balance_loss(**terms)


def test_bernoulli_log_prob_matches_torch_distributions_and_stays_finite():
    logits = torch.tensor([[-100.0, -3.0, 0.0, 2.5, 100.0], [50.0, -50.0, 1.0, -1.0, 0.3]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0, 1.0]])
    expected = torch.distributions.Bernoulli(logits=logits.double()).log_prob(mask.double()).sum(dim=1)
    got = bernoulli_log_prob(logits, mask)
    assert torch.isfinite(got).all()
    assert torch.allclose(got.double(), expected, rtol=1e-6, atol=1e-5)
    # The hand-written backward agrees with autograd through torch.distributions.
    weights = torch.tensor([0.7, -1.3])
    leaf = logits.clone().requires_grad_()
    (bernoulli_log_prob(leaf, mask) * weights).sum().backward()
    reference = logits.clone().requires_grad_()
    (torch.distributions.Bernoulli(logits=reference).log_prob(mask).sum(dim=1) * weights).sum().backward()
    assert torch.allclose(leaf.grad, reference.grad, atol=1e-6)


def test_hand_written_bernoulli_gradients_equal_autograd_in_float64():
    """`bernoulli_log_prob`'s backward passes torch.autograd.gradcheck, and `log_prob_grad` (the trajectory node's
    d/da of w * log q, [2, sites, batch, width] logits) equals autograd through torch.distributions."""
    torch.manual_seed(0)
    logits = (3 * torch.randn(5, 7, dtype=torch.float64)).requires_grad_()
    mask = (torch.rand(5, 7) < 0.5).double()
    assert torch.autograd.gradcheck(lambda a: bernoulli_log_prob(a, mask), (logits,), eps=1e-6, atol=1e-8)

    logits = 3 * torch.randn(2, 3, 5, 7, dtype=torch.float64)
    mask = (torch.rand(2, 3, 5, 7) < 0.5).double()
    weights = torch.randn(2, 1, 5, dtype=torch.float64)  # one weight per generator and example, as the node's
    leaf = logits.clone().requires_grad_()
    log_q = torch.distributions.Bernoulli(logits=leaf).log_prob(mask).sum(dim=-1)  # [2, 3, 5]
    (expected,) = torch.autograd.grad((weights * log_q).sum(), leaf)
    assert torch.allclose(log_prob_grad(logits.clone(), mask, weights), expected, rtol=1e-12, atol=1e-12)


def test_grouped_tail_equals_separate_branch_mlps():
    """The block-diagonal chain computes the same function as one Linear-LeakyReLU-LayerNorm MLP per branch."""
    torch.manual_seed(0)
    tail = GroupedMLPTail(groups=3, hidden=(5, 4), out_features=2)
    h = torch.randn(7, 15, requires_grad=True)
    out = tail(h)
    expected = []
    for g in range(3):
        x = h[:, 5 * g : 5 * (g + 1)]
        sizes = [5, 4, 2]
        for layer, linear in enumerate(tail.linears):
            x = F.leaky_relu(x, 0.01)
            n = sizes[layer]
            x = F.layer_norm(x, (n,))
            rows = slice(g * sizes[layer + 1], (g + 1) * sizes[layer + 1])
            x = F.linear(x, linear.weight[rows, g * n : (g + 1) * n], linear.bias[rows])
        expected.append(x)
    assert torch.allclose(out, torch.cat(expected, dim=1), atol=1e-6)
    out[:, :2].sum().backward()  # group 0's output depends on group 0's input only
    assert h.grad[:, 5:].abs().sum() == 0 and h.grad[:, :5].abs().sum() > 0


@pytest.mark.parametrize(
    "site, shape",
    [
        (Site(0, "u", 6, "unit", rescale=True), (9, 6)),
        (Site(0, "t", 6, "unit"), (9, 3, 6)),
        (Site(0, "c", 6, "channel"), (9, 6, 2, 2)),
    ],
)
def test_prediction_fast_path_equals_apply_mask_bit_for_bit(site, shape):
    activation, logits = torch.randn(shape), torch.randn(9, 6) * 2
    torch.manual_seed(3)
    expected_mask = keep_with_16_bits(torch.sigmoid(logits)).float()
    expected = apply_mask(site, activation, expected_mask)
    torch.manual_seed(3)
    with torch.no_grad():
        mask, masked = sample_and_apply(site, activation, logits.clone())
    assert torch.equal(mask, expected_mask) and torch.equal(masked, expected)


@pytest.mark.parametrize("p", [0.0, 1e-3, 0.3, 0.5, 0.97, 1.0])
def test_16_bit_masks_have_the_right_keep_probability_in_every_position(p):
    """Each of the four int16 positions of a random word (one has 15 random bits) keeps with probability p."""
    rows, width = 3000, 1023  # width not a multiple of 4
    keep = keep_with_16_bits(torch.full((rows, width), p)).float()
    if p in (0.0, 1.0):
        assert torch.equal(keep, torch.full_like(keep, p))
        return
    by_position = keep[:, :1020].reshape(rows, -1, 4).mean(dim=(0, 1))
    tolerance = 5 * math.sqrt(p * (1 - p) / (rows * 255))
    assert torch.allclose(by_position, torch.full((4,), p), atol=tolerance), by_position
    neighbours = torch.corrcoef(torch.stack([keep[:, :-1].flatten(), keep[:, 1:].flatten()]))[0, 1]
    assert abs(float(neighbours)) < 0.01, "neighbouring units must be independent"


def test_in_place_16_bit_mask_is_the_bool_sample_and_exact_at_the_edges():
    """mask_with_16_bits (in place, scratch buffer) draws what keep_with_16_bits draws, for several shapes in turn."""
    for rows, width in ((5, 7), (64, 1024), (5, 7)):
        probs = torch.rand(rows, width)
        probs[0, :3] = torch.tensor([0.0, 1.0, 2.0**-17])  # never, always, below the 2^-16 resolution
        torch.manual_seed(11)
        expected = keep_with_16_bits(probs).float()
        torch.manual_seed(11)
        mask = mask_with_16_bits(probs.clone())
        assert torch.equal(mask, expected)
        assert mask[0, 0] == 0 and mask[0, 1] == 1
    # the same threshold rule by hand: v = u + 32768 from the int16 views of the drawn words
    probs = torch.rand(3, 8)
    torch.manual_seed(5)
    words = torch.from_numpy(
        __import__("numpy")
        .random.SFC64(int(torch.randint(0, 2**62, (), dtype=torch.int64)))
        .random_raw(6)
        .view("int64")
    )
    v = words.view(torch.int16).view(3, 8).double() + 32768
    torch.manual_seed(5)
    assert torch.equal(mask_with_16_bits(probs.clone()), (v < 65536 * probs.double()).float())


def test_16_bit_masks_follow_per_unit_probabilities():
    probs = torch.rand(1, 64).expand(20000, 64).contiguous()
    frequency = keep_with_16_bits(probs.clone(), overwrite=True).float().mean(dim=0)
    assert torch.allclose(frequency, probs[0], atol=5 * math.sqrt(0.25 / 20000))


def test_blockwise_earlier_masks_equal_the_concatenation():
    torch.manual_seed(0)
    layer = torch.nn.Linear(7, 5)
    masks = [torch.randint(0, 2, (4, w)).float() for w in (3, 1, 3)]
    assert torch.allclose(project_earlier_masks(layer, masks, 4), layer(torch.cat(masks, dim=1)), atol=1e-6)
    with pytest.raises(ValueError, match="expected 4 rows and 7 columns"):
        project_earlier_masks(layer, masks[:2], 4)
    with pytest.raises(ValueError, match="expected"):
        project_earlier_masks(layer, torch.ones(4, 6), 4)


def test_blockwise_projection_gradients_equal_the_concatenation():
    """The custom backward of the block projection (weight and bias gradients) against autograd on the concatenation."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(7, 5)
    masks = [torch.randint(0, 2, (4, w)).float() for w in (3, 1, 3)]
    upstream = torch.randn(4, 5)
    (project_earlier_masks(layer, masks, 4) * upstream).sum().backward()
    blockwise = (layer.weight.grad.clone(), layer.bias.grad.clone())
    layer.zero_grad()
    (layer(torch.cat(masks, dim=1)) * upstream).sum().backward()
    assert torch.allclose(blockwise[0], layer.weight.grad, atol=1e-6)
    assert torch.allclose(blockwise[1], layer.bias.grad, atol=1e-6)


def test_posterior_logits_depend_on_the_label():
    torch.manual_seed(0)
    generator = PosteriorGenerator(mask_features=6, site_width=4, num_classes=3)
    masks, features = torch.randint(0, 2, (5, 6)).float(), torch.randn(5, 4)
    a = generator(masks, features, torch.zeros(5, dtype=torch.long))
    b = generator(masks, features, torch.full((5,), 2))
    assert (a - b).abs().min() > 0
