"""Shared helpers of the shift functions: input checks, channel layout, severities, batched filters.

Every shift works on float images in [0, 1] BEFORE normalisation, laid out as numpy
[N, H, W] (grey) or [N, H, W, 3] (colour). Internally the functions see [N, H, W, C]
(C = 1 for grey) so that one implementation serves both layouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)


def check_images(images: np.ndarray, what: str = "images") -> np.ndarray:
    """Validate a float image batch in [0, 1] and return it as float32 (a copy only if needed).

    Accepts [N, H, W] (grey) or [N, H, W, 3] (colour); raises ValueError naming what is wrong
    and how to fix it (integer images must be divided by 255 first).
    """
    array = np.asarray(images)
    if array.dtype.kind not in "f":
        raise ValueError(
            f"{what}: expected float images in [0, 1], found dtype {array.dtype}; "
            "convert uint8 images with images.astype(np.float32) / 255 first"
        )
    if array.ndim == 4 and array.shape[-1] == 3:
        pass
    elif array.ndim != 3:
        raise ValueError(f"{what}: expected shape [N, H, W] (grey) or [N, H, W, 3] (colour), found {array.shape}")
    if array.size and not np.all(np.isfinite(array)):
        raise ValueError(f"{what}: found NaN or infinite pixel values")
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise ValueError(
            f"{what}: expected pixel values in [0, 1], found range [{array.min():.4g}, {array.max():.4g}]; "
            "apply shifts before normalisation"
        )
    return array.astype(np.float32, copy=False)


def check_severity(severity: int) -> int:
    """Return severity as int if it is an integer in 1..5, else raise ValueError."""
    if isinstance(severity, (bool, np.bool_)) or not isinstance(severity, (int, np.integer)):
        raise ValueError(f"severity must be an integer in 1..5, found {severity!r} ({type(severity).__name__})")
    if int(severity) not in SEVERITIES:
        raise ValueError(f"severity must be an integer in 1..5, found {severity}")
    return int(severity)


def make_rng(seed: int | np.random.Generator) -> np.random.Generator:
    """A numpy Generator from an integer seed (or the Generator itself); never the global RNG."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, found {seed!r} ({type(seed).__name__})")
    return np.random.default_rng(int(seed))


def to_channels(images: np.ndarray) -> tuple[np.ndarray, bool]:
    """[N, H, W] -> [N, H, W, 1] (returns was_grey=True); [N, H, W, C] unchanged."""
    if images.ndim == 3:
        return images[..., None], True
    return images, False


def from_channels(images: np.ndarray, was_grey: bool) -> np.ndarray:
    """Undo to_channels and clip to [0, 1] as float32."""
    out = np.clip(images, 0.0, 1.0).astype(np.float32, copy=False)
    return out[..., 0] if was_grey else out


def gaussian_blur(images: np.ndarray, sigma: float, mode: str = "nearest") -> np.ndarray:
    """Blur each image of [N, H, W, C] over H and W only (sigma 0 on the batch and channel axes).

    mode="nearest" and truncate=4 match skimage.filters.gaussian's defaults.
    """
    return ndimage.gaussian_filter(images, sigma=(0.0, sigma, sigma, 0.0), mode=mode, truncate=4.0)


def correlate_2d(images: np.ndarray, kernel: np.ndarray, mode: str = "mirror") -> np.ndarray:
    """Correlate each image of [N, H, W, C] with a 2-D kernel [kh, kw] (mode="mirror" is OpenCV's
    default BORDER_REFLECT_101)."""
    return ndimage.correlate(images, kernel[None, :, :, None], mode=mode)


def rgb_to_grey(images: np.ndarray) -> np.ndarray:
    """[N, H, W, C] -> [N, H, W, 1] luma with OpenCV's RGB2GRAY weights (grey input is returned as is)."""
    if images.shape[-1] == 1:
        return images
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (images @ weights)[..., None]


def shift_value_hsv(images: np.ndarray, delta: float) -> np.ndarray:
    """Add delta to the HSV value channel (clipped to [0, 1]) and convert back, for [N, H, W, C].

    With hue and saturation fixed, every RGB channel is proportional to V = max(R, G, B), so
    the HSV round trip of skimage (rgb2hsv, V += delta, hsv2rgb) equals rgb * V_new / V, and
    V_new in every channel where V = 0 (black has saturation 0). For grey images this is
    clip(x + delta, 0, 1), which is what MNIST-C's grey -> RGB -> HSV -> grey chain gives.
    """
    value = images.max(axis=-1, keepdims=True)
    new_value = np.clip(value + delta, 0.0, 1.0)
    safe = np.where(value > 0, value, 1.0)
    return np.where(value > 0, images * (new_value / safe), new_value)


def ladder(values: Sequence, severity: int) -> Any:
    """The entry of a 5-level parameter table for severity 1..5."""
    return values[check_severity(severity) - 1]
