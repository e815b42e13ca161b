"""The head of a report: the settings the runs share (`report_settings`), one summary table, the tests over
seeds, the cost.

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
from scipy import stats

from gflowout.eval.report_settings import SETTINGS, settings_rows
from gflowout.eval.tables import Table

if TYPE_CHECKING:
    from gflowout.eval.aggregate import Group

__all__ = [
    "ALPHA",
    "COST_REFERENCE",
    "OOD_SCORE",
    "REFERENCE_METHOD",
    "SETTINGS",
    "SUMMARY_COLUMNS",
    "SUMMARY_NOTE",
    "Column",
    "Comparison",
    "Value",
    "best_rows",
    "build_cost_table",
    "build_per_seed_table",
    "build_significance_table",
    "build_summary_table",
    "compare",
    "comparisons",
    "format_mean_se",
    "holm_adjusted",
    "p_text",
    "reference_for",
    "mean_corrupted_accuracy",
    "mean_se",
    "ood_column",
    "settings_rows",
    "summary_columns",
    "values_by_seed",
    "verdict_cell",
    "verdicts_in_words",
]

REFERENCE_METHOD = "gflowout"
TS_MARK = " + TS"  # the suffix of a temperature-scaled row (gflowout.eval.aggregate.TS_SUFFIX)
COST_REFERENCE = "mc_dropout"
ALPHA = 0.05
NO_SPREAD = 1e-9  # relative: differences closer than this are equal (float rounding, values on a 1e-4 grid)
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
    """One row per method: seeds and mean ± SE of every summary column, the best mean per column in bold."""
    columns = list(columns) if columns is not None else summary_columns([r for g in groups for r in g.runs])
    cells = [[mean_se(list(values_by_seed(g, c).values())) for c in columns] for g in groups]
    table = Table(
        f"{dataset}: summary",
        ["method", "seeds", *(c.header for c in columns)],
        [
            [g.method, str(len(g.runs)), *(format_mean_se(m, s, c.digits) for (m, s), c in zip(row, columns))]
            for g, row in zip(groups, cells)
        ],
        note=SUMMARY_NOTE,
    )
    if len(groups) > 1:
        for j, column in enumerate(columns):
            for i in best_rows([row[j][0] for row in cells], column.higher_is_better):
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


# --- tests over seeds ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Comparison:
    """The reference minus a baseline on one column, with its test over seeds."""

    difference: float
    p_value: float
    test: str  # "paired t", "Welch t" or "n/a"
    verdict: str  # "better", "worse", "indistinguishable" or "n/a" (the reference, relative to the baseline)


def compare(
    reference: Mapping[int, float], baseline: Mapping[int, float], higher_is_better: bool, alpha: float = ALPHA
) -> Comparison:
    """Test the reference's seeds against a baseline's: paired t-test when both have the same seeds (>= 2),
    else Welch's t-test; "n/a" with fewer than two seeds on either side. No win is claimed at p >= alpha."""
    ref, base = list(reference.values()), list(baseline.values())
    if not ref or not base:
        return Comparison(math.nan, math.nan, "n/a", "n/a")
    difference = float(np.mean(ref) - np.mean(base))
    if len(ref) < 2 or len(base) < 2:
        return Comparison(difference, math.nan, "n/a", "n/a")
    # a spread below rounding (differences equal up to float error) leaves t undefined: no test, no claim
    tolerance = NO_SPREAD * max(1.0, float(np.max(np.abs([*ref, *base]))))
    if set(reference) == set(baseline):
        seeds = sorted(reference)
        deltas = np.array([reference[s] - baseline[s] for s in seeds])
        test = "paired t"
        if np.ptp(deltas) <= tolerance:
            return _without_spread(difference, test, tolerance)
        p_value = float(stats.ttest_rel([reference[s] for s in seeds], [baseline[s] for s in seeds]).pvalue)
    else:
        test = "Welch t"
        if np.ptp(ref) <= tolerance and np.ptp(base) <= tolerance:
            return _without_spread(difference, test, tolerance)
        p_value = float(stats.ttest_ind(ref, base, equal_var=False).pvalue)
    if math.isnan(p_value) or p_value >= alpha or difference == 0:
        verdict = "indistinguishable"
    else:
        verdict = "better" if (difference > 0) == higher_is_better else "worse"
    return Comparison(difference, p_value, test, verdict)


def _without_spread(difference: float, test: str, tolerance: float) -> Comparison:
    """The seeds differ by the same amount every time (or do not vary): identical runs are no difference
    (p = 1); any other difference has no spread to test it against, so t is undefined and nothing is claimed."""
    if abs(difference) <= tolerance:
        return Comparison(difference, 1.0, test, "indistinguishable")
    return Comparison(difference, math.nan, test, "n/a")


