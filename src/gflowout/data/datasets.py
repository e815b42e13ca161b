"""Named data sets: what each is (classes, shape, normalisation), loading a verified split, tensors.

    images, labels = load_split("mnist", "train")      # uint8 [60000, 28, 28], int64 [60000]
    x = to_tensor(images, "mnist")                      # float [60000, 1, 28, 28], pixels in [0, 1]

Every load first checks the files' checksums (cheaply, through the stamps of `integrity.py`), so a
model never trains on data that failed verification. A missing set raises `DataError` naming the
exact `gflowout data fetch NAME` command.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from gflowout.data import formats
from gflowout.data.sources import get_spec, verify_files
from gflowout.errors import DataError


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts of a data set. mean/std are per channel, in [0, 1] pixel units, of the TRAINING split."""

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]  # (C, H, W)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    splits: tuple[str, ...]
    class_names: tuple[str, ...] | None = None


_GREY: dict[str, Any] = dict(
    image_shape=(1, 28, 28), mean=(0.0,), std=(1.0,)
)  # the paper feeds MNIST pixels in [0, 1], unnormalised
DATASET_INFO: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("mnist", 10, **_GREY, splits=("train", "test"), class_names=tuple("0123456789")),
        DatasetInfo("mnist-5k", 10, **_GREY, splits=("train",), class_names=tuple("0123456789")),
        DatasetInfo(
            "fashion-mnist",
            10,
            **_GREY,
            splits=("train", "test"),
            class_names=(
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ),
        ),
        DatasetInfo(
            "animal-mnist",
            10,
            **_GREY,
            splits=("test",),
            class_names=("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"),
        ),
        # True per-channel statistics of the CIFAR-10 training images. (The official GFlowOut code used
        # std 0.2023/0.1994/0.2010, a widely copied wrong value, and other statistics for CIFAR-10-C.)
        DatasetInfo(
            "cifar10",
            10,
            (3, 32, 32),
            (0.4914, 0.4822, 0.4465),
            (0.2470, 0.2435, 0.2616),
            ("train", "test"),
            ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
        ),
        DatasetInfo(
            "cifar100", 100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), ("train", "test")
        ),
        DatasetInfo(
            "svhn",
            10,
            (3, 32, 32),
            (0.4377, 0.4438, 0.4728),
            (0.1980, 0.2010, 0.1970),
            ("train", "test"),
            tuple("0123456789"),
        ),
    )
}

# For each (set, split): the files it reads (relative to the set's folder) and how.
_IDX = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR10_TRAIN = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6))


def _split_files(
    name: str, split: str
) -> tuple[tuple[str, ...], Callable[[list[Path]], tuple[np.ndarray, np.ndarray]]]:
    if name in ("mnist", "fashion-mnist"):
        return _IDX[split], lambda p: formats.read_idx_pair(p[0], p[1], 10)
    if name == "mnist-5k":
        return ("mnist_5k.csv.gz",), lambda p: formats.read_mnist_csv(p[0])
    if name == "animal-mnist":
        return ("animal_data_version_3.gz", "animal_label_version_3.gz"), lambda p: formats.read_animal_mnist(
            p[0], p[1]
        )
    if name == "cifar10":
        files = _CIFAR10_TRAIN if split == "train" else ("cifar-10-batches-py/test_batch",)
        return files, lambda p: formats.read_cifar_batches(p, "labels", 10)
    if name == "cifar100":
        return (f"cifar-100-python/{split}",), lambda p: formats.read_cifar_batches(p, "fine_labels", 100)
    if name == "svhn":
        return (f"{split}_32x32.mat",), lambda p: formats.read_svhn_mat(p[0])
    raise DataError(f"no reader for data set {name!r}")


def get_info(name: str) -> DatasetInfo:
    """DATASET_INFO[name], or a DataError listing the known names."""
    try:
        return DATASET_INFO[name]
    except KeyError:
        from gflowout.config_types import closest_match

        raise DataError(
            f"unknown data set {name!r}: expected one of {', '.join(DATASET_INFO)}"
            f"{closest_match(str(name), list(DATASET_INFO))}"
        ) from None


def _refetch_hint(name: str, error: DataError) -> DataError:
    return DataError(f"{error} Delete the file and fetch the set again with `{get_spec(name).fetch_command}`.")


