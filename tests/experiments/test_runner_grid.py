"""The benchmark grid's bookkeeping with a stand-in for training + evaluation: the grid order, one file per
run, skip on rerun, ETA after the first finished run, --keep-going on a failing run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gflowout.errors import ConfigError, NonFiniteLossError
from gflowout.experiments import benchmark
from gflowout.experiments.benchmark import BenchmarkError, load_benchmark_config, run_benchmark, seconds_left
from gflowout.results import SCHEMA_VERSION, run_id
from tests.helpers.train import REPO


def write_bench(tmp_path: Path) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "config": {"data": {"name": "mnist"}, "model": {"options": {"hidden": [8]}}},
                "methods": ["mc_dropout", "none"],
                "seeds": [1, 2, 3],
                "evaluation": {"samples": 2, "limit": 10},
            }
        )
    )
    return path


def test_grid_order_skip_eta_and_keep_going(tmp_path: Path, monkeypatch):
    calls: list[tuple[str, int]] = []

    def stand_in(config, run_dir, evaluation, log, trainer_overrides, progress):
        calls.append((config.method.name, config.seed))
        assert config.model.options["hidden"] == [8] and evaluation.samples == 2
        if (config.method.name, config.seed) == ("none", 2):
            raise NonFiniteLossError("loss became NaN")
        accuracy = 0.5 + config.seed / 10
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id(config.data.name, config.method.name, config.seed),
            "method": config.method.name,
            "seed": config.seed,
            "settings_digest": benchmark.run_digest(config, evaluation),
            "dataset": config.data.name,
            "train_time_s": 1.0,
            "eval_time_s": 1.0,
            "clean": {"accuracy": accuracy, "nll": 1.0, "brier": 0.5, "ece15": 0.1, "ece10": 0.1},
        }

    monkeypatch.setattr(benchmark, "train_and_evaluate", stand_in)
    bench = load_benchmark_config(write_bench(tmp_path))
    lines: list[str] = []
    with pytest.raises(BenchmarkError, match=r"1 of 6 run\(s\) failed \(mnist__none__seed2: NonFiniteLossError"):
        run_benchmark(bench, tmp_path / "out", log=lines.append, keep_going=True)
    # seed-major: every method's seed 1 first, so a grid stopped part-way compares the methods on the same seeds
    assert calls == [("mc_dropout", 1), ("none", 1), ("mc_dropout", 2), ("none", 2), ("mc_dropout", 3), ("none", 3)]
    assert "ETA" not in lines[0] and "0 done, 6 left" in lines[0]
    assert any("ETA" in line for line in lines[1:])
    files = sorted(p.name for p in (tmp_path / "out" / "results").glob("*.json"))
    assert files == [
        f"mnist__{m}__seed{s}.json"
        for m, s in [("mc_dropout", 1), ("mc_dropout", 2), ("mc_dropout", 3), ("none", 1), ("none", 3)]
    ]
    assert json.loads((tmp_path / "out" / "results" / files[1]).read_text())["clean"]["accuracy"] == pytest.approx(0.7)
    report = (tmp_path / "out" / "report" / "report.md").read_text()
    assert "| mc_dropout | 3 | 0.7000 ± 0.0577 |" in report  # 0.6, 0.7, 0.8: sd 0.1, se 0.1 / sqrt 3

    # the rerun does only the failed run; without --keep-going a failure stops the grid
    calls.clear()
    with pytest.raises(NonFiniteLossError):
        run_benchmark(bench, tmp_path / "out", log=lines.append, report=False)
    assert calls == [("none", 2)]

    # a rerun with other evaluation settings must not skip (and so mix) the results made with the old ones
    changed = write_bench(tmp_path)
    changed.write_text(changed.read_text().replace("samples: 2", "samples: 3"))
    calls.clear()
    with pytest.raises(BenchmarkError, match=r"mnist__mc_dropout__seed1.json was made with other settings"):
        run_benchmark(load_benchmark_config(changed), tmp_path / "out", log=lines.append, report=False)
    assert calls == []


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7])
def test_shards_cover_every_run_exactly_once(count: int):
    runs = list(range(11))
    shards = [benchmark.shard_runs(runs, index, count) for index in range(1, count + 1)]
    assert sorted(r for shard in shards for r in shard) == runs
    with pytest.raises(Exception, match="1 <= I <= N"):
        benchmark.shard_runs(runs, count + 1, count)


def test_two_shards_share_one_folder_and_the_last_writes_the_report(tmp_path: Path, monkeypatch):
    calls: list[tuple[str, int]] = []

    def stand_in(config, run_dir, evaluation, log, trainer_overrides, progress):
        calls.append((config.method.name, config.seed))
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id(config.data.name, config.method.name, config.seed),
            "method": config.method.name,
            "seed": config.seed,
            "settings_digest": benchmark.run_digest(config, evaluation),
            "dataset": config.data.name,
            "train_time_s": 1.0,
            "eval_time_s": 1.0,
            "clean": {"accuracy": 0.5, "nll": 1.0, "brier": 0.5, "ece15": 0.1, "ece10": 0.1},
        }

    monkeypatch.setattr(benchmark, "train_and_evaluate", stand_in)
    bench = load_benchmark_config(write_bench(tmp_path))
    out = tmp_path / "out"
    run_benchmark(bench, out, log=lambda line: None, shard=(2, 2))
    assert calls == [("none", 1), ("none", 2), ("none", 3)]
    assert not (out / "report").exists()  # shard 1 has not finished: no report of half the grid
    run_benchmark(bench, out, log=lambda line: None, shard=(1, 2))
    assert calls[3:] == [("mc_dropout", 1), ("mc_dropout", 2), ("mc_dropout", 3)]
    assert len(list((out / "results").glob("*.json"))) == 6 and (out / "report" / "report.md").is_file()


def test_slurm_array_variables_pick_the_shard():
    import argparse

    from gflowout.cli.arguments import shard_spec, slurm_array_shard

    assert slurm_array_shard({}) is None
    assert slurm_array_shard(
        {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"}
    ) == (1, 4)
    assert slurm_array_shard(
        {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}
    ) == (4, 4)
    with pytest.raises(ConfigError, match="contiguous"):  # a clear error from main(), not a traceback
        slurm_array_shard({"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"})
    assert shard_spec("2/3") == (2, 3)
    for bad in ("0/2", "3/2", "x", "1-2"):
        with pytest.raises(argparse.ArgumentTypeError):
            shard_spec(bad)


def test_a_finished_training_of_another_config_is_not_reused(tmp_path: Path):
    """runs/<id>/trained.json marks a finished training; one made with another config (demo --epochs 3 after
    --epochs 1) used to be evaluated and reported as this run's."""
    bench = load_benchmark_config(write_bench(tmp_path))
    spec = bench.runs()[0]
    config = benchmark.run_config(bench, spec, None)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / benchmark.TRAINED_MARKER).write_text(json.dumps({"train_time_s": 1.0, "config_digest": "another"}))
    with pytest.raises(BenchmarkError, match="was trained with another config"):
        benchmark.train_and_evaluate(config, run_dir, bench.evaluation, log=lambda line: None)


