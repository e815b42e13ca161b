"""Conformal prediction sets through evaluate_method (stand-in data and method of test_runner_evaluate, whose
accuracy under the "brighter" shift is known exactly) and through the report; old results without the section
still report, without it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_runner_evaluate import MEAN, STD, BrightnessReader, class_images, stand_in_data  # noqa: F401  (a fixture, used by name)

from gflowout.eval.evaluate import evaluate_method
from gflowout.eval.report import aggregate, write_report
from gflowout.results import read_result, write_json_atomic
from tests.helpers.report import fixture_runs, write_runs


def validation_set(count: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    labels = np.arange(count) % 10
    images = torch.as_tensor(class_images(labels) / 255.0, dtype=torch.float32)[:, None]
    return (images - MEAN) / STD, torch.as_tensor(labels)


def evaluate(validation_size: int = 100, **kwargs):
    return evaluate_method(
        BrightnessReader(),
        "digits",
        samples=3,
        severities=(1, 2),
        rotation_angles=(0, 90),
        ood_sets=[],
        validation=validation_set(validation_size),
        **kwargs,
    )


@pytest.mark.usefixtures("stand_in_data")
def test_conformal_sets_in_every_condition(tmp_path: Path) -> None:
    labels = np.arange(300) % 10  # the stand-in test labels
    result = evaluate()
    conformal = result["conformal"]
    assert conformal["alpha"] == 0.1 and conformal["calibration_size"] == 100
    assert set(conformal["quantile"]) == {"lac", "aps", "aps_randomized"}
    for score in ("lac", "aps", "aps_randomized"):  # validation and test images are exchangeable: >= 1 - alpha
        clean = conformal["clean"][score]
        assert clean["coverage"] >= 0.85 and clean["mean_size"] < 2
        assert sum(stratum["fraction"] for stratum in clean["by_size"].values()) == pytest.approx(1.0)
        covered = sum(s["fraction"] * s["coverage"] for s in clean["by_size"].values() if s["coverage"] is not None)
        assert covered == pytest.approx(clean["coverage"])
        assert conformal["rotation_sweep"]["0"][score] == {
            "coverage": clean["coverage"],
            "mean_size": clean["mean_size"],
        }
        assert conformal["random_rotation"][score]["coverage"] >= 0.85
    for severity in (1, 2):  # brighter by severity / 20: class k is read as min(k + severity, 9), confidently, so
        # LAC's sets (the confident class at most) hold the label exactly where the prediction is right
        expected = np.mean(np.minimum(labels + severity, 9) == labels)
        assert conformal["shifts"]["brighter"][str(severity)]["lac"]["coverage"] == pytest.approx(expected)
        assert conformal["shifts"]["brighter"][str(severity)]["lac"]["mean_size"] <= 1.0
    assert conformal["shifts"]["brighter"]["2"]["aps"]["coverage"] < 0.9  # the guarantee is gone under the shift
    # the "+ TS" rows calibrate on the tempered validation predictive
    tempered = result["ts"]["conformal"]
    assert set(tempered["quantile"]) == set(conformal["quantile"]) and tempered["calibration_size"] == 100
    assert tempered["clean"]["lac"]["coverage"] >= 0.85
    assert tempered["shifts"]["brighter"]["2"]["lac"]["coverage"] < 0.9
    path = write_json_atomic(tmp_path / "run.json", result)
    assert read_result(path)["conformal"]["clean"]["aps"] == conformal["clean"]["aps"]


@pytest.mark.usefixtures("stand_in_data")
def test_conformal_settings() -> None:
    assert "conformal" not in evaluate(conformal_alpha=None)
    alone = evaluate(temperature_scaling=False, conformal_scores=("raps_randomized",), conformal_raps_k_reg=2)
    assert "ts" not in alone and "temperature_scaling" not in alone
    assert set(alone["conformal"]["clean"]) == {"raps_randomized"} and alone["conformal"]["raps_k_reg"] == 2
    logged: list[str] = []  # a validation split too small for alpha skips the sets, with a line, not the run
    tiny = evaluate(validation_size=5, log=logged.append)
    assert "conformal" not in tiny and "ts" in tiny and "at least 9 examples" in tiny["conformal_skipped"]
    assert logged == [tiny["conformal_skipped"]]
    plain = evaluate(conformal_alpha=None)
    for key in ("clean", "shifts", "rotation_sweep", "ts"):  # conformal sets change no other number
        assert json.dumps(plain[key], sort_keys=True) == json.dumps(
            {k: v for k, v in evaluate()[key].items() if k != "conformal"} if key == "ts" else evaluate()[key],
            sort_keys=True,
        )


@pytest.mark.usefixtures("stand_in_data")
def test_report_has_the_conformal_section(tmp_path: Path) -> None:
    result = evaluate()
    runs = []
    for seed in (1, 2):
        run = copy.deepcopy(result)
        run.update(seed=seed, run_id=f"digits__reader__seed{seed}")
        runs.append(run)
    folder = write_runs(tmp_path / "results", runs)
    groups = aggregate(runs)["digits"]
    assert [g.method for g in groups] == ["reader", "reader + TS"]
    assert groups[1].get("conformal", "clean", "lac", "coverage")[0] == 1.0
    html = write_report(folder, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "conformal prediction sets (alpha = 0.1" in markdown
    assert "size-stratified coverage" in markdown and "| reader + TS | APS (randomised) |" in markdown
    assert "conformal coverage under each shift and rotation (LAC" in markdown
    assert "| brighter, severity 2 |" in markdown
    for axis in ("severity", "angle"):
        assert (tmp_path / "report" / "figures" / f"digits_conformal_{axis}.png").is_file()
    assert html.is_file()


def test_old_results_without_conformal_still_report(tmp_path: Path) -> None:
    folder = write_runs(tmp_path / "results", fixture_runs())
    write_report(folder, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "conformal" not in markdown.lower()
    assert not list((tmp_path / "report" / "figures").glob("*conformal*"))
