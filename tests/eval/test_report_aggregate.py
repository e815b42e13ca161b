"""Report: aggregation over seeds (checked by hand), tables, figures that open as images, the HTML page."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from gflowout.eval.report import aggregate, mean_and_standard_error, write_report
from gflowout.results import SCHEMA_VERSION, load_results, write_json_atomic


def fake_result(method: str, seed: int, accuracy: float, dataset: str = "mnist") -> dict:
    """A small result file in the documented schema, with values chosen by the test."""
    metrics = {"accuracy": accuracy, "nll": 1 - accuracy, "brier": 0.1, "ece15": 0.05, "ece10": 0.04}
    edges = np.linspace(0, 1, 16).tolist()
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": f"{dataset}__{method}__seed{seed}",
        "method": method,
        "seed": seed,
        "dataset": dataset,
        "config": {"epochs": 1},
        "train_time_s": 10.0 * seed,
        "eval_time_s": 1.0,
        "samples": 4,
        "test_size": 100,
        "clean": metrics,
        "random_rotation": {**metrics, "accuracy": accuracy / 2},
        "shifts": {"shot_noise": {"1": metrics, "2": {**metrics, "accuracy": accuracy - 0.1}}},
        "rotation_sweep": {"0": metrics, "90": {**metrics, "accuracy": 0.3}},
        "ood": {
            "fashion-mnist": {
                "max_probability": {"auroc": 0.9, "aupr": 0.8, "fpr95": 0.3},
                "mutual_information": {"auroc": 0.7, "aupr": 0.6, "fpr95": 0.5},
            }
        },
        "uncertainty": {"clean": {"0.05": {"uncertain_fraction": 0.1, "pavpu": 0.9}}},
        "figures": {
            "reliability": {
                "clean": {
                    "edges": edges,
                    "count": [0] * 14 + [100],
                    "confidence": [None] * 14 + [0.99],
                    "accuracy": [None] * 14 + [accuracy],
                }
            },
            "ood_histograms": {
                "fashion-mnist": {"max_probability": {"edges": [0, 0.5, 1], "in": [90, 10], "out": [20, 80]}}
            },
            "roc": {"fashion-mnist": {"max_probability": {"fpr": [0, 0.5, 1], "tpr": [0, 0.9, 1]}}},
        },
    }


def test_mean_and_standard_error_by_hand():
    # values 1, 2, 6: mean 3; sample variance ((-2)^2 + (-1)^2 + 3^2) / 2 = 7; se = sqrt(7 / 3)
    mean, se = mean_and_standard_error([1.0, 2.0, 6.0])
    assert mean == pytest.approx(3.0)
    assert se == pytest.approx(math.sqrt(7 / 3))
    single_mean, single_se = mean_and_standard_error([0.5])
    assert single_mean == 0.5 and math.isnan(single_se)


def test_aggregate_groups_by_method_and_averages_over_seeds():
    runs = [fake_result("mc_dropout", 1, 0.90), fake_result("mc_dropout", 2, 0.94), fake_result("gflowout", 1, 0.96)]
    groups = aggregate(runs)["mnist"]
    assert [g.method for g in groups] == ["gflowout", "mc_dropout"]
    mc = groups[1]
    assert mc.seeds == [1, 2]
    mean, se = mc.get("clean", "accuracy")
    # two values 0.90, 0.94: mean 0.92, sample std 0.02*sqrt(2), se = std / sqrt(2) = 0.02
    assert mean == pytest.approx(0.92) and se == pytest.approx(0.02)
    assert mc.get("shifts", "shot_noise", "2", "accuracy")[0] == pytest.approx(0.82)
    assert mc.get("train_time_s")[0] == pytest.approx(15.0)
    assert math.isnan(groups[0].get("clean", "accuracy")[1])


def test_write_report_tables_figures_and_html(tmp_path: Path):
    results = tmp_path / "results"
    for method, seed, acc in [("gflowout", 1, 0.96), ("gflowout", 2, 0.98), ("mc_dropout", 1, 0.93)]:
        write_json_atomic(results / f"mnist__{method}__seed{seed}.json", fake_result(method, seed, acc))
    (results / "notes.json").write_text(json.dumps({"not": "a result"}))  # ignored: no schema key
    assert len(load_results(results)) == 3

    html_path = write_report(results, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| gflowout | 2 | 0.9700 ± 0.0100 |" in markdown  # 0.96, 0.98 -> mean 0.97, se 0.01
    assert "| mc_dropout | 1 | 0.9300 |" in markdown
    assert "OOD detection: mnist (in) vs fashion-mnist (out)" in markdown
    assert "| mc_dropout | mutual information | 0.7000 | 0.6000 | 0.5000 |" in markdown
    assert "shot_noise" in markdown and "accuracy vs fixed rotation angle" in markdown
    assert "| method | alpha | PAvPU ↑ | uncertain fraction |" in markdown  # t-test table, rows per alpha
    assert "| gflowout | 0.05 | 0.9000 ± 0.0000 | 0.1000 ± 0.0000 |" in markdown

    pngs = sorted((tmp_path / "report" / "figures").glob("*.png"))
    names = {p.name for p in pngs}
    assert {
        "mnist_reliability_clean.png",
        "mnist_severity.png",
        "mnist_shift_accuracy.png",
        "mnist_rotation.png",
        "mnist_ood_hist_fashion-mnist.png",
        "mnist_ood_roc_fashion-mnist.png",
    } <= names
    for png in pngs:
        image = mpimg.imread(png)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 0  # not a blank canvas

    page = html_path.read_text()
    assert "<table>" in page and "0.9700 ± 0.0100" in page
    inline = page.split('src="data:image/png;base64,')[1:]
    assert len(inline) == len(pngs)
    first = base64.b64decode(inline[0].split('"')[0])
    assert mpimg.imread(io.BytesIO(first), format="png").ndim == 3
    assert "figures/" not in page  # self-contained: no links to files


def test_a_metric_missing_in_some_seeds_says_how_many_it_rests_on():
    """A metric can be undefined in a run (stored as null); its mean over the other seeds used to look like a
    mean over all of them."""
    from gflowout.eval.report import format_stat

    runs = [fake_result("none", seed, 0.9) for seed in (1, 2, 3)]
    for run in runs[1:]:
        run["uncertainty"]["clean"]["0.05"]["pavpu"] = None
    group = aggregate(runs)["mnist"][0]
    assert format_stat(group.get("uncertainty", "clean", "0.05", "pavpu")) == "0.9000 (n=1)"
    assert format_stat(group.get("clean", "accuracy")) == "0.9000 ± 0.0000"  # every seed: no count shown


def test_a_constant_ood_score_reads_undefined_and_rows_without_values_are_left_out():
    from gflowout.eval.report_tables import build_tables
    from tests.helpers.report import fixture_runs

    runs = fixture_runs()
    for run in runs:
        run["ts"] = {"temperature": 1.2, "clean": dict(run["clean"])}  # "+ TS" rows: no uncertainty section
        if run["method"] == "none":  # a deterministic network: its mutual information is 0 for every image
            for scores in run["ood"].values():
                scores["mutual_information"] = {"auroc": 0.5, "aupr": 0.5, "fpr95": 1.0}
            tied = {"aurc": 0.0216, "accuracy_at_90": 0.9784, "accuracy_at_95": 0.9784, "accuracy_at_99": 0.9784}
            run.setdefault("selective", {}).setdefault("clean", {})["negative_mutual_information"] = tied
            run["selective"]["clean"].setdefault(
                "max_probability",
                {"aurc": 0.0012, "accuracy_at_90": 0.997, "accuracy_at_95": 0.994, "accuracy_at_99": 0.984},
            )
    tables = build_tables("mnist", aggregate(runs)["mnist"])
    ood = next(t for t in tables if t.title == "OOD detection: mnist (in) vs fashion-mnist (out)")
    cells = {(row[0], row[1]): row[2:] for row in ood.rows}
    assert set(cells[("none", "mutual information")]) == {"undefined"} and "undefined:" in ood.note
    assert "undefined" not in cells[("none", "predictive entropy")]
    assert "undefined" not in cells[("gflowout", "mutual information")]
    uncertainty = [t for t in tables if "paired t-test uncertainty metrics" in t.title]
    if any(r.get("selective") for r in runs):
        selective = next(t for t in tables if t.title.startswith("mnist: selective prediction (clean)"))
        rows = {(row[0], row[1]): row[2:] for row in selective.rows}
        assert set(rows[("none", "negative_mutual_information")]) == {"undefined"}
        assert "undefined" not in rows[("none", "max_probability")]
    assert uncertainty and all(not row[0].endswith(" + TS") for t in uncertainty for row in t.rows)
    assert all(any(cell != "-" for cell in row[2:]) for t in uncertainty for row in t.rows)