def _seed_counts(groups: Sequence[Group]) -> str:
    counts = sorted({len(g.runs) for g in groups})
    if len(counts) > 1:
        return f"{counts[0]} to {counts[-1]} seeds per method"
    return f"{counts[0]} seed{'s' if counts[0] != 1 else ''} per method"


def reference_for(baseline: str, reference: str, methods: Sequence[str]) -> str:
    """The row a baseline is tested against: like with like, so a temperature-scaled baseline ("X + TS") meets
    the reference's own temperature-scaled row when there is one, any other baseline the reference itself."""
    twin = f"{reference}{TS_MARK}"
    return twin if baseline.endswith(TS_MARK) and twin in methods else reference


def comparisons(
    groups: Sequence[Group], columns: Sequence[Column], reference: str = REFERENCE_METHOD, alpha: float = ALPHA
) -> dict[tuple[str, str], Comparison]:
    """{(baseline method, column key): the reference (its "+ TS" row for a "+ TS" baseline, `reference_for`)
    against that baseline}, for every baseline and column with values on both sides; {} when the reference has
    no runs."""
    by_method = {g.method: g for g in groups}
    if reference not in by_method:
        return {}
    twin = f"{reference}{TS_MARK}"
    out = {}
    for baseline in (g for g in groups if g.method not in (reference, twin)):
        ours = by_method[reference_for(baseline.method, reference, list(by_method))]
        for column in columns:
            result = compare(
                values_by_seed(ours, column), values_by_seed(baseline, column), column.higher_is_better, alpha
            )
            if not math.isnan(result.difference):
                out[(baseline.method, column.key)] = result
    return out


def holm_adjusted(p_values: Mapping[Any, float]) -> dict[Any, float]:
    """Holm's step-down adjusted p-values (Holm 1979) of one family of tests, by key: the i-th smallest p times
    the number of tests not yet passed, made monotone and capped at 1. Rejecting where the adjusted p < alpha
    keeps the chance of any false claim in the family at most alpha, whatever the tests' dependence. A NaN
    p-value (no test) raises ValueError: leave it out of the family."""
    missing = [key for key, p_value in p_values.items() if math.isnan(p_value)]
    if missing:
        raise ValueError(f"holm_adjusted: no p-value (NaN) for {missing}; leave untested cells out of the family")
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    adjusted, running = {}, 0.0
    for rank, (key, p_value) in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * p_value))
        adjusted[key] = running
    return adjusted


def p_text(p_value: float) -> str:
    """A p-value as the report prints it: "p < 0.001" or "p = 0.xxx"."""
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3f}"


def verdict_cell(result: Comparison | None, digits: int) -> str:
    """A table cell: the verdict, the difference and the p-value ("-" without a comparison)."""
    if result is None:
        return "-"
    if result.test == "n/a":
        return f"n/a ({result.difference:+.{digits}f}; under two seeds)"
    if math.isnan(result.p_value):
        return f"n/a ({result.difference:+.{digits}f}; the same difference in every seed: t undefined)"
    welch = ", Welch" if result.test == "Welch t" else ""
    return f"{result.verdict} ({result.difference:+.{digits}f}; {p_text(result.p_value)}{welch})"


def verdicts_in_words(
    results: Mapping[tuple[str, str], Comparison],
    columns: Sequence[Column],
    baselines: Sequence[str],
    reference: str = REFERENCE_METHOD,
    alpha: float = ALPHA,
    twin_present: bool = False,
) -> str:
    """The significance table read out, one sentence per baseline: the columns where the reference is better,
    those where it is worse (with Holm's adjusted p), and how many are indistinguishable; then what survives
    Holm's correction over every test of the table. "" when no baseline has two seeds on both sides. What a
    README's plain statement is copied from, so that it follows the tests. twin_present: the reference has a
    "+ TS" row, which the "+ TS" baselines were tested against (`reference_for`)."""
    tested = {key: r for key, r in results.items() if r.test != "n/a" and not math.isnan(r.p_value)}
    holm = holm_adjusted({key: r.p_value for key, r in tested.items()})

    def listed(baseline: str, items: list[tuple[Column, Comparison]]) -> str:
        return ", ".join(
            f"{c.label} ({r.difference:+.{c.digits}f}, {p_text(r.p_value)}; Holm-adjusted "
            f"{p_text(holm[(baseline, c.key)])})"
            for c, r in items
        )

    sentences = []
    for baseline in baselines:
        found: dict[str, list[tuple[Column, Comparison]]] = {}
        for column in columns:
            result = tested.get((baseline, column.key))
            if result is not None:
                found.setdefault(result.verdict, []).append((column, result))
        if not found:
            continue
        parts = [
            f"{verdict} on {listed(baseline, found[verdict])}" for verdict in ("better", "worse") if verdict in found
        ]
        same = len(found.get("indistinguishable", []))
        if same:
            parts.append(
                f"indistinguishable on {'all' if not parts else 'the other'} {same} column{'s' if same > 1 else ''}"
            )
        ours = f"{reference}{TS_MARK}" if twin_present and baseline.endswith(TS_MARK) else reference
        sentences.append(f"against {baseline}, {ours} is " + "; ".join(parts) + ".")
    if not sentences:
        return ""
    labels = {c.key: c.label for c in columns}
    kept = [
        f"{tested[(baseline, column)].verdict} on {labels[column]} against {baseline}"
        for (baseline, column), p_value in sorted(holm.items(), key=lambda item: item[1])
        if p_value < alpha and tested[(baseline, column)].verdict != "indistinguishable"
    ]
    family = f"corrected for all {len(tested)} tests of this table (Holm's step-down method, alpha = {alpha:g})"
    sentences.append(
        f"{family}, {'no difference remains significant' if not kept else 'these remain: ' + ', '.join(kept)}."
    )
    return " ".join(s[0].upper() + s[1:] for s in sentences)


