"""MNIST-C-style corruptions (after Mu & Gilmer 2019, google-research/mnist-c `corruptions.py`).

The published MNIST-C set has ONE level per corruption; we take it to be the default `severity`
argument of each function in corruptions.py (e.g. shot_noise(x, severity=5) -> 3 photons). Here every
corruption gets a monotone 5-level ladder built around that published parameter, which sits at severity 3
(canny_edges: severity 5, see below); the neighbouring levels reuse the other entries of corruptions.py's own
tables where they exist and extrapolate otherwise. These are "MNIST-C-style" images, not the published MNIST-C files.

Each function takes float [N, H, W, C] in [0, 1], a severity 1..5 and a numpy Generator, and
returns float [N, H, W, C] (clipped by the caller). Random choices are per image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import _filters, _lines
from ._common import gaussian_blur, ladder, rgb_to_grey, shift_value_hsv
from .rotation import affine_warp, centred_inverse_maps

Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

#: Parameter ladders (severity 1..5) and the published MNIST-C level; see module docstring.
MNIST_C_STYLE_PARAMS: dict[str, dict] = {
    # Poisson photons per unit intensity (lower = noisier); MNIST-C table 60/25/12/5/3, published 3
    "shot_noise": {"levels": (12.0, 5.0, 3.0, 2.0, 1.5), "published": 3.0},
    # fraction of pixels set to 0 or 1; MNIST-C table .03/.06/.09/.17/.27, published .17
    "impulse_noise": {"levels": (0.06, 0.09, 0.17, 0.27, 0.37), "published": 0.17},
    # (blur sigma, max pixel displacement, iterations); MNIST-C published (0.7, 1, 2)
    "glass_blur": {
        "levels": ((0.5, 1, 1), (0.6, 1, 2), (0.7, 1, 2), (0.9, 2, 2), (1.1, 3, 2)),
        "published": (0.7, 1, 2),
    },
    # ImageMagick (radius, sigma), angle U(-45, 45); MNIST-C table (10,3)...(20,15), published (10, 3)
    "motion_blur": {"levels": ((6, 1.5), (8, 2.0), (10, 3.0), (15, 5.0), (15, 8.0)), "published": (10, 3.0)},
    # shear angle (rad), random sign; MNIST-C table .2/.4/.6/.8/1, published .4
    "shear": {"levels": (0.2, 0.3, 0.4, 0.6, 0.8), "published": 0.4},
    # inverse zoom factor (content shrinks by 1/s); MNIST-C table 1/.9 ... 1/.5, published 1/.7
    "scale": {"levels": (1 / 0.9, 1 / 0.8, 1 / 0.7, 1 / 0.6, 1 / 0.5), "published": 1 / 0.7},
    # rotation angle (rad), random sign; MNIST-C table .2/.4/.6/.8/1, published .4
    "rotate": {"levels": (0.2, 0.3, 0.4, 0.6, 0.8), "published": 0.4},
    # added to the HSV value; MNIST-C table .1/.2/.3/.4/.5, published .5
    "brightness": {"levels": (0.3, 0.4, 0.5, 0.6, 0.7), "published": 0.5},
    # shift in pixels along x and y, random signs; MNIST-C table 1..5, published 3
    "translate": {"levels": (1, 2, 3, 4, 5), "published": 3},
    # width (of 28 px) of the inverted band at each side; MNIST-C inverts columns 0-6 and 21-27
    "stripe": {"levels": (3, 5, 7, 9, 11), "published": 7},
    # (fog strength, plasma wibble decay); MNIST-C table (1.5,2)...(3,1.4), published (3, 1.4)
    "fog": {"levels": ((2.0, 2.0), (2.5, 1.7), (3.0, 1.4), (3.5, 1.3), (4.0, 1.2)), "published": (3.0, 1.4)},
    # (noise mean, noise std, blur sigma, threshold, mask blur sigma); published (0.65, 0.3, 1, 0.65, 1.5)
    "spatter": {
        "levels": (
            (0.62, 0.3, 1, 0.68, 1.5),
            (0.64, 0.3, 1, 0.66, 1.5),
            (0.65, 0.3, 1, 0.65, 1.5),
            (0.67, 0.4, 1, 0.65, 1.5),
            (0.70, 0.45, 1, 0.64, 1.5),
        ),
        "published": (0.65, 0.3, 1, 0.65, 1.5),
    },
    # (line intensity, number of lines); MNIST-C draws one full-intensity line
    "dotted_line": {"levels": ((0.5, 1), (0.75, 1), (1.0, 1), (1.0, 2), (1.0, 3)), "published": (1.0, 1)},
    "zigzag": {"levels": ((0.5, 1), (0.75, 1), (1.0, 1), (1.0, 2), (1.0, 3)), "published": (1.0, 1)},
    # weight of the edge map in (1 - w) x + w edges; MNIST-C replaces the image by its edges (w = 1,
    # severity 5: a full replacement cannot be exceeded)
    "canny_edges": {"levels": (0.2, 0.4, 0.6, 0.8, 1.0), "published": 1.0},
}

MUD_GREY = 63.0 / 255.0


def shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return _filters.poisson_noise(x, ladder(MNIST_C_STYLE_PARAMS["shot_noise"]["levels"], severity), rng)


def impulse_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return _filters.salt_and_pepper(x, ladder(MNIST_C_STYLE_PARAMS["impulse_noise"]["levels"], severity), rng)


def glass_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, locally scramble pixels (each interior pixel with probability 1/2, as MNIST-C), blur."""
    sigma, delta, iterations = ladder(MNIST_C_STYLE_PARAMS["glass_blur"]["levels"], severity)
    scrambled = _filters.local_scramble(gaussian_blur(x, sigma), delta, iterations, 0.5, rng)
    return gaussian_blur(scrambled, sigma)


