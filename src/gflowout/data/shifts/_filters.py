"""Batched image filters the corruptions share: motion blur, plasma fractal, clipped zoom, Canny edges.

All work on float [N, H, W, C] (or [N, H, W] where stated) and vectorise over the batch: no
per-image Python loops. They are numpy / scipy re-implementations of what MNIST-C and
CIFAR-10-C did with ImageMagick (motion blur), OpenCV and scikit-image (Canny).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


def poisson_noise(images: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Shot noise: Poisson(x * photons) / photons. Zero pixels stay zero (Poisson(0) = 0), so only
    the non-zero ones are drawn, which makes mostly-black MNIST images several times faster."""
    out = np.zeros(images.shape, dtype=np.float32)
    nonzero = images > 0
    out[nonzero] = rng.poisson(images[nonzero].astype(np.float64) * photons) / photons
    return out


def salt_and_pepper(images: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """skimage random_noise(mode="s&p"): each value is replaced with probability amount, by 0 or 1
    with equal odds (colour channels independently, as skimage does)."""
    flipped = rng.random(images.shape) < amount
    salt = rng.random(images.shape) < 0.5
    return np.where(flipped, salt.astype(np.float32), images)


def local_scramble(
    images: np.ndarray, delta: int, iterations: int, probability: float, rng: np.random.Generator
) -> np.ndarray:
    """The pixel shuffle of glass blur, vectorised, for [N, H, W, C].

    MNIST-C / CIFAR-10-C swap pixels one at a time in a Python loop: each interior pixel (rows and
    columns delta+1 .. side-delta) swaps, with the given probability, with the pixel at offset
    U{-delta .. delta-1}^2. Here each such pixel takes the value at that offset (a gather, so a
    value can be copied twice or lost: close to the original, not identical).
    """
    n, height, width, channels = images.shape
    rows = np.arange(height)[None, :, None]
    cols = np.arange(width)[None, None, :]
    interior = (rows > delta) & (rows <= height - delta) & (cols > delta) & (cols <= width - delta)
    base = (np.arange(n)[:, None, None] * height + rows) * width + cols  # flat pixel index [N, H, W]
    out = images
    for _ in range(iterations):
        move = interior & (rng.random((n, height, width)) < probability)
        d_row = np.where(move, rng.integers(-delta, delta, size=(n, height, width)), 0)
        d_col = np.where(move, rng.integers(-delta, delta, size=(n, height, width)), 0)
        # interior pixels never leave the image (rows delta+1.. H-delta, offsets -delta..delta-1)
        source = base + d_row * width + d_col
        out = out.reshape(n * height * width, channels)[source.ravel()].reshape(n, height, width, channels)
    return out


def motion_blur(images: np.ndarray, radius: float, sigma: float, angles_deg: np.ndarray) -> np.ndarray:
    """ImageMagick-style one-sided motion blur of [N, H, W, C], angle per image (degrees).

    ImageMagick's MotionBlurImage averages the 2*ceil(radius)+1 pixels p + i*(cos a, sin a),
    i = 0..2r (x = column, y = row downwards, offsets rounded to whole pixels) with weights
    exp(-i^2 / (2 sigma^2)), normalised, and edge pixels repeated outside the image. Weights
    below 1e-4 of the largest are dropped (together they move a pixel by about 1/255 at most).
    """
    n, height, width, channels = images.shape
    count = int(2 * np.ceil(radius) + 1)
    steps = np.arange(count, dtype=np.float64)
    weights = np.exp(-(steps**2) / (2.0 * sigma**2))
    keep = weights >= 1e-4 * weights.max()
    steps, weights = steps[keep], weights[keep] / weights[keep].sum()
    theta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64)).reshape(n, 1, 1)
    rows = np.arange(height).reshape(1, height, 1)
    cols = np.arange(width).reshape(1, 1, width)
    flat = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32))
    flat = flat.reshape(n, channels, height * width)
    out = torch.zeros_like(flat)
    for step, weight in zip(steps, weights):
        # ImageMagick rounds with ceil(v - 0.5)
        dx = np.ceil(step * np.cos(theta) - 0.5).astype(np.int64)
        dy = np.ceil(step * np.sin(theta) - 0.5).astype(np.int64)
        src_rows = torch.from_numpy(np.clip(rows + dy, 0, height - 1) * width)  # [N, H, 1]
        src_cols = torch.from_numpy(np.clip(cols + dx, 0, width - 1))  # [N, 1, W]
        index = (src_rows + src_cols).reshape(n, 1, height * width).expand(n, channels, height * width)
        out.add_(torch.gather(flat, 2, index), alpha=float(weight))
    return out.reshape(n, channels, height, width).numpy().transpose(0, 2, 3, 1)


