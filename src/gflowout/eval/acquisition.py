"""Acquisition scores of pool-based active learning, and batch acquisition by top-k.

Every score is a pure function of the per-sample logits [S, B, C] that `DropoutMethod.predict(x, samples=S)`
returns (never of a label) and gives one float64 number per example [B]; higher means "acquire first".

  entropy           predictive entropy H[mean_s p_s] (Shannon 1948; in deep active learning Gal, Islam &
                    Ghahramani, "Deep Bayesian Active Learning with Image Data", ICML 2017);
  bald              mutual information between the label and the masks, H[mean_s p_s] - mean_s H[p_s]
                    (Houlsby et al. 2011, "BALD"; Gal et al. 2017);
  variation_ratio   1 - (number of samples voting for the modal class) / S (Freeman 1965; Gal et al. 2017);
  dempster_shafer   K / (sum_k exp(mean_s logit_k) + K), the Dempster-Shafer uncertainty the GFlowOut paper
                    (Liu et al., "GFlowOut: Dropout with Generative Flow Networks", ICML 2023) acquires by in
                    its active-learning experiment; it is ranked by its logarithm, computed with logsumexp, so
                    confident examples with large logits never underflow to a tie at 0;
  random            uniform scores from a seeded generator: the reference every other score must beat.

`top_k` picks the k highest scores; ties go to the lower position, so an acquisition is a deterministic
function of the scores (a deterministic method's BALD is 0 everywhere, and then the pool order decides).
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gflowout.config_types import closest_match
from gflowout.errors import ConfigError
from gflowout.eval.predictive import check_logits, mutual_information, predictive_entropy

__all__ = [
    "AcquisitionScore",
    "acquisition_scores",
    "dempster_shafer",
    "log_dempster_shafer",
    "random_scores",
    "resolve_score",
    "top_k",
    "variation_ratio",
]


class AcquisitionScore(str, Enum):
    """The acquisition scores a config or the command line can name."""

    ENTROPY = "entropy"
    BALD = "bald"
    VARIATION_RATIO = "variation_ratio"
    DEMPSTER_SHAFER = "dempster_shafer"
    RANDOM = "random"

    @property
    def needs_predictions(self) -> bool:
        """False for random acquisition, which never looks at the model."""
        return self is not AcquisitionScore.RANDOM


def resolve_score(name: str | AcquisitionScore) -> AcquisitionScore:
    """The score named `name`, or a ConfigError listing the valid names and the closest one."""
    try:
        return AcquisitionScore(name)
    except ValueError:
        known = [s.value for s in AcquisitionScore]
        raise ConfigError(
            f"unknown acquisition score {name!r}; choose one of {known}{closest_match(str(name), known)}"
        ) from None


def variation_ratio(logits: Any) -> Tensor:
    """1 - f_mode / S [B], where f_mode counts the S samples whose argmax is the most frequent class.

    0 when every sample votes for the same class, at most 1 - ceil(S / C) / S. (Gal et al. 2017, section 3.)
    """
    logits = check_logits(logits)
    samples, _, classes = logits.shape
    votes = torch.nn.functional.one_hot(logits.argmax(dim=-1), classes).sum(dim=0)  # [B, C]
    return 1.0 - votes.max(dim=-1).values.to(torch.float64) / samples


def log_dempster_shafer(logits: Any) -> Tensor:
    """The log of the Dempster-Shafer score [B]: log K - logsumexp(mean logits ++ (log K)), never underflowing."""
    logits = check_logits(logits)
    classes = logits.shape[-1]
    mean_logits = logits.mean(dim=0)  # [B, K]: the paper averages logits, not probabilities
    log_k = torch.full_like(mean_logits[:, :1], math.log(classes))
    return log_k.squeeze(-1) - torch.logsumexp(torch.cat([mean_logits, log_k], dim=-1), dim=-1)


def dempster_shafer(logits: Any) -> Tensor:
    """The Dempster-Shafer uncertainty K / (sum_k exp(mean_s logit_k) + K) [B], in (0, 1] (GFlowOut paper)."""
    return log_dempster_shafer(logits).exp()


def random_scores(count: int, generator: torch.Generator) -> Tensor:
    """`count` uniform scores in [0, 1) [count], float64, drawn from `generator` (seed it for reproducible picks)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return torch.rand(count, generator=generator, dtype=torch.float64)


def acquisition_scores(
    score: str | AcquisitionScore,
    logits: Any | None = None,
    *,
    count: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The ranking values [B] of `score`: from logits [S, B, C], or for "random" from `generator` (`count` values).

    Dempster-Shafer is returned as its logarithm (same order, no underflow).
    """
    score = resolve_score(score)
    if score is AcquisitionScore.RANDOM:
        if generator is None:
            raise ValueError("random acquisition needs a seeded torch.Generator")
        if count is None:
            count = check_logits(logits).shape[1] if logits is not None else None
        if count is None:
            raise ValueError("random acquisition needs `count` (or logits to count the examples)")
        return random_scores(count, generator)
    if logits is None:
        raise ValueError(f"acquisition score {score.value!r} needs the per-sample logits [S, B, C]")
    if score is AcquisitionScore.ENTROPY:
        return predictive_entropy(logits)
    if score is AcquisitionScore.BALD:
        return mutual_information(logits)
    if score is AcquisitionScore.VARIATION_RATIO:
        return variation_ratio(logits)
    return log_dempster_shafer(logits)


def top_k(scores: Any, k: int) -> np.ndarray:
    """Positions [k] of the k highest scores, highest first; equal scores go to the lower position.

    Raises ValueError for a k outside 1..len(scores) or a NaN score (a NaN would sort arbitrarily).
    """
    values = np.asarray(scores.detach().cpu() if isinstance(scores, Tensor) else scores, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"scores must be one number per pool example [P], got shape {values.shape}")
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= values.size:
        raise ValueError(f"cannot acquire k = {k} examples from a pool of {values.size}; use 1 <= k <= pool size")
    if np.isnan(values).any():
        raise ValueError(f"{int(np.isnan(values).sum())} acquisition score(s) are NaN; check the model's predictions")
    order = np.lexsort((np.arange(values.size), -values))  # last key first: by -score, then by position
    return order[: int(k)]
