"""A run's mask diagnostics over epochs, from its CSV logs: PNG figures and a short Markdown page.

The harness logs `masks/...` once per epoch (`gflowout.methods.diagnostics`, config `diagnostics`)
into RUN/logs/version_N/metrics.csv (one version per start or resume; a later version's value for an
epoch replaces an earlier one). `write_run_report(RUN, OUT)` draws them (`gflowout report RUN`):

* masks_per_site.png: one panel per per-site statistic (keep rates, keep probabilities, entropies),
  one line per site; the dotted line at keep 0.5 / entropy log 2 is "learned nothing".
* masks_network.png: whole-network values (trajectory-balance residual on a log scale, log Z, ...),
  with the epochs whose residual crossed `diagnostics.residual_threshold` marked.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from gflowout.atomic import atomic_write_text

PREFIX = "masks/"
# whole-network keys drawn in masks_network.png, in this order (those present)
NETWORK_KEYS = ("tb_residual", "centred_residual", "log_z", "log_z_gap", "keep_rate")
LOG_SCALE = ("tb_residual", "centred_residual")

# {metric key without the prefix: {epoch: value}}
Diagnostics = dict[str, dict[int, float]]


def read_epoch_columns(run_dir: str | Path, keep: Callable[[str], bool]) -> dict[str, dict[int, float]]:
    """{column: {epoch: value}} of a run folder's CSV logs for the columns `keep` accepts (later versions win)."""
    run_dir = Path(run_dir)
    paths = sorted((run_dir / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]))
    values: dict[str, dict[int, float]] = defaultdict(dict)
    for path in paths:
        with path.open(newline="") as stream:
            for row in csv.DictReader(stream):
                epoch = row.get("epoch")
                if epoch in (None, ""):
                    continue
                for key, text in row.items():
                    if key and keep(key) and text not in (None, ""):
                        values[key][int(float(epoch))] = float(text)
    return dict(values)


def read_mask_diagnostics(run_dir: str | Path) -> Diagnostics:
    """Every masks/... value of a run folder's CSV logs, by epoch (later log versions win), keyed without the prefix."""
    columns = read_epoch_columns(run_dir, lambda key: key.startswith(PREFIX))
    return {key[len(PREFIX) :]: series for key, series in columns.items()}


def split_sites(diagnostics: Diagnostics) -> tuple[dict[str, dict[str, dict[int, float]]], Diagnostics]:
    """({statistic: {site: {epoch: value}}}, {network key: {epoch: value}})."""
    per_site: dict[str, dict[str, dict[int, float]]] = defaultdict(dict)
    network: Diagnostics = {}
    for key, series in diagnostics.items():
        site, _, statistic = key.rpartition("/")
        if site:
            per_site[statistic][site] = series
        else:
            network[key] = series
    return dict(per_site), network


def warning_epochs(diagnostics: Diagnostics) -> list[int]:
    """Epochs whose trajectory-balance residual was above the run's threshold (masks/residual_warning = 1)."""
    return sorted(epoch for epoch, flag in diagnostics.get("residual_warning", {}).items() if flag > 0)


def _reference_line(axis: plt.Axes, statistic: str) -> None:
    if "entropy" in statistic:
        axis.axhline(math.log(2), color="grey", linestyle=":", linewidth=1)
    elif "keep" in statistic:
        axis.axhline(0.5, color="grey", linestyle=":", linewidth=1)


def plot_per_site(per_site: dict[str, dict[str, dict[int, float]]], title: str, path: Path) -> Path:
    """One panel per statistic, one line per site, over epochs."""
    statistics = sorted(per_site)
    columns = min(3, len(statistics))
    rows = math.ceil(len(statistics) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.0 * rows), squeeze=False)
    for axis, statistic in zip(axes.flat, statistics):
        for site, series in sorted(per_site[statistic].items()):
            epochs = sorted(series)
            axis.plot(epochs, [series[e] for e in epochs], marker="o", markersize=3, label=site)
        _reference_line(axis, statistic)
        axis.set_title(statistic)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axis in list(axes.flat)[len(statistics) :]:
        axis.axis("off")
    axes.flat[0].legend(fontsize=7)
    figure.suptitle(title)
    return _save(figure, path)


def plot_network(network: Diagnostics, warned: list[int], title: str, path: Path) -> Path:
    """Whole-network values over epochs; residual panels on a log scale, warned epochs marked in red."""
    keys = [k for k in NETWORK_KEYS if k in network] or sorted(k for k in network if k != "residual_warning")
    figure, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.0), squeeze=False)
    for axis, key in zip(axes.flat, keys):
        series = network[key]
        epochs = sorted(series)
        axis.plot(epochs, [series[e] for e in epochs], marker="o", markersize=3)
        if key in LOG_SCALE and all(series[e] > 0 for e in epochs):
            axis.set_yscale("log")
        for epoch in warned if key == "tb_residual" else ():
            if epoch in series:
                axis.plot([epoch], [series[epoch]], "rx", markersize=8)
        axis.set_title(key + (" (x: above threshold)" if warned and key == "tb_residual" else ""))
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title)
    return _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def write_run_report(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Figures and run_report.md of one run folder's mask diagnostics; returns the Markdown file."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    diagnostics = read_mask_diagnostics(run_dir)
    lines = [f"# Mask diagnostics of {run_dir.name}", ""]
    if not diagnostics:
        lines.append(
            "No mask diagnostics in this run's logs (a method without learned masks, or diagnostics.enabled was false)."
        )
    else:
        per_site, network = split_sites(diagnostics)
        warned = warning_epochs(diagnostics)
        figures = []
        if per_site:
            figures.append(
                plot_per_site(per_site, f"{run_dir.name}: per site", out_dir / "figures" / "masks_per_site.png")
            )
        if network:
            figures.append(
                plot_network(network, warned, f"{run_dir.name}: network", out_dir / "figures" / "masks_network.png")
            )
        last = max(max(series) for series in diagnostics.values())
        lines += [f"Epochs 0-{last}. Values at the last epoch:", ""]
        for key in NETWORK_KEYS:
            if last in network.get(key, {}):
                lines.append(f"- {key}: {network[key][last]:.4g}")
        for statistic in sorted(per_site):
            row = ", ".join(
                f"{site} {series[last]:.3f}" for site, series in sorted(per_site[statistic].items()) if last in series
            )
            lines.append(f"- {statistic}: {row}")
        lines.append("")
        if warned:
            lines.append(
                f"**Warning**: the trajectory-balance residual was above diagnostics.residual_threshold at "
                f"epoch(s) {', '.join(map(str, warned))}: the GFlowNet did not keep up with its reward."
            )
        elif "residual_warning" in diagnostics:
            lines.append("The trajectory-balance residual stayed below diagnostics.residual_threshold.")
        lines.append("")
        lines += [f"![{path.stem}](figures/{path.name})" for path in figures]
    out_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(out_dir / "run_report.md", "\n".join(lines) + "\n")


def is_run_folder(path: str | Path) -> bool:
    """A folder written by `gflowout train` (config.yaml and CSV logs)."""
    path = Path(path)
    return (path / "config.yaml").is_file() and any((path / "logs").glob("version_*/metrics.csv"))
