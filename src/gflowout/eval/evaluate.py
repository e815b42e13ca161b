"""Evaluate a trained method on the clean test set, shifted test sets and OOD pairs; the result schema.

`evaluate_method(method, data_name)` predicts with S mask samples (in batches, under no_grad, so
memory stays bounded by one batch of S x batch rows plus the [S, N, C] logits of one condition) and
returns one dictionary in the RESULT SCHEMA below. `gflowout benchmark` adds the run's identity and
writes it with `gflowout.results.write_json_atomic` (one file per run); `gflowout report`
aggregates the files.

The MNIST-C-style / CIFAR-10-C-style shifts are read from `gflowout.data.shifts.shifted_split`: the
FULL test split shifted once per (shift, severity, seed) and cached as uint8 under the data root, of
which the rows of the clean (limit) subset are taken, so every method and every run of a seed reads
byte-identical images. Rotations (random and the sweep) are computed on the fly from the clean subset
(deterministic given the seed). All are normalised with the TRAINING statistics of the in-distribution
set, as are the OOD sets (the official code did not).

On request (`published_corruptions`), CIFAR-10 / CIFAR-100 runs are also evaluated on the PUBLISHED
CIFAR-10-C / CIFAR-100-C files (Hendrycks & Dietterich 2019) when they are under the data root, again
normalised with the in-distribution TRAINING statistics. Their numbers go to their own section
("published_corruptions"), never mixed with our CIFAR-10-C-STYLE shifts ("shifts"), which are made
in the project from the clean test images. Missing files skip that part with a one-line message naming
`gflowout data fetch cifar10-c --from FILE`.

RESULT SCHEMA (version 1; JSON; NaN is written as null)
------------------------------------------------------
  schema_version  1
  run_id          str, "<dataset>__<method>__seed<seed>" for benchmark runs
  method, seed, dataset     str, int, str
  config          the run's training configuration as plain YAML data (null when unknown)
  train_time_s, eval_time_s float seconds (train null when unknown)
  samples         S, the number of mask samples of the predictive (mean softmax of S passes)
  test_size       number of in-distribution test images evaluated
  evaluation      the settings used: shifts, severities, angles, ood sets, limit, batch size, seed,
                  published_corruptions ({corruption: severities} requested, {} when none)
  clean           METRICS of the clean test set
  random_rotation METRICS under the paper's test-time rotation (uniform 0-360 degrees)
  shifts          {shift name: {"<severity>": METRICS}}  (MNIST-C-style / CIFAR-10-C-style, made in the
                  project: the clean subset's rows of the cached shifted full test split, see above)
  published_set   "cifar10-c" / "cifar100-c" when the published files were evaluated (absent otherwise)
  published_corruptions {corruption: {"<severity>": METRICS}} on the PUBLISHED -C files (absent unless
                  requested; the same test images and limit subset as "clean" when the files hold the
                  10000 published rows per severity)
  published_skipped {set: reason} for requested published corruptions whose files are missing
  rotation_sweep  {"<angle in degrees>": METRICS}        (fixed rotations)
  ood             {ood set: {score: {"auroc", "aupr", "fpr95"}}}; scores "max_probability" (negated),
                  "predictive_entropy", "mutual_information"; OOD is the positive class
  ood_skipped     {ood set: reason} for default OOD sets that are not on this machine
  uncertainty     {condition: {"<alpha>": {"uncertain_fraction", "pavpu", "accurate_given_certain",
                  "uncertain_given_inaccurate"}}}: the paper's paired t-test metrics, conditions
                  "clean" and "random_rotation"
  selective       {condition: {score: {"aurc", "accuracy_at_90", "accuracy_at_95", "accuracy_at_99"}}}: selective
                  prediction (gflowout.eval.selective), conditions "clean" and "random_rotation", scores
                  "max_probability", "negative_entropy", "negative_mutual_information"
  temperature_scaling  (only when `validation` data were given) {"temperature", "validation_size",
                  "validation_nll", "validation_nll_scaled"}: T fitted on them (gflowout.eval.temperature)
  conformal       (only with `validation` and `conformal_alpha`) split-conformal prediction sets calibrated on the
                  validation predictive (gflowout.eval.conformal): "alpha", "calibration_size", "raps_lambda",
                  "raps_k_reg", "quantile" {score: q}, and per condition "clean", "random_rotation" {score: SETS
                  with "by_size"}, "shifts" {shift: {"<severity>": {score: SETS}}}, "rotation_sweep" {"<angle>":
                  {score: SETS}}, "published_corruptions" (when evaluated). Scores "lac", "aps", "aps_randomized"
                  by default (also "raps", "raps_randomized"). SETS = {"coverage", "mean_size"}; "by_size" {stratum
                  "0", "1", "2", "3", "4-5", ...: {"fraction", "coverage"}}
  conformal_skipped  (instead of "conformal") why none were made: a validation split too small for alpha
  ts              (only with `validation`) the same method with every sample's logits divided by T: "temperature",
                  "clean", "random_rotation", "shifts", "rotation_sweep", "published_corruptions" (when
                  evaluated), "ood", "selective", "conformal" (calibrated on the tempered validation predictive),
                  and "figures" {"reliability", "risk_coverage"}, each as above
  figures         raw material for figures, kept small:
      reliability     {condition: {"edges" [16], "confidence" [15], "accuracy" [15], "count" [15]}}
                      (15 equal-width bins; empty bins have null confidence/accuracy)
      ood_histograms  {ood set: {score: {"edges" [31], "scale", "in" [30], "out" [30]}}} counts on edges
                      chosen from the run's scores ("scale" "log" or "linear"; results written before
                      it had fixed edges from the score's full range and no "scale")
      roc             {ood set: {score: {"fpr" [51], "tpr" [51]}}}: best TPR at FPR <= each grid point
      risk_coverage   {condition: {score: {"coverage" [50], "risk" [50]}}}: risk at coverages 0.02..1
  METRICS = {"accuracy", "nll", "brier", "ece15", "ece10"} of the S-sample predictive.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gflowout.errors import DataError
from gflowout.eval import test_sets
from gflowout.eval.calibration import calibrate_on_validation
from gflowout.eval.conditions import (
    ConditionRecorder,
    condition_metrics,
    fit_on_validation,
    predict_logits,
)
from gflowout.eval.figure_material import (
    HISTOGRAM_BINS,
    ROC_GRID,
    SCORE_OFFSETS,
    histogram_edges,
    ood_material,
    reliability_material,
)
from gflowout.eval.ood_eval import evaluate_ood_sets
from gflowout.eval.published import PUBLISHED_LABELS, plan_published_corruptions
from gflowout.eval.published_eval import evaluate_published
from gflowout.eval.test_sets import (
    DEFAULT_ANGLES,
    DEFAULT_OOD,
    DEFAULT_SEVERITIES,
    PUBLISHED_SETS,
    is_rotation,
    load_test_images,
    normalise,
    shift_plan,
    shifted_test_images,
    subset_indices,
)
from gflowout.eval.uncertainty import ttest_uncertainty
from gflowout.methods.base import DropoutMethod
from gflowout.results import SCHEMA_VERSION, run_id
from gflowout.rng import private_rng

# the names this module offered before its parts moved to their own modules (test_sets, conditions,
# figure_material, published_eval) stay importable from here
__all__ = [
    "DEFAULT_ANGLES",
    "DEFAULT_OOD",
    "DEFAULT_SEVERITIES",
    "HISTOGRAM_BINS",
    "PUBLISHED_LABELS",
    "PUBLISHED_SETS",
    "ROC_GRID",
    "SCORE_OFFSETS",
    "DataError",
    "condition_metrics",
    "evaluate_method",
    "fit_on_validation",
    "histogram_edges",
    "is_rotation",
    "load_test_images",
    "normalise",
    "ood_material",
    "predict_logits",
    "reliability_material",
    "shifted_test_images",
    "subset_indices",
]

Progress = Callable[[str], None]
DEFAULT_CONFORMAL_SCORES: tuple[str, ...] = ("lac", "aps", "aps_randomized")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the evaluation ------------------------------------------------------------------------------
def _in_private_rng(evaluate: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Run `evaluate(method, ...)` in a forked torch RNG state: it seeds its own masks, and the caller's random
    stream (a training loop's, a notebook's) is left as it was."""

    @functools.wraps(evaluate)
    def wrapper(method: DropoutMethod, *args: Any, **kwargs: Any) -> dict[str, Any]:
        device = next((p.device for p in method.parameters()), torch.device("cpu"))
        with private_rng(device):
            return evaluate(method, *args, **kwargs)

    return wrapper


