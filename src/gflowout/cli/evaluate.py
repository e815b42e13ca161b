"""`gflowout evaluate RUN_OR_CHECKPOINT`: clean test metrics of a trained method (S-sample predictive)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gflowout.cli.arguments import positive_int

EPILOG = """\
examples:
  gflowout evaluate runs/mnist-gflowout-1                      # best.ckpt of the run, S = 20
  gflowout evaluate runs/mnist-gflowout-1/checkpoints/last.ckpt --samples 50 --json eval.json
  gflowout evaluate runs/mnist-gflowout-1 --full --json full.json   # the benchmark's whole evaluation
  gflowout evaluate runs/mnist-gflowout-1 --shifts fog,shot_noise --severities 1,3,5 --rotation --ood fashion-mnist

Prints accuracy, NLL, Brier score and ECE (15 bins) of p(y|x) = mean over S mask samples of softmax
on the test split of the data set the model was trained on (the labels are never shown to the model),
as JSON on stdout, with:
  selective    per confidence score (max probability, negative entropy, negative mutual information):
               AURC and the accuracy at 90 / 95 / 99 % coverage
  temperature  T fitted on the run's validation split by the NLL of the S-sample predictive (Guo et al.
               2017), and "ts": the test metrics with every sample's logits divided by T
               (--no-temperature-scaling skips it and the validation pass)
