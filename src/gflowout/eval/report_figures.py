"""The figures of a report, per data set: the per-run figure material of the result files pooled over seeds
(reliability bins, OOD histograms re-binned onto common edges, ROC and risk-coverage curves) and the metric
curves against severity and rotation angle, drawn by `gflowout.eval.plots`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gflowout.eval import plots
from gflowout.eval.aggregate import Group, _sorted_keys, _subkeys, mean_and_standard_error
from gflowout.eval.report_conformal import build_conformal_figures
from gflowout.eval.report_tables import CURVE_METRICS, _corruption_sections


def _pool_reliability(runs: Sequence[Mapping[str, Any]], condition: str) -> dict[str, list[float]] | None:
    """Pool reliability bins over seeds: counts add, per-bin means are count-weighted."""
    items = [
        r["figures"]["reliability"][condition] for r in runs if condition in r.get("figures", {}).get("reliability", {})
    ]
    if not items:
        return None
    counts = np.sum([np.asarray(i["count"], dtype=float) for i in items], axis=0)
    pooled = {"edges": items[0]["edges"], "count": counts.tolist()}
    for key in ("confidence", "accuracy"):  # empty bins may hold NaN / null: they carry zero weight
        weighted = np.sum(
            [np.nan_to_num(np.asarray(i[key], dtype=float)) * np.asarray(i["count"], dtype=float) for i in items],
            axis=0,
        )
        pooled[key] = np.divide(weighted, counts, out=np.zeros_like(weighted), where=counts > 0).tolist()
    return pooled


def _rebin(part: Mapping[str, Any], edges: np.ndarray, log: bool) -> dict[str, np.ndarray]:
    """A histogram's counts moved onto other `edges` that span it, spread evenly within each source bin
    (evenly in log units on a log scale); totals are kept."""

    def coordinate(values: np.ndarray) -> np.ndarray:
        return np.log(values) if log else values

    offset = plots.SCORE_SHOWN.get(part.get("score", ""), ("", 0.0))[1]
    source = coordinate(np.asarray(part["edges"], dtype=float) + offset)
    target = coordinate(edges + offset)
    out = {}
    for key in ("in", "out"):
        cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(part[key], dtype=float))])
        out[key] = np.diff(np.interp(target, source, cumulative))
    return out


def _pool_histograms(parts: Sequence[Mapping[str, Any]], score: str) -> dict[str, Any]:
    """Pool one score's histograms over seeds: counts add on shared edges; runs with edges of their own (chosen
    from each run's data) are re-binned onto common edges spanning them all first."""
    edges = [np.asarray(p["edges"], dtype=float) for p in parts]
    scale = "log" if all(p.get("scale") == "log" for p in parts) else "linear"
    if all(e.shape == edges[0].shape and np.array_equal(e, edges[0]) for e in edges):
        pooled = {
            "edges": edges[0].tolist(),
            "in": np.sum([p["in"] for p in parts], axis=0).tolist(),
            "out": np.sum([p["out"] for p in parts], axis=0).tolist(),
        }
        if "scale" in parts[0]:
            pooled["scale"] = parts[0]["scale"]
        return pooled
    offset = plots.SCORE_SHOWN.get(score, ("", 0.0))[1]
    low, high = min(e[0] for e in edges) + offset, max(e[-1] for e in edges) + offset
    bins = max(len(e) - 1 for e in edges)
    common = np.geomspace(low, high, bins + 1) if scale == "log" and low > 0 else np.linspace(low, high, bins + 1)
    common -= offset
    moved = [_rebin({**p, "score": score}, common, scale == "log" and low > 0) for p in parts]
    return {
        "edges": common.tolist(),
        "scale": scale,
        "in": np.sum([m["in"] for m in moved], axis=0).tolist(),
        "out": np.sum([m["out"] for m in moved], axis=0).tolist(),
    }


def _pool_ood(runs: Sequence[Mapping[str, Any]], kind: str, pair: str) -> dict[str, dict[str, list[float]]]:
    """Pool OOD figure material over seeds: histogram counts add, ROC true-positive rates average."""
    pooled: dict[str, dict[str, list[float]]] = {}
    items = [r["figures"][kind][pair] for r in runs if pair in r.get("figures", {}).get(kind, {})]
    for score in sorted({s for item in items for s in item}):
        parts = [item[score] for item in items if score in item]
        if kind == "ood_histograms":
            pooled[score] = _pool_histograms(parts, score)
        else:
            pooled[score] = {"fpr": parts[0]["fpr"], "tpr": np.mean([p["tpr"] for p in parts], axis=0).tolist()}
    return pooled


