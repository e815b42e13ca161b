"""`gflowout demo`: the shipped configs are valid, and a tiny demo run prints the table of its result files,
shows a progress bar that reaches 100 %, writes the report and names the output folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from gflowout.cli.demo import find_demo_config
from gflowout.cli.main import main
from gflowout.errors import DataError
from gflowout.experiments.benchmark import load_benchmark_config, run_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "name",
    [
        "demo_mnist.yaml",
        "bench_mnist.yaml",
        "bench_tiny.yaml",
        "evidence_mnist.yaml",
        "evidence_mnist_ensemble.yaml",
        "evidence_mnist_beta1.yaml",
        "evidence_fashion_mnist.yaml",
    ],
)
def test_shipped_benchmark_configs_build_every_run(name: str, monkeypatch):
    monkeypatch.chdir(REPO)
    bench = load_benchmark_config(REPO / "configs" / name)
    configs = [run_config(bench, spec) for spec in bench.runs()]
    assert [c.method.name for c in configs] == [s.method for s in bench.runs()]
    assert [c.seed for c in configs] == [s.seed for s in bench.runs()]
    if name.startswith("evidence_"):  # the paper's protocol, untouched: 200 epochs, the full test set, S = 20
        assert all(c.trainer.max_epochs == 200 and c.data.batch_size == 128 for c in configs)
        assert bench.evaluation.limit is None and bench.evaluation.samples == 20
    if name == "evidence_fashion_mnist.yaml":
        assert {c.data.name for c in configs} == {"fashion-mnist"} and len(configs) == 7 * 3
        assert bench.evaluation.ood_sets == ["mnist", "animal-mnist"]
    if name == "bench_mnist.yaml":  # the paper's grid
        assert len(configs) == 7 * 5 and configs[0].trainer.max_epochs == 200
        assert {c.method.name for c in configs} >= {"ensemble", "none"}


def test_demo_config_is_found_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the source checkout's is used
    assert find_demo_config(None).resolve() == (REPO / "configs" / "demo_mnist.yaml").resolve()


def test_tiny_demo_prints_the_table_and_names_the_folder(tmp_path, monkeypatch, capsys):
    from gflowout.data.datasets import load_split

    try:
        load_split("mnist", "test")
    except DataError as error:
        pytest.skip(f"real MNIST is needed (`make test` fetches it): {error}")
    config = yaml.safe_load((REPO / "configs" / "demo_mnist.yaml").read_text())
    config["config"]["data"]["limit_train"] = 128
    config["config"]["model"]["options"]["hidden"] = [16]
    config["config"]["trainer"].update(
        max_epochs=1, limit_val_batches=1, enable_progress_bar=False, log_every_n_steps=1
    )
    config["trainer_overrides"] = {"limit_test_batches": 1}
    config["evaluation"].update(samples=2, limit=100, rotation_angles=[0, 90], shifts={"fog": [1]}, ood_sets=[])
    tiny = tmp_path / "demo_tiny.yaml"
    tiny.write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)

    threads = torch.get_num_threads()
    assert (
        main(["demo", "--config", str(tiny), "--methods", "mc_dropout", "--out", "out", "--threads", str(threads)]) == 0
    )
    assert torch.get_num_threads() == threads
    captured = capsys.readouterr()
    result = json.loads((tmp_path / "out" / "results" / "mnist__mc_dropout__seed1.json").read_text())
    row = next(line for line in captured.out.splitlines() if line.startswith("mnist") and "mc_dropout" in line)
    assert f"{result['clean']['accuracy']:.4f}" in row and f"{result['random_rotation']['accuracy']:.4f}" in row
    assert f"{result['shifts']['fog']['1']['accuracy']:.4f}" in row  # one shift: its accuracy is the mean
    assert "100%" in captured.err
    assert f"output folder: {(tmp_path / 'out').resolve()}" in captured.out
    assert (tmp_path / "out" / "report" / "report.html").is_file()
