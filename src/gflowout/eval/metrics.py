"""Classification metrics of a predictive distribution: accuracy, NLL, Brier score, ECE, reliability bins.

Inputs: probabilities [N, C] (rows sum to 1; for an S-sample method use `predictive.mean_probs(logits)`)
and integer labels [N] in [0, C). Torch tensors (CPU or GPU) or numpy arrays. Scalars come back as Python
floats. Conventions:

- prediction = argmax of probs (the first class on a tie, as torch.argmax);
- NLL = mean over examples of -log p(label), with p clamped below at `eps` (default 1e-12, so one
  confidently wrong example costs at most 27.6 nats instead of inf); pass `log_probs` to skip the clamp;
- Brier = mean over examples of sum over classes (p_c - 1[c = label])^2: the multi-class Brier score of
  Brier (1950), in [0, 2]; it is twice the "one-vs-rest averaged" variant some libraries report for 2 classes;
- ECE (Guo et al. 2017): confidence = max prob; `bins` equal-width bins with edges torch.linspace(0, 1,
  bins + 1), each bin right-closed (lo, hi] and the first one [0, hi]; ECE = sum_b (n_b / N) |acc_b - conf_b|.
  15 bins is our default, the paper used 10. (torchmetrics' binning is left-closed [lo, hi); the two agree
  except for confidences that fall exactly on an edge.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gflowout.eval.predictive import as_tensor

__all__ = [
    "ReliabilityBins",
    "accuracy",
    "brier",
    "check_labels",
    "check_probs",
    "classification_metrics",
    "ece",
    "nll",
    "reliability_bins",
]

SUM_TOLERANCE = 1e-4  # float32 softmax rows sum to 1 within ~1e-6; logits passed by mistake fail this


def check_probs(probs: Any, name: str = "probs") -> Tensor:
    """Validate probabilities [N, C] (N >= 1, values in [0, 1], rows summing to 1); return them as float64."""
    probs = as_tensor(probs, name)
    if probs.dim() != 2:
        hint = " (per-sample [S, B, C]? reduce with gflowout.eval.predictive.mean_probs)" if probs.dim() == 3 else ""
        raise ValueError(f"{name} must have shape [examples, classes], got {tuple(probs.shape)}{hint}")
    if not probs.is_floating_point():
        raise ValueError(f"{name} must be floating-point probabilities, got dtype {probs.dtype}")
    if probs.shape[0] < 1 or probs.shape[1] < 2:
        raise ValueError(f"{name} needs at least 1 example and 2 classes, got shape {tuple(probs.shape)}")
    # a row of C probabilities rounded to the input's precision sums to 1 within about C ulps (float16, bf16)
    tolerance = max(SUM_TOLERANCE, 2 * probs.shape[1] * torch.finfo(probs.dtype).eps)
    probs = probs.detach().to(torch.float64)
    if not bool(torch.isfinite(probs).all()):
        raise ValueError(f"{name} has NaN or inf entries; check the model's outputs")
    if bool((probs < 0).any()) or bool((probs > 1).any()):
        raise ValueError(
            f"{name} has values outside [0, 1] (min {float(probs.min()):.4g}, max {float(probs.max()):.4g}); "
            "pass softmax probabilities, not logits"
        )
    error = (probs.sum(dim=1) - 1).abs()
    worst = int(error.argmax())
    if float(error[worst]) > tolerance:
        raise ValueError(
            f"{name} rows must sum to 1 (within {tolerance:.3g}); row {worst} sums to {float(probs[worst].sum()):.6g}. "
            "Pass softmax probabilities (gflowout.eval.predictive.mean_probs turns logits [S, B, C] into them)"
        )
    if tolerance > SUM_TOLERANCE:  # half-precision rows: renormalised in float64, so later checks and sums see 1
        probs = probs / probs.sum(dim=1, keepdim=True)
    return probs


def check_labels(labels: Any, examples: int, classes: int, name: str = "labels") -> Tensor:
    """Validate integer labels [examples] in [0, classes); return them as int64."""
    labels = as_tensor(labels, name)
    if labels.dim() != 1 or labels.shape[0] != examples:
        raise ValueError(f"{name} must have shape [{examples}] to match the predictions, got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must be integer class indices, got dtype {labels.dtype}")
    labels = labels.to(torch.int64)
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise ValueError(f"{name} must lie in [0, {classes}) for {classes} classes, found range [{low}, {high}]")
    return labels


def _checked(probs: Any, labels: Any) -> tuple[Tensor, Tensor]:
    probs = check_probs(probs)
    labels = check_labels(labels, probs.shape[0], probs.shape[1]).to(probs.device)
    return probs, labels


def accuracy(probs: Any, labels: Any) -> float:
    """Fraction of examples whose argmax class equals the label."""
    probs, labels = _checked(probs, labels)
    return float((probs.argmax(dim=1) == labels).double().mean())


def nll(probs: Any, labels: Any, *, eps: float = 1e-12, log_probs: Any | None = None) -> float:
    """Mean negative log-likelihood of the labels, in nats.

    From probs [N, C] with p(label) clamped below at `eps`; or, when `log_probs` [N, C] is given (for example
    `predictive.log_mean_probs(logits)`), exactly from it and `probs` is only used for validation.
    """
    probs, labels = _checked(probs, labels)
    if log_probs is not None:
        log_probs = as_tensor(log_probs, "log_probs").to(device=probs.device, dtype=torch.float64)
        if log_probs.shape != probs.shape:
            raise ValueError(
                f"log_probs must have the shape of probs {tuple(probs.shape)}, got {tuple(log_probs.shape)}"
            )
        picked = log_probs.gather(1, labels[:, None]).squeeze(1)
        if bool(torch.isnan(picked).any()) or bool((picked > 1e-9).any()):
            raise ValueError("log_probs must hold log-probabilities (<= 0, -inf allowed); found NaN or positive values")
        return float(-picked.mean())
    if not eps > 0:
        raise ValueError(f"eps must be > 0 so that log(p) stays finite, got {eps}")
    picked = probs.gather(1, labels[:, None]).squeeze(1)
    return float(-picked.clamp_min(eps).log().mean())


def brier(probs: Any, labels: Any) -> float:
    """Multi-class Brier score: mean over examples of sum_c (p_c - onehot_c)^2, in [0, 2]."""
    probs, labels = _checked(probs, labels)
    onehot = torch.nn.functional.one_hot(labels, probs.shape[1]).to(probs.dtype)
    return float(((probs - onehot) ** 2).sum(dim=1).mean())


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin summary for a reliability diagram; tensors are float64 on CPU.

    edges [bins + 1]; confidence and accuracy [bins]: mean max-prob and accuracy of the examples in each
    bin (NaN where a bin is empty, so plots skip it); count [bins]: examples per bin (int64).
    """

    edges: Tensor
    confidence: Tensor
    accuracy: Tensor
    count: Tensor

    @property
    def ece(self) -> float:
        """Expected calibration error: sum over non-empty bins of (count / N) |accuracy - confidence|."""
        filled = self.count > 0
        weights = self.count[filled].double() / self.count.sum()
        return float((weights * (self.accuracy[filled] - self.confidence[filled]).abs()).sum())


