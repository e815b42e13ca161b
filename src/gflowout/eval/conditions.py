"""Prediction and the numbers of one evaluated condition: S-sample logits batch by batch, METRICS of the
predictive, the validation pass of temperature scaling, and `ConditionRecorder`, which writes a condition's
numbers (and its conformal prediction sets, when calibrated) into a result and its temperature-scaled "ts" block
alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gflowout.eval.conformal import ConformalClassifier, set_report
from gflowout.eval.figure_material import reliability_material
from gflowout.eval.metrics import classification_metrics, ece
from gflowout.eval.predictive import Predictive
from gflowout.eval.selective import selective_report
from gflowout.eval.temperature import apply_temperature, fit_temperature, temperature_nll
from gflowout.methods.base import DropoutMethod
from gflowout.rng import private_rng


@torch.no_grad()
def predict_logits(method: DropoutMethod, images: Tensor, samples: int, batch_size: int = 256) -> Tensor:
    """Per-sample logits [S, N, C] (float32, CPU) of normalised images [N, C, H, W], batch by batch."""
    device = next(method.parameters()).device
    parts = [
        method.predict(images[i : i + batch_size].to(device), samples=samples).float().cpu()
        for i in range(0, images.shape[0], batch_size)
    ]
    return torch.cat(parts, dim=1)


def condition_metrics(logits: Tensor, labels: np.ndarray) -> tuple[dict[str, float], Predictive]:
    """METRICS of one condition (accuracy, NLL from the exact log predictive, Brier, ECE 15 and 10 bins)."""
    summary = Predictive.from_logits(logits)
    labels_t = torch.as_tensor(labels)
    base = classification_metrics(summary.probs, labels_t, bins=15, log_probs=summary.log_probs)
    metrics = {
        "accuracy": base["accuracy"],
        "nll": base["nll"],
        "brier": base["brier"],
        "ece15": base["ece"],
        "ece10": ece(summary.probs, labels_t, bins=10),
    }
    return metrics, summary


def validation_logits(
    method: DropoutMethod, validation: tuple[Tensor, Tensor], samples: int, batch_size: int, seed: int
) -> tuple[Tensor, Tensor]:
    """Per-sample logits [S, N, C] and labels [N] of held-out (images [N, C, H, W], labels [N]); the masks come
    from a private RNG seeded by `seed`, so the caller's random stream is left as it was."""
    images, labels = validation
    labels = torch.as_tensor(labels).long().cpu()
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(
            f"validation needs as many labels as images (at least one), got {images.shape[0]} images "
            f"and {labels.shape[0]} labels"
        )
    device = next((p.device for p in method.parameters()), torch.device("cpu"))
    with private_rng(device):
        torch.manual_seed(seed)
        logits = predict_logits(method, images, samples, batch_size)
    return logits, labels


def temperature_record(logits: Tensor, labels: Tensor) -> dict[str, Any]:
    """Fit the temperature on validation logits [S, N, C]; {"temperature", "validation_size", "validation_nll"
    (T = 1), "validation_nll_scaled"}."""
    temperature = fit_temperature(logits, labels)
    return {
        "temperature": temperature,
        "validation_size": int(labels.shape[0]),
        "validation_nll": temperature_nll(logits, labels, 1.0),
        "validation_nll_scaled": temperature_nll(logits, labels, temperature),
    }


def fit_on_validation(
    method: DropoutMethod, validation: tuple[Tensor, Tensor], samples: int, batch_size: int, seed: int
) -> dict[str, Any]:
    """Fit the temperature on held-out (images [N, C, H, W], labels [N]); {"temperature", "validation_size",
    "validation_nll" (T = 1), "validation_nll_scaled"}. The masks come from a private RNG seeded by `seed`."""
    return temperature_record(*validation_logits(method, validation, samples, batch_size, seed))


def _at(tree: dict[str, Any], path: Sequence[str]) -> dict[str, Any]:
    for key in path:
        tree = tree.setdefault(key, {})
    return tree


