"""The report's "What the GFlowNets learned" and "Cost per epoch" sections, from a learning.json.

`gflowout report RESULTS --runs RUNS` distils the run folders into REPORT/learning.json
(`gflowout.experiments.learning`); this module only reads that file, so a published report can be written
again from it without the run folders. Two sections:

* What the masks became: per method with learned masks and per seed, the keep probability and the Bernoulli
  entropy of q (and of the prior p, for GFlowOut) averaged over sites at the best and the last checkpoint,
  against log 2 = 0.693 for MC dropout's keep-0.5 masks; and a figure of the logged training curves (keep rate,
  mean log q of a training mask per unit against -log 2, beta, validation NLL) over epochs, one line per seed.
* Cost per epoch: the median wall time of a training epoch per method (mean over seeds) and its ratio to MC
  dropout's, measured on the machine that ran the grid (with whatever else it ran at the time).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["cost_lines", "learning_lines", "plot_learning_curves"]

MASKED_ORDER = ("gflowout", "id_gflowout", "contextual", "concrete")
LOG2 = math.log(2)


def _split_run_id(run_id: str) -> tuple[str, str, int] | None:
    """(dataset, method, seed) of a benchmark run id "dataset__method__seedN", else None."""
    parts = run_id.split("__")
    if len(parts) != 3 or not parts[2].startswith("seed") or not parts[2][4:].isdigit():
        return None
    return parts[0], parts[1], int(parts[2][4:])


def _by_method(runs: dict[str, Any]) -> dict[str, dict[int, dict[str, Any]]]:
    grouped: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for run_id, record in runs.items():
        parsed = _split_run_id(run_id)
        if parsed is not None:
            grouped[parsed[1]][parsed[2]] = record
    return grouped


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def learning_lines(runs: dict[str, Any], figure: Path | None, labels: dict[str, str]) -> list[str]:
    """Markdown of "What the masks became"; `figure` is the curves' PNG (relative link written as figures/NAME)."""
    grouped = _by_method(runs)
    lines = ["## What the masks became", "",
             "Mask statistics of the best checkpoint (the one evaluated) and the last one, on the first 256 training "
             "images, averaged over the mask sites: keep probability and Bernoulli entropy (nats per unit) of the "
             "posterior q(z | x, y) and, for GFlowOut, of the learned prior p(z | x). MC dropout's keep-0.5 masks "
             "have keep 0.5 and entropy log 2 = 0.693; a deterministic mask has entropy 0.", "",
             "| method | seed | checkpoint | epoch | q keep | q entropy | p keep | p entropy | training keep rate |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = 0
    for method in [m for m in MASKED_ORDER if m in grouped] + sorted(set(grouped) - set(MASKED_ORDER)):
        for seed, record in sorted(grouped[method].items()):
            for which in ("best", "last"):
                point = record.get("checkpoints", {}).get(which)
                if not point:
                    continue
                means = point["site_means"]
                q_keep = means.get("q_keep", means.get("keep"))
                q_entropy = means.get("q_entropy", means.get("entropy"))
                epoch = point.get("epoch")
                lines.append(f"| {labels.get(method, method)} | {seed} | {which} | "
                             f"{'-' if epoch is None else epoch + 1} | {_fmt(q_keep)} | {_fmt(q_entropy)} | "
                             f"{_fmt(means.get('p_keep'))} | {_fmt(means.get('p_entropy'))} | "
                             f"{_fmt(means.get('keep_rate'))} |")
                rows += 1
    if not rows:
        return []
    lines.append("")
    if figure is not None:
        lines += [f"![GFlowNet training curves](figures/{figure.name})", "",
                  f"*Training curves of the GFlowNet methods over epochs, one line per seed ({_seed_note(grouped)}): "
                  "the keep rate of the masks drawn for training, the mean log q of a training mask per unit "
                  "(-log 2 = -0.693 is uniform keep-0.5 masks), beta (the reward's temperature), and the "
                  "validation NLL (at the validated epochs).*", ""]
    return lines


def _seed_note(grouped: dict[str, dict[int, dict[str, Any]]]) -> str:
    counts = {method: len(seeds) for method, seeds in grouped.items() if method in ("gflowout", "id_gflowout")}
    return ", ".join(f"{method}: {count} seed{'s' if count != 1 else ''}" for method, count in sorted(counts.items()))


def plot_learning_curves(runs: dict[str, Any], path: Path, labels: dict[str, str]) -> Path | None:
    """Keep rate, log q per unit, beta and validation NLL over epochs for GFlowOut and ID-GFlowOut; None if absent."""
    grouped = _by_method(runs)
    methods = [m for m in ("gflowout", "id_gflowout") if m in grouped]
    panels = [("train/keep_rate_epoch", "training keep rate", 0.5), ("log_q_per_unit", "log q per unit", -LOG2),
              ("train/beta_epoch", "beta", None), ("val/nll", "validation NLL", None)]
    if not methods:
        return None
    figure, axes = plt.subplots(len(methods), len(panels), figsize=(16, 3.2 * len(methods)), squeeze=False)
    for row, method in enumerate(methods):
        for seed, record in sorted(grouped[method].items()):
            curves = record.get("curves", {})
            units = next((p["units"] for p in record.get("checkpoints", {}).values() if p.get("units")), None)
            for column, (key, title, reference) in enumerate(panels):
                axis = axes[row][column]
                if key == "log_q_per_unit":
                    series = curves.get("train/log_forward_epoch", {})
                    series = {e: v / units for e, v in series.items()} if units else {}
                else:
                    series = curves.get(key, {})
                epochs = sorted(series, key=int)
                if epochs:
                    axis.plot([int(e) + 1 for e in epochs], [series[e] for e in epochs], label=f"seed {seed}",
                              marker="." if len(epochs) < 60 else None)
                if reference is not None:
                    axis.axhline(reference, color="grey", linestyle=":", linewidth=1)
                if key == "train/beta_epoch" or (key == "val/nll" and epochs):
                    axis.set_yscale("log")
                else:
                    axis.ticklabel_format(axis="y", useOffset=False)
                axis.set_title(f"{labels.get(method, method)}: {title}")
                axis.set_xlabel("epoch")
        axes[row][0].legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def cost_lines(runs: dict[str, Any], labels: dict[str, str], order: list[str]) -> list[str]:
    """Markdown of "Cost per epoch": median epoch wall time per method (mean over seeds), ratio to MC dropout."""
    per_method: dict[str, list[float]] = defaultdict(list)
    for method, seeds in _by_method(runs).items():
        for record in seeds.values():
            timing = record.get("timing")
            if timing and timing.get("epochs"):
                per_method[method].append(float(timing["median_s"]))
    if not per_method:
        return []
    reference = statistics.fmean(per_method["mc_dropout"]) if per_method.get("mc_dropout") else None
    lines = ["## Cost per epoch", "",
             "Median wall time of one training epoch (validation epochs included), from each run's TensorBoard "
             "events, averaged over seeds; measured on the machine that ran these runs while it also ran other "
             "work, so ratios are indicative. Peak memory is measured separately (benchmarks/bench_memory.py).", "",
             "| method | seeds | seconds per epoch | x MC dropout |", "|---|---|---|---|"]
    for method in [m for m in order if m in per_method] + sorted(set(per_method) - set(order)):
        seconds = statistics.fmean(per_method[method])
        ratio = "-" if reference is None else f"{seconds / reference:.2f}"
        lines.append(f"| {labels.get(method, method)} | {len(per_method[method])} | {seconds:.1f} | {ratio} |")
    return [*lines, ""]
