"""`gflowout cohort` end to end on a tiny CSV the test writes: one JSON per run, a resumed rerun skips them,
the summary tables and figure; the shipped configs are valid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from gflowout.cli.main import main
from gflowout.errors import ConfigError
from gflowout.experiments.cohort import ALL_METHODS, cohort_config, load_cohort_config

REPO = Path(__file__).resolve().parents[2]


def tiny_csv(path: Path) -> Path:
    rng = np.random.default_rng(0)
    lines = ["unit,mortality,x1,x2,x3"]
    for hospital, shift in (("a", 0.0), ("b", 0.5), ("c", 1.0)):
        for _ in range(40):
            x = rng.normal(shift, 1.0, 3)
            label = int(x[0] + 0.5 * x[1] + rng.normal(0, 0.5) > shift)
            lines.append(f"{hospital},{label}," + ",".join(f"{v:.4f}" for v in x))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cohort_command_runs_resumes_and_summarises(tmp_path, capsys, one_torch_thread):
    config = {
        "data": {
            "source": "csv",
            "path": str(tiny_csv(tmp_path / "eicu.csv")),
            "group_column": "unit",
            "label_column": "mortality",
        },
        "held_out": ["c"],
        "methods": ["none", "gflowout"],
        "seeds": [1],
        "hidden": [8, 8, 8],
        "epochs": 2,
        "batch_size": 32,
        "samples": 3,
    }
    config_path = tmp_path / "cohort.yaml"
    config_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    assert main(["cohort", "--config", str(config_path), "--out", str(out)]) == 0
    runs = sorted((out / "runs").glob("*.json"))
    assert [p.name for p in runs] == ["heldout-c_gflowout_seed1.json", "heldout-c_none_seed1.json"]
    result = json.loads(runs[0].read_text())
    assert result["held_out_group"] == "c" and result["train_groups"] == ["a", "b"]
    assert result["held_out"]["count"] == 40
    assert result["in_distribution"]["count"] == 16  # a stratified fifth of the 80 training rows
    for key in ("macro_f1", "balanced_accuracy", "precision", "recall", "auroc", "nll", "ece"):
        assert 0.0 <= result["held_out"][key] < 10.0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["c"]) == {"none", "gflowout"}
    assert "held-out group `c`" in (out / "summary.md").read_text()
    assert (out / "figures" / "cohort_metrics.png").stat().st_size > 0
    capsys.readouterr()
    before = runs[0].stat().st_mtime_ns
    assert main(["cohort", "--config", str(config_path), "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("done already, skipped") == 2
    assert runs[0].stat().st_mtime_ns == before
    # a method added to the grid (the deep ensemble, which predicts its M members): only its run is made
    config_path.write_text(yaml.safe_dump({**config, "methods": ["none", "gflowout", "ensemble"]}))
    assert main(["cohort", "--config", str(config_path), "--out", str(out)]) == 0
    assert capsys.readouterr().out.count("done already, skipped") == 2 and runs[0].stat().st_mtime_ns == before
    ensemble = json.loads((out / "runs" / "heldout-c_ensemble_seed1.json").read_text())
    assert 0.0 <= ensemble["held_out"]["macro_f1"] <= 1.0
    assert set(json.loads((out / "summary.json").read_text())["c"]) == {"none", "gflowout", "ensemble"}


def test_same_seed_gives_the_same_run(tmp_path, one_torch_thread):
    from gflowout.data.cohort import leave_one_group_out, read_cohort_csv
    from gflowout.experiments.cohort import train_and_evaluate

    config = cohort_config(
        {
            "data": {
                "source": "csv",
                "path": str(tiny_csv(tmp_path / "t.csv")),
                "group_column": "unit",
                "label_column": "mortality",
            },
            "hidden": [8],
            "epochs": 1,
            "samples": 2,
        }
    )
    split = leave_one_group_out(read_cohort_csv(config.data.path, "unit", "mortality"), "a")
    first, second = (train_and_evaluate(config, split, "mc_dropout", 3) for _ in range(2))
    assert first["held_out"] == second["held_out"]


def test_numeric_group_ids_in_the_config_are_read_as_text():
    config = cohort_config({"data": {"source": "csv", "path": "x.csv"}, "held_out": [167]})
    assert config.held_out == ["167"]


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="unknown config key"):
        cohort_config({"data": {"source": "csv", "path": "x.csv"}, "epoch": 3})
    with pytest.raises(ConfigError, match="'data.path' is required"):
        cohort_config({"data": {"source": "csv"}})
    with pytest.raises(ConfigError, match="unknown method"):
        cohort_config({"data": {"source": "rotterdam-gbsg"}, "methods": ["dropconnect"]})


@pytest.mark.parametrize("name", ["cohort_rotterdam_gbsg.yaml", "cohort_csv_example.yaml"])
def test_shipped_cohort_configs_load(name):
    config = load_cohort_config(REPO / "configs" / name)
    assert config.hidden == [256, 256, 256] and len(config.seeds) == 5
    assert config.methods == list(ALL_METHODS)  # every method, the deep ensemble included


def test_cohort_help(capsys):
    with pytest.raises(SystemExit):
        main(["cohort", "--help"])
    text = capsys.readouterr().out
    assert "--config FILE" in text and "resumes" in text


def test_the_summary_tests_gflowout_against_each_method_seed_by_seed():
    from scipy import stats

    from gflowout.experiments.cohort_summary import HEADLINE, tests_markdown

    def run(method: str, seed: int, shift: float) -> dict:
        held = dict.fromkeys(HEADLINE, 0.6 + 0.01 * seed + shift)
        held["nll"] = 0.7 - shift + 0.02 * seed**2  # lower is better: GFlowOut's shift lowers it
        return {"held_out_group": "gbsg", "method": method, "seed": seed, "held_out": held}

    runs = [run("gflowout", s, 0.05) for s in (1, 2, 3)] + [run("none", s, 0.0) for s in (1, 2, 3)]
    runs[1]["held_out"]["auroc"] += 0.02  # some spread in the differences, so that the t-test is defined
    runs[1]["held_out"]["nll"] -= 0.01
    text = tests_markdown(runs)
    higher, lower = text.split("### ")[1:]
    assert higher.startswith("held-out group `gbsg`: is gflowout better than each method? (higher is better")
    auroc_row = next(line for line in higher.splitlines() if line.startswith("| auroc |"))
    ours = [0.66, 0.67 + 0.02, 0.68]  # 0.6 + 0.01 seed + 0.05, and the spread added above
    p_value = stats.ttest_rel(ours, [0.61, 0.62, 0.63]).pvalue
    assert 0.001 < p_value < 0.05 and f"better (+0.057; p = {p_value:.3f})" in auroc_row
    assert "| nll | **better (-0.053;" in lower  # a lower NLL is better
    assert "| ece | n/a (+0.050; the same difference in every seed" in lower  # no spread: no test
    assert "Holm's step-down method" in higher and "Holm's step-down method" in lower
    assert tests_markdown([r for r in runs if r["method"] == "none"]) == ""  # no GFlowOut: nothing to test
