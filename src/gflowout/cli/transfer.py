"""`gflowout transfer --config configs/transfer_mnist.yaml --out DIR [--shard I/N]`: pre-train on noisy labels,
fine-tune the loaded weights on clean subsets, for every method; resumable per subset size."""

from __future__ import annotations

import argparse

from gflowout.cli.arguments import add_grid_arguments, grid_out_folder, grid_shard

EPILOG = """\
examples:
  # seconds: a tiny grid on real MNIST
  gflowout transfer --config configs/transfer_tiny.yaml --out /tmp/transfer-tiny

  # every method x seed on MNIST and Fashion-MNIST, two workers sharing one folder
  gflowout transfer --config configs/transfer_mnist.yaml --out results/transfer_mnist --shard 1/2 &
  gflowout transfer --config configs/transfer_mnist.yaml --out results/transfer_mnist --shard 2/2 &

  # killed? rerun the same command: finished runs are skipped, unfinished ones resume at their next subset
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "transfer",
        help="transfer from noisy pre-training: every method x seed, accuracy vs clean subset size",
        description="Pre-train each method on the training split with symmetric label noise over all classes "
        "(default 30 %%), save the weights, then load them and fine-tune on clean seeded subsets (e.g. 512 to "
        "8192 images), optionally also from scratch; test accuracy and NLL per subset size. One result JSON per "
        "run; a killed run resumes at its next subset when the same command is rerun.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_grid_arguments(parser, "transfer YAML (e.g. configs/transfer_mnist.yaml)", "transfer")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gflowout.experiments.benchmark import set_threads
    from gflowout.experiments.downstream_config import load_transfer_config
    from gflowout.experiments.transfer import run_transfer

    shard = grid_shard(args)
    config = load_transfer_config(args.config)  # a bad config stops here, before anything changes
    set_threads(args.threads)
    out = grid_out_folder(args, "transfer")
    paths = run_transfer(config, out, root=args.root, shard=shard, report=not args.no_report)
    print(f"{len(paths)} result file(s) in {out / 'results'}")
    return 0
