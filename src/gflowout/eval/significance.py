"""Tests over seeds: is the reference method better than, worse than or indistinguishable from each baseline?

Each comparison is a paired t-test over seeds (Welch's when the seeds differ), two-sided; no win is claimed
inside the noise, nor where the seeds show no spread. A table of such tests ends with what survives Holm's
step-down correction over all of them. Temperature-scaled rows are tested like with like. The summary columns
the tests run on are `gflowout.eval.comparison`'s; the downstream reports' tables reuse `compare`, `verdict_cell`
and `holm_sentence` (`gflowout.eval.downstream_tests`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from scipy import stats

from gflowout.eval.aggregate import TS_SUFFIX, Group, is_temperature_method
from gflowout.eval.comparison import REFERENCE_METHOD, Column, summary_columns, values_by_seed
from gflowout.eval.tables import Table

__all__ = [
    "ALPHA",
    "Comparison",
    "build_significance_table",
    "compare",
    "comparisons",
    "holm_adjusted",
    "holm_sentence",
    "p_text",
    "reference_for",
    "verdict_cell",
    "verdicts_in_words",
]

ALPHA = 0.05
NO_SPREAD = 1e-9  # relative: differences closer than this are equal (float rounding, values on a 1e-4 grid)
K = TypeVar("K")


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


def reference_for(baseline: str, reference: str, twin_present: bool) -> str:
    """The row a baseline is tested against: like with like, so a temperature-scaled baseline ("X + TS") meets
    the reference's own temperature-scaled row when there is one (`twin_present`), any other baseline the
    reference itself."""
    return f"{reference}{TS_SUFFIX}" if twin_present and is_temperature_method(baseline) else reference


def comparisons(
    groups: Sequence[Group], columns: Sequence[Column], reference: str = REFERENCE_METHOD, alpha: float = ALPHA
) -> dict[tuple[str, str], Comparison]:
    """{(baseline method, column key): the reference (its "+ TS" row for a "+ TS" baseline, `reference_for`)
    against that baseline}, for every baseline and column with values on both sides; {} when the reference has
    no runs."""
    by_method = {g.method: g for g in groups}
    if reference not in by_method:
        return {}
    twin = f"{reference}{TS_SUFFIX}"
    out = {}
    for baseline in (g for g in groups if g.method not in (reference, twin)):
        ours = by_method[reference_for(baseline.method, reference, twin in by_method)]
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


def holm_sentence(
    tested: Mapping[K, Comparison],
    adjusted: Mapping[K, float],
    describe: Callable[[K, Comparison, float], str],
    alpha: float = ALPHA,
    separator: str = "; ",
) -> str:
    """The sentence that closes a table of tests: which differences stay significant after Holm's correction
    over all of them (`adjusted`: `holm_adjusted` of their p-values), each named by `describe(key, result,
    adjusted p)`, most significant first; "" when no test ran."""
    if not tested:
        return ""
    kept = [
        describe(key, tested[key], p_value)
        for key, p_value in sorted(adjusted.items(), key=lambda item: item[1])
        if p_value < alpha and tested[key].verdict != "indistinguishable"
    ]
    family = f"Corrected for all {len(tested)} tests of this table (Holm's step-down method, alpha = {alpha:g})"
    return f"{family}, {'no difference remains significant' if not kept else 'these remain: ' + separator.join(kept)}."


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
        ours = reference_for(baseline, reference, twin_present)
        sentences.append(f"against {baseline}, {ours} is " + "; ".join(parts) + ".")
    if not sentences:
        return ""
    labels = {c.key: c.label for c in columns}
    sentences.append(
        holm_sentence(
            tested,
            holm,
            lambda key, result, _: f"{result.verdict} on {labels[key[1]]} against {key[0]}",
            alpha,
            separator=", ",
        )
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
    own_twin = f"{reference}{TS_SUFFIX}"  # the reference's own temperature-scaled row is no baseline of it
    twin_present = any(g.method == own_twin for g in groups)
    baselines = [g.method for g in groups if g.method not in (reference, own_twin)]
    if not any(g.method == reference for g in groups) or not baselines:
        return None
    columns = list(columns) if columns is not None else summary_columns([r for g in groups for r in g.runs])
    results = comparisons(groups, columns, reference, alpha)
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
    scaled = any(is_temperature_method(b) for b in baselines)
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
    header = ["column", *(f"{reference_for(b, reference, twin_present)} vs {b}" for b in baselines)]
    return Table(
        f"{dataset}: is {reference} better than each baseline? (tests over seeds)",
        header,
        rows,
        note=note,
        bold=bold,
    )
