"""The report's learning section: mask statistics at the checkpoints, training curves and cost per epoch, read
from a learning.json (gflowout.eval.learning_report), and `gflowout report` writing and re-reading it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gflowout.eval.learning_report import (
    best_epoch_table,
    cost_table,
    learning_table,
    mask_series,
    plot_learning_curves,
    plot_mask_curves,
)
from gflowout.eval.report import write_report
from tests.helpers.report import fixture_runs, write_runs


def learning_record(method: str, seed: int, seconds: float, q_entropy: float | None) -> dict[str, Any]:
    curves = {
        "train/keep_rate_epoch": {str(e): 0.5 + 0.01 * e for e in range(4)},
        "train/log_forward_epoch": {str(e): -32 * math.log(2) for e in range(4)},
        "train/beta_epoch": {str(e): 0.001 * 10**e for e in range(4)},
        "val/nll": {"3": 0.1},
    }
    checkpoints = (
        {}
        if q_entropy is None
        else {
            which: {
                "epoch": epoch,
                "units": 32,
                "diagnostics": {},
                "site_means": {
                    "q_keep": 0.5,
                    "q_entropy": q_entropy if which == "last" else math.log(2),
                    "p_keep": 0.5,
                    "p_entropy": math.log(2),
                    "keep_rate": 0.5,
                },
            }
            for which, epoch in (("best", 1), ("last", 3))
        }
    )
    return {
        "curves": curves if q_entropy is not None else {},
        "checkpoints": checkpoints,
        "timing": {"epochs": 3, "median_s": seconds, "mean_s": seconds, "total_s": 3 * seconds},
    }


LEARNING = {
    "mnist__gflowout__seed1": learning_record("gflowout", 1, 30.0, 0.0),
    "mnist__gflowout__seed2": learning_record("gflowout", 2, 34.0, 0.5),
    "mnist__mc_dropout__seed1": learning_record("mc_dropout", 1, 16.0, None),
}


def test_the_mask_table_has_one_row_per_checkpoint_with_epochs_counted_from_one() -> None:
    table = learning_table(LEARNING)
    assert table is not None
    assert [row[:4] for row in table.rows] == [
        ["gflowout", "1", "best", "2"],
        ["gflowout", "1", "last", "4"],
        ["gflowout", "2", "best", "2"],
        ["gflowout", "2", "last", "4"],
    ]
    assert [row[5] for row in table.rows] == ["0.693", "0.000", "0.693", "0.500"]
    assert learning_table({"mnist__mc_dropout__seed1": LEARNING["mnist__mc_dropout__seed1"]}) is None


def test_cost_is_the_median_over_seeds_of_the_median_epoch_as_a_ratio_to_mc_dropout() -> None:
    table = cost_table(LEARNING, ["gflowout", "mc_dropout"])
    assert table is not None
    assert table.rows == [["gflowout", "2", "32.0", "2.00"], ["mc_dropout", "1", "16.0", "1.00"]]
    slowed = {**LEARNING, "mnist__gflowout__seed3": learning_record("gflowout", 3, 90.0, 0.5)}  # run behind others
    table = cost_table(slowed, ["gflowout", "mc_dropout"])
    assert table is not None and table.rows[0] == ["gflowout", "3", "34.0", "2.12"]
    slowed["mnist__mc_dropout__seed2"] = learning_record("mc_dropout", 2, 16.0, None)
    slowed["mnist__mc_dropout__seed3"] = learning_record("mc_dropout", 3, 90.0, None)
    table = cost_table(slowed, ["gflowout", "mc_dropout"])
    assert table is not None and table.rows[1] == ["mc_dropout", "3", "16.0", "1.00"]  # its own row stays 1.00
    no_reference = cost_table({"mnist__gflowout__seed1": LEARNING["mnist__gflowout__seed1"]}, ["gflowout"])
    assert no_reference is not None and no_reference.rows[0][3] == "-"


def test_the_curves_figure_is_written_only_for_gflownet_methods(tmp_path: Path) -> None:
    path = plot_learning_curves(LEARNING, tmp_path / "curves.png")
    assert path is not None and path.read_bytes()[:4] == b"\x89PNG"
    assert (
        plot_learning_curves({"mnist__mc_dropout__seed1": LEARNING["mnist__mc_dropout__seed1"]}, tmp_path / "none.png")
        is None
    )


def concrete_record(keeps: dict[str, list[float]]) -> dict[str, Any]:
    """A Concrete run's learning record: per-site keep (and its Bernoulli entropy) logged at each epoch."""
    curves: dict[str, dict[str, float]] = {}
    for site, values in keeps.items():
        curves[f"masks/{site}/keep"] = {str(e): k for e, k in enumerate(values)}
        curves[f"masks/{site}/entropy"] = {
            str(e): -(k * math.log(k) + (1 - k) * math.log(1 - k)) for e, k in enumerate(values)
        }
    curves["masks/keep_rate"] = {"0": 0.0, "1": 0.0}  # a whole-network column: not a site, left out
    return {"curves": curves, "checkpoints": {}, "timing": None}


