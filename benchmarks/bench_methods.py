"""Benchmark (not a test): one training step and predict(samples=20) of every method, as ratios to MC dropout.

Same backbone and batch for every method:
  - MNIST-sized MLP 784-1024-1024-1024-10, training batch 128, prediction batch 128 x 20 samples;
  - CIFAR-sized CifarResNet18 (all 8 sites), training batch 32, prediction batch 8 x 20 samples
    (small enough for a few minutes on 2 CPU cores).
Methods are timed round-robin (one repetition of each in turn), so a slow spell of the shared
machine hits every method alike; the median over repetitions is reported.

    .venv/bin/python benchmarks/bench_methods.py [--threads 2] [--repeats 7] [--clock wall|cpu] [--skip-mlp]
        [--skip-resnet]
        [--methods contextual,concrete]

On a busy shared machine, `--threads 1 --clock cpu` gives the steadiest ratios.

Target (issue 4): Concrete and Contextual training steps within 1.5x of MC dropout's.

Measured 2026-12-01, torch 2.13.0 CPU, shared 2-core machine (ratios move by a few hundredths between runs):
    .venv/bin/python benchmarks/bench_methods.py --threads 1 --clock cpu --skip-resnet --repeats 7
  MLP step vs MC: Concrete 1.16-1.22x, Contextual-Gaussian 1.31-1.37x (both met); Contextual-Bernoulli (ARM)
  1.68-1.74x over five runs of this command, 1.65-1.71x with `--methods contextual`: NOT met. Before the
  hand-written ARM gradient and the resumed pseudo pass (commits 22a1179..5e85e94): 1.89x with this
  command, 1.81-2.00x with `--methods contextual` (45.7-50.9 ms a step; now 39.5-42.9 ms, MC 23.3-25.3 ms).
  Timing the ARM and MC steps alone, interleaved, without the predictions in between: 1.66-1.67x.
  Later, after the ARM estimator scored the later sites' KL too (the kl_weight > 0 bias fix; one KL per
  later site on the pseudo pass): ARM 1.75x (--repeats 5), 1.71x (--repeats 7 --methods concrete,contextual),
  Concrete 1.29x and 1.20x, Gaussian 1.36x and 1.34x in the same two runs.
  Without --skip-resnet (ResNet-18, 3 repetitions): ARM 1.37x (1.39x before and after in a 5-repetition
  `--skip-mlp --methods contextual` A/B), Concrete 1.01x, Gaussian 1.02x.
Why ARM stays above 1.5x on the MLP: its estimator needs a second (pseudo) forward pass through hidden
layers 2-3 (~4.7 ms of matrix products at one thread) and five bottleneck evaluations (three real sites,
two pseudo: site 0 reuses the real logits), each forward and backward (~6.6 ms of thin [128, 1024] x
[1024, 102] products, already at this CPU's ~100 GFLOP/s), against ~19 ms of matrix products in MC's
whole ~24.5 ms step: these products alone give ~1.46x. The second optimiser (~0.55 ms), the KL and masks
(~1.5 ms) and slower products inside a full step than alone (cold caches, ~2 ms) give the ~1.65-1.7x.
Reaching 1.5x needs fewer products, i.e. another estimator. By FLOP count the same holds: MC's step is
~2.0 GFLOP (forward 0.75, backward 1.29); ARM adds the pseudo pass (0.54) and the five bottleneck
evaluations (~0.13 each forward and backward: 0.67), ~1.6x MC's arithmetic.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from collections.abc import Callable

import torch

from gflowout.methods import method_class
from gflowout.methods.base import DropoutMethod
from gflowout.nets.base import MaskedNet
from gflowout.nets.mlp import MLP
from gflowout.nets.resnet import CifarResNet18

METHODS: list[tuple[str, str, dict]] = [
    ("none", "none", {}),
    ("mc_dropout", "mc_dropout", {}),
    ("concrete", "concrete", {}),
    ("contextual (bernoulli, ARM)", "contextual", {"variant": "bernoulli"}),
    ("contextual (gaussian)", "contextual", {"variant": "gaussian"}),
    ("gflowout", "gflowout", {}),
    ("id_gflowout", "id_gflowout", {}),
]
DATASET_SIZE = 42000


def build(method_name: str, options: dict, net: MaskedNet) -> DropoutMethod | None:
    """The method on `net`, or None (with a note) when it is not available yet."""
    try:
        cls = method_class(method_name)
    except (ImportError, AttributeError) as error:
        print(f"  skip {method_name}: not available ({type(error).__name__}: {error})")
        return None
    options = dict(options)
    if "dataset_size" in inspect.signature(cls).parameters:
        options["dataset_size"] = DATASET_SIZE
    return cls(net, **options)


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def timed(fn: Callable[[], object]) -> float:
    start = clock()
    fn()
    return clock() - start


def run_suite(
    title: str,
    make_net: Callable[[], MaskedNet],
    train_x: torch.Tensor,
    predict_x: torch.Tensor,
    repeats: int,
    selected: set[str] | None = None,
) -> None:
    """Time every method (or only `selected` method names, MC dropout always included as the reference)."""
    print(f"\n== {title}: train batch {train_x.shape[0]}, predict batch {predict_x.shape[0]} x 20 samples ==")
    generator = torch.Generator().manual_seed(0)
    train_y = torch.randint(0, 10, (train_x.shape[0],), generator=generator)
    entries = []
    for label, name, options in METHODS:
        if selected is not None and name not in selected and name != "mc_dropout":
            continue
        torch.manual_seed(0)
        method = build(name, options, make_net())
        if method is None:
            continue
        optimizers = method.make_optimizers()
        method.train_step(train_x, train_y, optimizers)  # warm-up (allocations, lazy state)
        method.predict(predict_x, samples=20)
        entries.append((label, method, optimizers, [], []))
    for _ in range(repeats):
        for _label, method, optimizers, steps, predicts in entries:
            steps.append(timed(lambda: method.train_step(train_x, train_y, optimizers)))
            predicts.append(timed(lambda: method.predict(predict_x, samples=20)))
    medians = {label: (statistics.median(s), statistics.median(p)) for label, _, _, s, p in entries}
    step_mc, predict_mc = medians["mc_dropout"]
    print(f"{'method':30s} {'step ms':>9s} {'x MC':>6s} {'predict ms':>11s} {'x MC':>6s}")
    for label, (step, predict) in medians.items():
        print(f"{label:30s} {step * 1e3:9.1f} {step / step_mc:6.2f} {predict * 1e3:11.1f} {predict / predict_mc:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time, steadier on a shared machine (use with --threads 1)",
    )
    parser.add_argument("--skip-mlp", action="store_true")
    parser.add_argument("--skip-resnet", action="store_true")
    parser.add_argument(
        "--methods",
        default=None,
        help=(
            "comma-separated method names to time (e.g. contextual,concrete); "
            "mc_dropout is always timed as the reference"
        ),
    )
    args = parser.parse_args()
    selected = None if args.methods is None else {name.strip() for name in args.methods.split(",") if name.strip()}
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, "
        f"median of {args.repeats} round-robin repetitions"
    )
    if not args.skip_mlp:
        mlp_batch = torch.rand(128, 1, 28, 28)
        run_suite("MNIST MLP 784-1024x3-10", lambda: MLP(), mlp_batch, mlp_batch, args.repeats, selected)
    if not args.skip_resnet:
        run_suite(
            "CIFAR ResNet-18 (8 sites)",
            lambda: CifarResNet18(),
            torch.randn(32, 3, 32, 32),
            torch.randn(8, 3, 32, 32),
            max(3, args.repeats // 2),
            selected,
        )


if __name__ == "__main__":
    main()
