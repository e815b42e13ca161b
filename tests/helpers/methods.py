"""Helpers shared by the method tests: seeded small methods, stand-in batches, the real-MNIST subset."""

from __future__ import annotations

import pytest
import torch

from gflowout.errors import DataError
from gflowout.methods import MethodName, method_class
from gflowout.methods.base import DropoutMethod
from gflowout.nets.mlp import MLP

# every MethodName with the options it needs, contextual in both variants (the all-methods tests' grid)
EVERY_METHOD = [
    (MethodName.GFLOWOUT, {"dataset_size": 100}),
    (MethodName.ID_GFLOWOUT, {"dataset_size": 100}),
    (MethodName.MC_DROPOUT, {}),
    (MethodName.CONCRETE, {"dataset_size": 100}),
    (MethodName.CONTEXTUAL, {"variant": "bernoulli"}),
    (MethodName.CONTEXTUAL, {"variant": "gaussian"}),
    (MethodName.NONE, {}),
    (MethodName.ENSEMBLE, {"members": 3}),
]
EVERY_METHOD_IDS = [f"{name.value}-{options.get('variant', '')}".rstrip("-") for name, options in EVERY_METHOD]


def tiny_method(name: MethodName, options: dict, classes: int) -> DropoutMethod:
    """Method `name` on a seeded MLP 1x4x4 -> 12 -> 12 -> `classes` (the all-methods tests' net)."""
    torch.manual_seed(0)
    return method_class(name)(MLP(input_shape=(1, 4, 4), hidden=(12, 12), num_classes=classes), **options)


def small_mlp_method(method_class: type[DropoutMethod], **options) -> DropoutMethod:
    """`method_class` on a seeded MNIST-shaped MLP with hidden widths (16, 12)."""
    torch.manual_seed(0)
    return method_class(MLP(hidden=(16, 12)), **options)


def batch(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded stand-in MNIST batch: images [n, 1, 28, 28] in [0, 1] and labels [n] in 0..9."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def assert_predict_leaves_parameters_untouched(method: DropoutMethod, rows: int, samples: int) -> None:
    """Prediction samples in place over fresh logits; it must never write into a parameter (a 1-row batch once did)."""
    before = [p.detach().clone() for p in method.parameters()]
    method.predict(torch.rand(rows, 1, 28, 28), samples=samples)
    assert all(torch.equal(a, b) for a, b in zip(before, method.parameters()))


def real_mnist_subset(train_size: int, test_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first `train_size` training and `test_size` test images of real MNIST in [0, 1] ([N, 1, 28, 28])
    with int64 labels [N]; skips the calling test, with the reason, when MNIST is absent."""
    try:
        from gflowout.data import datasets

        train_images, train_labels = datasets.load_split("mnist", "train")
        test_images, test_labels = datasets.load_split("mnist", "test")
    except (ImportError, DataError) as error:
        pytest.skip(f"real MNIST is not available ({error}); `make test` fetches it first")
    return (
        datasets.to_tensor(train_images[:train_size], "mnist"),
        torch.as_tensor(train_labels[:train_size]).long(),
        datasets.to_tensor(test_images[:test_size], "mnist"),
        torch.as_tensor(test_labels[:test_size]).long(),
    )
