"""Corruptions checked against independent references: the published constant tables, hand
computations, scipy.ndimage transforms and the standard library's colorsys."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from scipy import ndimage

from gflowout.data.shifts import apply_shift
from gflowout.data.shifts._filters import canny_edges, clipped_zoom, motion_blur
from gflowout.data.shifts.cifar_c import disk_kernel
from gflowout.data.shifts.frost import frost_bank

# hendrycks/robustness ImageNet-C/create_c/make_cifar_c.py, severities 1..5
CIFAR_GAUSSIAN_SIGMA = [0.04, 0.06, 0.08, 0.09, 0.10]
CIFAR_SHOT_PHOTONS = [500, 250, 100, 75, 50]
CIFAR_IMPULSE_AMOUNT = [0.01, 0.02, 0.03, 0.05, 0.07]
CIFAR_SPECKLE_SIGMA = [0.06, 0.10, 0.12, 0.16, 0.20]
CIFAR_CONTRAST = [0.75, 0.5, 0.4, 0.3, 0.15]
CIFAR_BRIGHTNESS = [0.05, 0.1, 0.15, 0.2, 0.3]
CIFAR_BLUR_SIGMA = [0.4, 0.6, 0.7, 0.8, 1.0]
MUD = 63 / 255


def _grey(value: float, shape: tuple[int, ...] = (64, 32, 32, 3)) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)


def _blobs(count: int, seed: int = 0, side: int = 28) -> np.ndarray:
    """Grey images that are zero outside a disc of radius 9 about the centre (border handling is moot)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    inside = np.hypot(yy - (side - 1) / 2, xx - (side - 1) / 2) < 9
    images = ndimage.gaussian_filter(rng.random((count, side, side)), (0, 1.2, 1.2)) * inside
    return (images / images.max()).astype(np.float32)


# ----- CIFAR-10-C-style: statistics against the published table -----


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_gaussian_noise_std_matches_the_table(severity: int) -> None:
    clean = _grey(0.5)
    noise = apply_shift(clean, "gaussian_noise", severity, seed=severity) - clean
    assert abs(noise.mean()) < 0.002
    assert noise.std() == pytest.approx(CIFAR_GAUSSIAN_SIGMA[severity - 1], rel=0.01)


@pytest.mark.parametrize("severity", [1, 5])
def test_shot_noise_is_poisson_with_the_table_rate(severity: int) -> None:
    photons = CIFAR_SHOT_PHOTONS[severity - 1]
    clean = _grey(0.4)
    out = apply_shift(clean, "shot_noise", severity, seed=0).astype(np.float64)
    np.testing.assert_allclose(out * photons, np.round(out * photons), atol=1e-3)  # counts / photons
    assert out.mean() == pytest.approx(0.4, abs=0.002)
    assert out.var() == pytest.approx(0.4 / photons, rel=0.03)  # Poisson: variance = mean


@pytest.mark.parametrize("severity", [1, 5])
def test_impulse_noise_replaces_the_table_fraction_by_0_or_1(severity: int) -> None:
    amount = CIFAR_IMPULSE_AMOUNT[severity - 1]
    out = apply_shift(_grey(0.5), "impulse_noise", severity, seed=1)
    changed = out != 0.5
    assert set(np.unique(out[changed])) <= {0.0, 1.0}
    standard_error = np.sqrt(amount * (1 - amount) / out.size)
    assert abs(changed.mean() - amount) < 4 * standard_error
    assert abs((out[changed] == 1.0).mean() - 0.5) < 0.02


def test_speckle_noise_is_multiplicative_with_the_table_std() -> None:
    clean = _grey(0.4)
    relative = (apply_shift(clean, "speckle_noise", 4, seed=2) - clean) / clean
    assert relative.std() == pytest.approx(CIFAR_SPECKLE_SIGMA[3], rel=0.01)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_contrast_scales_around_each_channel_mean(severity: int) -> None:
    rng = np.random.default_rng(0)
    clean = (0.3 + 0.4 * rng.random((4, 32, 32, 3))).astype(np.float32)  # no clipping can occur
    out = apply_shift(clean, "contrast", severity, seed=0)
    means = clean.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(out, (clean - means) * CIFAR_CONTRAST[severity - 1] + means, atol=1e-6)


