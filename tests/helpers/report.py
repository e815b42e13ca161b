"""A small fixture of result files for the report tests: one real result, perturbed into methods x seeds.

`bench_tiny_result.json` is one run of `configs/bench_tiny.yaml` (gflowout, seed 1). `fixture_runs` copies
it for several methods and seeds, adding each method a known offset (a clear difference) and each seed
small seeded noise, so the tests know which method is best in a column and which differences are real.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

TEMPLATE = Path(__file__).resolve().parents[1] / "eval" / "data" / "bench_tiny_result.json"
METHODS = ("gflowout", "mc_dropout", "none")
SEEDS = (1, 2, 3)
# Per method, offsets added to a metric in every condition (clean, rotation, shifts, sweep): clear differences.
OFFSETS: dict[str, dict[str, float]] = {
    "gflowout": {"accuracy": 0.05, "ece15": -0.01},
    "mc_dropout": {"accuracy": 0.0, "ece15": 0.0},
    "none": {"accuracy": 0.10, "ece15": 0.02},
}
NOISE = {"accuracy": 0.002, "ece15": 0.001, "nll": 0.05, "brier": 0.001, "ece10": 0.001}


def template() -> dict[str, Any]:
    return json.loads(TEMPLATE.read_text())


def _perturb(metrics: dict[str, Any], method: str, rng: np.random.Generator) -> None:
    for key in list(metrics):
        if metrics[key] is None:
            continue
        offset = OFFSETS.get(method, {}).get(key, 0.0)
        metrics[key] = float(metrics[key]) + offset + rng.normal(0.0, NOISE.get(key, 0.0))


def fixture_run(method: str, seed: int, offsets_seed: int = 0) -> dict[str, Any]:
    """The template as a run of `method` with `seed`: offsets of OFFSETS plus seeded noise."""
    run = template()
    rng = np.random.default_rng([offsets_seed, seed, *method.encode()])
    run.update(method=method, seed=seed, run_id=f"mnist__{method}__seed{seed}")
    run["config"]["method"]["name"] = method
    run["config"]["seed"] = seed
    conditions = [
        run["clean"],
        run["random_rotation"],
        *run["rotation_sweep"].values(),
        *(m for levels in run["shifts"].values() for m in levels.values()),
    ]
    for metrics in conditions:
        _perturb(metrics, method, rng)
    for scores in run["ood"].values():
        for values in scores.values():
            values["auroc"] = float(np.clip(values["auroc"] + rng.normal(0.0, 0.01), 0.0, 1.0))
    run["train_time_s"] = {"gflowout": 20.0, "mc_dropout": 10.0, "none": 5.0}.get(method, 1.0) + seed * 0.1
    run["eval_time_s"] = 1.0
    return run


def fixture_runs(methods: Sequence[str] = METHODS, seeds: Sequence[int] = SEEDS) -> list[dict[str, Any]]:
    return [fixture_run(method, seed) for method in methods for seed in seeds]


def write_runs(folder: Path, runs: Sequence[Mapping[str, Any]]) -> Path:
    from gflowout.results import write_json_atomic

    for run in runs:
        write_json_atomic(folder / f"{run['run_id']}.json", dict(run))
    return folder
