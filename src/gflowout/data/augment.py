"""Batched CIFAR training augmentation in torch: random crop with padding, then horizontal flip."""

from __future__ import annotations

import torch
from torch import Tensor


def random_crop_flip(
    images: Tensor, padding: int = 4, fill: Tensor | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Random-crop each image of [B, C, H, W] back to H x W from a copy padded by `padding` on every side,
    then flip it left-right with probability 1/2 (as torchvision's RandomCrop(32, 4) + RandomHorizontalFlip).

    fill: per-channel padding value [C] (default 0). On normalised images pass (0 - mean) / std so the
    padding is black, as it is when torchvision pads the raw image before normalising.
    generator: a seeded torch.Generator for reproducible draws (None: torch's global generator).
    """
    batch, channels, height, width = images.shape
    padded = images.new_empty(batch, channels, height + 2 * padding, width + 2 * padding)
    padded[:] = (fill if fill is not None else torch.zeros(channels, dtype=images.dtype)).view(1, -1, 1, 1)
    padded[:, :, padding : padding + height, padding : padding + width] = images
    offset_y = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    offset_x = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    flip = torch.rand(batch, generator=generator) < 0.5
    rows = offset_y[:, None] + torch.arange(height)  # [B, H]
    columns = offset_x[:, None] + torch.arange(width)  # [B, W]
    columns = torch.where(flip[:, None], columns.flip(1), columns)  # a flip reads the crop's columns backwards
    batch_index = torch.arange(batch)[:, None, None]
    # Advanced indexing on dims 0, 2, 3 gives [B, H, W, C]; move channels back.
    crops = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], columns[:, None, :]]
    return crops.permute(0, 3, 1, 2).contiguous()
