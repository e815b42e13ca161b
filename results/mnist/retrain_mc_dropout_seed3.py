"""Retrain MC dropout seed 3 of the evidence grid exactly as `gflowout benchmark` did (commit e598adc, one thread),
training only, into a scratch run folder; then check its validation NLL curve against the committed learning.json."""

import csv
import json
import sys
from pathlib import Path

from gflowout.experiments.benchmark import load_benchmark_config, quiet_lightning, run_config, set_threads, train_run
from gflowout.experiments.grid_config import RunSpec

run_dir = Path("/root/gflowout-runs/mnist-retrain/mnist__mc_dropout__seed3")
learning = Path("/work/main/results/mnist/report/learning.json")
if sys.argv[1:] != ["--check-only"]:
    bench = load_benchmark_config("configs/evidence_mnist.yaml")
    config = run_config(bench, RunSpec("mnist", "mc_dropout", 3))
    print("threads", set_threads(1), flush=True)
    quiet_lightning()
    seconds = train_run(config, run_dir, bench.trainer_overrides)
    print(f"trained in {seconds:.1f} s", flush=True)
committed = json.loads(learning.read_text())["runs"]["mnist__mc_dropout__seed3"]["curves"]["val/nll"]
logged: dict[str, float] = {}
for path in sorted(run_dir.glob("logs/version_*/metrics.csv")):
    with path.open() as handle:
        for row in csv.DictReader(handle):
            if row.get("val/nll"):
                logged[row["epoch"]] = float(row["val/nll"])
same = logged == {k: float(v) for k, v in committed.items()}
print(f"validation points: committed {len(committed)}, retrained {len(logged)}; identical: {same}", flush=True)
if not same:
    for epoch in sorted(set(committed) | set(logged), key=int):
        if committed.get(epoch) != logged.get(epoch):
            print(" differs at epoch", epoch, committed.get(epoch), logged.get(epoch))
sys.exit(0 if same else 3)
