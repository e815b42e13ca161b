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
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from gflowout.eval.aggregate import (  # a temperature-scaled row: its method's colour, dashed (hatched bar)
    TS_SUFFIX,
    is_temperature_method,
)

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


def _save(figure: plt.Figure, path: str | Path, tight: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        figure.tight_layout()
    figure.savefig(path, dpi=90, bbox_inches="tight")  # "tight": a legend beside the panels is kept in the file
    plt.close(figure)
    return path


# One colour per method in every figure of a report; other names take the remaining colours in turn.
METHOD_COLOURS = {
    "gflowout": 3,
    "id_gflowout": 1,
    "mc_dropout": 0,
    "concrete": 2,
    "contextual": 4,
    "none": 7,
    "ensemble": 5,
}


def _colours(methods: Sequence[str]) -> dict[str, tuple]:
    """One colour per method; "METHOD + TS" takes METHOD's colour (its line style tells them apart, `_dashes`),
    so that a report with every method and its temperature-scaled twin never runs out of colours."""
    cmap = plt.get_cmap("tab10")
    spare = iter([i for i in range(10) if i not in METHOD_COLOURS.values()] * 10)
    bases = dict.fromkeys(method.removesuffix(TS_SUFFIX) for method in methods)
    base_colour = {base: cmap(METHOD_COLOURS[base] if base in METHOD_COLOURS else next(spare)) for base in bases}
    return {method: base_colour[method.removesuffix(TS_SUFFIX)] for method in methods}


def _dashes(method: str) -> str:
    """The line style of a method's series: dashed for a temperature-scaled row, solid otherwise."""
    return "--" if is_temperature_method(method) else "-"


def _legend_beside(axis: plt.Axes) -> None:
    """The legend to the right of `axis`, outside the data (a dozen methods would cover a panel's lines)."""
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def pooled_ece(bins: Mapping[str, Sequence[float]]) -> float:
    """ECE of binned material: sum over bins of count / total x |accuracy - confidence| (empty bins weigh 0)."""
    counts = np.asarray(bins["count"], dtype=float)
    gaps = np.abs(
        np.nan_to_num(np.asarray(bins["accuracy"], dtype=float))
        - np.nan_to_num(np.asarray(bins["confidence"], dtype=float))
    )
    return float((counts * gaps).sum() / counts.sum()) if counts.sum() > 0 else float("nan")


def plot_reliability(per_method: Mapping[str, Mapping[str, Sequence[float]]], title: str, path: str | Path) -> Path:
    """Reliability diagrams, one panel per method (three to a row): accuracy per confidence bin against the
    diagonal (top) and the number of test points in each bin on a log scale (bottom); the ECE in each title.

    per_method[method] = {"edges": [bins+1], "confidence": [bins], "accuracy": [bins], "count": [bins]} and
    optionally "ece" (the number to print; by default the ECE of these bins); empty bins are not drawn.
    """
    methods = list(per_method)
    columns = min(max(len(methods), 1), 3)
    rows = -(-max(len(methods), 1) // columns)
    figure = plt.figure(figsize=(3.3 * columns, 4.6 * rows))
    grid = figure.add_gridspec(rows, columns)
    for index, method in enumerate(methods):
        row, column = divmod(index, columns)
        cell = grid[row, column].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.08)
        axis = figure.add_subplot(cell[0])
        count_axis = figure.add_subplot(cell[1], sharex=axis)
        axis.tick_params(labelbottom=False)
        bins = per_method[method]
        edges = np.asarray(bins["edges"], dtype=float)
        accuracy = np.nan_to_num(np.asarray(bins["accuracy"], dtype=float))
        confidence = np.nan_to_num(np.asarray(bins["confidence"], dtype=float))
        counts = np.asarray(bins["count"], dtype=float)
        filled = counts > 0
        widths = np.diff(edges)
        axis.bar(
            edges[:-1][filled],
            accuracy[filled],
            width=widths[filled],
            align="edge",
            edgecolor="black",
            color="tab:blue",
            alpha=0.7,
            label="accuracy",
        )
        axis.bar(
            edges[:-1][filled],
            (confidence - accuracy)[filled],
            bottom=accuracy[filled],
            width=widths[filled],
            align="edge",
            color="tab:red",
            alpha=0.3,
            label="gap to confidence",
        )
        axis.plot([0, 1], [0, 1], "k--", linewidth=1)
        ece = bins.get("ece", pooled_ece(bins))
        axis.set(xlim=(0, 1), ylim=(0, 1), title=f"{method}\nECE (15 bins) {float(ece):.4f}")  # type: ignore[arg-type]  # "ece" holds one number
        axis.title.set_fontsize(8)
        axis.tick_params(labelsize=7)
        count_axis.bar(
            edges[:-1][filled], counts[filled], width=widths[filled], align="edge", color="grey", edgecolor="black"
        )
        count_axis.set_yscale("log")
        count_axis.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, numticks=4))
        count_axis.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        if filled.any():
            count_axis.set_ylim(0.7, counts.max() * 2.0)
        count_axis.set_xlabel("confidence", fontsize=8)
        count_axis.tick_params(labelsize=7)
        if column == 0:
            axis.set_ylabel("accuracy", fontsize=8)
            count_axis.set_ylabel("points per bin", fontsize=8)
        if index == 0:
            axis.legend(loc="upper left", fontsize=7)
    figure.tight_layout()
    figure.suptitle(title, fontsize=10, y=1.0, va="bottom")  # above the panels; the saved bounding box keeps it
    return _save(figure, path, tight=False)


