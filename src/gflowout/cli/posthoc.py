"""`gflowout posthoc RUN_DIR --out DIR`: GFlowOut's masks for an already trained network (backbone frozen)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gflowout.cli.arguments import positive_int

EPILOG = """\
examples:
  # masks for the network of an MC-dropout run: 5 epochs of the generators, then the comparison
  gflowout posthoc runs/mnist-mc-1 --out runs/mnist-mc-1-posthoc --epochs 5

  # continue an interrupted fit; evaluate on the whole test set with 50 samples
  gflowout posthoc runs/mnist-mc-1 --out runs/mnist-mc-1-posthoc --epochs 5 --resume --eval-limit 0 --samples 50

Every backbone weight and buffer of RUN_DIR's checkpoints/best.ckpt stays as it is (BatchNorm in eval
mode); only q(z|x,y), p(z|x) and log Z(x,y) are fitted, on the run's own training split. DIR gets what
`gflowout train` writes plus posthoc.json (source, weight digest, fit cost vs the source's training)
and comparison.md / comparison.json (the source method vs post-hoc GFlowOut on the same network:
accuracy, NLL, ECE, shifted and rotated accuracy, OOD AUROC). A network trained without dropout
(method none) gets a warning: it never saw masks.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "posthoc",
        help="fit GFlowOut's masks on the frozen network of a trained run, then compare",
        description="Post-hoc GFlowOut: freeze a trained run's backbone and fit only the GFlowNet (posterior, prior, "
        "log Z) with the harness (checkpoints, resume), then evaluate it against the run's own method.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder of `gflowout train` (or a .ckpt file)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder of the post-hoc run")
    parser.add_argument("--epochs", type=positive_int, default=None, help="epochs of the fit (default 5)")
    parser.add_argument("--resume", action="store_true", help="continue DIR from its checkpoints/last.ckpt")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key of the fit, e.g. --set method.options.beta=0.1 (default beta 1; repeatable)",
    )
    parser.add_argument("--no-evaluate", action="store_true", help="skip the comparison after the fit")
    parser.add_argument(
        "--samples", type=positive_int, default=20, help="mask samples S of the comparison (default 20)"
    )
    parser.add_argument(
        "--eval-limit",
        type=int,
        default=2000,
        metavar="N",
        help="a fixed random subset of N test (and OOD) images for the comparison; 0 for all (default 2000)",
    )
    parser.add_argument(
        "--allow-custom-code",
        action="store_true",
        help="accept a run that names package.module:Class code (imported): only for runs you trust",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from gflowout.posthoc import posthoc

    evaluation = {"samples": args.samples, "limit": args.eval_limit or None}
    try:
        out = posthoc(
            args.run_dir,
            Path(args.out),
            epochs=args.epochs,
            overrides=args.overrides,
            resume=args.resume,
            evaluate=not args.no_evaluate,
            evaluation=evaluation,
            allow_custom_code=args.allow_custom_code,
        )
    except SIGTERMException:
        print("gflowout posthoc: stopped by SIGTERM; continue with the same command and --resume", file=sys.stderr)
        return 143
    print(f"post-hoc run folder: {out} (posthoc.json" + ("" if args.no_evaluate else ", comparison.md") + ")")
    if not args.no_evaluate:
        print((out / "comparison.md").read_text())
    return 0
