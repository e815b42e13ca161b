"""`gflowout benchmark --config configs/bench_mnist.yaml [--out DIR]`: the methods x seeds grid, resumable."""

from __future__ import annotations

import argparse
from pathlib import Path

from gflowout.cli.arguments import positive_int, shard_spec, slurm_array_shard


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="train and evaluate a grid of methods x seeds, then write the report",
        description="Train (via the harness), evaluate (clean, shifts, rotations, OOD) and record one JSON per run, "
        "then aggregate mean ± standard error over seeds into a report. Runs with a result file are skipped, "
        "interrupted trainings resume: rerun the same command after a kill to finish the rest.",
    )
    parser.add_argument("--config", required=True, help="benchmark YAML (e.g. configs/bench_mnist.yaml)")
    parser.add_argument("--out", default=None, help="output folder (default: benchmark-<config name>)")
    parser.add_argument("--root", default=None, help="data folder (default: GFLOWOUT_DATA or the cache)")
    parser.add_argument("--keep-going", action="store_true",
                        help="log a failed run and go on with the others (exit status 2 at the end, failures listed)")
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch threads (default: 1 on a machine with <= 2 cores, else cores - 1)")
    parser.add_argument("--shard", type=shard_spec, default=None, metavar="I/N",
                        help="run only shard I of N of the grid (every N-th run from run I), so N workers share one "
                        "--out; default: from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT in a SLURM array, else 1/1")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from gflowout.experiments.benchmark import load_benchmark_config, quiet_lightning, run_benchmark, set_threads

    shard = args.shard or slurm_array_shard(dict(os.environ)) or (1, 1)
    quiet_lightning()
    set_threads(args.threads)
    bench = load_benchmark_config(args.config)
    from gflowout.writable import writable_folder

    out = writable_folder(Path(args.out) if args.out else Path(f"benchmark-{Path(args.config).stem}"),
                          "output folder", "--out")
    paths = run_benchmark(bench, out, root=args.root, report=not args.no_report,
                          keep_going=args.keep_going, shard=shard)
    print(f"{len(paths)} result file(s) in {out / 'results'}")
    return 0
