"""What `gflowout train`'s Lightning loop adds to a training step: the in-loop step against the bare `train_step`.

    .venv/bin/python benchmarks/bench_harness.py [--methods gflowout,mc_dropout] [--batches 210] [--repeats 2]

Both run the paper's MNIST MLP (configs/mnist_mlp.yaml: 784-1024-1024-1024-10, batch 128) on the same real
MNIST batches, one torch thread, in one process, alternating rounds (the fastest round of each is kept):
* bare: `method.train_step(x, y, optimizers)`, the plain-PyTorch step (losses, one backward, clipping,
  every optimiser steps) on batches already in memory;
* in loop: the same method inside the harness (`MethodModule` + `build_trainer`: manual optimisation,
  logging, checkpoints every `trainer.checkpoint_every_n_steps`, the progress bar off), measured two ways:
  "step" = from Lightning's on_train_batch_start to on_train_batch_end (the training_step with its logging,
  clipping and optimiser wrappers), and "loop" = the wall time per batch over the whole epoch loop (adds
  data loading, checkpoint writes and the loop's bookkeeping).
Times are this process's CPU time (steady on a busy machine with one thread). The target (issue 12): the
in-loop step within 10 % of the bare one. Results and their date go in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


class BatchTimer:
    """A Lightning callback recording CPU time at each training batch's start and end."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ends: list[float] = []

    def on_train_batch_start(self, *args: object) -> None:
        self.starts.append(time.process_time())

    def on_train_batch_end(self, *args: object) -> None:
        self.ends.append(time.process_time())


def _config(method: str, batches: int):
    from gflowout.config import load_config

    return load_config(
        REPO / "configs" / "mnist_mlp.yaml",
        [
            f"data.limit_train={batches * 128}",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "trainer.val_every_n_epochs=1000",
            "trainer.accelerator=cpu",
        ],
        method=method,
        seed=1,
    )


def in_loop(method_name: str, batches: int, warmup: int) -> tuple[float, float]:
    """Median in-loop step seconds and mean loop seconds per batch (after `warmup` batches)."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback

    from gflowout.checkpoint import checkpoint_metadata
    from gflowout.train import build_trainer
    from gflowout.training.build import build_datamodule, build_method_for, dataset_shape
    from gflowout.training.module import MethodModule

    config = _config(method_name, batches)
    pl.seed_everything(1, verbose=False)
    datamodule = build_datamodule(config.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    train_size = len(datamodule.train_dataloader().dataset)
    classes, shape = dataset_shape(datamodule, config.data)
    method = build_method_for(config, classes, shape, dataset_size=train_size)
    module = MethodModule(method, config, datamodule, checkpoint_metadata(config, classes, shape, train_size))
    timer = BatchTimer()
    hooks = type(
        "Timer",
        (Callback,),
        {
            "on_train_batch_start": lambda self, *a: timer.on_train_batch_start(),
            "on_train_batch_end": lambda self, *a: timer.on_train_batch_end(),
        },
    )()
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trainer(config, Path(out), limit_val_batches=0)
        trainer.callbacks.append(hooks)
        trainer.fit(module)
    steps = [end - start for start, end in zip(timer.starts[warmup:], timer.ends[warmup:])]
    loop = (timer.starts[-1] - timer.starts[warmup]) / (len(timer.starts) - 1 - warmup)
    return statistics.median(steps), loop


def bare(method_name: str, batches: int, warmup: int) -> float:
    """Median seconds of `train_step` on the same MNIST batches (in memory)."""
    import lightning.pytorch as pl

    from gflowout.training.build import build_datamodule, build_method_for, dataset_shape

    config = _config(method_name, batches)
    pl.seed_everything(1, verbose=False)
    datamodule = build_datamodule(config.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    classes, shape = dataset_shape(datamodule, config.data)
    method = build_method_for(config, classes, shape, dataset_size=len(loader.dataset))
    optimizers = method.make_optimizers({name: block.spec_overrides() for name, block in config.group_optim().items()})
    data = [(x, y) for x, y in loader]
    times = []
    for x, y in data:
        started = time.process_time()
        method.train_step(x, y, optimizers)
        times.append(time.process_time() - started)
    return statistics.median(times[warmup:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="gflowout,mc_dropout")
    parser.add_argument("--batches", type=int, default=210, help="batches per measurement (a checkpoint every 200)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from gflowout.experiments.benchmark import quiet_lightning

    quiet_lightning()
    print(
        f"torch {torch.__version__}, 1 thread, CPU clock, {args.batches} batches of 128, fastest of {args.repeats} "
        f"rounds, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for name in args.methods.split(","):
        rounds = [
            (bare(name, args.batches, args.warmup), *in_loop(name, args.batches, args.warmup))
            for _ in range(args.repeats)
        ]
        b, step, loop = (min(r[i] for r in rounds) for i in range(3))
        print(
            f"{name:12s} bare {b * 1e3:6.1f} ms | in-loop step {step * 1e3:6.1f} ms ({step / b:.2f}x) | "
            f"loop per batch {loop * 1e3:6.1f} ms ({loop / b:.2f}x)"
        )


if __name__ == "__main__":
    main()
