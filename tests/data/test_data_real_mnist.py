"""The real MNIST (fetched by `make test` before pytest runs): full size, pinned checksums, known label counts."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from gflowout.data.datasets import load_split
from gflowout.data.sources import DATASETS, data_root

# sha256 of the standard MNIST files (docs/data.md), and the well-known per-digit counts of MNIST.
PUBLISHED_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

_folder = data_root() / "mnist"
_present = all((_folder / name).is_file() for name in PUBLISHED_SHA256)


@pytest.mark.skipif(
    not _present, reason=f"real MNIST not present in {_folder}: run `gflowout data fetch mnist` (make test does)"
)
def test_real_mnist_is_complete_and_verified() -> None:
    for name, digest in PUBLISHED_SHA256.items():
        assert hashlib.sha256((_folder / name).read_bytes()).hexdigest() == digest, name  # independent of the stamps
    assert {f.path: f.digest for f in DATASETS["mnist"].files} == PUBLISHED_SHA256
    train, train_labels = load_split("mnist", "train")
    test, test_labels = load_split("mnist", "test")
    assert train.shape == (60000, 28, 28) and test.shape == (10000, 28, 28)
    assert np.bincount(train_labels).tolist() == TRAIN_COUNTS
    assert np.bincount(test_labels).tolist() == TEST_COUNTS
    assert train.dtype == np.uint8 and 0 < train.mean() < 255
