"""Helpers of the downstream-protocol tests: a small synthetic data set in memory and tiny inline configs."""

from __future__ import annotations

from typing import Any

import torch

from gflowout.experiments.downstream_common import ProtocolData

CLASSES = 3


def synthetic_data(train: int = 150, test: int = 60, seed: int = 0) -> ProtocolData:
    """Images [N, 1, 4, 4] whose class (0..2) shifts the mean of one pixel block, so a model can learn it."""
    generator = torch.Generator().manual_seed(seed)

    def split(count: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(count) % CLASSES
        labels = labels[torch.randperm(count, generator=generator)]
        images = torch.rand(count, 1, 4, 4, generator=generator) * 0.5
        for cls in range(CLASSES):
            images[labels == cls, 0, cls, :] += 0.5
        return images, labels

    x_train, y_train = split(train)
    x_test, y_test = split(test)
    return ProtocolData("mnist", x_train, y_train, x_test, y_test, CLASSES)


def harness(hidden: tuple[int, ...] = (8, 8)) -> dict[str, Any]:
    """An inline harness config: an MLP, the method blocks the tests use."""
    return {
        "seed": 1,
        "data": {"name": "mnist"},
        "model": {"backbone": "mlp", "options": {"hidden": list(hidden)}},
        "method": {"name": "mc_dropout"},
        "methods": {"gflowout": {"options": {"beta": 1.0}}, "mc_dropout": {"options": {"keep_prob": 0.5}}},
    }
