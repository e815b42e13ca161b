"""Out-of-distribution detection: AUROC, AUPR and FPR at 95% TPR of an uncertainty score.

Convention: OOD examples are the POSITIVE class and a HIGHER score means MORE OOD. The three scores of
`ood_scores` follow it: the negated max probability of the mean softmax, the predictive entropy and the
mutual information (from `gflowout.eval.predictive`).

- AUROC is the Mann-Whitney statistic from average ranks, so a tie between an in- and an out-example
  counts one half (equal to the trapezoidal area under the ROC curve); all scores equal gives 0.5.
- AUPR is average precision, sum_k (R_k - R_{k-1}) P_k over descending distinct thresholds (the step
  rule of scikit-learn's `average_precision_score`, no interpolation); its chance level is the OOD fraction.
- FPR95 is the false-positive rate at the first (highest) threshold whose TPR reaches 0.95: no interpolation.
- The ROC curve starts at (0, 0) with threshold +inf and has one point per distinct score (ties form one step).
Inputs: 1-D torch tensors (CPU or GPU) or numpy arrays; both sets non-empty, all scores finite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from gflowout.eval.predictive import Predictive, as_tensor, check_logits

__all__ = [
    "SCORE_NAMES",
    "RocCurve",
    "auroc",
    "aupr",
    "fpr_at_tpr",
    "ood_metrics",
    "ood_report",
    "ood_scores",
    "roc_curve",
]

SCORE_NAMES: tuple[str, ...] = ("max_probability", "predictive_entropy", "mutual_information")


def _check_scores(scores_in: Any, scores_out: Any) -> tuple[Tensor, Tensor]:
    """Validate two 1-D, non-empty, finite score vectors; return them as float64 on one device."""
    checked = []
    for name, scores in (("scores_in", scores_in), ("scores_out", scores_out)):
        scores = as_tensor(scores, name)
        if scores.dim() != 1:
            raise ValueError(f"{name} must be a 1-D vector of per-example scores, got shape {tuple(scores.shape)}")
        if scores.numel() == 0:
            raise ValueError(
                f"{name} is empty: OOD metrics need both in-distribution and OOD examples (one class only given)"
            )
        scores = scores.detach().to(torch.float64)
        if not bool(torch.isfinite(scores).all()):
            raise ValueError(f"{name} has NaN or inf scores; check the model's outputs")
        checked.append(scores)
    return checked[0], checked[1].to(checked[0].device)


class _Counts(NamedTuple):
    """Per distinct score, in DESCENDING order: threshold, and cumulative true/false positives (score >= it)."""

    thresholds: Tensor
    true_positives: Tensor
    false_positives: Tensor
    positives_at: Tensor  # OOD examples whose score equals the threshold (for ranks)
    negatives_at: Tensor
    n_pos: int
    n_neg: int


def _counts(scores_in: Any, scores_out: Any) -> _Counts:
    scores_in, scores_out = _check_scores(scores_in, scores_out)
    scores = torch.cat([scores_in, scores_out])
    is_out = torch.cat([torch.zeros_like(scores_in), torch.ones_like(scores_out)])
    distinct, inverse = torch.unique(scores, sorted=True, return_inverse=True)  # ascending
    positives_at = torch.zeros_like(distinct).index_add_(0, inverse, is_out).flip(0)
    negatives_at = torch.zeros_like(distinct).index_add_(0, inverse, 1 - is_out).flip(0)
    return _Counts(
        thresholds=distinct.flip(0),
        true_positives=positives_at.cumsum(0),
        false_positives=negatives_at.cumsum(0),
        positives_at=positives_at,
        negatives_at=negatives_at,
        n_pos=scores_out.numel(),
        n_neg=scores_in.numel(),
    )


def auroc(scores_in: Any, scores_out: Any) -> float:
    """Area under the ROC curve, P(score_out > score_in) + P(tie) / 2, from average ranks."""
    counts = _counts(scores_in, scores_out)
    # Ranks ascending: the group at position k (descending order) holds ranks after all lower scores.
    group_size = (counts.positives_at + counts.negatives_at).flip(0)
    last_rank = group_size.cumsum(0)
    average_rank = (last_rank - (group_size - 1) / 2).flip(0)
    rank_sum_out = float((counts.positives_at * average_rank).sum())
    n_pos, n_neg = counts.n_pos, counts.n_neg
    return (rank_sum_out - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def aupr(scores_in: Any, scores_out: Any) -> float:
    """Area under the precision-recall curve (OOD positive) as average precision."""
    counts = _counts(scores_in, scores_out)
    precision = counts.true_positives / (counts.true_positives + counts.false_positives)
    recall = counts.true_positives / counts.n_pos
    recall_step = torch.diff(recall, prepend=recall.new_zeros(1))
    return float((recall_step * precision).sum())


def fpr_at_tpr(scores_in: Any, scores_out: Any, tpr: float = 0.95) -> float:
    """False-positive rate at the highest threshold whose true-positive rate is >= `tpr` (no interpolation)."""
    if not 0 < tpr <= 1:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}")
    counts = _counts(scores_in, scores_out)
    # Compare counts, not rates, so that e.g. 19 of 20 reaches 0.95 despite float round-off.
    needed = math.ceil(tpr * counts.n_pos - 1e-9)
    first = int(torch.nonzero(counts.true_positives >= needed)[0, 0])
    return float(counts.false_positives[first] / counts.n_neg)


class RocCurve(NamedTuple):
    """ROC curve points (float64 CPU tensors), thresholds descending from +inf: fpr, tpr, thresholds [K + 1]."""

    fpr: Tensor
    tpr: Tensor
    thresholds: Tensor


def roc_curve(scores_in: Any, scores_out: Any) -> RocCurve:
    """ROC curve of the detector "OOD if score >= threshold", one point per distinct score plus (0, 0)."""
    counts = _counts(scores_in, scores_out)
    zero = counts.thresholds.new_zeros(1)
    inf = counts.thresholds.new_full((1,), math.inf)
    return RocCurve(
        fpr=torch.cat([zero, counts.false_positives / counts.n_neg]).cpu(),
        tpr=torch.cat([zero, counts.true_positives / counts.n_pos]).cpu(),
        thresholds=torch.cat([inf, counts.thresholds]).cpu(),
    )


def ood_metrics(scores_in: Any, scores_out: Any) -> dict[str, float]:
    """{"auroc", "aupr", "fpr95"} with OOD positive and higher score = more OOD."""
    return {
        "auroc": auroc(scores_in, scores_out),
        "aupr": aupr(scores_in, scores_out),
        "fpr95": fpr_at_tpr(scores_in, scores_out, 0.95),
    }


def ood_scores(logits: Any) -> dict[str, Tensor]:
    """Per-example OOD scores [B] from logits [S, B, C], higher = more OOD, keyed by SCORE_NAMES.

    "max_probability" holds the NEGATED max probability of the mean softmax.
    """
    summary = Predictive.from_logits(logits)
    return {
        "max_probability": -summary.max_probability,
        "predictive_entropy": summary.predictive_entropy,
        "mutual_information": summary.mutual_information,
    }


def ood_report(logits_in: Any, logits_out: Any, scores: Sequence[str] = SCORE_NAMES) -> dict[str, dict[str, float]]:
    """{score name: ood_metrics} for in-distribution logits [S, B_in, C] against OOD logits [S', B_out, C]."""
    unknown = [name for name in scores if name not in SCORE_NAMES]
    if unknown:
        raise ValueError(f"unknown OOD score(s) {unknown}; choose from {list(SCORE_NAMES)}")
    logits_in = check_logits(logits_in, "logits_in")
    logits_out = check_logits(logits_out, "logits_out")
    if logits_in.shape[2] != logits_out.shape[2]:
        raise ValueError(
            f"logits_in has {logits_in.shape[2]} classes but logits_out has {logits_out.shape[2]}: "
            "both must come from the same model's head"
        )
    scores_in, scores_out = ood_scores(logits_in), ood_scores(logits_out)
    return {name: ood_metrics(scores_in[name], scores_out[name]) for name in scores}
