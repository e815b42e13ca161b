"""GFlowOut's engine: parameter groups, label-free prediction, exploration, bad input, schedules, pure maths, real MNIST."""

import inspect
import math

import pytest
import torch
import torch.nn.functional as F

from gflowout.errors import DataError, NonFiniteLossError
from gflowout.methods.generators import (
    GroupedMLPTail,
    PosteriorGenerator,
    PriorGenerator,
    project_earlier_masks,
)
from gflowout.methods.mask_sampling import (
    bernoulli_log_prob,
    keep_with_16_bits,
    mask_with_16_bits,
    sample_and_apply,
)
from gflowout.methods.gflowout import GFlowOut, PosteriorSampler, PriorSampler
from gflowout.methods.schedules import BetaSchedule, as_beta_schedule
from gflowout.methods.trajectory_balance import trajectory_balance_loss
from gflowout.nets.mlp import MLP
from gflowout.nets.sites import Site, apply_mask, site_features


@pytest.fixture(autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def small_method(**options) -> GFlowOut:
    torch.manual_seed(0)
    return GFlowOut(MLP(hidden=(16, 12)), **options)


def batch(n=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=generator), torch.randint(0, 10, (n,), generator=generator)


# --- parameter groups ----------------------------------------------------------------------------
def test_each_loss_reaches_only_its_own_group():
    method = small_method()
    groups = method.param_groups()
    ids = [{id(p) for p in params} for params in groups.values()]
    assert sum(map(len, ids)) == len(set().union(*ids)) == len(list(method.parameters())), "groups overlap or miss parameters"
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
    method = small_method()
    before = [p.detach().clone() for p in method.parameters()]
    method.predict(torch.rand(rows, 1, 28, 28), samples=samples)
    assert all(torch.equal(a, b) for a, b in zip(before, method.parameters()))


def test_prediction_takes_no_label_by_construction():
    assert list(inspect.signature(GFlowOut.predict).parameters) == ["self", "x", "samples"]
    assert list(inspect.signature(GFlowOut.prediction_sampler).parameters) == ["self"]
    # `out` is an output buffer for the logits (prediction writes them into reused memory), not an input
    assert list(inspect.signature(PriorGenerator.forward).parameters) == ["self", "earlier_masks", "features", "out"]
    assert "labels" in inspect.signature(PosteriorGenerator.forward).parameters


def test_predict_with_reused_buffers_equals_fresh_tensors():
    """Prediction's per-site logits buffers (reused between calls) change nothing: same logits for the same seed, twice."""
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
        for generator, total in ((method.posterior[site.index], expected_forward), (method.prior[site.index], expected_prior)):
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


# --- pure maths ----------------------------------------------------------------------------------
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
    [(Site(0, "u", 6, "unit", rescale=True), (9, 6)), (Site(0, "t", 6, "unit"), (9, 3, 6)), (Site(0, "c", 6, "channel"), (9, 6, 2, 2))],
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
    words = torch.from_numpy(__import__("numpy").random.SFC64(int(torch.randint(0, 2**62, (), dtype=torch.int64))).random_raw(6).view("int64"))
    v = words.view(torch.int16).view(3, 8).double() + 32768
    torch.manual_seed(5)
    assert torch.equal(mask_with_16_bits(probs.clone()), (v < 65536 * probs.double()).float())


def test_16_bit_masks_follow_per_unit_probabilities():
    probs = torch.rand(1, 64).expand(20000, 64).contiguous()
    frequency = keep_with_16_bits(probs.clone(), overwrite=True).float().mean(dim=0)
    assert torch.allclose(frequency, probs[0], atol=5 * math.sqrt(0.25 / 20000))


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


# --- beta schedule -------------------------------------------------------------------------------
def test_paper_mnist_beta_schedule():
    schedule = BetaSchedule.paper_mnist()
    expected = {0: 0.001, 29: 0.001, 30: 0.00316, 59: 0.00316, 60: 0.001 * 3.16**2, 90: 0.001 * 3.16**3,
                120: 0.001 * 3.16**4, 150: 0.001 * 3.16**5, 180: 0.9957, 209: 0.9957, 210: 1.0, 1000: 1.0}
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
    try:
        from gflowout.data import datasets

        train_images, train_labels = datasets.load_split("mnist", "train")
        test_images, test_labels = datasets.load_split("mnist", "test")
    except (ImportError, DataError) as error:
        pytest.skip(f"real MNIST is not available ({error}); `make test` fetches it first")
    return (
        datasets.to_tensor(train_images[:6000], "mnist"),
        torch.as_tensor(train_labels[:6000]),
        datasets.to_tensor(test_images[:1000], "mnist"),
        torch.as_tensor(test_labels[:1000]),
    )


@pytest.mark.slow
def test_short_mnist_run_beats_chance_and_trajectory_balance_falls(mnist_subset):
    x_train, y_train, x_test, y_test = mnist_subset
    torch.manual_seed(0)
    method = GFlowOut(MLP(hidden=(128, 128)), beta=1.0)
    optimizers = method.make_optimizers()
    generator = torch.Generator().manual_seed(0)
    tb_losses = []
    for step in range(300):
        index = torch.randint(0, len(y_train), (64,), generator=generator)
        tb_losses.append(method.train_step(x_train[index], y_train[index], optimizers)["posterior"])
    accuracy = (method.predict(x_test, samples=8).softmax(dim=-1).mean(dim=0).argmax(dim=1) == y_test).float().mean().item()
    single_pass = (method.predict(x_test, samples=1)[0].argmax(dim=1) == y_test).float().mean().item()
    assert accuracy > 0.8 and single_pass > 0.7, f"accuracy {accuracy:.3f} (1 sample: {single_pass:.3f}); chance is 0.1"
    early, late = sum(tb_losses[:30]) / 30, sum(tb_losses[-30:]) / 30
    print(f"accuracy {accuracy:.3f}, single pass {single_pass:.3f}, TB {early:.1f} -> {late:.1f}")
    assert late < 0.2 * early, f"trajectory balance loss did not fall: first 30 steps {early:.1f}, last 30 {late:.1f}"
