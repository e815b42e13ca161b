"""Reports of the downstream protocols: active learning and transfer from noisy pre-training.

Each cell is the mean ± standard error over seeds (`gflowout.eval.report.mean_and_standard_error`); each
curve is the mean over seeds with a band of ± one standard error.

Active learning: accuracy (and NLL) against the labelled-set size, one panel per acquisition score, one line
per method; and the normalised area under the accuracy curve, (1 / (n_max - n_min)) x trapezoid integral of
accuracy over the labelled-set size: the mean accuracy over the acquisition budget, in [0, 1], computed per
seed and then averaged.

Transfer: test accuracy after fine-tuning the noisily pre-trained weights against the clean subset size
(solid), with the same subsets trained from scratch (dashed) when the run has them.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gflowout.errors import DataError
from gflowout.eval.downstream_tests import reference_versus_baselines, scores_versus_random
from gflowout.eval.report import METHOD_ORDER, Table, format_stat, mean_and_standard_error, table_html, table_markdown
from gflowout.eval.report_page import figure_html, figure_markdown, write_page
from gflowout.eval.tables import inline_html
from gflowout.results import load_protocol_results

Band = tuple[Sequence[float], Sequence[float], Sequence[float]]  # x, mean, standard error
Section = tuple[str, list[Table], list[tuple[str, Path]]]  # heading, tables, (caption, figure path)


def normalised_auc(sizes: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area under values(sizes) divided by the size range: the mean value over the budget.

    One point gives that value. Sizes must increase strictly.
    """
    x = np.asarray(sizes, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.size != y.size or x.size == 0:
        raise ValueError(f"need as many values as sizes (at least one), got {x.size} sizes and {y.size} values")
    if x.size == 1:
        return float(y[0])
    if not np.all(np.diff(x) > 0):
        raise ValueError(f"labelled-set sizes must increase strictly, got {x.tolist()}")
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def _method_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def _band(curves: Sequence[Sequence[float]], x: Sequence[float]) -> Band:
    stats = [mean_and_standard_error([curve[i] for curve in curves]) for i in range(len(x))]
    return list(x), [s[0] for s in stats], [s[1] for s in stats]


def plot_bands(
    panels: Mapping[str, Mapping[str, Band]],
    xlabel: str,
    ylabel: str,
    title: str,
    path: Path,
    log_x: bool = False,
    share_y: bool = False,
) -> Path:
    """One panel per key of `panels`, one line per method (the same colour in every panel) with a ± standard-error
    band, and one legend for the figure."""
    from gflowout.eval import plots

    plt = plots.plt
    methods = sorted({m for lines in panels.values() for m in lines}, key=_method_key)
    colours = plots._colours(methods)
    count = max(len(panels), 1)
    figure, axes = plt.subplots(1, count, figsize=(max(3.6 * count, 5.0), 3.4), squeeze=False, sharey=share_y)
    for axis, (panel, lines) in zip(axes[0], panels.items()):
        for method, (x, mean, se) in sorted(lines.items(), key=lambda item: _method_key(item[0])):
            mean_a, se_a = np.asarray(mean, dtype=float), np.nan_to_num(np.asarray(se, dtype=float))
            axis.plot(x, mean_a, marker="o", markersize=2.5, color=colours[method], label=method)
            axis.fill_between(x, mean_a - se_a, mean_a + se_a, color=colours[method], alpha=0.15, linewidth=0)
        if log_x:
            axis.set_xscale("log", base=2)
        axis.set(xlabel=xlabel, title=panel)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    handles = [plt.Line2D([], [], color=colours[m], marker="o", markersize=3) for m in methods]
    figure.legend(handles, methods, loc="lower center", ncol=min(len(methods), 6), fontsize=7, frameon=False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.08, 1, 1))  # room for the legend below the panels
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _write_page(out_dir: Path, title: str, intro: str, sections: list[Section], embed: bool = True) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = [f"# {title}", "", intro, ""]
    page = [f"<h1>{html.escape(title)}</h1><p>{inline_html(intro)}</p>"]
    for heading, tables, figures in sections:
        markdown += [f"## {heading}", ""]
        page.append(f"<h2>{html.escape(heading)}</h2>")
        for table in tables:
            markdown.append(table_markdown(table))
            page.append(table_html(table))
        for caption, path in figures:
            markdown += figure_markdown(caption, path, out_dir)
            page.append(figure_html(caption, path, out_dir, embed))
    return write_page(out_dir, title, markdown, page)


