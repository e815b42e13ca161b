"""DeepEnsemble: distinct members, the predictive is the mean of their softmaxes, and one joint training equals
M separate trainings (each member alone with its own Adam, the reference)."""

from __future__ import annotations

import pytest
import torch

from gflowout.eval.predictive import Predictive
from gflowout.methods import MethodName, method_class
from gflowout.methods.ensemble import DeepEnsemble
from gflowout.methods.none import NoDropout
from gflowout.nets.mlp import MLP

CLASSES = 4


def _ensemble(members: int = 3, seed: int = 0) -> DeepEnsemble:
    torch.manual_seed(seed)
    return DeepEnsemble(MLP(input_shape=(1, 4, 4), hidden=(10, 10), num_classes=CLASSES), members=members)


def _data(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    return torch.rand(n, 1, 4, 4, generator=generator), torch.randint(0, CLASSES, (n,), generator=generator)


def test_the_name_table_and_the_public_api_give_the_ensemble() -> None:
    import gflowout

    assert method_class("ensemble") is DeepEnsemble is gflowout.DeepEnsemble
    assert MethodName("ensemble") is MethodName.ENSEMBLE


def test_members_differ_and_are_a_function_of_the_seed() -> None:
    method = _ensemble(members=4)
    weights = [member.head.weight.detach() for member in method.members]
    assert len(weights) == 4
    assert all(not torch.equal(weights[i], weights[j]) for i in range(4) for j in range(i + 1, 4))
    x, _ = _data()
    logits = method.predict(x)
    assert logits.shape == (4, x.shape[0], CLASSES)
    assert all(not torch.allclose(logits[i], logits[j]) for i in range(4) for j in range(i + 1, 4))
    again = _ensemble(members=4)
    assert all(torch.equal(a, b) for a, b in zip(method.state_dict().values(), again.state_dict().values()))
    other = _ensemble(members=4, seed=1)
    assert not torch.equal(method.others[0].head.weight, other.others[0].head.weight)


def test_the_predictive_is_the_mean_of_the_members_softmaxes() -> None:
    method = _ensemble(members=3)
    x, _ = _data()
    with torch.no_grad():  # each member on its own, in eval mode, softmaxes averaged by hand
        method.eval()
        by_hand = sum(torch.softmax(member(x), dim=-1) for member in method.members) / 3
    method.train()
    predictive = Predictive.from_logits(method.predict(x, samples=3))
    torch.testing.assert_close(predictive.probs, by_hand.double(), rtol=1e-6, atol=1e-7)
    assert predictive.samples == 3


def test_samples_other_than_the_member_count_are_refused() -> None:
    method = _ensemble(members=3)
    x, _ = _data(4)
    with pytest.raises(ValueError, match="predicts exactly 3 samples"):
        method.predict(x, samples=20)
    assert method.prediction_samples(20) == 3
    assert method.predict(x, samples=method.prediction_samples(20)).shape[0] == 3


@pytest.mark.parametrize("members", [0, -1, 2.5, True])
def test_a_bad_member_count_is_refused(members: object) -> None:
    with pytest.raises(ValueError, match="members must be a positive integer"):
        DeepEnsemble(MLP(input_shape=(1, 4, 4), hidden=(4,), num_classes=CLASSES), members=members)


@pytest.mark.parametrize("optimizer", [{}, {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9}])
def test_one_joint_training_equals_separate_trainings_of_each_member(optimizer: dict) -> None:
    """Sum of the members' losses + one optimiser == each member trained alone (NoDropout, its own optimiser, same
    batches), with Adam (the default) and with SGD (which would see a mean of the losses as a smaller step)."""
    method = _ensemble(members=3)
    alone = [NoDropout(MLP(input_shape=(1, 4, 4), hidden=(10, 10), num_classes=CLASSES)) for _ in range(3)]
    for single, member in zip(alone, method.members):
        single.net.load_state_dict(member.state_dict())
    overrides = {"backbone": optimizer}
    joint_optimizers = method.make_optimizers(overrides)
    single_optimizers = [single.make_optimizers(overrides) for single in alone]
    x, y = _data(48)
    for step in range(6):
        rows = slice(8 * step, 8 * step + 8)
        method.train_step(x[rows], y[rows], joint_optimizers)
        for single, optimizers in zip(alone, single_optimizers):
            single.train_step(x[rows], y[rows], optimizers)
    for single, member in zip(alone, method.members):
        for (name, trained), reference in zip(member.named_parameters(), single.net.parameters()):
            torch.testing.assert_close(trained, reference, rtol=1e-6, atol=1e-7, msg=name)


def test_a_backbone_that_cannot_be_reinitialised_is_refused() -> None:
    net = MLP(input_shape=(1, 4, 4), hidden=(4,), num_classes=CLASSES)
    for module in net.modules():
        if isinstance(module, torch.nn.Linear):
            module.reset_parameters = lambda: None  # a layer whose reset draws nothing
    with pytest.raises(ValueError, match="changed no weight"):
        DeepEnsemble(net, members=2)


def test_a_resnet_ensemble_keeps_its_initialisation_and_resets_batchnorm() -> None:
    """CifarResNet18's members are re-drawn with its own (Kaiming) initialisation; BatchNorm statistics reset."""
    from gflowout.nets.resnet import CifarResNet18

    torch.manual_seed(0)
    net = CifarResNet18(width=4, num_classes=CLASSES)
    net.train()
    net(torch.randn(8, 3, 32, 32))  # move the running statistics of member 0
    method = DeepEnsemble(net, members=2)
    copy = method.others[0]
    stem = next(m for m in copy.modules() if isinstance(m, torch.nn.Conv2d))
    assert not torch.equal(stem.weight, next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d)).weight)
    fan_out = stem.weight.shape[0] * stem.weight[0, 0].numel()
    assert float(stem.weight.detach().std()) == pytest.approx(
        (2.0 / fan_out) ** 0.5, rel=0.35
    )  # Kaiming normal, fan_out
    norms = [m for m in copy.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(torch.equal(m.running_mean, torch.zeros_like(m.running_mean)) for m in norms)
    assert method.predict(torch.randn(2, 3, 32, 32)).shape == (2, 2, CLASSES)


def test_an_ensemble_of_a_wrapped_user_module() -> None:
    import gflowout

    torch.manual_seed(0)
    user = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(16, 12),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.3),
        torch.nn.Linear(12, CLASSES),
    )
    method = DeepEnsemble(gflowout.wrap(user, input_shape=(1, 4, 4), num_classes=CLASSES), members=3)
    x, y = _data(8)
    logits = method.predict(x)
    assert logits.shape == (3, 8, CLASSES) and not torch.allclose(logits[0], logits[1])
    method.train_step(x, y, method.make_optimizers())


def test_building_an_ensemble_draws_one_seed_and_reseeds_nothing() -> None:
    """Construction takes one draw from torch's RNG (the members' base seed) and leaves every RNG state otherwise
    as it was: the stream after it is the stream after one draw."""
    torch.manual_seed(5)
    net = MLP(input_shape=(1, 4, 4), hidden=(6,), num_classes=CLASSES)
    state = torch.get_rng_state()
    DeepEnsemble(net, members=3)
    after_build = torch.rand(3)
    torch.set_rng_state(state)
    torch.randint(0, 2**62, (1,))
    assert torch.equal(torch.rand(3), after_build)
    DeepEnsemble(net, members=2, init_seed=11)  # a given seed draws nothing
    state = torch.get_rng_state()
    DeepEnsemble(net, members=2, init_seed=11)
    assert torch.equal(torch.get_rng_state(), state)
