"""`gflowout train`: train one method from a YAML config (one GPU, many GPUs, or CPU), resumable."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gflowout.cli.arguments import positive_int

EPILOG = """\
examples:
  # the paper's MNIST MLP protocol, GFlowOut, seed 1
  gflowout train --config configs/mnist_mlp.yaml --method gflowout --seed 1 --out runs/mnist-gflowout-1

  # the same for MC dropout, with a different backbone learning rate and 20 epochs
  gflowout train --config configs/mnist_mlp.yaml --method mc_dropout --seed 1 --out runs/mnist-mc-1 \\
      --set optim.backbone.lr=0.0005 --set trainer.max_epochs=20

  # continue an interrupted run (also mid-epoch) from runs/NAME/checkpoints/last.ckpt
  gflowout train --config configs/mnist_mlp.yaml --method gflowout --seed 1 --out runs/mnist-gflowout-1 --resume

  # CIFAR-10 ResNet-18 on 4 GPUs of one machine (batch_size is per GPU: global batch = 4 x 128)
  gflowout train --config configs/cifar10_resnet18.yaml --method gflowout --seed 1 --out runs/c10-gfn-1 \\
      --accelerator gpu --devices 4 --strategy ddp

  # 2 nodes x 4 GPUs under SLURM (one task per GPU: srun --ntasks-per-node=4 gflowout train ...)
  gflowout train ... --accelerator gpu --devices 4 --num-nodes 2 --strategy ddp

The run folder gets config.yaml, checkpoints/{best,last}.ckpt (best = lowest validation NLL of the
S-sample predictive), logs/ (CSV), tb/ (TensorBoard: tensorboard --logdir runs/NAME/tb) and
results.json (test metrics of best.ckpt). Methods: gflowout, id_gflowout, mc_dropout, concrete,
contextual, none. Any config key can be overridden with --set key.path=value (YAML value).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one method from a YAML config (resumable, multi-GPU)",
        description="Train one dropout method with the Lightning harness, select the best epoch by validation "
        "NLL, and evaluate it on the test split.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", required=True, metavar="YAML", help="experiment config, e.g. configs/mnist_mlp.yaml"
    )
    parser.add_argument("--method", default=None, help="method to train (overrides method.name in the config)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (overrides seed in the config)")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="run folder (created; refused if it holds a run, unless --resume)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from DIR/checkpoints/last.ckpt (starts afresh if there is none)"
    )
    parser.add_argument(
        "--root",
        default=None,
        metavar="DIR",
        help="data folder (overrides data.root; default: GFLOWOUT_DATA or ~/.cache/gflowout)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set optim.backbone.lr=0.01 (repeatable)",
    )
    group = parser.add_argument_group("hardware (passed to Lightning's Trainer; override trainer.* in the config)")
    group.add_argument("--devices", default=None, help="number of devices per node, a list like 0,1, or auto")
    group.add_argument("--accelerator", default=None, choices=["cpu", "gpu", "cuda", "mps", "auto"], help="device kind")
    group.add_argument("--strategy", default=None, help="auto, ddp, ... (ddp for several devices or nodes)")
    group.add_argument("--num-nodes", type=positive_int, default=None, help="number of nodes (with --strategy ddp)")
    parser.set_defaults(func=run)


def parse_devices(text: str) -> int | str | list[int]:
    """'4' -> 4, '0,1' -> [0, 1], 'auto' -> 'auto'."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if "," in text:
        return [int(part) for part in text.split(",") if part.strip()]
    return text


def run(args: argparse.Namespace) -> int:
    from gflowout.config import load_config

    overrides = list(args.overrides) + ([f"data.root={args.root}"] if args.root else [])
    config = load_config(args.config, overrides, method=args.method, seed=args.seed)
    if args.devices is not None:
        config.trainer.devices = parse_devices(args.devices)
    if args.accelerator is not None:
        config.trainer.accelerator = args.accelerator
    if args.strategy is not None:
        config.trainer.strategy = args.strategy
    if args.num_nodes is not None:
        config.trainer.num_nodes = args.num_nodes
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from gflowout.train import fit  # imports Lightning: after the config is known to be valid

    try:
        out = fit(config, Path(args.out), resume=args.resume)
    except SIGTERMException:  # a SystemExit without a code: the shell (and SLURM) would see success
        print(
            "gflowout train: stopped by SIGTERM; continue from "
            f"{Path(args.out) / 'checkpoints' / 'last.ckpt'} with the "
            "same command and --resume",
            file=sys.stderr,
        )
        return 143  # 128 + SIGTERM, as a shell reports a process ended by it
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:  # type: ignore[attr-defined]  # rank_zero_only.rank is set by Lightning at import
        print(final_summary(out))
    return 0


def final_summary(out: Path) -> str:
    """The last lines of a training: the best checkpoint's test metrics and where the run folder is."""
    import json

    lines = []
    try:
        results = json.loads((out / "results.json").read_text())
        test = results.get("test") or {}
        samples = results.get("val_samples")
        lines.append(
            f"test ({int(test.get('count', 0))} images, S = {samples}, best checkpoint by validation NLL): "
            f"accuracy {test['accuracy']:.4f}, NLL {test['nll']:.4f}, ECE {test['ece']:.4f}, "
            f"Brier {test['brier']:.4f}"
        )
    except (OSError, ValueError, KeyError, TypeError):
        lines.append("no test metrics in results.json")
    lines.append(f"run folder: {out} (results.json, checkpoints/best.ckpt, checkpoints/last.ckpt)")
    return "\n".join(lines)
