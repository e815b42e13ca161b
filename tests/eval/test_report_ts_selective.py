"""Report: "METHOD + TS" rows from a result's "ts" section, the selective-prediction and temperature tables, and
the risk-coverage figure; aggregated values checked by hand."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import matplotlib.image as mpimg
import pytest
from test_report_aggregate import fake_result

from gflowout.eval.report import aggregate, summary_table, write_report
from gflowout.eval.selective import CURVE_GRID
from gflowout.results import write_json_atomic


def with_ts_and_selective(result: dict, temperature: float, aurc: float) -> dict:
    """`fake_result` plus the sections evaluate_method adds with validation data."""
    result = copy.deepcopy(result)
    selective = {
        "clean": {
            score: {"aurc": aurc, "accuracy_at_90": 0.99, "accuracy_at_95": 0.98, "accuracy_at_99": 0.97}
            for score in ("max_probability", "negative_entropy")
        }
    }
    curve = {"coverage": list(CURVE_GRID), "risk": [aurc * c for c in CURVE_GRID]}
    result["selective"] = selective
    result["figures"]["risk_coverage"] = {"clean": {"max_probability": curve, "negative_entropy": curve}}
    ts = {
        "temperature": temperature,
        "clean": {**result["clean"], "nll": result["clean"]["nll"] / 2},
        "random_rotation": result["random_rotation"],
        "shifts": result["shifts"],
        "rotation_sweep": result["rotation_sweep"],
        "ood": result["ood"],
        "selective": copy.deepcopy(selective),
        "figures": {
            "reliability": result["figures"]["reliability"],
            "risk_coverage": result["figures"]["risk_coverage"],
        },
    }
    result["ts"] = ts
    result["temperature_scaling"] = {
        "temperature": temperature,
        "validation_size": 50,
        "validation_nll": 0.4,
        "validation_nll_scaled": 0.3,
    }
    return result


def test_ts_rows_follow_their_method_and_aggregate_over_seeds(tmp_path: Path) -> None:
    runs = [
        with_ts_and_selective(fake_result("mc_dropout", 1, 0.90), 1.5, 0.02),
        with_ts_and_selective(fake_result("mc_dropout", 2, 0.94), 2.5, 0.04),
        fake_result("gflowout", 1, 0.96),
    ]
    groups = aggregate(runs)["mnist"]
    assert [g.method for g in groups] == ["gflowout", "mc_dropout", "mc_dropout + TS"]
    ts = groups[2]
    assert ts.seeds == [1, 2]
    mean, se = ts.get("temperature_scaling", "temperature")
    assert mean == pytest.approx(2.0) and se == pytest.approx(0.5)  # values 1.5, 2.5: std 1/sqrt 2, se 1/2
    assert ts.get("clean", "nll")[0] == pytest.approx(((1 - 0.90) / 2 + (1 - 0.94) / 2) / 2)
    assert groups[1].get("selective", "clean", "max_probability", "aurc")[0] == pytest.approx(0.03)

    results = tmp_path / "results"
    for run in runs:
        write_json_atomic(results / f"{run['run_id']}.json", run)
    write_report(results, tmp_path / "report")
    report = (tmp_path / "report" / "report.md").read_text()
    assert "| mc_dropout + TS | 2 |" in report
    assert "COMMANDS.md" not in report  # none beside these results
    (tmp_path / "COMMANDS.md").write_text("how they were made")
    write_report(results, tmp_path / "report")
    assert (
        f"How these runs were made (the commands, the code's commits, the machine and the wall times): "
        f"`{tmp_path / 'COMMANDS.md'}`" in (tmp_path / "report" / "report.md").read_text()
    )
    assert "| methods | gflowout, mc_dropout |" in report  # the settings are the runs': TS rows are not runs
    assert "### mnist: selective prediction (clean)" in report
    assert "| mc_dropout | max_probability | 0.0300 ± 0.0100 | 0.9900 ± 0.0000 |" in report
    assert "| mc_dropout + TS | 2.000 ± 0.500 | 0.4000 ± 0.0000 | 0.3000 ± 0.0000 |" in report
    after = report[report.index("### mnist: cost") :].split("\n\n")[1]  # the table under the heading
    cost = "\n".join(line for line in after.splitlines() if line.startswith("|"))
    assert "| mc_dropout |" in cost and "mc_dropout + TS" not in cost
    figure = tmp_path / "report" / "figures" / "mnist_risk_coverage_clean.png"
    assert figure.is_file() and mpimg.imread(figure).ndim == 3
    # the terminal summary keeps the runs' own rows only (the demo's table reads as before)
    assert "+ TS" not in summary_table(results)
    assert not math.isnan(groups[0].get("clean", "accuracy")[0])
