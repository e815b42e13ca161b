"""Raw material for a report's figures, kept small in a result file: reliability bins, OOD score histograms on
edges chosen from the run's scores, and ROC curves on a fixed false-positive-rate grid."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gflowout.eval.metrics import reliability_bins
from gflowout.eval.ood import roc_curve
from gflowout.eval.predictive import Predictive

HISTOGRAM_BINS = 30
ROC_GRID = np.linspace(0.0, 1.0, 51)
# Scores are shown as distances from a confident prediction: 1 - max probability (the negated max probability
# plus one), the entropy and the mutual information; all are >= 0 and pile up near 0 for in-distribution data.
SCORE_OFFSETS = {"max_probability": 1.0}


def reliability_material(summary: Predictive, labels: np.ndarray) -> dict[str, list[float]]:
    """15 equal-width confidence bins: {"edges" [16], "confidence" [15], "accuracy" [15], "count" [15]}."""
    bins = reliability_bins(summary.probs, torch.as_tensor(labels), bins=15)
    return {
        "edges": bins.edges.tolist(),
        "confidence": bins.confidence.tolist(),
        "accuracy": bins.accuracy.tolist(),
        "count": bins.count.tolist(),
    }


def histogram_edges(values: np.ndarray, score: str, bins: int = HISTOGRAM_BINS) -> tuple[np.ndarray, str]:
    """Histogram edges (in score units) chosen from the data, and their scale ("log" or "linear").

    The shown value (score + SCORE_OFFSETS[score]) is >= 0 and usually piles up near 0: when its positive
    values span more than two decades (0.5 % quantile to the maximum) the edges are log-spaced over that
    span, smaller values falling in the first bin; otherwise they are linear from the minimum to the maximum.
    """
    offset = SCORE_OFFSETS.get(score, 0.0)
    shown = np.asarray(values, dtype=np.float64) + offset
    positive = shown[shown > 0]
    if positive.size and positive.max() / max(np.quantile(positive, 0.005), 1e-300) > 100:
        low = max(float(np.quantile(positive, 0.005)), 1e-12)
        return np.geomspace(low, float(positive.max()), bins + 1) - offset, "log"
    low, high = float(shown.min()), float(shown.max())
    if high - low <= 0:  # every value equal (a deterministic net's mutual information is exactly 0)
        pad = max(abs(high) * 0.1, 1e-3)
        low, high = low - pad, high + pad
    return np.linspace(low, high, bins + 1) - offset, "linear"


def ood_material(scores_in: Tensor, scores_out: Tensor, score: str, classes: int) -> tuple[dict, dict]:
    """A histogram on edges chosen from this run's scores (in and out together; see `histogram_edges`) and
    the ROC curve on a fixed FPR grid, for one score. Reports pool seeds by re-binning onto common edges."""
    values_in, values_out = scores_in.double().numpy(), scores_out.double().numpy()
    edges, scale = histogram_edges(np.concatenate([values_in, values_out]), score)
    low, high = edges[0], edges[-1]
    hist_in = np.histogram(np.clip(values_in, low, high), edges)[0]
    hist_out = np.histogram(np.clip(values_out, low, high), edges)[0]
    roc = roc_curve(scores_in, scores_out)
    fpr, tpr = roc.fpr.numpy(), roc.tpr.numpy()
    last = np.searchsorted(fpr, ROC_GRID, side="right") - 1  # last ROC point with fpr <= grid value
    return (
        {"edges": edges.tolist(), "scale": scale, "in": hist_in.tolist(), "out": hist_out.tolist()},
        {"fpr": ROC_GRID.tolist(), "tpr": tpr[last].tolist()},
    )
