"""Temperature scaling (Guo, Pleiss, Sun & Weinberger, ICML 2017, section 4.2), for any method's S-sample predictive.

One scalar T > 0 is fitted on held-out (validation) data by minimising the NLL of the predictive whose
sample s has logits z_s / T:

    NLL(T) = -(1/N) sum_n log( (1/S) sum_s softmax(z_{s,n} / T)[y_n] ),

which for S = 1 is Guo et al.'s objective. T > 1 softens over-confident predictions. The fit works on
cached logits (predict once, fit many times): `fit_temperature` evaluates NLL(T) in float64 on a grid of
log T, then refines the best grid cell with a bounded Brent search (scipy's `minimize_scalar`); the
objective is convex in 1/T for S = 1 and, in practice, unimodal for S > 1 (the grid guards against the
rare exception). For S = 1 scaling never changes the arg-max, so accuracy is unchanged; for S > 1 it can
move the arg-max of the mean softmax where samples disagree (rarely, and the accuracy is reported anew).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gflowout.eval.predictive import as_tensor, check_logits

__all__ = ["TEMPERATURE_BOUNDS", "apply_temperature", "fit_temperature", "temperature_nll"]

TEMPERATURE_BOUNDS: tuple[float, float] = (1e-2, 1e2)
_GRID_POINTS = 41  # log T steps of 0.23 over [0.01, 100]; Brent refines the best cell


def _check_labels(labels: Any, logits: Tensor) -> Tensor:
    labels = as_tensor(labels, "labels")
    if labels.dim() != 1 or labels.shape[0] != logits.shape[1]:
        raise ValueError(
            f"labels must be a vector of {logits.shape[1]} class indices (one per example of the logits "
            f"[samples, batch, classes] {tuple(logits.shape)}), got shape {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    classes = logits.shape[2]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise ValueError(
            f"labels must lie in 0..{classes - 1} (the logits have {classes} classes), found "
            f"{int(labels.min())}..{int(labels.max())}"
        )
    return labels.long().to(logits.device)


def temperature_nll(logits: Any, labels: Any, temperature: float) -> float:
    """NLL(T) of the S-sample predictive with every sample's logits [S, N, C] divided by `temperature` (float64)."""
    checked = check_logits(logits)
    return _nll(checked, _check_labels(labels, checked), math.log(float(temperature)))


def _nll(logits: Tensor, labels: Tensor, log_temperature: float) -> float:
    log_probs = torch.log_softmax(logits * math.exp(-log_temperature), dim=-1)
    picked = log_probs.gather(2, labels.view(1, -1, 1).expand(logits.shape[0], -1, 1)).squeeze(2)  # [S, N]
    log_predictive = torch.logsumexp(picked, dim=0) - math.log(logits.shape[0])
    return float(-log_predictive.mean())


def fit_temperature(logits: Any, labels: Any, bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The temperature T in `bounds` that minimises the validation NLL of the tempered S-sample predictive.

    Args:
        logits: per-sample logits [S, N, C] of the validation set (finite floats; torch or numpy).
        labels: class indices [N] in 0..C-1.
        bounds: the search interval of T (a result on a bound means the optimum may lie beyond it).
    Returns:
        T as a Python float. Raises ValueError on malformed input (shapes, NaN/inf logits, labels out of range,
        no examples).
    """
    checked = check_logits(logits)
    labels = _check_labels(labels, checked)
    if checked.shape[1] == 0:
        raise ValueError("fit_temperature needs at least one validation example, got none")
    low, high = (float(b) for b in bounds)
    if not 0 < low < high:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds!r}")
    from scipy.optimize import minimize_scalar

    grid = np.linspace(math.log(low), math.log(high), _GRID_POINTS)
    values = [_nll(checked, labels, float(g)) for g in grid]
    best = int(np.argmin(values))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    found = minimize_scalar(
        lambda g: _nll(checked, labels, float(g)), bounds=(lo, hi), method="bounded", options={"xatol": 1e-9}
    )
    log_temperature = float(found.x) if found.fun <= values[best] else float(grid[best])
    return math.exp(log_temperature)


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """Per-sample logits divided by T (the tempered predictive's logits), same shape and dtype."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite positive number, got {temperature!r}")
    return logits / temperature
