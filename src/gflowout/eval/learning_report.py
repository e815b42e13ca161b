"""The report's "What the masks became" and "Cost per epoch" tables and the GFlowNets' training curves.

`gflowout report RESULTS --runs RUNS` distils the run folders into REPORT/learning.json
(`gflowout.experiments.learning`); this module only reads that file, so a published report can be written
again from it without the run folders. Two sections:

* What the masks became: per method with learned masks and per seed, the keep probability and the Bernoulli
  entropy of q (and of the prior p, for GFlowOut) averaged over sites at the best and the last checkpoint,
  against log 2 = 0.693 for MC dropout's keep-0.5 masks; a figure of every learned mask's keep probability and
  entropy per unit over epochs (GFlowOut, ID-GFlowOut, Contextual, Concrete); and a figure of the GFlowNets'
  logged training curves (keep rate, mean log q of a training mask per unit against -log 2, beta, validation NLL)
  over epochs, one line per seed.
* Cost per epoch: the median wall time of a training epoch per method (median over seeds) and its ratio to MC
  dropout's, measured on the machine that ran the grid (with whatever else it ran at the time).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from gflowout.eval.tables import Table

__all__ = [
    "cost_table",
    "learning_caption",
    "learning_table",
    "log_q_per_unit",
    "mask_curves_caption",
    "mask_series",
    "plot_learning_curves",
    "plot_mask_curves",
]

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


def learning_table(runs: dict[str, Any], labels: Mapping[str, str] | None = None) -> Table | None:
    """ "What the masks became": mask statistics at the best and last checkpoints, per method and seed."""
    labels = labels or {}
    grouped = _by_method(runs)
    rows = []
    for method in [m for m in MASKED_ORDER if m in grouped] + sorted(set(grouped) - set(MASKED_ORDER)):
        for seed, record in sorted(grouped[method].items()):
            for which in ("best", "last"):
                point = record.get("checkpoints", {}).get(which)
                if not point:
                    continue
                means = point["site_means"]
                epoch = point.get("epoch")
                rows.append(
                    [
                        labels.get(method, method),
                        str(seed),
                        which,
                        "-" if epoch is None else str(epoch + 1),
                        _fmt(means.get("q_keep", means.get("keep"))),
                        _fmt(means.get("q_entropy", means.get("entropy"))),
                        _fmt(means.get("p_keep")),
                        _fmt(means.get("p_entropy")),
                        _fmt(means.get("keep_rate")),
                    ]
                )
    if not rows:
        return None
    return Table(
        title="What the masks became (best and last checkpoints)",
        header=[
            "method",
            "seed",
            "checkpoint",
            "epoch",
            "keep",
            "entropy (nats)",
            "prior p keep",
            "prior p entropy (nats)",
            "training keep rate",
        ],
        rows=rows,
        note="Mask statistics of the best checkpoint (the one evaluated) and the last one, on the first 256 training "
        "images, averaged over the mask sites: keep probability and Bernoulli entropy per unit of the mask "
        "distribution each method samples: the posterior q(z | x, y) of the GFlowNets, Concrete's learned keep "
        "rates, Contextual dropout's input-dependent ones; for GFlowOut also of the learned prior p(z | x) (the "
        "prior columns). The training keep rate counts the masks "
        "drawn as training draws them. MC dropout's keep-0.5 masks have keep 0.5 and entropy log 2 = 0.693; a "
        "deterministic mask has entropy 0.",
    )


def learning_caption(runs: dict[str, Any]) -> str:
    """The caption of `plot_learning_curves`' figure: what is plotted, over how many seeds."""
    return (
        f"Training curves of the GFlowNet methods over epochs, one line per seed ({_seed_note(_by_method(runs))}): "
        "the keep rate of the masks drawn for training, the mean log q of a training mask per unit (-log 2 = "
        "-0.693 is uniform keep-0.5 masks), beta (the reward's temperature), and the validation NLL at the "
        "validated epochs."
    )


def log_q_per_unit(record: Mapping[str, Any]) -> dict[int, float]:
    """The mean log q of a training mask per unit, by epoch, of a GFlowNet run (its logged log q over the mask units
    its checkpoints count); {} without a checkpoint, where the unit count is unknown."""
    units = next((p["units"] for p in record.get("checkpoints", {}).values() if p.get("units")), None)
    if not units:
        return {}
    return {int(e): float(v) / units for e, v in record.get("curves", {}).get("train/log_forward_epoch", {}).items()}


