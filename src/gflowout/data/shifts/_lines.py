"""Batched line drawing for the MNIST-C-style dotted_line and zigzag corruptions.

MNIST-C draws a line as a soft band around y = m (x - c0) + r0 whose intensity decays with the
VERTICAL distance d as log(1 - d / 2.3) + 1 (clipped to [0, 1]), limited to the columns
floor(c0) <= x < ceil(c1). Here every argument is an array [N] (one line per image).
"""

from __future__ import annotations

import numpy as np

BAND_HALF_WIDTH = 2.3


def line_layer(c0: np.ndarray, r0: np.ndarray, c1: np.ndarray, r1: np.ndarray, height: int, width: int) -> np.ndarray:
    """One MNIST-C line per image: float [N, H, W] in [0, 1]; an image with c1 == c0 gets no line."""
    c0, r0, c1, r1 = (np.asarray(v, dtype=np.float64).reshape(-1, 1, 1) for v in (c0, r0, c1, r1))
    vertical = c1 == c0
    slope = np.where(vertical, 0.0, (r1 - r0) / np.where(vertical, 1.0, c1 - c0))
    cols = np.arange(width, dtype=np.float64).reshape(1, 1, width)
    rows = np.arange(height, dtype=np.float64).reshape(1, height, 1)
    dist = np.clip(np.abs(rows - (slope * (cols - c0) + r0)), 0.0, BAND_HALF_WIDTH - 1e-10)
    layer = np.clip(np.log(1.0 - dist / BAND_HALF_WIDTH) + 1.0, 0.0, 1.0)
    in_span = (cols >= np.floor(c0)) & (cols < np.ceil(c1))
    return np.where(in_span & ~vertical, layer, 0.0)


def dotted_line_layer(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """MNIST-C dotted_line: a line from (0, r0) to (W - 1, r1), r0, r1 uniform integers in [0, H - 2],
    with columns alternately off and on in pairs (off first). float [N, H, W]."""
    r0 = rng.integers(0, height - 1, size=count)
    r1 = rng.integers(0, height - 1, size=count)
    layer = line_layer(np.zeros(count), r0, np.full(count, width - 1.0), r1, height, width)
    dashes_on = (np.arange(width) // 2) % 2 == 1
    return layer * dashes_on[None, None, :]


def zigzag_layer(rng: np.random.Generator, count: int, height: int, width: int) -> np.ndarray:
    """MNIST-C zigzag: a zigzag of legs 2 px long and 2 px high from column 2 to W - 3, starting at a
    random row r0 in [0, H - 2] and ending near r0 + U{-5..4}, made of line_layer segments.

    The endpoint list follows MNIST-C exactly, including its last point (d, r / (2 (d - max_c))).
    float [N, H, W].
    """
    leg, amplitude = 2.0, 2.0
    c_start, c_end = 2.0, width - 3.0
    r0 = rng.integers(0, height - 1, size=count).astype(np.float64)
    r1 = r0 + rng.integers(-5, 5, size=count)
    theta = np.arctan((r1 - r0) / (c_end - c_start))
    length = (c_end - c_start) / np.cos(theta)
    n_zig = ((length - leg) // (2 * leg)).astype(np.int64) + 1  # zig points per image
    k_max = int(n_zig.max())
    k = np.arange(k_max)
    # points: (0, 0), zig_0 .. zig_{n-1}, then (length, r_last / (2 (length - max_c))) if length != max_c
    xs = np.zeros((count, k_max + 2))
    ys = np.zeros((count, k_max + 2))
    valid = np.zeros((count, k_max + 2), dtype=bool)
    valid[:, 0] = True
    xs[:, 1 : k_max + 1] = (2 * k + 1) * leg
    ys[:, 1 : k_max + 1] = (-1.0) ** k * amplitude
    valid[:, 1 : k_max + 1] = k[None, :] < n_zig[:, None]
    max_c = 2 * leg * (length // (2 * leg))
    has_last = length != max_c
    r_last = (-1.0) ** (n_zig - 1) * amplitude
    rows_idx = np.arange(count)
    last_idx = n_zig + 1
    with np.errstate(divide="ignore", invalid="ignore"):
        last_y = r_last / (2 * (length - max_c))
    xs[rows_idx, last_idx] = np.where(has_last, length, 0.0)
    ys[rows_idx, last_idx] = np.where(has_last, last_y, 0.0)
    valid[rows_idx, last_idx] = has_last
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    cs = cos * xs - sin * ys + c_start
    rs = sin * xs + cos * ys + r0[:, None]
    layer = np.zeros((count, height, width))
    for seg in range(k_max + 1):
        ok = valid[:, seg] & valid[:, seg + 1]
        if not ok.any():
            continue
        piece = line_layer(cs[:, seg], rs[:, seg], cs[:, seg + 1], rs[:, seg + 1], height, width)
        layer += np.where(ok[:, None, None], piece, 0.0)
    return np.clip(layer, 0.0, 1.0)