def _single_x(series: Mapping[str, Series]) -> bool:
    return bool(series) and all(len(x) == 1 for x, _, _ in series.values())


def _bars(axis: plt.Axes, series: Mapping[str, Series], colours: Mapping[str, tuple]) -> None:
    """One bar per method (mean with a standard-error bar) for series that have a single x value."""
    methods = list(series)
    for index, method in enumerate(methods):
        _, mean, se = series[method]
        error = np.nan_to_num(np.asarray(se, dtype=float))
        axis.bar(
            index,
            mean[0],
            yerr=error[0] if error[0] > 0 else None,
            capsize=3,
            color=colours[method],
            hatch="//" if is_temperature_method(method) else None,
            label=method,
            edgecolor="black",
            linewidth=0.5,
        )
    axis.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=7)
    ends = [
        (m - e, m + e)
        for _, mean, se in series.values()
        for m, e in zip(mean, np.nan_to_num(np.asarray(se, float)))
        if m is not None and np.isfinite(m)
    ]
    if ends:  # zoom on the values (error bars included): bars from 0 would hide differences of a fraction of a percent
        low, high = min(e[0] for e in ends), max(e[1] for e in ends)
        pad = max((high - low) * 0.5, abs(high) * 0.02, 1e-6)
        axis.set_ylim(max(low - pad, 0.0) if low >= 0 else low - pad, high + pad)


