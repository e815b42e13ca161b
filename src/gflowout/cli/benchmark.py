"""`gflowout benchmark --config configs/bench_mnist.yaml [--out DIR]`: the methods x seeds grid, resumable."""

from __future__ import annotations

import argparse

from gflowout.cli.arguments import add_grid_arguments, grid_out_folder, grid_out_path, grid_shard


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="train and evaluate a grid of methods x seeds, then write the report",
        description="Train (via the harness), evaluate (clean, shifts, rotations, OOD) and record one JSON per run, "
        "then aggregate mean ± standard error over seeds into a report. Runs with a result file are skipped, "
        "interrupted trainings resume: rerun the same command after a kill to finish the rest.",
    )
    add_grid_arguments(parser, "benchmark YAML (e.g. configs/bench_mnist.yaml)", "benchmark")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="log a failed run and go on with the others (exit status 2 at the end, failures listed)",
    )
    parser.add_argument(
        "--reevaluate",
        action="store_true",
        help="complete result files written by an older gflowout: evaluate their trained checkpoints again to add "
        "temperature scaling, conformal sets and selective prediction; the numbers already in a file must come out "
        "identical, else it is kept and the grid stops",
    )
    parser.add_argument(
        "--status",
        action="store_true",
        help="train and write nothing: list every run of the grid with what its output folder holds (a result "
        "file and its clean figures, a finished training awaiting evaluation, the epoch of a training's last "
        "checkpoint, or nothing yet) and, with --shard I/N, the worker that runs it",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gflowout.experiments.benchmark import load_benchmark_config, quiet_lightning, run_benchmark, set_threads

    shard = grid_shard(args)
    if args.status:
        return _status(args, shard[1])
    quiet_lightning()
    set_threads(args.threads)
    bench = load_benchmark_config(args.config)
    out = grid_out_folder(args, "benchmark")
    paths = run_benchmark(
        bench,
        out,
        root=args.root,
        report=not args.no_report,
        keep_going=args.keep_going,
        shard=shard,
        reevaluate=args.reevaluate,
    )
    print(f"{len(paths)} result file(s) in {out / 'results'}")
    return 0


def _status(args: argparse.Namespace, workers: int) -> int:
    """--status: print where every run of the grid stands; train and write nothing."""
    from gflowout.errors import ConfigError
    from gflowout.experiments.benchmark import load_benchmark_config
    from gflowout.experiments.grid_status import grid_status, status_text

    doing = [flag for flag, given in (("--reevaluate", args.reevaluate), ("--keep-going", args.keep_going)) if given]
    if doing:
        raise ConfigError(f"--status only reads the output folder; leave out {' and '.join(doing)}")
    bench = load_benchmark_config(args.config)
    out = grid_out_path(args, "benchmark")
    print(f"{out}:" if out.is_dir() else f"{out} (no such folder yet: check --out if the grid has started):")
    print(status_text(grid_status(bench, out, workers, args.root), workers))
    return 0