def mask_series(method: str, record: Mapping[str, Any]) -> tuple[dict[int, float], dict[int, float]]:
    """(keep, entropy per unit in nats) by epoch from one run's logged curves, for any method with learned masks.

    GFlowOut and ID-GFlowOut: the keep rate of the masks drawn for training and minus their mean log q per unit
    (a Monte Carlo estimate of q's entropy at the training temperature); Concrete and Contextual: their logged
    per-site keep probability and Bernoulli entropy, averaged over sites. ({}, {}) when the run logged neither.
    """
    curves = record.get("curves", {})
    if method in ("gflowout", "id_gflowout"):
        keep = {int(e): float(v) for e, v in curves.get("train/keep_rate_epoch", {}).items()}
        return keep, {int(e): -v for e, v in log_q_per_unit(record).items()}

    def site_mean(stat: str) -> dict[int, float]:
        columns = [
            v for k, v in curves.items() if k.startswith("masks/") and k.count("/") == 2 and k.endswith(f"/{stat}")
        ]
        epochs = sorted(set.intersection(*(set(c) for c in columns)), key=int) if columns else []
        return {int(e): statistics.fmean(float(c[e]) for c in columns) for e in epochs}

    return site_mean("keep"), site_mean("entropy")


def plot_mask_curves(runs: dict[str, Any], path: Path, labels: Mapping[str, str] | None = None) -> Path | None:
    """Keep probability and entropy per unit of every method's learned masks over epochs (`mask_series`), one line
    per seed, against MC dropout's keep-0.5 masks; None when no run logged them."""
    labels = labels or {}
    grouped = _by_method(runs)
    series = {
        method: {seed: mask_series(method, record) for seed, record in sorted(grouped[method].items())}
        for method in MASKED_ORDER
        if method in grouped
    }
    series = {m: seeds for m, seeds in series.items() if any(k or h for k, h in seeds.values())}
    if not series:
        return None
    figure, axes = plt.subplots(1, 2, figsize=(12, 3.8), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (method, seeds) in enumerate(series.items()):
        for position, (keep, entropy) in enumerate(seeds.values()):
            label = f"{labels.get(method, method)} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})"
            for axis, values in zip(axes[0], (keep, entropy)):
                epochs = sorted(values)
                axis.plot(
                    [e + 1 for e in epochs],
                    [values[e] for e in epochs],
                    color=colours[index % len(colours)],
                    label=label if position == 0 else None,
                )
    for axis, reference, title in zip(axes[0], (0.5, LOG2), ("keep probability", "Bernoulli entropy per unit (nats)")):
        axis.axhline(reference, color="grey", linestyle=":", linewidth=1, label="MC dropout (keep 0.5, entropy log 2)")
        axis.set(title=title, xlabel="epoch")
        axis.grid(alpha=0.3)
    axes[0][1].set_ylim(bottom=0)
    handles, names = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, names, fontsize=8, loc="lower center", ncol=min(len(names), 5))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def mask_curves_caption(runs: dict[str, Any]) -> str:
    """The caption of `plot_mask_curves`' figure."""
    counts = {m: len(seeds) for m, seeds in _by_method(runs).items() if m in MASKED_ORDER}
    listing = ", ".join(f"{m}: {n} seed{'s' if n != 1 else ''}" for m, n in counts.items())
    return (
        f"The learned masks over training, one line per seed ({listing}), averaged over the mask sites: keep "
        "probability and Bernoulli entropy per unit in nats. GFlowOut and ID-GFlowOut: the keep rate of the masks "
        "drawn for training and minus their mean log q per unit (an estimate of q's entropy); Concrete and "
        "Contextual: the keep probability and entropy they log on a fixed training batch. The dotted lines are MC "
        "dropout's keep-0.5 masks (entropy log 2 = 0.693); a deterministic mask has entropy 0."
    )


def _seed_note(grouped: dict[str, dict[int, dict[str, Any]]]) -> str:
    counts = {method: len(seeds) for method, seeds in grouped.items() if method in ("gflowout", "id_gflowout")}
    return ", ".join(f"{method}: {count} seed{'s' if count != 1 else ''}" for method, count in sorted(counts.items()))


