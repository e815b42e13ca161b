"""Selective prediction against a hand computation, a brute-force reference (every threshold, by loops) and
torch-uncertainty's maintained AURC / risk-at-coverage (where it is installed)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gflowout.eval.predictive import Predictive
from gflowout.eval.selective import (
    CURVE_GRID,
    accuracy_at_coverage,
    aurc,
    risk_coverage_curve,
    risk_on_grid,
    selective_metrics,
    selective_report,
)


def test_a_hand_computed_example() -> None:
    # confidences (sorted): 0.9 ok, 0.8 wrong, 0.7 ok, 0.6 ok, 0.5 wrong
    confidence = torch.tensor([0.6, 0.9, 0.5, 0.8, 0.7])
    correct = torch.tensor([True, True, False, False, True])
    curve = risk_coverage_curve(confidence, correct)
    torch.testing.assert_close(curve.coverage, torch.tensor([0.2, 0.4, 0.6, 0.8, 1.0], dtype=torch.float64))
    torch.testing.assert_close(curve.risk, torch.tensor([0.0, 1 / 2, 1 / 3, 1 / 4, 2 / 5], dtype=torch.float64))
    # (1/5)(0 + 1/2 + 1/3 + 1/4 + 2/5) = 0.29666...
    assert aurc(confidence, correct) == pytest.approx((0 + 0.5 + 1 / 3 + 0.25 + 0.4) / 5, abs=1e-15)
    assert accuracy_at_coverage(confidence, correct, 0.8) == pytest.approx(0.75)  # the 4 most confident
    assert accuracy_at_coverage(confidence, correct, 0.7) == pytest.approx(0.75)  # first point reaching 0.7: 0.8
    assert accuracy_at_coverage(confidence, correct, 1.0) == pytest.approx(0.6)


def test_ties_are_admitted_together() -> None:
    # two examples tie at 0.8, one right and one wrong: no order of the tie is preferred
    confidence = torch.tensor([0.9, 0.8, 0.8, 0.1])
    correct = torch.tensor([1, 0, 1, 0])
    curve = risk_coverage_curve(confidence, correct)
    torch.testing.assert_close(curve.coverage, torch.tensor([0.25, 0.75, 1.0], dtype=torch.float64))
    torch.testing.assert_close(curve.risk, torch.tensor([0.0, 1 / 3, 0.5], dtype=torch.float64))
    assert aurc(confidence, correct) == pytest.approx(0.25 * 0 + 0.5 * (1 / 3) + 0.25 * 0.5)
    flipped = risk_coverage_curve(confidence, torch.tensor([1, 1, 0, 0]))  # the tie's members swapped
    torch.testing.assert_close(flipped.risk, curve.risk)
    assert accuracy_at_coverage(confidence, correct, 0.5) == pytest.approx(2 / 3)  # 0.25 < 0.5: the tie comes in


def _brute_force(confidence: np.ndarray, correct: np.ndarray) -> tuple[float, dict[float, float]]:
    """AURC as the mean over n of the error rate of the n most confident (no ties), and accuracy of the
    ceil(cN) most confident, by loops."""
    order = sorted(range(len(confidence)), key=lambda i: -confidence[i])
    risks = []
    for n in range(1, len(order) + 1):
        risks.append(sum(1 - correct[i] for i in order[:n]) / n)
    accuracies = {c: 1 - risks[math.ceil(c * len(order)) - 1] for c in (0.9, 0.95, 0.99)}
    return sum(risks) / len(risks), accuracies


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_brute_force_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    confidence = rng.random(301)
    correct = (rng.random(301) < confidence).astype(np.int64)
    expected_aurc, expected_accuracy = _brute_force(confidence, correct)
    metrics = selective_metrics(confidence, correct)
    assert metrics["aurc"] == pytest.approx(expected_aurc, abs=1e-12)
    for coverage, key in ((0.9, "accuracy_at_90"), (0.95, "accuracy_at_95"), (0.99, "accuracy_at_99")):
        assert metrics[key] == pytest.approx(expected_accuracy[coverage], abs=1e-12)


def _torch_uncertainty_module():
    """torch-uncertainty's risk_coverage module, loaded from its file: the package's __init__ imports torchvision,
    which this environment does not have; the module itself needs only torch, torchmetrics and matplotlib."""
    spec = importlib.util.find_spec("torch_uncertainty")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torch-uncertainty is not installed (pip install torch-uncertainty)")
    path = Path(next(iter(spec.submodule_search_locations))) / "metrics" / "classification" / "risk_coverage.py"
    if not path.is_file():
        pytest.skip(f"this torch-uncertainty has no {path.name}")
    module_spec = importlib.util.spec_from_file_location("tu_risk_coverage", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_matches_torch_uncertainty() -> None:
    tu = _torch_uncertainty_module()
    generator = torch.Generator().manual_seed(3)
    logits = 2.0 * torch.randn(1, 500, 4, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 4, (500,), generator=generator)
    summary = Predictive.from_logits(logits)
    correct = summary.prediction == labels
    ours = selective_metrics(summary.max_probability, correct)

    metric = tu.AURC()
    metric.update(summary.probs.float(), labels)
    theirs = float(metric.compute())
    # torch-uncertainty: trapezoid over coverages 1/N..1, divided by (1 - 1/N); ours: (1/N) sum of risks
    risks = risk_coverage_curve(summary.max_probability, correct).risk
    n = len(labels)
    assert theirs == pytest.approx((n * ours["aurc"] - (float(risks[0]) + float(risks[-1])) / 2) / (n - 1), abs=1e-6)
    for coverage in (0.9, 0.95, 0.99):
        risk_at = tu.RiskAtxCov(cov_threshold=coverage)
        risk_at.update(summary.probs.float(), labels)
        assert ours[f"accuracy_at_{round(coverage * 100)}"] == pytest.approx(1 - float(risk_at.compute()), abs=1e-6)


def test_the_report_has_every_score_and_a_curve_on_the_grid() -> None:
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(5, 200, 3, generator=generator)
    labels = torch.randint(0, 3, (200,), generator=generator)
    summary = Predictive.from_logits(logits)
    metrics, curves = selective_report(summary, labels.numpy())
    assert set(metrics) == set(curves) == {"max_probability", "negative_entropy", "negative_mutual_information"}
    correct = summary.prediction == labels
    assert metrics["negative_entropy"]["aurc"] == pytest.approx(aurc(-summary.predictive_entropy, correct))
    assert curves["max_probability"]["coverage"] == list(CURVE_GRID)
    full = risk_coverage_curve(summary.max_probability, correct)
    assert curves["max_probability"]["risk"] == risk_on_grid(full)
    assert curves["max_probability"]["risk"][-1] == pytest.approx(1 - float(correct.double().mean()))


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="one length"):
        aurc(torch.rand(4), torch.ones(3))
    with pytest.raises(ValueError, match="at least one example"):
        aurc(torch.rand(0), torch.ones(0))
    with pytest.raises(ValueError, match="NaN or inf"):
        aurc(torch.tensor([0.5, float("nan")]), torch.ones(2))
    with pytest.raises(ValueError, match="0/1"):
        aurc(torch.rand(2), torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="coverage must be in"):
        accuracy_at_coverage(torch.rand(3), torch.ones(3), 0.0)
