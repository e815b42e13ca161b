"""`gflowout benchmark --reevaluate`: a result file without the sections a newer gflowout adds (temperature
scaling, conformal sets, selective prediction) is completed from its trained checkpoint, only when the numbers
it already holds come out identical; a changed number keeps the file and says where."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

import gflowout
from gflowout.cli.main import main
from gflowout.errors import DataError
from gflowout.experiments.benchmark import EvaluationSettings
from gflowout.experiments.reevaluate import ReevaluationError, complete_result, differences, missing_sections

KEEP_THREADS = ["--threads", str(torch.get_num_threads())]
NEW_SECTIONS = ("temperature_scaling", "ts", "conformal", "selective")
RUN = "mnist__mc_dropout__seed1"


@pytest.fixture(scope="module")
def finished_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """A one-run benchmark on real MNIST, finished by this gflowout: (its config, its folder, its result)."""
    from gflowout.data.datasets import load_split

    try:
        load_split("mnist", "test")
    except DataError as error:
        pytest.skip(f"real MNIST is needed (`make test` fetches it): {error}")
    folder = tmp_path_factory.mktemp("reevaluate")
    config = folder / "bench.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "config": {
                    "seed": 1,
                    "data": {"name": "mnist", "batch_size": 64, "val_fraction": 0.3, "limit_train": 256},
                    "model": {"backbone": "mlp", "options": {"hidden": [16, 16]}},
                    "method": {"name": "mc_dropout"},
                    "trainer": {
                        "max_epochs": 1,
                        "val_samples": 2,
                        "limit_val_batches": 2,
                        "checkpoint_every_n_steps": 0,
                        "enable_progress_bar": False,
                        "accelerator": "cpu",
                    },
                },
                "trainer_overrides": {"limit_test_batches": 1},
                "methods": ["mc_dropout"],
                "seeds": [1],
                "evaluation": {
                    "samples": 3,
                    "limit": 120,
                    "rotation_angles": [0, 90],
                    "shifts": {"shot_noise": [2]},
                    "ood_sets": None,
                    "batch_size": 60,
                },
            }
        )
    )
    out = folder / "bench"
    assert main(["benchmark", "--config", str(config), "--out", str(out), "--no-report", *KEEP_THREADS]) == 0
    result = json.loads((out / "results" / f"{RUN}.json").read_text())
    assert all(key in result for key in NEW_SECTIONS)
    assert result["gflowout_version"] == gflowout.__version__ and "commit" in result  # which code made it
    return config, out, result


def as_older_gflowout_wrote_it(result: dict) -> dict:
    """The result without the sections added since the evidence grid's code (same settings digest)."""
    old = copy.deepcopy({k: v for k, v in result.items() if k not in (*NEW_SECTIONS, "gflowout_version", "commit")})
    old["figures"] = {k: v for k, v in result["figures"].items() if k != "risk_coverage"}
    return old


def test_an_older_result_is_completed_and_keeps_every_number(finished_grid, capsys) -> None:
    config, out, result = finished_grid
    path = out / "results" / f"{RUN}.json"
    old = as_older_gflowout_wrote_it(result)
    path.write_text(json.dumps(old))

    # without the flag the file is left as it is
    assert main(["benchmark", "--config", str(config), "--out", str(out), "--no-report", *KEEP_THREADS]) == 0
    assert json.loads(path.read_text()) == old and f"{RUN}: done earlier, skipped" in capsys.readouterr().out

    args = ["benchmark", "--config", str(config), "--out", str(out), "--no-report", "--reevaluate", *KEEP_THREADS]
    assert main(args) == 0
    assert "completing it" in capsys.readouterr().out
    completed = json.loads(path.read_text())
    assert differences(old, completed) == []
    for key in NEW_SECTIONS:  # the same sections, to the last digit, as when the grid evaluated it first
        assert completed[key] == result[key], key
    assert completed["train_time_s"] == result["train_time_s"]
    assert completed["reevaluated"]["sections_added"] == ["selective", "temperature_scaling", "ts", "conformal"]
    # the file still says which code made it (an older one: unrecorded), and which code completed it
    assert completed["gflowout_version"] is None and completed["commit"] is None
    assert completed["reevaluated"]["commit"] == result["commit"]

    # complete now: a second --reevaluate skips it
    assert main(args) == 0
    assert f"{RUN}: done earlier, skipped" in capsys.readouterr().out
    path.write_text(json.dumps(result))


def test_a_number_that_would_change_keeps_the_file_and_says_where(finished_grid, capsys) -> None:
    config, out, result = finished_grid
    path = out / "results" / f"{RUN}.json"
    tampered = as_older_gflowout_wrote_it(result)
    tampered["clean"]["accuracy"] = 0.123
    path.write_text(json.dumps(tampered))
    args = ["benchmark", "--config", str(config), "--out", str(out), "--no-report", "--reevaluate", *KEEP_THREADS]
    assert main(args) == 2  # one line on stderr, as every gflowout error
    assert "changed numbers it already holds (/clean/accuracy: 0.123 before" in capsys.readouterr().err
    assert json.loads(path.read_text()) == tampered  # untouched
    aside = json.loads((out / "runs" / RUN / "reevaluated.json").read_text())
    assert aside["clean"]["accuracy"] == result["clean"]["accuracy"]
    path.write_text(json.dumps(result))


def test_differences_compare_every_old_value_and_ignore_timings() -> None:
    old = {"a": {"b": [1.0, math.nan]}, "eval_time_s": 3.0, "figures": {"x": "p.png"}, "n": 2}
    assert differences(old, {"a": {"b": [1.0, math.nan]}, "eval_time_s": 9.0, "n": 2.0, "extra": 1}) == []
    assert differences(old, {"a": {"b": [1.0, 0.5]}, "n": 2}) == ["/a/b[1]: nan before, 0.5 now"]
    assert differences(old, {"a": {"b": [1.0]}, "n": 2})[0].startswith("/a/b: a list of 2 became")
    assert differences(old, {"a": {"b": [1.0, math.nan]}}) == ["/n: missing from the new evaluation"]


def test_missing_sections_follow_the_evaluation_settings() -> None:
    assert missing_sections({}, EvaluationSettings()) == ["selective", "temperature_scaling", "ts", "conformal"]
    off = EvaluationSettings(temperature_scaling=False, conformal_alpha=None)
    assert missing_sections({}, off) == ["selective"]
    assert missing_sections({"selective": {}, "conformal_skipped": "small"}, off) == []


def test_a_run_without_a_finished_training_is_not_reevaluated(tmp_path: Path) -> None:
    result = tmp_path / "r.json"
    result.write_text("{}")
    with pytest.raises(ReevaluationError, match="holds no finished training"):
        complete_result(result, {}, tmp_path / "run", lambda: {}, ["ts"])
