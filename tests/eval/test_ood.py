"""OOD detection metrics against scikit-learn and brute force, including ties and one-class inputs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.metrics import roc_curve as sklearn_roc_curve

from gflowout.eval.ood import SCORE_NAMES, aupr, auroc, fpr_at_tpr, ood_metrics, ood_report, ood_scores, roc_curve

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def sklearn_reference(scores_in: np.ndarray, scores_out: np.ndarray) -> dict[str, float]:
    """AUROC, AP and FPR at 95% TPR from scikit-learn, OOD = positive class."""
    y = np.r_[np.zeros(len(scores_in)), np.ones(len(scores_out))]
    s = np.r_[scores_in, scores_out]
    fpr, tpr, _ = sklearn_roc_curve(y, s, drop_intermediate=False)
    return {
        "auroc": roc_auc_score(y, s),
        "aupr": average_precision_score(y, s),
        "fpr95": float(fpr[np.argmax(tpr >= 0.95)]),
    }


def pairwise_auroc(scores_in: np.ndarray, scores_out: np.ndarray) -> float:
    """P(out > in) + P(out == in) / 2 over all pairs."""
    diff = scores_out[:, None] - scores_in[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_with_many_ties_match_sklearn(device: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores_in = rng.integers(0, 6, size=60).astype(float)  # few distinct values: many ties, across the classes too
    scores_out = rng.integers(2, 8, size=40).astype(float)
    got = ood_metrics(torch.tensor(scores_in, device=device), torch.tensor(scores_out, device=device))
    reference = sklearn_reference(scores_in, scores_out)
    assert got["auroc"] == pytest.approx(reference["auroc"], abs=1e-12)
    assert got["auroc"] == pytest.approx(pairwise_auroc(scores_in, scores_out), abs=1e-12)
    assert got["aupr"] == pytest.approx(reference["aupr"], abs=1e-12)
    assert got["fpr95"] == pytest.approx(reference["fpr95"], abs=1e-12)


def test_continuous_scores_match_sklearn_and_numpy_input() -> None:
    rng = np.random.default_rng(3)
    scores_in, scores_out = rng.normal(size=300), rng.normal(0.8, 1.2, size=200)
    got = ood_metrics(scores_in, scores_out)
    reference = sklearn_reference(scores_in, scores_out)
    for key in ("auroc", "aupr", "fpr95"):
        assert got[key] == pytest.approx(reference[key], abs=1e-12)
    assert 0.6 < got["auroc"] < 0.8  # a partly separable case, not a trivial 0.5 or 1.0


def test_fpr95_reaches_exactly_95_percent_without_round_off() -> None:
    scores_out = np.arange(20, dtype=float) + 10  # threshold 11 keeps 19 of 20 OOD scores: TPR = 0.95 exactly
    scores_in = np.array([10.5, 0.0, 1.0, 2.0])  # none reaches 11; 10.5 passes only the threshold 10 (TPR 1)
    assert fpr_at_tpr(scores_in, scores_out) == 0.0
    assert fpr_at_tpr(scores_in, scores_out, tpr=1.0) == 0.25  # threshold 10 lets 10.5 through
    assert fpr_at_tpr(scores_in, scores_out) == sklearn_reference(scores_in, scores_out)["fpr95"]


def test_all_scores_equal() -> None:
    scores_in, scores_out = np.full(30, 0.7), np.full(10, 0.7)
    got = ood_metrics(scores_in, scores_out)
    assert got == {"auroc": 0.5, "aupr": 0.25, "fpr95": 1.0}
    reference = sklearn_reference(scores_in, scores_out)
    assert got == pytest.approx(reference, abs=1e-12)


def test_perfect_and_reversed_separation() -> None:
    low, high = np.array([0.1, 0.2, 0.3]), np.array([0.8, 0.9])
    assert ood_metrics(low, high) == {"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0}
    reversed_ = ood_metrics(high, low)
    assert reversed_["auroc"] == 0.0 and reversed_["fpr95"] == 1.0
    assert reversed_["aupr"] == pytest.approx(average_precision_score([0, 0, 1, 1, 1], [0.8, 0.9, 0.1, 0.2, 0.3]))


def test_roc_curve_matches_sklearn_without_dropped_points() -> None:
    rng = np.random.default_rng(4)
    scores_in, scores_out = rng.integers(0, 10, size=50).astype(float), rng.integers(3, 12, size=30).astype(float)
    curve = roc_curve(scores_in, scores_out)
    fpr, tpr, thresholds = sklearn_roc_curve(
        np.r_[np.zeros(50), np.ones(30)], np.r_[scores_in, scores_out], drop_intermediate=False
    )
    np.testing.assert_allclose(curve.fpr.numpy(), fpr, atol=1e-15)
    np.testing.assert_allclose(curve.tpr.numpy(), tpr, atol=1e-15)
    np.testing.assert_array_equal(curve.thresholds.numpy(), thresholds)
    assert np.trapezoid(curve.tpr.numpy(), curve.fpr.numpy()) == pytest.approx(auroc(scores_in, scores_out), abs=1e-12)


@pytest.mark.parametrize(
    ("scores_in", "scores_out", "message"),
    [
        (np.zeros(0), np.ones(3), "scores_in is empty"),
        (np.ones(3), np.zeros(0), "scores_out is empty"),
        (np.ones((3, 2)), np.ones(3), "1-D"),
        (np.array([0.0, np.nan]), np.ones(3), "NaN"),
        (np.ones(3), np.array([np.inf]), "NaN or inf"),
    ],
)
def test_bad_scores_raise_clear_errors(scores_in: np.ndarray, scores_out: np.ndarray, message: str) -> None:
    for metric in (auroc, aupr, fpr_at_tpr, roc_curve, ood_metrics):
        with pytest.raises(ValueError, match=message):
            metric(scores_in, scores_out)


def reference_scores(logits: np.ndarray) -> dict[str, np.ndarray]:
    """The three scores from a direct mean of softmaxes and scipy entropies."""
    per_sample = scipy.special.softmax(logits, axis=-1)
    mean = per_sample.mean(axis=0)
    total = scipy.stats.entropy(mean, axis=-1)
    return {
        "max_probability": -mean.max(axis=-1),
        "predictive_entropy": total,
        "mutual_information": total - scipy.stats.entropy(per_sample, axis=-1).mean(axis=0),
    }


@pytest.mark.parametrize("device", DEVICES)
def test_ood_report_from_logits(device: str) -> None:
    rng = np.random.default_rng(5)
    logits_in = rng.normal(size=(8, 120, 10)) + 6.0 * np.eye(10)[rng.integers(0, 10, size=120)][None]
    logits_out = rng.normal(scale=1.5, size=(8, 80, 10))  # flatter and more disagreeing: more uncertain
    report = ood_report(torch.tensor(logits_in, device=device), torch.tensor(logits_out, device=device))
    assert list(report) == list(SCORE_NAMES)
    ref_in, ref_out = reference_scores(logits_in), reference_scores(logits_out)
    for name in SCORE_NAMES:
        assert report[name] == pytest.approx(sklearn_reference(ref_in[name], ref_out[name]), abs=1e-9)
        assert report[name]["auroc"] > 0.8
    scores = ood_scores(logits_in)
    np.testing.assert_allclose(scores["max_probability"].numpy(), ref_in["max_probability"], rtol=1e-12)


def test_single_sample_mutual_information_is_uninformative() -> None:
    rng = np.random.default_rng(6)
    report = ood_report(rng.normal(size=(1, 20, 3)), rng.normal(size=(1, 10, 3)), scores=["mutual_information"])
    assert report == {"mutual_information": {"auroc": 0.5, "aupr": 10 / 30, "fpr95": 1.0}}


def test_ood_report_rejects_mismatched_classes_and_unknown_scores() -> None:
    with pytest.raises(ValueError, match="3 classes but logits_out has 4"):
        ood_report(np.zeros((2, 5, 3)), np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="unknown OOD score"):
        ood_report(np.zeros((2, 5, 3)), np.zeros((2, 5, 3)), scores=["variance"])
    with pytest.raises(ValueError, match="logits_out"):
        ood_report(np.zeros((2, 5, 3)), np.zeros((5, 3)))
