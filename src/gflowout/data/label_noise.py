"""Symmetric label noise for the transfer-from-noisy-pre-training protocol.

The GFlowOut paper (Liu et al., ICML 2023) pre-trains with 30 % noisy labels before fine-tuning on clean
subsets. Our noise model: exactly round(rate x N) examples, chosen uniformly without replacement, get a new
label drawn uniformly from the K - 1 OTHER classes; the rest keep theirs. So the realised noise rate is the
asked rate (up to rounding), every corrupted label is really wrong, and every class, the last included, can
be drawn. (The official code drew noisy labels with `randint(min, max)`, whose upper end is exclusive, so the
last class was never drawn, and a "noisy" label could equal the true one.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class NoisyLabels:
    """labels: int64 [N], the noisy labels; flipped: bool [N], True where the label was changed."""

    labels: Tensor
    flipped: Tensor

    @property
    def rate(self) -> float:
        """The realised fraction of changed labels."""
        return float(self.flipped.double().mean()) if self.flipped.numel() else 0.0


def symmetric_label_noise(labels: Tensor, rate: float, num_classes: int, seed: int) -> NoisyLabels:
    """Replace round(rate x N) labels, chosen by `seed`, with a uniform draw from the other K - 1 classes.

    Args:
        labels: int64 [N] clean labels in 0..num_classes-1.
        rate: fraction in [0, 1] of labels to corrupt.
        num_classes: K >= 2.
        seed: the same seed gives the same noisy labels.
    Returns:
        NoisyLabels (the input is not modified).
    """
    labels = torch.as_tensor(labels).to(torch.int64)
    if labels.dim() != 1:
        raise ValueError(f"labels must be one class index per example [N], got shape {tuple(labels.shape)}")
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"label noise needs num_classes >= 2 (an integer), got {num_classes!r}")
    if not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"the label-noise rate must lie in [0, 1], got {rate}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, found {int(labels.min())}..{int(labels.max())}")
    generator = torch.Generator().manual_seed(int(seed))
    count = int(round(float(rate) * labels.numel()))
    chosen = torch.randperm(labels.numel(), generator=generator)[:count]
    # an offset in 1..K-1 added modulo K is a uniform draw from the other K - 1 classes
    offsets = torch.randint(1, int(num_classes), (count,), generator=generator)
    noisy = labels.clone()
    noisy[chosen] = (labels[chosen] + offsets) % int(num_classes)
    flipped = torch.zeros(labels.numel(), dtype=torch.bool)
    flipped[chosen] = True
    return NoisyLabels(noisy, flipped)
