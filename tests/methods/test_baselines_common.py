"""What every baseline promises: label-free prediction, seeded masks, clear input errors, and a
short real-MNIST run well above chance."""

import inspect

import pytest
import torch

from gflowout.methods import method_class
from gflowout.nets.mlp import MLP
from tests.helpers.methods import real_mnist_subset

TRAIN_SIZE, TEST_SIZE = 8000, 1000  # the real-MNIST run
BASELINES = [
    ("none", {}),
    ("mc_dropout", {}),
    ("concrete", {"dataset_size": TRAIN_SIZE}),
    ("contextual", {}),
    ("contextual", {"variant": "gaussian"}),
]
STOCHASTIC = BASELINES[1:]


def _method(name, options, hidden=(32, 32)):
    torch.manual_seed(0)
    return method_class(name)(MLP(input_shape=(1, 28, 28), hidden=hidden, num_classes=10), **options)


@pytest.mark.parametrize("name, options", BASELINES)
def test_predict_takes_no_label(name, options):
    method = _method(name, options)
    assert list(inspect.signature(method.predict).parameters) == ["x", "samples"]
    assert list(inspect.signature(method.prediction_sampler).parameters) == []
    x, y = torch.rand(3, 1, 28, 28), torch.tensor([1, 2, 3])
    with pytest.raises(TypeError):
        method.predict(x, 2, y)
    with pytest.raises(TypeError):
        method.predict(x, samples=2, y=y)


@pytest.mark.parametrize("name, options", STOCHASTIC)
def test_same_seed_same_masks(name, options):
    method = _method(name, options)
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(7)
    first = method.predict(x, samples=3)
    torch.manual_seed(7)
    again = method.predict(x, samples=3)
    torch.manual_seed(8)
    other = method.predict(x, samples=3)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first[0], first[1])  # the samples within one call differ


@pytest.mark.parametrize("name, options", BASELINES)
def test_bad_input_is_rejected_before_training(name, options):
    method = _method(name, options)
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="contains 2 NaN"):
        method.training_losses(torch.where(torch.arange(784).reshape(1, 1, 28, 28) == 5, float("nan"), x), y)
    with pytest.raises(ValueError, match="out of range"):
        method.training_losses(x, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match=r"x has shape \(2, 784\)"):
        method.predict(x.reshape(2, 784))


@pytest.fixture(scope="module")
def mnist_subset():
    """8000 training and 1000 test images of real MNIST, pixels in [0, 1] (skips when absent)."""
    return real_mnist_subset(TRAIN_SIZE, TEST_SIZE)


@pytest.mark.slow
@pytest.mark.parametrize("name, options", BASELINES)
def test_short_mnist_run_beats_chance_by_a_wide_margin(mnist_subset, name, options):
    x_train, y_train, x_test, y_test = mnist_subset
    method = _method(name, options, hidden=(256, 256))
    optimizers = method.make_optimizers()
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):  # two epochs of 8000 images, batch 128
        order = torch.randperm(x_train.shape[0], generator=generator)
        for start in range(0, x_train.shape[0], 128):
            batch = order[start : start + 128]
            method.train_step(x_train[batch], y_train[batch], optimizers)
    probabilities = method.predict(x_test, samples=10).softmax(dim=-1).mean(dim=0)
    accuracy = float((probabilities.argmax(dim=1) == y_test).float().mean())
    assert accuracy > 0.8, f"{name}: test accuracy {accuracy:.3f} after a short run (chance 0.1)"
