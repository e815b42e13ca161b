"""ID-GFlowOut: N is never 0, the reward is beta * N * log p(y|x,z) + log p(z).

Also groups, label-free prediction and bad input.
"""

import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from gflowout.methods import method_class
from gflowout.methods.id_gflowout import ChainSampler, IDGFlowOut
from gflowout.methods.mask_sampling import bernoulli_log_prob
from gflowout.nets.mlp import MLP
from tests.helpers.methods import assert_predict_leaves_parameters_untouched, batch, real_mnist_subset, small_mlp_method


def small_method(**options) -> IDGFlowOut:
    return small_mlp_method(IDGFlowOut, **{"dataset_size": 100, **options})


@pytest.mark.parametrize("size", [0, -5, 2.5, True, None])
def test_dataset_size_must_be_a_positive_count(size):
    with pytest.raises(ValueError, match="dataset_size"):
        small_method(dataset_size=size)


def test_dataset_size_is_required():
    assert inspect.signature(IDGFlowOut).parameters["dataset_size"].default is inspect.Parameter.empty
    with pytest.raises(TypeError):
        IDGFlowOut(MLP(hidden=(8,)))


@pytest.mark.parametrize("dataset_size, beta", [(1, 1.0), (42000, 1.0), (60000, 0.001)])
def test_reward_is_beta_n_log_likelihood_plus_log_prior(dataset_size, beta):
    """With epsilon = 1 and keep 1 every mask is all ones, so the reward has a hand-computable value."""
    method = small_method(dataset_size=dataset_size, beta=beta, epsilon=1.0, epsilon_keep=1.0, prior_keep=0.3)
    x, y = batch()
    logs = method.training_losses(x, y).logs
    with torch.no_grad():
        log_likelihood = -F.cross_entropy(method.net(x, None), y, reduction="none")  # all-ones masks = no mask
    units = sum(site.width for site in method.net.sites)
    expected = beta * dataset_size * log_likelihood + units * math.log(0.3)
    assert logs["log_reward"].item() == pytest.approx(expected.mean().item(), rel=1e-4)
    assert logs["keep_rate"].item() == 1.0


def test_each_loss_reaches_only_its_own_group():
    method = small_method()
    groups = method.param_groups()
    assert set(groups) == {"backbone", "posterior"}
    assert any(p is method.log_z for p in groups["posterior"])
    x, y = batch()
    losses = method.training_losses(x, y).losses
    for name, loss in losses.items():
        method.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        for group, params in groups.items():
            reached = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params]
            assert any(reached) if group == name else not any(reached), f"loss {name!r} vs group {group!r}"
    optimizer = method.make_optimizers()["posterior"]
    assert optimizer.param_groups[1]["params"] == [method.log_z]
    assert (optimizer.param_groups[1]["lr"], optimizer.param_groups[1]["weight_decay"]) == (0.1, 0.0)


def test_prediction_masks_come_from_q_without_label_or_input():
    method = small_method()
    assert list(inspect.signature(method.predict).parameters) == ["x", "samples"]
    x, _ = batch(3)
    logits = method.predict(x, samples=4)
    assert logits.shape == (4, 3, 10)
    sampler = method.prediction_sampler()
    assert isinstance(sampler, ChainSampler) and not sampler.score
    # The first site's keep probabilities are the learned constant, whatever the input.
    with torch.no_grad():
        method.generators[0].constant.fill_(3.0)
    sampler = method.prediction_sampler()
    with torch.no_grad():
        method.net(torch.rand(4000, 1, 28, 28), sampler)
    assert sampler.chain.masks[0].mean().item() == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item(), abs=0.01)


def test_training_masks_follow_q_at_the_temperature_and_log_q_is_scored_at_one():
    """As GFlowOut's policy (test_trajectory_policy_engine.py): masks come from sigmoid(logits / T), T = 2 here,
    within 5 SE per unit, while log q(z) is that of the drawn masks under the policy at T = 1."""
    method = small_method()
    rows = 4000
    torch.manual_seed(0)
    with torch.no_grad():
        method.generators[0].constant.copy_(torch.linspace(-3.0, 3.0, method.net.sites[0].width))
    sampler = ChainSampler(method.generators, temperature=2.0)
    with torch.no_grad():
        method.net(torch.rand(1, 1, 28, 28).expand(rows, -1, -1, -1), sampler)
    masks = sampler.chain.masks
    keep = torch.sigmoid(method.generators[0].constant.detach() / 2.0)
    tolerance = 5 * torch.sqrt(keep * (1 - keep) / rows) + 1e-3
    assert ((masks[0].mean(dim=0) - keep).abs() <= tolerance).all()
    untempered = torch.sigmoid(method.generators[0].constant.detach())
    assert ((masks[0].mean(dim=0) - untempered).abs() > tolerance).any(), "T = 2 and T = 1 must be told apart"
    with torch.no_grad():
        expected = sum(
            bernoulli_log_prob(g(masks[:k] or None, rows), masks[k]) for k, g in enumerate(method.generators)
        )
    assert torch.allclose(sampler.log_forward, expected, rtol=1e-5, atol=1e-4)  # scored at T = 1


@pytest.mark.parametrize("rows, samples", [(1, 1), (1, 3), (4, 1), (4, 5)])
def test_prediction_leaves_every_parameter_untouched(rows, samples):
    assert_predict_leaves_parameters_untouched(small_method(), rows, samples)


