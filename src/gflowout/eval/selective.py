"""Selective prediction: the risk-coverage curve, its area (AURC) and the accuracy at a fixed coverage.

A selective classifier answers only where its confidence is at least a threshold t and abstains
elsewhere (El-Yaniv & Wiener, JMLR 2010; Geifman & El-Yaniv, NeurIPS 2017). At threshold t the
coverage is the fraction of examples answered and the (selective) risk is the error rate among them.

Conventions (inputs: a confidence per example, HIGHER = MORE confident, and whether its prediction is
correct):
- The curve has one point per DISTINCT confidence c_1 > c_2 > ... > c_K: at threshold c_k every example
  with confidence >= c_k is answered. Tied examples are admitted together, so no result depends on how
  ties are ordered; the last point has coverage 1 and the overall error rate.
- AURC = sum_k (coverage_k - coverage_{k-1}) * risk_k with coverage_0 = 0: the area under the
  right-continuous step curve. Without ties it is (1/N) sum_{n=1..N} risk(n), risk(n) the error rate of
  the n most confident examples: the empirical AURC of Geifman, Uziel & El-Yaniv (ICLR 2019). Lower is
  better. (torch-uncertainty's `AURC` integrates the same points with the trapezoid rule over
  [1/N, 1] and rescales by 1 / (1 - 1/N): it differs from ours by O(1/N); tests check the exact relation.)
- accuracy at coverage c = 1 - risk at the first curve point whose coverage is >= c (the highest
  threshold answering at least a fraction c). Without ties: the accuracy of the ceil(c N) most confident.
Confidence scores of an S-sample predictive (`confidence_scores`): the max probability of the mean
softmax, the negative predictive entropy and the negative mutual information.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from gflowout.eval.predictive import Predictive, as_tensor

__all__ = [
    "COVERAGES",
    "CURVE_GRID",
    "SELECTIVE_SCORES",
    "RiskCoverage",
    "accuracy_at_coverage",
    "aurc",
    "confidence_scores",
    "risk_coverage_curve",
    "risk_on_grid",
    "selective_metrics",
    "selective_report",
]

SELECTIVE_SCORES: tuple[str, ...] = ("max_probability", "negative_entropy", "negative_mutual_information")
COVERAGES: tuple[float, ...] = (0.90, 0.95, 0.99)
# the coverages at which a result file keeps the curve (for figures that pool seeds): 0.02, 0.04, ..., 1.0
CURVE_GRID: tuple[float, ...] = tuple(round(0.02 * k, 2) for k in range(1, 51))


class RiskCoverage(NamedTuple):
    """The risk-coverage curve, one point per distinct confidence, in DESCENDING threshold order (coverage rises)."""

    thresholds: Tensor
    coverage: Tensor
    risk: Tensor


def _check(confidence: Any, correct: Any) -> tuple[Tensor, Tensor]:
    confidence, correct = as_tensor(confidence, "confidence"), as_tensor(correct, "correct")
    if confidence.dim() != 1 or correct.shape != confidence.shape:
        raise ValueError(
            f"confidence and correct must be vectors of one length (one entry per example), got shapes "
            f"{tuple(confidence.shape)} and {tuple(correct.shape)}"
        )
    if confidence.numel() == 0:
        raise ValueError("selective prediction needs at least one example, got none")
    confidence = confidence.detach().to(torch.float64)
    if not bool(torch.isfinite(confidence).all()):
        raise ValueError("confidence has NaN or inf values; check the model's outputs")
    if correct.dtype != torch.bool and not bool(((correct == 0) | (correct == 1)).all()):
        raise ValueError("correct must hold booleans or 0/1 values")
    return confidence, correct.detach().to(torch.float64).to(confidence.device)


def risk_coverage_curve(confidence: Any, correct: Any) -> RiskCoverage:
    """The risk-coverage curve of confidences [N] and correctness [N] (bool or 0/1); see the module's conventions."""
    confidence, correct = _check(confidence, correct)
    distinct, inverse = torch.unique(confidence, sorted=True, return_inverse=True)  # ascending
    counts = torch.zeros_like(distinct).index_add_(0, inverse, torch.ones_like(confidence)).flip(0)
    errors = torch.zeros_like(distinct).index_add_(0, inverse, 1.0 - correct).flip(0)
    answered = counts.cumsum(0)
    return RiskCoverage(
        thresholds=distinct.flip(0), coverage=answered / confidence.numel(), risk=errors.cumsum(0) / answered
    )


def aurc(confidence: Any, correct: Any) -> float:
    """Area under the risk-coverage step curve (lower is better); see the module's conventions."""
    curve = risk_coverage_curve(confidence, correct)
    widths = torch.diff(curve.coverage, prepend=curve.coverage.new_zeros(1))
    return float((widths * curve.risk).sum())


def _risk_at(curve: RiskCoverage, coverage: float) -> float:
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage!r}")
    # the first point whose coverage reaches `coverage` (a tolerance for 0.9 * N in binary floating point)
    index = int(
        torch.searchsorted(
            curve.coverage, torch.tensor([coverage - 1e-12], dtype=curve.coverage.dtype, device=curve.coverage.device)
        )
    )
    return float(curve.risk[min(index, len(curve.risk) - 1)])


def accuracy_at_coverage(confidence: Any, correct: Any, coverage: float) -> float:
    """Accuracy among the examples answered at the highest threshold that answers at least a fraction `coverage`."""
    return 1.0 - _risk_at(risk_coverage_curve(confidence, correct), coverage)


def risk_on_grid(curve: RiskCoverage, grid: Sequence[float] = CURVE_GRID) -> list[float]:
    """The curve's risk at each coverage of `grid` (the first point reaching it), for figures that pool seeds."""
    return [_risk_at(curve, float(c)) for c in grid]


def selective_metrics(confidence: Any, correct: Any, coverages: Sequence[float] = COVERAGES) -> dict[str, float]:
    """{"aurc", "accuracy_at_90", "accuracy_at_95", "accuracy_at_99"} (the keys follow `coverages`)."""
    curve = risk_coverage_curve(confidence, correct)
    widths = torch.diff(curve.coverage, prepend=curve.coverage.new_zeros(1))
    metrics = {"aurc": float((widths * curve.risk).sum())}
    for coverage in coverages:
        metrics[f"accuracy_at_{round(coverage * 100):d}"] = 1.0 - _risk_at(curve, coverage)
    return metrics


def confidence_scores(summary: Predictive) -> dict[str, Tensor]:
    """The confidences [N] of `SELECTIVE_SCORES` from an S-sample predictive (higher = more confident)."""
    return {
        "max_probability": summary.max_probability,
        "negative_entropy": -summary.predictive_entropy,
        "negative_mutual_information": -summary.mutual_information,
    }


def selective_report(
    summary: Predictive, labels: Any
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, list]]]:
    """Per score: `selective_metrics`, and the figure material {"coverage": CURVE_GRID, "risk": [50]}."""
    labels_t = as_tensor(labels, "labels").to(summary.prediction.device)
    correct = summary.prediction == labels_t
    metrics: dict[str, dict[str, float]] = {}
    curves: dict[str, dict[str, list]] = {}
    for score, confidence in confidence_scores(summary).items():
        metrics[score] = selective_metrics(confidence, correct)
        curves[score] = {"coverage": list(CURVE_GRID), "risk": risk_on_grid(risk_coverage_curve(confidence, correct))}
    return metrics, curves