def plot_metric_curves(
    per_metric: Mapping[str, Mapping[str, Series]],
    xlabel: str,
    title: str,
    path: str | Path,
    reference: Mapping[str, tuple[float, str]] | None = None,
) -> Path:
    """One panel per metric, one line per method (mean with standard-error bars) against x; a panel whose
    series have a single x value draws one bar per method instead.

    per_metric[metric][method] = (x, means, standard errors). reference: {metric: (y, label)}, a dashed horizontal
    line on that metric's panel (e.g. the 1 - alpha a conformal coverage is guaranteed on exchangeable data).
    """
    metrics = list(per_metric)
    methods = sorted({m for series in per_metric.values() for m in series})
    colours = _colours(methods)
    figure, axes = plt.subplots(1, max(len(metrics), 1), figsize=(3.6 * max(len(metrics), 1), 3.2), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        if _single_x(per_metric[metric]):  # one severity / angle: bars, not one dot per method on an axis
            _bars(axis, per_metric[metric], colours)
            x_value = next(iter(per_metric[metric].values()))[0][0]
            axis.set(xlabel=f"{xlabel} {x_value:g}", ylabel=METRIC_LABELS.get(metric, metric))
            axis.grid(alpha=0.3, axis="y")
            continue
        for method, (x, mean, se) in per_metric[metric].items():
            se = np.nan_to_num(np.asarray(se, dtype=float))
            line = {"label": method, "color": colours[method], "linestyle": _dashes(method)}
            axis.errorbar(x, mean, yerr=se, marker="o", markersize=3, capsize=2, **line)
        axis.set(xlabel=xlabel, ylabel=METRIC_LABELS.get(metric, metric))
        axis.grid(alpha=0.3)
    for axis, metric in zip(axes[0], metrics):
        if reference and metric in reference:
            axis.axhline(reference[metric][0], color="black", linestyle="--", linewidth=1, label=reference[metric][1])
    if metrics and not _single_x(per_metric[metrics[0]]):
        _legend_beside(axes[0][-1])
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def plot_shift_grid(per_shift: Mapping[str, Mapping[str, Series]], metric: str, title: str, path: str | Path) -> Path:
    """A grid of small panels, one per shift: `metric` against severity, one line per method."""
    shifts = list(per_shift)
    columns = min(5, max(len(shifts), 1))
    rows = max(1, -(-len(shifts) // columns))
    methods = sorted({m for series in per_shift.values() for m in series})
    colours = _colours(methods)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.5 * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index >= len(shifts):
            axis.axis("off")
            continue
        shift = shifts[index]
        if _single_x(per_shift[shift]):  # one severity: bars
            _bars(axis, per_shift[shift], colours)
            severity = next(iter(per_shift[shift].values()))[0][0]
            axis.set_title(f"{shift} (severity {severity:g})", fontsize=8)
            axis.tick_params(labelsize=7)
            axis.grid(alpha=0.3, axis="y")
            continue
        for method, (x, mean, se) in per_shift[shift].items():
            line = {"label": method, "color": colours[method], "linestyle": _dashes(method)}
            error = np.nan_to_num(np.asarray(se, dtype=float))
            axis.errorbar(x, mean, yerr=error, marker="o", markersize=2, capsize=1, **line)
        axis.set_title(shift, fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    handles = {label: handle for axis in axes.flat for handle, label in zip(*axis.get_legend_handles_labels())}
    figure.legend(
        list(handles.values()),
        list(handles),
        fontsize=7,
        loc="lower center",
        ncol=max(1, min(len(handles), 2 * columns)),
        bbox_to_anchor=(0.5, 0.0),
    )
    figure.suptitle(f"{title}: {METRIC_LABELS.get(metric, metric)} vs severity", fontsize=10)
    legend_rows = -(-len(handles) // max(1, min(len(handles), 2 * columns)))
    figure.tight_layout(rect=(0, min(0.3, 0.05 * legend_rows / rows + 0.03), 1, 1))
    return _save(figure, path, tight=False)


# Each score is shown as a distance from a confident prediction (>= 0): the negated max probability plus one.
SCORE_SHOWN = {
    "max_probability": ("1 − max probability", 1.0),
    "predictive_entropy": ("predictive entropy", 0.0),
    "mutual_information": ("mutual information", 0.0),
}


def plot_ood_histograms(
    per_method: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]], title: str, path: str | Path
) -> Path:
    """Histograms of each OOD score, in-distribution against OOD: rows methods, columns scores.

    per_method[method][score] = {"edges": [bins+1], "in": [bins] counts, "out": [bins] counts} and optionally
    "scale" ("log": log-spaced edges, drawn on a log axis). Each set's counts are normalised to fractions so
    sets of different sizes compare. Histograms without a "scale" (fixed full-range bins of older results) are
    cut to their occupied bins, with a log y axis when one bin holds most of a set.
    """
    methods = list(per_method)
    scores = sorted({s for hists in per_method.values() for s in hists})
    figure, axes = plt.subplots(
        max(len(methods), 1),
        max(len(scores), 1),
        figsize=(3.2 * max(len(scores), 1), 2.3 * max(len(methods), 1)),
        squeeze=False,
    )
    for row, method in enumerate(methods):
        for column, score in enumerate(scores):
            axis = axes[row][column]
            hist = per_method[method].get(score)
            if hist is None:
                axis.axis("off")
                continue
            label, offset = SCORE_SHOWN.get(score, (score, 0.0))
            edges = np.asarray(hist["edges"], dtype=float) + offset
            occupied = np.flatnonzero(np.asarray(hist["in"], dtype=float) + np.asarray(hist["out"], dtype=float))
            for key, colour, name in (("in", "tab:blue", "in-distribution"), ("out", "tab:orange", "OOD")):
                counts = np.asarray(hist[key], dtype=float)
                axis.stairs(counts / max(counts.sum(), 1.0), edges, fill=True, alpha=0.5, color=colour, label=name)
            if hist.get("scale") == "log" and edges[0] > 0:
                axis.set_xscale("log")
            elif occupied.size:  # fixed full-range edges (older results): show the occupied range only
                axis.set_xlim(edges[occupied[0]], edges[occupied[-1] + 1])
                crowded = any(np.max(np.asarray(hist[k], float)) > 0.5 * max(np.sum(hist[k]), 1) for k in ("in", "out"))
                if crowded and occupied.size > 1:
                    axis.set_yscale("log")  # one bin holds most points: a log scale shows the rest
                    axis.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            axis.set_title(f"{method}: {label}", fontsize=8)
            axis.tick_params(labelsize=7)
            if column == 0:
                axis.set_ylabel("fraction", fontsize=7)
    axes[0][0].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def plot_roc(
    per_method: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]], title: str, path: str | Path
) -> Path:
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
                axis.plot(roc["fpr"], roc["tpr"], _dashes(method), label=method, color=colours[method])
        axis.plot([0, 1], [0, 1], "k:", linewidth=1)
        axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="false positive rate", title=SCORE_LABELS.get(score, score))
    axes[0][0].set_ylabel("true positive rate")
    _legend_beside(axes[0][-1])
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)


def plot_risk_coverage(
    per_method: Mapping[str, tuple[Mapping[str, Series], int]], title: str, path: str | Path
) -> Path:
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
            label = f"{method} ({seeds} seed{'s' * (seeds > 1)})"
            axis.plot(coverage, mean, _dashes(method), color=colours[method], label=label)
            band = np.nan_to_num(se)
            if band.any():
                axis.fill_between(coverage, mean - band, mean + band, color=colours[method], alpha=0.2)
        axis.set(xlim=(0, 1), xlabel="coverage", title=SELECTIVE_LABELS.get(score, score))
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("risk (error rate among answered)")
    _legend_beside(axes[0][-1])
    figure.suptitle(title, fontsize=10)
    return _save(figure, path)
