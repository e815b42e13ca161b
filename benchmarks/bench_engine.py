"""Speed of the GFlowOut engine on the paper's MNIST MLP (784-1024-1024-1024-10), as ratios within one run.

    .venv/bin/python benchmarks/bench_engine.py [--repeats 5] [--threads 2] [--clock wall|cpu]
        [--only all|steps|predict]

Measures (issue 3, targets for a 2-core CPU in brackets):
* one training step at batch 128 (`train_step`: losses, one backward, every optimiser steps):
  GFlowOut vs MC dropout (same backbone, same site rescaling) [<= 1.4x], MC dropout vs no dropout [<= 1.15x];
* `predict(x, samples=20)` vs a mask-free forward of the same 20x batch (the compute floor) [<= 1.3x at
  batch 128], and vs a loop of 20 single-sample predictions [>= 2x faster at batch 1], at batch 1, 8, 128.

The machine is shared and noisy, so each figure is the fastest of `repeats` interleaved rounds (the
round least disturbed by other processes, as `timeit` advises) and only ratios measured in the same
run are compared. With other processes busy on both cores, 2-thread timings fall apart (threads
wait on each other); the script prints the load average so such a run can be recognised, and
`--threads 1` gives stable ratios on a busy machine. Inputs are random MNIST-shaped tensors:
speed does not depend on the pixel values.

Measured on the 2-core development machine, 2026-12-01 13:45-13:50 UTC, torch 2.13.0, an idle machine
(load < 0.5; `--threads 2 --repeats 7`, then `--threads 1 --clock cpu --repeats 7`), at commit 9fa53d5
(one autograd node per mask site). Runs minutes apart differ by ~5 % (MC's own step: 13.7-16.0 ms), so
ranges over this session's runs are given:
  2 threads: GFlowOut step / MC 1.56-1.67x (23.0-26.8 vs 14.1-16.0 ms; target 1.40 NOT met), ID-GFlowOut
             / MC 1.20-1.24x, MC / none 1.07-1.10x (target 1.15 met); predict(20) / mask-free at batch 128:
             GFlowOut 1.25-1.29x, ID-GFlowOut 1.24-1.26x (target 1.30 met, at the edge of the noise; later,
             `--repeats 3 --only predict` alternated between this code at 9fa53d5 and at the end of the day:
             1.28-1.32x vs 1.25-1.38x, the noise of 3 rounds; the end-of-day code compares every copy's
             first-site activation before sharing the prior, 0.65 ms of ~100); loop
             of 20 / predict 8.4-10.6x at batch 1 (target 2 met), 3.7-4.3x at batch 8.
  1 thread:  GFlowOut step / MC 1.43-1.53x (33.6-37.0 vs 23.2-24.2 ms), ID-GFlowOut / MC 1.17-1.25x.
With one autograd node per trajectory (`methods/trajectory_policy.py`), 2026-12-01 14:47-14:53 UTC
(load 0.5-1.1), `--threads 2 --repeats 7 --only steps` run alternately on 9fa53d5 and on this code:
GFlowOut / MC 1.63x, 1.67x before vs 1.55x, 1.60x after (four more runs after: 1.57-1.62x; 21.7-24.9 vs
13.6-15.8 ms). A/B in one process (9fa53d5's per-site sampler, loaded from that commit's
site_policy.py, this sampler and MC's step alternated, 9-15 rounds of 10 steps, fastest round; a
script outside the repository; five runs 14:47-14:57 UTC): 2 threads old/MC 1.61-1.69x, new/MC
1.54-1.59x, new/old 0.94-0.98 (0.5-1.6 ms a step less); 1 thread (CPU clock) old/MC 1.45-1.48x,
new/MC 1.45-1.47x, new/old 0.99-1.00: no gain at 1 thread. Target 1.40 still NOT met.
Where GFlowOut's step time goes (9fa53d5, 1 thread, profiled; +10-11 ms over MC): the generators' matmuls ~4 ms,
already at this CPU's ~90 GFLOP/s on thin shapes (about 350 MFLOP a step: the paper's six 32-wide
generators on 1024-wide sites, ~16 % of the backbone's arithmetic); the log-probabilities, sampling and
other [2, 128, 1024] passes ~1.5 ms; Python and dispatch of ~570 generator ops a step ~1.8 ms (measured
with tiny tensors); the two extra optimisers ~0.9 ms; the rest log Z, logs and colder caches. At 2
threads the backbone's large matmuls speed up ~1.7x but the generators' share only ~1.3x, so the
ratio is worse there. After the trajectory node (2 threads, the generators alone on recorded site
activations): per-site posterior and draws 2.5 ms, prior and log-probabilities of all sites 0.8 ms,
backward 2.9 ms (first-layer weight gradients 1.4, branch tails 0.4, the rest 1.1); with tiny tensors
(dispatch and Python only) 1.7 ms against 1.9-2.0 ms for the per-site nodes. Top-level ATen ops per
GFlowOut step: 777 (old 772, MC 117): far fewer matmuls, sums, cats and LayerNorm backwards (mm 40 -> 15,
cat 28 -> 10), but ~140 cheap `select` views of stacked tensors instead.
What helped: one autograd node per trajectory (`methods/trajectory_policy.py`: the posterior per site,
the prior batched over sites after the pass, both log-probabilities in one pass over stacked
[2, sites, batch, width] logits, a backward batched over sites), ~1 ms a step at 2 threads, and only
with its big arrays in a reused per-thread arena: allocated fresh, they cost ~4300 minor page faults
(~3 ms) a step and the node was SLOWER than the per-site one (28.9 vs 25.6 ms). Before that: one
autograd node per site with a hand-written backward (A/B in one process 1.46-1.51x -> 1.43-1.47x at 1
thread, within the noise at 2); Bernoulli log-probabilities as sum of min(t, 0) plus the log of
products of 64 sigmoid(|t|) factors (sigmoid is ~5x cheaper than softplus here; same float32 error);
earlier: 16-bit mask draws, the block projection's custom backward.
Tried and measured without a useful gain: `torch.compile` of one site's generators (6.9 -> 6.5 ms per
step in isolation, 21 s to compile) and of all three sites' generators with autograd (module path,
forward + backward at 2 threads: 6.3 ms eager, 8.7 ms compiled: slower), one flat Adam per generator
group (-0.8 ms at 1 thread, none at 2), glibc malloc thresholds for the per-site node (MALLOC_MMAP_ and
MALLOC_TRIM_THRESHOLD_ high: its 140-720 minor page faults a step went to ~0, the time did not move
beyond the noise), other matmul
layouts (within noise), merged posterior/prior output layers as one wide product (slower at 1 thread);
TorchScript for the small ops (4.7 -> 4.0 us per op on [128, 32] tensors: the cost is ATen's, not
Python's). With the trajectory node (A/B in one process, 2 threads): one forward product per mask over
the stacked first-layer columns of all later sites and both generators was ~0.4 ms a step SLOWER than
one [.., 32]-wide product per consumer (5 % faster at 1 thread; dropped); first-layer weight gradients
written straight into each parameter's gradient (12 products, no cat) instead of one product per input
block: no difference (25.37 vs 25.41 ms; kept the fewer ops); the prior per site instead of batched
over sites: 0.1-0.7 ms slower at 2 threads, 0.3 ms at 1 (kept batched). Reaching 1.4x at 2 threads
would need the generator work to use the second core as well as the backbone's matmuls do, or far
fewer generator flops.
Where predict's overhead went: at S = 20 x 128 every full-size [2560, 1024] temporary costs ~2-3 ms
in the real pass (page faults of fresh memory, DRAM traffic), more than its arithmetic. Drawing masks
in place (sign of p - v 2^-16 with a reused scratch buffer), numpy SFC64 random words (~2x faster than
`random_`), and writing the prior's logits into reused per-site buffers took GFlowOut's predict from
1.31-1.41x to 1.25x at 2 threads. (With glibc told to keep freed memory, MALLOC_TRIM_THRESHOLD_ and
MALLOC_MMAP_THRESHOLD_ set high, the old code measured 1.22x at 1 thread: the same effect, process-wide.)
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Callable

import torch

from gflowout.methods.base import DropoutMethod
from gflowout.methods.gflowout import GFlowOut
from gflowout.methods.id_gflowout import IDGFlowOut
from gflowout.nets.mlp import MLP


def baseline_methods(net: MLP) -> tuple[DropoutMethod, DropoutMethod]:
    """MC dropout (site rescaling, as GFlowOut) and no dropout, from the baselines when they are there."""
    from gflowout.methods.mc import MCDropout
    from gflowout.methods.none import NoDropout

    return MCDropout(copy.deepcopy(net), keep_prob=0.5, scaling="site"), NoDropout(copy.deepcopy(net))


CLOCK: Callable[[], float] = time.perf_counter  # `--clock cpu` switches to this process's CPU time


def seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    """Mean time (wall, or CPU with `--clock cpu`) of `calls` calls after one warm-up call."""
    fn()
    start = CLOCK()
    for _ in range(calls):
        fn()
    return (CLOCK() - start) / calls


def fastest_times(candidates: dict[str, Callable[[], object]], calls: int, repeats: int) -> dict[str, float]:
    """Fastest of `repeats` rounds; within a round every candidate runs back to back (interleaved)."""
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            samples[name].append(seconds_per_call(fn, calls))
    return {name: min(values) for name, values in samples.items()}


def bench_steps(net: MLP, batch: int, calls: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    mc, none = baseline_methods(net)
    methods = {
        "gflowout": GFlowOut(copy.deepcopy(net)),
        "id_gflowout": IDGFlowOut(copy.deepcopy(net), dataset_size=42000),
        "mc_dropout": mc,
        "none": none,
    }
    optimizers = {name: m.make_optimizers() for name, m in methods.items()}
    steps = {name: (lambda m=m, o=optimizers[name]: m.train_step(x, y, o)) for name, m in methods.items()}
    return fastest_times(steps, calls, repeats)


def bench_predict(method: DropoutMethod, batch: int, samples: int, calls: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    x = torch.rand(batch, 1, 28, 28)
    expanded = x.repeat(samples, 1, 1, 1)

    @torch.no_grad()
    def mask_free() -> torch.Tensor:
        return method.net(expanded, None)

    def loop() -> list[torch.Tensor]:
        return [method.predict(x, samples=1) for _ in range(samples)]

    method.eval()
    candidates = {"predict": lambda: method.predict(x, samples=samples), "mask_free": mask_free, "loop": loop}
    return fastest_times(candidates, calls, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; the fastest is reported")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--step-calls", type=int, default=10)
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: this process's CPU time (steadier on a busy machine; with --threads 1 only, as it sums the threads)",
    )
    parser.add_argument("--only", choices=("all", "steps", "predict"), default="all", help="run one part only")
    args = parser.parse_args()
    global CLOCK
    if args.clock == "cpu":
        CLOCK = time.process_time
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = MLP()

    print(
        f"torch {torch.__version__}, {args.threads} threads, {args.repeats} rounds (fastest), {args.clock} clock, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    if args.only != "predict":
        report_steps(net, args)
    if args.only != "steps":
        report_predict(net, args)


def report_steps(net: MLP, args: argparse.Namespace) -> None:
    step = bench_steps(net, 128, args.step_calls, args.repeats)
    print("\ntraining step, batch 128 (ms):", ", ".join(f"{k} {1e3 * v:.1f}" for k, v in step.items()))
    print(f"  GFlowOut / MC dropout    = {step['gflowout'] / step['mc_dropout']:.2f}x   (target <= 1.40)")
    print(f"  ID-GFlowOut / MC dropout = {step['id_gflowout'] / step['mc_dropout']:.2f}x")
    print(f"  MC dropout / no dropout  = {step['mc_dropout'] / step['none']:.2f}x   (target <= 1.15)")


def report_predict(net: MLP, args: argparse.Namespace) -> None:
    for name, method in (
        ("GFlowOut", GFlowOut(copy.deepcopy(net))),
        ("ID-GFlowOut", IDGFlowOut(copy.deepcopy(net), dataset_size=42000)),
    ):
        print(f"\n{name} predict(samples=20) (ms):")
        for batch, calls in ((1, 20), (8, 10), (128, 2)):
            t = bench_predict(method, batch, 20, calls, args.repeats)
            print(
                f"  batch {batch:>3}: predict {1e3 * t['predict']:7.1f}, "
                f"mask-free 20x batch {1e3 * t['mask_free']:7.1f}, "
                f"loop of 20 {1e3 * t['loop']:7.1f} | predict / mask-free = {t['predict'] / t['mask_free']:.2f}x"
                f" (target <= 1.30 at 128), loop / predict = {t['loop'] / t['predict']:.2f}x (target >= 2 at batch 1)"
            )


if __name__ == "__main__":
    main()