# --- active learning ---------------------------------------------------------------------------
def active_learning_sections(runs: Sequence[Mapping[str, Any]], figure_dir: Path) -> list[Section]:
    """Per data set: the AUC table, the final-round accuracy and NLL tables, the accuracy and NLL figures."""
    by_cell: dict[tuple[str, str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for run in runs:
        by_cell[(run["dataset"], run["method"], run["score"])].append(run)
    sections = []
    for dataset in sorted({key[0] for key in by_cell}):
        methods = sorted({key[1] for key in by_cell if key[0] == dataset}, key=_method_key)
        scores = sorted({key[2] for key in by_cell if key[0] == dataset})
        auc, final_acc, final_nll, seeds = {}, {}, {}, {}
        auc_by_seed: dict[tuple[str, str], dict[int, float]] = {}
        curves: dict[str, dict[str, dict[str, Band]]] = {"accuracy": defaultdict(dict), "nll": defaultdict(dict)}
        for method in methods:
            for score in scores:
                cell = by_cell.get((dataset, method, score), [])
                if not cell:
                    continue
                sizes = cell[0]["labelled_sizes"]
                if any(run["labelled_sizes"] != sizes for run in cell):
                    raise DataError(
                        f"{dataset}/{method}/{score}: the seeds' labelled-set sizes differ; "
                        "were they made with different configs?"
                    )
                auc_by_seed[method, score] = {int(r["seed"]): normalised_auc(sizes, r["accuracy"]) for r in cell}
                auc[method, score] = mean_and_standard_error(list(auc_by_seed[method, score].values()))
                final_acc[method, score] = mean_and_standard_error([run["accuracy"][-1] for run in cell])
                final_nll[method, score] = mean_and_standard_error([run["nll"][-1] for run in cell])
                seeds[method, score] = len(cell)
                for metric in ("accuracy", "nll"):
                    curves[metric][score][method] = _band([run[metric] for run in cell], sizes)

        def table(title: str, values: Mapping[tuple[str, str], tuple[float, float]], note: str = "") -> Table:
            rows = [[m, *(format_stat(values.get((m, s), (math.nan, math.nan))) for s in scores)] for m in methods]
            return Table(title, ["method", *scores], rows, note)

        seed_counts = sorted(set(seeds.values()))
        tables = [
            table(
                f"{dataset}: normalised area under the accuracy vs labelled-set-size curve",
                auc,
                f"The mean test accuracy over the acquisition budget (trapezoid rule over the labelled-set "
                f"size, divided by its range); mean ± SE over {'/'.join(map(str, seed_counts))} seed(s). "
                "Higher is better; compare each score with random. Round 0 is the same for every score (same "
                "labelled set, same seeds). A deterministic network (none) has BALD and variation ratio 0 "
                "everywhere: its ties go to the pool's seeded random order, so those cells are random "
                "acquisition in disguise.",
            ),
            table(f"{dataset}: test accuracy after the last round", final_acc),
            table(f"{dataset}: test NLL after the last round (nats)", final_nll),
        ]
        tables += [
            t
            for t in (
                reference_versus_baselines(
                    f"{dataset}: is gflowout's area under the accuracy curve better than each baseline's? "
                    "(tests over seeds)",
                    "score",
                    scores,
                    methods,
                    {(score, method): v for (method, score), v in auc_by_seed.items()},
                    higher_is_better=True,
                    note="The normalised area under the accuracy curve, with the same acquisition score.",
                ),
                scores_versus_random(
                    f"{dataset}: does each acquisition score beat random acquisition? (tests over seeds)",
                    methods,
                    scores,
                    auc_by_seed,
                    note="The normalised area under the accuracy curve, with the same method.",
                ),
            )
            if t is not None
        ]
        name = dataset.replace("/", "_")
        figures = []
        for metric, label in (("accuracy", "test accuracy"), ("nll", "test NLL (nats)")):
            path = plot_bands(
                {s: curves[metric][s] for s in scores},
                "labelled examples",
                label,
                f"{dataset}: active learning, {label} (mean ± SE over seeds)",
                figure_dir / f"{name}_active_{metric}.png",
                share_y=True,
            )
            figures.append((f"{dataset}: {label} vs labelled-set size, one panel per acquisition score", path))
        sections.append((f"{dataset}: active learning", tables, figures))
    return sections


def write_active_learning_report(
    results_dir: str | Path, out_dir: str | Path, title: str = "gflowout: active learning", embed_figures: bool = True
) -> Path:
    """Read the active-learning result files under `results_dir`; write report.md, figures/, report.html (the
    figures inline, or linked to figures/ with `embed_figures=False`)."""
    out_dir = Path(out_dir)
    runs = load_protocol_results(results_dir, "active_learning")
    settings = runs[0]["protocol_settings"]
    active, training = settings["active"], settings["training"]
    intro = (
        f"{len(runs)} run(s) from `{results_dir}`. Pool-based active learning: {active['initial_per_class']} "
        f"labelled example(s) per class, then {active['rounds']} round(s) acquiring the top {active['acquire']} "
        f"pool examples by each score (S = {active['samples']} mask samples, no labels), a model retrained from "
        f"scratch each round for {training['steps']} steps of batch {training['batch_size']} (the same for every "
        "method), test accuracy and NLL of the S-sample predictive after each round."
    )
    return _write_page(out_dir, title, intro, active_learning_sections(runs, out_dir / "figures"), embed_figures)


# --- transfer ----------------------------------------------------------------------------------
def transfer_sections(runs: Sequence[Mapping[str, Any]], figure_dir: Path) -> list[Section]:
    """Per data set: accuracy by subset size (fine-tuned, from scratch), the pre-training table, a figure."""
    sections = []
    for dataset in sorted({run["dataset"] for run in runs}):
        cell: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for run in runs:
            if run["dataset"] == dataset:
                cell[run["method"]].append(run)
        methods = sorted(cell, key=_method_key)
        sizes = sorted({int(s) for group in cell.values() for run in group for s in run["subsets"]})
        tables, finetuned, scratch = [], {}, {}  # type: ignore[var-annotated]  # filled below
        for kind, title in (
            ("finetuned", "fine-tuned from the noisy pre-training"),
            ("scratch", "trained from scratch"),
        ):
            if not any(
                kind in run["subsets"][str(s)]
                for group in cell.values()
                for run in group
                for s in sizes
                if str(s) in run["subsets"]
            ):
                continue
            for metric in ("accuracy", "nll"):
                rows = []
                for method in methods:
                    stats = [
                        mean_and_standard_error(
                            [
                                run["subsets"][str(s)][kind][metric]
                                for run in cell[method]
                                if str(s) in run["subsets"] and kind in run["subsets"][str(s)]
                            ]
                        )
                        for s in sizes
                    ]
                    rows.append([method, str(len(cell[method])), *(format_stat(st) for st in stats)])
                    if metric == "accuracy":
                        (finetuned if kind == "finetuned" else scratch)[method] = (
                            sizes,
                            [s[0] for s in stats],
                            [s[1] for s in stats],
                        )
                label = "accuracy" if metric == "accuracy" else "NLL (nats)"
                tables.append(
                    Table(
                        f"{dataset}: test {label} {title}, by clean subset size",
                        ["method", "seeds", *map(str, sizes)],
                        rows,
                    )
                )
        tables.append(
            Table(
                f"{dataset}: the noisy pre-training",
                ["method", "realised noise rate", "test accuracy", "test NLL"],
                [
                    [
                        m,
                        format_stat(mean_and_standard_error([r["pretrained"]["noise_rate"] for r in cell[m]])),
                        format_stat(mean_and_standard_error([r["pretrained"]["accuracy"] for r in cell[m]])),
                        format_stat(mean_and_standard_error([r["pretrained"]["nll"] for r in cell[m]])),
                    ]
                    for m in methods
                ],
                "Noisy labels: a seeded subset of the training labels, each replaced by a uniform draw from the other "
                "classes (every class can be drawn).",
            )
        )
        for metric, higher, label in (("accuracy", True, "accuracy"), ("nll", False, "NLL")):
            per_seed = {
                (str(size), method): {
                    int(r["seed"]): float(r["subsets"][str(size)]["finetuned"][metric])
                    for r in cell[method]
                    if "finetuned" in r["subsets"].get(str(size), {})
                }
                for size in sizes
                for method in methods
            }
            test_table = reference_versus_baselines(
                f"{dataset}: is gflowout's fine-tuned test {label} better than each baseline's? (tests over seeds)",
                "clean images",
                [str(size) for size in sizes],
                methods,
                per_seed,
                higher_is_better=higher,
                note=f"Test {label} after fine-tuning the noisily pre-trained weights on the same clean subset.",
            )
            if test_table is not None:
                tables.append(test_table)
        panels = {"fine-tuned from the noisy pre-training": finetuned}
        if scratch:
            panels["trained from scratch"] = scratch
        path = plot_bands(
            panels,
            "clean training images",
            "test accuracy",
            f"{dataset}: transfer from noisy pre-training (mean ± SE over seeds)",
            figure_dir / f"{dataset.replace('/', '_')}_transfer_accuracy.png",
            log_x=True,
            share_y=True,
        )
        caption = f"{dataset}: test accuracy vs clean subset size, fine-tuned" + (
            " and from scratch" if scratch else ""
        )
        sections.append((f"{dataset}: transfer", tables, [(caption, path)]))
    return sections


def write_transfer_report(
    results_dir: str | Path,
    out_dir: str | Path,
    title: str = "gflowout: transfer from noisy pre-training",
    embed_figures: bool = True,
) -> Path:
    """Read the transfer result files under `results_dir`; write report.md, figures/, report.html (the figures
    inline, or linked to figures/ with `embed_figures=False`)."""
    out_dir = Path(out_dir)
    runs = load_protocol_results(results_dir, "transfer")
    transfer = runs[0]["protocol_settings"]["transfer"]
    intro = (
        f"{len(runs)} run(s) from `{results_dir}`. Pre-training on the whole training split with "
        f"{transfer['noise_rate']:.0%} symmetric label noise ({transfer['pretrain']['steps']} steps of batch "
        f"{transfer['pretrain']['batch_size']}), then fine-tuning the loaded weights on clean seeded subsets "
        f"({transfer['finetune']['steps']} steps of batch {transfer['finetune']['batch_size']}, the same for "
        "every method); test accuracy and NLL of the S-sample predictive."
    )
    return _write_page(out_dir, title, intro, transfer_sections(runs, out_dir / "figures"), embed_figures)
