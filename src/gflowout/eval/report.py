"""Reports: aggregate runs over seeds and write Markdown tables, PNG figures and one HTML page.

`write_report(results_dir, out_dir)` reads every run under `results_dir`: benchmark result files (schema in
`gflowout.eval.evaluate`) and `gflowout train` run folders (clean test metrics only), groups them by (data
set, method) and reports each metric as mean +- standard error over seeds (standard error = sample standard
deviation / sqrt(n); a single seed has none and shows the mean alone). Per data set it writes the settings
the runs share, the summary table, the tests over seeds (`gflowout.eval.comparison`), the detail tables of
`build_tables`, the cost and the figures of `build_figures`, to `report.md`, `figures/*.png` and
`report.html` (the figures inline as base64, so the page is one self-contained file). The head and tail
tables are the lists `HEAD_TABLES` and `TAIL_TABLES`: a new table is one more function there.

Temperature scaling: a run evaluated with a temperature fitted on its validation split (section "ts" of
its result file) is also reported as the method "METHOD + TS" (`with_temperature_rows`), in every table
and figure that the tempered numbers exist for, next to the method itself. Selective prediction: a table
of AURC and accuracy at 90 / 95 / 99 % coverage per condition and score, and a figure of the
risk-coverage curves (mean over seeds, with a standard-error band).

Two kinds of corrupted test sets are kept apart: our generated "-style" shifts (section "shifts",
titled "generated ... -style shifts") and, when a run evaluated them, the PUBLISHED CIFAR-10-C /
CIFAR-100-C files (section "published_corruptions", titled "PUBLISHED CIFAR-10-C files"), each with
its own tables and figures.
"""

from __future__ import annotations

import base64
import html
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gflowout import __version__
from gflowout.eval import comparison, plots
from gflowout.eval.tables import Table, inline_html, table_html, table_markdown
from gflowout.results import load_report_runs, load_results

__all__ = ["Group", "Stat", "Table", "aggregate", "build_figures", "build_tables", "format_stat", "load_results",
           "mean_and_standard_error", "summarise_result", "summary_table", "table_html", "table_markdown",
           "write_report"]

CLEAN_METRICS = ("accuracy", "nll", "brier", "ece15", "ece10")
CURVE_METRICS = ("accuracy", "nll", "ece15")
OOD_METRICS = ("auroc", "aupr", "fpr95")
# Sections of a result file whose numeric leaves are aggregated over seeds.
SCALAR_SECTIONS = ("clean", "random_rotation", "shifts", "published_corruptions", "rotation_sweep", "ood", "uncertainty",
                   "selective", "temperature_scaling")
METHOD_ORDER = ("gflowout", "id_gflowout", "mc_dropout", "concrete", "contextual", "none", "ensemble")
TS_SUFFIX = " + TS"
# the sections of a result's "ts" block: the same as the run's own, with every sample's logits divided by T
TS_SECTIONS = ("clean", "random_rotation", "shifts", "published_corruptions", "rotation_sweep", "ood", "selective",
               "figures")
SELECTIVE_COLUMNS = (("aurc", "AURC"), ("accuracy_at_90", "acc @ 90%"), ("accuracy_at_95", "acc @ 95%"),
                     ("accuracy_at_99", "acc @ 99%"))
# Readable column names of the detail tables, with ↑ / ↓ for higher / lower is better.
METRIC_HEADERS = {"accuracy": "accuracy ↑", "nll": "NLL ↓", "brier": "Brier ↓", "ece15": "ECE (15 bins) ↓",
                  "ece10": "ECE (10 bins) ↓"}
OOD_HEADERS = {"auroc": "AUROC ↑", "aupr": "AUPR ↑", "fpr95": "FPR at 95% TPR ↓"}
UNCERTAINTY_HEADERS = {"uncertain_fraction": "uncertain fraction", "pavpu": "PAvPU ↑",
                       "accurate_given_certain": "P(accurate | certain) ↑",
                       "uncertain_given_inaccurate": "P(uncertain | inaccurate) ↑"}