def motion_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = ladder(MNIST_C_STYLE_PARAMS["motion_blur"]["levels"], severity)
    return _filters.motion_blur(x, radius, sigma, rng.uniform(-45.0, 45.0, size=x.shape[0]))  # type: ignore[arg-type]  # numpy stub precision


def _random_signs(rng: np.random.Generator, shape: int | tuple[int, ...]) -> np.ndarray:
    return rng.choice(np.array([-1.0, 1.0]), size=shape)


def shear(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """skimage AffineTransform(shear=c) as the inverse map, about the centre, random sign per image."""
    angle = ladder(MNIST_C_STYLE_PARAMS["shear"]["levels"], severity) * _random_signs(rng, x.shape[0])
    linear = np.zeros((x.shape[0], 2, 2))
    linear[:, 0, 0] = 1.0
    linear[:, 0, 1] = -np.sin(angle)
    linear[:, 1, 1] = np.cos(angle)
    return affine_warp(x, centred_inverse_maps(linear, x.shape[1], x.shape[2]))


def rotate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """skimage AffineTransform(rotation=c) as the inverse map, about the centre, random sign per image."""
    angle = ladder(MNIST_C_STYLE_PARAMS["rotate"]["levels"], severity) * _random_signs(rng, x.shape[0])
    cos, sin = np.cos(angle), np.sin(angle)
    linear = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], axis=1)
    return affine_warp(x, centred_inverse_maps(linear, x.shape[1], x.shape[2]))