def _pool_risk_coverage(runs: Sequence[Mapping[str, Any]], condition: str) -> dict[str, plots.Series]:
    """Risk-coverage curves of one condition, per score: the mean risk over seeds at each grid coverage and its
    standard error."""
    pooled: dict[str, plots.Series] = {}
    items = [
        r["figures"]["risk_coverage"][condition]
        for r in runs
        if condition in r.get("figures", {}).get("risk_coverage", {})
    ]
    for score in sorted({s for item in items for s in item}):
        curves = [item[score] for item in items if score in item]
        risks = np.asarray([c["risk"] for c in curves], dtype=float)
        stats = [mean_and_standard_error(column) for column in risks.T]
        pooled[score] = (curves[0]["coverage"], [s[0] for s in stats], [s[1] for s in stats])
    return pooled


def _series(group: Group, prefix: tuple[str, ...], keys: Sequence[str], metric: str) -> plots.Series:
    stats = [group.get(*prefix, k, metric) for k in keys]
    return [float(k) for k in keys], [s[0] for s in stats], [s[1] for s in stats]


def _severity_series(group: Group, section: str, severities: Sequence[str], metric: str) -> plots.Series:
    """Per severity: each run's mean of `metric` over the shifts, then mean ± SE of those over the seeds."""
    means, errors = [], []
    for severity in severities:
        per_run = [
            float(np.mean(values))
            for run in group.runs
            if (
                values := [
                    m[severity][metric]
                    for m in (run.get(section) or {}).values()
                    if m.get(severity, {}).get(metric) is not None
                ]
            )
        ]
        mean, se = mean_and_standard_error(per_run)
        means.append(mean)
        errors.append(se)
    return [float(s) for s in severities], means, errors


def seeds_phrase(groups: Sequence[Group], runs_of: Callable[[Group], int] | None = None) -> str:
    """ "3 seeds per method" or "seeds per method: gflowout 3, none 1": how many runs each number rests on."""
    counts = {g.method: (runs_of(g) if runs_of else len(g.runs)) for g in groups}
    distinct = set(counts.values())
    if len(distinct) == 1:
        n = distinct.pop()
        return f"{n} seed{'s' if n != 1 else ''} per method"
    return "seeds per method: " + ", ".join(f"{m} {n}" for m, n in counts.items())


def _runs_with(section: str, *keys: str) -> Callable[[Group], int]:
    def count(group: Group) -> int:
        return sum(1 for run in group.runs if _has(run.get(section), keys))

    return count


def _has(tree: Any, keys: Sequence[str]) -> bool:
    for key in keys:
        if not isinstance(tree, Mapping) or key not in tree:
            return False
        tree = tree[key]
    return bool(tree)


