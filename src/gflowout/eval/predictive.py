"""The S-sample predictive distribution and its uncertainty summaries.

Every method's `predict(x, samples=S)` returns per-sample logits [S, B, C]. The Bayesian predictive is the
mean of the S softmaxes, p(y|x) = (1/S) sum_s softmax(logits_s); we compute it in log space as
logsumexp_s(log_softmax(logits_s)) - log S, so no probability is ever formed from an overflowing exp.

Uncertainty decomposition (Depeweg et al. 2018; Gal 2016, section 3.3), all in nats:
  predictive entropy  H[mean_s p_s]                      total uncertainty,
  expected entropy    mean_s H[p_s]                      aleatoric part,
  mutual information  H[mean_s p_s] - mean_s H[p_s] >= 0 epistemic part (disagreement between samples).

Results are float64 on the input's device: mutual information is a difference of two close numbers, and
float32 round-off would otherwise dominate it for confident predictions. Inputs may be torch tensors (CPU or
GPU) or numpy arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "Predictive",
    "as_tensor",
    "check_logits",
    "expected_entropy",
    "log_mean_probs",
    "max_probability",
    "mean_probs",
    "mutual_information",
    "predictive_entropy",
    "summarize",
]


def as_tensor(values: Any, name: str) -> Tensor:
    """`values` as a torch tensor (numpy arrays and nested lists are converted; tensors keep their device)."""
    if isinstance(values, Tensor):
        return values
    if isinstance(values, (np.ndarray, list, tuple, np.generic, int, float)):
        return torch.as_tensor(np.asarray(values))
    raise TypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(values).__name__}")


def check_logits(logits: Any, name: str = "logits") -> Tensor:
    """Validate per-sample logits [S, B, C] (finite floats) and return them as float64.

    Raises a ValueError naming `name` with the shape found and how to fix it.
    """
    logits = as_tensor(logits, name)
    if logits.dim() != 3:
        hint = " (one pass? use logits.unsqueeze(0) to make S = 1)" if logits.dim() == 2 else ""
        raise ValueError(f"{name} must have shape [samples, batch, classes], got {tuple(logits.shape)}{hint}")
    if not logits.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of logits, got dtype {logits.dtype}")
    samples, _, classes = logits.shape
    if samples < 1 or classes < 1:
        raise ValueError(f"{name} needs at least one sample and one class, got shape {tuple(logits.shape)}")
    finite = torch.isfinite(logits)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(
            f"{name} has {bad} non-finite value(s) (NaN or inf) out of {logits.numel()}; "
            "check the model's outputs (a diverged run?) before evaluating"
        )
    return logits.detach().to(torch.float64)  # metrics never need gradients


def _entropy_from_log_probs(log_probs: Tensor) -> Tensor:
    """Shannon entropy in nats over the last axis, -sum p log p, from finite log-probabilities."""
    return -(log_probs.exp() * log_probs).sum(dim=-1)


def log_mean_probs(logits: Any) -> Tensor:
    """log of the mean softmax [B, C] from logits [S, B, C]: logsumexp over samples of log_softmax - log S."""
    logits = check_logits(logits)
    log_probs = torch.log_softmax(logits, dim=-1)
    return torch.logsumexp(log_probs, dim=0) - math.log(logits.shape[0])


def mean_probs(logits: Any) -> Tensor:
    """The predictive distribution [B, C]: the mean over S samples of softmax(logits), from logits [S, B, C]."""
    return log_mean_probs(logits).exp()


def predictive_entropy(logits: Any) -> Tensor:
    """Entropy of the mean softmax [B], in nats (total uncertainty)."""
    return _entropy_from_log_probs(log_mean_probs(logits))


def expected_entropy(logits: Any) -> Tensor:
    """Mean over samples of each sample's softmax entropy [B], in nats (aleatoric uncertainty)."""
    logits = check_logits(logits)
    return _entropy_from_log_probs(torch.log_softmax(logits, dim=-1)).mean(dim=0)


def mutual_information(logits: Any) -> Tensor:
    """Predictive entropy minus expected entropy [B], in nats (epistemic uncertainty).

    Non-negative by Jensen's inequality; it is clamped at 0 to remove round-off. Exactly 0 when all samples
    give the same softmax (for example S = 1 or a deterministic method).
    """
    logits = check_logits(logits)
    per_sample_log_probs = torch.log_softmax(logits, dim=-1)
    total = _entropy_from_log_probs(torch.logsumexp(per_sample_log_probs, dim=0) - math.log(logits.shape[0]))
    return _information(total, _entropy_from_log_probs(per_sample_log_probs).mean(dim=0), per_sample_log_probs)


def _information(total: Tensor, aleatoric: Tensor, per_sample_log_probs: Tensor) -> Tensor:
    """total - aleatoric, clamped at 0, and exactly 0 where every sample's softmax is the same: there
    log-mean-exp does not give the log-probabilities back to the last bit (up to ~1e-15 at S = 20), and that
    noise would rank a deterministic method's examples (an OOD AUROC away from 0.5)."""
    information = (total - aleatoric).clamp_min(0.0)
    identical = (per_sample_log_probs == per_sample_log_probs[:1]).flatten(2).all(dim=-1).all(dim=0)
    return information.masked_fill(identical, 0.0)


def max_probability(logits: Any) -> Tensor:
    """Largest class probability of the mean softmax [B] (the confidence; high = certain)."""
    return mean_probs(logits).max(dim=-1).values


@dataclass(frozen=True)
class Predictive:
    """Everything evaluation needs from per-sample logits, computed once. Tensors are float64.

    probs: mean softmax [B, C]; log_probs: its log [B, C]; prediction: argmax class [B] (int64);
    predictive_entropy, expected_entropy, mutual_information, max_probability: [B]; samples: S.
    """

    probs: Tensor
    log_probs: Tensor
    prediction: Tensor
    predictive_entropy: Tensor
    expected_entropy: Tensor
    mutual_information: Tensor
    max_probability: Tensor
    samples: int

    @classmethod
    def from_logits(cls, logits: Any) -> Predictive:
        """Summarise logits [S, B, C] (one log_softmax, shared by every field)."""
        logits = check_logits(logits)
        per_sample_log_probs = torch.log_softmax(logits, dim=-1)
        log_probs = torch.logsumexp(per_sample_log_probs, dim=0) - math.log(logits.shape[0])
        probs = log_probs.exp()
        total = _entropy_from_log_probs(log_probs)
        aleatoric = _entropy_from_log_probs(per_sample_log_probs).mean(dim=0)
        confidence, prediction = probs.max(dim=-1)
        return cls(
            probs=probs,
            log_probs=log_probs,
            prediction=prediction,
            predictive_entropy=total,
            expected_entropy=aleatoric,
            mutual_information=_information(total, aleatoric, per_sample_log_probs),
            max_probability=confidence,
            samples=int(logits.shape[0]),
        )


def summarize(logits: Any) -> Predictive:
    """Shorthand for `Predictive.from_logits(logits)`."""
    return Predictive.from_logits(logits)
