"""The whole benchmark grid is checked before its first run trains: a typo or a missing data set costs a
second, not the hours of the runs before it (a misspelt method used to fail only when its run was reached)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gflowout.errors import ConfigError, DataError
from gflowout.experiments import benchmark
from gflowout.experiments.benchmark import load_benchmark_config, run_benchmark


def _bench(tmp_path: Path, **changes) -> Path:
    raw = {
        "config": {"data": {"name": "mnist"}, "model": {"options": {"hidden": [8]}}},
        "methods": ["none", "mc_dropout"],
        "seeds": [1, 2],
        "evaluation": {"samples": 2, "limit": 10},
    }
    raw.update(changes)
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> list:
    calls: list = []
    monkeypatch.setattr(benchmark, "train_and_evaluate", lambda *args, **kwargs: calls.append(args) or {})
    return calls


def test_a_misspelt_method_is_named_with_the_closest_match(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown method 'mc_dropot'.*did you mean 'mc_dropout'\?"):
        load_benchmark_config(_bench(tmp_path, methods=["none", "mc_dropot"]))


def test_an_unknown_evaluation_key_is_named_alone(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_benchmark_config(_bench(tmp_path, evaluation={"samples": 2, "limitt": 5}))
    assert "unknown key 'evaluation.limitt'" in str(error.value) and "did you mean 'limit'?" in str(error.value)
    assert "found {" not in str(error.value)  # not the whole mapping dumped


def test_a_bad_method_option_stops_the_grid_before_any_run(tmp_path: Path, no_training: list) -> None:
    bench = load_benchmark_config(_bench(tmp_path, overrides=["methods.mc_dropout.options.keep_prb=0.3"]))
    with pytest.raises(ConfigError, match=r"keep_prb.*did you mean 'keep_prob'\?"):
        run_benchmark(bench, tmp_path / "out", log=lambda line: None)
    assert no_training == []  # the `none` runs before it did not train first


def test_an_unknown_shift_is_named_before_any_run(tmp_path: Path, no_training: list) -> None:
    bench = load_benchmark_config(_bench(tmp_path, evaluation={"samples": 2, "shifts": ["fgo"], "severities": [1, 6]}))
    with pytest.raises(ConfigError) as error:
        run_benchmark(bench, tmp_path / "out", log=lambda line: None)
    assert "did you mean 'fog'?" in str(error.value) and "severities must be integers 1..5, found [6]" in str(
        error.value
    )
    assert no_training == []


def test_a_data_set_that_is_not_fetched_stops_the_grid_before_any_run(tmp_path: Path, no_training: list) -> None:
    bench = load_benchmark_config(_bench(tmp_path, evaluation={"samples": 2, "ood_sets": ["fashion-mnist"]}))
    with pytest.raises(DataError, match=r"'mnist' is not fetched.*gflowout data fetch mnist --root"):
        run_benchmark(bench, tmp_path / "out", root=tmp_path / "empty-root", log=lambda line: None)
    assert no_training == []


def test_missing_default_ood_sets_are_one_note_not_silence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gflowout.experiments import grid_check

    monkeypatch.setattr(
        grid_check, "_missing_data", lambda name, root: None if name == "mnist" else f"{name} is not fetched"
    )
    bench = load_benchmark_config(_bench(tmp_path))
    configs = [benchmark.run_config(bench, spec) for spec in bench.runs()]
    lines: list[str] = []
    grid_check.check_grid(bench, configs, None, lines.append)
    assert len(lines) == 1 and "animal-mnist, fashion-mnist not fetched" in lines[0]
    assert "gflowout data fetch animal-mnist fashion-mnist" in lines[0]


def test_names_elsewhere_get_the_closest_match_too() -> None:
    from gflowout.data.datasets import get_info
    from gflowout.data.sources import get_spec
    from gflowout.methods import method_class
    from gflowout.training.build import backbone_type

    with pytest.raises(ValueError, match="did you mean 'mc_dropout'"):
        method_class("mc_dropot")
    with pytest.raises(DataError, match="did you mean 'fashion-mnist'"):
        get_spec("fashon-mnist")
    with pytest.raises(DataError, match="did you mean 'fashion-mnist'"):
        get_info("fashon-mnist")
    with pytest.raises(ConfigError, match="did you mean 'mlp'"):
        backbone_type("mpl")


def test_lightning_advertising_tips_are_silenced(caplog: pytest.LogCaptureFixture) -> None:
    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    from gflowout.train import silence_lightning_tips

    silence_lightning_tips()
    # the logger's own level: an earlier test's quiet_lightning() may have set Lightning's loggers to WARNING
    with caplog.at_level("INFO", logger="lightning.pytorch.utilities.rank_zero"):
        rank_zero_info("💡 Tip: For seamless cloud uploads and versioning, try installing [litmodels]")
        rank_zero_info("a real message")
    assert "Tip:" not in caplog.text and "a real message" in caplog.text


def test_demo_fetches_missing_sets_and_says_which_ood_set_is_left_out(tmp_path: Path, monkeypatch, capsys) -> None:
    from gflowout.cli import demo
    from gflowout.data import sources
    from gflowout.experiments import grid_check

    fetched: list[str] = []
    present = {"mnist"}

    def fake_fetch(name, root=None, from_path=None, log=None):
        fetched.append(name)
        if name == "animal-mnist":
            raise DataError("no source reachable")
        present.add(name)
        return tmp_path / name

    monkeypatch.setattr(sources, "fetch", fake_fetch)
    monkeypatch.setattr(grid_check, "_missing_data", lambda name, root: None if name in present else "missing")
    bench = load_benchmark_config(_bench(tmp_path, datasets=["mnist"]))
    demo.fetch_missing(bench, None)
    out = capsys.readouterr().out
    assert fetched == ["animal-mnist", "fashion-mnist"]
    assert "OOD detection against animal-mnist is left out" in out and "fetching fashion-mnist" in out