class ConditionRecorder:
    """Writes each condition's numbers into a result (`results`) and, when a temperature was fitted (`ts`, the
    result's "ts" block holding "temperature"), the same numbers of the tempered predictive into `ts`.

    labels: the test labels [N] of the conditions (a condition with labels of its own passes them).
    conformal: split-conformal predictors by score name, calibrated on the validation predictive, for the result
        and (second, when `ts` is given) for the tempered predictive: each condition's coverage and mean set size
        go to the block's "conformal" section at the condition's path ("clean", ("shifts", shift, "<severity>")).
    """

    def __init__(
        self,
        results: dict[str, Any],
        labels: np.ndarray,
        ts: dict[str, Any] | None = None,
        conformal: Sequence[dict[str, ConformalClassifier]] = (),
    ) -> None:
        self.results, self.labels, self.ts = results, labels, ts
        self.conformal = list(conformal)

    def scaled(self, logits: Tensor) -> Tensor:
        """Logits divided by the fitted temperature (requires one)."""
        assert self.ts is not None
        return apply_temperature(logits, self.ts["temperature"])

    def _blocks(self) -> list[dict[str, Any]]:
        return [self.results] + ([self.ts] if self.ts is not None else [])

    def targets(self, logits: Tensor) -> list[tuple[dict[str, Any], Tensor]]:
        """(section, logits) pairs: the result with the logits, and "ts" with the tempered logits when fitted."""
        return [(self.results, logits)] + ([(self.ts, self.scaled(logits))] if self.ts is not None else [])

    def _sets(
        self,
        index: int,
        target: dict[str, Any],
        path: Sequence[str],
        summary: Predictive,
        labels: np.ndarray,
        stratified: bool = False,
    ) -> None:
        if index < len(self.conformal) and self.conformal[index]:
            probs = summary.probs.double().cpu().numpy()
            _at(target, ("conformal", *path[:-1]))[path[-1]] = {
                name: set_report(predictor.predict_sets(probs), labels, stratified)
                for name, predictor in self.conformal[index].items()
            }

    def open(self, *path: str) -> None:
        """An empty mapping at `path` of every target (a section filled later, listed even when left empty)."""
        for target in self._blocks():
            _at(target, path[:-1])[path[-1]] = {}

    def full(self, name: str, logits: Tensor) -> None:
        """METRICS, selective prediction and figure material of condition `name` ("clean", "random_rotation"), and
        the conformal sets' coverage, mean size and size-stratified coverage."""
        labels = self.labels
        for index, (target, condition_logits) in enumerate(self.targets(logits)):
            target[name], summary = condition_metrics(condition_logits, labels)
            target["figures"]["reliability"][name] = reliability_material(summary, labels)
            target["selective"][name], target["figures"]["risk_coverage"][name] = selective_report(summary, labels)
            self._sets(index, target, (name,), summary, labels, stratified=True)

    def metrics(self, path: Sequence[str], logits: Tensor, labels: np.ndarray | None = None) -> None:
        """METRICS (and conformal coverage and mean set size) of one condition at `path`, e.g. ("shifts", shift,
        "<severity>")."""
        labels = self.labels if labels is None else labels
        for index, (target, condition_logits) in enumerate(self.targets(logits)):
            _at(target, path[:-1])[path[-1]], summary = condition_metrics(condition_logits, labels)
            self._sets(index, target, path, summary, labels)

    def copy(self, path: Sequence[str], source: str) -> None:
        """The numbers of condition `source` again at `path` (a rotation by 0 degrees is the clean test set)."""
        for target in self._blocks():
            _at(target, path[:-1])[path[-1]] = dict(target[source])
            if source in target.get("conformal", {}):
                _at(target, ("conformal", *path[:-1]))[path[-1]] = {
                    name: {k: v for k, v in sets.items() if k != "by_size"}
                    for name, sets in target["conformal"][source].items()
                }
