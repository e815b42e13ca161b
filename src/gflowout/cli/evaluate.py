"""`gflowout evaluate RUN_OR_CHECKPOINT`: clean test metrics of a trained method (S-sample predictive)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gflowout.cli.arguments import positive_int

EPILOG = """\
examples:
  gflowout evaluate runs/mnist-gflowout-1                      # best.ckpt of the run, S = 20
  gflowout evaluate runs/mnist-gflowout-1/checkpoints/last.ckpt --samples 50 --json eval.json

Prints accuracy, NLL, Brier score and ECE (15 bins) of p(y|x) = mean over S mask samples of softmax
on the test split of the data set the model was trained on (the labels are never shown to the model).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="test metrics of a trained run or checkpoint",
        description="Evaluate a checkpoint written by `gflowout train` on its data set's test split.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", metavar="RUN_OR_CHECKPOINT", help="a run folder (uses checkpoints/best.ckpt) or a .ckpt file")
    parser.add_argument("--samples", type=positive_int, default=20, help="mask samples S of the predictive (default 20)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="test batch size (default: the config's)")
    parser.add_argument("--root", default=None, help="data folder (default: the config's, GFLOWOUT_DATA or the cache)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the metrics to this JSON file (atomically)")
    parser.add_argument("--allow-custom-code", action="store_true",
                        help="build a method, backbone or data module the checkpoint names as package.module:Class "
                             "(imported, with options from the file): only for checkpoints you trust")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gflowout.checkpoint import atomic_write_json, resolve_checkpoint
    from gflowout.training.evaluation import evaluate_checkpoint

    if args.samples < 1:
        raise SystemExit("gflowout evaluate: error: --samples must be >= 1")
    path = resolve_checkpoint(args.checkpoint)
    metrics = evaluate_checkpoint(path, samples=args.samples, batch_size=args.batch_size, root=args.root,
                                  allow_custom_code=args.allow_custom_code)
    text = json.dumps(metrics, indent=2, sort_keys=True)
    print(text)
    if args.json:
        atomic_write_json(Path(args.json), metrics)
    return 0