@pytest.mark.parametrize("severity", [1, 5])
def test_brightness_matches_a_colorsys_hsv_round_trip(severity: int) -> None:
    rng = np.random.default_rng(3)
    pixels = rng.random((1, 6, 7, 3)).astype(np.float32)
    pixels[0, 0, 0] = 0.0  # black: hue and saturation undefined
    pixels[0, 0, 1] = [0.2, 0.2, 0.2]  # grey
    out = apply_shift(pixels, "brightness", severity, seed=0)
    delta = CIFAR_BRIGHTNESS[severity - 1]
    for (i, j), _ in np.ndenumerate(pixels[0, ..., 0]):
        h, s, v = colorsys.rgb_to_hsv(*pixels[0, i, j].astype(float))
        expected = colorsys.hsv_to_rgb(h, s, min(v + delta, 1.0))
        np.testing.assert_allclose(out[0, i, j], expected, atol=1e-5)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_gaussian_blur_spreads_an_impulse_with_the_table_sigma(severity: int) -> None:
    sigma = CIFAR_BLUR_SIGMA[severity - 1]
    impulse = np.zeros((1, 32, 32, 3), np.float32)
    impulse[0, 16, 16] = 1.0
    out = apply_shift(impulse, "gaussian_blur", severity, seed=0)[0, ..., 0].astype(np.float64)
    # hand computation: the sampled Gaussian truncated at 4 sigma, normalised
    taps = np.arange(-int(4 * sigma + 0.5), int(4 * sigma + 0.5) + 1)
    weights = np.exp(-(taps**2) / (2 * sigma**2))
    weights /= weights.sum()
    expected = np.zeros((32, 32))
    expected[16 + taps[:, None], 16 + taps[None, :]] = np.outer(weights, weights)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_defocus_disk_kernels_by_hand() -> None:
    # radius 0.3: the disk is the centre pixel alone, so the kernel is OpenCV's 3 x 3 Gaussian (sigma .4)
    edge = np.exp(-1 / (2 * 0.4**2))
    taps = np.array([edge, 1.0, edge]) / (1 + 2 * edge)
    np.testing.assert_allclose(disk_kernel(0.3, 0.4), np.outer(taps, taps), atol=1e-12)
    # radius 1: the plus-shaped five pixels, each 1/5, hardly blurred (sigma .2)
    plus = disk_kernel(1.0, 0.2)
    assert plus.shape == (5, 5) and plus.sum() == pytest.approx(1.0)
    assert plus[2, 2] == pytest.approx(0.2, abs=1e-3) and plus[1, 2] == pytest.approx(0.2, abs=1e-3)
    assert plus[1, 1] < 1e-4
    impulse = np.zeros((1, 32, 32, 3), np.float32)
    impulse[0, 16, 16] = 1.0
    out = apply_shift(impulse, "defocus_blur", 1, seed=0)[0, 15:18, 15:18, 1]
    np.testing.assert_allclose(out, np.outer(taps, taps), atol=1e-6)


def test_frost_is_a_weighted_sum_with_a_crop_of_the_fixed_bank() -> None:
    bank = frost_bank()
    assert bank.shape[0] == 5 and bank.shape[-1] == 3 and bank.min() >= 0 and bank.max() <= 1
    assert bank.mean() == pytest.approx(0.45, abs=0.05)
    black = np.zeros((3, 32, 32, 3), np.float32)
    crops = apply_shift(black, "frost", 5, seed=9) / 0.45  # severity 5: 0.75 x + 0.45 frost
    windows = np.lib.stride_tricks.sliding_window_view(bank, (32, 32), axis=(1, 2))  # [5, R, C, 3, 32, 32]
    for crop in crops:
        distance = np.abs(windows[..., 0, 0] - crop[0, 0, 0])  # shortlist by the top-left pixel
        found = any(
            np.allclose(windows[k, r, c].transpose(1, 2, 0), crop, atol=1e-5)
            for k, r, c in zip(*np.nonzero(distance[..., 0] < 1e-5))
        )
        assert found, "frost output is not a bank crop"


# ----- MNIST-C-style: exact geometry and hand computations -----


def test_translate_shifts_by_whole_pixels_with_random_signs() -> None:
    images = _blobs(8)
    out = apply_shift(images, "translate", 3, seed=4)  # 3 pixels in x and in y
    seen = set()
    for image, shifted in zip(images, out):
        matches = []
        for dy in (-3, 3):
            for dx in (-3, 3):
                reference = np.zeros_like(image)
                src = image[max(0, dy) : 28 + min(0, dy), max(0, dx) : 28 + min(0, dx)]
                reference[max(0, -dy) : 28 + min(0, -dy), max(0, -dx) : 28 + min(0, -dx)] = src
                if np.allclose(shifted, reference, atol=1e-5):
                    matches.append((dy, dx))
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) > 1  # the signs are random


