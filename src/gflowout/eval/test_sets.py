"""The images of every evaluated condition: the clean test subset, its shifted and rotated versions, OOD sets.

All are float32 in [0, 1] until `normalise` turns them into tensors with the TRAINING statistics of the
in-distribution set (the OOD sets too). Corruptions come from the cached shifted FULL test split
(`gflowout.data.shifts.shifted_split`), of which the rows of the clean (limit) subset are taken, so every
method and every run of a seed reads byte-identical images; rotations are computed on the fly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

DEFAULT_OOD: dict[str, tuple[str, ...]] = {
    "mnist": ("fashion-mnist", "animal-mnist"),
    "fashion-mnist": ("mnist",),
    "cifar10": ("svhn", "cifar100"),
}
DEFAULT_ANGLES: tuple[int, ...] = tuple(range(0, 181, 15))
DEFAULT_SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
# The published corruption set of each in-distribution set, and how the report names it.
PUBLISHED_SETS: dict[str, str] = {"cifar10": "cifar10-c", "cifar100": "cifar100-c"}


def _data() -> tuple[Any, Any]:
    """The data modules (gflowout.data.datasets, gflowout.data.shifts), imported on use. Every part of the
    evaluation reads them through this function, looked up on this module at call time, so replacing
    `gflowout.eval.test_sets._data` (as the tests do) swaps them everywhere."""
    from gflowout.data import datasets, shifts

    return datasets, shifts


def normalise(images: np.ndarray, name: str) -> Tensor:
    """Float images in [0, 1], [N, H, W] or [N, H, W, 3], to a tensor [N, C, H, W] normalised with the
    TRAINING statistics of data set `name` (`gflowout.data.datasets.to_tensor`), whatever set they came from."""
    datasets, _ = _data()
    return datasets.to_tensor(np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0), name)


def load_test_images(
    name: str, root: Any = None, limit: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Test images as float32 in [0, 1] ([N, H, W] or [N, H, W, 3]) and int64 labels [N].

    limit: keep a fixed random subset of that many images (the same for every method and seed), sorted.
    """
    datasets, _ = _data()
    images, labels = datasets.load_split(name, "test", root)
    keep = subset_indices(len(labels), limit, seed)
    if keep is not None:
        images, labels = images[keep], labels[keep]
    return images.astype(np.float32) / 255.0, np.asarray(labels, dtype=np.int64)


def subset_indices(count: int, limit: int | None, seed: int = 0) -> np.ndarray | None:
    """The sorted fixed random subset of `limit` of `count` rows (None: keep all), the same for every method."""
    if limit is None or limit >= count:
        return None
    return np.sort(np.random.default_rng(seed).permutation(count)[:limit])


def is_rotation(shift: str) -> bool:
    """True for the rotation shift names ("random_rotation", "rotation_<deg>"), which are not cached."""
    return shift == "random_rotation" or shift.startswith("rotation_")


def shifted_test_images(
    name: str,
    shift: str,
    severity: int,
    seed: int,
    root: Any = None,
    limit: int | None = None,
    clean: np.ndarray | None = None,
) -> np.ndarray:
    """Float32 images in [0, 1] of `load_test_images(name, root, limit)`'s rows under `shift` at `severity`.

    Corruptions come from the cached shifted FULL test split (`shifted_split`), so every method and run
    reads the same images. Rotations, and shift modules that offer no cache (stand-ins for data sets that
    gflowout.data cannot load by name), are computed on the fly from `clean` (the clean subset).
    """
    _, shift_module = _data()
    cached_split = getattr(shift_module, "shifted_split", None)
    if cached_split is None or is_rotation(shift):
        if clean is None:
            clean = load_test_images(name, root, limit)[0]
        return shift_module.apply_shift(clean, shift, severity, seed)
    shifted, _ = cached_split(name, shift, severity, seed, root)
    keep = subset_indices(len(shifted), limit)  # the rows of the clean subset (load_test_images)
    if keep is not None:
        shifted = shifted[keep]
    return shifted.astype(np.float32) / 255.0


def shift_plan(
    shifts: Sequence[str] | Mapping[str, Sequence[int]] | None, kind: str, severities: Sequence[int]
) -> dict[str, tuple[int, ...]]:
    """{shift: severities} from a request: names (each at `severities`), a mapping, or None for every available
    shift of the data set's `kind` ("mnist" or "cifar")."""
    if shifts is None:
        _, shift_module = _data()
        shifts = shift_module.available_shifts(kind)
    if isinstance(shifts, Mapping):
        return {str(k): tuple(int(s) for s in v) for k, v in shifts.items()}
    return {str(name): tuple(int(s) for s in severities) for name in shifts}
