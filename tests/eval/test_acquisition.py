"""Acquisition scores against hand computations, top-k tie-breaking, seeded random acquisition, bad names."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gflowout.errors import ConfigError
from gflowout.eval.acquisition import (
    AcquisitionScore,
    acquisition_scores,
    dempster_shafer,
    log_dempster_shafer,
    resolve_score,
    top_k,
    variation_ratio,
)

LN9 = math.log(9.0)


def binary_entropy(p: float) -> float:
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def samples_of(*per_example: list[list[float]]) -> torch.Tensor:
    """Logits [S, B, C] from one [S, C] list per example."""
    return torch.tensor(per_example, dtype=torch.float64).permute(1, 0, 2)


def test_entropy_hand_computed_and_ranks_the_uncertain_example_first():
    # example 0: p = (0.75, 0.25) in both samples; example 1: p = (0.5, 0.5)
    logits = samples_of([[math.log(3.0), 0.0]] * 2, [[0.0, 0.0]] * 2)
    scores = acquisition_scores("entropy", logits)
    assert scores.tolist() == pytest.approx([binary_entropy(0.75), math.log(2.0)], abs=1e-12)
    assert top_k(scores, 1).tolist() == [1]


def test_bald_prefers_disagreeing_samples_over_equally_uncertain_agreeing_ones():
    # example 0: both samples say (0.5, 0.5) -> MI 0; example 1: (0.9, 0.1) and (0.1, 0.9) -> MI = ln 2 - h(0.9)
    logits = samples_of([[0.0, 0.0], [0.0, 0.0]], [[LN9, 0.0], [0.0, LN9]])
    assert acquisition_scores("entropy", logits).tolist() == pytest.approx([math.log(2)] * 2, abs=1e-12)
    scores = acquisition_scores("bald", logits)
    assert scores.tolist() == pytest.approx([0.0, math.log(2.0) - binary_entropy(0.9)], abs=1e-12)
    assert top_k(scores, 1).tolist() == [1]


def test_variation_ratio_counts_votes():
    # S = 4 votes: (0, 0, 1, 2) -> 1 - 2/4; (0, 0, 0, 0) -> 0; (1, 2, 1, 1) -> 1 - 3/4
    one_hot = torch.eye(3, dtype=torch.float64) * 5.0
    logits = torch.stack([one_hot[[0, 0, 1]], one_hot[[0, 0, 2]], one_hot[[1, 0, 1]], one_hot[[2, 0, 1]]])
    assert variation_ratio(logits).tolist() == pytest.approx([0.5, 0.0, 0.25])
    assert top_k(acquisition_scores("variation_ratio", logits), 3).tolist() == [0, 2, 1]


def test_dempster_shafer_hand_computed():
    # K = 2. mean logits (0, 0): 2 / (1 + 1 + 2) = 1/2; (ln 3, 0): 2 / (3 + 1 + 2) = 1/3;
    # samples (2, 0) and (0, 0): mean (1, 0): 2 / (e + 1 + 2)
    logits = samples_of([[0.0, 0.0], [0.0, 0.0]], [[math.log(3.0), 0.0]] * 2, [[2.0, 0.0], [0.0, 0.0]])
    assert dempster_shafer(logits).tolist() == pytest.approx([0.5, 1 / 3, 2 / (math.e + 3)], abs=1e-12)
    assert top_k(acquisition_scores("dempster_shafer", logits), 3).tolist() == [0, 2, 1]


def test_dempster_shafer_ranks_confident_examples_without_underflow():
    # exp(900) overflows float64: the plain formula gives 0 for both; the log-space score still orders them
    logits = samples_of([[1000.0, 0.0]], [[900.0, 0.0]])
    assert dempster_shafer(logits).tolist() == [0.0, 0.0]
    log_scores = log_dempster_shafer(logits)
    assert log_scores.tolist() == pytest.approx([math.log(2) - 1000.0, math.log(2) - 900.0])
    assert top_k(acquisition_scores("dempster_shafer", logits), 1).tolist() == [1]


def test_top_k_breaks_ties_by_position_and_checks_k():
    assert top_k([0.5, 0.9, 0.5, 0.9, 0.1], 3).tolist() == [1, 3, 0]
    assert top_k(torch.zeros(6, dtype=torch.float64), 2).tolist() == [0, 1]
    with pytest.raises(ValueError, match="pool of 3"):
        top_k([0.1, 0.2, 0.3], 4)
    with pytest.raises(ValueError, match="k = 0"):
        top_k([0.1, 0.2], 0)
    with pytest.raises(ValueError, match="NaN"):
        top_k([0.1, float("nan")], 1)


def test_random_acquisition_is_seeded():
    def picks(seed: int) -> list[int]:
        scores = acquisition_scores("random", count=1000, generator=torch.Generator().manual_seed(seed))
        return top_k(scores, 10).tolist()

    assert picks(3) == picks(3)
    assert picks(3) != picks(4)
    scores = acquisition_scores("random", count=1000, generator=torch.Generator().manual_seed(0)).numpy()
    assert scores.min() >= 0.0 and scores.max() < 1.0 and len(np.unique(scores)) == 1000


def test_scores_never_need_labels_and_are_float64_per_example():
    logits = torch.randn(5, 7, 4, generator=torch.Generator().manual_seed(0))
    for score in AcquisitionScore:
        values = acquisition_scores(score, logits, generator=torch.Generator().manual_seed(0))
        assert values.shape == (7,) and values.dtype == torch.float64


def test_unknown_score_name_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'variation_ratio'"):
        resolve_score("variation_ratios")
    with pytest.raises(ConfigError, match="choose one of"):
        acquisition_scores("margin", torch.zeros(1, 1, 2))