A short table of METHOD and METHOD + TS goes to stderr. A deep ensemble uses its M members as S.
With --full, --shifts, --rotation, --rotation-angles or --ood it evaluates as `gflowout benchmark` does
(clean, the paper's random rotation, a rotation sweep, MNIST-C-style / CIFAR-10-C-style corruptions,
OOD detection, selective prediction and, unless --no-temperature-scaling, every condition also with the
temperature) and prints a summary with rows METHOD and METHOD + TS, and the coverage and mean size of
split-conformal prediction sets calibrated on the validation split (--conformal-alpha, default 0.1; none to
skip); --json then holds the whole result (the benchmark's schema).
"""


def conformal_alpha(text: str) -> float | None:
    """--conformal-alpha: a miscoverage rate in (0, 1), or "none"."""
    if text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a miscoverage rate in (0, 1) (0.1 for 90% sets) or 'none', got {text!r}"
        )
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="test metrics of a trained run or checkpoint",
        description="Evaluate a checkpoint written by `gflowout train` on its data set's test split.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "checkpoint", metavar="RUN_OR_CHECKPOINT", help="a run folder (uses checkpoints/best.ckpt) or a .ckpt file"
    )
    parser.add_argument(
        "--samples", type=positive_int, default=20, help="mask samples S of the predictive (default 20)"
    )
    parser.add_argument("--batch-size", type=positive_int, default=None, help="test batch size (default: the config's)")
    parser.add_argument("--root", default=None, help="data folder (default: the config's, GFLOWOUT_DATA or the cache)")
    parser.add_argument(
        "--json", default=None, metavar="PATH", help="also write the metrics to this JSON file (atomically)"
    )
    shifted = parser.add_argument_group("shifts and OOD (as gflowout benchmark evaluates)")
    shifted.add_argument(
        "--full",
        action="store_true",
        help="everything below at the benchmark's defaults: random rotation, 0-180 sweep, every "
        "corruption at severities 1-5, the default OOD sets that are fetched",
    )
    shifted.add_argument(
        "--shifts", default=None, metavar="NAMES", help="comma-separated corruptions, or 'all' (e.g. fog,shot_noise)"
    )
    shifted.add_argument(
        "--severities", default=None, metavar="LIST", help="comma-separated severities 1-5 (default 1,2,3,4,5)"
    )
    shifted.add_argument("--rotation", action="store_true", help="the paper's random rotation (0-360 degrees)")
    shifted.add_argument(
        "--rotation-angles", default=None, metavar="LIST", help="comma-separated angles of a sweep (e.g. 0,45,90)"
    )
    shifted.add_argument(
        "--ood",
        default=None,
        metavar="NAMES",
        help="comma-separated OOD data sets, or 'default' (those fetched of the data set's defaults)",
    )
    shifted.add_argument(
        "--conformal-alpha",
        type=conformal_alpha,
        default=0.1,
        metavar="ALPHA",
        help="split-conformal prediction sets at miscoverage ALPHA, calibrated on the validation "
        "split, in every condition (default 0.1; 'none' to skip)",
    )
    shifted.add_argument(
        "--limit", type=positive_int, default=None, help="evaluate a fixed random subset of N test images"
    )
    parser.add_argument(
        "--allow-custom-code",
        action="store_true",
        help="build a method, backbone or data module the checkpoint names as package.module:Class "
        "(imported, with options from the file): only for checkpoints you trust",
    )
    parser.add_argument(
        "--no-temperature-scaling",
        dest="temperature_scaling",
        action="store_false",
        help="skip fitting a temperature on the validation split (and the 'ts' metrics)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gflowout.atomic import atomic_write_json
    from gflowout.checkpoint import resolve_checkpoint
    from gflowout.training.evaluation import evaluate_checkpoint

    if args.samples < 1:
        raise SystemExit("gflowout evaluate: error: --samples must be >= 1")
    if args.json:
        from gflowout.writable import writable_file

        writable_file(args.json, "JSON file", "--json")  # before the evaluation, not after it
    path = resolve_checkpoint(args.checkpoint)
    if args.full or args.shifts or args.rotation or args.rotation_angles or args.ood or args.limit:
        return run_full(args, path)
    metrics = evaluate_checkpoint(
        path,
        samples=args.samples,
        batch_size=args.batch_size,
        root=args.root,
        allow_custom_code=args.allow_custom_code,
        temperature_scaling=args.temperature_scaling,
    )
    text = json.dumps(metrics, indent=2, sort_keys=True)
    print(text)
    print(summary_rows(metrics), file=sys.stderr)
    if args.json:
        atomic_write_json(Path(args.json), metrics)
    return 0


def _csv(text: str | None, kind: type, option: str) -> list | None:
    if text is None:
        return None
    try:
        return [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(
            f"gflowout evaluate: error: {option} expects a comma-separated list of {kind.__name__}s, got {text!r}"
        ) from None


def run_full(args: argparse.Namespace, path: Path) -> int:
    """The benchmark's evaluation of one checkpoint: clean, rotations, corruptions, OOD; a summary and --json."""
    import torch

    from gflowout.atomic import atomic_write_json
    from gflowout.checkpoint import load_method, refuse_custom_code
    from gflowout.errors import ConfigError
    from gflowout.eval.evaluate import DEFAULT_ANGLES, DEFAULT_SEVERITIES, evaluate_method
    from gflowout.eval.report import summarise_result
    from gflowout.experiments.grid_check import image_kind, shift_problems
    from gflowout.provenance import code_provenance
    from gflowout.training.evaluation import validation_tensors

    severities = _csv(args.severities, int, "--severities") or list(DEFAULT_SEVERITIES)
    if args.full:
        shifts, rotation, angles, ood = None, True, list(DEFAULT_ANGLES), None
    else:
        shifts = () if not args.shifts else (None if args.shifts == "all" else _csv(args.shifts, str, "--shifts"))
        rotation = args.rotation
        angles = [float(a) for a in (_csv(args.rotation_angles, float, "--rotation-angles") or [])]  # type: ignore[misc]  # _csv returns what its parser (float) returns
        ood = () if not args.ood else (None if args.ood == "default" else _csv(args.ood, str, "--ood"))
    method, config = load_method(path, allow_custom_code=args.allow_custom_code)
    if not args.allow_custom_code:
        refuse_custom_code(config, str(path))
    problems = shift_problems(shifts, severities, image_kind(config.data.name))
    if problems:
        raise ConfigError("; ".join(problems))
    method.to("cuda" if torch.cuda.is_available() else "cpu")
    if args.root:
        config.data.root = args.root
    wants_validation = args.temperature_scaling or args.conformal_alpha is not None
    validation = validation_tensors(config, limit=args.limit) if wants_validation else None
    result = evaluate_method(
        method,
        config.data.name,
        root=args.root or config.data.root,
        samples=args.samples,
        shifts=shifts,
        ood_sets=ood,
        seed=config.seed,
        severities=severities,
        rotation_angles=angles,
        random_rotation=rotation,
        limit=args.limit,
        batch_size=args.batch_size or 256,
        validation=validation,
        temperature_scaling=args.temperature_scaling,
        conformal_alpha=args.conformal_alpha,
    )
    result.update(config=config.to_dict(), checkpoint=str(path), **code_provenance())
    print(summarise_result(result))
    if "conformal" in result:
        print(conformal_line(result["conformal"]))
    if args.json:
        atomic_write_json(Path(args.json), result)
        print(f"full result: {args.json}")
    return 0


def conformal_line(conformal: dict) -> str:
    """One line: the clean test set's coverage and mean set size per conformal score."""
    parts = [
        f"{score} coverage {sets['coverage']:.3f}, mean size {sets['mean_size']:.2f}"
        for score, sets in conformal.get("clean", {}).items()
    ]
    return (
        f"conformal sets (alpha {conformal['alpha']:g}, calibrated on {conformal['calibration_size']} validation "
        f"examples), clean test set: " + "; ".join(parts)
    )


def summary_rows(metrics: dict) -> str:
    """The rows METHOD and (when fitted) METHOD + TS: accuracy, NLL, ECE, Brier, AURC of the max probability."""
    aurc = metrics.get("selective", {}).get("max_probability", {}).get("aurc", float("nan"))
    header = f"{'method':<24} {'accuracy':>9} {'NLL':>8} {'ECE':>8} {'Brier':>8} {'AURC':>8}"
    rows = [header, _row(metrics["method"], metrics, aurc)]
    if "ts" in metrics:
        rows.append(_row(f"{metrics['method']} + TS (T={metrics['temperature']:.3f})", metrics["ts"], float("nan")))
    return "\n".join(rows)


def _row(name: str, values: dict, aurc: float) -> str:
    aurc_text = "-" if aurc != aurc else f"{aurc:.4f}"
    return (
        f"{name:<24} {values['accuracy']:>9.4f} {values['nll']:>8.4f} {values['ece']:>8.4f} {values['brier']:>8.4f} "
        f"{aurc_text:>8}"
    )
