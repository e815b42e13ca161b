"""The head of a report: the settings the runs share (`report_settings`), one summary table, each run's values
seed by seed, the cost; the tests over seeds on the same columns are `gflowout.eval.significance`.

Every summary column is a `Column` of `summary_columns`: a readable name, whether higher or lower is better,
and how to read one run's value. The summary table, the significance table and the README's compact table
all take their numbers from the same per-run values, so they cannot disagree. New rows or columns (a
post-hoc method, another metric) are a new `Column` in `SUMMARY_COLUMNS` or a new entry of a table list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gflowout.eval.aggregate import is_temperature_row
from gflowout.eval.report_settings import SETTINGS, settings_rows
from gflowout.eval.tables import Table

if TYPE_CHECKING:
    from gflowout.eval.aggregate import Group

__all__ = [
    "COST_REFERENCE",
    "OOD_SCORE",
    "REFERENCE_METHOD",
    "SETTINGS",
    "SUMMARY_COLUMNS",
    "SUMMARY_NOTE",
    "Column",
    "Value",
    "best_rows",
    "build_cost_table",
    "build_per_seed_table",
    "build_summary_table",
    "format_mean_se",
    "mean_corrupted_accuracy",
    "mean_se",
    "ood_column",
    "settings_rows",
    "summary_columns",
    "values_by_seed",
]

REFERENCE_METHOD = "gflowout"
COST_REFERENCE = "mc_dropout"
OOD_SCORE = "predictive_entropy"

Value = Callable[[Mapping[str, Any]], "float | None"]


@dataclass(frozen=True)
class Column:
    """One summary column: its key, readable name, direction and how to read a run's value (None: absent)."""

    key: str
    label: str
    higher_is_better: bool
    value: Value
    digits: int = 4

    @property
    def header(self) -> str:
        return f"{self.label} {'↑' if self.higher_is_better else '↓'}"


def _path(*keys: str) -> Value:
    def read(run: Mapping[str, Any]) -> float | None:
        node: Any = run
        for key in keys:
            if not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None

    return read


def mean_corrupted_accuracy(run: Mapping[str, Any]) -> float | None:
    """The mean accuracy over every (shift, severity) of the run's generated shifts; None without shifts."""
    values = [m.get("accuracy") for levels in (run.get("shifts") or {}).values() for m in levels.values()]
    values = [float(v) for v in values if v is not None]
    return float(np.mean(values)) if values else None


SUMMARY_COLUMNS: list[Column] = [
    Column("clean_accuracy", "accuracy", True, _path("clean", "accuracy")),
    Column("clean_nll", "NLL", False, _path("clean", "nll")),
    Column("clean_ece15", "ECE (15 bins)", False, _path("clean", "ece15")),
    Column("clean_brier", "Brier", False, _path("clean", "brier")),
    Column("rotation_accuracy", "rotated accuracy", True, _path("random_rotation", "accuracy")),
    Column("rotation_nll", "rotated NLL", False, _path("random_rotation", "nll")),
    Column("corrupted_accuracy", "corrupted accuracy (mean)", True, mean_corrupted_accuracy),
]


def ood_column(ood_set: str, score: str = OOD_SCORE) -> Column:
    """The AUROC column of one OOD set (OOD the positive class) for one score."""
    return Column(
        f"ood_{ood_set}",
        f"AUROC {ood_set}" if score == OOD_SCORE else f"AUROC {ood_set} ({score})",
        True,
        _path("ood", ood_set, score, "auroc"),
    )


def summary_columns(runs: Sequence[Mapping[str, Any]]) -> list[Column]:
    """The columns that at least one run has a value for: `SUMMARY_COLUMNS`, then one AUROC per OOD set."""
    ood_sets = sorted({name for run in runs for name in (run.get("ood") or {})})
    columns = [*SUMMARY_COLUMNS, *(ood_column(name) for name in ood_sets)]
    return [c for c in columns if any(c.value(run) is not None for run in runs)]


