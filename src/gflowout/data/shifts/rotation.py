"""Geometric shifts: batched affine warps (torch grid_sample), fixed rotations and the paper's random rotation.

Conventions: pixel coordinates x = column, y = row (downwards), the image centre is
((W - 1) / 2, (H - 1) / 2). A positive angle rotates the picture counter-clockwise as displayed,
so rotate(x, 90) equals np.rot90(x, 1, axes=(1, 2)). Sampling is bilinear with zero fill
outside the image.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ._common import check_images, from_channels, make_rng, to_channels

#: The fixed angles (degrees) of the accuracy-versus-angle sweep: 0, 15, ..., 180.
ROTATION_SWEEP_DEG: tuple[int, ...] = tuple(range(0, 181, 15))


def affine_warp(images: np.ndarray, inverse_maps: np.ndarray) -> np.ndarray:
    """Warp each image with its own affine map, bilinear, zero fill.

    images: float [N, H, W, C]. inverse_maps: [N, 2, 3] (or [2, 3] for all) mapping an OUTPUT
    pixel (x, y, 1) to the INPUT position it samples (skimage's `inverse_map` convention).
    Returns float32 [N, H, W, C].
    """
    n, height, width, channels = images.shape
    maps = torch.from_numpy(np.broadcast_to(np.asarray(inverse_maps, dtype=np.float32), (n, 2, 3)).copy())
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    homogeneous = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, height * width, 3)
    source = torch.matmul(homogeneous, maps.transpose(1, 2)).reshape(n, height, width, 2)  # (x, y) sampled
    # align_corners=True: -1 and +1 are the centres of the first and last pixels.
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)])
    grid = source * scale - 1.0
    batch = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32))
    with torch.no_grad():
        out = F.grid_sample(batch, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.numpy().transpose(0, 2, 3, 1)


def centred_inverse_maps(linear: np.ndarray, height: int, width: int) -> np.ndarray:
    """Inverse maps [N, 2, 3] applying the 2x2 matrices linear [N, 2, 2] about the image centre."""
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    offset = centre - np.einsum("nij,j->ni", linear, centre)
    return np.concatenate([linear, offset[:, :, None]], axis=2)


def rotation_inverse_maps(angles_deg: np.ndarray, height: int, width: int) -> np.ndarray:
    """Inverse maps [N, 2, 3] of counter-clockwise rotations by angles_deg [N] about the centre."""
    theta = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    cos, sin = np.cos(theta), np.sin(theta)
    # forward (displayed counter-clockwise, y down): x' = cos x + sin y, y' = -sin x + cos y; inverse below
    linear = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], axis=1)
    return centred_inverse_maps(linear, height, width)


def rotate_by(images: np.ndarray, angles_deg: np.ndarray) -> np.ndarray:
    """Rotate image i of float [N, H, W(, C)] in [0, 1] by angles_deg[i] degrees (counter-clockwise)."""
    array = check_images(images)
    angles = np.broadcast_to(np.asarray(angles_deg, dtype=np.float64), (array.shape[0],))
    if array.shape[0] == 0:
        return array.copy()
    chans, was_grey = to_channels(array)
    maps = rotation_inverse_maps(angles, chans.shape[1], chans.shape[2])
    return from_channels(affine_warp(chans, maps), was_grey)


def rotate(images: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate every image of float [N, H, W] or [N, H, W, 3] in [0, 1] by angle_deg degrees
    counter-clockwise about the centre (bilinear, zero fill). Same shape, float32, in [0, 1].

    Multiples of 90 degrees on square images are exact (np.rot90), so rotate(x, 0) is x itself."""
    array = check_images(images)
    quarter_turns = float(angle_deg) / 90.0
    if quarter_turns == round(quarter_turns) and array.shape[1] == array.shape[2]:
        return np.ascontiguousarray(np.rot90(array, int(round(quarter_turns)) % 4, axes=(1, 2)))
    return rotate_by(array, np.full(array.shape[0], float(angle_deg)))


def random_rotation_angles(count: int, seed: int | np.random.Generator) -> np.ndarray:
    """The paper's test-time angles: uniform on [0, 360) degrees, one per image, float64 [count]."""
    return make_rng(seed).uniform(0.0, 360.0, size=count)


def random_rotation(images: np.ndarray, seed: int | np.random.Generator) -> np.ndarray:
    """The paper's test-time shift: rotate each image by its own uniform [0, 360) angle.

    (The official code used torchvision RandomRotation((0, 360)) on normalised tensors, nearest
    interpolation, fill 0 in normalised units; here: bilinear, black fill, before normalisation.)
    """
    array = check_images(images)
    return rotate_by(array, random_rotation_angles(array.shape[0], seed))
