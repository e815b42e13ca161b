"""Reports: aggregate result files over seeds and write Markdown tables, PNG figures and one HTML page.

`write_report(results_dir, out_dir)` reads every result file under `results_dir` (schema in
`gflowout.eval.evaluate`), groups the runs by (data set, method), and reports each metric as
mean +- standard error over seeds (standard error = sample standard deviation / sqrt(n); a single
seed has none and shows the mean alone). It writes `report.md`, `figures/*.png` and `report.html`
(the same tables, figures inline as base64, so the page is one self-contained file).

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gflowout.eval import plots
from gflowout.experiments.results import load_results

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


def mean_and_standard_error(values: Sequence[float]) -> tuple[float, float]:
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

    def __new__(cls, mean: float, standard_error: float, with_value: int, runs: int) -> "Stat":
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


def is_temperature_row(group: "Group") -> bool:
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
@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


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

        sets = sorted({str(r.get("published_set")) for g in groups for r in g.runs if r.get("published_corruptions")})
        names = ", ".join(PUBLISHED_LABELS.get(n, n) for n in sets)
        sections.append(("published_corruptions", f"PUBLISHED {names} files (Hendrycks & Dietterich 2019)", "corruption"))
    return sections


def build_tables(dataset: str, groups: Sequence[Group]) -> list[Table]:
    """The report's tables for one data set: clean, shifts, rotation, OOD, uncertainty, cost."""
    methods = [g.method for g in groups]
    tables = [Table(
        f"{dataset}: clean test set",
        ["method", "seeds", *CLEAN_METRICS],
        [[g.method, str(len(g.runs)), *(format_stat(g.get("clean", m)) for m in CLEAN_METRICS)] for g in groups],
    )]
    if any(("random_rotation", "accuracy") in g.stats for g in groups):
        tables.append(Table(
            f"{dataset}: random rotation (uniform 0-360 degrees)",
            ["method", *CLEAN_METRICS],
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
            ["method", "score", "AUROC", "AUPR", "FPR95"],
            [[g.method, score, *(format_stat(g.get("ood", pair, score, metric)) for metric in OOD_METRICS)]
             for g in groups for score in _subkeys(groups, "ood", pair)],
            note="Higher AUROC / AUPR and lower FPR at 95% TPR are better; OOD is the positive class. "
                 "Scores: the negated max probability, the predictive entropy and the mutual information of "
                 "the S-sample predictive.",
        ))
    for condition in _subkeys(groups, "uncertainty"):
        alphas = _subkeys(groups, "uncertainty", condition)
        keys = _subkeys(groups, "uncertainty", condition, alphas[0]) if alphas else []
        tables.append(Table(
            f"{dataset}: paired t-test uncertainty metrics ({condition}; uncertain when p > alpha)",
            ["method", "alpha", *keys],
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
    tables.append(Table(
        f"{dataset}: cost (seconds per run)",
        ["method", "train", "evaluate"],
        [[g.method, format_stat(g.get("train_time_s"), 1), format_stat(g.get("eval_time_s"), 1)] for g in groups
         if not is_temperature_row(g)],
        note="A deep ensemble (ensemble) trains M members: about M x one training.",
    ))
    return tables


def table_markdown(table: Table) -> str:
    lines = [f"### {table.title}", "", "| " + " | ".join(table.header) + " |",
             "|" + "|".join("---" for _ in table.header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    if table.note:
        lines += ["", table.note]
    return "\n".join(lines) + "\n"


def table_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    note = f"<p>{html.escape(table.note)}</p>" if table.note else ""
    return f"<h3>{html.escape(table.title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


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


def _pool_ood(runs: Sequence[Mapping[str, Any]], kind: str, pair: str) -> dict[str, dict[str, list[float]]]:
    """Pool OOD figure material over seeds: histogram counts add, ROC true-positive rates average."""
    pooled: dict[str, dict[str, list[float]]] = {}
    items = [r["figures"][kind][pair] for r in runs if pair in r.get("figures", {}).get(kind, {})]
    for score in sorted({s for item in items for s in item}):
        parts = [item[score] for item in items if score in item]
        if kind == "ood_histograms":
            pooled[score] = {"edges": parts[0]["edges"],
                             "in": np.sum([p["in"] for p in parts], axis=0).tolist(),
                             "out": np.sum([p["out"] for p in parts], axis=0).tolist()}
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


def build_figures(dataset: str, groups: Sequence[Group], figure_dir: Path) -> list[tuple[str, Path]]:
    """Draw every figure of one data set; returns (caption, path) pairs."""
    figures: list[tuple[str, Path]] = []
    name = dataset.replace("/", "_")
    conditions = sorted({c for g in groups for r in g.runs for c in r.get("figures", {}).get("reliability", {})})
    for condition in conditions:
        pooled = {g.method: p for g in groups if (p := _pool_reliability(g.runs, condition)) is not None}
        if pooled:
            path = plots.plot_reliability(pooled, f"{dataset}: reliability ({condition})",
                                          figure_dir / f"{name}_reliability_{condition}.png")
            figures.append((f"Reliability diagrams, {dataset}, {condition}", path))
    for section, label, _ in _corruption_sections(dataset, groups):
        published = section == "published_corruptions"
        stem = f"{name}_published" if published else name
        label = label.split(" (")[0] if published else "generated shifts"
        shifts = _subkeys(groups, section)
        severities = _sorted_keys(sev for shift in shifts for sev in _subkeys(groups, section, shift))
        per_metric: dict[str, dict[str, plots.Series]] = {}
        for metric in CURVE_METRICS:
            per_metric[metric] = {}
            for g in groups:
                means = [_nanmean([g.get(section, s, sev, metric)[0] for s in shifts]) for sev in severities]
                per_metric[metric][g.method] = ([float(s) for s in severities], means, [math.nan] * len(means))
        path = plots.plot_metric_curves(per_metric, "severity", f"{dataset}: {label}, mean over {len(shifts)}",
                                        figure_dir / f"{stem}_severity.png")
        figures.append((f"Accuracy, NLL and ECE vs severity (mean over {label}), {dataset}", path))
        per_shift = {s: {g.method: _series(g, (section, s), _subkeys(groups, section, s), "accuracy") for g in groups}
                     for s in shifts}
        path = plots.plot_shift_grid(per_shift, "accuracy", f"{dataset}: {label}", figure_dir / f"{stem}_shift_accuracy.png")
        figures.append((f"Accuracy vs severity per {'published corruption' if published else 'shift'} ({label}), {dataset}", path))
    angles = _subkeys(groups, "rotation_sweep")
    if angles:
        per_metric = {m: {g.method: _series(g, ("rotation_sweep",), angles, m) for g in groups} for m in CURVE_METRICS}
        path = plots.plot_metric_curves(per_metric, "rotation angle (degrees)", f"{dataset}: fixed rotations",
                                        figure_dir / f"{name}_rotation.png")
        figures.append((f"Accuracy, NLL and ECE vs rotation angle, {dataset}", path))
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
        path = plots.plot_ood_histograms(hists, f"OOD scores: {dataset} vs {pair}", figure_dir / f"{name}_ood_hist_{pair}.png")
        figures.append((f"OOD score histograms, {dataset} (in) vs {pair} (out)", path))
        rocs = {g.method: r for g in groups if (r := _pool_ood(g.runs, "roc", pair))}
        if rocs:
            path = plots.plot_roc(rocs, f"OOD ROC: {dataset} vs {pair}", figure_dir / f"{name}_ood_roc_{pair}.png")
            figures.append((f"OOD ROC curves, {dataset} (in) vs {pair} (out)", path))
    return figures


# --- the report --------------------------------------------------------------------------------
_CSS = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
        "table{border-collapse:collapse;margin:0.5em 0;font-size:0.85em}"
        "td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}th{background:#eee}"
        "img{max-width:100%;border:1px solid #ddd}")


def write_report(results_dir: str | Path, out_dir: str | Path, title: str = "gflowout report") -> Path:
    """Aggregate the result files under `results_dir`; write report.md, figures/ and report.html to `out_dir`.

    Returns the path of the HTML page.
    """
    out_dir = Path(out_dir)
    figure_dir = out_dir / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    runs = load_results(results_dir)
    by_dataset = aggregate(runs)
    intro = (f"{len(runs)} run(s) from `{results_dir}`. Each cell is the mean ± standard error over seeds "
             "(one seed: the mean alone). Predictive: the mean softmax of S mask samples.")
    markdown = [f"# {title}", "", intro, ""]
    page = [f"<h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>"]
    for dataset, groups in by_dataset.items():
        markdown += [f"## {dataset}", ""]
        page.append(f"<h2>{html.escape(dataset)}</h2>")
        for table in build_tables(dataset, groups):
            markdown.append(table_markdown(table))
            page.append(table_html(table))
        for caption, path in build_figures(dataset, groups, figure_dir):
            relative = path.relative_to(out_dir).as_posix()
            markdown += [f"![{caption}]({relative})", ""]
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            page.append(f"<figure><img alt=\"{html.escape(caption)}\" src=\"data:image/png;base64,{data}\">"
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
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
    return summary_of_results(load_results(results_dir))


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