def _check_bins(bins: int) -> int:
    if isinstance(bins, bool) or int(bins) != bins or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    return int(bins)


def reliability_bins(probs: Any, labels: Any, bins: int = 15) -> ReliabilityBins:
    """Bin examples by confidence (equal-width, right-closed bins) and summarise each bin."""
    bins = _check_bins(bins)
    probs, labels = _checked(probs, labels)
    confidence, prediction = probs.max(dim=1)
    correct = (prediction == labels).double()
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64, device=probs.device)
    # bucketize(right=False) over the inner edges: index i means edges[i] < c <= edges[i + 1].
    index = torch.bucketize(confidence, edges[1:-1], right=False)
    count = torch.zeros(bins, dtype=torch.float64, device=probs.device).index_add_(
        0, index, torch.ones_like(confidence)
    )
    conf_sum = torch.zeros_like(count).index_add_(0, index, confidence)
    acc_sum = torch.zeros_like(count).index_add_(0, index, correct)
    empty = count == 0
    safe = count.clamp_min(1)
    nan = torch.full_like(count, float("nan"))
    return ReliabilityBins(
        edges=edges.cpu(),
        confidence=torch.where(empty, nan, conf_sum / safe).cpu(),
        accuracy=torch.where(empty, nan, acc_sum / safe).cpu(),
        count=count.to(torch.int64).cpu(),
    )


def ece(probs: Any, labels: Any, bins: int = 15) -> float:
    """Expected calibration error with `bins` equal-width confidence bins (L1 norm, weighted by bin size)."""
    return reliability_bins(probs, labels, bins).ece


def classification_metrics(
    probs: Any, labels: Any, bins: int = 15, *, log_probs: Any | None = None
) -> dict[str, float]:
    """{"accuracy", "nll", "brier", "ece"} of probs [N, C] against labels [N] (see the module conventions).

    Pass `log_probs` (for example `predictive.log_mean_probs(logits)`) for an unclamped NLL.
    """
    probs, labels = _checked(probs, labels)
    return {
        "accuracy": accuracy(probs, labels),
        "nll": nll(probs, labels, log_probs=log_probs),
        "brier": brier(probs, labels),
        "ece": ece(probs, labels, bins),
    }
