"""Clean test metrics of a checkpoint, outside Lightning (one process, the device of your choice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gflowout.checkpoint import load_method, refuse_custom_code
from gflowout.training.build import build_datamodule
from gflowout.training.module import ClassificationSums
from gflowout.training.rng import private_rng


@torch.no_grad()
def evaluate_checkpoint(path: str | Path, samples: int = 20, batch_size: int | None = None, root: str | None = None,
                        device: str | torch.device | None = None, allow_custom_code: bool = False) -> dict[str, Any]:
    """{"accuracy", "nll", "brier", "ece", "count", ...} on the test split of the checkpoint's data set.

    It runs in a private RNG state (building the model draws initial weights, the masks come from the run's
    seed): the caller's own random stream is left as it was. allow_custom_code: as `checkpoint.load_method`,
    for the data module too.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with private_rng(device):
        method, config = load_method(path, allow_custom_code=allow_custom_code)
        if not allow_custom_code:
            refuse_custom_code(config, str(path))  # the data module as well
        if batch_size is not None:
            config.data.batch_size = batch_size
        if root is not None:
            config.data.root = root
        method.to(device)
        datamodule = build_datamodule(config.data)
        datamodule.prepare_data()
        datamodule.setup("test")
        sums = ClassificationSums()
        torch.manual_seed(config.seed)
        samples = method.prediction_samples(samples)  # a deep ensemble's M, whatever was asked
        for x, y in datamodule.test_dataloader():
            logits = method.predict(x.to(device), samples=samples)
            sums.update(logits, y.to(device))
    metrics: dict[str, Any] = sums.compute()
    metrics.update(checkpoint=str(path), method=config.method.name, dataset=config.data.name, samples=samples)
    return metrics