def plot_learning_curves(runs: dict[str, Any], path: Path, labels: Mapping[str, str] | None = None) -> Path | None:
    """Keep rate, log q per unit, beta and validation NLL over epochs for GFlowOut and ID-GFlowOut; None if absent."""
    labels = labels or {}
    grouped = _by_method(runs)
    methods = [m for m in ("gflowout", "id_gflowout") if m in grouped]
    panels = [
        ("train/keep_rate_epoch", "training keep rate", 0.5),
        ("log_q_per_unit", "log q per unit", -LOG2),
        ("train/beta_epoch", "beta", None),
        ("val/nll", "validation NLL", None),
    ]
    if not methods:
        return None
    figure, axes = plt.subplots(len(methods), len(panels), figsize=(16, 3.2 * len(methods)), squeeze=False)
    for row, method in enumerate(methods):
        for seed, record in sorted(grouped[method].items()):
            curves = record.get("curves", {})
            for column, (key, title, reference) in enumerate(panels):
                axis = axes[row][column]
                if key == "log_q_per_unit":
                    series = {str(e): v for e, v in log_q_per_unit(record).items()}
                else:
                    series = curves.get(key, {})
                epochs = sorted(series, key=int)
                if epochs:
                    axis.plot(
                        [int(e) + 1 for e in epochs],
                        [series[e] for e in epochs],
                        label=f"seed {seed}",
                        marker="." if len(epochs) < 60 else None,
                    )
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


def best_epoch_table(runs: dict[str, Any], order: Sequence[str]) -> Table | None:
    """ "The checkpoint each run is evaluated at": per method and seed, the validated epoch of the lowest
    validation NLL (the best checkpoint the test metrics come from) and that NLL; None without validation curves."""
    rows = []
    by_method = _by_method(runs)
    for method in [m for m in order if m in by_method] + sorted(set(by_method) - set(order)):
        for seed, record in sorted(by_method[method].items()):
            curve = {int(e): float(v) for e, v in record.get("curves", {}).get("val/nll", {}).items()}
            if not curve:
                continue
            epoch = min(curve, key=lambda e: (curve[e], e))  # ties: the first, as the checkpoint callback keeps it
            rows.append([method, str(seed), str(epoch + 1), f"{curve[epoch]:.4f}", str(max(curve) + 1)])
    if not rows:
        return None
    return Table(
        title="The checkpoint each run is evaluated at",
        header=["method", "seed", "best epoch", "validation NLL there", "last validated epoch"],
        rows=rows,
        note="The epoch (counted from 1) with the lowest validation NLL, whose checkpoint gives every test number "
        "of the report. Runs whose best epochs differ are compared at different stages of their training: read "
        "the differences between methods next to these epochs (each run's own numbers are in the table of the "
        "summary columns seed by seed).",
    )


def cost_table(runs: dict[str, Any], order: Sequence[str], labels: Mapping[str, str] | None = None) -> Table | None:
    """ "Cost per epoch": median epoch wall time per method (median over seeds) and its ratio to MC dropout's."""
    labels = labels or {}
    per_method: dict[str, list[float]] = defaultdict(list)
    for method, seeds in _by_method(runs).items():
        for record in seeds.values():
            timing = record.get("timing")
            if timing and timing.get("epochs"):
                per_method[method].append(float(timing["median_s"]))
    if not per_method:
        return None
    reference = statistics.median(per_method["mc_dropout"]) if per_method.get("mc_dropout") else None
    rows = []
    for method in [m for m in order if m in per_method] + sorted(set(per_method) - set(order)):
        seconds = statistics.median(per_method[method])  # a seed slowed by other work moves it least
        rows.append(
            [
                labels.get(method, method),
                str(len(per_method[method])),
                f"{seconds:.1f}",
                "-" if reference is None else f"{seconds / reference:.2f}",
            ]
        )
    return Table(
        title="Cost per training epoch (from the runs' event files)",
        header=["method", "seeds", "seconds per epoch", "x MC dropout"],
        rows=rows,
        note="Median wall time of one training epoch (validation epochs included), from each run's TensorBoard "
        "events, the median over seeds; measured on the machine that ran these runs while it also ran other "
        "work, so the ratios are indicative. The controlled costs, every method's training step in one process "
        "(benchmarks/bench_harness.py) and its peak memory (benchmarks/bench_memory.py), are in "
        "benchmarks/README.md.",
    )
