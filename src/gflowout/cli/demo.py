"""`gflowout demo [--out DIR]`: GFlowOut against MC dropout (and ID-GFlowOut) on real MNIST in minutes.

Trains each method for a short budget through the harness, evaluates it on clean, randomly rotated and
MNIST-C-style test images and on OOD detection (Fashion-MNIST / Animal-MNIST, those fetched), prints a
comparison table and writes the report (Markdown, figures, one HTML page) to DIR.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gflowout.cli.arguments import positive_int

if TYPE_CHECKING:
    from gflowout.experiments.benchmark import BenchmarkConfig

DEFAULT_OUT = "gflowout-demo"
DEMO_CONFIG = "demo_mnist.yaml"

EXPLANATION = """\
How to read it: accuracy / NLL / ECE on the clean test images (higher accuracy, lower NLL and ECE are
better); "rotated acc" under the paper's random rotation (0-360 degrees) and "shifted acc" averaged over
the MNIST-C-style corruptions: both measure robustness to distribution shift. "AUROC <set>" is how well
the predictive entropy separates MNIST test images from that OOD set (1 = perfect, 0.5 = chance).
This is a short training budget on a subset of MNIST, not the paper's 200-epoch protocol: absolute
numbers are lower and differences between methods are noisy. The paper's grid: configs/bench_mnist.yaml."""


def find_demo_config(explicit: str | None) -> Path:
    """The demo config: --config, else configs/demo_mnist.yaml in the current folder or the source checkout."""
    from gflowout.errors import ConfigError

    if explicit:
        return Path(explicit)
    candidates = [Path("configs") / DEMO_CONFIG, Path(__file__).resolve().parents[3] / "configs" / DEMO_CONFIG]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"demo config {DEMO_CONFIG} not found in {[str(c) for c in candidates]}; "
        "pass --config PATH (the repository's configs/demo_mnist.yaml)"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="train GFlowOut and MC dropout on real MNIST for a few minutes, compare them, write a report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: ./{DEFAULT_OUT})")
    parser.add_argument("--config", default=None, help="demo config (default: configs/demo_mnist.yaml)")
    parser.add_argument("--root", default=None, help="data folder (default: GFLOWOUT_DATA or the cache)")
    parser.add_argument("--methods", default=None, help="comma-separated methods (default: the config's)")
    parser.add_argument(
        "--epochs", type=positive_int, default=None, help="training epochs per method (default: the config's)"
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch threads (default: 1 on a machine with <= 2 cores, else cores - 1)",
    )
    parser.set_defaults(func=run)


def count_stages(bench: BenchmarkConfig) -> int:
    """Progress units of one run: training plus each evaluation condition."""
    from gflowout.eval.evaluate import DEFAULT_OOD

    settings = bench.evaluation
    if isinstance(settings.shifts, dict):
        shifted = sum(len(levels) for levels in settings.shifts.values())
    elif settings.shifts is None:
        shifted = 15 * len(settings.severities)
    else:
        shifted = len(settings.shifts) * len(settings.severities)
    ood = len(settings.ood_sets) if settings.ood_sets is not None else len(DEFAULT_OOD.get("mnist", ()))
    return (
        1
        + 1
        + int(settings.temperature_scaling)
        + int(settings.random_rotation)
        + sum(1 for angle in settings.rotation_angles if float(angle) % 360 != 0)
        + shifted
        + ood
    )


def fetch_missing(bench: BenchmarkConfig, root: str | None) -> None:
    """Fetch the demo's data sets that are not there yet (verified by checksum), so run by itself it needs no
    `make data` first. The training set must arrive; an OOD set that cannot be fetched is left out, loudly."""
    from gflowout.data.sources import fetch
    from gflowout.errors import DataError
    from gflowout.eval.evaluate import DEFAULT_OOD
    from gflowout.experiments.grid_check import _missing_data

    trained = sorted(set(bench.datasets or ["mnist"]))
    explicit = bench.evaluation.ood_sets
    ood = sorted(
        {o for name in trained for o in (explicit if explicit is not None else DEFAULT_OOD.get(name, ()))}
        - set(trained)
    )
    for name in trained + ood:
        if _missing_data(name, root) is None:
            continue
        print(f"  fetching {name} (not in the data folder yet)")
        try:
            fetch(name, root, log=lambda message: None)
        except DataError as error:
            if name in trained:
                raise
            print(f"  OOD detection against {name} is left out of this demo: it could not be fetched ({error})")
            continue
        if _missing_data(name, root) is not None and name not in trained:
            print(f"  OOD detection against {name} is left out of this demo: only a fallback of it could be fetched")


def run(args: argparse.Namespace) -> int:
    from gflowout.eval.report import summary_table
    from gflowout.experiments.benchmark import load_benchmark_config, quiet_lightning, run_benchmark, set_threads
    from gflowout.experiments.progress import ProgressBar

    started = time.perf_counter()
    quiet_lightning()
    set_threads(args.threads)
    bench = load_benchmark_config(find_demo_config(args.config))
    if args.methods:
        bench.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.epochs is not None:
        bench.overrides.append(f"trainer.max_epochs={args.epochs}")
    from gflowout.writable import writable_folder

    out = writable_folder(args.out, "output folder", "--out")
    fetch_missing(bench, args.root)
    runs = bench.runs()
    print(f"gflowout demo: {', '.join(bench.methods)} on MNIST (short budget), results and report in {out}/")
    if list((out / "results").glob("*.json")):
        print(f"  reusing the finished runs already in {out}/results (delete {out} to start afresh)")
    per_run = count_stages(bench)
    bar = ProgressBar(len(runs) * per_run)
    state = {"finished": 0, "busy": False}

    def progress(identity: str, stage: str) -> None:
        """A stage starts: the previous one of this run is complete; "done" closes the run's units."""
        method = identity.split("__")[1] if "__" in identity else identity
        if stage == "done":
            state["finished"] += 1
            state["busy"] = False
            bar.advance(f"{method}: done", units=max(state["finished"] * per_run - bar.done, 0))
        elif state["busy"]:
            bar.advance(f"{method}: {stage}")
        else:
            state["busy"] = True
            bar.note(f"{method}: {stage}")

    run_benchmark(bench, out, root=args.root, log=lambda message: None, progress=progress)
    bar.close()
    print()
    print(summary_table(out / "results"))
    print()
    print(EXPLANATION)
    print()
    print(f"Report: {(out / 'report' / 'report.html').resolve()} (and report.md, figures/)")
    print(f"Results (one JSON per run): {(out / 'results').resolve()}")
    print(f"Demo finished in {time.perf_counter() - started:.0f} s; output folder: {out.resolve()}")
    return 0
