"""Rotations: np.rot90 and scipy.ndimage.rotate as references, the paper's random rotation, input checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from gflowout.data.shifts import ROTATION_SWEEP_DEG, apply_shift, random_rotation, rotate, rotation_shifts
from gflowout.data.shifts.rotation import rotate_by


def _random_images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def _centred_blob_images(count: int, seed: int = 0) -> np.ndarray:
    """Images that are zero outside the inscribed circle, so border handling cannot matter."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    inside = np.hypot(yy - 13.5, xx - 13.5) < 10
    images = ndimage.gaussian_filter(rng.random((count, 28, 28)), (0, 1, 1)) * inside
    return (images / images.max()).astype(np.float32)


def _l_shape() -> np.ndarray:
    """An asymmetric grey image (an L) whose every rotation is distinguishable."""
    image = np.zeros((28, 28), np.float32)
    image[6:22, 10:14] = 1.0
    image[18:22, 10:20] = 1.0
    return ndimage.gaussian_filter(image, 0.8)


@pytest.mark.parametrize("shape", [(3, 28, 28), (2, 32, 32, 3)])
@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_quarter_turns_equal_rot90(shape: tuple[int, ...], quarter_turns: int) -> None:
    images = _random_images(shape)
    expected = np.rot90(images, quarter_turns, axes=(1, 2))
    np.testing.assert_array_equal(rotate(images, 90 * quarter_turns), expected)
    np.testing.assert_array_equal(rotate(images, 90 * quarter_turns - 360), expected)
    # the general bilinear path (angles not on the 90-degree grid) lands on the same pixels
    np.testing.assert_allclose(rotate_by(images, np.full(len(images), 90.0 * quarter_turns)), expected, atol=1e-5)


def test_zero_angle_is_identity_and_keeps_shape_dtype_range() -> None:
    images = _random_images((4, 28, 28))
    np.testing.assert_array_equal(rotate(images, 0), images)
    np.testing.assert_array_equal(rotate(images, 360), images)
    out45 = rotate(images, 45)
    assert out45.shape == images.shape and out45.dtype == np.float32
    assert out45.min() >= 0 and out45.max() <= 1


@pytest.mark.parametrize("angle", [15, 45, 100, -30])
def test_arbitrary_angle_matches_scipy_rotate(angle: float) -> None:
    images = _centred_blob_images(3)
    reference = np.stack([ndimage.rotate(img, angle, reshape=False, order=1, mode="constant") for img in images])
    np.testing.assert_allclose(rotate(images, angle), np.clip(reference, 0, 1), atol=1e-5)


def test_sweep_is_0_to_180_in_steps_of_15() -> None:
    assert list(ROTATION_SWEEP_DEG) == list(range(0, 181, 15))
    assert rotation_shifts()[0] == "random_rotation"
    assert rotation_shifts()[1:] == [f"rotation_{a}" for a in range(0, 181, 15)]


def test_rotation_names_through_apply_shift() -> None:
    images = _random_images((2, 28, 28))
    np.testing.assert_allclose(
        apply_shift(images, "rotation_90", 1, seed=0), np.rot90(images, 1, axes=(1, 2)), atol=1e-5
    )
    np.testing.assert_array_equal(apply_shift(images, "random_rotation", 1, seed=4), random_rotation(images, 4))


def test_random_rotation_is_deterministic_per_seed_and_differs_between_seeds() -> None:
    images = _random_images((6, 28, 28))
    np.testing.assert_array_equal(random_rotation(images, 7), random_rotation(images, 7))
    assert not np.allclose(random_rotation(images, 7), random_rotation(images, 8))


def test_random_rotation_angles_cover_the_circle() -> None:
    """Recover each image's angle by matching against a 2-degree grid: all four quadrants appear,
    one angle per image (copies of one image get different angles), and the matches are close."""
    count = 48
    copies = np.repeat(_l_shape()[None], count, axis=0)
    rotated = random_rotation(copies, seed=3)
    grid = np.arange(0, 360, 2)
    templates = rotate_by(np.repeat(_l_shape()[None], len(grid), axis=0), grid)  # [G, 28, 28]
    errors = ((rotated[:, None] - templates[None]) ** 2).sum(axis=(2, 3))  # [count, G]
    recovered = grid[errors.argmin(axis=1)]
    assert np.all(errors.min(axis=1) < 0.5)  # each output really is a rotation of the input
    quadrant_counts = np.bincount(recovered // 90, minlength=4)
    assert np.all(quadrant_counts >= count // 8), quadrant_counts
    assert len(np.unique(recovered)) > count // 2


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((2, 28, 28), np.uint8), "dtype uint8"),
        (np.full((2, 28, 28), 1.5, np.float32), "range"),
        (np.zeros((28, 28), np.float32), "shape"),
        (np.zeros((2, 28, 28, 2), np.float32), "shape"),
        (np.full((1, 4, 4), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_images_raise_value_error(bad: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rotate(bad, 10)
