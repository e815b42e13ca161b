"""`gflowout cohort --config FILE --out DIR`: the leave-one-group-out cohort-shift protocol (the paper's eICU task)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

EPILOG = """\
examples:
  gflowout data fetch rotterdam-gbsg                       # R survival's cohorts from Debian's r-cran-survival
  gflowout cohort --config configs/cohort_rotterdam_gbsg.yaml --out runs/cohort
  gflowout cohort --config configs/cohort_csv_example.yaml --out runs/eicu   # your own eICU-derived CSV

For each held-out group, method and seed: train on every other group (standardised with their statistics),
evaluate the S-sample predictive on the held-out group and on an in-distribution part of the training
groups. One JSON per run in DIR/runs (a finished run is skipped when the command is run again: it resumes);
DIR/summary.md and summary.json hold mean ± standard error over seeds, DIR/figures a plot.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cohort",
        help="leave-one-group-out cohort shift on tabular data (eICU-style CSV, Rotterdam/GBSG)",
        description="Train every method on all groups but one and test on the held-out group.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", required=True, metavar="FILE", help="a cohort YAML config (see configs/cohort_*.yaml)"
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (runs/, summary.md, summary.json, figures/)"
    )
    parser.add_argument(
        "--root", default=None, help="data folder of rotterdam-gbsg (default: $GFLOWOUT_DATA or the cache)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gflowout.experiments.cohort import load_cohort_config, run_cohort
    from gflowout.writable import writable_folder

    config = load_cohort_config(args.config)
    writable_folder(args.out, "output folder", "--out")
    if args.root is not None:
        config.data.root = args.root
    started = time.perf_counter()
    run_cohort(config, args.out, log=lambda message: print(message, flush=True))
    print(f"summary: {args.out}/summary.md ({time.perf_counter() - started:.1f} s)")
    print(Path(args.out, "summary.md").read_text())
    return 0
