"""`gflowout active-learning --config configs/active_mnist.yaml --out DIR [--shard I/N]`: pool-based active
learning for every method and acquisition score, resumable at round granularity."""

from __future__ import annotations

import argparse

from gflowout.cli.arguments import add_grid_arguments, grid_out_folder, grid_shard

EPILOG = """\
examples:
  # seconds: a tiny grid on real MNIST
  gflowout active-learning --config configs/active_tiny.yaml --out /tmp/active-tiny

  # every method x score x seed on MNIST and Fashion-MNIST, two workers sharing one folder
  gflowout active-learning --config configs/active_mnist.yaml --out results/active_mnist --shard 1/2 &
  gflowout active-learning --config configs/active_mnist.yaml --out results/active_mnist --shard 2/2 &

  # killed? rerun the same command: finished runs are skipped, unfinished ones resume at their next round
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "active-learning",
        help="pool-based active learning: every method x acquisition score x seed, accuracy vs labelled-set size",
        description="Start from a few labelled examples per class; each round retrains the method from scratch "
        "(the same steps for every method), records test accuracy and NLL, and labels the top-k pool examples "
        "by an acquisition score (entropy, bald, variation_ratio, dempster_shafer, random) computed from the "
        "method's S-sample predictions. One result JSON per run; a killed run resumes at its next round when the "
        "same command is rerun. The report (accuracy curves with error bands, area under the curve) is written "
        "when the grid has finished.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_grid_arguments(parser, "active-learning YAML (e.g. configs/active_mnist.yaml)", "active")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gflowout.experiments.active_learning import run_active_learning
    from gflowout.experiments.benchmark import set_threads
    from gflowout.experiments.downstream_config import load_active_learning_config

    shard = grid_shard(args)
    config = load_active_learning_config(args.config)  # a bad config stops here, before anything changes
    set_threads(args.threads)
    out = grid_out_folder(args, "active")
    paths = run_active_learning(config, out, root=args.root, shard=shard, report=not args.no_report)
    print(f"{len(paths)} result file(s) in {out / 'results'}")
    return 0
