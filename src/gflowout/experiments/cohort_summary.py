"""The summary of a `gflowout cohort` grid: its run files aggregated over seeds (summary.json), the tables and the
tests over seeds (summary.md) and a figure, written after every run and again by a rerun that finds them done.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gflowout.atomic import atomic_write_text

__all__ = ["HEADLINE", "LOWER_IS_BETTER", "plot_summary", "summary_markdown", "tests_markdown", "write_summary"]

HEADLINE = ("macro_f1", "balanced_accuracy", "precision", "recall", "auroc", "nll", "ece")


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    from gflowout.eval.report import mean_and_standard_error

    return mean_and_standard_error([v for v in values if v is not None and not math.isnan(v)])


def write_summary(out: Path, digest: str | None = None) -> dict[str, Any]:
    """Aggregate the run JSONs in `out/runs` (of config `digest`, when given).

    Writes summary.json, summary.md and a figure.
    """
    from gflowout.eval.report import METHOD_ORDER
    from gflowout.results import write_json_atomic

    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    runs = [r for r in runs if digest is None or r.get("config_digest") == digest]
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    summary: dict[str, Any] = {}
    for held_out in sorted({r["held_out_group"] for r in runs}):
        per_method: dict[str, Any] = {}
        for method in sorted(
            {r["method"] for r in runs if r["held_out_group"] == held_out}, key=lambda m: order.get(m, 99)
        ):
            chosen = [r for r in runs if r["held_out_group"] == held_out and r["method"] == method]
            entry: dict[str, Any] = {"seeds": sorted(r["seed"] for r in chosen)}
            for part in ("held_out", "in_distribution"):
                if all(part in r for r in chosen):
                    entry[part] = {k: _mean_se([r[part][k] for r in chosen]) for k in HEADLINE + ("accuracy",)}
            entry["train_seconds"] = _mean_se([r["train_seconds"] for r in chosen])
            per_method[method] = entry
        summary[held_out] = per_method
    write_json_atomic(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", summary_markdown(summary) + tests_markdown(runs))
    if summary:
        plot_summary(summary, out / "figures" / "cohort_metrics.png")
    return summary


LOWER_IS_BETTER = frozenset({"nll", "ece"})


def tests_markdown(runs: Sequence[Mapping[str, Any]]) -> str:
    """Per held-out group: GFlowOut against each other method on the held-out metrics, a paired t-test over
    seeds per cell (`gflowout.eval.downstream_tests`), with Holm's correction over each table; "" without
    GFlowOut runs."""
    from gflowout.eval.downstream_tests import reference_versus_baselines
    from gflowout.eval.report import METHOD_ORDER
    from gflowout.eval.tables import table_markdown

    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    blocks = []
    for held_out in sorted({r["held_out_group"] for r in runs}):
        chosen = [r for r in runs if r["held_out_group"] == held_out and "held_out" in r]
        methods = sorted({r["method"] for r in chosen}, key=lambda m: order.get(m, 99))
        values: dict[tuple[str, str], dict[int, float]] = {}
        for run in chosen:
            for metric in HEADLINE:
                values.setdefault((metric, run["method"]), {})[int(run["seed"])] = float(run["held_out"][metric])
        for lower in (False, True):
            metrics = [m for m in HEADLINE if (m in LOWER_IS_BETTER) == lower]
            table = reference_versus_baselines(
                f"held-out group `{held_out}`: is gflowout better than each method? "
                f"({'lower' if lower else 'higher'} is better; tests over seeds)",
                "metric",
                metrics,
                methods,
                {key: v for key, v in values.items() if key[0] in metrics},
                higher_is_better=not lower,
                digits=3,
            )
            if table is not None:
                blocks.append(table_markdown(table))
    return "\n".join(blocks)


def summary_markdown(summary: dict[str, Any]) -> str:
    """One table per held-out group and part: mean ± standard error over seeds."""
    lines = []
    for held_out, per_method in summary.items():
        parts = (
            ("held_out", f"held-out group `{held_out}` (trained on every other group)"),
            ("in_distribution", f"in-distribution test part of the training groups (fold: held-out `{held_out}`)"),
        )
        for part, title in parts:
            if not any(part in e for e in per_method.values()):
                continue
            lines += [
                f"### {title}",
                "",
                "| method | seeds | " + " | ".join(HEADLINE) + " |",
                "|---|---|" + "---|" * len(HEADLINE),
            ]
            for method, entry in per_method.items():
                if part not in entry:
                    continue
                cells = [
                    f"{m:.3f} ± {s:.3f}" if not math.isnan(s) else f"{m:.3f}"
                    for m, s in (entry[part][k] for k in HEADLINE)
                ]
                lines.append(f"| {method} | {len(entry['seeds'])} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)


def plot_summary(summary: dict[str, Any], path: Path) -> Path:
    """Mean ± s.e. per method of the headline metrics, in-distribution and held-out side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    held_out, per_method = next(iter(summary.items()))
    methods = list(per_method)
    metrics = ("macro_f1", "balanced_accuracy", "auroc", "nll", "ece")
    figure, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.2))
    for axis, metric in zip(axes, metrics):
        for offset, (part, colour) in enumerate((("in_distribution", "tab:blue"), ("held_out", "tab:red"))):
            points = [(i, *per_method[m][part][metric]) for i, m in enumerate(methods) if part in per_method[m]]
            if points:
                xs, means, errors = zip(*points)
                axis.errorbar(
                    np.array(xs) + (offset - 0.5) * 0.25,
                    means,
                    yerr=np.nan_to_num(errors),
                    fmt="o",
                    color=colour,
                    label=part.replace("_", "-"),
                    capsize=3,
                )
        axis.set_xticks(range(len(methods)), methods, rotation=60, fontsize=8)
        axis.set_title(metric)
    axes[0].legend(fontsize=7)
    figure.suptitle(f"leave-one-group-out: held-out {held_out} (mean ± s.e. over seeds)")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