def build_figures(dataset: str, groups: Sequence[Group], figure_dir: Path) -> list[tuple[str, Path]]:
    """Draw every figure of one data set; returns (caption, path) pairs, each caption saying what is plotted
    and over how many seeds."""
    figures: list[tuple[str, Path]] = []
    name = dataset.replace("/", "_")
    conditions = sorted({c for g in groups for r in g.runs for c in r.get("figures", {}).get("reliability", {})})
    for condition in conditions:
        pooled = {}
        for g in groups:
            if (bins := _pool_reliability(g.runs, condition)) is not None:
                pooled[g.method] = {**bins, "ece": g.get(condition, "ece15")[0]}
        if pooled:
            label = condition.replace("_", " ")
            path = plots.plot_reliability(
                pooled,  # type: ignore[arg-type]  # bins and one "ece"
                f"{dataset}: reliability, {label} test set (bins pooled over seeds)",
                figure_dir / f"{name}_reliability_{condition}.png",
            )
            counted = [g for g in groups if g.method in pooled]
            figures.append(
                (
                    f"Reliability diagrams, {dataset}, {label} test set: accuracy per confidence bin "
                    f"(15 bins) against the diagonal, and the number of test points per bin (log scale); "
                    f"the bins of all seeds pooled "
                    f"({seeds_phrase(counted, _figure_runs('reliability', condition))}); "
                    "the ECE in each title is the mean of the seeds' ECEs, as in the tables.",
                    path,
                )
            )
    for section, label, _ in _corruption_sections(dataset, groups):
        published = section == "published_corruptions"
        stem = f"{name}_published" if published else name
        label = label.split(" (")[0] if published else "generated shifts"
        shifts = _subkeys(groups, section)
        severities = _sorted_keys(sev for shift in shifts for sev in _subkeys(groups, section, shift))
        per_metric = {
            metric: {g.method: _severity_series(g, section, severities, metric) for g in groups}
            for metric in CURVE_METRICS
        }
        path = plots.plot_metric_curves(
            per_metric,
            "severity",
            f"{dataset}: {label}, mean over {len(shifts)} " + ("corruptions" if published else "shifts"),
            figure_dir / f"{stem}_severity.png",
        )
        seeds = seeds_phrase(groups, _runs_with(section))
        figures.append(
            (
                f"Accuracy, NLL and ECE (15 bins) against severity, {dataset}: each run's mean over the "
                f"{len(shifts)} {label} (those evaluated at that severity), then the mean ± standard error "
                f"over seeds ({seeds})" + (" (one severity: bars)" if len(severities) == 1 else "") + ".",
                path,
            )
        )
        per_shift = {
            s: {g.method: _series(g, (section, s), _subkeys(groups, section, s), "accuracy") for g in groups}
            for s in shifts
        }
        path = plots.plot_shift_grid(
            per_shift, "accuracy", f"{dataset}: {label}", figure_dir / f"{stem}_shift_accuracy.png"
        )
        figures.append(
            (
                f"Accuracy against severity per {'published corruption' if published else 'shift'} "
                f"({label}), {dataset}: mean ± standard error over seeds ({seeds}); a shift evaluated at "
                "one severity is drawn as bars.",
                path,
            )
        )
    angles = _subkeys(groups, "rotation_sweep")
    if angles:
        per_metric = {m: {g.method: _series(g, ("rotation_sweep",), angles, m) for g in groups} for m in CURVE_METRICS}
        path = plots.plot_metric_curves(
            per_metric, "rotation angle (degrees)", f"{dataset}: fixed rotations", figure_dir / f"{name}_rotation.png"
        )
        figures.append(
            (
                f"Accuracy, NLL and ECE (15 bins) against a fixed rotation angle, {dataset}: mean ± standard "
                f"error over seeds ({seeds_phrase(groups, _runs_with('rotation_sweep'))}).",
                path,
            )
        )
    selective_conditions = sorted(
        {c for g in groups for r in g.runs for c in r.get("figures", {}).get("risk_coverage", {})}
    )
    for condition in selective_conditions:
        curves = {g.method: (c, len(g.runs)) for g in groups if (c := _pool_risk_coverage(g.runs, condition))}
        if curves:
            path = plots.plot_risk_coverage(
                curves, f"{dataset}: risk-coverage ({condition})", figure_dir / f"{name}_risk_coverage_{condition}.png"
            )
            figures.append(
                (
                    f"Risk-coverage curves (selective prediction), {dataset}, {condition}: mean over seeds "
                    "with a standard-error band",
                    path,
                )
            )
    figures += build_conformal_figures(dataset, groups, figure_dir, seeds_phrase)
    pairs = sorted({p for g in groups for r in g.runs for p in r.get("figures", {}).get("ood_histograms", {})})
    for pair in pairs:
        hists = {g.method: h for g in groups if (h := _pool_ood(g.runs, "ood_histograms", pair))}
        counted = [g for g in groups if g.method in hists]
        seeds = seeds_phrase(counted, _figure_runs("ood_histograms", pair))
        path = plots.plot_ood_histograms(
            hists,
            f"OOD scores: {dataset} (in) vs {pair} (out), seeds pooled",
            figure_dir / f"{name}_ood_hist_{pair}.png",
        )
        figures.append(
            (
                f"OOD score histograms, {dataset} (in, blue) against {pair} (out, orange): the fraction of "
                f"each set per bin, the counts of all seeds pooled ({seeds}); bins span the scores' own "
                "range, log-spaced where they span decades"
                + (
                    " (these results predate that: they hold fixed bins over each score's whole range, so "
                    "the axis is cut to the occupied bins and the fraction is on a log scale where one bin "
                    "holds most points)"
                    if _fixed_bins(groups, pair)
                    else ""
                )
                + ".",
                path,
            )
        )
        rocs = {g.method: r for g in groups if (r := _pool_ood(g.runs, "roc", pair))}
        if rocs:
            path = plots.plot_roc(
                rocs,
                f"OOD ROC: {dataset} vs {pair}, true-positive rate averaged over seeds",
                figure_dir / f"{name}_ood_roc_{pair}.png",
            )
            figures.append(
                (
                    f"OOD ROC curves, {dataset} (in) against {pair} (out, the positive class): the seeds "
                    f"pooled by averaging their true-positive rates at each false-positive rate ({seeds}).",
                    path,
                )
            )
    return figures


def _fixed_bins(groups: Sequence[Group], pair: str) -> bool:
    """True when some run's histograms of `pair` have the old fixed full-range bins (no "scale" recorded)."""
    return any(
        "scale" not in hist
        for g in groups
        for r in g.runs
        for hist in r.get("figures", {}).get("ood_histograms", {}).get(pair, {}).values()
    )


def _figure_runs(kind: str, key: str) -> Callable[[Group], int]:
    def count(group: Group) -> int:
        return sum(1 for run in group.runs if key in run.get("figures", {}).get(kind, {}))

    return count
