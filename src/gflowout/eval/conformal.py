"""Split conformal classification: prediction sets that contain the true class with probability >= 1 - alpha.

Any predictive (one network, the S-sample mean softmax of a dropout method, a deep ensemble, a tempered one)
becomes a set predictor: a score s(x, y) says how badly class y fits x; the quantile q of the scores of n held-out
CALIBRATION examples (x_i, y_i) gives the set C(x) = {y : s(x, y) <= q}. When calibration and test examples are
exchangeable, P(y in C(x)) >= 1 - alpha for any n, any model (Vovk et al. 2005; Angelopoulos & Bates 2023). Under a
distribution shift (corruptions, rotations) the guarantee no longer holds: the gap is what `evaluate_method`
measures.

Scores (probabilities p of the predictive; classes ranked by decreasing p, stable for ties; o(y) the 1-based rank):
- "lac" (least ambiguous set-valued classifier, Sadinle et al. 2019): s = 1 - p_y. Smallest sets on average.
- "aps" (adaptive prediction sets, Romano et al. 2020): s = sum of p over the classes ranked up to y, y included.
  Randomised (`randomized=True`): the last term times U ~ Uniform(0, 1), so scores have no ties and the coverage is
  also at most 1 - alpha + 1/(n + 1) (in expectation over calibration and test); sets may then be empty.
- "raps" (regularised APS, Angelopoulos et al. 2021): the APS score plus lam * max(0, o(y) - k_reg), which
  penalises large sets; randomised like APS, the last term being p_y + lam * [o(y) > k_reg].
Quantile: the k-th smallest calibration score, k = ceil((n + 1)(1 - alpha)), i.e. the empirical quantile at level
k / n with "higher" interpolation on the order statistics (numpy's method="inverted_cdf"; numpy's method="higher"
indexes q(n - 1) and would take the (k + 1)-th for k < n, one order statistic too conservative). k > n (n < 1/alpha
- 1) would need an infinite quantile, every set the whole label set: refused with the n or alpha that works.

    predictor = ConformalClassifier.fit(val_probs, val_labels, alpha=0.1, score="aps")
    sets = predictor.predict_sets(test_probs)            # bool [N, C]
    predictor.coverage(test_probs, test_labels), predictor.set_sizes(test_probs).mean()
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = [
    "SCORES",
    "SIZE_STRATA",
    "ConformalClassifier",
    "calibration_index",
    "conformal_quantile",
    "conformal_scores",
    "fit_on_loader",
    "fit_scores",
    "predictive_probs",
    "score_settings",
    "set_report",
    "settings_problems",
    "size_stratified_coverage",
]

SCORES: tuple[str, ...] = ("lac", "aps", "raps")
# set-size strata of size-stratified coverage: (label, smallest size, largest size); kept when reachable
SIZE_STRATA: tuple[tuple[str, int, float], ...] = (
    ("0", 0, 0),
    ("1", 1, 1),
    ("2", 2, 2),
    ("3", 3, 3),
    ("4-5", 4, 5),
    ("6-10", 6, 10),
    ("11-100", 11, 100),
    ("101+", 101, math.inf),
)
_SUM_TOLERANCE = 1e-3  # probabilities summing to 1 within this (float32 softmax means are a few 1e-7 off)


def _numpy(values: Any, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    if isinstance(values, (np.ndarray, list, tuple)):
        return np.asarray(values)
    raise TypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(values).__name__}")


def predictive_probs(values: Any, logits: bool = False, name: str = "probs") -> np.ndarray:
    """Probabilities [N, C] (float64) of the predictive from probabilities or logits, [N, C] or per-sample [S, N, C]
    (the mean softmax over S). Raises ValueError naming what is wrong: shape, NaN / inf, negative probabilities or
    rows not summing to 1 (logits passed as probabilities?)."""
    array = _numpy(values, name)
    if array.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape [N, C] or [samples, N, C], got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must hold floating-point numbers, got dtype {array.dtype}")
    if array.shape[-1] < 2 or array.shape[-2] < 1:
        raise ValueError(f"{name} needs at least one example and two classes, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(
            f"{name} has {int((~np.isfinite(array)).sum())} NaN or inf value(s); check the model's "
            "outputs before calibrating"
        )
    array = array.astype(np.float64)
    if logits:
        array = torch.softmax(torch.as_tensor(array), dim=-1).numpy()
    elif array.min() < 0 or array.max() > 1 or np.abs(array.sum(-1) - 1).max() > _SUM_TOLERANCE:
        raise ValueError(
            f"{name} must be probabilities in [0, 1] summing to 1 over the classes (last axis); found "
            f"values in [{array.min():.3g}, {array.max():.3g}] and row sums up to "
            f"{np.abs(array.sum(-1) - 1).max():.3g} away from 1. Logits? pass them with logits=True"
        )
    return array.mean(axis=0) if array.ndim == 3 else array


def _labels(labels: Any, count: int, classes: int) -> np.ndarray:
    array = _numpy(labels, "labels")
    if array.shape != (count,):
        raise ValueError(f"labels must be a vector of {count} class indices (one per example), got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {array.dtype}")
    if count and (array.min() < 0 or array.max() >= classes):
        raise ValueError(
            f"labels must lie in 0..{classes - 1} (the probabilities have {classes} classes), found "
            f"{array.min()}..{array.max()}"
        )
    return array.astype(np.int64)


def conformal_scores(
    probs: np.ndarray, score: str = "aps", uniform: np.ndarray | None = None, lam: float = 0.0, k_reg: int = 0
) -> np.ndarray:
    """The score of every class [N, C] for probabilities [N, C] (see the module's definitions). uniform: U [N] for the
    randomised APS / RAPS (one per example, shared by its classes); None for the non-randomised scores."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    if score == "lac":
        return 1.0 - probs
    order = np.argsort(-probs, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(probs.shape[1])[None, :].repeat(len(probs), 0), axis=1)
    cumulative = np.take_along_axis(np.cumsum(np.take_along_axis(probs, order, axis=1), axis=1), ranks, axis=1)
    last = probs.copy()
    if score == "raps":
        over = (ranks + 1 - k_reg).clip(min=0)
        cumulative = cumulative + lam * over
        last = last + lam * (over > 0)
    if uniform is not None:
        cumulative = cumulative - uniform[:, None] * last
    return cumulative


def calibration_index(count: int, alpha: float) -> int:
    """k = ceil((n + 1)(1 - alpha)): the quantile is the k-th smallest of n calibration scores. Raises ValueError
    when k > n (too few examples for this alpha), naming the smallest n and the smallest alpha that work."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1) (the miscoverage rate; 0.1 asks for 90% coverage), got {alpha!r}")
    k = math.ceil((count + 1) * (1 - alpha) - 1e-9)  # the tolerance keeps e.g. 10 * 0.9 from rounding up to 10
    if k > count:
        minimum = next(
            n for n in range(count + 1, count + int(2 / alpha) + 2) if math.ceil((n + 1) * (1 - alpha) - 1e-9) <= n
        )
        raise ValueError(
            f"a calibration set of {count} example(s) is too small for alpha = {alpha:g}: the quantile would "
            f"be the {k}-th smallest of {count} scores. Calibrate on at least {minimum} examples, or use "
            f"alpha >= 1/(n + 1) = {1 / (count + 1):.4g}"
        )
    return k


def conformal_quantile(scores: Any, alpha: float) -> float:
    """The conformal quantile of calibration scores [n]: the ceil((n + 1)(1 - alpha))-th smallest."""
    values = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    return float(values[calibration_index(len(values), alpha) - 1])


@dataclass(frozen=True)
class ConformalClassifier:
    """A fitted split-conformal set predictor: the score, its settings and the calibrated quantile.

    Build it with `fit` (probabilities) or `fit_logits`; `predict_sets` gives bool sets [N, C]. A randomised score
    draws its U from a generator seeded by `seed` at each call, so repeated calls give the same sets.
    """

    quantile: float
    alpha: float
    score: str
    randomized: bool
    lam: float
    k_reg: int
    calibration_size: int
    classes: int
    seed: int = 0

    @classmethod
    def fit(
        cls,
        probs: Any,
        labels: Any,
        alpha: float = 0.1,
        score: str = "aps",
        randomized: bool = False,
        lam: float = 0.01,
        k_reg: int = 5,
        seed: int = 0,
        logits: bool = False,
    ) -> ConformalClassifier:
        """Calibrate on held-out probabilities (or logits, `logits=True`) [N, C] or [S, N, C] and labels [N].

        alpha: the miscoverage rate (sets hold the true class with probability >= 1 - alpha).
        score: "lac", "aps" or "raps"; randomized: the randomised APS / RAPS (ignored by LAC, which has none).
        lam, k_reg: the RAPS penalty per class beyond the k_reg most probable (RAPS only).
        """
        if score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
        if lam < 0 or k_reg < 0:
            raise ValueError(f"RAPS needs lam >= 0 and k_reg >= 0, got lam={lam!r}, k_reg={k_reg!r}")
        probs = predictive_probs(probs, logits)
        labels = _labels(labels, len(probs), probs.shape[1])
        randomized = randomized and score != "lac"
        uniform = np.random.default_rng([seed, 0]).random(len(probs)) if randomized else None
        picked = conformal_scores(probs, score, uniform, lam, k_reg)[np.arange(len(probs)), labels]
        return cls(
            conformal_quantile(picked, alpha),
            float(alpha),
            score,
            randomized,
            float(lam),
            int(k_reg),
            len(probs),
            probs.shape[1],
            seed,
        )

    @classmethod
    def fit_logits(cls, logits: Any, labels: Any, **settings: Any) -> ConformalClassifier:
        """`fit` on logits [N, C] or per-sample logits [S, N, C] (the predictive is their mean softmax)."""
        return cls.fit(logits, labels, logits=True, **settings)

    def predict_sets(self, probs: Any, logits: bool = False) -> np.ndarray:
        """Prediction sets, bool [N, C] (True: the class is in the set).

        `probs`: probabilities or logits [N, C] / [S, N, C].
        """
        probs = predictive_probs(probs, logits)
        if probs.shape[1] != self.classes:
            raise ValueError(
                f"probs have {probs.shape[1]} classes, but the predictor was calibrated with {self.classes}"
            )
        uniform = np.random.default_rng([self.seed, 1]).random(len(probs)) if self.randomized else None
        return conformal_scores(probs, self.score, uniform, self.lam, self.k_reg) <= self.quantile

    def set_sizes(self, probs: Any, logits: bool = False) -> np.ndarray:
        """The number of classes in each prediction set [N]."""
        return self.predict_sets(probs, logits).sum(axis=1)

    def coverage(self, probs: Any, labels: Any, logits: bool = False) -> float:
        """The fraction of examples whose set holds their label (the empirical coverage)."""
        sets = self.predict_sets(probs, logits)
        return float(sets[np.arange(len(sets)), _labels(labels, len(sets), sets.shape[1])].mean())


def size_stratified_coverage(sets: np.ndarray, labels: Any) -> dict[str, dict[str, float | None]]:
    """{stratum: {"fraction", "coverage"}} over `SIZE_STRATA` reachable with the sets' classes: the share of examples
    whose set size is in the stratum and the coverage among them (None when none is): a method can meet 1 - alpha
    on average with too-small sets that under-cover and huge sets that over-cover."""
    sets = np.asarray(sets, dtype=bool)
    sizes = sets.sum(axis=1)
    covered = sets[np.arange(len(sets)), _labels(labels, len(sets), sets.shape[1])]
    strata: dict[str, dict[str, float | None]] = {}
    for label, low, high in SIZE_STRATA:
        if low > sets.shape[1]:
            break
        inside = (sizes >= low) & (sizes <= high)
        strata[label] = {
            "fraction": float(inside.mean()),
            "coverage": float(covered[inside].mean()) if inside.any() else None,
        }
    return strata


def set_report(sets: np.ndarray, labels: Any, stratified: bool = False) -> dict[str, Any]:
    """{"coverage", "mean_size"} of prediction sets bool [N, C] (and "by_size", `size_stratified_coverage`)."""
    sets = np.asarray(sets, dtype=bool)
    labels = _labels(labels, len(sets), sets.shape[1])
    report: dict[str, Any] = {
        "coverage": float(sets[np.arange(len(sets)), labels].mean()),
        "mean_size": float(sets.sum(axis=1).mean()),
    }
    if stratified:
        report["by_size"] = size_stratified_coverage(sets, labels)
    return report


def fit_on_loader(
    method: Any, loader: Iterable[Sequence[Any]], samples: int = 20, **settings: Any
) -> ConformalClassifier:
    """Calibrate on a fitted `DropoutMethod`'s S-sample predictive over a loader of (inputs, labels) batches
    (e.g. the validation loader); `settings` go to `ConformalClassifier.fit` (alpha, score, randomized, ...)."""
    probs, labels = _loader_probs(method, loader, samples)
    return ConformalClassifier.fit(probs, labels, **settings)


@torch.no_grad()
def _loader_probs(method: Any, loader: Iterable[Sequence[Any]], samples: int) -> tuple[np.ndarray, np.ndarray]:
    device = next((p.device for p in method.parameters()), torch.device("cpu"))
    samples = method.prediction_samples(samples)
    was_training = method.training
    method.eval()
    parts, labels = [], []
    try:
        for batch in loader:
            inputs, targets = batch[0], batch[1]
            parts.append(torch.softmax(method.predict(inputs.to(device), samples=samples).double(), -1).mean(0).cpu())
            labels.append(torch.as_tensor(targets).cpu())
    finally:
        method.train(was_training)
    if not parts:
        raise ValueError("the loader gave no batches: conformal calibration needs held-out examples")
    return torch.cat(parts).numpy(), torch.cat(labels).long().numpy()


def score_settings(name: str) -> dict[str, Any]:
    """ "aps_randomized" -> {"score": "aps", "randomized": True}: a score variant named in evaluation settings."""
    score, _, variant = name.partition("_")
    if score not in SCORES or variant not in ("", "randomized") or (score == "lac" and variant):
        raise ValueError(f"conformal score {name!r} is not one of lac, aps, aps_randomized, raps, raps_randomized")
    return {"score": score, "randomized": variant == "randomized"}


def settings_problems(alpha: Any, scores: Any, raps_lambda: Any, raps_k_reg: Any) -> list[str]:
    """What is wrong with evaluation settings of conformal sets (empty when nothing): alpha None or in (0, 1), a
    non-empty list of score variant names (`score_settings`), RAPS lambda and k_reg numbers >= 0."""
    problems = []
    if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1):
        problems.append(
            f"conformal_alpha must be null or a miscoverage rate in (0, 1) (0.1 for 90% sets), found {alpha!r}"
        )
    if not isinstance(scores, (list, tuple)) or not scores:
        problems.append(f"conformal_scores must be a non-empty list, found {scores!r}")
    else:
        for name in scores:
            try:
                score_settings(str(name))
            except ValueError as error:
                problems.append(f"conformal_scores: {error}")
    for key, value in (("conformal_raps_lambda", raps_lambda), ("conformal_raps_k_reg", raps_k_reg)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            problems.append(f"{key} must be a number >= 0, found {value!r}")
    return problems


def fit_scores(
    probs: np.ndarray,
    labels: Any,
    alpha: float,
    names: Sequence[str],
    raps: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, ConformalClassifier]:
    """One predictor per score variant name ("lac", "aps", "aps_randomized", "raps", ...) on the same calibration
    probabilities; raps: {"lam", "k_reg"} of the RAPS variants."""
    return {
        name: ConformalClassifier.fit(probs, labels, alpha=alpha, seed=seed, **score_settings(name), **dict(raps or {}))
        for name in names
    }