def plasma_fractal(count: int, mapsize: int, wibble_decay: float, rng: np.random.Generator) -> np.ndarray:
    """count diamond-square height maps [count, mapsize, mapsize] in [0, 1] (mapsize a power of two).

    A batched transcription of the plasma_fractal helper of MNIST-C / CIFAR-10-C (itself from
    FLHerne/mapgen), including its wibble**2 noise amplitude; each map is normalised by its own
    min and max.
    """
    if mapsize & (mapsize - 1):
        raise ValueError(f"plasma_fractal: mapsize must be a power of two, found {mapsize}")
    maps = np.zeros((count, mapsize, mapsize), dtype=np.float32)
    stepsize, wibble = mapsize, 100.0

    def wibbled_mean(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape).astype(np.float32)

    while stepsize >= 2:
        half = stepsize // 2
        corners = maps[:, 0:mapsize:stepsize, 0:mapsize:stepsize]
        square = corners + np.roll(corners, -1, axis=1)
        square = square + np.roll(square, -1, axis=2)
        maps[:, half:mapsize:stepsize, half:mapsize:stepsize] = wibbled_mean(square)
        centres = maps[:, half:mapsize:stepsize, half:mapsize:stepsize]
        corners = maps[:, 0:mapsize:stepsize, 0:mapsize:stepsize]
        left_sum = centres + np.roll(centres, 1, axis=1)
        up_sum = corners + np.roll(corners, -1, axis=2)
        maps[:, 0:mapsize:stepsize, half:mapsize:stepsize] = wibbled_mean(left_sum + up_sum)
        top_sum = centres + np.roll(centres, 1, axis=2)
        down_sum = corners + np.roll(corners, -1, axis=1)
        maps[:, half:mapsize:stepsize, 0:mapsize:stepsize] = wibbled_mean(top_sum + down_sum)
        stepsize //= 2
        wibble /= wibble_decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)


def clipped_zoom(images: np.ndarray, zoom_factor: float) -> np.ndarray:
    """Zoom the centre of each [N, H, W, C] image by zoom_factor (>= 1, bilinear) back to H x W."""
    height, width = images.shape[1:3]
    crop_h, crop_w = int(np.ceil(height / zoom_factor)), int(np.ceil(width / zoom_factor))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    crop = images[:, top : top + crop_h, left : left + crop_w]
    # scipy.ndimage.zoom(order=1) as MNIST-C / CIFAR-10-C used it maps output i to input
    # i * (in - 1) / (out - 1): bilinear interpolation with align_corners=True, done here in torch
    out_h, out_w = int(round(crop_h * zoom_factor)), int(round(crop_w * zoom_factor))
    batch = torch.from_numpy(np.ascontiguousarray(crop.transpose(0, 3, 1, 2), dtype=np.float32))
    with torch.no_grad():
        zoomed = F.interpolate(batch, size=(out_h, out_w), mode="bilinear", align_corners=True)
    zoomed = zoomed.numpy().transpose(0, 2, 3, 1)
    trim_h, trim_w = (out_h - height) // 2, (out_w - width) // 2
    return zoomed[:, trim_h : trim_h + height, trim_w : trim_w + width]


def canny_edges(images: np.ndarray, sigma: float = 1.0, low: float = 0.1, high: float = 0.2) -> np.ndarray:
    """Canny edge maps {0, 1} float32 [N, H, W] of grey images [N, H, W], batched.

    Follows skimage.feature.canny's defaults as MNIST-C called it: Gaussian smoothing (zero
    padding, divided by the smoothed all-ones mask), Sobel gradients, non-maximum suppression
    interpolating the magnitude between the two pixels that bracket the gradient direction
    (a pixel survives if it is >= both), pixels on the 1-pixel border excluded, hysteresis with
    8-connectivity: keep the pixels >= low that are connected to one >= high.
    """
    images = np.asarray(images, dtype=np.float32)
    n, height, width = images.shape
    smoothed = ndimage.gaussian_filter(images, (0, sigma, sigma), mode="constant", truncate=4.0)
    bleed = ndimage.gaussian_filter(np.ones((height, width), np.float32), sigma, mode="constant", truncate=4.0)
    smoothed /= bleed[None] + np.finfo(np.float32).eps
    grad_row = ndimage.sobel(smoothed, axis=1)
    grad_col = ndimage.sobel(smoothed, axis=2)
    magnitude = np.hypot(grad_row, grad_col)
    abs_row, abs_col = np.abs(grad_row), np.abs(grad_col)
    mostly_row = abs_row >= abs_col
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(mostly_row, abs_col / abs_row, abs_row / abs_col)  # towards the diagonal
    # neighbours by flat index into the zero-padded magnitude (padding is never read for interior pixels)
    stride = width + 2
    flat = np.pad(magnitude, ((0, 0), (1, 1), (1, 1))).ravel()
    base = (np.arange(n)[:, None, None] * (height + 2) + np.arange(1, height + 1)[None, :, None]) * stride + np.arange(
        1, width + 1
    )[None, None, :]
    sign_row = np.sign(grad_row).astype(np.int64)
    sign_col = np.sign(grad_col).astype(np.int64)
    diagonal = sign_row * stride + sign_col
    straight = np.where(mostly_row, sign_row * stride, sign_col)
    ahead = (1 - weight) * flat[base + straight] + weight * flat[base + diagonal]
    behind = (1 - weight) * flat[base - straight] + weight * flat[base - diagonal]
    interior = np.zeros((height, width), dtype=bool)
    interior[1:-1, 1:-1] = True
    with np.errstate(invalid="ignore"):
        low_mask = interior[None] & (ahead <= magnitude) & (behind <= magnitude) & (magnitude >= low)
    high_mask = low_mask & (magnitude >= high)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connected within an image, never across the batch
    labels, _ = ndimage.label(low_mask, structure=structure)
    strong = np.zeros(labels.max() + 1, dtype=bool)
    strong[labels[high_mask]] = True
    strong[0] = False
    return strong[labels].astype(np.float32)
