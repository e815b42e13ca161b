"""GFlowOut the method: parameter groups, label-free prediction, exploration, bad input, schedules, real MNIST.
(Its building blocks as pure maths are in test_gflowout_maths.py.)"""

import inspect
import math

import pytest
import torch

from gflowout.errors import NonFiniteLossError
from gflowout.methods.generators import PosteriorGenerator, PriorGenerator
from gflowout.methods.gflowout import GFlowOut, PosteriorSampler, PriorSampler
from gflowout.methods.schedules import BetaSchedule, as_beta_schedule
from gflowout.nets.mlp import MLP
from gflowout.nets.sites import site_features
from tests.helpers.methods import assert_predict_leaves_parameters_untouched, batch, real_mnist_subset, small_mlp_method


def small_method(**options) -> GFlowOut:
    return small_mlp_method(GFlowOut, **options)


# --- parameter groups ----------------------------------------------------------------------------
def test_each_loss_reaches_only_its_own_group():
    method = small_method()
    groups = method.param_groups()
    ids = [{id(p) for p in params} for params in groups.values()]
    assert sum(map(len, ids)) == len(set().union(*ids)) == len(list(method.parameters())), (
        "groups overlap or miss parameters"
    )
    x, y = batch()
    losses = method.training_losses(x, y).losses
    assert set(losses) == set(groups) == {"backbone", "posterior", "prior"}
    for name, loss in losses.items():
        method.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        for group, params in groups.items():
            reached = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params]
            if group == name:
                assert sum(reached) >= len(params) // 2, f"loss {name!r} reaches too few of its own parameters"
            else:
                assert not any(reached), f"loss {name!r} sends gradient into group {group!r}"
    # log Z is trained by trajectory balance only.
    method.zero_grad(set_to_none=True)
    losses["posterior"].backward(retain_graph=True)
    assert all(p.grad is not None for p in method.log_partition.parameters())


def test_posterior_optimiser_gives_log_z_its_own_lr_and_no_weight_decay():
    method = small_method(posterior_lr=1e-3, logz_lr=0.1, generator_weight_decay=0.1)
    optimizers = method.make_optimizers()
    assert set(optimizers) == {"backbone", "posterior", "prior"}
    generators, log_z = optimizers["posterior"].param_groups
    assert (generators["lr"], generators["weight_decay"]) == (1e-3, 0.1)
    assert (log_z["lr"], log_z["weight_decay"]) == (0.1, 0.0)
    assert {id(p) for p in log_z["params"]} == {id(p) for p in method.log_partition.parameters()}
    overridden = method.make_optimizers({"posterior": {"lr": 5e-4}})["posterior"].param_groups
    assert overridden[0]["lr"] == 5e-4 and overridden[1]["lr"] == 0.1


# --- prediction never sees a label ---------------------------------------------------------------
@pytest.mark.parametrize("rows, samples", [(1, 1), (1, 3), (4, 1), (4, 5)])
def test_prediction_leaves_every_parameter_untouched(rows, samples):
    assert_predict_leaves_parameters_untouched(small_method(), rows, samples)


def test_prediction_takes_no_label_by_construction():
    assert list(inspect.signature(GFlowOut.predict).parameters) == ["self", "x", "samples"]
    assert list(inspect.signature(GFlowOut.prediction_sampler).parameters) == ["self"]
    # `out` is an output buffer for the logits (prediction writes them into reused memory), not an input
    assert list(inspect.signature(PriorGenerator.forward).parameters) == ["self", "earlier_masks", "features", "out"]
    assert "labels" in inspect.signature(PosteriorGenerator.forward).parameters


def test_predict_with_reused_buffers_equals_fresh_tensors():
    """Prediction's per-site logits buffers (reused between calls) change nothing.

    Same logits for the same seed, twice.
    """
    method = small_method()
    x, _ = batch(5)
    results = []
    for reuse in (False, True, True):
        torch.manual_seed(4)
        with torch.no_grad():
            expanded = x.repeat(3, 1, 1, 1)
            results.append(method.net(expanded, PriorSampler(method.prior, copies=3, reuse_buffers=reuse)))
    assert torch.equal(results[0], results[1]) and torch.equal(results[0], results[2])
    torch.manual_seed(4)
    assert torch.equal(method.predict(x, samples=3), results[0].reshape(3, 5, -1))


