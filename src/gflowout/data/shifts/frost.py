"""A procedural stand-in for the frost photographs of CIFAR-10-C's frost corruption.

CIFAR-10-C blends each image with a random 32 x 32 crop of one of its frost photographs
(frost1.png ... frost6.jpg, shrunk to 1/5; the code draws the index from the first five). We do
not have those photographs, so this module synthesises a fixed bank of five frost-like RGB
textures: ice needles with side branches (dendrites) over a faint fractal haze, whitish blue,
mean brightness about 0.45. The bank depends on nothing but FROST_BANK_SEED, like fixed photos;
only the choice of texture and the crop come from the caller's seed. Results are therefore
"CIFAR-10-C-style" frost, NOT comparable number for number with the published CIFAR-10-C frost.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from ._filters import plasma_fractal

FROST_BANK_SEED = 20190401
FROST_BANK_SIZE = 5
FROST_TEXTURE_SIDE = 192
ICE_TINT = np.array([0.86, 0.93, 1.0], dtype=np.float32)  # RGB: slightly blue white


def _draw_needles(canvas: np.ndarray, rng: np.random.Generator, count: int) -> None:
    """Scatter `count` dendrites (a main needle and side branches at +-60 degrees) onto canvas [S, S]."""
    side = canvas.shape[0]
    starts = rng.uniform(0, side, size=(count, 2))
    angles = rng.uniform(0, 2 * np.pi, size=count)
    lengths = rng.gamma(2.0, 9.0, size=count) + 4.0
    brightness = rng.uniform(0.4, 1.0, size=count)
    segments = [(starts, angles, lengths, brightness)]
    # side branches: up to 6 per needle, from points along it, shorter and dimmer
    for _ in range(6):
        along = rng.uniform(0.15, 0.9, size=count) * lengths
        origin = starts + along[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        turn = rng.choice(np.array([-1.0, 1.0]), size=count) * np.deg2rad(60.0)
        segments.append((origin, angles + turn, lengths * rng.uniform(0.15, 0.45, size=count), brightness * 0.8))
    for origin, angle, length, value in segments:
        steps = np.linspace(0.0, 1.0, 48)[None, :] * length[:, None]  # [count, 48] distances
        xs = (origin[:, 0:1] + steps * np.cos(angle)[:, None]).round().astype(np.int64) % side
        ys = (origin[:, 1:2] + steps * np.sin(angle)[:, None]).round().astype(np.int64) % side
        np.maximum.at(canvas, (ys.ravel(), xs.ravel()), np.repeat(value, steps.shape[1]))


@lru_cache(maxsize=1)
def frost_bank() -> np.ndarray:
    """The fixed bank of frost textures: float32 [FROST_BANK_SIZE, S, S, 3] in [0, 1] (read-only)."""
    rng = np.random.default_rng(FROST_BANK_SEED)
    side = FROST_TEXTURE_SIDE
    haze = plasma_fractal(FROST_BANK_SIZE, 256, 2.0, rng)[:, :side, :side]
    textures = np.empty((FROST_BANK_SIZE, side, side), dtype=np.float32)
    for index in range(FROST_BANK_SIZE):
        needles = np.zeros((side, side), dtype=np.float32)
        _draw_needles(needles, rng, count=int(rng.integers(900, 1400)))
        needles = ndimage.gaussian_filter(needles, 0.6, mode="wrap")
        needles /= max(float(needles.max()), 1e-6)
        texture = 0.3 * haze[index] + 0.9 * needles
        textures[index] = np.clip(texture / max(float(np.quantile(texture, 0.995)), 1e-6), 0.0, 1.0)
    textures *= 0.45 / textures.mean(axis=(1, 2), keepdims=True)  # mean brightness about 0.45
    bank = np.clip(textures[..., None] * ICE_TINT, 0.0, 1.0).astype(np.float32)
    bank.setflags(write=False)
    return bank


def frost_crops(count: int, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """One random texture and random crop per image: float32 [count, height, width, 3]."""
    bank = frost_bank()
    _, side, _, _ = bank.shape
    if height > side or width > side:
        raise ValueError(f"frost: images of {height}x{width} exceed the {side}x{side} frost textures")
    which = rng.integers(0, bank.shape[0], size=count)
    top = rng.integers(0, side - height + 1, size=count)
    left = rng.integers(0, side - width + 1, size=count)
    rows = top[:, None, None] + np.arange(height)[None, :, None]
    cols = left[:, None, None] + np.arange(width)[None, None, :]
    return bank[which[:, None, None], rows, cols]