def build_significance_table(
    dataset: str,
    groups: Sequence[Group],
    columns: Sequence[Column] | None = None,
    reference: str = REFERENCE_METHOD,
    alpha: float = ALPHA,
) -> Table | None:
    """One row per summary column, one column per baseline: whether the reference is better, worse or
    indistinguishable, its mean minus the baseline's and the p-value of the test over seeds. None when the
    reference method has no runs or there is no baseline."""
    own_twin = f"{reference}{TS_MARK}"  # the reference's own temperature-scaled row is no baseline of it
    twin_present = any(g.method == own_twin for g in groups)
    baselines = [g.method for g in groups if g.method not in (reference, own_twin)]
    if not any(g.method == reference for g in groups) or not baselines:
        return None
    columns = list(columns) if columns is not None else summary_columns([r for g in groups for r in g.runs])
    results = comparisons(groups, columns, reference, alpha)
    methods = [g.method for g in groups]
    rows, bold = [], set()
    for i, column in enumerate(columns):
        row = [column.header]
        for j, baseline in enumerate(baselines):
            result = results.get((baseline, column.key))
            row.append(verdict_cell(result, column.digits))
            if result is not None and result.verdict in ("better", "worse"):
                bold.add((i, j + 1))
        rows.append(row)
    tests = {r.test for r in results.values() if r.test != "n/a"}
    in_words = verdicts_in_words(results, columns, baselines, reference, alpha, twin_present)
    how = (
        "a paired t-test, seed by seed (every pair tested has the same seeds)"
        if tests == {"paired t"}
        else "a paired t-test where both methods have the same seeds, else Welch's t-test (marked Welch)"
    )
    scaled = any(b.endswith(TS_MARK) for b in baselines)
    like = ""
    if scaled and twin_present:
        like = f" Like with like: each temperature-scaled baseline (+ TS) is tested against {own_twin}."
    elif scaled:
        like = f" {reference} has no temperature-scaled row here, so the + TS baselines are tested against it."
    note = (
        f"Each cell: the method before 'vs' in the column's header against the baseline after it, at alpha = "
        f"{alpha:g} (two-sided): its mean minus the baseline's, and the p-value of {how}.{like} Better / worse: "
        "p < alpha, in the direction of the arrow; indistinguishable: p >= alpha, no win is claimed inside the "
        "noise; n/a: fewer than two seeds, or the "
        "same difference in every seed (no spread: t is undefined). "
        "The cells are not corrected for the many comparisons (where there is no real difference, a share "
        f"alpha = {alpha:g} of the tests comes out significant by chance alone). With {_seed_counts(groups)} the "
        "tests have little power to find small differences."
        + (f" In words (its last sentence corrects for the whole table): {in_words}" if in_words else "")
    )
    header = ["column", *(f"{reference_for(b, reference, methods)} vs {b}" for b in baselines)]
    return Table(
        f"{dataset}: is {reference} better than each baseline? (tests over seeds)",
        header,
        rows,
        note=note,
        bold=bold,
    )


# --- cost ------------------------------------------------------------------------------------------
def build_cost_table(dataset: str, groups: Sequence[Group], reference: str = COST_REFERENCE) -> Table | None:
    """Mean wall time of training and of evaluation per method, and their ratios to `reference` (MC dropout);
    None when no run records a time. Temperature-scaled rows ("METHOD + TS") are the same trainings: left out.
    A deep ensemble's time is that of its M members together."""
    groups = [g for g in groups if not g.method.endswith(" + TS")]
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