def test_predict_never_calls_the_posterior_or_log_z(monkeypatch):
    method = small_method()
    x, _ = batch(4)

    def forbidden(*args, **kwargs):
        raise AssertionError("a label-conditioned module was called during prediction")

    for generator in method.posterior:
        monkeypatch.setattr(generator, "forward", forbidden)
    monkeypatch.setattr(method.log_partition, "forward", forbidden)
    logits = method.predict(x, samples=5)
    assert logits.shape == (5, 4, 10)
    assert not torch.equal(logits[0], logits[1]), "prior samples should differ between samples"
    assert method.predict(x, samples=1).shape == (1, 4, 10)  # the single-pass mode


def test_predictions_are_identical_whatever_labels_exist_elsewhere():
    method = small_method()
    x, _ = batch(6)
    outputs = []
    for labels in (torch.zeros(6, dtype=torch.long), torch.full((6,), 9), torch.arange(6)):
        method.training_losses(x, labels)  # a labelled pass (no optimiser step) right before predicting
        torch.manual_seed(123)
        outputs.append(method.predict(x, samples=4))
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])


def test_prior_masks_follow_the_prior_probabilities():
    """Sampled prediction masks have the prior's keep probabilities (checked on the first site)."""
    method = small_method()
    x = torch.rand(1, 1, 28, 28).expand(4000, 1, 28, 28)
    first_site = method.net.sites[0]
    seen = {}

    def recording_sampler(site, activation):
        out = base(site, activation)
        if site.index == 0:
            seen["mask"] = base.chain.masks[0]
            seen["features"] = site_features(site, activation)
        return out

    base = method.prediction_sampler()
    with torch.no_grad():
        method.net(x, recording_sampler)
        keep = torch.sigmoid(method.prior[0](None, seen["features"][:1]))[0]
    frequency = seen["mask"].mean(dim=0)
    assert seen["mask"].shape == (4000, first_site.width)
    assert torch.allclose(frequency, keep, atol=4 * math.sqrt(0.25 / 4000))


def test_predict_runs_the_first_site_prior_once_per_input(monkeypatch):
    method = small_method()
    x, _ = batch(3)
    rows = []
    original = method.prior[0].forward
    monkeypatch.setattr(method.prior[0], "forward", lambda *args: rows.append(args[1].shape[0]) or original(*args))
    logits = method.predict(x, samples=7)
    assert rows == [3] and logits.shape == (7, 3, 10)
    # The shared logits give every copy of an input the prior's keep probabilities at the first site.
    sampler = PriorSampler(method.prior, copies=4000)
    with torch.no_grad():
        method.net(x[:1].repeat(4000, 1, 1, 1), sampler)
        keep = torch.sigmoid(original(None, method.net.hidden[1](method.net.hidden[0](x[:1].flatten(1)))))[0]
    assert rows[-1] == 1
    assert torch.allclose(sampler.chain.masks[0].mean(dim=0), keep, atol=4 * math.sqrt(0.25 / 4000))


# --- exploration -----------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [0.0, 1.0])
def test_epsilon_masks_are_scored_as_applied(keep):
    """With epsilon = 1 every applied mask is the Bernoulli(keep) one; log P_F must be that mask's, at T = 1."""
    method = small_method()
    x, y = batch(5)
    sampler = PosteriorSampler(method.posterior, method.prior, y, temperature=2.0, epsilon=1.0, epsilon_keep=keep)
    with torch.no_grad():
        method.net(x, sampler)
    assert all(torch.equal(m, torch.full_like(m, keep)) for m in sampler.chain.masks)

    expected_forward = torch.zeros(5, dtype=torch.float64)
    expected_prior = torch.zeros(5, dtype=torch.float64)
    earlier = []

    def forced(site, activation):
        mask = torch.full((5, site.width), keep)
        features = site_features(site, activation)
        previous = torch.cat(earlier, dim=1) if earlier else None
        for generator, total in (
            (method.posterior[site.index], expected_forward),
            (method.prior[site.index], expected_prior),
        ):
            args = (previous, features, y) if generator is method.posterior[site.index] else (previous, features)
            p = torch.sigmoid(generator(*args).double())
            total += (p.log() if keep else (1 - p).log()).sum(dim=1)
        earlier.append(mask)
        return activation * mask * (site.width / (mask.sum(dim=1, keepdim=True) + 1e-6))

    with torch.no_grad():
        method.net(x, forced)
    assert torch.allclose(sampler.log_forward.double(), expected_forward, rtol=1e-5, atol=1e-4)
    assert torch.allclose(sampler.log_prior.double(), expected_prior, rtol=1e-5, atol=1e-4)


def test_exploration_options_are_checked():
    for bad in ({"train_temperature": 0.0}, {"epsilon": 1.5}, {"epsilon_keep": -0.1}, {"dataset_size": 0}):
        with pytest.raises(ValueError):
            small_method(**bad)


