"""Metrics of a binary predictive distribution, as the paper's eICU task reports them (macro-F1, precision,
recall, balanced accuracy) plus NLL, ECE and AUROC.

Inputs: probabilities [N, 2] (rows sum to 1) and labels [N] in {0, 1}. The decision is argmax (class 1
when p1 > 0.5; a tie goes to class 0, as torch.argmax). Precision, recall and F1 are macro averages over
the two classes (each class in turn the positive one; a class never predicted has precision 0, as
scikit-learn's zero_division=0); `sensitivity` and `specificity` are the recall of class 1 and of class 0.
AUROC ranks p1 (ties count one half).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gflowout.eval.metrics import classification_metrics
from gflowout.eval.ood import auroc


def _per_class(predicted: np.ndarray, labels: np.ndarray, positive: int) -> tuple[float, float, float]:
    """(precision, recall, F1) of class `positive`, 0 where a denominator is 0."""
    true_positive = float(np.sum((predicted == positive) & (labels == positive)))
    predicted_positive = float(np.sum(predicted == positive))
    actual_positive = float(np.sum(labels == positive))
    precision = true_positive / predicted_positive if predicted_positive else 0.0
    recall = true_positive / actual_positive if actual_positive else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def binary_metrics(probs: Any, labels: Any, bins: int = 15) -> dict[str, float]:
    """{"macro_f1", "balanced_accuracy", "precision", "recall", "sensitivity", "specificity", "auroc",
    "accuracy", "nll", "brier", "ece", "positive_rate", "count"} of probs [N, 2] against labels [N]."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if probs.ndim != 2 or probs.shape[1] != 2:
        raise ValueError(f"binary metrics need probabilities [N, 2], got shape {probs.shape}")
    if labels.shape != (probs.shape[0],) or not np.all(np.isin(labels, (0, 1))):
        raise ValueError(f"labels must be a vector of {probs.shape[0]} values in {{0, 1}}")
    predicted = (probs[:, 1] > probs[:, 0]).astype(np.int64)
    per_class = [_per_class(predicted, labels, c) for c in (0, 1)]
    metrics = classification_metrics(probs, labels, bins=bins)
    both = bool(labels.min() == 0 and labels.max() == 1)
    metrics.update(
        macro_f1=float(np.mean([c[2] for c in per_class])),
        precision=float(np.mean([c[0] for c in per_class])),
        recall=float(np.mean([c[1] for c in per_class])),
        balanced_accuracy=float(np.mean([c[1] for c in per_class])),
        sensitivity=per_class[1][1],
        specificity=per_class[0][1],
        auroc=auroc(probs[labels == 0, 1], probs[labels == 1, 1]) if both else float("nan"),
        positive_rate=float(labels.mean()),
        count=int(labels.shape[0]),
    )
    return metrics
