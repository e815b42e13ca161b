"""Accuracy, NLL, Brier, ECE and reliability bins against scikit-learn, torchmetrics and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import torch
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss
from torchmetrics.classification import MulticlassCalibrationError

from gflowout.eval.metrics import accuracy, brier, classification_metrics, ece, nll, reliability_bins
from gflowout.eval.predictive import log_mean_probs, mean_probs

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def random_problem(n: int = 400, classes: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities that are right somewhat more often than chance, and labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    logits = rng.normal(scale=2.0, size=(n, classes))
    logits[np.arange(n), labels] += rng.normal(1.0, 1.5, size=n)
    return scipy.special.softmax(logits, axis=1), labels


def away_from_edges(
    probs: np.ndarray, labels: np.ndarray, bins: int, gap: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """Keep examples whose confidence is not within `gap` of a bin edge (where binning conventions differ)."""
    confidence = probs.max(axis=1)
    distance = np.abs(confidence[:, None] - np.linspace(0, 1, bins + 1)[None]).min(axis=1)
    keep = distance > gap
    return probs[keep], labels[keep]


def loop_ece(probs: np.ndarray, labels: np.ndarray, bins: int) -> float:
    """ECE by an explicit loop with right-closed bins (lo, hi], the first one closed at 0."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = (confidence > lo) & (confidence <= hi) if b > 0 else (confidence <= hi)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return total


@pytest.mark.parametrize("device", DEVICES)
def test_accuracy_nll_brier_match_sklearn(device: str) -> None:
    probs, labels = random_problem()
    tensor_probs, tensor_labels = torch.tensor(probs, device=device), torch.tensor(labels, device=device)
    classes = list(range(probs.shape[1]))
    assert accuracy(tensor_probs, tensor_labels) == pytest.approx(
        accuracy_score(labels, probs.argmax(axis=1)), abs=1e-12
    )
    assert nll(tensor_probs, tensor_labels) == pytest.approx(log_loss(labels, probs, labels=classes), rel=1e-10)
    hand_brier = float(((probs - np.eye(probs.shape[1])[labels]) ** 2).sum(axis=1).mean())
    assert brier(tensor_probs, tensor_labels) == pytest.approx(hand_brier, rel=1e-12)
    assert brier(probs, labels) == pytest.approx(brier_score_loss(labels, probs, labels=classes), rel=1e-10)


def test_binary_brier_is_twice_the_positive_class_convention() -> None:
    positive = np.array([0.2, 0.6, 0.9, 0.5])
    labels = np.array([0, 1, 1, 0])
    probs = np.stack([1 - positive, positive], axis=1)
    assert brier(probs, labels) == pytest.approx(2 * brier_score_loss(labels, positive), rel=1e-12)
    assert brier(probs, labels) == pytest.approx(brier_score_loss(labels, positive, scale_by_half=False), rel=1e-12)


def test_nll_clamps_zero_probability_and_log_probs_path_is_exact() -> None:
    probs = np.array([[1.0, 0.0], [0.5, 0.5]])
    labels = np.array([1, 0])
    assert nll(probs, labels) == pytest.approx((-math.log(1e-12) + math.log(2)) / 2, rel=1e-12)
    assert nll(probs, labels, eps=1e-6) == pytest.approx((-math.log(1e-6) + math.log(2)) / 2, rel=1e-12)
    logits = torch.tensor(np.random.default_rng(5).normal(scale=30.0, size=(1, 50, 4)))
    target = torch.tensor(np.random.default_rng(6).integers(0, 4, size=50))
    exact = torch.nn.functional.cross_entropy(logits[0], target).item()
    assert nll(mean_probs(logits), target, log_probs=log_mean_probs(logits)) == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("bins", [15, 10])
@pytest.mark.parametrize("device", DEVICES)
def test_ece_matches_torchmetrics_away_from_edges(bins: int, device: str) -> None:
    probs, labels = away_from_edges(*random_problem(n=2000, seed=bins), bins=bins)
    metric = MulticlassCalibrationError(num_classes=probs.shape[1], n_bins=bins, norm="l1")
    reference = float(metric(torch.tensor(probs), torch.tensor(labels)))
    got = ece(torch.tensor(probs, device=device), torch.tensor(labels, device=device), bins=bins)
    assert got > 0.01  # a real calibration gap, so agreement is not 0 == 0
    assert got == pytest.approx(reference, abs=1e-6)
    assert got == pytest.approx(loop_ece(probs, labels, bins), abs=1e-12)


def test_ece_hand_case_with_confidences_on_edges() -> None:
    # bins = 2, edges 0, 0.5, 1. Confidence 0.5 is in the first bin (right-closed); 1.0 in the last.
    probs = np.array([[0.5, 0.5], [0.75, 0.25], [0.0, 1.0]])
    labels = np.array([0, 0, 0])  # correct, correct, wrong
    # bin [0, .5]: acc 1, conf .5, weight 1/3; bin (.5, 1]: acc .5, conf .875, weight 2/3.
    expected = (1 / 3) * 0.5 + (2 / 3) * abs(0.5 - 0.875)
    assert ece(probs, labels, bins=2) == pytest.approx(expected, abs=1e-12)
    table = reliability_bins(probs, labels, bins=2)
    np.testing.assert_array_equal(table.count.numpy(), [1, 2])
    np.testing.assert_allclose(table.confidence.numpy(), [0.5, 0.875])
    np.testing.assert_allclose(table.accuracy.numpy(), [1.0, 0.5])
    np.testing.assert_allclose(table.edges.numpy(), [0.0, 0.5, 1.0])


