"""The shift names and `apply_shift`: which corruption table or rotation a name picks, applied to a batch."""

from __future__ import annotations

import re

import numpy as np

from ._common import check_images, check_severity, from_channels, make_rng, to_channels
from .cifar_c import CIFAR_C_STYLE
from .mnist_c import MNIST_C_STYLE
from .rotation import ROTATION_SWEEP_DEG, random_rotation, rotate

KINDS: tuple[str, ...] = ("mnist", "cifar")
_TABLES = {"mnist": MNIST_C_STYLE, "cifar": CIFAR_C_STYLE}
_FIXED_ROTATION = re.compile(r"^rotation_(-?\d+(?:\.\d+)?)$")


def _check_kind(kind: str) -> str:
    if kind not in _TABLES:
        raise ValueError(f"kind must be one of {list(KINDS)}, found {kind!r}")
    return kind


def available_shifts(kind: str) -> list[str]:
    """Corruption names for kind "mnist" (MNIST-C-style, grey) or "cifar" (CIFAR-10-C-style, colour).

    Rotations are listed separately by rotation_shifts()."""
    return list(_TABLES[_check_kind(kind)])


def rotation_shifts() -> list[str]:
    """Rotation shift names apply_shift accepts: "random_rotation" and "rotation_<deg>" of the sweep."""
    return ["random_rotation"] + [f"rotation_{angle}" for angle in ROTATION_SWEEP_DEG]


def is_known_shift(shift: str) -> bool:
    """True if shift names a corruption of either kind or a rotation shift."""
    return isinstance(shift, str) and (
        shift == "random_rotation" or bool(_FIXED_ROTATION.match(shift)) or any(shift in t for t in _TABLES.values())
    )


def infer_kind(images: np.ndarray) -> str:
    """ "mnist" for grey [N, H, W], "cifar" for colour [N, H, W, 3]."""
    return "mnist" if np.ndim(images) == 3 else "cifar"


def apply_shift(images: np.ndarray, shift: str, severity: int, seed: int, kind: str | None = None) -> np.ndarray:
    """Apply one named shift at severity 1..5 to float images in [0, 1]; same shape, float32, in [0, 1].

    images: [N, H, W] or [N, H, W, 3]. kind: which corruption table ("mnist" or "cifar"); by default
    "mnist" for grey and "cifar" for colour images. Raises ValueError for a bad severity, seed,
    image array or an unknown name (the message lists the valid names).
    """
    array = check_images(images)
    severity = check_severity(severity)
    rng = make_rng(seed)
    kind = _check_kind(kind) if kind is not None else infer_kind(array)
    if shift == "random_rotation":
        return random_rotation(array, rng)
    fixed = _FIXED_ROTATION.match(shift) if isinstance(shift, str) else None
    if fixed:
        return rotate(array, float(fixed.group(1)))
    table = _TABLES[kind]
    if shift not in table:
        raise ValueError(
            f"unknown shift {shift!r} for kind {kind!r}; valid names: {sorted(table)} "
            f"and rotations 'random_rotation', 'rotation_<deg>' (e.g. {rotation_shifts()[1:4]})"
        )
    if array.shape[0] == 0:
        return array.copy()
    channels, was_grey = to_channels(array)
    return from_channels(table[shift](channels, severity, rng), was_grey)