def mean_and_standard_error(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and standard error (sample std with ddof=1 over sqrt(n)); NaN error for one value."""
    array = np.asarray([v for v in values if v is not None], dtype=float)
    if array.size == 0:
        return math.nan, math.nan
    if array.size == 1:
        return float(array[0]), math.nan
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(array.size))


class Stat(tuple):
    """(mean, standard error) of a metric over a group's seeds, with `with_value` of its `runs` having a value
    (a metric can be undefined in a run, e.g. accuracy among certain predictions when none is certain)."""

    with_value: int
    runs: int

    def __new__(cls, mean: float, standard_error: float, with_value: int, runs: int) -> Stat:
        stat = super().__new__(cls, (mean, standard_error))
        stat.with_value, stat.runs = with_value, runs
        return stat


def _leaves(tree: Any, prefix: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], float | None]]:
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from _leaves(value, prefix + (str(key),))
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool) or tree is None:
        yield prefix, tree


@dataclass
class Group:
    """The runs of one (data set, method): seeds and the mean +- standard error of every metric."""

    dataset: str
    method: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[tuple[str, ...], tuple[float, float]] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return sorted(int(r["seed"]) for r in self.runs)

    def get(self, *path: str) -> tuple[float, float]:
        return self.stats.get(tuple(str(p) for p in path), (math.nan, math.nan))


def _method_key(method: str) -> tuple[int, str, bool]:
    base = method[: -len(TS_SUFFIX)] if method.endswith(TS_SUFFIX) else method
    return (METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER), base, base != method)


def with_temperature_rows(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The runs, and for each run with a "ts" section one more: method "METHOD + TS" with the tempered sections,
    its "temperature_scaling" record, and the run's training time (TS costs no training)."""
    expanded = [dict(run) for run in runs]
    for run in runs:
        ts = run.get("ts")
        if not isinstance(ts, Mapping):
            continue
        derived = {key: run[key] for key in ("schema_version", "run_id", "seed", "dataset", "train_time_s") if key in run}
        derived.update({section: ts[section] for section in TS_SECTIONS if section in ts})
        derived["method"] = f"{run['method']}{TS_SUFFIX}"
        derived["temperature_scaling"] = run.get("temperature_scaling", {"temperature": ts.get("temperature")})
        expanded.append(derived)
    return expanded


def is_temperature_row(group: Group) -> bool:
    return group.method.endswith(TS_SUFFIX)


def aggregate(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[Group]]:
    """Group runs by data set then method (in a fixed method order, each method's "+ TS" row after it), with
    mean +- SE per metric path. Runs with a "ts" section also give a "METHOD + TS" group (`with_temperature_rows`)."""
    grouped: dict[tuple[str, str], Group] = {}
    for run in with_temperature_rows(runs):
        key = (run["dataset"], run["method"])
        grouped.setdefault(key, Group(*key)).runs.append(dict(run))
    by_dataset: dict[str, list[Group]] = defaultdict(list)
    for (dataset, _), group in sorted(grouped.items(), key=lambda item: (item[0][0], _method_key(item[0][1]))):
        values: dict[tuple[str, ...], list[float | None]] = defaultdict(list)
        for run in group.runs:
            for section in SCALAR_SECTIONS:
                for path, value in _leaves(run.get(section, {}), (section,)):
                    values[path].append(value)
            for timing in ("train_time_s", "eval_time_s"):
                if run.get(timing) is not None:
                    values[(timing,)].append(run[timing])
        group.stats = {
            path: Stat(*mean_and_standard_error(v), with_value=sum(x is not None for x in v), runs=len(group.runs))
            for path, v in values.items()
        }
        by_dataset[dataset].append(group)
    return dict(by_dataset)


# --- tables ------------------------------------------------------------------------------------
def format_stat(stat: tuple[float, float], digits: int = 4) -> str:
    """"mean ± SE" ("mean" for one value, "-" for none), with "(n=k)" when only k of the group's runs had a value."""
    mean, se = stat
    if mean is None or math.isnan(mean):
        return "-"
    text = f"{mean:.{digits}f}" if math.isnan(se) else f"{mean:.{digits}f} ± {se:.{digits}f}"
    if isinstance(stat, Stat) and stat.with_value < stat.runs:
        return f"{text} (n={stat.with_value})"
    return text


def _sorted_keys(keys: Iterable[str]) -> list[str]:
    def key(k: str) -> tuple[int, float | str]:
        try:
            return (0, float(k))
        except ValueError:
            return (1, k)
    return sorted(set(keys), key=key)


def _subkeys(groups: Sequence[Group], *prefix: str) -> list[str]:
    depth = len(prefix)
    return _sorted_keys(p[depth] for g in groups for p in g.stats if p[:depth] == prefix and len(p) > depth)


PUBLISHED_NOTE = ("The published corruption files of Hendrycks & Dietterich (2019), normalised with the "
                  "in-distribution training statistics; not comparable row by row with the generated -style shifts.")


def _corruption_sections(dataset: str, groups: Sequence[Group]) -> list[tuple[str, str, str]]:
    """(section, title label, first column) of the corrupted test sets the groups have: our generated
    shifts, then the published -C files, each named so the two are never confused."""
    sections = []
    if _subkeys(groups, "shifts"):
        sections.append(("shifts", "shifted test sets (generated here: MNIST-C / CIFAR-10-C-style shifts)", "shift"))
    if _subkeys(groups, "published_corruptions"):
        from gflowout.eval.evaluate import PUBLISHED_LABELS

        # (the "METHOD + TS" rows carry the corruptions but not the set's name: that is their method's)
        sets = sorted({str(r["published_set"]) for g in groups for r in g.runs
                       if r.get("published_corruptions") and r.get("published_set")})
        names = ", ".join(PUBLISHED_LABELS.get(n, n) for n in sets)
        sections.append(("published_corruptions", f"PUBLISHED {names} files (Hendrycks & Dietterich 2019)", "corruption"))
    return sections


def build_tables(dataset: str, groups: Sequence[Group]) -> list[Table]:
    """The detail tables of one data set: clean, rotation, shifts, rotation sweep, OOD, uncertainty."""
    methods = [g.method for g in groups]
    tables = [Table(
        f"{dataset}: clean test set",
        ["method", "seeds", *(METRIC_HEADERS[m] for m in CLEAN_METRICS)],
        [[g.method, str(len(g.runs)), *(format_stat(g.get("clean", m)) for m in CLEAN_METRICS)] for g in groups],
    )]
    if any(("random_rotation", "accuracy") in g.stats for g in groups):
        tables.append(Table(
            f"{dataset}: random rotation (uniform 0-360 degrees)",
            ["method", *(METRIC_HEADERS[m] for m in CLEAN_METRICS)],
            [[g.method, *(format_stat(g.get("random_rotation", m)) for m in CLEAN_METRICS)] for g in groups],
        ))
    for section, label, column in _corruption_sections(dataset, groups):
        for metric in CURVE_METRICS:
            rows = [
                [shift, severity, *(format_stat(g.get(section, shift, severity, metric)) for g in groups)]
                for shift in _subkeys(groups, section)
                for severity in _subkeys(groups, section, shift)
            ]
            if rows:
                tables.append(Table(f"{dataset}: {label}, {plots.METRIC_LABELS[metric]}",
                                    [column, "severity", *methods], rows,
                                    note=PUBLISHED_NOTE if section == "published_corruptions" else ""))
    angles = _subkeys(groups, "rotation_sweep")
    if angles:
        tables.append(Table(
            f"{dataset}: accuracy vs fixed rotation angle (degrees)",
            ["angle", *methods],
            [[angle, *(format_stat(g.get("rotation_sweep", angle, "accuracy")) for g in groups)] for angle in angles],
        ))
    for pair in _subkeys(groups, "ood"):
        tables.append(Table(
            f"OOD detection: {dataset} (in) vs {pair} (out)",
            ["method", "score", *(OOD_HEADERS[m] for m in OOD_METRICS)],
            [[g.method, plots.SCORE_LABELS.get(score, score), *(format_stat(g.get("ood", pair, score, metric)) for metric in OOD_METRICS)]
             for g in groups for score in _subkeys(groups, "ood", pair)],
            note="Higher AUROC / AUPR and lower FPR at 95% TPR are better; OOD is the positive class. "
                 "Scores: the negated max probability, the predictive entropy and the mutual information of "
                 "the S-sample predictive.",
        ))
    for condition in _subkeys(groups, "uncertainty"):
        alphas = _subkeys(groups, "uncertainty", condition)
        keys = _subkeys(groups, "uncertainty", condition, alphas[0]) if alphas else []
        tables.append(Table(
            f"{dataset}: paired t-test uncertainty metrics ({condition.replace('_', ' ')}; uncertain when p > alpha)",
            ["method", "alpha", *(UNCERTAINTY_HEADERS.get(k, k) for k in keys)],
            [[g.method, alpha, *(format_stat(g.get("uncertainty", condition, alpha, k)) for k in keys)]
             for g in groups for alpha in alphas],
        ))
    for condition in _subkeys(groups, "selective"):
        scores = _subkeys(groups, "selective", condition)
        tables.append(Table(
            f"{dataset}: selective prediction ({condition})",
            ["method", "score", *(label for _, label in SELECTIVE_COLUMNS)],
            [[g.method, score, *(format_stat(g.get("selective", condition, score, key)) for key, _ in SELECTIVE_COLUMNS)]
             for g in groups for score in scores if ("selective", condition, score, "aurc") in g.stats],
            note="Answer only where the confidence is at least a threshold: AURC is the area under the risk "
                 "(error rate among the answered) against coverage (fraction answered), lower is better; "
                 "accuracy at c is that of the most confident fraction c. Scores: max probability, negative "
                 "predictive entropy, negative mutual information of the S-sample predictive; ties are "
                 "admitted together.",
        ))
    scaled = [g for g in groups if is_temperature_row(g) and ("temperature_scaling", "temperature") in g.stats]
    if scaled:
        tables.append(Table(
            f"{dataset}: temperature scaling (T fitted on the validation split by NLL, Guo et al. 2017)",
            ["method", "T", "validation NLL", "validation NLL with T"],
            [[g.method, format_stat(g.get("temperature_scaling", "temperature"), 3),
              format_stat(g.get("temperature_scaling", "validation_nll")),
              format_stat(g.get("temperature_scaling", "validation_nll_scaled"))] for g in scaled],
            note="Rows METHOD + TS: the same trained network with every sample's logits divided by T; "
                 "T > 1 softens an over-confident predictive. It costs one pass over the validation split.",
        ))
    return tables


# --- figures -----------------------------------------------------------------------------------
def _pool_reliability(runs: Sequence[Mapping[str, Any]], condition: str) -> dict[str, list[float]] | None:
    """Pool reliability bins over seeds: counts add, per-bin means are count-weighted."""
    items = [r["figures"]["reliability"][condition] for r in runs
             if condition in r.get("figures", {}).get("reliability", {})]
    if not items:
        return None
    counts = np.sum([np.asarray(i["count"], dtype=float) for i in items], axis=0)
    pooled = {"edges": items[0]["edges"], "count": counts.tolist()}
    for key in ("confidence", "accuracy"):  # empty bins may hold NaN / null: they carry zero weight
        weighted = np.sum([np.nan_to_num(np.asarray(i[key], dtype=float)) * np.asarray(i["count"], dtype=float)
                           for i in items], axis=0)
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
        pooled = {"edges": edges[0].tolist(), "in": np.sum([p["in"] for p in parts], axis=0).tolist(),
                  "out": np.sum([p["out"] for p in parts], axis=0).tolist()}
        if "scale" in parts[0]:
            pooled["scale"] = parts[0]["scale"]
        return pooled
    offset = plots.SCORE_SHOWN.get(score, ("", 0.0))[1]
    low, high = min(e[0] for e in edges) + offset, max(e[-1] for e in edges) + offset
    bins = max(len(e) - 1 for e in edges)
    common = (np.geomspace(low, high, bins + 1) if scale == "log" and low > 0 else np.linspace(low, high, bins + 1))
    common -= offset
    moved = [_rebin({**p, "score": score}, common, scale == "log" and low > 0) for p in parts]
    return {"edges": common.tolist(), "scale": scale, "in": np.sum([m["in"] for m in moved], axis=0).tolist(),
            "out": np.sum([m["out"] for m in moved], axis=0).tolist()}


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
    items = [r["figures"]["risk_coverage"][condition] for r in runs
             if condition in r.get("figures", {}).get("risk_coverage", {})]
    for score in sorted({s for item in items for s in item}):
        curves = [item[score] for item in items if score in item]
        risks = np.asarray([c["risk"] for c in curves], dtype=float)
        stats = [mean_and_standard_error(column) for column in risks.T]
        pooled[score] = (curves[0]["coverage"], [s[0] for s in stats], [s[1] for s in stats])
    return pooled


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _series(group: Group, prefix: tuple[str, ...], keys: Sequence[str], metric: str) -> plots.Series:
    stats = [group.get(*prefix, k, metric) for k in keys]
    return [float(k) for k in keys], [s[0] for s in stats], [s[1] for s in stats]


def _severity_series(group: Group, section: str, severities: Sequence[str], metric: str) -> plots.Series:
    """Per severity: each run's mean of `metric` over the shifts, then mean ± SE of those over the seeds."""
    means, errors = [], []
    for severity in severities:
        per_run = [float(np.mean(values)) for run in group.runs
                   if (values := [m[severity][metric] for m in (run.get(section) or {}).values()
                                  if m.get(severity, {}).get(metric) is not None])]
        mean, se = mean_and_standard_error(per_run)
        means.append(mean)
        errors.append(se)
    return [float(s) for s in severities], means, errors


def seeds_phrase(groups: Sequence[Group], runs_of: Callable[[Group], int] | None = None) -> str:
    """"3 seeds per method" or "seeds per method: gflowout 3, none 1": how many runs each number rests on."""
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
            path = plots.plot_reliability(pooled, f"{dataset}: reliability, {label} test set (bins pooled over seeds)",  # type: ignore[arg-type]  # bins and one "ece"
                                          figure_dir / f"{name}_reliability_{condition}.png")
            counted = [g for g in groups if g.method in pooled]
            figures.append((f"Reliability diagrams, {dataset}, {label} test set: accuracy per confidence bin "
                            f"(15 bins) against the diagonal, and the number of test points per bin (log scale); "
                            f"the bins of all seeds pooled "
                            f"({seeds_phrase(counted, _figure_runs('reliability', condition))}); "
                            "the ECE in each title is the mean of the seeds' ECEs, as in the tables.", path))
    for section, label, _ in _corruption_sections(dataset, groups):
        published = section == "published_corruptions"
        stem = f"{name}_published" if published else name
        label = label.split(" (")[0] if published else "generated shifts"
        shifts = _subkeys(groups, section)
        severities = _sorted_keys(sev for shift in shifts for sev in _subkeys(groups, section, shift))
        per_metric = {metric: {g.method: _severity_series(g, section, severities, metric) for g in groups}
                      for metric in CURVE_METRICS}
        path = plots.plot_metric_curves(per_metric, "severity", f"{dataset}: {label}, mean over {len(shifts)} "
                                        + ("corruptions" if published else "shifts"),
                                        figure_dir / f"{stem}_severity.png")
        seeds = seeds_phrase(groups, _runs_with(section))
        figures.append((f"Accuracy, NLL and ECE (15 bins) against severity, {dataset}: each run's mean over the "
                        f"{len(shifts)} {label} (those evaluated at that severity), then the mean ± standard error "
                        f"over seeds ({seeds})"
                        + (" (one severity: bars)" if len(severities) == 1 else "") + ".", path))
        per_shift = {s: {g.method: _series(g, (section, s), _subkeys(groups, section, s), "accuracy") for g in groups}
                     for s in shifts}
        path = plots.plot_shift_grid(per_shift, "accuracy", f"{dataset}: {label}",
                                     figure_dir / f"{stem}_shift_accuracy.png")
        figures.append((f"Accuracy against severity per {'published corruption' if published else 'shift'} "
                        f"({label}), {dataset}: mean ± standard error over seeds ({seeds}); a shift evaluated at "
                        "one severity is drawn as bars.", path))
    angles = _subkeys(groups, "rotation_sweep")
    if angles:
        per_metric = {m: {g.method: _series(g, ("rotation_sweep",), angles, m) for g in groups} for m in CURVE_METRICS}
        path = plots.plot_metric_curves(per_metric, "rotation angle (degrees)", f"{dataset}: fixed rotations",
                                        figure_dir / f"{name}_rotation.png")
        figures.append((f"Accuracy, NLL and ECE (15 bins) against a fixed rotation angle, {dataset}: mean ± standard "
                        f"error over seeds ({seeds_phrase(groups, _runs_with('rotation_sweep'))}).", path))
    selective_conditions = sorted({c for g in groups for r in g.runs for c in r.get("figures", {}).get("risk_coverage", {})})
    for condition in selective_conditions:
        curves = {g.method: (c, len(g.runs)) for g in groups if (c := _pool_risk_coverage(g.runs, condition))}
        if curves:
            path = plots.plot_risk_coverage(curves, f"{dataset}: risk-coverage ({condition})",
                                            figure_dir / f"{name}_risk_coverage_{condition}.png")
            figures.append((f"Risk-coverage curves (selective prediction), {dataset}, {condition}: mean over seeds "
                            "with a standard-error band", path))
    pairs = sorted({p for g in groups for r in g.runs for p in r.get("figures", {}).get("ood_histograms", {})})
    for pair in pairs:
        hists = {g.method: h for g in groups if (h := _pool_ood(g.runs, "ood_histograms", pair))}
        counted = [g for g in groups if g.method in hists]
        seeds = seeds_phrase(counted, _figure_runs("ood_histograms", pair))
        path = plots.plot_ood_histograms(hists, f"OOD scores: {dataset} (in) vs {pair} (out), seeds pooled",
                                         figure_dir / f"{name}_ood_hist_{pair}.png")
        figures.append((f"OOD score histograms, {dataset} (in, blue) against {pair} (out, orange): the fraction of "
                        f"each set per bin, the counts of all seeds pooled ({seeds}); bins span the scores' own "
                        "range, log-spaced where they span decades"
                        + (" (these results predate that: they hold fixed bins over each score's whole range, so "
                           "the axis is cut to the occupied bins and the fraction is on a log scale where one bin "
                           "holds most points)" if _fixed_bins(groups, pair) else "") + ".", path))
        rocs = {g.method: r for g in groups if (r := _pool_ood(g.runs, "roc", pair))}
        if rocs:
            path = plots.plot_roc(rocs, f"OOD ROC: {dataset} vs {pair}, true-positive rate averaged over seeds",
                                  figure_dir / f"{name}_ood_roc_{pair}.png")
            figures.append((f"OOD ROC curves, {dataset} (in) against {pair} (out, the positive class): the seeds "
                            f"pooled by averaging their true-positive rates at each false-positive rate ({seeds}).",
                            path))
    return figures


def _fixed_bins(groups: Sequence[Group], pair: str) -> bool:
    """True when some run's histograms of `pair` have the old fixed full-range bins (no "scale" recorded)."""
    return any("scale" not in hist for g in groups for r in g.runs
               for hist in r.get("figures", {}).get("ood_histograms", {}).get(pair, {}).values())


def _figure_runs(kind: str, key: str) -> Callable[[Group], int]:
    def count(group: Group) -> int:
        return sum(1 for run in group.runs if key in run.get("figures", {}).get(kind, {}))
    return count


# --- the report --------------------------------------------------------------------------------
# The sections at the head of each data set, in order; each returns a table or None (nothing to show).
HEAD_TABLES: list[Callable[[str, Sequence[Group]], Table | None]] = [
    comparison.build_summary_table,
    comparison.build_significance_table,
]
# After the detail tables of `build_tables`.
TAIL_TABLES: list[Callable[[str, Sequence[Group]], Table | None]] = [
    comparison.build_cost_table,
]

_CSS = ("body{font-family:system-ui,sans-serif;max-width:1400px;margin:auto;padding:1em 1.5em;color:#222;"
        "line-height:1.4}"
        "h1{font-size:1.6em}h2{border-bottom:2px solid #ccc;margin-top:1.6em}h3{font-size:1.05em;margin-bottom:0.3em}"
        "table{border-collapse:collapse;margin:0.4em 0;font-size:0.8em}"
        "td,th{border:1px solid #bbb;padding:3px 5px;text-align:right;white-space:nowrap}"
        "th{background:#eee;white-space:normal;vertical-align:bottom}td.text{text-align:left}"
        "span.se{font-size:0.85em;color:#555}"
        "th:first-child{text-align:left}div.wide{overflow-x:auto}tbody tr:nth-child(even){background:#f7f7f7}"
        "table.settings td{text-align:left}p.note{font-size:0.85em;color:#444;max-width:60em}"
        "code{background:#f0f0f0;padding:0 3px;border-radius:3px}"
        "figure{margin:1.2em 0}figcaption{font-size:0.85em;color:#444;max-width:60em}"
        "img{max-width:100%;border:1px solid #ddd}")


def _settings_markdown(rows: Sequence[tuple[str, str]]) -> str:
    return "\n".join(["| setting | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]) + "\n"


def _settings_html(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{inline_html(k)}</td><td>{inline_html(v)}</td></tr>" for k, v in rows)
    return f"<table class=\"settings\"><tbody>{body}</tbody></table>"


def _sources_note(runs: Sequence[Mapping[str, Any]]) -> str:
    trained = [r for r in runs if str(r.get("source", "")).startswith("gflowout train")]
    if not trained:
        return ""
    return (f"{len(trained)} of the runs are `gflowout train` run folders: they record only the clean test metrics "
            "of the best checkpoint (accuracy, NLL, Brier, ECE with 15 bins), so their other cells are empty (-); "
            "`gflowout evaluate --full` gives the rest.")


def write_report(results_dir: str | Path, out_dir: str | Path, title: str = "gflowout report") -> Path:
    """Aggregate the runs under `results_dir` (benchmark result files and `gflowout train` run folders); write
    report.md, figures/ and report.html (figures inline, one self-contained file) to `out_dir`.

    Per data set: the settings, a summary table, the tests over seeds, the detail tables, the cost and the
    figures. Returns the path of the HTML page.
    """
    out_dir = Path(out_dir)
    figure_dir = out_dir / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    runs = load_report_runs(results_dir)
    by_dataset = aggregate(runs)
    intro = (f"{len(runs)} run(s) from `{results_dir}`, reported by gflowout {__version__}. Each cell is the mean ± "
             "standard error over seeds "
             "(one seed: the mean alone). Predictive: the mean softmax of S mask samples.")
    sources = _sources_note(runs)
    markdown = [f"# {title}", "", intro, "", *([sources, ""] if sources else [])]
    page = [f"<h1>{html.escape(title)}</h1><p>{inline_html(intro)}</p>"
            + (f"<p class=\"note\">{inline_html(sources)}</p>" if sources else "")]
    for dataset, groups in by_dataset.items():
        settings = comparison.settings_rows([r for g in groups if not is_temperature_row(g) for r in g.runs])
        markdown += [f"## {dataset}", "", "### Settings", "", _settings_markdown(settings)]
        page.append(f"<h2>{html.escape(dataset)}</h2><h3>Settings</h3>{_settings_html(settings)}")
        tables = [t for build in HEAD_TABLES if (t := build(dataset, groups)) is not None]
        tables += build_tables(dataset, groups)
        tables += [t for build in TAIL_TABLES if (t := build(dataset, groups)) is not None]
        for table in tables:
            markdown.append(table_markdown(table))
            page.append(table_html(table))
        for caption, path in build_figures(dataset, groups, figure_dir):
            relative = path.relative_to(out_dir).as_posix()
            markdown += [f"![{caption}]({relative})", "", f"*{caption}*", ""]
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            page.append(f"<figure><img alt=\"{html.escape(caption)}\" src=\"data:image/png;base64,{data}\">"
                        f"<figcaption>{inline_html(caption)}</figcaption></figure>")
    (out_dir / "report.md").write_text("\n".join(markdown))
    html_path = out_dir / "report.html"
    html_path.write_text(
        f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(page)}</body></html>"
    )
    return html_path


def summary_table(results_dir: str | Path) -> str:
    """A compact plain-text comparison (one row per data set and method) for the terminal.

    Columns: clean accuracy / NLL / ECE, accuracy under random rotation, mean accuracy over the shifted
    sets (generated here), the mean accuracy over the PUBLISHED -C files when any run has them, and
    AUROC of predictive entropy for each OOD set (mean over seeds).
    """
    return summary_of_results(load_report_runs(results_dir))


def summarise_result(result: Mapping[str, Any]) -> str:
    """`summary_table`'s one row, for a single result (`gflowout evaluate --full`), and its METHOD + TS row when the
    result has temperature-scaled sections."""
    return summary_of_results([result], temperature_rows=True)


def summary_of_results(runs: Sequence[Mapping[str, Any]], temperature_rows: bool = False) -> str:
    """The plain-text table of `summary_table` for results already loaded. Without `temperature_rows`, the runs' own
    rows only (the "+ TS" rows are in the report), so the demo's table reads as before."""
    groups = [g for gs in aggregate(runs).values() for g in gs if temperature_rows or not is_temperature_row(g)]
    pairs = _subkeys(groups, "ood")
    with_published = bool(_subkeys(groups, "published_corruptions"))
    header = ["data set", "method", "seeds", "accuracy", "NLL", "ECE", "rotated acc", "shifted acc",
              *(["published-C acc"] if with_published else []), *(f"AUROC {p}" for p in pairs)]
    rows = []
    for g in groups:
        shifted = [v[0] for path, v in g.stats.items() if path[0] == "shifts" and path[-1] == "accuracy"]
        published = [v[0] for path, v in g.stats.items() if path[0] == "published_corruptions" and path[-1] == "accuracy"]
        rows.append([g.dataset, g.method, str(len(g.runs)), *(format_stat((g.get("clean", m)[0], math.nan))
                     for m in ("accuracy", "nll", "ece15")),
                     format_stat((g.get("random_rotation", "accuracy")[0], math.nan)),
                     format_stat((float(np.mean(shifted)) if shifted else math.nan, math.nan)),
                     *([format_stat((float(np.mean(published)) if published else math.nan, math.nan))]
                       if with_published else []),
                     *(format_stat((g.get("ood", p, "predictive_entropy", "auroc")[0], math.nan)) for p in pairs)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