# --- bad input ----------------------------------------------------------------------------------
def with_value(value, index=(1, 0, 3, 4)):
    x = torch.rand(4, 1, 28, 28)
    x[index] = value
    return x


BAD_INPUTS = {
    "wrong shape": (torch.rand(4, 1, 28, 27), torch.tensor([0, 1, 2, 3]), "shape"),
    "integer pixels": (torch.randint(0, 255, (4, 1, 28, 28)), torch.tensor([0, 1, 2, 3]), "dtype"),
    "label out of range": (torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 10]), "out of range"),
    "negative label": (torch.rand(4, 1, 28, 28), torch.tensor([0, -1, 2, 3]), "out of range"),
    "float labels": (torch.rand(4, 1, 28, 28), torch.tensor([0.0, 1.0, 2.0, 3.0]), "dtype"),
    "label count": (torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2]), "shape"),
    "NaN pixel": (with_value(float("nan")), torch.tensor([0, 1, 2, 3]), "NaN"),
    "inf pixel": (with_value(float("inf")), torch.tensor([0, 1, 2, 3]), "infinite"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_a_clear_value_error_and_trains_nothing(case):
    x, y, words = BAD_INPUTS[case]
    method = small_method()
    optimizers = method.make_optimizers()
    before = [p.detach().clone() for p in method.parameters()]
    with pytest.raises(ValueError, match=words):
        method.train_step(x, y, optimizers)
    assert all(torch.equal(a, b) for a, b in zip(before, method.parameters()))
    if case in ("wrong shape", "integer pixels", "NaN pixel", "inf pixel"):
        with pytest.raises(ValueError, match="x"):
            method.predict(x, samples=2)


def test_non_finite_loss_raises_with_a_diagnostic():
    method = small_method()
    with torch.no_grad():
        method.net.head.bias[3] = float("inf")  # logits overflow: log p(y | x, z) is not finite
    x, y = batch()
    with pytest.raises(NonFiniteLossError, match="log_reward"):
        method.training_losses(x, y)


# --- beta schedule -------------------------------------------------------------------------------
def test_paper_mnist_beta_schedule():
    schedule = BetaSchedule.paper_mnist()
    expected = {
        0: 0.001,
        29: 0.001,
        30: 0.00316,
        59: 0.00316,
        60: 0.001 * 3.16**2,
        90: 0.001 * 3.16**3,
        120: 0.001 * 3.16**4,
        150: 0.001 * 3.16**5,
        180: 0.9957,
        209: 0.9957,
        210: 1.0,
        1000: 1.0,
    }
    for epoch, beta in expected.items():
        assert schedule.value(epoch) == pytest.approx(beta, rel=1e-3), f"epoch {epoch}"
    assert as_beta_schedule(0.3).value(500) == 0.3
    assert as_beta_schedule("paper_mnist") == schedule
    assert as_beta_schedule({"initial": 0.01, "factor": 2.0, "every": 10}).value(25) == pytest.approx(0.04)
    for bad in ("fast", {"start": 1.0}, -1.0, 0.0):
        with pytest.raises(ValueError):
            as_beta_schedule(bad)


def test_beta_lives_in_a_buffer_and_reaches_the_reward():
    method = small_method(beta="paper_mnist")
    method.set_epoch(65)
    assert method.beta.item() == pytest.approx(0.001 * 3.16**2)
    state = method.state_dict()
    assert "beta" in state and "epoch" in state
    fresh = small_method(beta="paper_mnist")
    fresh.load_state_dict(state)
    assert fresh.beta.item() == pytest.approx(0.001 * 3.16**2) and int(fresh.epoch) == 65
    x, y = batch()
    assert method.training_losses(x, y).logs["beta"].item() == pytest.approx(0.001 * 3.16**2)


def test_state_dict_round_trip_gives_the_same_predictions():
    method = small_method()
    x, y = batch()
    optimizers = method.make_optimizers()
    for _ in range(3):
        method.train_step(x, y, optimizers)
    copy = small_method()
    copy.load_state_dict(method.state_dict())
    torch.manual_seed(5)
    first = method.predict(x, samples=3)
    torch.manual_seed(5)
    assert torch.equal(first, copy.predict(x, samples=3))


# --- a short run on real MNIST -------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist_subset():
    """6000 training and 1000 test images of real MNIST in [0, 1] (skips with the reason when absent)."""
    return real_mnist_subset(6000, 1000)


@pytest.mark.slow
def test_short_mnist_run_beats_chance_and_trajectory_balance_falls(mnist_subset):
    x_train, y_train, x_test, y_test = mnist_subset
    torch.manual_seed(0)
    method = GFlowOut(MLP(hidden=(128, 128)), beta=1.0)
    optimizers = method.make_optimizers()
    generator = torch.Generator().manual_seed(0)
    tb_losses = []
    for _step in range(300):
        index = torch.randint(0, len(y_train), (64,), generator=generator)
        tb_losses.append(method.train_step(x_train[index], y_train[index], optimizers)["posterior"])
    accuracy = (
        (method.predict(x_test, samples=8).softmax(dim=-1).mean(dim=0).argmax(dim=1) == y_test).float().mean().item()
    )
    single_pass = (method.predict(x_test, samples=1)[0].argmax(dim=1) == y_test).float().mean().item()
    assert accuracy > 0.8 and single_pass > 0.7, f"accuracy {accuracy:.3f} (1 sample: {single_pass:.3f}); chance is 0.1"
    early, late = sum(tb_losses[:30]) / 30, sum(tb_losses[-30:]) / 30
    print(f"accuracy {accuracy:.3f}, single pass {single_pass:.3f}, TB {early:.1f} -> {late:.1f}")
    assert late < 0.2 * early, f"trajectory balance loss did not fall: first 30 steps {early:.1f}, last 30 {late:.1f}"


# --- mixed precision -------------------------------------------------------------------------------
def test_bf16_autocast_keeps_log_z_and_log_forward_in_float32():
    """Lightning's bf16-mixed runs the step under CPU autocast; log Z and log P_F must stay float32
    (bf16 would round log Z ~ 700 to a multiple of 4): equal to the values without autocast."""
    method = small_method()
    x, y = batch(6)
    masks = [(torch.rand(6, site.width) < 0.5).float() for site in method.net.sites]
    reference = method.score_masks(x, y, masks)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = method.score_masks(x, y, masks)
        sampler = PosteriorSampler(method.posterior, method.prior, y, forced_masks=masks)
        method.net(x, sampler)
    assert mixed["log_z"].dtype == torch.float32 and torch.equal(mixed["log_z"], reference["log_z"])
    assert sampler.log_forward.dtype == torch.float32
    # the generators read the (bf16) activations, so log P_F moves a little, but not by bf16's rounding of a sum
    assert torch.allclose(sampler.log_forward, reference["log_forward"], rtol=0.02, atol=0.5)


@pytest.mark.parametrize("kind", ["gflowout", "id_gflowout"])
def test_train_step_clips_with_the_overrides_given_to_make_optimizers(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GFlowOut and ID-GFlowOut build their own optimisers; a clip_norm override reached them but train_step
    did not clip with it (it read the defaults): gradient norms 800 where 1e-3 was asked."""
    from gflowout.methods.id_gflowout import IDGFlowOut

    torch.manual_seed(0)
    net = MLP(input_shape=(5,), num_classes=3, hidden=(8, 8))
    method = GFlowOut(net) if kind == "gflowout" else IDGFlowOut(net, dataset_size=100)
    optimizers = method.make_optimizers({"posterior": {"clip_norm": 1e-3}, "backbone": {"clip_norm": 1e-3}})
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    method.train_step(x, y, optimizers)  # ID-GFlowOut sets log Z from the first batch
    norms: dict[int, float] = {}
    real_step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        grads = [p.grad.norm() for group in self.param_groups for p in group["params"] if p.grad is not None]
        norms[id(self)] = float(torch.stack(grads).norm())
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    method.train_step(x, y, optimizers)
    for name in ("backbone", "posterior"):
        assert norms[id(optimizers[name])] <= 1e-3 * (1 + 1e-5), name


def test_the_first_site_prior_is_shared_only_when_every_copy_agrees() -> None:
    """predict's batch expansion computes the first site's prior once per input when the S copies' activations
    agree; the check compared copy 2 with copy 1 only, so copies 3..S could get another copy's prior (a random
    layer before the first site: 9 of 40 predict calls on a wrapped net with an always-on F.dropout)."""
    torch.manual_seed(0)
    method = GFlowOut(MLP(input_shape=(4,), num_classes=3, hidden=(6, 6)))
    batch, copies = 2, 4
    one = torch.randn(batch, 6)
    features = one.repeat(copies, 1)
    sampler = PriorSampler(method.prior, copies=copies)
    with torch.no_grad():
        shared = sampler._first_site_logits_once(features)
        assert shared is not None and torch.allclose(shared, method.prior[0](None, features))
        features[2 * batch :] += 1.0  # copies 1 and 2 agree, copies 3 and 4 do not
        assert sampler._first_site_logits_once(features) is None  # the full batch is then scored row by row