def test_bad_input_raises_and_trains_nothing():
    method = small_method()
    optimizers = method.make_optimizers()
    before = [p.detach().clone() for p in method.parameters()]
    for x, y in ((torch.rand(2, 784), torch.tensor([0, 1])), (torch.rand(2, 1, 28, 28), torch.tensor([0, 11]))):
        with pytest.raises(ValueError):
            method.train_step(x, y, optimizers)
    assert all(torch.equal(a, b) for a, b in zip(before, method.parameters()))


def test_method_table_builds_both_engines():
    net = MLP(hidden=(8,))
    assert method_class("id_gflowout") is IDGFlowOut and method_class("id_gflowout").name == "id_gflowout"
    assert method_class("gflowout").name == "gflowout"
    assert method_class("gflowout")(net).name == "gflowout"


@pytest.mark.slow
def test_short_mnist_run_beats_chance():
    x_train, y_train, x_test, y_test = real_mnist_subset(6000, 1000)
    torch.manual_seed(0)
    method = IDGFlowOut(MLP(hidden=(128, 128)), dataset_size=len(y_train))
    optimizers = method.make_optimizers()
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        index = torch.randint(0, len(y_train), (64,), generator=generator)
        method.train_step(x_train[index], y_train[index], optimizers)
    accuracy = (
        (method.predict(x_test, samples=8).softmax(dim=-1).mean(dim=0).argmax(dim=1) == y_test).float().mean().item()
    )
    assert accuracy > 0.8, f"accuracy {accuracy:.3f}; chance is 0.1"


# --- log Z start (logz_init) ------------------------------------------------------------------------
def test_first_batch_start_of_log_z_makes_the_first_tb_loss_far_smaller():
    """logz_init="first_batch" sets log Z to the TB minimiser of the first batch before the step.

    The minimiser is mean(log R - log P_F).
    """
    x, y = batch(32)
    losses, mean_gap = {}, None
    for start in ("zero", "first_batch"):
        method = small_method(dataset_size=42000, logz_init=start)
        torch.manual_seed(1)
        result = method.training_losses(x, y)
        losses[start] = float(result.losses["posterior"].detach())
        if start == "zero":
            assert method.log_z.item() == 0.0
        else:  # by hand: the batch's mean of log R - log P_F, which the logs report as their means
            mean_gap = float(result.logs["log_reward"]) - float(result.logs["log_forward"])
            assert method.log_z.item() == pytest.approx(mean_gap, rel=1e-5)
            assert bool(method.logz_initialized)
    assert losses["zero"] > 1e8  # the reward is beta * N * log p(y|x,z): ~ -N * log 10 here
    # same masks (same seed): with d = log R - log P_F, mean(d^2) - mean(d)^2 is what is left, the batch's variance
    assert losses["first_batch"] == pytest.approx(losses["zero"] - mean_gap**2, rel=1e-3)
    assert losses["first_batch"] < 0.1 * losses["zero"], losses


def test_log_z_start_happens_once_and_survives_a_checkpoint():
    x, y = batch(16)
    method = small_method(dataset_size=5000)
    method.train_step(x, y, method.make_optimizers())
    after_first = method.log_z.item()
    assert bool(method.logz_initialized) and after_first < -100
    resumed = small_method(dataset_size=5000)
    assert not bool(resumed.logz_initialized)
    resumed.load_state_dict(method.state_dict())
    assert bool(resumed.logz_initialized)
    resumed.training_losses(*batch(16, seed=3))  # a different batch: log Z must not be re-started from it
    assert resumed.log_z.item() == after_first
    old_checkpoint = {k: v for k, v in method.state_dict().items() if k != "logz_initialized"}
    legacy = small_method(dataset_size=5000)
    legacy.load_state_dict(old_checkpoint)  # checkpoints from before the option: log Z counts as trained
    assert bool(legacy.logz_initialized)


def test_logz_init_rejects_unknown_values():
    with pytest.raises(ValueError, match="logz_init"):
        small_method(logz_init="mean")


def test_predict_with_reused_buffers_equals_the_plain_prediction_sampler():
    """predict's own sampler (logits in reused per-thread buffers) gives what the handed-out sampler gives.

    The same, call after call.
    """
    method = small_method()
    method.eval()
    x, _ = batch(5)
    torch.manual_seed(8)
    with torch.no_grad():
        expected = method.net(x.repeat(4, 1, 1, 1), method.prediction_sampler()).reshape(4, 5, -1)
    for _ in range(2):
        torch.manual_seed(8)
        assert torch.equal(method.predict(x, samples=4), expected)


def test_bf16_autocast_scores_masks_in_float32():
    """Under CPU bf16 autocast (bf16-mixed) ID-GFlowOut's log q(z) is computed in float32, equal to the plain value."""
    torch.manual_seed(0)
    method = IDGFlowOut(MLP(hidden=(16, 12)), dataset_size=100)
    x = torch.rand(5, 1, 28, 28)
    masks = [(torch.rand(5, site.width) < 0.5).float() for site in method.net.sites]
    plain = ChainSampler(method.generators, forced_masks=masks)
    with torch.no_grad():
        method.net(x, plain)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = ChainSampler(method.generators, forced_masks=masks)
            method.net(x, mixed)
    assert mixed.log_forward.dtype == torch.float32
    assert torch.equal(mixed.log_forward, plain.log_forward)
