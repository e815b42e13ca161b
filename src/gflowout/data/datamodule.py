"""`ImageDataModule`: a LightningDataModule over a verified data set, held in memory as normalised tensors.

The training split is divided by a seeded permutation into train and validation parts (the paper's
protocol: 70/30, i.e. 42000/18000 for MNIST); the test split is used whole (no drop_last). CIFAR
training batches get the random crop (4-pixel padding) + horizontal flip, done batched in torch.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from gflowout.data.augment import random_crop_flip
from gflowout.data.datasets import ImageDataset, get_info
from gflowout.errors import ConfigError, DataError

_AUGMENTED_BY_DEFAULT = ("cifar10", "cifar100")


class BatchCollate:
    """collate_fn for `ImageDataset.__getitems__` batches: (x, y) as given, optionally crop+flip augmented.

    A top-level class (not a lambda) so DataLoader workers can pickle it. Draws come from torch's
    global generator, which `lightning.seed_everything(seed, workers=True)` seeds per worker.
    """

    def __init__(self, augment: bool = False, fill: Tensor | None = None) -> None:
        self.augment = augment
        self.fill = fill

    def __call__(self, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        images, labels = batch
        if self.augment:
            images = random_crop_flip(images, padding=4, fill=self.fill)
        return images, labels


def split_indices(count: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded disjoint (train, validation) index sets covering range(count).

    Validation gets round(count * val_fraction) indices.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction: expected a value in [0, 1), found {val_fraction}")
    permutation = torch.randperm(count, generator=torch.Generator().manual_seed(int(seed)))
    val_count = int(round(count * val_fraction))
    return permutation[val_count:], permutation[:val_count]


class ImageDataModule(L.LightningDataModule):
    """Train / validation / test loaders of data set `name`, yielding (x float [B, C, H, W], y int64 [B]).

    name: a key of DATASET_INFO ("mnist", "fashion-mnist", "animal-mnist" (test only), "cifar10", ...).
    val_fraction: share of the training split held out for validation (paper: 0.3), split by `split_seed`.
    augment: CIFAR crop+flip on training batches; None means on for CIFAR-10/100, off otherwise.
    limit_train: keep only the first `limit_train` training examples (after the split) for quick runs.
    The train loader shuffles with torch's global generator (seed it with `lightning.seed_everything`).
    """

    def __init__(
        self,
        name: str,
        root: str | Path | None = None,
        batch_size: int = 128,
        val_fraction: float = 0.3,
        split_seed: int = 0,
        augment: bool | None = None,
        num_workers: int = 0,
        limit_train: int | None = None,
        eval_batch_size: int | None = None,
    ) -> None:
        super().__init__()
        self.info = get_info(name)
        if batch_size < 1:
            raise ConfigError(f"batch_size: expected >= 1, found {batch_size}")
        if limit_train is not None and limit_train < 1:
            raise ConfigError(f"limit_train: expected None or >= 1, found {limit_train}")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction: expected a value in [0, 1), found {val_fraction}")
        self.name = name
        self.root = root
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.val_fraction = float(val_fraction)
        self.split_seed = int(split_seed)
        self.augment = (name in _AUGMENTED_BY_DEFAULT) if augment is None else bool(augment)
        self.num_workers = int(num_workers)
        self.limit_train = limit_train
        self.train_set: ImageDataset | None = None
        self.val_set: ImageDataset | None = None
        self.test_set: ImageDataset | None = None

    # ---- facts the model and methods need ------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one example, (C, H, W)."""
        return self.info.image_shape

    @property
    def train_size(self) -> int:
        """Number of training examples after the split and limit (a method's dataset_size)."""
        if self.train_set is None:
            self.setup("fit")
        assert self.train_set is not None
        return len(self.train_set)

    # ---- Lightning hooks -----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        """Load (once) the splits a stage needs: fit/validate -> train + val, test/predict -> test."""
        if stage in (None, "fit", "validate") and self.train_set is None:
            if "train" not in self.info.splits:
                if stage is not None:
                    raise DataError(
                        f"data set {self.name!r} has no training split (splits: {', '.join(self.info.splits)})"
                    )
            else:
                full = ImageDataset.from_split(self.name, "train", self.root)  # type: ignore[arg-type]  # not None here: set before use
                train_index, val_index = split_indices(len(full), self.val_fraction, self.split_seed)
                if self.limit_train is not None:
                    train_index = train_index[: self.limit_train]
                self.train_set, self.val_set = full.subset(train_index), full.subset(val_index)
        if stage in (None, "test", "predict") and self.test_set is None and "test" in self.info.splits:
            self.test_set = ImageDataset.from_split(self.name, "test", self.root)  # type: ignore[arg-type]  # not None here: set before use

    def _loader(self, dataset: ImageDataset | None, shuffle: bool, augment: bool, batch_size: int) -> DataLoader:
        if dataset is None:
            raise DataError(f"{self.name}: the data module was not set up for this split; call setup() first")
        fill = None
        if augment:  # pad with black, i.e. (0 - mean) / std after normalisation
            fill = -torch.tensor(self.info.mean) / torch.tensor(self.info.std)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=False,
            num_workers=self.num_workers,
            collate_fn=BatchCollate(augment, fill),  # type: ignore[arg-type]  # BatchCollate is called on a list of samples
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True, augment=self.augment, batch_size=self.batch_size)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is not None and len(self.val_set) == 0:
            return []  # val_fraction = 0: no validation
        return self._loader(self.val_set, shuffle=False, augment=False, batch_size=self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False, augment=False, batch_size=self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
