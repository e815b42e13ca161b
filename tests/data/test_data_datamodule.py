"""ImageDataModule: seeded disjoint split, full test set, limits, shuffling; the batched crop+flip."""

from __future__ import annotations

import tarfile
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from gflowout.data.augment import random_crop_flip
from gflowout.data.datamodule import ImageDataModule, split_indices
from gflowout.data.datasets import load_split, to_tensor
from gflowout.errors import ConfigError, DataError
from tests.helpers.data import make_cifar10_archive, with_digests


def test_split_is_seeded_disjoint_and_sized() -> None:
    train, val = split_indices(60000, 0.3, seed=0)
    assert len(train) == 42000 and len(val) == 18000  # the paper's 70/30 of MNIST
    assert torch.unique(torch.cat([train, val])).tolist() == list(range(60000))
    again_train, again_val = split_indices(60000, 0.3, seed=0)
    assert torch.equal(train, again_train) and torch.equal(val, again_val)
    other_train, _ = split_indices(60000, 0.3, seed=1)
    assert not torch.equal(train, other_train)
    assert len(split_indices(10, 0.25, 0)[1]) == 2  # round(2.5) == 2
    with pytest.raises(ConfigError, match="val_fraction"):
        split_indices(10, 1.0, 0)


def _collect(loader) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


def test_datamodule_splits_and_loaders(mnist_root: Path) -> None:
    module = ImageDataModule("mnist", root=mnist_root, batch_size=16, val_fraction=0.3, split_seed=3)
    module.setup("fit")
    module.setup("test")
    assert module.train_size == 70 and len(module.val_set) == 30 and module.num_classes == 10
    images, labels = load_split("mnist", "train", mnist_root)
    everything = to_tensor(images, "mnist")
    train_x, train_y = _collect(module.train_dataloader())
    val_x, val_y = _collect(module.val_dataloader())
    # Every training image appears once across train and validation, none in both.
    rows = {tuple(row.tolist()) for row in everything.flatten(1)[:, ::7]}
    train_rows = [tuple(row.tolist()) for row in train_x.flatten(1)[:, ::7]]
    val_rows = [tuple(row.tolist()) for row in val_x.flatten(1)[:, ::7]]
    assert (
        len(set(train_rows)) == 70 and not set(train_rows) & set(val_rows) and set(train_rows) | set(val_rows) == rows
    )
    assert sorted(train_y.tolist() + val_y.tolist()) == sorted(labels.tolist())
    test_x, test_y = _collect(module.test_dataloader())  # whole test set, last partial batch kept
    assert test_x.shape == (30, 1, 28, 28)
    np.testing.assert_array_equal(test_y.numpy(), load_split("mnist", "test", mnist_root)[1])
    # Validation order is fixed; training order is reshuffled each epoch.
    L.seed_everything(0, verbose=False)
    first, _ = _collect(module.train_dataloader())
    second, _ = _collect(module.train_dataloader())
    assert not torch.equal(first, second) and torch.allclose(first.sum(0), second.sum(0))
    # The same split seed gives the same validation set in a fresh module.
    again = ImageDataModule("mnist", root=mnist_root, batch_size=16, split_seed=3)
    again.setup("fit")
    assert torch.equal(_collect(again.val_dataloader())[0], val_x)


def test_limit_train_and_test_only_sets(mnist_root: Path) -> None:
    module = ImageDataModule("mnist", root=mnist_root, batch_size=8, limit_train=10)
    module.setup("fit")
    assert module.train_size == 10 and len(module.val_set) == 30
    with pytest.raises(ConfigError, match="val_fraction"):
        ImageDataModule("mnist", val_fraction=-0.1)
    with pytest.raises(DataError, match="no training split"):
        ImageDataModule("animal-mnist", root=mnist_root).setup("fit")


def _reference_candidates(image: np.ndarray, padding: int, fill: np.ndarray) -> list[np.ndarray]:
    """All crops (and their mirror images) of one [C, H, W] image padded with `fill`, by plain numpy slicing."""
    channels, height, width = image.shape
    padded = np.empty((channels, height + 2 * padding, width + 2 * padding), image.dtype)
    padded[:] = fill[:, None, None]
    padded[:, padding : padding + height, padding : padding + width] = image
    crops = []
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy : dy + height, dx : dx + width]
            crops += [crop, crop[:, :, ::-1]]
    return crops


def test_random_crop_flip_matches_a_numpy_reference() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(64, 3, 8, 8, generator=generator)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    out = random_crop_flip(images, padding=4, fill=fill, generator=torch.Generator().manual_seed(1))
    assert out.shape == images.shape
    matches = []
    for image, result in zip(images.numpy(), out.numpy()):
        candidates = _reference_candidates(image, 4, fill.numpy())
        found = [i for i, c in enumerate(candidates) if np.array_equal(c, result)]
        assert found, "output is not a padded crop (or its mirror) of its input"
        matches.append(found[0])
    offsets, flips = {m // 2 for m in matches}, [m % 2 for m in matches]
    assert len(offsets) > 20 and 16 < sum(flips) < 48  # many offsets drawn; about half flipped
    again = random_crop_flip(images, padding=4, fill=fill, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)


def test_cifar_module_augments_train_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    arrays = make_cifar10_archive(archive, per_batch=8, test_count=5)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "cifar10", filter="data")
    with_digests("cifar10", tmp_path, monkeypatch)
    module = ImageDataModule("cifar10", root=tmp_path, batch_size=7, val_fraction=0.25)
    assert module.augment  # on by default for CIFAR
    module.setup(None)
    assert module.train_size == 30
    test_x, _ = _collect(module.test_dataloader())
    torch.testing.assert_close(test_x, to_tensor(arrays["test_batch"][0], "cifar10"))  # not augmented
    train_x, _ = _collect(module.train_dataloader())
    plain = module.train_set.images
    assert train_x.shape == plain.shape and not torch.equal(
        torch.sort(train_x.flatten())[0], torch.sort(plain.flatten())[0]
    )
    # Padding is black: the normalised value of pixel 0 appears where a crop reaches into the border.
    black = -torch.tensor(module.info.mean) / torch.tensor(module.info.std)
    assert any(torch.allclose(train_x[i, :, 0, 0], black) for i in range(len(train_x)))