def test_perfect_confident_predictions_have_zero_ece_and_empty_bins_are_nan() -> None:
    probs = np.eye(3)[[0, 1, 2, 1]]
    labels = np.array([0, 1, 2, 1])
    assert ece(probs, labels) == 0.0
    table = reliability_bins(probs, labels, bins=15)
    assert int(table.count.sum()) == 4 and int(table.count[-1]) == 4
    assert torch.isnan(table.confidence[:-1]).all() and torch.isnan(table.accuracy[:-1]).all()


def test_reliability_bins_counts_match_numpy_digitize() -> None:
    probs, labels = random_problem(n=500, seed=7)
    table = reliability_bins(probs, labels, bins=15)
    confidence = probs.max(axis=1)
    index = np.digitize(confidence, np.linspace(0, 1, 16)[1:-1], right=True)  # edges[i-1] < c <= edges[i]
    np.testing.assert_array_equal(table.count.numpy(), np.bincount(index, minlength=15))
    filled = table.count.numpy() > 0
    correct = probs.argmax(axis=1) == labels
    for b in np.flatnonzero(filled):
        assert table.accuracy[b].item() == pytest.approx(correct[index == b].mean(), abs=1e-12)
        assert table.confidence[b].item() == pytest.approx(confidence[index == b].mean(), abs=1e-12)
    assert table.ece == pytest.approx(loop_ece(probs, labels, 15), abs=1e-12)


def test_classification_metrics_bundle() -> None:
    probs, labels = random_problem(seed=8)
    got = classification_metrics(probs, labels, bins=10)
    assert set(got) == {"accuracy", "nll", "brier", "ece"}
    assert got["accuracy"] == pytest.approx(accuracy_score(labels, probs.argmax(axis=1)), abs=1e-12)
    assert got["nll"] == pytest.approx(log_loss(labels, probs, labels=list(range(6))), rel=1e-10)
    assert got["brier"] == pytest.approx(brier_score_loss(labels, probs, labels=list(range(6))), rel=1e-10)
    assert got["ece"] == pytest.approx(loop_ece(probs, labels, 10), abs=1e-12)
    assert all(isinstance(value, float) for value in got.values())


@pytest.mark.parametrize(
    ("probs", "labels", "message"),
    [
        (np.array([[2.0, -1.0], [0.3, 0.7]]), np.array([0, 1]), "outside"),
        (np.array([[0.4, 0.4], [0.3, 0.7]]), np.array([0, 1]), "row 0 sums to 0.8"),
        (np.ones((2, 3, 2)) / 2, np.array([0, 1]), "mean_probs"),
        (np.array([[0.5, 0.5]]), np.array([2]), r"\[0, 2\)"),
        (np.array([[0.5, 0.5]]), np.array([-1]), r"\[0, 2\)"),
        (np.array([[0.5, 0.5]]), np.array([0.0]), "integer"),
        (np.array([[0.5, 0.5]]), np.array([0, 1]), r"shape \[1\]"),
        (np.zeros((0, 2)), np.zeros(0, dtype=np.int64), "at least 1 example"),
        (np.array([[np.nan, 0.5]]), np.array([0]), "NaN"),
        (np.array([[1, 0]]), np.array([0]), "floating-point"),
    ],
)
def test_bad_inputs_raise_clear_errors(probs: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classification_metrics(probs, labels)


def test_bad_bins_and_eps_raise() -> None:
    probs, labels = np.array([[0.5, 0.5]]), np.array([0])
    for bins in (0, -3, 2.5):
        with pytest.raises(ValueError, match="bins"):
            ece(probs, labels, bins=bins)
    with pytest.raises(ValueError, match="eps"):
        nll(probs, labels, eps=0.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_softmax_probabilities_are_accepted(dtype: torch.dtype) -> None:
    """Rows of 10 half-precision probabilities sum to 1 only within a few ulps (1.0003 in float16, 1.002 in
    bf16): they used to be refused as 'not softmax'. Metrics equal those of the float64 renormalised rows."""
    torch.manual_seed(0)
    probs, labels = torch.randn(1000, 10).softmax(1).to(dtype), torch.randint(0, 10, (1000,))
    metrics = classification_metrics(probs, labels)
    reference = probs.double() / probs.double().sum(1, keepdim=True)
    expected = classification_metrics(reference, labels)
    for name in ("accuracy", "nll", "brier", "ece"):
        assert metrics[name] == pytest.approx(expected[name], rel=1e-12), name
    with pytest.raises(ValueError, match="rows must sum to 1"):  # logits by mistake are still refused
        classification_metrics(torch.rand(1000, 10).to(dtype), labels)
