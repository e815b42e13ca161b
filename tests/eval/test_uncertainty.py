"""The paper's paired t-test uncertainty metrics against a per-input scipy loop and a hand-built case."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from gflowout.eval.uncertainty import ALPHAS, top2_pvalues, ttest_uncertainty

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def varied_logits(samples: int = 20, batch: int = 200, classes: int = 10, seed: int = 0) -> np.ndarray:
    """Logits whose top-2 gap and sample noise vary by input, so p-values spread over (0, 1)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(scale=2.0, size=(1, batch, classes))
    noise_scale = rng.uniform(0.1, 3.0, size=(1, batch, 1))
    return base + noise_scale * rng.normal(size=(samples, batch, classes))


def loop_pvalues(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per input: scipy.stats.ttest_rel between the top-2 classes of the mean softmax; also the hand t-test."""
    mean = scipy.special.softmax(logits, axis=-1).mean(axis=0)
    scipy_p, hand_p = [], []
    for b in range(logits.shape[1]):
        first, second = np.argsort(-mean[b])[:2]
        scipy_p.append(scipy.stats.ttest_rel(logits[:, b, first], logits[:, b, second]).pvalue)
        d = logits[:, b, first] - logits[:, b, second]
        t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
        hand_p.append(2 * scipy.stats.t.sf(abs(t), len(d) - 1))
    return np.array(scipy_p), np.array(hand_p), mean.argmax(axis=1)


@pytest.mark.parametrize("device", DEVICES)
def test_pvalues_match_scipy_per_input_loop(device: str) -> None:
    logits = varied_logits()
    got = top2_pvalues(torch.tensor(logits, device=device)).numpy()
    scipy_p, hand_p, _ = loop_pvalues(logits)
    np.testing.assert_allclose(got, scipy_p, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(got, hand_p, rtol=1e-7, atol=1e-300)
    assert (got < 0.01).any() and (got > 0.1).any()  # the data exercise both sides of every alpha


def test_metrics_match_hand_loop_and_alpha_ordering() -> None:
    logits = varied_logits(seed=1)
    labels = np.random.default_rng(2).integers(0, 10, size=200)
    labels[:120] = scipy.special.softmax(logits, axis=-1).mean(axis=0).argmax(axis=1)[:120]  # mostly accurate
    report = ttest_uncertainty(logits, labels)
    assert list(report) == ["0.01", "0.05", "0.1"]
    pvalues, _, prediction = loop_pvalues(logits)
    accurate = prediction == labels
    for alpha in ALPHAS:
        uncertain = pvalues > alpha
        expected = {
            "uncertain_fraction": uncertain.mean(),
            "pavpu": ((accurate & ~uncertain) | (~accurate & uncertain)).mean(),
            "accurate_given_certain": accurate[~uncertain].mean(),
            "uncertain_given_inaccurate": uncertain[~accurate].mean(),
        }
        assert report[f"{alpha:g}"] == pytest.approx(expected, abs=1e-12)
    fractions = [report[key]["uncertain_fraction"] for key in ("0.01", "0.05", "0.1")]
    assert fractions[0] >= fractions[1] >= fractions[2] and fractions[0] > fractions[2]


def test_hand_built_pavpu() -> None:
    rng = np.random.default_rng(3)
    samples = 20
    logits = np.full((samples, 5, 3), -10.0)
    for b in range(3):  # inputs 0-2: class 0 beats class 1 in every sample by about 5: certain
        logits[:, b, 0] = 5 + rng.normal(scale=0.1, size=samples)
        logits[:, b, 1] = rng.normal(scale=0.1, size=samples)
    swing = np.where(np.arange(samples) % 2 == 0, 1.0, -1.0) + 0.01  # mean gap 0.01, spread 1: uncertain
    for b in (3, 4):
        logits[:, b, 0] = rng.normal(size=samples)
        logits[:, b, 1] = logits[:, b, 0] - swing
    labels = np.array([0, 0, 1, 0, 2])  # certain: right, right, wrong; uncertain: right, wrong
    pvalues = top2_pvalues(logits).numpy()
    assert (pvalues[:3] < 0.01).all() and (pvalues[3:] > 0.1).all()  # the construction does what it says
    for metrics in ttest_uncertainty(logits, labels).values():
        assert metrics == pytest.approx(
            {
                "uncertain_fraction": 2 / 5,
                "pavpu": 3 / 5,
                "accurate_given_certain": 2 / 3,
                "uncertain_given_inaccurate": 1 / 2,
            }
        )


def test_identical_samples_follow_the_documented_convention() -> None:
    one = np.array([[[3.0, 1.0, 0.0], [2.0, 2.0, -1.0], [0.0, 0.5, 4.0]]])  # input 1: top-2 tie exactly
    repeated = np.repeat(one, 20, axis=0)  # a deterministic method: every sample the same
    for logits in (repeated, one):
        np.testing.assert_array_equal(top2_pvalues(logits).numpy(), [0.0, 1.0, 0.0])
    labels = np.array([0, 2, 1])  # certain & right, uncertain & wrong (whichever way the tie breaks), certain & wrong
    report = ttest_uncertainty(repeated, labels)["0.05"]
    assert report == pytest.approx(
        {
            "uncertain_fraction": 1 / 3,
            "pavpu": 2 / 3,
            "accurate_given_certain": 1 / 2,
            "uncertain_given_inaccurate": 1 / 2,
        }
    )


def test_undefined_conditional_rates_are_nan() -> None:
    ties = np.repeat(np.array([[[1.0, 1.0, 0.0], [2.0, 2.0, 0.0]]]), 5, axis=0)  # every input ties: all uncertain
    report = ttest_uncertainty(ties, np.array([2, 2]))["0.1"]  # and all wrong
    assert report["uncertain_fraction"] == 1.0 and report["pavpu"] == 1.0
    assert math.isnan(report["accurate_given_certain"]) and report["uncertain_given_inaccurate"] == 1.0
    clear = np.repeat(np.array([[[3.0, 0.0], [0.0, 3.0]]]), 5, axis=0)  # all certain and right
    report = ttest_uncertainty(clear, np.array([0, 1]))["0.1"]
    assert report["uncertain_fraction"] == 0.0 and report["pavpu"] == 1.0
    assert report["accurate_given_certain"] == 1.0 and math.isnan(report["uncertain_given_inaccurate"])


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="two classes"):
        top2_pvalues(np.zeros((4, 3, 1)))
    with pytest.raises(ValueError, match="alphas"):
        ttest_uncertainty(np.zeros((4, 3, 2)), np.zeros(3, dtype=np.int64), alphas=(0.05, 1.5))
    with pytest.raises(ValueError, match=r"shape \[3\]"):
        ttest_uncertainty(np.zeros((4, 3, 2)), np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        ttest_uncertainty(np.zeros((4, 3, 2)), np.array([0, 1, 2]))


def test_accepts_logits_that_require_grad() -> None:
    logits = torch.tensor(varied_logits(batch=20, seed=4), requires_grad=True)
    np.testing.assert_allclose(
        top2_pvalues(logits).numpy(), loop_pvalues(varied_logits(batch=20, seed=4))[0], rtol=1e-9
    )
