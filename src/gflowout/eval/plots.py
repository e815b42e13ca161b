"""Figures of a report (matplotlib, Agg backend: no display needed).

Every function takes plain pooled data (lists of numbers keyed by method), draws one figure and
saves it as a PNG at `path`. The data come from `gflowout.eval.report`, which pools the per-run
material of the result files (see `gflowout.eval.evaluate` for the schema).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

METRIC_LABELS = {
    "accuracy": "accuracy",
    "nll": "NLL",
    "brier": "Brier score",
    "ece15": "ECE (15 bins)",
    "ece10": "ECE (10 bins)",
}
SCORE_LABELS = {
    "max_probability": "max probability (negated)",
    "predictive_entropy": "predictive entropy",
    "mutual_information": "mutual information",
}
SELECTIVE_LABELS = {
    "max_probability": "max probability",
    "negative_entropy": "negative predictive entropy",
    "negative_mutual_information": "negative mutual information",
}

# One series: x values, means, standard errors (NaN where a single seed gives none).
Series = tuple[Sequence[float], Sequence[float], Sequence[float]]


def _save(figure: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _colours(methods: Sequence[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {method: cmap(i % 10) for i, method in enumerate(methods)}


def plot_reliability(per_method: Mapping[str, Mapping[str, Sequence[float]]], title: str, path: str | Path) -> Path:
    """Reliability diagrams, one panel per method: accuracy per confidence bin against the diagonal.

    per_method[method] = {"edges": [bins+1], "confidence": [bins], "accuracy": [bins], "count": [bins]};
    empty bins (count 0) are not drawn.
    """
    methods = list(per_method)
    figure, axes = plt.subplots(1, max(len(methods), 1), figsize=(3.2 * max(len(methods), 1), 3.2), squeeze=False)
    for axis, method in zip(axes[0], methods):
        bins = per_method[method]
        edges = np.asarray(bins["edges"], dtype=float)
        accuracy = np.asarray(bins["accuracy"], dtype=float)
        confidence = np.asarray(bins["confidence"], dtype=float)
        filled = np.asarray(bins["count"], dtype=float) > 0
        widths = np.diff(edges)
        axis.bar(edges[:-1][filled], accuracy[filled], width=widths[filled], align="edge",
                 edgecolor="black", color="tab:blue", alpha=0.7, label="accuracy")
        axis.bar(edges[:-1][filled], (confidence - accuracy)[filled], bottom=accuracy[filled], width=widths[filled],
                 align="edge", color="tab:red", alpha=0.3, label="gap to confidence")
        axis.plot([0, 1], [0, 1], "k--", linewidth=1)
        axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", title=method)
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(loc="upper left", fontsize=7)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def plot_metric_curves(
    per_metric: Mapping[str, Mapping[str, Series]], xlabel: str, title: str, path: str | Path
) -> Path:
    """One panel per metric, one line per method (mean with standard-error bars) against x.

    per_metric[metric][method] = (x, means, standard errors).
    """
    metrics = list(per_metric)
    methods = sorted({m for series in per_metric.values() for m in series})
    colours = _colours(methods)
    figure, axes = plt.subplots(1, max(len(metrics), 1), figsize=(3.6 * max(len(metrics), 1), 3.2), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for method, (x, mean, se) in per_metric[metric].items():
            se = np.nan_to_num(np.asarray(se, dtype=float))
            axis.errorbar(x, mean, yerr=se, marker="o", markersize=3, capsize=2, label=method, color=colours[method])
        axis.set(xlabel=xlabel, ylabel=METRIC_LABELS.get(metric, metric))
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def plot_shift_grid(per_shift: Mapping[str, Mapping[str, Series]], metric: str, title: str, path: str | Path) -> Path:
    """A grid of small panels, one per shift: `metric` against severity, one line per method."""
    shifts = list(per_shift)
    columns = min(5, max(len(shifts), 1))
    rows = max(1, -(-len(shifts) // columns))
    methods = sorted({m for series in per_shift.values() for m in series})
    colours = _colours(methods)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.3 * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index >= len(shifts):
            axis.axis("off")
            continue
        shift = shifts[index]
        for method, (x, mean, se) in per_shift[shift].items():
            axis.errorbar(x, mean, yerr=np.nan_to_num(np.asarray(se, dtype=float)), marker="o", markersize=2,
                          capsize=1, label=method, color=colours[method])
        axis.set_title(shift, fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6)
    figure.suptitle(f"{title}: {METRIC_LABELS.get(metric, metric)} vs severity", fontsize=10)
    return _save(figure, path)


def plot_ood_histograms(
    per_method: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]], title: str, path: str | Path
) -> Path:
    """Histograms of each OOD score, in-distribution against OOD: rows methods, columns scores.

    per_method[method][score] = {"edges": [bins+1], "in": [bins] counts, "out": [bins] counts}.
    Counts are normalised to densities so sets of different sizes compare.
    """
    methods = list(per_method)
    scores = sorted({s for hists in per_method.values() for s in hists})
    figure, axes = plt.subplots(max(len(methods), 1), max(len(scores), 1),
                                figsize=(3.0 * max(len(scores), 1), 2.2 * max(len(methods), 1)), squeeze=False)
    for row, method in enumerate(methods):
        for column, score in enumerate(scores):
            axis = axes[row][column]
            hist = per_method[method].get(score)
            if hist is None:
                axis.axis("off")
                continue
            edges = np.asarray(hist["edges"], dtype=float)
            for key, colour, label in (("in", "tab:blue", "in-distribution"), ("out", "tab:orange", "OOD")):
                counts = np.asarray(hist[key], dtype=float)
                density = counts / max(counts.sum(), 1.0)
                axis.stairs(density, edges, fill=True, alpha=0.5, color=colour, label=label)
            axis.set_title(f"{method}: {SCORE_LABELS.get(score, score)}", fontsize=8)
            axis.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def plot_roc(per_method: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]], title: str, path: str | Path) -> Path:
    """ROC curves of OOD detection, one panel per score, one line per method.

    per_method[method][score] = {"fpr": [points], "tpr": [points]} (OOD is the positive class).
    """
    methods = list(per_method)
    scores = sorted({s for rocs in per_method.values() for s in rocs})
    colours = _colours(methods)
    figure, axes = plt.subplots(1, max(len(scores), 1), figsize=(3.3 * max(len(scores), 1), 3.2), squeeze=False)
    for axis, score in zip(axes[0], scores):
        for method in methods:
            roc = per_method[method].get(score)
            if roc is not None:
                axis.plot(roc["fpr"], roc["tpr"], label=method, color=colours[method])
        axis.plot([0, 1], [0, 1], "k:", linewidth=1)
        axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="false positive rate", title=SCORE_LABELS.get(score, score))
    axes[0][0].set_ylabel("true positive rate")
    axes[0][0].legend(fontsize=7, loc="lower right")
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def plot_risk_coverage(per_method: Mapping[str, tuple[Mapping[str, Series], int]], title: str, path: str | Path) -> Path:
    """Risk-coverage curves of selective prediction, one panel per confidence score, one line per method (mean over
    its seeds, a standard-error band where there are several; the legend gives the seed count).

    per_method[method] = ({score: (coverages, mean risks, standard errors)}, number of seeds).
    """
    methods = list(per_method)
    scores = sorted({s for curves, _ in per_method.values() for s in curves})
    colours = _colours(methods)
    figure, axes = plt.subplots(1, max(len(scores), 1), figsize=(3.4 * max(len(scores), 1), 3.2), squeeze=False)
    for axis, score in zip(axes[0], scores):
        for method in methods:
            curves, seeds = per_method[method]
            if score not in curves:
                continue
            coverage, mean, se = (np.asarray(v, dtype=float) for v in curves[score])
            style = "--" if method.endswith(" + TS") else "-"
            axis.plot(coverage, mean, style, color=colours[method], label=f"{method} ({seeds} seed{'s' * (seeds > 1)})")
            band = np.nan_to_num(se)
            if band.any():
                axis.fill_between(coverage, mean - band, mean + band, color=colours[method], alpha=0.2)
        axis.set(xlim=(0, 1), xlabel="coverage", title=SELECTIVE_LABELS.get(score, score))
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("risk (error rate among answered)")
    axes[0][0].legend(fontsize=6, loc="upper left")
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)
