"""The detail tables of a report, per data set: clean, random rotation, the corrupted test sets (generated
-style shifts and the PUBLISHED -C files, kept apart), the rotation sweep, OOD detection, the paired t-test
uncertainty metrics, selective prediction and temperature scaling."""

from __future__ import annotations

from collections.abc import Sequence

from gflowout.eval import plots
from gflowout.eval.aggregate import Group, _subkeys, format_stat, is_temperature_row
from gflowout.eval.report_conformal import build_conformal_tables
from gflowout.eval.tables import Table

CLEAN_METRICS = ("accuracy", "nll", "brier", "ece15", "ece10")
CURVE_METRICS = ("accuracy", "nll", "ece15")
OOD_METRICS = ("auroc", "aupr", "fpr95")
SELECTIVE_COLUMNS = (
    ("aurc", "AURC"),
    ("accuracy_at_90", "acc @ 90%"),
    ("accuracy_at_95", "acc @ 95%"),
    ("accuracy_at_99", "acc @ 99%"),
)
# Readable column names of the detail tables, with ↑ / ↓ for higher / lower is better.
METRIC_HEADERS = {
    "accuracy": "accuracy ↑",
    "nll": "NLL ↓",
    "brier": "Brier ↓",
    "ece15": "ECE (15 bins) ↓",
    "ece10": "ECE (10 bins) ↓",
}
OOD_HEADERS = {"auroc": "AUROC ↑", "aupr": "AUPR ↑", "fpr95": "FPR at 95% TPR ↓"}
UNCERTAINTY_HEADERS = {
    "uncertain_fraction": "uncertain fraction",
    "pavpu": "PAvPU ↑",
    "accurate_given_certain": "P(accurate | certain) ↑",
    "uncertain_given_inaccurate": "P(uncertain | inaccurate) ↑",
}


PUBLISHED_NOTE = (
    "The published corruption files of Hendrycks & Dietterich (2019), normalised with the "
    "in-distribution training statistics; not comparable row by row with the generated -style shifts."
)


def _corruption_sections(dataset: str, groups: Sequence[Group]) -> list[tuple[str, str, str]]:
    """(section, title label, first column) of the corrupted test sets the groups have: our generated
    shifts, then the published -C files, each named so the two are never confused."""
    sections = []
    if _subkeys(groups, "shifts"):
        sections.append(("shifts", "shifted test sets (generated here: MNIST-C / CIFAR-10-C-style shifts)", "shift"))
    if _subkeys(groups, "published_corruptions"):
        from gflowout.eval.evaluate import PUBLISHED_LABELS

        # (the "METHOD + TS" rows carry the corruptions but not the set's name: that is their method's)
        sets = sorted(
            {
                str(r["published_set"])
                for g in groups
                for r in g.runs
                if r.get("published_corruptions") and r.get("published_set")
            }
        )
        names = ", ".join(PUBLISHED_LABELS.get(n, n) for n in sets)
        sections.append(
            ("published_corruptions", f"PUBLISHED {names} files (Hendrycks & Dietterich 2019)", "corruption")
        )
    return sections


CONSTANT_SCORE = "undefined"


def _constant_score(group: Group, pair: str, score: str) -> bool:
    """True when an OOD score ranks nothing in any run: AUROC exactly 0.5 and FPR at 95% TPR exactly 1, what a
    score equal for every image gives (all ties), such as the mutual information of a deterministic network."""
    values = [run.get("ood", {}).get(pair, {}).get(score, {}) for run in group.runs]
    return bool(values) and all(v.get("auroc") == 0.5 and v.get("fpr95") == 1.0 for v in values)


def _constant_confidence(group: Group, condition: str, score: str) -> bool:
    """True when a selective-prediction score ties every image in every run: the accuracy at 90, 95 and 99 %
    coverage is the same and the AURC is the error rate (all admitted together at every threshold)."""
    values = [run.get("selective", {}).get(condition, {}).get(score, {}) for run in group.runs]

    def tied(v: dict) -> bool:
        found = [v.get(f"accuracy_at_{c}") for c in (90, 95, 99)]
        if any(a is None for a in found) or v.get("aurc") is None:
            return False
        accuracies = [float(a) for a in found if a is not None]
        return max(accuracies) - min(accuracies) < 1e-12 and abs(float(v["aurc"]) - (1 - accuracies[0])) < 1e-9

    return bool(values) and all(tied(v) for v in values)


