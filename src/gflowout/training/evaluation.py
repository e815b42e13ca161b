"""Clean test metrics of a checkpoint, outside Lightning (one process, the device of your choice).

The metrics come from the evaluation layer: the streamed sums of gflowout.eval.streaming (the harness's own
validation and test metrics), the selective-prediction report and the temperature fit of gflowout.eval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gflowout.checkpoint import load_method, refuse_custom_code
from gflowout.errors import ConfigError
from gflowout.eval.evaluate import fit_on_validation, subset_indices
from gflowout.eval.predictive import Predictive
from gflowout.eval.selective import selective_report
from gflowout.eval.streaming import ClassificationSums, stream_predictions
from gflowout.eval.temperature import apply_temperature
from gflowout.rng import private_rng
from gflowout.training.build import build_datamodule


def validation_tensors(config: Any, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The run's validation split as (normalised images [N, C, H, W], int64 labels [N]), from its data module;
    with `limit`, a fixed random subset of that many rows (the same for every method and seed)."""

    datamodule = build_datamodule(config.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    images, labels = [], []
    for x, y in datamodule.val_dataloader():
        images.append(x)
        labels.append(y)
    if not images:
        raise ConfigError(
            f"data set {config.data.name!r} has an empty validation split: temperature scaling needs one "
            "(raise data.val_fraction, or turn it off)"
        )
    x, y = torch.cat(images), torch.cat(labels).long()
    keep = subset_indices(len(y), limit)
    return (x[keep], y[keep]) if keep is not None else (x, y)


@torch.no_grad()
def evaluate_checkpoint(
    path: str | Path,
    samples: int = 20,
    batch_size: int | None = None,
    root: str | None = None,
    device: str | torch.device | None = None,
    allow_custom_code: bool = False,
    temperature_scaling: bool = True,
) -> dict[str, Any]:
    """{"accuracy", "nll", "brier", "ece", "count", ...} on the test split of the checkpoint's data set.

    It runs in a private RNG state (building the model draws initial weights, the masks come from the run's
    seed): the caller's own random stream is left as it was. allow_custom_code: as `checkpoint.load_method`,
    for the data module too. Also "selective" ({score: AURC and accuracy at 90/95/99 % coverage}) and, with
    `temperature_scaling`, "temperature" fitted on the run's validation split (Guo et al. 2017), its
    "temperature_scaling" record and "ts": the test metrics with every sample's logits divided by it.
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
        torch.manual_seed(config.seed)
        samples = method.prediction_samples(samples)  # a deep ensemble's M, whatever was asked
        sums, logits, labels = stream_predictions(
            method, datamodule.test_dataloader(), samples, device, keep_logits=True
        )
        record = (
            fit_on_validation(method, validation_tensors(config), samples, config.data.batch_size, config.seed)
            if temperature_scaling
            else None
        )
    assert logits is not None and labels is not None  # keep_logits=True
    metrics: dict[str, Any] = sums.compute()
    metrics.update(checkpoint=str(path), method=config.method.name, dataset=config.data.name, samples=samples)
    metrics["selective"] = selective_report(Predictive.from_logits(logits), labels)[0]
    if record is not None:
        tempered = ClassificationSums()
        tempered.update(apply_temperature(logits, record["temperature"]), labels)
        metrics.update(temperature=record["temperature"], temperature_scaling=record, ts=tempered.compute())
    return metrics
