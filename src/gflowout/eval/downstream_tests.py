"""Tests over seeds for the downstream protocols' reports: is GFlowOut better than, worse than or
indistinguishable from each baseline on a row's value, and does an acquisition score beat random acquisition?

Each cell is `gflowout.eval.significance.compare` on the per-seed values: a paired t-test seed by seed (Welch's
t-test when the seeds differ), two-sided at alpha = 0.05; no win is claimed inside the noise. The cells are not
corrected for the many comparisons; each table's note ends with what survives Holm's step-down correction over
all of its tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from gflowout.eval.comparison import REFERENCE_METHOD
from gflowout.eval.significance import ALPHA, Comparison, compare, holm_adjusted, holm_sentence, p_text, verdict_cell
from gflowout.eval.tables import Table

SeedValues = Mapping[int, float]  # seed -> value

NOTE = (
    "Each cell: the verdict at alpha = {alpha:g} (two-sided), the mean difference and the p-value of a paired "
    "t-test over seeds (Welch's where the seeds differ); better / worse only at p < alpha, indistinguishable "
    "otherwise, n/a under two seeds or with the same difference in every seed. The cells are not corrected for "
    "the many comparisons; with {seeds} seeds the tests have little power to find small differences."
)


def _note(values: Mapping[tuple[str, str], SeedValues], extra: str, holm: str = "") -> str:
    counts = sorted({len(v) for v in values.values()}) or [0]
    seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return (extra + " " if extra else "") + NOTE.format(alpha=ALPHA, seeds=seeds) + (" " + holm if holm else "")


def _holm_sentence(tested: Mapping[tuple[str, str], Comparison]) -> str:
    """What stays significant after Holm's step-down correction over every test of one table ("" when none ran)."""
    return holm_sentence(
        tested,
        holm_adjusted({key: r.p_value for key, r in tested.items()}),
        lambda key, result, p_value: f"{key[0]}, {key[1]} ({result.verdict}, Holm-adjusted {p_text(p_value)})",
    )


def _verdict_rows(
    labels: Sequence[str],
    columns: Sequence[str],
    pairs: Sequence[Sequence[tuple[SeedValues | None, SeedValues | None]]],
    higher_is_better: bool,
    digits: int,
) -> tuple[list[list[str]], set[tuple[int, int]], str]:
    """Table rows (label, then one verdict cell per (ours, theirs) pair), the bold cells (the significant ones)
    and the sentence saying which of them survive Holm's correction over the table."""
    body, bold, tested = [], set(), {}
    for i, (label, row) in enumerate(zip(labels, pairs, strict=True)):
        cells = [label]
        for j, (ours, theirs) in enumerate(row, start=1):
            result = compare(ours, theirs, higher_is_better) if ours and theirs else None
            cells.append(verdict_cell(result, digits))
            if result is not None and result.verdict in ("better", "worse"):
                bold.add((i, j))
            if result is not None and result.test != "n/a" and not math.isnan(result.p_value):
                tested[(label, columns[j - 1])] = result
        body.append(cells)
    return body, bold, _holm_sentence(tested)


def reference_versus_baselines(
    title: str,
    row_label: str,
    rows: Sequence[str],
    methods: Sequence[str],
    values: Mapping[tuple[str, str], SeedValues],
    higher_is_better: bool,
    digits: int = 4,
    note: str = "",
    reference: str = REFERENCE_METHOD,
) -> Table | None:
    """One row per `rows` entry, one column per baseline: `reference` against it on values[(row, method)].

    None when the reference or every baseline is missing."""
    baselines = [m for m in methods if m != reference]
    if reference not in methods or not baselines:
        return None
    pairs = [[(values.get((row, reference)), values.get((row, b))) for b in baselines] for row in rows]
    header = [row_label, *(f"{reference} vs {b}" for b in baselines)]
    body, bold, holm = _verdict_rows(rows, header[1:], pairs, higher_is_better, digits)
    return Table(title, header, body, _note(values, note, holm), bold)


def scores_versus_random(
    title: str,
    methods: Sequence[str],
    scores: Sequence[str],
    values: Mapping[tuple[str, str], SeedValues],
    digits: int = 4,
    note: str = "",
    reference_score: str = "random",
) -> Table | None:
    """One row per method, one column per acquisition score: the score against `reference_score` acquisition
    with the same method, on values[(method, score)] (higher is better). None without the reference score."""
    others = [s for s in scores if s != reference_score]
    if reference_score not in scores or not others:
        return None
    pairs = [[(values.get((m, s)), values.get((m, reference_score))) for s in others] for m in methods]
    header = ["method", *(f"{s} vs {reference_score}" for s in others)]
    body, bold, holm = _verdict_rows(methods, header[1:], pairs, True, digits)
    return Table(title, header, body, _note(values, note, holm), bold)