def load_split(name: str, split: str, root: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Verified images and labels of one split: uint8 [N, H, W] (grey) or [N, H, W, 3] (colour), int64 [N]."""
    info = get_info(name)
    if split not in info.splits:
        raise DataError(f"data set {name!r} has no split {split!r}: expected one of {', '.join(info.splits)}")
    relative, reader = _split_files(name, split)
    folder = verify_files(name, root, list(relative))
    try:
        images, labels = reader([folder / r for r in relative])
    except DataError as error:
        raise _refetch_hint(name, error) from error
    expected = info.image_shape[1:] if info.image_shape[0] == 1 else (*info.image_shape[1:], info.image_shape[0])
    if images.shape[1:] != expected:
        raise _refetch_hint(
            name,
            DataError(
                f"{folder}: {name} {split} images: expected shape [N, {', '.join(map(str, expected))}], "
                f"found {list(images.shape)}."
            ),
        )
    return images, labels


def load_corruption(
    name: str, corruption: str, severity: int, root: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Verified CIFAR-10-C / CIFAR-100-C images uint8 [10000, 32, 32, 3] and labels [10000] at severity 1..5.

    name: "cifar10-c" or "cifar100-c". Normalise them with the TRAINING set's statistics:
    `to_tensor(images, "cifar10")`.
    """
    spec = get_spec(name)
    subfolder = spec.extra.get("subfolder")
    if subfolder is None:
        raise DataError(f"{name!r} is not a corruption set: expected 'cifar10-c' or 'cifar100-c'")
    known = [Path(f.path).stem for f in spec.files if not f.path.endswith("labels.npy")]
    if corruption not in known:
        raise DataError(f"{name}: unknown corruption {corruption!r}: expected one of {', '.join(known)}")
    folder = verify_files(name, root, [f"{subfolder}/{corruption}.npy", f"{subfolder}/labels.npy"])
    try:
        return formats.read_corruption(folder / subfolder, corruption, severity)
    except DataError as error:
        raise _refetch_hint(name, error) from error


def to_tensor(images: np.ndarray | Tensor, name: str) -> Tensor:
    """Images [N, H, W] or [N, H, W, C] (uint8 0..255, or float in [0, 1]) -> float32 [N, C, H, W],
    normalised with the training statistics of data set `name`."""
    info = get_info(name)
    x = torch.as_tensor(np.asarray(images)) if not isinstance(images, Tensor) else images
    if x.ndim == 3:
        x = x.unsqueeze(-1)
    if x.ndim != 4 or x.shape[-1] != info.image_shape[0]:
        raise DataError(
            f"to_tensor({name!r}): images: expected [N, H, W] or [N, H, W, {info.image_shape[0]}], "
            f"found {list(x.shape)}"
        )
    if x.dtype == torch.uint8:
        x = x.to(torch.float32).div_(255.0)
    elif x.is_floating_point():
        x = x.to(torch.float32)
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise DataError(f"to_tensor({name!r}): float images must lie in [0, 1], found {x.min():.3g}..{x.max():.3g}")
    else:
        raise DataError(f"to_tensor({name!r}): images: expected uint8 or float, found {x.dtype}")
    x = x.permute(0, 3, 1, 2).contiguous()
    mean = torch.tensor(info.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=torch.float32).view(1, -1, 1, 1)
    if not (torch.all(mean == 0) and torch.all(std == 1)):
        x = x.sub_(mean).div_(std)
    return x


class ImageDataset(Dataset):
    """Images already normalised in memory, x float [N, C, H, W] and y int64 [N].

    Holding tensors instead of decoding per item keeps loading fast; `__getitems__` lets a
    DataLoader fetch a whole batch with one indexing operation.
    """

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.shape[0] != labels.shape[0]:
            raise DataError(f"ImageDataset: {images.shape[0]} images but {labels.shape[0]} labels")
        self.images = images
        self.labels = labels.to(torch.int64)

    @classmethod
    def from_split(cls, name: str, split: str, root: str | Path | None = None) -> ImageDataset:
        """The verified split `split` of `name`, normalised with the training statistics."""
        images, labels = load_split(name, split, root)
        return cls(to_tensor(images, name), torch.from_numpy(labels))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.images.index_select(0, index), self.labels.index_select(0, index)

    def subset(self, indices: Tensor) -> ImageDataset:
        """A dataset of the rows `indices` (copied, so the parent's memory can be freed)."""
        return ImageDataset(self.images[indices], self.labels[indices])