def test_mask_series_reads_every_masked_method() -> None:
    keep, entropy = mask_series("concrete", concrete_record({"h.1": [0.9, 0.7], "h.2": [0.5, 0.5]}))
    assert keep == pytest.approx({0: 0.7, 1: 0.6})
    assert entropy[1] == pytest.approx((-(0.7 * math.log(0.7) + 0.3 * math.log(0.3)) + math.log(2)) / 2)
    keep, entropy = mask_series("gflowout", LEARNING["mnist__gflowout__seed1"])  # -log q / units: 32 units
    assert keep[2] == pytest.approx(0.52) and entropy[2] == pytest.approx(math.log(2))
    no_units = {**LEARNING["mnist__gflowout__seed1"], "checkpoints": {}}
    assert mask_series("gflowout", no_units)[1] == {}
    assert mask_series("mc_dropout", LEARNING["mnist__mc_dropout__seed1"]) == ({}, {})


def test_the_mask_curves_figure_covers_learned_masks_only(tmp_path: Path) -> None:
    runs = {**LEARNING, "mnist__concrete__seed1": concrete_record({"h.1": [0.9, 0.7]})}
    path = plot_mask_curves(runs, tmp_path / "masks.png")
    assert path is not None and path.read_bytes()[:4] == b"\x89PNG"
    assert (
        plot_mask_curves({"mnist__mc_dropout__seed1": LEARNING["mnist__mc_dropout__seed1"]}, tmp_path / "n.png") is None
    )


def test_write_report_appends_the_learning_section(tmp_path: Path) -> None:
    results = write_runs(tmp_path / "results", fixture_runs())
    write_report(results, tmp_path / "report", learning=LEARNING)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## What the GFlowNets learned, and the cost per epoch" in text
    assert "### Cost per training epoch" in text and "figures/learning_curves.png" in text
    assert "### The checkpoint each run is evaluated at" in text
    assert "figures/mask_curves.png" in text and "The learned masks over training" in text
    page = (tmp_path / "report" / "report.html").read_text()
    assert "What the masks became" in page and "data:image/png;base64" in page
    write_report(results, tmp_path / "plain")
    assert "What the GFlowNets learned" not in (tmp_path / "plain" / "report.md").read_text()


def test_the_cli_reports_an_existing_learning_json_without_run_folders(tmp_path: Path) -> None:
    from gflowout.cli.main import main

    results = write_runs(tmp_path / "bench" / "results", fixture_runs())
    report = tmp_path / "bench" / "report"
    report.mkdir()
    (report / "learning.json").write_text(json.dumps({"schema_version": 1, "runs": LEARNING}))
    assert main(["report", str(results.parent)]) == 0
    assert "What the masks became" in (report / "report.md").read_text()
    assert main(["report", str(results.parent), "--runs", str(tmp_path / "missing")]) == 2


@pytest.fixture(autouse=True)
def _quiet_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")


def test_the_best_epoch_is_the_validated_epoch_of_the_lowest_validation_nll_counted_from_one() -> None:
    runs = {
        "mnist__mc_dropout__seed2": {"curves": {"val/nll": {"4": 0.12, "9": 0.07, "14": 0.07, "19": 0.09}}},
        "mnist__gflowout__seed1": {"curves": {"val/nll": {"4": 0.08, "9": 0.09}}},
        "mnist__none__seed1": {"curves": {}},  # never validated: no row
    }
    table = best_epoch_table(runs, ("gflowout", "mc_dropout", "none"))
    assert table is not None
    # ties keep the first epoch, as the checkpoint callback does (it replaces best.ckpt only on a lower NLL)
    assert table.rows == [
        ["gflowout", "1", "5", "0.0800", "10"],
        ["mc_dropout", "2", "10", "0.0700", "20"],
    ]
    assert best_epoch_table({"mnist__none__seed1": {"curves": {}}}, ("none",)) is None
