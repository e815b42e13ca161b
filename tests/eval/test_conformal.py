"""Split conformal classification (gflowout.eval.conformal): scores and quantiles against a hand computation, the
coverage guarantee over many random calibration / test splits of exchangeable synthetic data, set sizes that
shrink as the model sharpens, and clear errors for bad input and too-small calibration sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gflowout.eval.conformal import (
    ConformalClassifier,
    calibration_index,
    conformal_quantile,
    conformal_scores,
    fit_on_loader,
    set_report,
    size_stratified_coverage,
)

# four examples, three classes; the third has a tie (classes 0 and 1), broken by class order
PROBS = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.7, 0.2, 0.1]])
LABELS = np.array([1, 1, 0, 0])


def test_scores_by_hand() -> None:
    np.testing.assert_allclose(conformal_scores(PROBS, "lac"), 1 - PROBS)
    # APS: the probability mass of the classes ranked up to and including y
    aps = [[0.5, 0.8, 1.0], [1.0, 0.6, 0.9], [0.8, 1.0, 0.6], [0.7, 0.9, 1.0]]
    np.testing.assert_allclose(conformal_scores(PROBS, "aps"), aps)
    # RAPS, lam 0.1, k_reg 1: + 0.1 per rank beyond the first
    np.testing.assert_allclose(
        conformal_scores(PROBS, "raps", lam=0.1, k_reg=1),
        np.array(aps) + 0.1 * np.array([[0, 1, 2], [2, 0, 1], [1, 2, 0], [0, 1, 2]]),
    )
    # randomised APS: the last term (p_y) times U, one U per example
    uniform = np.array([0.5, 0.0, 1.0, 0.25])
    np.testing.assert_allclose(conformal_scores(PROBS, "aps", uniform), np.array(aps) - uniform[:, None] * PROBS)
    # randomised RAPS: the last term is p_y + lam where y is beyond k_reg
    raps = conformal_scores(PROBS, "raps", uniform, lam=0.1, k_reg=1)
    assert raps[0, 1] == pytest.approx(0.8 + 0.1 - 0.5 * (0.3 + 0.1))
    assert raps[0, 0] == pytest.approx(0.5 - 0.5 * 0.5)


def test_quantile_is_the_ceil_n_plus_one_order_statistic() -> None:
    scores = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6])  # n = 9
    assert calibration_index(9, 0.2) == 8  # ceil(10 * 0.8)
    assert conformal_quantile(scores, 0.2) == pytest.approx(0.8)  # the 8th smallest
    assert conformal_quantile(scores, 0.1) == pytest.approx(0.9)  # k = ceil(9.0) = 9: no float round-up to 10
    assert conformal_quantile(scores, 0.5) == pytest.approx(0.5)  # k = ceil(5.0) = 5
    assert calibration_index(100, 0.1) == 91
    # the fitted predictor on the tiny example: alpha 0.2, n 4 -> k = 4, the largest APS score at the labels
    predictor = ConformalClassifier.fit(PROBS, LABELS, alpha=0.2, score="aps")
    assert predictor.quantile == pytest.approx(0.8) and predictor.calibration_size == 4
    expected = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 1], [1, 0, 0]], dtype=bool)  # APS score <= 0.8
    np.testing.assert_array_equal(predictor.predict_sets(PROBS), expected)
    assert predictor.coverage(PROBS, LABELS) == 1.0
    np.testing.assert_array_equal(predictor.set_sizes(PROBS), [2, 1, 2, 1])
    lac = ConformalClassifier.fit(PROBS, LABELS, alpha=0.2, score="lac")  # scores at labels 0.7, 0.4, 0.8, 0.3
    assert lac.quantile == pytest.approx(0.8)


def test_too_small_a_calibration_set_is_refused_with_what_works() -> None:
    with pytest.raises(
        ValueError, match=r"too small for alpha = 0.1.*at least 9 examples.*alpha >= 1/\(n \+ 1\) = 0.1667"
    ):
        ConformalClassifier.fit(np.tile(PROBS, (2, 1))[:5], np.tile(LABELS, 2)[:5], alpha=0.1)
    ConformalClassifier.fit(np.tile(PROBS, (3, 1))[:9], np.tile(LABELS, 3)[:9], alpha=0.1)  # n = 9 = 1/alpha - 1 works
    with pytest.raises(ValueError, match="at least 19 examples"):
        calibration_index(18, 0.05)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p, y: (np.where(p == 0.5, np.nan, p), y), "NaN or inf"),
        (lambda p, y: (p[:, :1].ravel(), y), r"shape \[N, C\]"),
        (lambda p, y: (p, y[:3]), "vector of 12 class indices"),
        (lambda p, y: (p, y + 2), r"labels must lie in 0..2"),
        (lambda p, y: (p, y.astype(float)), "integer class indices"),
        (lambda p, y: (p * 2, y), "summing to 1.*logits=True"),
        (lambda p, y: (np.log(p), y), "probabilities in \\[0, 1\\]"),
    ],
)
def test_bad_input_is_named(change, message) -> None:
    probs, labels = change(PROBS.copy(), LABELS.copy())
    with pytest.raises(ValueError, match=message):
        ConformalClassifier.fit(
            np.tile(probs, (3, 1)) if probs.ndim == 2 else probs,
            np.tile(labels, 3) if len(labels) == 4 else labels,
            alpha=0.2,
        )


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="one of lac, aps, raps"):
        ConformalClassifier.fit(PROBS, LABELS, alpha=0.2, score="thr")
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        ConformalClassifier.fit(PROBS, LABELS, alpha=1.5)
    predictor = ConformalClassifier.fit(PROBS, LABELS, alpha=0.2)
    with pytest.raises(ValueError, match="calibrated with 3"):
        predictor.predict_sets(np.full((2, 4), 0.25))


def test_logits_and_samples_give_the_mean_softmax() -> None:
    logits = torch.randn(5, 40, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 4, (40,), generator=torch.Generator().manual_seed(1))
    mean_softmax = torch.softmax(logits.double(), -1).mean(0).numpy()
    by_logits = ConformalClassifier.fit_logits(logits, labels, alpha=0.2, score="aps")
    by_probs = ConformalClassifier.fit(mean_softmax, labels.numpy(), alpha=0.2, score="aps")
    assert by_logits.quantile == pytest.approx(by_probs.quantile)
    np.testing.assert_array_equal(by_logits.predict_sets(logits, logits=True), by_probs.predict_sets(mean_softmax))
    per_sample_probs = torch.softmax(logits, -1)  # probabilities [S, N, C] are averaged too
    assert ConformalClassifier.fit(per_sample_probs, labels, alpha=0.2).quantile == pytest.approx(by_probs.quantile)


def _synthetic(rng: np.random.Generator, shape: tuple[int, ...], sharpness: float) -> tuple[np.ndarray, np.ndarray]:
    """A calibrated model: probabilities softmax(sharpness * z) and labels drawn from them (exchangeable rows)."""
    z = rng.normal(size=(*shape, 10)) * sharpness
    probs = np.exp(z - z.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    labels = (probs.cumsum(-1) < rng.random(shape)[..., None]).sum(-1).clip(max=9)
    return probs, labels


@pytest.mark.parametrize(("score", "randomized"), [("lac", False), ("aps", False), ("aps", True), ("raps", True)])
def test_coverage_guarantee_over_random_splits(score: str, randomized: bool) -> None:
    splits, n, m, alpha = 2000, 20, 200, 0.1
    probs, labels = _synthetic(np.random.default_rng(7), (splits, n + m), 2.0)
    coverages = np.array(
        [
            ConformalClassifier.fit(
                probs[i, :n], labels[i, :n], alpha=alpha, score=score, randomized=randomized, lam=0.05, k_reg=2, seed=i
            ).coverage(probs[i, n:], labels[i, n:])
            for i in range(splits)
        ]
    )
    mean, error = coverages.mean(), coverages.std(ddof=1) / math.sqrt(splits)
    assert mean >= 1 - alpha - 3 * error  # the guarantee, within sampling error
    if randomized:  # no ties: exactly k / (n + 1) in expectation, so at most 1 - alpha + 1/(n + 1)
        k = calibration_index(n, alpha)
        assert mean <= 1 - alpha + 1 / (n + 1) + 3 * error
        assert abs(mean - k / (n + 1)) < 4 * error


def test_sets_shrink_as_the_model_sharpens() -> None:
    rng = np.random.default_rng(3)
    for score in ("lac", "aps"):
        sizes = []
        for sharpness in (0.5, 2.0, 6.0):
            probs, labels = _synthetic(rng, (3000,), sharpness)
            predictor = ConformalClassifier.fit(probs[:1000], labels[:1000], alpha=0.1, score=score)
            sizes.append(predictor.set_sizes(probs[1000:]).mean())
        assert sizes[0] > sizes[1] > sizes[2] >= 1.0 - 0.1, (score, sizes)


def test_randomised_sets_are_reproducible_and_may_be_empty() -> None:
    probs, labels = _synthetic(np.random.default_rng(5), (500,), 3.0)
    predictor = ConformalClassifier.fit(probs[:200], labels[:200], alpha=0.3, score="aps", randomized=True)
    first, second = predictor.predict_sets(probs[200:]), predictor.predict_sets(probs[200:])
    np.testing.assert_array_equal(first, second)
    assert (first.sum(1) == 0).any()  # randomisation can leave a set empty: that is how coverage stays exact
    assert not ConformalClassifier.fit(probs[:200], labels[:200], alpha=0.3, score="lac", randomized=True).randomized


def test_size_stratified_coverage_by_hand() -> None:
    sets = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 1, 1], [0, 0, 0]], dtype=bool)
    labels = np.array([0, 2, 1, 2, 0])
    strata = size_stratified_coverage(sets, labels)
    assert list(strata) == ["0", "1", "2", "3"]  # only sizes reachable with 3 classes
    assert strata["1"] == {"fraction": 0.4, "coverage": 0.5}
    assert strata["0"] == {"fraction": 0.2, "coverage": 0.0} and strata["3"]["coverage"] == 1.0
    report = set_report(sets, labels, stratified=True)
    assert report["coverage"] == pytest.approx(0.6) and report["mean_size"] == pytest.approx(7 / 5)
    assert set(set_report(sets, labels)) == {"coverage", "mean_size"}


def test_fit_on_loader_calibrates_a_method() -> None:
    from tests.helpers.evaluation import RecordingMethod

    class Fixed(RecordingMethod):
        def answer(self, x: torch.Tensor, samples: int) -> torch.Tensor:
            return x.flatten(1)[:, :10].unsqueeze(0).expand(samples, -1, -1) * 3

    x = torch.randn(60, 1, 1, 10, generator=torch.Generator().manual_seed(2))
    y = x.flatten(1).argmax(1)
    loader = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 60, 16)]
    predictor = fit_on_loader(Fixed(), loader, samples=2, alpha=0.2, score="lac")
    expected = ConformalClassifier.fit_logits(x.flatten(1) * 3, y, alpha=0.2, score="lac")
    assert predictor.quantile == pytest.approx(expected.quantile) and predictor.calibration_size == 60