def scale(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factor = ladder(MNIST_C_STYLE_PARAMS["scale"]["levels"], severity)
    linear = np.broadcast_to(np.eye(2) * factor, (x.shape[0], 2, 2))
    return affine_warp(x, centred_inverse_maps(linear, x.shape[1], x.shape[2]))


def translate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Sample at (x + dx, y + dy), dx, dy = +-c with random signs: the digit moves by (-dx, -dy)."""
    pixels = ladder(MNIST_C_STYLE_PARAMS["translate"]["levels"], severity)
    offsets = pixels * _random_signs(rng, (x.shape[0], 2))
    maps = np.zeros((x.shape[0], 2, 3))
    maps[:, 0, 0] = maps[:, 1, 1] = 1.0
    maps[:, :, 2] = offsets
    return affine_warp(x, maps)


def brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return shift_value_hsv(x, ladder(MNIST_C_STYLE_PARAMS["brightness"]["levels"], severity))


def stripe(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Invert a band at the left and right edges (width scaled from 28 px to the image width)."""
    band = int(round(ladder(MNIST_C_STYLE_PARAMS["stripe"]["levels"], severity) * x.shape[2] / 28))
    out = x.copy()
    out[:, :, :band] = 1.0 - out[:, :, :band]
    out[:, :, x.shape[2] - band :] = 1.0 - out[:, :, x.shape[2] - band :]
    return out


def fog(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """x + c * plasma, rescaled by max / (max + c). MNIST-C crops 28 x 28 from a 256 x 256 plasma map;
    here the crop comes from a map of twice the image side (the finest levels of the same fractal),
    which keeps 10000 images fast."""
    strength, decay = ladder(MNIST_C_STYLE_PARAMS["fog"]["levels"], severity)
    n, height, width, _ = x.shape
    mapsize = 1 << int(np.ceil(np.log2(2 * max(height, width))))
    plasma = np.empty((n, height, width), dtype=np.float32)
    for start in range(0, n, 2048):  # chunks bound the memory of the full maps
        stop = min(n, start + 2048)
        plasma[start:stop] = _filters.plasma_fractal(stop - start, mapsize, decay, rng)[:, :height, :width]
    max_val = x.max(axis=(1, 2, 3), keepdims=True)
    return (x + strength * plasma[..., None]) * max_val / (max_val + strength)


def spatter(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """MNIST-C's mud spatter: thresholded blurred noise becomes opaque grey (63/255) blobs."""
    loc, spread, sigma, threshold, mask_sigma = ladder(MNIST_C_STYLE_PARAMS["spatter"]["levels"], severity)
    n, height, width, _ = x.shape
    liquid = rng.normal(loc, spread, size=(n, height, width, 1))
    liquid = gaussian_blur(liquid, sigma)
    mask = gaussian_blur((liquid > threshold).astype(np.float32), mask_sigma)
    mask[mask < 0.8] = 0.0
    return x * (1.0 - mask) + MUD_GREY * mask


def _add_lines(
    x: np.ndarray,
    severity: int,
    rng: np.random.Generator,
    name: str,
    draw: Callable[[np.random.Generator, int, int, int], np.ndarray],
) -> np.ndarray:
    intensity, count = ladder(MNIST_C_STYLE_PARAMS[name]["levels"], severity)
    n, height, width, _ = x.shape
    layer = np.zeros((n, height, width))
    for _ in range(count):
        layer += draw(rng, n, height, width)
    return x + intensity * np.clip(layer, 0.0, 1.0)[..., None]


def dotted_line(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return _add_lines(x, severity, rng, "dotted_line", _lines.dotted_line_layer)


def zigzag(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return _add_lines(x, severity, rng, "zigzag", _lines.zigzag_layer)


def canny_edges(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    weight = ladder(MNIST_C_STYLE_PARAMS["canny_edges"]["levels"], severity)
    edges = _filters.canny_edges(rgb_to_grey(x)[..., 0])[..., None]
    return (1.0 - weight) * x + weight * edges


MNIST_C_STYLE: dict[str, Corruption] = {
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "shear": shear,
    "scale": scale,
    "rotate": rotate,
    "brightness": brightness,
    "translate": translate,
    "stripe": stripe,
    "fog": fog,
    "spatter": spatter,
    "dotted_line": dotted_line,
    "zigzag": zigzag,
    "canny_edges": canny_edges,
}