def values_by_seed(group: Group, column: Column) -> dict[int, float]:
    """{seed: value} of one column over a group's runs (runs without a value left out)."""
    out = {}
    for run in group.runs:
        value = column.value(run)
        if value is not None and math.isfinite(value):
            out[int(run["seed"])] = value
    return out


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error (ddof 1 over sqrt n); NaN mean for none, NaN error for one value."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return math.nan, math.nan
    if array.size == 1:
        return float(array[0]), math.nan
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(array.size))


def format_mean_se(mean: float, se: float, digits: int = 4) -> str:
    """ "mean ± SE", "mean" for one seed, "-" for none."""
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" if math.isnan(se) else f"{mean:.{digits}f} ± {se:.{digits}f}"


# --- the summary table -----------------------------------------------------------------------------
SUMMARY_NOTE = (
    "Mean ± standard error over seeds (one seed: the mean alone). Bold marks the best mean of each "
    "column, not a significant win: the significance table below says which differences the seeds "
    "support. ↑ higher is better, ↓ lower is better. Rotated: each test image turned by a random "
    "angle, uniform 0-360 degrees. Corrupted accuracy: the mean over every generated shift and "
    "severity. AUROC: detecting the named OOD set (the positive class) by the predictive entropy."
)


def best_rows(means: Sequence[float], higher_is_better: bool) -> set[int]:
    """Rows holding the best finite mean (all of them on a tie)."""
    finite = [m for m in means if not math.isnan(m)]
    if not finite:
        return set()
    best = max(finite) if higher_is_better else min(finite)
    return {i for i, m in enumerate(means) if not math.isnan(m) and m == best}


def build_summary_table(dataset: str, groups: Sequence[Group], columns: Sequence[Column] | None = None) -> Table:
    """One row per method: seeds and mean ± SE of every summary column, the best mean per column in bold. Bold
    compares like with like: where methods have different numbers of seeds, only the rows with the most seeds
    compete for it (one lucky seed of a method still running must not outshine three seeds' means)."""
    columns = list(columns) if columns is not None else summary_columns([r for g in groups for r in g.runs])
    cells = [[mean_se(list(values_by_seed(g, c).values())) for c in columns] for g in groups]
    most = max((len(g.runs) for g in groups), default=0)
    fewer = [g.method for g in groups if len(g.runs) < most]
    note = SUMMARY_NOTE
    if fewer:
        note += (
            f" Bold is given among the rows with {most} seeds only: the means of fewer seeds "
            f"({', '.join(fewer)}) are not ranked."
        )
    table = Table(
        f"{dataset}: summary",
        ["method", "seeds", *(c.header for c in columns)],
        [
            [g.method, str(len(g.runs)), *(format_mean_se(m, s, c.digits) for (m, s), c in zip(row, columns))]
            for g, row in zip(groups, cells)
        ],
        note=note,
    )
    if len(groups) > 1:
        for j, column in enumerate(columns):
            ranked = [row[j][0] if len(g.runs) == most else math.nan for g, row in zip(groups, cells)]
            for i in best_rows(ranked, column.higher_is_better):
                table.bold.add((i, 2 + j))
    return table


def build_per_seed_table(
    dataset: str, groups: Sequence[Group], columns: Sequence[Column] | None = None
) -> Table | None:
    """The summary columns run by run, one row per method and seed: the numbers the summary averages and the
    tests over seeds compare, so that a reader can check both. None when no method has two seeds (the summary
    already shows every value)."""
    if all(len(g.runs) < 2 for g in groups):
        return None
    columns = list(columns) if columns is not None else summary_columns([r for g in groups for r in g.runs])
    rows = []
    for g in groups:
        by_seed = [values_by_seed(g, c) for c in columns]
        for seed in sorted(int(r["seed"]) for r in g.runs):
            rows.append(
                [
                    g.method,
                    str(seed),
                    *(f"{v[seed]:.{c.digits}f}" if seed in v else "-" for v, c in zip(by_seed, columns)),
                ]
            )
    return Table(
        f"{dataset}: the summary columns seed by seed",
        ["method", "seed", *(c.header for c in columns)],
        rows,
        note="Each run's own value: the summary table's means and standard errors are taken over these rows, and "
        "the tests over seeds pair them by seed. -: the run has no value for the column.",
    )


