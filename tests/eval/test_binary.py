"""Binary metrics against scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest

from gflowout.eval.binary import binary_metrics

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 200)
    p1 = np.clip(0.3 * labels + rng.uniform(0, 0.7, 200), 0, 1)
    p1[:5] = 0.5  # ties at the threshold go to class 0
    probs = np.stack([1 - p1, p1], axis=1)
    predicted = (p1 > 0.5).astype(int)
    got = binary_metrics(probs, labels)
    assert got["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(labels, predicted, average="macro"))
    assert got["balanced_accuracy"] == pytest.approx(sklearn_metrics.balanced_accuracy_score(labels, predicted))
    assert got["precision"] == pytest.approx(
        sklearn_metrics.precision_score(labels, predicted, average="macro", zero_division=0)
    )
    assert got["recall"] == pytest.approx(sklearn_metrics.recall_score(labels, predicted, average="macro"))
    assert got["sensitivity"] == pytest.approx(sklearn_metrics.recall_score(labels, predicted))
    assert got["auroc"] == pytest.approx(sklearn_metrics.roc_auc_score(labels, p1))
    assert got["nll"] == pytest.approx(sklearn_metrics.log_loss(labels, np.clip(probs, 1e-12, 1)), rel=1e-6)
    assert got["count"] == 200 and got["positive_rate"] == pytest.approx(labels.mean())


def test_a_class_never_predicted_has_zero_precision_as_scikit_learn():
    labels = np.array([0, 1, 1, 0])
    probs = np.array([[0.9, 0.1]] * 4)
    got = binary_metrics(probs, labels)
    predicted = np.zeros(4, dtype=int)
    assert got["precision"] == pytest.approx(
        sklearn_metrics.precision_score(labels, predicted, average="macro", zero_division=0)
    )
    assert got["macro_f1"] == pytest.approx(
        sklearn_metrics.f1_score(labels, predicted, average="macro", zero_division=0)
    )


def test_one_class_labels_give_nan_auroc_and_bad_shapes_raise():
    assert np.isnan(binary_metrics(np.array([[0.2, 0.8], [0.4, 0.6]]), np.array([1, 1]))["auroc"])
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        binary_metrics(np.ones((3, 3)) / 3, np.array([0, 1, 0]))