@_in_private_rng
def evaluate_method(
    method: DropoutMethod,
    data_name: str,
    root: Any = None,
    samples: int = 20,
    shifts: Sequence[str] | Mapping[str, Sequence[int]] | None = None,
    ood_sets: Sequence[str] | None = None,
    seed: int = 0,
    *,
    severities: Sequence[int] = DEFAULT_SEVERITIES,
    rotation_angles: Sequence[float] = DEFAULT_ANGLES,
    random_rotation: bool = True,
    limit: int | None = None,
    batch_size: int = 256,
    progress: Progress | None = None,
    published_corruptions: Sequence[str] | Mapping[str, Sequence[int]] | str | None = None,
    log: Progress = _stderr,
    validation: tuple[Tensor, Tensor] | None = None,
    temperature_scaling: bool = True,
    conformal_alpha: float | None = 0.1,
    conformal_scores: Sequence[str] = DEFAULT_CONFORMAL_SCORES,
    conformal_raps_lambda: float = 0.01,
    conformal_raps_k_reg: int = 5,
) -> dict[str, Any]:
    """Evaluate `method` on `data_name`'s test set, its shifts and OOD pairs; a dict in the RESULT SCHEMA.

    Args:
        method: the trained method (any DropoutMethod), predicting in eval mode.
        data_name: the in-distribution data set whose test split is evaluated (e.g. "mnist").
        shifts: shift names (each at `severities`), {name: severities}, or None for every available
            shift of the data set's kind ("mnist" for 28x28 grey sets, "cifar" otherwise); () for none.
        ood_sets: OOD data set names; None for the defaults of `DEFAULT_OOD` that are present (missing ones
            are listed under "ood_skipped"); a named set that is missing raises DataError.
        seed: seeds the mask sampling (torch, in a private RNG state: the caller's is left as it was) and the random
            shifts, so reruns give the same numbers.
        limit: evaluate a fixed random subset of this many test (and OOD) images; None for all.
        progress: called with a short message before each condition (for progress bars).
        published_corruptions: also evaluate on the PUBLISHED CIFAR-10-C / CIFAR-100-C files (cifar10 /
            cifar100 runs only): "all", corruption names (each at `severities`) or {name: severities};
            None or () for none. Missing files are skipped with one line to `log` naming the fetch command.
        log: where such one-line notices go (stderr by default).
        validation: held-out (normalised images [N, C, H, W], labels [N]), e.g. the run's validation split: a
            temperature is fitted on them (Guo et al. 2017) and every condition is also reported with it ("ts").
            Its masks come from their own seeded RNG, so every other number is what it is without it.
        temperature_scaling: fit the temperature on `validation` (False: use it for conformal calibration only).
        conformal_alpha: calibrate split-conformal prediction sets on `validation` with this miscoverage rate and report
            their coverage and mean size in every condition ("conformal"; "ts" too); None for none.
        conformal_scores: the set scores (`gflowout.eval.conformal`): "lac", "aps", "aps_randomized", "raps",
            "raps_randomized"; conformal_raps_lambda, conformal_raps_k_reg: the RAPS penalty and its free set size.
        samples: a method with a fixed sample count (a deep ensemble: its members) uses its own; recorded.

    Returns:
        The result dict (RESULT SCHEMA above): clean metrics, shifts, rotation sweep, OOD, selective prediction,
        the temperature-scaled ("ts") and conformal blocks when `validation` is given, timings.

    Raises:
        DataError: the data set or a named OOD set is missing or unreadable.
    """
    started = time.perf_counter()
    samples = method.prediction_samples(samples)  # a deep ensemble's M members, whatever was asked (recorded)
    datasets, shift_module = test_sets._data()
    torch.manual_seed(seed)
    note = progress or (lambda message: None)
    images, labels = load_test_images(data_name, root, limit)
    kind = "mnist" if images.ndim == 3 and images.shape[1:] == (28, 28) else "cifar"
    plan = shift_plan(shifts, kind, severities)
    published_set = PUBLISHED_SETS.get(data_name)
    published_plan = (
        plan_published_corruptions(published_corruptions, published_set, severities) if published_set else {}
    )
    classes = int(datasets.DATASET_INFO[data_name].num_classes)

    def run(images01: np.ndarray) -> Tensor:
        return predict_logits(method, normalise(images01, data_name), samples, batch_size)

    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id(data_name, method.name, seed),
        "method": method.name,
        "seed": seed,
        "dataset": data_name,
        "config": None,
        "train_time_s": None,
        "samples": samples,
        "test_size": int(len(labels)),
        "evaluation": {
            "shifts": {k: list(v) for k, v in plan.items()},
            "rotation_angles": list(rotation_angles),
            "random_rotation": random_rotation,
            "limit": limit,
            "batch_size": batch_size,
            "seed": seed,
            "published_corruptions": {k: list(v) for k, v in published_plan.items()},
        },
        "shifts": {},
        "rotation_sweep": {},
        "ood": {},
        "ood_skipped": {},
        "uncertainty": {},
        "selective": {},
        "figures": {"reliability": {}, "ood_histograms": {}, "roc": {}, "risk_coverage": {}},
    }
    ts, predictors = calibrate_on_validation(
        method,
        validation,
        results,
        samples=samples,
        batch_size=batch_size,
        seed=seed,
        temperature_scaling=temperature_scaling,
        conformal_alpha=conformal_alpha,
        conformal_scores=conformal_scores,
        raps=(conformal_raps_lambda, conformal_raps_k_reg),
        note=note,
        log=log,
    )
    recorder = ConditionRecorder(results, labels, ts, predictors)

    note("clean")
    clean_logits = run(images)
    recorder.full("clean", clean_logits)
    results["uncertainty"]["clean"] = ttest_uncertainty(clean_logits, labels)

    if random_rotation:
        note("random rotation")
        rotated_logits = run(shift_module.random_rotation(images, seed))
        recorder.full("random_rotation", rotated_logits)
        results["uncertainty"]["random_rotation"] = ttest_uncertainty(rotated_logits, labels)
        del rotated_logits

    for angle in rotation_angles:
        if float(angle) % 360 == 0:  # the identity: the clean images, already predicted
            recorder.copy(("rotation_sweep", f"{angle:g}"), "clean")
            continue
        note(f"rotation {angle:g} deg")
        recorder.metrics(("rotation_sweep", f"{angle:g}"), run(shift_module.rotate(images, float(angle))))

    for shift, levels in plan.items():
        recorder.open("shifts", shift)
        for severity in levels:
            note(f"{shift} severity {severity}")
            shifted = shifted_test_images(data_name, shift, severity, seed, root, limit, clean=images)
            recorder.metrics(("shifts", shift, str(severity)), run(shifted))

    if published_corruptions and published_set is None:
        message = (
            f"published corruptions: {data_name!r} has no published corruption set "
            f"(only {', '.join(PUBLISHED_SETS)}); skipped"
        )
        results["published_skipped"] = {data_name: message}
        log(message)
    elif published_plan:
        evaluate_published(recorder, published_set, published_plan, run, root, limit, note, log)  # type: ignore[arg-type]  # not None here: set before use

    evaluate_ood_sets(
        recorder, clean_logits, images, data_name, ood_sets, root=root, limit=limit, run=run, note=note, classes=classes
    )
    results["eval_time_s"] = time.perf_counter() - started
    return results