@pytest.mark.parametrize("severity, factor", [(1, 1 / 0.9), (3, 1 / 0.7), (5, 1 / 0.5)])
def test_scale_matches_scipy_affine_transform(severity: int, factor: float) -> None:
    images = _blobs(3)
    centre = np.array([13.5, 13.5])
    reference = np.stack(
        [ndimage.affine_transform(img, np.eye(2) * factor, offset=centre - factor * centre, order=1) for img in images]
    )
    np.testing.assert_allclose(apply_shift(images, "scale", severity, seed=0), reference, atol=1e-5)


def _affine_reference(image: np.ndarray, matrix_rc: np.ndarray) -> np.ndarray:
    centre = np.array([13.5, 13.5])
    return ndimage.affine_transform(image, matrix_rc, offset=centre - matrix_rc @ centre, order=1, mode="grid-constant")


def test_shear_and_rotate_match_scipy_with_a_random_sign() -> None:
    images = _blobs(8, seed=1)
    shear, angle = 0.4, 0.4  # severity 3: the published MNIST-C parameters
    sheared = apply_shift(images, "shear", 3, seed=2)
    rotated = apply_shift(images, "rotate", 3, seed=2)
    signs = {"shear": set(), "rotate": set()}
    for image, sh, ro in zip(images, sheared, rotated):
        for sign in (-1, 1):
            # skimage AffineTransform(shear=c) as inverse map: x_in = x - sin(c) y, y_in = cos(c) y
            c = sign * shear
            if np.allclose(sh, _affine_reference(image, np.array([[np.cos(c), 0], [-np.sin(c), 1]])), atol=1e-4):
                signs["shear"].add(sign)
            r = sign * angle
            if np.allclose(
                ro, _affine_reference(image, np.array([[np.cos(r), np.sin(r)], [-np.sin(r), np.cos(r)]])), atol=1e-4
            ):
                signs["rotate"].add(sign)
    assert signs == {"shear": {-1, 1}, "rotate": {-1, 1}}


def test_brightness_and_stripe_by_hand() -> None:
    images = _blobs(4)
    np.testing.assert_allclose(apply_shift(images, "brightness", 3, seed=0), np.clip(images + 0.5, 0, 1), atol=1e-6)
    expected = images.copy()
    expected[:, :, :7] = 1 - expected[:, :, :7]
    expected[:, :, 21:] = 1 - expected[:, :, 21:]
    np.testing.assert_allclose(apply_shift(images, "stripe", 3, seed=0), expected, atol=1e-6)


def test_shot_noise_keeps_black_and_counts_in_thirds() -> None:
    images = _blobs(6)
    out = apply_shift(images, "shot_noise", 3, seed=0)  # 3 photons per unit intensity
    assert np.all(out[images == 0] == 0)
    np.testing.assert_allclose(out * 3, np.round(out * 3), atol=1e-5)


