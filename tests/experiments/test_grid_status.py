"""`gflowout benchmark --status`: every run of a grid in the grid's order with the worker that runs it and what
its output folder holds (a result made with this grid's settings or with others, a finished training, a last
checkpoint's epoch, nothing), read without training or writing anything."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

from gflowout.cli.main import main
from gflowout.experiments import benchmark
from gflowout.experiments.benchmark import load_benchmark_config
from gflowout.experiments.benchmark_config import run_config
from gflowout.experiments.grid_status import grid_status, status_text
from gflowout.experiments.reevaluate import TRAINED_MARKER
from gflowout.results import SCHEMA_VERSION, write_json_atomic
from gflowout.training.resume import settings_digest
from tests.experiments.test_runner_grid import write_bench


def result_for(bench, position: int, digest: str | None = None, all_sessions: bool = True) -> dict:
    spec = bench.runs()[position]
    config = run_config(bench, spec)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"mnist__{spec.method}__seed{spec.seed}",
        "method": spec.method,
        "seed": spec.seed,
        "dataset": "mnist",
        "settings_digest": digest or benchmark.run_digest(config, bench.evaluation),
        "train_time_s": 3720.0,
        "train_time_all_sessions": all_sessions,
        "eval_time_s": 300.0,
        "clean": {"accuracy": 0.98125, "nll": 0.0655, "brier": 0.03, "ece15": 0.01, "ece10": 0.01},
    }


def test_each_run_says_what_its_folder_holds(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    bench = load_benchmark_config(write_bench(tmp_path))  # mc_dropout, none x seeds 1-3 (seed-major)
    out = tmp_path / "out"
    write_json_atomic(out / "results" / "mnist__mc_dropout__seed1.json", result_for(bench, 0))
    write_json_atomic(out / "results" / "mnist__none__seed1.json", result_for(bench, 1, digest="other"))
    write_json_atomic(
        out / "runs" / "mnist__mc_dropout__seed2" / TRAINED_MARKER,
        {"train_time_s": 1.0, "config_digest": settings_digest(config=run_config(bench, bench.runs()[2]).to_dict())},
    )
    checkpoint = out / "runs" / "mnist__none__seed2" / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    torch.save({"epoch": 76, "global_step": 25_000, "state_dict": {}}, checkpoint)
    (checkpoint.parent.parent / "config.yaml").write_text(yaml.safe_dump(run_config(bench, bench.runs()[3]).to_dict()))
    (out / "runs" / "mnist__mc_dropout__seed3").mkdir()  # killed before its first checkpoint
    statuses = grid_status(bench, out, workers=2)
    assert [(s.run_id, s.worker, s.state) for s in statuses] == [
        ("mnist__mc_dropout__seed1", 1, "done"),
        ("mnist__none__seed1", 2, "stale"),
        ("mnist__mc_dropout__seed2", 1, "evaluating"),
        ("mnist__none__seed2", 2, "training"),
        ("mnist__mc_dropout__seed3", 1, "training"),
        ("mnist__none__seed3", 2, "not started"),
    ]
    assert statuses[0].detail == "accuracy 0.9812, NLL 0.0655; training 1h02m, evaluation 5m"
    assert "other settings than this grid's" in statuses[1].detail
    assert statuses[3].detail.startswith("last checkpoint in epoch 77 of ")  # Lightning counts epochs from 0
    assert "optimiser step 25,000" in statuses[3].detail
    assert "no checkpoint yet" in statuses[4].detail
    text = status_text(statuses, workers=2)
    assert text.splitlines()[0].startswith("worker 1/2  mnist__mc_dropout__seed1  done")
    assert text.splitlines()[-1] == "6 runs: 1 done, 1 stale, 1 evaluating, 2 training, 1 not started"

    write_json_atomic(out / "results" / "mnist__mc_dropout__seed1.json", result_for(bench, 0, all_sessions=False))
    assert "training 1h02m (its last session only)" in grid_status(bench, out)[0].detail
    older = result_for(bench, 0)
    del older["train_time_all_sessions"]  # written before gflowout recorded it
    write_json_atomic(out / "results" / "mnist__mc_dropout__seed1.json", older)
    assert "training 1h02m (may count only its last session)" in grid_status(bench, out)[0].detail
    (out / "results" / "mnist__mc_dropout__seed1.json").write_text("{")
    assert grid_status(bench, out)[0].state == "stale"  # unreadable: the grid would stop at it

    before = sorted(p for p in tmp_path.rglob("*"))
    assert main(["benchmark", "--config", str(tmp_path / "bench.yaml"), "--out", str(out), "--status"]) == 0
    printed = capsys.readouterr().out
    assert "worker " not in printed and re.search(r"\nmnist__none__seed3 +not started\n", printed)
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written, nothing trained
    assert (
        main(["benchmark", "--config", str(tmp_path / "bench.yaml"), "--out", str(tmp_path / "new"), "--status"]) == 0
    )
    printed = capsys.readouterr().out
    assert "no such folder yet" in printed and printed.rstrip().endswith("6 runs: 6 not started")
    assert not (tmp_path / "new").exists()
    assert main(["benchmark", "--config", str(tmp_path / "bench.yaml"), "--status", "--keep-going"]) == 2
    assert "--status only reads the output folder; leave out --keep-going" in capsys.readouterr().err


def test_runs_the_grid_would_refuse_are_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    bench = load_benchmark_config(write_bench(tmp_path))
    runs = tmp_path / "out" / "runs"
    write_json_atomic(runs / "mnist__mc_dropout__seed1" / TRAINED_MARKER, {"config_digest": "another config"})
    other = run_config(bench, bench.runs()[1]).to_dict()
    other["data"]["batch_size"] = 7
    (runs / "mnist__none__seed1").mkdir()
    (runs / "mnist__none__seed1" / "config.yaml").write_text(yaml.safe_dump(other))
    (runs / "mnist__mc_dropout__seed2" / "checkpoints").mkdir(parents=True)
    (runs / "mnist__mc_dropout__seed2" / "checkpoints" / "last.ckpt").write_bytes(b"truncated")
    statuses = grid_status(bench, tmp_path / "out")
    assert [s.state for s in statuses[:3]] == ["stale"] * 3
    assert statuses[0].detail.startswith("trained with another config; the grid stops at it: delete ")
    assert statuses[1].detail.startswith("it was started with another config; the grid stops at it")
    assert statuses[2].detail.startswith("last checkpoint unreadable (")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
    assert main(["benchmark", "--config", str(tmp_path / "bench.yaml"), "--status"]) == 2  # an error, no traceback
