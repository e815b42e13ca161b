"""Temperature scaling: it fixes a deliberately over-confident model, finds the NLL optimum of a fine grid search
(the reference, computed here by hand in numpy), and refuses malformed input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from gflowout.eval.temperature import apply_temperature, fit_temperature, temperature_nll

CLASSES = 5


def _calibrated(n: int, samples: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [S, n, C] of a calibrated model (labels drawn from its own softmax), with small sample noise."""
    generator = torch.Generator().manual_seed(seed)
    base = 1.5 * torch.randn(n, CLASSES, generator=generator, dtype=torch.float64)
    labels = torch.multinomial(base.softmax(-1), 1, generator=generator).squeeze(1)
    noise = 0.3 * torch.randn(samples, n, CLASSES, generator=generator, dtype=torch.float64)
    return base + noise * (samples > 1), labels


def _nll_by_hand(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """-mean log mean_s softmax(z_s / T)[y] with numpy and scipy (the reference of the tests), in log space."""
    log_probs = logits / temperature - logsumexp(logits / temperature, axis=-1, keepdims=True)
    picked = log_probs[:, np.arange(len(labels)), labels]  # [S, N]
    return float(-(logsumexp(picked, axis=0) - np.log(logits.shape[0])).mean())


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.softmax(-1).mean(0).argmax(-1) == labels).double().mean())


@pytest.mark.parametrize("samples", [1, 4])
def test_an_over_confident_model_gets_a_temperature_that_lowers_the_nll(samples: int) -> None:
    logits, labels = _calibrated(3000, samples)
    confident = logits * 10.0  # the same model, ten times over-confident
    temperature = fit_temperature(confident, labels)
    assert 7.0 < temperature < 13.0  # near the 10 that undoes it
    before = _nll_by_hand(confident.numpy(), labels.numpy(), 1.0)
    after = _nll_by_hand(confident.numpy(), labels.numpy(), temperature)
    assert after < 0.5 * before
    assert temperature_nll(confident, labels, temperature) == pytest.approx(after, rel=1e-9)
    scaled = apply_temperature(confident, temperature)
    if samples == 1:  # one sample: dividing the logits never moves the arg-max
        assert _accuracy(scaled, labels) == _accuracy(confident, labels)
    else:
        assert abs(_accuracy(scaled, labels) - _accuracy(confident, labels)) < 0.01


@pytest.mark.parametrize(("samples", "scale"), [(1, 10.0), (3, 0.4), (5, 3.0)])
def test_the_temperature_matches_a_fine_grid_search(samples: int, scale: float) -> None:
    logits, labels = _calibrated(600, samples, seed=samples)
    logits = logits * scale
    found = fit_temperature(logits, labels)
    array, y = logits.numpy(), labels.numpy()
    coarse = np.geomspace(0.05, 40.0, 700)  # neighbours 1 % apart
    centre = coarse[int(np.argmin([_nll_by_hand(array, y, t) for t in coarse]))]
    fine = np.arange(centre * 0.98, centre * 1.02, 1e-4)
    reference = fine[int(np.argmin([_nll_by_hand(array, y, t) for t in fine]))]
    assert abs(found - reference) < 1e-3


def test_malformed_input_is_refused_with_a_clear_error() -> None:
    logits, labels = _calibrated(10, 2)
    nan = logits.clone()
    nan[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        fit_temperature(nan, labels)
    with pytest.raises(ValueError, match=r"shape \[samples, batch, classes\]"):
        fit_temperature(logits[0], labels)
    with pytest.raises(ValueError, match="vector of 10 class indices"):
        fit_temperature(logits, labels[:9])
    with pytest.raises(ValueError, match=r"labels must lie in 0..4"):
        fit_temperature(logits, torch.full((10,), CLASSES))
    with pytest.raises(ValueError, match="integer class indices"):
        fit_temperature(logits, labels.double())
    with pytest.raises(ValueError, match="finite positive"):
        apply_temperature(logits, 0.0)