def test_dotted_line_only_on_the_dash_columns() -> None:
    images = np.zeros((10, 28, 28), np.float32)
    out = apply_shift(images, "dotted_line", 3, seed=0)
    off_columns = (np.arange(28) // 2) % 2 == 0  # columns 0-1, 4-5, ... are gaps
    assert np.all(out[:, :, off_columns] == 0)
    assert np.all(out[:, :, 27] == 0)  # MNIST-C's line stops before the last column
    # each dash column is crossed: some row lies within 0.5 px (vertically) of the line, where the
    # MNIST-C band log(1 - d / 2.3) + 1 is at least log(1 - 0.5 / 2.3) + 1
    on_columns = ~off_columns & (np.arange(28) < 27)
    assert np.all(out[:, :, on_columns].max(axis=1) >= np.log(1 - 0.5 / 2.3) + 1 - 1e-6)


def test_spatter_paints_opaque_mud() -> None:
    images = np.zeros((20, 28, 28), np.float32)
    out = apply_shift(images, "spatter", 5, seed=0)
    mud = out[out > 0]
    assert mud.size > 0
    assert mud.min() >= 0.8 * MUD - 1e-6 and mud.max() <= MUD + 1e-6  # mask values in [0.8, 1]


def test_motion_blur_kernel_is_imagemagicks_one_sided_gaussian() -> None:
    impulse = np.zeros((1, 9, 32, 1), np.float32)
    impulse[0, 4, 20] = 1.0
    out = motion_blur(impulse, radius=6, sigma=2.0, angles_deg=np.array([0.0]))[0, 4, :, 0]
    # out(p) = sum_i k_i x(p + i), k_i ~ exp(-i^2 / 2 sigma^2), i = 0..12: the impulse lands left of itself
    steps = np.arange(13)
    weights = np.exp(-(steps**2) / 8.0)
    weights[weights < 1e-4] = 0
    expected = np.zeros(32)
    expected[20 - steps] = weights / weights.sum()
    np.testing.assert_allclose(out, expected, atol=1e-6)
    down = motion_blur(impulse, radius=6, sigma=2.0, angles_deg=np.array([90.0]))[0, :, 20, 0]
    assert down[4] == pytest.approx(weights[0] / weights.sum(), abs=1e-6) and down[:4].sum() > 0 and down[5:].sum() == 0


def test_canny_on_hand_made_shapes() -> None:
    blank = np.zeros((1, 28, 28), np.float32)
    assert canny_edges(blank).sum() == 0
    square = np.zeros((1, 28, 28), np.float32)
    square[0, 8:20, 8:20] = 1.0
    edges = canny_edges(square)[0].astype(bool)
    rows, cols = np.nonzero(edges)
    near_boundary = (np.minimum(np.abs(rows - 7.5), np.abs(rows - 19.5)) <= 1) | (
        np.minimum(np.abs(cols - 7.5), np.abs(cols - 19.5)) <= 1
    )
    assert near_boundary.all()  # no edge away from the square's outline
    for side in (edges[7:9, 10:18], edges[19:21, 10:18], edges[10:18, 7:9].T, edges[10:18, 19:21].T):
        assert side.any(axis=0).all()  # every side is traced without gaps
    step = np.zeros((1, 28, 28), np.float32)
    step[0, :, 14:] = 1.0
    step_edges = canny_edges(step)[0]
    assert np.all(step_edges[1:-1].sum(axis=1) >= 1) and set(np.nonzero(step_edges)[1]) <= {13, 14}
    assert step_edges[0].sum() == 0 and step_edges[-1].sum() == 0  # the 1-pixel border is excluded


@pytest.mark.parametrize("zoom", [1.0, 1.25, 1.75, 2.25])
def test_clipped_zoom_matches_the_scipy_zoom_of_cifar_c(zoom: float) -> None:
    """CIFAR-10-C's clipped_zoom (crop the centre, scipy.ndimage.zoom order 1, trim), image by image."""
    images = np.random.default_rng(0).random((3, 32, 32, 1)).astype(np.float32)
    crop = int(np.ceil(32 / zoom))
    top = (32 - crop) // 2
    expected = []
    for image in images:
        zoomed = ndimage.zoom(image[top : top + crop, top : top + crop], (zoom, zoom, 1), order=1)
        trim = (zoomed.shape[0] - 32) // 2
        expected.append(zoomed[trim : trim + 32, trim : trim + 32])
    np.testing.assert_allclose(clipped_zoom(images, zoom), np.stack(expected), atol=1e-5)


def test_snow_adds_a_layer_symmetric_under_half_turns_to_the_brightened_image() -> None:
    """CIFAR-10-C snow on black images, severity 1: 0.95 * 0 + 0.05 * max(0, 1.5 * 0 + 0.5) = 0.025,
    plus layer + rot180(layer), which is unchanged by a half turn."""
    black = np.zeros((6, 32, 32, 3), np.float32)
    out = apply_shift(black, "snow", 1, seed=3)
    snow = out - 0.025
    assert snow.min() >= -1e-6 and snow.max() > 0.1
    unclipped = out < 1.0
    rotated = np.rot90(snow, 2, axes=(1, 2))
    both = unclipped & np.rot90(unclipped, 2, axes=(1, 2))
    np.testing.assert_allclose(snow[both], rotated[both], atol=1e-6)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])  # a grey layer on a grey image


@pytest.mark.parametrize("severity", [1, 5])
def test_fog_is_a_rescaled_sum_with_a_full_range_plasma(severity: int) -> None:
    """CIFAR-10-C fog: out = (x + c p) m / (m + c), m = max x, p a plasma map normalised to [0, 1];
    on 32 x 32 images the crop is the whole map, so p recovered from out spans exactly [0, 1]."""
    strength = [0.2, 0.5, 0.75, 1.0, 1.5][severity - 1]
    rng = np.random.default_rng(0)
    images = (0.1 + 0.8 * rng.random((4, 32, 32, 3))).astype(np.float32)
    out = apply_shift(images, "fog", severity, seed=1).astype(np.float64)
    peak = images.max(axis=(1, 2, 3), keepdims=True)
    plasma = (out * (peak + strength) / peak - images) / strength
    np.testing.assert_allclose(plasma[..., 0], plasma[..., 2], atol=1e-5)  # one map for all channels
    np.testing.assert_allclose(plasma.min(axis=(1, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(plasma.max(axis=(1, 2, 3)), 1.0, atol=1e-5)