def build_tables(dataset: str, groups: Sequence[Group]) -> list[Table]:
    """The detail tables of one data set: clean, rotation, shifts, rotation sweep, OOD, uncertainty, selective
    prediction, temperature scaling and conformal prediction sets."""
    methods = [g.method for g in groups]
    tables = [
        Table(
            f"{dataset}: clean test set",
            ["method", "seeds", *(METRIC_HEADERS[m] for m in CLEAN_METRICS)],
            [[g.method, str(len(g.runs)), *(format_stat(g.get("clean", m)) for m in CLEAN_METRICS)] for g in groups],
        )
    ]
    if any(("random_rotation", "accuracy") in g.stats for g in groups):
        tables.append(
            Table(
                f"{dataset}: random rotation (uniform 0-360 degrees)",
                ["method", *(METRIC_HEADERS[m] for m in CLEAN_METRICS)],
                [[g.method, *(format_stat(g.get("random_rotation", m)) for m in CLEAN_METRICS)] for g in groups],
            )
        )
    for section, label, column in _corruption_sections(dataset, groups):
        for metric in CURVE_METRICS:
            rows = [
                [shift, severity, *(format_stat(g.get(section, shift, severity, metric)) for g in groups)]
                for shift in _subkeys(groups, section)
                for severity in _subkeys(groups, section, shift)
            ]
            if rows:
                tables.append(
                    Table(
                        f"{dataset}: {label}, {plots.METRIC_LABELS[metric]}",
                        [column, "severity", *methods],
                        rows,
                        note=PUBLISHED_NOTE if section == "published_corruptions" else "",
                    )
                )
    angles = _subkeys(groups, "rotation_sweep")
    if angles:
        tables.append(
            Table(
                f"{dataset}: accuracy vs fixed rotation angle (degrees)",
                ["angle", *methods],
                [
                    [angle, *(format_stat(g.get("rotation_sweep", angle, "accuracy")) for g in groups)]
                    for angle in angles
                ],
            )
        )
    for pair in _subkeys(groups, "ood"):
        tables.append(
            Table(
                f"OOD detection: {dataset} (in) vs {pair} (out)",
                ["method", "score", *(OOD_HEADERS[m] for m in OOD_METRICS)],
                [
                    [
                        g.method,
                        plots.SCORE_LABELS.get(score, score),
                        *(
                            [CONSTANT_SCORE] * len(OOD_METRICS)
                            if _constant_score(g, pair, score)
                            else [format_stat(g.get("ood", pair, score, metric)) for metric in OOD_METRICS]
                        ),
                    ]
                    for g in groups
                    for score in _subkeys(groups, "ood", pair)
                ],
                note="Higher AUROC / AUPR and lower FPR at 95% TPR are better; OOD is the positive class. "
                "Scores: the negated max probability, the predictive entropy and the mutual information of "
                f"the S-sample predictive. {CONSTANT_SCORE}: the score is the same for every image in every run "
                "(AUROC 0.5 and FPR 1 from ties alone), e.g. the mutual information of a method without "
                "stochastic masks, which is 0.",
            )
        )
    for condition in _subkeys(groups, "uncertainty"):
        alphas = _subkeys(groups, "uncertainty", condition)
        keys = _subkeys(groups, "uncertainty", condition, alphas[0]) if alphas else []
        tables.append(
            Table(
                f"{dataset}: paired t-test uncertainty metrics "
                f"({condition.replace('_', ' ')}; uncertain when p > alpha)",
                ["method", "alpha", *(UNCERTAINTY_HEADERS.get(k, k) for k in keys)],
                [
                    [g.method, alpha, *(format_stat(g.get("uncertainty", condition, alpha, k)) for k in keys)]
                    for g in groups
                    for alpha in alphas
                    if any(("uncertainty", condition, alpha, k) in g.stats for k in keys)  # "+ TS" rows have none
                ],
            )
        )
    for condition in _subkeys(groups, "selective"):
        scores = _subkeys(groups, "selective", condition)
        tables.append(
            Table(
                f"{dataset}: selective prediction ({condition})",
                ["method", "score", *(label for _, label in SELECTIVE_COLUMNS)],
                [
                    [
                        g.method,
                        score,
                        *(
                            [CONSTANT_SCORE] * len(SELECTIVE_COLUMNS)
                            if _constant_confidence(g, condition, score)
                            else [
                                format_stat(g.get("selective", condition, score, key)) for key, _ in SELECTIVE_COLUMNS
                            ]
                        ),
                    ]
                    for g in groups
                    for score in scores
                    if ("selective", condition, score, "aurc") in g.stats
                ],
                note="Answer only where the confidence is at least a threshold: AURC is the area under the risk "
                "(error rate among the answered) against coverage (fraction answered), lower is better; "
                "accuracy at c is that of the most confident fraction c. Scores: max probability, negative "
                "predictive entropy, negative mutual information of the S-sample predictive; ties are "
                f"admitted together. {CONSTANT_SCORE}: the score is the same for every image in every run (every "
                "coverage admits all, so the numbers are the plain error rate and accuracy), e.g. the mutual "
                "information of a method without stochastic masks.",
            )
        )
    scaled = [g for g in groups if is_temperature_row(g) and ("temperature_scaling", "temperature") in g.stats]
    if scaled:
        tables.append(
            Table(
                f"{dataset}: temperature scaling (T fitted on the validation split by NLL, Guo et al. 2017)",
                ["method", "T", "validation NLL", "validation NLL with T"],
                [
                    [
                        g.method,
                        format_stat(g.get("temperature_scaling", "temperature"), 3),
                        format_stat(g.get("temperature_scaling", "validation_nll")),
                        format_stat(g.get("temperature_scaling", "validation_nll_scaled")),
                    ]
                    for g in scaled
                ],
                note="Rows METHOD + TS: the same trained network with every sample's logits divided by T; "
                "T > 1 softens an over-confident predictive. It costs one pass over the validation split.",
            )
        )
    return tables + build_conformal_tables(dataset, groups)
