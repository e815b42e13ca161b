"""The conformal section of a report: split-conformal prediction sets (calibrated on each run's validation split,
section "conformal" of its result file, `gflowout.eval.conformal`) per method, "+ TS" rows included.

Tables: coverage and mean set size on the clean test set, under the random rotation and averaged over the
shifts and the rotation sweep; coverage per set-size stratum (clean); coverage under each shift, severity and
rotation angle per score. Figures: coverage and mean set size against severity and against rotation angle, with
the 1 - alpha line the coverage is guaranteed on exchangeable data (the gap below it under shift is the point).
Results without the section (older files, runs evaluated without validation data) leave it out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gflowout.eval import plots
from gflowout.eval.aggregate import Group, Stat, _subkeys, format_stat, mean_and_standard_error
from gflowout.eval.tables import Table

SCORE_LABELS = {
    "lac": "LAC",
    "aps": "APS",
    "aps_randomized": "APS (randomised)",
    "raps": "RAPS",
    "raps_randomized": "RAPS (randomised)",
}
CONDITION_NOTE = (
    "Split conformal prediction (Vovk et al. 2005): the quantile of the scores of the validation split "
    "(the calibration set) makes sets that hold the true class with probability >= 1 - alpha when "
    "test and calibration examples are exchangeable, whatever the method; under a shift or rotation "
    "the guarantee no longer holds, and the coverage below 1 - alpha is what a shift costs. Scores: "
    "LAC 1 - p_y (smallest sets), APS the probability mass down to y (sets that adapt to the "
    "difficulty), randomised APS (coverage also at most 1 - alpha + 1/(n + 1); sets may be empty). "
    "A network more accurate than 1 - alpha meets the rate by leaving some sets empty (a mean size below 1 "
    "says so) or, with non-randomised APS, with large sets: pick alpha below the error rate to get useful sets."
)


def _scores(groups: Sequence[Group]) -> list[str]:
    order = list(SCORE_LABELS)
    found = {
        score for g in groups for p in g.stats if p[:2] == ("conformal", "clean") and len(p) > 2 for score in [p[2]]
    }
    return sorted(found, key=lambda s: (order.index(s) if s in order else len(order), s))


def _alphas(groups: Sequence[Group]) -> list[float]:
    return sorted(
        {
            float(run["conformal"]["alpha"])
            for g in groups
            for run in g.runs
            if isinstance(run.get("conformal"), Mapping) and "alpha" in run["conformal"]
        }
    )


def _run_mean(run: Mapping[str, Any], section: str, score: str, metric: str, key: str | None = None) -> float | None:
    """One run's mean of `metric` over a condition section: "shifts" (every shift, at severity `key` or all) or
    "rotation_sweep" (every angle but 0, the clean test set); None when the run has none."""
    tree = (run.get("conformal") or {}).get(section) or {}
    if section == "shifts":
        cells = [levels[sev] for levels in tree.values() for sev in levels if key is None or sev == key]
    else:
        cells = [cell for angle, cell in tree.items() if float(angle) % 360 != 0]
    values = [c[score][metric] for c in cells if c.get(score, {}).get(metric) is not None]
    return float(np.mean(values)) if values else None


def _stat(group: Group, section: str, score: str, metric: str, key: str | None = None) -> Stat:
    values = [_run_mean(run, section, score, metric, key) for run in group.runs]
    return Stat(*mean_and_standard_error(values), with_value=sum(v is not None for v in values), runs=len(group.runs))


def build_conformal_tables(dataset: str, groups: Sequence[Group]) -> list[Table]:
    """The conformal tables of one data set (none when no run has conformal sets)."""
    scores = _scores(groups)
    if not scores:
        return []
    alphas = ", ".join(f"{a:g}" for a in _alphas(groups))
    title = f"{dataset}: conformal prediction sets (alpha = {alphas}, calibrated on the validation split)"
    with_sets = [g for g in groups if any(("conformal", "clean", s, "coverage") in g.stats for s in scores)]
    rows = []
    for g in with_sets:
        for score in scores:
            rows.append(
                [
                    g.method,
                    SCORE_LABELS.get(score, score),
                    *(
                        format_stat(g.get("conformal", condition, score, metric), 3)
                        for condition in ("clean", "random_rotation")
                        for metric in ("coverage", "mean_size")
                    ),
                    *(
                        format_stat(_stat(g, section, score, metric), 3)
                        for section in ("shifts", "rotation_sweep")
                        for metric in ("coverage", "mean_size")
                    ),
                ]
            )
    tables = [
        Table(
            title,
            [
                "method",
                "score",
                "coverage (clean)",
                "mean size (clean)",
                "coverage (random rotation)",
                "mean size (random rotation)",
                "coverage (shifts, mean)",
                "mean size (shifts, mean)",
                "coverage (rotation sweep, mean)",
                "mean size (rotation sweep, mean)",
            ],
            rows,
            note=CONDITION_NOTE + " Shifts, mean: each run's mean over every generated shift and severity; "
            "rotation sweep, mean: over its angles but 0.",
        )
    ]
    strata = [
        s
        for s in ("0", "1", "2", "3", "4-5", "6-10", "11-100", "101+")
        if any(p[:2] == ("conformal", "clean") and len(p) == 6 and p[4] == s for g in with_sets for p in g.stats)
    ]
    if strata:
        tables.append(
            Table(
                f"{dataset}: size-stratified coverage of the conformal sets (clean test set)",
                ["method", "score", *(f"size {s}" for s in strata)],
                [
                    [g.method, SCORE_LABELS.get(score, score), *(_stratum_cell(g, score, s) for s in strata)]
                    for g in with_sets
                    for score in scores
                ],
                note="Each cell: the coverage among the test examples whose set has that size, and (in brackets) the "
                "share of examples with that size (mean over seeds). A method can meet 1 - alpha on average with "
                "small sets that under-cover and large ones that over-cover; -: no set of that size.",
            )
        )
    for score in scores:
        conditions: list[tuple[str, ...]] = [
            ("shifts", shift, severity)
            for shift in _subkeys(groups, "conformal", "shifts")
            for severity in _subkeys(groups, "conformal", "shifts", shift)
        ]
        conditions += [("rotation_sweep", angle) for angle in _subkeys(groups, "conformal", "rotation_sweep")]
        if conditions:
            tables.append(
                Table(
                    f"{dataset}: conformal coverage under each shift and rotation ({SCORE_LABELS.get(score, score)}, "
                    f"alpha = {alphas})",
                    ["condition", *(g.method for g in with_sets)],
                    [
                        [
                            _condition_label(c),
                            *(format_stat(g.get("conformal", *c, score, "coverage"), 3) for g in with_sets),
                        ]
                        for c in conditions
                    ],
                    note=(
                        "Coverage of the sets calibrated on clean validation data; "
                        "below 1 - alpha the guarantee is lost."
                    ),
                )
            )
    return tables


def _condition_label(condition: Sequence[str]) -> str:
    if condition[0] == "shifts":
        return f"{condition[1]}, severity {condition[2]}"
    return f"rotation {condition[1]} degrees"


def _stratum_cell(group: Group, score: str, stratum: str) -> str:
    coverage = group.get("conformal", "clean", score, "by_size", stratum, "coverage")
    share = group.get("conformal", "clean", score, "by_size", stratum, "fraction")[0]
    if share is None or math.isnan(share) or share == 0:
        return "-"
    return f"{format_stat(coverage, 3)} ({100 * share:.0f}%)"


def _series(group: Group, score: str, metric: str, severities: Sequence[str]) -> plots.Series:
    """x = 0 (the clean test set), then each severity: mean over shifts per run, then mean ± SE over seeds."""
    stats = [group.get("conformal", "clean", score, metric)] + [
        _stat(group, "shifts", score, metric, s) for s in severities
    ]
    return [0.0, *(float(s) for s in severities)], [s[0] for s in stats], [s[1] for s in stats]


def build_conformal_figures(
    dataset: str, groups: Sequence[Group], figure_dir: Path, seeds_phrase: Callable[[Sequence[Group]], str]
) -> list[tuple[str, Path]]:
    """Coverage and mean set size against severity (mean over shifts; 0 = clean) and against the rotation angle,
    one panel pair per score, one line per method."""
    scores = _scores(groups)
    if not scores:
        return []
    alphas = _alphas(groups)
    with_sets = [g for g in groups if any(("conformal", "clean", s, "coverage") in g.stats for s in scores)]
    reference = (
        {f"coverage, {SCORE_LABELS.get(s, s)}": (1 - alphas[0], f"1 - alpha = {1 - alphas[0]:g}") for s in scores}
        if len(alphas) == 1
        else {}
    )
    name = dataset.replace("/", "_")
    figures = []
    severities = sorted(
        {sev for g in with_sets for p in g.stats if p[:2] == ("conformal", "shifts") and len(p) > 3 for sev in [p[3]]},
        key=float,
    )
    angles = _subkeys(with_sets, "conformal", "rotation_sweep")
    for axis, keys in (("severity", severities), ("angle", angles)):
        if not keys:
            continue
        per_metric = {}
        for score in scores:
            for metric, label in (("coverage", "coverage"), ("mean_size", "mean set size")):
                per_metric[f"{label}, {SCORE_LABELS.get(score, score)}"] = {
                    g.method: (
                        _series(g, score, metric, keys)
                        if axis == "severity"
                        else (
                            [float(a) for a in keys],
                            *zip(*[g.get("conformal", "rotation_sweep", a, score, metric) for a in keys]),
                        )
                    )
                    for g in with_sets
                }
        xlabel = "severity (0 = clean)" if axis == "severity" else "rotation angle (degrees)"
        path = plots.plot_metric_curves(
            per_metric,  # type: ignore[arg-type]  # zip gives the series' tuples
            xlabel,
            f"{dataset}: conformal sets against {axis}",
            figure_dir / f"{name}_conformal_{axis}.png",
            reference=reference,
        )
        what = (
            "severity (each run's mean over the generated shifts; 0 is the clean test set)"
            if axis == "severity"
            else "a fixed rotation angle"
        )
        figures.append(
            (
                f"Conformal prediction sets (calibrated on the validation split) against {what}, {dataset}: "
                f"coverage with the 1 - alpha line and mean set size, per score; mean ± standard error over "
                f"seeds ({seeds_phrase(with_sets)}).",
                path,
            )
        )
    return figures