# --- cost ------------------------------------------------------------------------------------------
def build_cost_table(dataset: str, groups: Sequence[Group], reference: str = COST_REFERENCE) -> Table | None:
    """Mean wall time of training and of evaluation per method, and their ratios to `reference` (MC dropout);
    None when no run records a time. Temperature-scaled rows ("METHOD + TS") are the same trainings: left out.
    A deep ensemble's time is that of its M members together."""
    groups = [g for g in groups if not is_temperature_row(g)]
    with_memory = any(r.get("train_peak_rss_mb") is not None for g in groups for r in g.runs)
    timings = ("train_time_s", "eval_time_s", *(("train_peak_rss_mb",) if with_memory else ()))
    means = {
        g.method: {t: mean_se([float(r[t]) for r in g.runs if r.get(t) is not None]) for t in timings} for g in groups
    }
    if all(math.isnan(m[t][0]) for m in means.values() for t in timings[:2]):
        return None
    base = means.get(reference)

    def ratio(method: str, timing: str) -> str:
        if base is None or math.isnan(base[timing][0]) or base[timing][0] <= 0 or math.isnan(means[method][timing][0]):
            return "-"
        return f"{means[method][timing][0] / base[timing][0]:.2f}×"

    # results written before the harness added up a resumed run's sessions (no train_time_all_sessions) may
    # count only the last one: their cells are marked
    partial = {g.method for g in groups if any(not r.get("train_time_all_sessions", False) for r in g.runs)}
    mark = "*"
    rows = [
        [
            g.method,
            str(len(g.runs)),
            format_mean_se(*means[g.method]["train_time_s"], 1)
            + (mark if g.method in partial and not math.isnan(means[g.method]["train_time_s"][0]) else ""),
            ratio(g.method, "train_time_s")
            + (
                mark
                if {g.method, reference} & partial and g.method != reference and ratio(g.method, "train_time_s") != "-"
                else ""
            ),
            format_mean_se(*means[g.method]["eval_time_s"], 1),
            ratio(g.method, "eval_time_s"),
            *(
                (format_mean_se(*means[g.method]["train_peak_rss_mb"], 0), ratio(g.method, "train_peak_rss_mb"))
                if with_memory
                else ()
            ),
        ]
        for g in groups
    ]
    note = (
        f"Wall time in seconds per run, mean ± standard error over seeds; ratio: the method's mean over "
        f"{reference}'s"
        + ("" if base is not None else f" ({reference} has no runs here: no ratios)")
        + ". Times depend on the machine and on what else ran on it."
        + (
            f" {mark}: some of these runs' files were written before gflowout added up the sessions of a run that "
            "was stopped and resumed, so a resumed run counts only its last session and the mean (and its ratio) "
            "can be far too low; the time per epoch from the runs' event files (`gflowout report --runs`) counts "
            "every epoch."
            if any(g.method in partial for g in groups)
            else ""
        )
        + (
            " Peak memory: the highest resident memory of the process while it trained the run (the last session "
            "of a resumed run; Linux only), the interpreter, libraries and data included."
            if with_memory
            else ""
        )
    )
    memory_header = ["peak memory (MiB)", f"memory / {reference}"] if with_memory else []
    return Table(
        f"{dataset}: cost",
        ["method", "seeds", "train (s)", f"train / {reference}", "evaluate (s)", f"evaluate / {reference}"]
        + memory_header,
        rows,
        note=note,
    )
