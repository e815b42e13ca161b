"""CIFAR-10-C-style corruptions with the CIFAR-10-C constant table (Hendrycks & Dietterich 2019).

Constants: hendrycks/robustness, ImageNet-C/create_c/make_cifar_c.py (severities 1..5, for
32 x 32 colour images). The operations are numpy / scipy re-implementations of what that script
did with scikit-image, OpenCV and ImageMagick (see each function); frost uses a procedural
texture instead of the frost photographs (see frost.py). These are "CIFAR-10-C-style" images,
not the published CIFAR-10-C files.

Each function takes float [N, H, W, C] in [0, 1], a severity 1..5 and a numpy Generator, and
returns float [N, H, W, C] (clipped by the caller).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from . import _filters
from ._common import correlate_2d, gaussian_blur, ladder, rgb_to_grey, shift_value_hsv
from .frost import frost_crops

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

#: The CIFAR-10-C constants (make_cifar_c.py), severity 1..5.
CIFAR_C_STYLE_PARAMS: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # noise std
    "shot_noise": (500, 250, 100, 75, 50),  # Poisson photons per unit intensity
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # salt-and-pepper amount
    "speckle_noise": (0.06, 0.10, 0.12, 0.16, 0.20),  # multiplicative noise std
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # sigma
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),  # disk radius, alias blur
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),  # sigma, delta, iters
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),  # ImageMagick radius, sigma
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor towards the per-channel mean
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to the HSV value
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),  # strength, wibble decay
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),  # image weight, frost weight
    # snow: noise mean, noise std, zoom, threshold, blur radius, blur sigma, image weight
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),
}


def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = ladder(CIFAR_C_STYLE_PARAMS["gaussian_noise"], severity)
    return x + sigma * rng.standard_normal(size=x.shape, dtype=np.float32)


def shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return _filters.poisson_noise(x, ladder(CIFAR_C_STYLE_PARAMS["shot_noise"], severity), rng)


def impulse_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return _filters.salt_and_pepper(x, ladder(CIFAR_C_STYLE_PARAMS["impulse_noise"], severity), rng)


def speckle_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    sigma = ladder(CIFAR_C_STYLE_PARAMS["speckle_noise"], severity)
    return x + x * (sigma * rng.standard_normal(size=x.shape, dtype=np.float32))


def gaussian_blur_corruption(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """skimage.filters.gaussian per channel (mode "nearest", truncate 4)."""
    return gaussian_blur(x, ladder(CIFAR_C_STYLE_PARAMS["gaussian_blur"], severity))


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """CIFAR-10-C's anti-aliased disk: the pixels of a 17 x 17 grid within radius, normalised, then
    blurred by OpenCV's 3 x 3 Gaussian (sigma alias_blur, border reflect-101), cropped to its
    non-zero support (which changes no output value)."""
    span = np.arange(-8, 9) if radius <= 8 else np.arange(-int(radius), int(radius) + 1)
    xs, ys = np.meshgrid(span, span)
    disk = ((xs**2 + ys**2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    taps = np.exp(-((np.arange(3) - 1.0) ** 2) / (2.0 * alias_blur**2))
    taps /= taps.sum()
    kernel = ndimage.correlate1d(ndimage.correlate1d(disk, taps, axis=0, mode="mirror"), taps, axis=1, mode="mirror")
    rows, cols = np.nonzero(kernel)
    return kernel[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def defocus_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """cv2.filter2D with the disk kernel per channel (border reflect-101)."""
    radius, alias_blur = ladder(CIFAR_C_STYLE_PARAMS["defocus_blur"], severity)
    return correlate_2d(x, disk_kernel(radius, alias_blur).astype(np.float32))


def glass_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, scramble every interior pixel (CIFAR-10-C has no coin flip), blur."""
    sigma, delta, iterations = ladder(CIFAR_C_STYLE_PARAMS["glass_blur"], severity)
    scrambled = _filters.local_scramble(gaussian_blur(x, sigma), delta, iterations, 1.0, rng)
    return gaussian_blur(scrambled, sigma)


def motion_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = ladder(CIFAR_C_STYLE_PARAMS["motion_blur"], severity)
    return _filters.motion_blur(x, radius, sigma, rng.uniform(-45.0, 45.0, size=x.shape[0]))  # type: ignore[arg-type]  # numpy stub precision


def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factor = ladder(CIFAR_C_STYLE_PARAMS["contrast"], severity)
    means = x.mean(axis=(1, 2), keepdims=True)
    return (x - means) * factor + means


def brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return shift_value_hsv(x, ladder(CIFAR_C_STYLE_PARAMS["brightness"], severity))


def fog(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """x + c * plasma (a 32 x 32 map as CIFAR-10-C, or the next power of two), rescaled by max / (max + c)."""
    strength, decay = ladder(CIFAR_C_STYLE_PARAMS["fog"], severity)
    n, height, width, _ = x.shape
    mapsize = 1 << int(np.ceil(np.log2(max(height, width))))
    plasma = _filters.plasma_fractal(n, mapsize, decay, rng)[:, :height, :width, None]
    max_val = x.max(axis=(1, 2, 3), keepdims=True)
    return (x + strength * plasma) * max_val / (max_val + strength)


def frost(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """image_weight * x + frost_weight * (a crop of a procedural frost texture; see frost.py)."""
    image_weight, frost_weight = ladder(CIFAR_C_STYLE_PARAMS["frost"], severity)
    n, height, width, channels = x.shape
    crops = frost_crops(n, height, width, rng)
    if channels == 1:
        crops = rgb_to_grey(crops)
    return image_weight * x + frost_weight * crops


def snow(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """CIFAR-10-C snow: a thresholded, zoomed noise layer, motion-blurred (ImageMagick-style, angle
    U(-135, -45)), added twice (as is and rotated 180 degrees) to the image brightened towards
    1.5 * grey + 0.5. The layer is rounded to uint8 levels where the original went through PNG."""
    loc, spread, zoom, threshold, radius, sigma, image_weight = ladder(CIFAR_C_STYLE_PARAMS["snow"], severity)
    n, height, width, _ = x.shape
    layer = loc + spread * rng.standard_normal(size=(n, height, width, 1), dtype=np.float32)
    layer = _filters.clipped_zoom(layer, zoom)
    layer[layer < threshold] = 0.0
    layer = np.floor(np.clip(layer, 0.0, 1.0) * 255.0) / 255.0  # astype(uint8) truncates
    layer = _filters.motion_blur(layer, radius, sigma, rng.uniform(-135.0, -45.0, size=n))  # type: ignore[arg-type]  # numpy stub precision
    layer = np.round(layer * 255.0) / 255.0
    brightened = np.maximum(x, rgb_to_grey(x) * 1.5 + 0.5)
    x = image_weight * x + (1.0 - image_weight) * brightened
    return x + layer + np.rot90(layer, k=2, axes=(1, 2))


CIFAR_C_STYLE: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur_corruption,
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "contrast": contrast,
    "brightness": brightness,
    "fog": fog,
    "frost": frost,
    "snow": snow,
}
