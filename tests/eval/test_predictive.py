"""The S-sample predictive and its entropies, against direct numpy / scipy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch

from gflowout.eval.predictive import (
    Predictive,
    expected_entropy,
    log_mean_probs,
    max_probability,
    mean_probs,
    mutual_information,
    predictive_entropy,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def random_logits(samples: int = 7, batch: int = 11, classes: int = 5, seed: int = 0, scale: float = 3.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=scale, size=(samples, batch, classes))


def reference_mean_probs(logits: np.ndarray) -> np.ndarray:
    """Direct mean of softmaxes (scipy), no log-space tricks."""
    return scipy.special.softmax(logits, axis=-1).mean(axis=0)


@pytest.mark.parametrize("device", DEVICES)
def test_mean_probs_equals_direct_mean_of_softmaxes(device: str) -> None:
    logits = random_logits()
    got = mean_probs(torch.tensor(logits, dtype=torch.float32, device=device))
    assert got.shape == (11, 5) and got.device.type == device
    np.testing.assert_allclose(got.cpu().numpy(), reference_mean_probs(logits.astype(np.float32)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(log_mean_probs(logits).exp().numpy(), reference_mean_probs(logits), rtol=1e-12)


def test_mean_probs_accepts_numpy_and_stays_finite_for_huge_logits() -> None:
    logits = random_logits(scale=1e4)  # exp would overflow outside log space
    got = mean_probs(logits)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.sum(dim=1).numpy(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(got.numpy(), reference_mean_probs(logits), atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_entropies_match_scipy(device: str) -> None:
    logits = random_logits(seed=1)
    tensor = torch.tensor(logits, device=device)
    reference_total = scipy.stats.entropy(reference_mean_probs(logits), axis=-1)
    reference_expected = scipy.stats.entropy(scipy.special.softmax(logits, axis=-1), axis=-1).mean(axis=0)
    np.testing.assert_allclose(predictive_entropy(tensor).cpu().numpy(), reference_total, rtol=1e-10)
    np.testing.assert_allclose(expected_entropy(tensor).cpu().numpy(), reference_expected, rtol=1e-10)
    np.testing.assert_allclose(
        mutual_information(tensor).cpu().numpy(), reference_total - reference_expected, rtol=1e-8, atol=1e-12
    )
    np.testing.assert_allclose(
        max_probability(tensor).cpu().numpy(), reference_mean_probs(logits).max(axis=-1), rtol=1e-12
    )


def test_mutual_information_is_zero_when_samples_agree() -> None:
    one = random_logits(samples=1, seed=2)
    # Same softmax in every sample: identical logits, or logits shifted by a per-sample constant.
    agreeing = np.concatenate([one, one + 3.0, one - 7.5, one], axis=0)
    mi = mutual_information(agreeing)
    assert torch.all(mi >= 0)
    assert float(mi.max()) < 1e-12
    assert float(mutual_information(one).abs().max()) == 0.0  # S = 1


def test_mutual_information_is_positive_when_samples_disagree() -> None:
    # Two confident samples voting for different classes: the mean is uniform, each sample is near one-hot.
    logits = torch.tensor([[[20.0, -20.0]], [[-20.0, 20.0]]], dtype=torch.float64)
    assert predictive_entropy(logits).item() == pytest.approx(math.log(2), abs=1e-12)
    assert expected_entropy(logits).item() == pytest.approx(0.0, abs=1e-15)
    assert mutual_information(logits).item() == pytest.approx(math.log(2), abs=1e-12)
    disagreeing = random_logits(seed=3)
    assert bool((mutual_information(disagreeing) > 1e-6).all())


def test_predictive_bundle_matches_the_functions() -> None:
    logits = torch.tensor(random_logits(seed=4))
    summary = Predictive.from_logits(logits)
    assert summary.samples == 7
    torch.testing.assert_close(summary.probs, mean_probs(logits))
    torch.testing.assert_close(summary.log_probs, log_mean_probs(logits))
    torch.testing.assert_close(summary.predictive_entropy, predictive_entropy(logits))
    torch.testing.assert_close(summary.expected_entropy, expected_entropy(logits))
    torch.testing.assert_close(summary.mutual_information, mutual_information(logits))
    torch.testing.assert_close(summary.max_probability, max_probability(logits))
    np.testing.assert_array_equal(summary.prediction.numpy(), reference_mean_probs(logits.numpy()).argmax(axis=-1))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.zeros(4, 3), "unsqueeze"),
        (torch.zeros(2, 4, 3, 1), r"\[samples, batch, classes\]"),
        (torch.zeros(2, 4, 3, dtype=torch.int64), "floating-point"),
        (torch.tensor([[[0.0, float("nan")]]]), "non-finite"),
        (torch.tensor([[[0.0, float("inf")]]]), "non-finite"),
        (torch.zeros(0, 4, 3), "at least one sample"),
    ],
)
def test_bad_logits_raise_clear_errors(bad: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mean_probs(bad)


def test_non_array_input_raises_type_error() -> None:
    with pytest.raises(TypeError, match="numpy array"):
        mean_probs("logits")


def test_mutual_information_of_identical_samples_is_exactly_zero_at_any_sample_count() -> None:
    """log-mean-exp of S identical log-softmaxes misses them by ~1e-15, which used to leave MI > 0 for about a
    third of a deterministic method's examples and an MI OOD AUROC away from 0.5."""
    from gflowout.eval.predictive import summarize

    one = torch.as_tensor(random_logits(samples=1, seed=5, batch=2000))
    repeated = one.expand(20, -1, -1)
    assert float(mutual_information(repeated).abs().max()) == 0.0
    assert float(summarize(repeated).mutual_information.abs().max()) == 0.0
    disagreeing = repeated.clone()
    disagreeing[3] += torch.randn_like(disagreeing[3])  # the control: differing samples keep a positive MI
    assert bool((mutual_information(disagreeing) > 0).all())
