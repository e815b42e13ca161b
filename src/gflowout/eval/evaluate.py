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
  ts              (only with `validation`) the same method with every sample's logits divided by T: "temperature",
                  "clean", "random_rotation", "shifts", "rotation_sweep", "published_corruptions" (when
                  evaluated), "ood", "selective", and "figures" {"reliability", "risk_coverage"}, each as above
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
from gflowout.eval.metrics import classification_metrics, ece, reliability_bins
from gflowout.eval.ood import SCORE_NAMES, ood_metrics, ood_scores, roc_curve
from gflowout.eval.predictive import Predictive
from gflowout.eval.published import PUBLISHED_LABELS, fetch_hint, plan_published_corruptions, published_files_missing
from gflowout.eval.selective import selective_report
from gflowout.eval.temperature import apply_temperature, fit_temperature, temperature_nll
from gflowout.eval.uncertainty import ttest_uncertainty
from gflowout.methods.base import DropoutMethod
from gflowout.results import SCHEMA_VERSION, run_id
from gflowout.rng import private_rng

DEFAULT_OOD: dict[str, tuple[str, ...]] = {
    "mnist": ("fashion-mnist", "animal-mnist"),
    "fashion-mnist": ("mnist",),
    "cifar10": ("svhn", "cifar100"),
}
DEFAULT_ANGLES: tuple[int, ...] = tuple(range(0, 181, 15))
DEFAULT_SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
# The published corruption set of each in-distribution set, and how the report names it.
PUBLISHED_SETS: dict[str, str] = {"cifar10": "cifar10-c", "cifar100": "cifar100-c"}
HISTOGRAM_BINS = 30
ROC_GRID = np.linspace(0.0, 1.0, 51)

Progress = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- data ----------------------------------------------------------------------------------------
def _data() -> tuple[Any, Any]:
    """The data modules, imported on use (they belong to the data engineer)."""
    from gflowout.data import datasets, shifts

    return datasets, shifts


def normalise(images: np.ndarray, name: str) -> Tensor:
    """Float images in [0, 1], [N, H, W] or [N, H, W, 3], to a tensor [N, C, H, W] normalised with the
    TRAINING statistics of data set `name` (`gflowout.data.datasets.to_tensor`), whatever set they came from."""
    datasets, _ = _data()
    return datasets.to_tensor(np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0), name)


