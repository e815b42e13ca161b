"""Build-once cache of shifted test splits, so every method is evaluated on the same images.

A shifted split is stored as uint8 .npy (the layout of gflowout.data.datasets.load_split and of
the published MNIST-C / CIFAR-10-C files) under <data root>/shifted/<name>/. The file name holds
the shift, severity, seed, SHIFTS_VERSION and a digest of the clean images and labels, so a
changed algorithm (bump SHIFTS_VERSION) or changed source data never reads a stale file.
Writes are atomic (gflowout.atomic: temporary file in the same folder, then os.replace).

Normalisation is NOT applied here: pass the returned uint8 images to
gflowout.data.datasets.to_tensor(images, name), which normalises with the TRAINING statistics
of `name`. Clean and shifted sets thus go through the same normalisation (the official code
normalised CIFAR-C with other statistics than training: docs: The method, Pitfalls).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from gflowout.atomic import atomic_save_npy

from ._common import check_severity
from .registry import apply_shift, available_shifts, is_known_shift

#: Bump when any shift's output changes, so old cache files are no longer used.
SHIFTS_VERSION = "v1"

LOG = logging.getLogger(__name__)

#: Environment variable: a folder for the shifted-split cache other than the data root (the test suite
#: points it at a temporary folder so that it writes nothing into a user's data cache).
ENV_SHIFT_CACHE = "GFLOWOUT_SHIFT_CACHE"


def _digest(images: np.ndarray, labels: np.ndarray) -> str:
    """Short content digest of the clean split (shape, dtype and bytes of images and labels)."""
    hasher = hashlib.sha1()
    for array in (np.ascontiguousarray(images), np.ascontiguousarray(labels)):
        hasher.update(f"{array.shape}{array.dtype}".encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()[:12]


def cache_path(root: Path, name: str, split: str, shift: str, severity: int, seed: int, digest: str) -> Path:
    """Where the shifted split of these settings is cached."""
    return root / "shifted" / name / f"{split}-{shift}-s{severity}-seed{seed}-{SHIFTS_VERSION}-{digest}.npy"


def save_atomic(path: Path, array: np.ndarray) -> None:
    """np.save to path atomically (gflowout.atomic: never a partial file)."""
    atomic_save_npy(path, array)


def _read_cached(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array if it exists and has the expected shape and dtype uint8, else None."""
    if not path.exists():
        return None
    try:
        cached = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        LOG.warning("shift cache %s is unreadable (%s); rebuilding it", path, error)
        return None
    if cached.shape != shape or cached.dtype != np.uint8:
        LOG.warning(
            "shift cache %s holds %s %s, expected %s uint8; rebuilding it", path, cached.shape, cached.dtype, shape
        )
        return None
    return cached


_UNWRITABLE_WARNED: set[str] = set()  # cache folders already reported as unwritable in this process


def shifted_split(
    name: str, shift: str, severity: int, seed: int, root: str | Path | None = None, *, split: str = "test"
) -> tuple[np.ndarray, np.ndarray]:
    """The `split` of data set `name` under `shift` at `severity` with `seed`, built once and cached.

    Returns (images uint8 [N, H, W] or [N, H, W, 3], labels int64 [N]) in the layout of
    gflowout.data.datasets.load_split; normalise with gflowout.data.datasets.to_tensor(images, name).
    The shift is applied to images / 255 and rounded back to uint8. root: the data root (see
    gflowout.data.sources.data_root). Raises ValueError for a bad shift name or severity and the
    loader's DataError when the data set is missing.
    """
    from gflowout.data import datasets, sources  # imported when used

    severity = check_severity(severity)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, found {seed!r}")
    if not is_known_shift(shift):
        raise ValueError(
            f"unknown shift {shift!r}; valid names: MNIST-C-style {available_shifts('mnist')}, "
            f"CIFAR-10-C-style {available_shifts('cifar')}, 'random_rotation' and 'rotation_<deg>'"
        )
    clean_images, labels = datasets.load_split(name, split, root=root)
    clean_images = np.asarray(clean_images)
    labels = np.asarray(labels, dtype=np.int64)
    cache_root = Path(os.environ[ENV_SHIFT_CACHE]) if os.environ.get(ENV_SHIFT_CACHE) else Path(sources.data_root(root))
    path = cache_path(cache_root, name, split, shift, severity, int(seed), _digest(clean_images, labels))
    cached = _read_cached(path, clean_images.shape)
    if cached is not None:
        return cached, labels
    if clean_images.dtype != np.uint8:
        raise ValueError(f"shifted_split: load_split({name!r}) returned {clean_images.dtype} images, expected uint8")
    shifted = apply_shift(clean_images.astype(np.float32) / 255.0, shift, severity, int(seed))
    as_uint8 = np.round(shifted * 255.0).astype(np.uint8)
    try:
        save_atomic(path, as_uint8)
    except OSError as error:  # a read-only shared data root: compute every time rather than fail
        folder = str(cache_root)
        if folder not in _UNWRITABLE_WARNED:  # once per cache folder and process, not once per shifted set
            _UNWRITABLE_WARNED.add(folder)
            LOG.warning(
                "cannot write the shift cache under %s (%s); shifted sets are computed each time instead; set "
                "%s to a writable folder to keep them",
                folder,
                error.strerror or error,
                ENV_SHIFT_CACHE,
            )
        return as_uint8, labels
    LOG.info("cached %s %s %s severity %d seed %d at %s", name, split, shift, severity, seed, path)
    return as_uint8, labels
