"""The benchmark's conformal evaluation keys: checked before any training, passed to evaluate_method, neutral for
the settings digest at their defaults; `gflowout evaluate --conformal-alpha` parses a rate or "none"."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest
import yaml

from gflowout.errors import ConfigError
from gflowout.experiments.benchmark import EvaluationSettings, load_benchmark_config
from gflowout.training.resume import comparable


def _bench(tmp_path: Path, **evaluation) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(
        yaml.safe_dump(
            {"config": {"data": {"name": "mnist"}}, "methods": ["none"], "seeds": [1], "evaluation": evaluation}
        )
    )
    return path


@pytest.mark.parametrize(
    ("evaluation", "message"),
    [
        ({"conformal_alpha": 1.5}, r"conformal_alpha must be null or a miscoverage rate in \(0, 1\)"),
        ({"conformal_alpha": "0.1"}, "conformal_alpha must be null"),
        ({"conformal_scores": ["aps", "thr"]}, "conformal_scores: conformal score 'thr' is not one of"),
        ({"conformal_scores": ["lac_randomized"]}, "is not one of"),
        ({"conformal_scores": []}, "non-empty list"),
        ({"conformal_raps_lambda": -0.1}, "conformal_raps_lambda must be a number >= 0"),
    ],
)
def test_bad_conformal_settings_are_refused_before_training(tmp_path: Path, evaluation, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_benchmark_config(_bench(tmp_path, **evaluation))


def test_conformal_settings_load_and_are_neutral_at_their_defaults(tmp_path: Path) -> None:
    bench = load_benchmark_config(_bench(tmp_path, conformal_alpha=None, conformal_scores=["raps_randomized"]))
    assert bench.evaluation.conformal_alpha is None and bench.evaluation.conformal_scores == ["raps_randomized"]
    defaults = comparable(dataclasses.asdict(EvaluationSettings()), part="evaluation")
    assert not any(key.startswith("conformal") for key in defaults)  # digests of earlier results still match
    changed = comparable(dataclasses.asdict(EvaluationSettings(conformal_alpha=0.05)), part="evaluation")
    assert changed["conformal_alpha"] == 0.05


def test_cli_conformal_alpha() -> None:
    from gflowout.cli.evaluate import conformal_alpha, conformal_line

    assert conformal_alpha("0.05") == 0.05 and conformal_alpha("none") is None
    for text in ("0", "1", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"miscoverage rate in \(0, 1\)"):
            conformal_alpha(text)
    line = conformal_line(
        {"alpha": 0.1, "calibration_size": 50, "clean": {"lac": {"coverage": 0.9, "mean_size": 1.25}}}
    )
    assert line.endswith("lac coverage 0.900, mean size 1.25") and "alpha 0.1" in line
