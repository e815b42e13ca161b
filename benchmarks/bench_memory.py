"""Benchmark (not a test): peak memory of every method's training and prediction, as ratios to MC dropout.

The evidence grid (configs/evidence_mnist.yaml) records wall times but not memory, so this measures it on the
same model and batches: the paper's MNIST MLP 784-1024x3-10, training batches of 128 (Adam, the method's own
optimisers and parameter groups, as `gflowout train` builds them from configs/mnist_mlp.yaml) and prediction
batches of 500 inputs x S = 20 samples (the grid's evaluation batch). A deep ensemble predicts its M = 5
members.

Each method runs in a fresh Python process, so one method's freed memory cannot hide another's peak. Two
figures per method, from the process's peak resident set (`ru_maxrss`), each minus the resident set right
after gflowout is imported, the config read and the batches made (the interpreter, torch, Lightning and the
data, the same for all):
  - train: after building the method and `--steps` training steps;
  - train + predict: after `--predicts` predictions on top (the peak of the whole run).
Resident memory counts what the allocator holds, so the figures are upper bounds of what the tensors need;
their ratios to MC dropout are what compares the methods.

    .venv/bin/python benchmarks/bench_memory.py [--steps 5] [--predicts 2] [--methods gflowout,ensemble]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

METHODS = ["none", "mc_dropout", "concrete", "contextual", "gflowout", "id_gflowout", "ensemble"]


def peak_mib() -> float:
    """This process's peak resident set so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(method_name: str, steps: int, predicts: int) -> dict[str, float]:
    """Build `method_name` on the paper's MLP as the harness does, train and predict; peak memory in MiB."""
    import torch

    from gflowout.config import load_config
    from gflowout.training.build import build_method_for

    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    train_x = torch.rand(128, 1, 28, 28, generator=generator)
    train_y = torch.randint(0, 10, (128,), generator=generator)
    predict_x = torch.rand(500, 1, 28, 28, generator=generator)
    config = load_config("configs/mnist_mlp.yaml", method=method_name)
    baseline = peak_mib()
    torch.manual_seed(0)
    method = build_method_for(config, 10, (1, 28, 28), 42000)
    optimizers = method.make_optimizers({name: block.spec_overrides() for name, block in config.group_optim().items()})
    parameters_mib = sum(p.numel() * p.element_size() for p in method.parameters()) / 2**20
    for _ in range(steps):
        method.train_step(train_x, train_y, optimizers)
    train_peak = peak_mib() - baseline
    samples = method.prediction_samples(20)
    with torch.no_grad():
        for _ in range(predicts):
            method.predict(predict_x, samples=samples)
    return {
        "parameters_mib": parameters_mib,
        "train_mib": train_peak,
        "peak_mib": peak_mib() - baseline,
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--predicts", type=int, default=2)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated method names")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.steps, args.predicts)))
        return
    names = [name.strip() for name in args.methods.split(",") if name.strip()]
    if "mc_dropout" not in names:
        names.insert(0, "mc_dropout")
    results = {}
    for name in names:
        command = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--steps",
            str(args.steps),
            "--predicts",
            str(args.predicts),
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(output.strip().splitlines()[-1])
    reference = results["mc_dropout"]
    print(
        f"MNIST MLP 784-1024x3-10, {args.steps} training steps of batch 128, {args.predicts} predictions of "
        f"500 inputs x S samples, 1 thread; MiB above the process's start"
    )
    print(f"{'method':14s} {'weights':>8s} {'train':>8s} {'x MC':>6s} {'+predict':>9s} {'x MC':>6s} {'S':>3s}")
    for name, row in results.items():
        print(
            f"{name:14s} {row['parameters_mib']:8.1f} {row['train_mib']:8.1f} "
            f"{row['train_mib'] / reference['train_mib']:6.2f} {row['peak_mib']:9.1f} "
            f"{row['peak_mib'] / reference['peak_mib']:6.2f} {row['samples']:3d}"
        )


if __name__ == "__main__":
    main()
