"""load_split for every named set on fixture files, DATASET_INFO, to_tensor, ImageDataset."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from gflowout.data.datasets import DATASET_INFO, ImageDataset, load_split, to_tensor
from gflowout.errors import DataError
from tests.helpers.data import cifar_batch_bytes, colour_images, grey_images, with_digests


def test_mnist_layout_splits(mnist_root: Path) -> None:
    train, train_labels = load_split("mnist", "train", mnist_root)
    test, test_labels = load_split("mnist", "test", mnist_root)
    expected_train, expected_labels = grey_images(100, seed=1)  # what the fixture wrote
    np.testing.assert_array_equal(train, expected_train)
    np.testing.assert_array_equal(train_labels, expected_labels)
    assert test.shape == (30, 28, 28) and test_labels.dtype == np.int64


def test_svhn_animal_cifar100_through_load_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    svhn_images, _ = colour_images(5, seed=3)
    digits = np.array([0, 4, 0, 9, 1])
    for split in ("train", "test"):
        path = tmp_path / "svhn" / f"{split}_32x32.mat"
        path.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.savemat(
            path, {"X": svhn_images.transpose(1, 2, 3, 0), "y": np.where(digits == 0, 10, digits)[:, None]}
        )
    with_digests("svhn", tmp_path, monkeypatch)
    images, labels = load_split("svhn", "test", tmp_path)
    np.testing.assert_array_equal(images, svhn_images)
    np.testing.assert_array_equal(labels, digits)

    animals, animal_labels = grey_images(6, seed=4)
    folder = tmp_path / "animal-mnist"
    folder.mkdir()
    (folder / "animal_data_version_3.gz").write_bytes(gzip.compress(pickle.dumps(animals, protocol=4)))
    (folder / "animal_label_version_3.gz").write_bytes(
        gzip.compress(pickle.dumps(animal_labels.astype(np.int64), protocol=4))
    )
    with_digests("animal-mnist", tmp_path, monkeypatch)
    images, labels = load_split("animal-mnist", "test", tmp_path)
    np.testing.assert_array_equal(images, animals)
    with pytest.raises(DataError, match="has no split 'train'"):
        load_split("animal-mnist", "train", tmp_path)

    fine_images, fine_labels = colour_images(4, seed=5, classes=100)
    folder = tmp_path / "cifar100/cifar-100-python"
    folder.mkdir(parents=True)
    for split in ("train", "test", "meta"):
        (folder / split).write_bytes(cifar_batch_bytes(fine_images, fine_labels, label_key=b"fine_labels"))
    with_digests("cifar100", tmp_path, monkeypatch)
    images, labels = load_split("cifar100", "train", tmp_path)
    np.testing.assert_array_equal(images, fine_images)
    np.testing.assert_array_equal(labels, fine_labels)


def test_missing_set_names_the_fetch_command(tmp_path: Path) -> None:
    for name in ("mnist", "fashion-mnist", "animal-mnist", "cifar10", "cifar100", "svhn"):
        split = DATASET_INFO[name].splits[0]
        with pytest.raises(DataError, match=f"`gflowout data fetch {name} --root {tmp_path}`"):
            load_split(name, split, tmp_path)
    with pytest.raises(DataError, match="unknown data set 'imagenet'"):
        load_split("imagenet", "train", tmp_path)


def test_dataset_info_facts() -> None:
    assert DATASET_INFO["mnist"].image_shape == (1, 28, 28) and DATASET_INFO["mnist"].std == (1.0,)
    assert DATASET_INFO["cifar100"].num_classes == 100 and DATASET_INFO["cifar10"].image_shape == (3, 32, 32)
    # CIFAR-100's published statistics are (129.3, 124.1, 112.4) / 255 and (68.2, 65.4, 70.4) / 255.
    np.testing.assert_allclose(
        DATASET_INFO["cifar100"].mean, np.array([129.3, 124.1, 112.4]) / 255, atol=1e-3
    )  # the quoted values are rounded to 0.1 / 255
    np.testing.assert_allclose(
        DATASET_INFO["cifar100"].std, np.array([68.2, 65.4, 70.4]) / 255, atol=1e-3
    )  # the quoted values are rounded to 0.1 / 255


def test_to_tensor_hand_computed() -> None:
    grey = np.array([[[0, 255], [51, 102]]], np.uint8)  # [1, 2, 2]
    x = to_tensor(grey, "mnist")
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, 0], torch.tensor([[0.0, 1.0], [0.2, 0.4]]))
    colour = np.zeros((1, 2, 2, 3), np.uint8)
    colour[0, 1, 0] = (255, 0, 51)  # pixel (row 1, col 0)
    x = to_tensor(colour, "cifar10")
    assert x.shape == (1, 3, 2, 2)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    expected = [(1.0 - mean[0]) / std[0], (0.0 - mean[1]) / std[1], (0.2 - mean[2]) / std[2]]
    torch.testing.assert_close(x[0, :, 1, 0], torch.tensor(expected))
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([-m / s for m, s in zip(mean, std)]))
    torch.testing.assert_close(to_tensor(colour.astype(np.float32) / 255, "cifar10"), x)  # floats in [0, 1] too
    with pytest.raises(DataError, match=r"expected \[N, H, W\] or \[N, H, W, 3\]"):
        to_tensor(grey, "cifar10")
    with pytest.raises(DataError, match=r"must lie in \[0, 1\]"):
        to_tensor(grey.astype(np.float32), "mnist")


def test_image_dataset_items_and_batches(mnist_root: Path) -> None:
    dataset = ImageDataset.from_split("mnist", "test", mnist_root)
    images, labels = load_split("mnist", "test", mnist_root)
    assert len(dataset) == 30
    x, y = dataset[3]
    torch.testing.assert_close(x, torch.from_numpy(images[3]).float().div(255).unsqueeze(0))
    assert int(y) == labels[3]
    xs, ys = dataset.__getitems__([5, 0, 5])
    assert xs.shape == (3, 1, 28, 28) and ys.tolist() == [labels[5], labels[0], labels[5]]
