"""The paper's hypothesis-test uncertainty metrics (inherited from Contextual Dropout).

For each input: take its S Monte-Carlo logit vectors [S, C] (S = 20 in the paper), find the top-2 classes of
the mean softmax, and run a two-sided paired t-test (`scipy.stats.ttest_rel`) between those two classes'
logits across the S samples. The input is UNCERTAIN when p > alpha, for alpha in (0.01, 0.05, 0.1).

Reported per alpha (N inputs; "accurate" = the argmax of the mean softmax equals the label):
  uncertain_fraction          (#uncertain) / N                                     (the code's `up`, as a fraction)
  pavpu                       (#accurate & certain + #inaccurate & uncertain) / N  (`base_aic`, as a fraction)
  accurate_given_certain      P(accurate | certain)                                (`ac_prob`; NaN if none certain)
  uncertain_given_inaccurate  P(uncertain | inaccurate)                            (`iu_prob`; NaN if none inaccurate)

Degenerate case (our convention; the t statistic is undefined when the S logit differences are all equal,
for example a deterministic method, weight scaling, or S = 1): if the constant difference is non-zero the
top class wins in every sample, so p = 0 (certain); if it is zero (the two logits tie in every sample), p = 1
(uncertain). Elsewhere the p-values equal scipy's.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from gflowout.eval.metrics import check_labels
from gflowout.eval.predictive import check_logits, log_mean_probs

__all__ = ["ALPHAS", "top2_pvalues", "ttest_uncertainty"]

ALPHAS: tuple[float, ...] = (0.01, 0.05, 0.1)


def _top2_logits(logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Logits of the top-1 and top-2 classes of the mean softmax, each [S, B], and the top-1 class [B]."""
    if logits.shape[2] < 2:
        raise ValueError(f"the t-test compares two classes; logits have {logits.shape[2]} class(es)")
    top2 = log_mean_probs(logits).topk(2, dim=1).indices  # [B, 2], best first
    index = top2[None].expand(logits.shape[0], -1, -1)  # [S, B, 2]
    picked = logits.gather(2, index)
    return picked[..., 0], picked[..., 1], top2[:, 0]


def top2_pvalues(logits: Any) -> Tensor:
    """Two-sided paired t-test p-values [B] (float64, CPU) between the top-2 classes' logits over S samples.

    Vectorised over inputs (one `scipy.stats.ttest_rel` call with axis=0). Constant differences follow the
    module's convention (p = 0 if non-zero, p = 1 if zero).
    """
    logits = check_logits(logits)
    first, second, _ = _top2_logits(logits)
    first, second = first.cpu().numpy(), second.cpu().numpy()  # type: ignore[assignment]  # numpy stub precision
    difference = first - second  # [S, B]
    constant = np.ptp(difference, axis=0) == 0
    pvalues = np.where(difference[0] != 0, 0.0, 1.0)  # the convention, overwritten where the test is defined
    varying = ~constant
    if varying.any():
        with warnings.catch_warnings():
            # Nearly constant differences trigger scipy's precision-loss warning; p is ~0 there either way.
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.ttest_rel(first[:, varying], second[:, varying], axis=0)
        pvalues[varying] = result.pvalue
    return torch.from_numpy(pvalues)


def ttest_uncertainty(logits: Any, labels: Any, alphas: Sequence[float] = ALPHAS) -> dict[str, dict[str, float]]:
    """The t-test metrics per alpha, keyed by f"{alpha:g}" ("0.01", "0.05", "0.1"); see the module docstring.

    logits: per-sample logits [S, B, C] (S >= 2 for a real test); labels: int [B] in [0, C).
    """
    for alpha in alphas:
        if not 0 < alpha < 1:
            raise ValueError(f"alphas must lie in (0, 1), got {alpha}")
    logits = check_logits(logits)
    labels = check_labels(labels, logits.shape[1], logits.shape[2]).cpu()
    _, _, prediction = _top2_logits(logits)
    accurate = prediction.cpu() == labels
    pvalues = top2_pvalues(logits)
    n = float(labels.numel())
    report = {}
    for alpha in alphas:
        uncertain = pvalues > alpha
        certain = ~uncertain
        accurate_certain = float((accurate & certain).sum())
        inaccurate_uncertain = float((~accurate & uncertain).sum())
        n_certain, n_inaccurate = float(certain.sum()), float((~accurate).sum())
        report[f"{alpha:g}"] = {
            "uncertain_fraction": float(uncertain.sum()) / n,
            "pavpu": (accurate_certain + inaccurate_uncertain) / n,
            "accurate_given_certain": accurate_certain / n_certain if n_certain else float("nan"),
            "uncertain_given_inaccurate": inaccurate_uncertain / n_inaccurate if n_inaccurate else float("nan"),
        }
    return report
