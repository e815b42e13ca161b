"""Post-hoc calibration inside an evaluation: the temperature and the split-conformal predictors fitted on the run's
validation predictive, before any test condition is predicted.

`calibrate_on_validation` writes the "temperature_scaling", "ts" and "conformal" (or "conformal_skipped") blocks of
a result (`gflowout.eval.evaluate`'s RESULT SCHEMA) and returns what the test conditions need: the "ts" block that
the tempered numbers go to, and the conformal predictors of the plain and the tempered predictive.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

from gflowout.eval.conditions import temperature_record, validation_logits
from gflowout.eval.conformal import ConformalClassifier, calibration_index, fit_scores, predictive_probs
from gflowout.eval.temperature import apply_temperature
from gflowout.methods.base import DropoutMethod

__all__ = ["calibrate_on_validation", "too_few_to_calibrate"]


def too_few_to_calibrate(count: int, alpha: float) -> str:
    """ "" when `count` validation examples can calibrate conformal sets at `alpha`, else the one-line reason."""
    try:
        calibration_index(count, alpha)
    except ValueError as error:
        return f"conformal sets skipped: {error}"
    return ""


def calibrate_on_validation(
    method: DropoutMethod,
    validation: tuple[Tensor, Tensor] | None,
    results: dict[str, Any],
    *,
    samples: int,
    batch_size: int,
    seed: int,
    temperature_scaling: bool,
    conformal_alpha: float | None,
    conformal_scores: Sequence[str],
    raps: tuple[float, int],
    note: Callable[[str], None],
    log: Callable[[str], None],
) -> tuple[dict[str, Any] | None, list[dict[str, ConformalClassifier]]]:
    """Fit the temperature (when asked) and the conformal predictors on `validation`, writing their blocks into
    `results`; returns the result's "ts" block (None without a temperature) and the predictors by score name, for
    the plain predictive and then (with a temperature) the tempered one. No validation: (None, []).

    The validation masks come from their own seeded RNG (`validation_logits`), so the test numbers are the same
    with and without this step. A validation split too small for `conformal_alpha` skips the sets with a line to
    `log` and a "conformal_skipped" reason in the result.
    """
    ts: dict[str, Any] | None = None
    predictors: list[dict[str, ConformalClassifier]] = []
    if validation is None:
        return ts, predictors
    note("validation (temperature scaling)" if temperature_scaling else "validation (conformal calibration)")
    val_logits, val_labels = validation_logits(method, validation, samples, batch_size, seed)
    if temperature_scaling:
        results["temperature_scaling"] = temperature_record(val_logits, val_labels)
        ts = results["ts"] = {
            "temperature": results["temperature_scaling"]["temperature"],
            "shifts": {},
            "rotation_sweep": {},
            "ood": {},
            "selective": {},
            "figures": {"reliability": {}, "risk_coverage": {}},
        }
    if conformal_alpha is None:
        return ts, predictors
    if small := too_few_to_calibrate(int(val_labels.shape[0]), conformal_alpha):
        results["conformal_skipped"] = small  # on by default: a tiny validation split skips it, with a line
        log(small)
        return ts, predictors
    options = {"lam": float(raps[0]), "k_reg": int(raps[1])}
    blocks = [(results, val_logits)] + ([(ts, apply_temperature(val_logits, ts["temperature"]))] if ts else [])
    for block, block_logits in blocks:
        predictors.append(
            fit_scores(
                predictive_probs(block_logits, logits=True),
                val_labels.numpy(),
                conformal_alpha,
                conformal_scores,
                options,
                seed,
            )
        )
        block["conformal"] = {
            "alpha": float(conformal_alpha),
            "calibration_size": int(val_labels.shape[0]),
            "raps_lambda": options["lam"],
            "raps_k_reg": options["k_reg"],
            "quantile": {name: p.quantile for name, p in predictors[-1].items()},
        }
    return ts, predictors