def test_the_same_run_twice_under_one_results_folder_is_refused(tmp_path: Path):
    from gflowout.errors import DataError
    from gflowout.results import load_results

    result = {"schema_version": SCHEMA_VERSION, "run_id": "mnist__none__seed1", "method": "none", "seed": 1}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "mnist__none__seed1.json").write_text(json.dumps(result))
    assert len(load_results(tmp_path)) == 1
    (tmp_path / "b" / "mnist__none__seed1.json").write_text(json.dumps(result))
    with pytest.raises(DataError, match="'mnist__none__seed1' appears twice"):
        load_results(tmp_path)


def test_seconds_left_and_bad_configs(tmp_path: Path):
    assert seconds_left([10.0, 20.0], 3) == pytest.approx(45.0)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"config": "x.yaml", "methods": ["gflowout"], "seeds": [1], "sedes": [2]}))
    with pytest.raises(ConfigError, match="unknown benchmark key.*sedes.*did you mean 'seeds'"):
        load_benchmark_config(bad)
    bad.write_text(yaml.safe_dump({"config": "x.yaml", "methods": ["gflowout"], "seeds": ["one"]}))
    with pytest.raises(ConfigError, match="'seeds' must be a non-empty list of int"):
        load_benchmark_config(bad)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"methods": ["gflowout", "none"], "seeds": [1, 2, 1]}, "benchmark key 'seeds' lists 1 more than once"),
        ({"methods": ["none", "none"], "seeds": [1]}, "benchmark key 'methods' lists none more than once"),
        ({"methods": ["none"], "seeds": [1], "datasets": ["mnist", "mnist"]}, "'datasets' lists mnist more than"),
        ({"methods": ["none"], "seeds": [1], "datasets": []}, "'datasets' must be a non-empty list"),
        ({"methods": ["none"], "seeds": [1], "datasets": "mnist"}, "'datasets' must be a list of data set names"),
        ({"methods": ["none"], "seeds": [1], "datasets": [["mnist"]]}, "'datasets' must be a list of data set names"),
    ],
)
def test_a_grid_that_lists_a_run_twice_is_refused(tmp_path: Path, grid: dict, message: str):
    """Two shards would train the repeated run at once in one folder: refused before anything starts (and a
    string where a list belongs is not read letter by letter)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"config": "x.yaml", **grid}))
    with pytest.raises(ConfigError, match=message):
        load_benchmark_config(bad)


def test_lists_edited_after_loading_are_checked_by_the_runner(tmp_path: Path):
    """`gflowout demo --methods` replaces the loaded list: the runner checks it again before any training."""
    bench = load_benchmark_config(REPO / "configs" / "bench_tiny.yaml")
    bench.methods = ["none", "none"]
    with pytest.raises(ConfigError, match="'methods' lists none more than once"):
        run_benchmark(bench, tmp_path / "out")
    bench.methods = []
    with pytest.raises(ConfigError, match="'methods' must be a non-empty list"):
        run_benchmark(bench, tmp_path / "out")
    assert not (tmp_path / "out").exists()
