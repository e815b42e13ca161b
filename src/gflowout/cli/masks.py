"""`gflowout masks RUN_DIR [RUN_DIR ...] --out DIR`: mask analysis of trained runs (diversity, class-mean masks)."""

from __future__ import annotations

import argparse

from gflowout.cli.arguments import positive_int

EPILOG = """\
examples:
  gflowout masks runs/mnist__gflowout__seed1 runs/mnist__mc_dropout__seed1 --out report/masks
  gflowout masks results/mnist/runs/* --out masks --samples 20 --limit 500 --condition clean --condition fog:3

Each RUN_DIR is a run folder of `gflowout train` / `gflowout benchmark` (config.yaml + checkpoints/best.ckpt,
loaded safely). Default conditions: clean test images, the paper's random rotation, and one corruption at
severity 3 (MNIST-C-style shot noise for grey images, CIFAR-10-C-style Gaussian noise for colour ones).
Writes DIR/masks.json, DIR/masks.md (a report section with the table) and DIR/figures/*.png.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "masks",
        help="mask analysis of trained runs: intra/inter-sample diversity, class-mean masks",
        description="Record the masks each method samples at prediction and measure their diversity per site.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (or .ckpt files)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--samples", type=positive_int, default=20, help="mask samples S per input (default 20, as the paper)"
    )
    parser.add_argument(
        "--limit", type=positive_int, default=500, help="a fixed random subset of test images (default 500)"
    )
    parser.add_argument(
        "--condition",
        action="append",
        default=None,
        metavar="NAME[:SEVERITY]",
        help="clean, random_rotation or a corruption such as fog:3 (repeat; default: three conditions)",
    )
    parser.add_argument(
        "--root", default=None, help="data folder (default: the run's config, GFLOWOUT_DATA or the cache)"
    )
    parser.add_argument(
        "--allow-custom-code",
        action="store_true",
        help="build a method or backbone a checkpoint names as package.module:Class (trusted files only)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gflowout.experiments.masks import analyse_run, write_outputs
    from gflowout.writable import writable_folder

    writable_folder(args.out, "output folder", "--out")

    results = [
        analyse_run(
            path,
            samples=args.samples,
            limit=args.limit,
            conditions=args.condition,
            root=args.root,
            allow_custom_code=args.allow_custom_code,
            log=lambda m: print(m, flush=True),
        )
        for path in args.runs
    ]
    report = write_outputs(results, args.out)
    print(report.read_text().split("\n\n![")[0])
    print(f"written: {report}")
    return 0