def load_test_images(name: str, root: Any = None, limit: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Test images as float32 in [0, 1] ([N, H, W] or [N, H, W, 3]) and int64 labels [N].

    limit: keep a fixed random subset of that many images (the same for every method and seed), sorted.
    """
    datasets, _ = _data()
    images, labels = datasets.load_split(name, "test", root)
    keep = subset_indices(len(labels), limit, seed)
    if keep is not None:
        images, labels = images[keep], labels[keep]
    return images.astype(np.float32) / 255.0, np.asarray(labels, dtype=np.int64)


def subset_indices(count: int, limit: int | None, seed: int = 0) -> np.ndarray | None:
    """The sorted fixed random subset of `limit` of `count` rows (None: keep all), the same for every method."""
    if limit is None or limit >= count:
        return None
    return np.sort(np.random.default_rng(seed).permutation(count)[:limit])


def is_rotation(shift: str) -> bool:
    """True for the rotation shift names ("random_rotation", "rotation_<deg>"), which are not cached."""
    return shift == "random_rotation" or shift.startswith("rotation_")


def shifted_test_images(name: str, shift: str, severity: int, seed: int, root: Any = None,
                        limit: int | None = None, clean: np.ndarray | None = None) -> np.ndarray:
    """Float32 images in [0, 1] of `load_test_images(name, root, limit)`'s rows under `shift` at `severity`.

    Corruptions come from the cached shifted FULL test split (`shifted_split`), so every method and run
    reads the same images. Rotations, and shift modules that offer no cache (stand-ins for data sets that
    gflowout.data cannot load by name), are computed on the fly from `clean` (the clean subset).
    """
    _, shift_module = _data()
    cached_split = getattr(shift_module, "shifted_split", None)
    if cached_split is None or is_rotation(shift):
        if clean is None:
            clean = load_test_images(name, root, limit)[0]
        return shift_module.apply_shift(clean, shift, severity, seed)
    shifted, _ = cached_split(name, shift, severity, seed, root)
    keep = subset_indices(len(shifted), limit)  # the rows of the clean subset (load_test_images)
    if keep is not None:
        shifted = shifted[keep]
    return shifted.astype(np.float32) / 255.0


# --- prediction and per-condition summaries -----------------------------------------------------
@torch.no_grad()
def predict_logits(method: DropoutMethod, images: Tensor, samples: int, batch_size: int = 256) -> Tensor:
    """Per-sample logits [S, N, C] (float32, CPU) of normalised images [N, C, H, W], batch by batch."""
    device = next(method.parameters()).device
    parts = [method.predict(images[i:i + batch_size].to(device), samples=samples).float().cpu()
             for i in range(0, images.shape[0], batch_size)]
    return torch.cat(parts, dim=1)


def condition_metrics(logits: Tensor, labels: np.ndarray) -> tuple[dict[str, float], Predictive]:
    """METRICS of one condition (accuracy, NLL from the exact log predictive, Brier, ECE 15 and 10 bins)."""
    summary = Predictive.from_logits(logits)
    labels_t = torch.as_tensor(labels)
    base = classification_metrics(summary.probs, labels_t, bins=15, log_probs=summary.log_probs)
    metrics = {"accuracy": base["accuracy"], "nll": base["nll"], "brier": base["brier"], "ece15": base["ece"],
               "ece10": ece(summary.probs, labels_t, bins=10)}
    return metrics, summary


def reliability_material(summary: Predictive, labels: np.ndarray) -> dict[str, list[float]]:
    bins = reliability_bins(summary.probs, torch.as_tensor(labels), bins=15)
    return {"edges": bins.edges.tolist(), "confidence": bins.confidence.tolist(),
            "accuracy": bins.accuracy.tolist(), "count": bins.count.tolist()}


# Scores are shown as distances from a confident prediction: 1 - max probability (the negated max probability
# plus one), the entropy and the mutual information; all are >= 0 and pile up near 0 for in-distribution data.
SCORE_OFFSETS = {"max_probability": 1.0}


def histogram_edges(values: np.ndarray, score: str, bins: int = HISTOGRAM_BINS) -> tuple[np.ndarray, str]:
    """Histogram edges (in score units) chosen from the data, and their scale ("log" or "linear").

    The shown value (score + SCORE_OFFSETS[score]) is >= 0 and usually piles up near 0: when its positive
    values span more than two decades (0.5 % quantile to the maximum) the edges are log-spaced over that
    span, smaller values falling in the first bin; otherwise they are linear from the minimum to the maximum.
    """
    offset = SCORE_OFFSETS.get(score, 0.0)
    shown = np.asarray(values, dtype=np.float64) + offset
    positive = shown[shown > 0]
    if positive.size and positive.max() / max(np.quantile(positive, 0.005), 1e-300) > 100:
        low = max(float(np.quantile(positive, 0.005)), 1e-12)
        return np.geomspace(low, float(positive.max()), bins + 1) - offset, "log"
    low, high = float(shown.min()), float(shown.max())
    if high - low <= 0:  # every value equal (a deterministic net's mutual information is exactly 0)
        pad = max(abs(high) * 0.1, 1e-3)
        low, high = low - pad, high + pad
    return np.linspace(low, high, bins + 1) - offset, "linear"


def ood_material(scores_in: Tensor, scores_out: Tensor, score: str, classes: int) -> tuple[dict, dict]:
    """A histogram on edges chosen from this run's scores (in and out together; see `histogram_edges`) and
    the ROC curve on a fixed FPR grid, for one score. Reports pool seeds by re-binning onto common edges."""
    values_in, values_out = scores_in.double().numpy(), scores_out.double().numpy()
    edges, scale = histogram_edges(np.concatenate([values_in, values_out]), score)
    low, high = edges[0], edges[-1]
    hist_in = np.histogram(np.clip(values_in, low, high), edges)[0]
    hist_out = np.histogram(np.clip(values_out, low, high), edges)[0]
    roc = roc_curve(scores_in, scores_out)
    fpr, tpr = roc.fpr.numpy(), roc.tpr.numpy()
    last = np.searchsorted(fpr, ROC_GRID, side="right") - 1  # last ROC point with fpr <= grid value
    return ({"edges": edges.tolist(), "scale": scale, "in": hist_in.tolist(), "out": hist_out.tolist()},
            {"fpr": ROC_GRID.tolist(), "tpr": tpr[last].tolist()})


def _shift_plan(shifts: Sequence[str] | Mapping[str, Sequence[int]] | None, kind: str,
                severities: Sequence[int]) -> dict[str, tuple[int, ...]]:
    if shifts is None:
        _, shift_module = _data()
        shifts = shift_module.available_shifts(kind)
    if isinstance(shifts, Mapping):
        return {str(k): tuple(int(s) for s in v) for k, v in shifts.items()}
    return {str(name): tuple(int(s) for s in severities) for name in shifts}


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
) -> dict[str, Any]:
    """Evaluate `method` on `data_name`'s test set, its shifts and OOD pairs; a dict in the RESULT SCHEMA.

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
    samples: a method with a fixed sample count (a deep ensemble: its members) uses its own; recorded.
    """
    started = time.perf_counter()
    samples = method.prediction_samples(samples)  # a deep ensemble's M members, whatever was asked (recorded)
    datasets, shift_module = _data()
    torch.manual_seed(seed)
    note = progress or (lambda message: None)
    images, labels = load_test_images(data_name, root, limit)
    kind = "mnist" if images.ndim == 3 and images.shape[1:] == (28, 28) else "cifar"
    plan = _shift_plan(shifts, kind, severities)
    published_set = PUBLISHED_SETS.get(data_name)
    published_plan = plan_published_corruptions(published_corruptions, published_set, severities) if published_set else {}
    classes = int(datasets.DATASET_INFO[data_name].num_classes)

    def run(images01: np.ndarray) -> Tensor:
        return predict_logits(method, normalise(images01, data_name), samples, batch_size)

    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "run_id": run_id(data_name, method.name, seed), "method": method.name,
        "seed": seed, "dataset": data_name, "config": None, "train_time_s": None, "samples": samples,
        "test_size": int(len(labels)),
        "evaluation": {"shifts": {k: list(v) for k, v in plan.items()}, "rotation_angles": list(rotation_angles),
                       "random_rotation": random_rotation, "limit": limit, "batch_size": batch_size, "seed": seed,
                       "published_corruptions": {k: list(v) for k, v in published_plan.items()}},
        "shifts": {}, "rotation_sweep": {}, "ood": {}, "ood_skipped": {}, "uncertainty": {}, "selective": {},
        "figures": {"reliability": {}, "ood_histograms": {}, "roc": {}, "risk_coverage": {}},
    }
    ts: dict[str, Any] | None = None
    if validation is not None:
        note("validation (temperature scaling)")
        results["temperature_scaling"] = fit_on_validation(method, validation, samples, batch_size, seed)
        ts = results["ts"] = {"temperature": results["temperature_scaling"]["temperature"], "shifts": {},
                              "rotation_sweep": {}, "ood": {}, "selective": {},
                              "figures": {"reliability": {}, "risk_coverage": {}}}

    def scaled(logits: Tensor) -> Tensor:
        assert ts is not None
        return apply_temperature(logits, ts["temperature"])

    def full_condition(name: str, logits: Tensor) -> None:
        """METRICS, selective prediction and figure material of one condition (and with T, when fitted)."""
        for target, condition_logits in [(results, logits)] + ([(ts, scaled(logits))] if ts is not None else []):
            target[name], summary = condition_metrics(condition_logits, labels)
            target["figures"]["reliability"][name] = reliability_material(summary, labels)
            target["selective"][name], target["figures"]["risk_coverage"][name] = selective_report(summary, labels)

    def metrics_only(logits: Tensor) -> tuple[dict[str, float], dict[str, float] | None]:
        return (condition_metrics(logits, labels)[0],
                condition_metrics(scaled(logits), labels)[0] if ts is not None else None)

    note("clean")
    clean_logits = run(images)
    full_condition("clean", clean_logits)
    results["uncertainty"]["clean"] = ttest_uncertainty(clean_logits, labels)

    if random_rotation:
        note("random rotation")
        rotated_logits = run(shift_module.random_rotation(images, seed))
        full_condition("random_rotation", rotated_logits)
        results["uncertainty"]["random_rotation"] = ttest_uncertainty(rotated_logits, labels)
        del rotated_logits

    for angle in rotation_angles:
        if float(angle) % 360 == 0:  # the identity: the clean images, already predicted
            results["rotation_sweep"][f"{angle:g}"] = dict(results["clean"])
            if ts is not None:
                ts["rotation_sweep"][f"{angle:g}"] = dict(ts["clean"])
            continue
        note(f"rotation {angle:g} deg")
        plain, tempered = metrics_only(run(shift_module.rotate(images, float(angle))))
        results["rotation_sweep"][f"{angle:g}"] = plain
        if ts is not None:
            ts["rotation_sweep"][f"{angle:g}"] = tempered

    for shift, levels in plan.items():
        results["shifts"][shift] = {}
        if ts is not None:
            ts["shifts"][shift] = {}
        for severity in levels:
            note(f"{shift} severity {severity}")
            shifted = shifted_test_images(data_name, shift, severity, seed, root, limit, clean=images)
            plain, tempered = metrics_only(run(shifted))
            results["shifts"][shift][str(severity)] = plain
            if ts is not None:
                ts["shifts"][shift][str(severity)] = tempered

    if published_corruptions and published_set is None:
        message = (f"published corruptions: {data_name!r} has no published corruption set "
                   f"(only {', '.join(PUBLISHED_SETS)}); skipped")
        results["published_skipped"] = {data_name: message}
        log(message)
    elif published_plan:
        _evaluate_published(results, published_set, published_plan, run, root, limit, note, log,  # type: ignore[arg-type]  # not None here: set before use
                            (ts, scaled) if ts is not None else None)

    explicit = ood_sets is not None
    scores_in = ood_scores(clean_logits)
    scores_in_ts = ood_scores(scaled(clean_logits)) if ts is not None else None
    for ood_name in (ood_sets if explicit else DEFAULT_OOD.get(data_name, ())):  # type: ignore[union-attr]  # not None here: set before use
        try:
            ood_images, _ = load_test_images(ood_name, root, limit)
        except DataError as error:
            if explicit:
                raise
            results["ood_skipped"][ood_name] = str(error)
            continue
        if ood_images.shape[1:] != images.shape[1:]:
            raise DataError(f"OOD set {ood_name!r} has images {ood_images.shape[1:]}, "
                            f"but {data_name!r} has {images.shape[1:]}: an OOD pair needs one image shape")
        note(f"OOD {ood_name}")
        ood_logits = run(ood_images)
        scores_out = ood_scores(ood_logits)
        if ts is not None:
            scores_out_ts = ood_scores(scaled(ood_logits))
            ts["ood"][ood_name] = {score: ood_metrics(scores_in_ts[score], scores_out_ts[score]) for score in SCORE_NAMES}  # type: ignore[index]  # not None here: set before use
        del ood_logits
        results["ood"][ood_name] = {}
        results["figures"]["ood_histograms"][ood_name] = {}
        results["figures"]["roc"][ood_name] = {}
        for score in SCORE_NAMES:
            results["ood"][ood_name][score] = ood_metrics(scores_in[score], scores_out[score])
            hist, roc = ood_material(scores_in[score].cpu(), scores_out[score].cpu(), score, classes)
            results["figures"]["ood_histograms"][ood_name][score] = hist
            results["figures"]["roc"][ood_name][score] = roc
    results["eval_time_s"] = time.perf_counter() - started
    return results


def fit_on_validation(method: DropoutMethod, validation: tuple[Tensor, Tensor], samples: int, batch_size: int,
                      seed: int) -> dict[str, Any]:
    """Fit the temperature on held-out (images [N, C, H, W], labels [N]); {"temperature", "validation_size",
    "validation_nll" (T = 1), "validation_nll_scaled"}. The masks come from a private RNG seeded by `seed`."""
    images, labels = validation
    labels = torch.as_tensor(labels).long().cpu()
    if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(f"validation needs as many labels as images (at least one), got {images.shape[0]} images "
                         f"and {labels.shape[0]} labels")
    device = next((p.device for p in method.parameters()), torch.device("cpu"))
    with private_rng(device):
        torch.manual_seed(seed)
        logits = predict_logits(method, images, samples, batch_size)
    temperature = fit_temperature(logits, labels)
    return {"temperature": temperature, "validation_size": int(labels.shape[0]),
            "validation_nll": temperature_nll(logits, labels, 1.0),
            "validation_nll_scaled": temperature_nll(logits, labels, temperature)}


def _evaluate_published(results: dict[str, Any], set_name: str, plan: Mapping[str, Sequence[int]],
                        run: Callable[[np.ndarray], Tensor], root: Any, limit: int | None,
                        note: Progress, log: Progress,
                        tempered: tuple[dict[str, Any], Callable[[Tensor], Tensor]] | None = None) -> None:
    """Fill results["published_corruptions"] from the published -C files that are present; log what is not.
    tempered: (the "ts" section, logits -> logits / T): its "published_corruptions" is filled likewise."""
    datasets, _ = _data()
    missing = {c: published_files_missing(set_name, c, root) for c in plan}
    absent = [c for c, paths in missing.items() if paths]
    if absent:
        where = missing[absent[0]][0].parent
        what = "not found" if len(absent) == len(plan) else f"{len(absent)} of {len(plan)} corruption(s) missing"
        message = (f"published {PUBLISHED_LABELS.get(set_name, set_name)} {what} under {where}: skipped "
                   f"{', '.join(absent)}; to evaluate on it, run {fetch_hint(set_name)}")
        results["published_skipped"] = {set_name: message}
        log(message)
    present = [c for c in plan if c not in absent]
    if not present:
        return
    results["published_set"] = set_name
    results["published_corruptions"] = {}
    ts_section = None
    if tempered is not None:
        ts_section = tempered[0]["published_corruptions"] = {}
    label = PUBLISHED_LABELS.get(set_name, set_name)
    for corruption in present:
        results["published_corruptions"][corruption] = {}
        if ts_section is not None:
            ts_section[corruption] = {}
        for severity in plan[corruption]:
            note(f"published {label} {corruption} severity {severity}")
            images, labels = datasets.load_corruption(set_name, corruption, severity, root)
            keep = subset_indices(len(labels), limit)  # the rows of the clean subset: -C rows follow the test set
            if keep is not None:
                images, labels = images[keep], labels[keep]
            logits = run(np.asarray(images, dtype=np.float32) / 255.0)
            labels = np.asarray(labels, dtype=np.int64)
            results["published_corruptions"][corruption][str(severity)] = condition_metrics(logits, labels)[0]
            if ts_section is not None:
                ts_section[corruption][str(severity)] = condition_metrics(tempered[1](logits), labels)[0]  # type: ignore[index]  # not None here: set before use
