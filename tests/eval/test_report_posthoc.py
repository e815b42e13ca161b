"""The post-hoc section of a benchmark report: comparison.json files of `gflowout posthoc` found under the
results folder, their rows over the sources' seeds, post-hoc GFlowOut tested against its source network seed by
seed (checked against scipy), the fit's cost, and a clear error for a comparison that cannot be read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy import stats

from gflowout.errors import DataError
from gflowout.eval.report import write_report
from gflowout.eval.report_posthoc import POSTHOC_REFERENCE, load_posthoc_runs, posthoc_tables
from gflowout.results import write_json_atomic
from tests.helpers.report import fixture_run, fixture_runs, write_runs

SEEDS = (1, 2, 3)


def write_comparisons(folder: Path, source: str = "mc_dropout", shift: float = 0.0) -> Path:
    """One comparison.json per seed of `source`, as `gflowout posthoc` writes it (the same fields), beside the
    fit's results.json, config.yaml and posthoc.json; `shift` is added to the post-hoc row's clean NLL."""
    for seed in SEEDS:
        out = folder / "posthoc" / f"mnist__{source}__seed{seed}"
        record = {
            "source_method": source,
            "fit_epochs": 5,
            "fit_time_s": 100.0 * seed,
            "source_train_time_s": 1000.0,
            "fit_time_fraction": 0.1 * seed,
            "resumed": seed == 2,  # stopped and resumed: its fit time is its last session's
        }
        fitted = fixture_run("gflowout", seed)
        fitted["clean"]["nll"] += shift
        results = {source: fixture_run(source, seed), POSTHOC_REFERENCE: fitted}
        evaluation = {"samples": 20, "limit": None, "severities": [3], "rotation_angles": []}
        write_json_atomic(
            out / "comparison.json", {"evaluation": evaluation, "rows": {}, "posthoc": record, "results": results}
        )
        write_json_atomic(out / "posthoc.json", record)
        write_json_atomic(out / "results.json", {"method": "gflowout", "dataset": "mnist", "seed": seed, "test": {}})
        (out / "config.yaml").write_text("method: {name: gflowout}\n")
    return folder


def test_post_hoc_rows_are_tested_against_their_source_network_seed_by_seed(tmp_path: Path):
    runs = load_posthoc_runs(write_comparisons(tmp_path))
    assert sorted((r["method"], r["seed"]) for r in runs) == sorted(
        (m, s) for m in ("mc_dropout", POSTHOC_REFERENCE) for s in SEEDS
    )
    summary, tested, cost = posthoc_tables(runs)
    assert summary.title == "mnist: post-hoc GFlowOut on the trained mc_dropout networks"
    assert [row[:2] for row in summary.rows] == [["mc_dropout", "3"], [POSTHOC_REFERENCE, "3"]]
    assert "shifts at severity 3 only" in summary.note and "S = 20; the whole test set" in summary.note
    assert tested.header == ["column", f"{POSTHOC_REFERENCE} vs mc_dropout"]
    ours = [
        next(r for r in runs if r["seed"] == s and r["method"] == POSTHOC_REFERENCE)["clean"]["accuracy"] for s in SEEDS
    ]
    theirs = [
        next(r for r in runs if r["seed"] == s and r["method"] == "mc_dropout")["clean"]["accuracy"] for s in SEEDS
    ]
    p_value = stats.ttest_rel(ours, theirs).pvalue
    cell = tested.rows[0][1]
    assert tested.rows[0][0] == "accuracy ↑" and cell.startswith("better (+0.05")  # the fixture's +0.05 offset
    assert f"p = {p_value:.3f}" in cell or (p_value < 0.001 and "p < 0.001" in cell)
    assert cost.header[0] == "seed" and "no mean is taken" in cost.note  # partial times are not averaged
    assert cost.rows == [
        ["1", "5", "100", "1000", "0.100", "no"],
        ["2", "5", "200", "1000", "0.200", "yes"],
        ["3", "5", "300", "1000", "0.300", "no"],
    ]


def test_the_report_gives_post_hoc_fits_their_own_section_and_leaves_them_out_of_the_grid(tmp_path: Path):
    write_runs(tmp_path / "results", fixture_runs())
    write_comparisons(tmp_path)
    write_report(tmp_path, tmp_path / "report", embed_figures=False)
    text = (tmp_path / "report" / "report.md").read_text()
    grid, posthoc = text.split("## Post-hoc GFlowOut on the trained networks", 1)
    assert grid.startswith("# gflowout report\n\n9 run(s)")  # the fits' run folders are not training runs
    assert POSTHOC_REFERENCE not in grid
    assert "is post-hoc GFlowOut better than the mc_dropout network it was fitted on?" in posthoc
    assert "<h2>Post-hoc GFlowOut on the trained networks</h2>" in (tmp_path / "report" / "report.html").read_text()
    assert load_posthoc_runs(tmp_path / "results") == []  # no comparison: no section


def test_an_unreadable_comparison_says_which_file(tmp_path: Path):
    broken = tmp_path / "posthoc" / "run" / "comparison.json"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"posthoc": {')
    with pytest.raises(DataError, match=r"cannot read the post-hoc comparison .*comparison.json"):
        load_posthoc_runs(tmp_path)
    broken.write_text(json.dumps({"posthoc": {}, "results": {"mc_dropout": {"seed": 1}}}))
    with pytest.raises(DataError, match="row 'mc_dropout' has no 'dataset' and 'seed'"):
        load_posthoc_runs(tmp_path)


def test_fits_on_different_source_networks_are_reported_apart(tmp_path: Path):
    write_comparisons(tmp_path, "mc_dropout")
    write_comparisons(tmp_path, "none", shift=0.3)  # the fits on `none` have a much higher NLL
    tables = posthoc_tables(load_posthoc_runs(tmp_path))
    titles = [t.title for t in tables]
    assert "mnist: post-hoc GFlowOut on the trained mc_dropout networks" in titles
    assert "mnist: post-hoc GFlowOut on the trained none networks" in titles
    mc_summary = tables[titles.index("mnist: post-hoc GFlowOut on the trained mc_dropout networks")]
    assert [row[:2] for row in mc_summary.rows] == [["mc_dropout", "3"], [POSTHOC_REFERENCE, "3"]]  # not 6 seeds
    mc_tests = tables[titles.index("mnist: is post-hoc GFlowOut better than the mc_dropout network it was fitted on?")]
    nll = mc_tests.rows[[r[0] for r in mc_tests.rows].index("NLL ↓")][1]
    assert not nll.startswith("worse (+0.3")  # the other source's shift does not leak into this pairing


def test_the_same_source_network_twice_is_refused(tmp_path: Path):
    write_comparisons(tmp_path)
    copy = tmp_path / "again" / "mnist__mc_dropout__seed1"
    copy.mkdir(parents=True)
    (copy / "comparison.json").write_text(
        (tmp_path / "posthoc" / "mnist__mc_dropout__seed1" / "comparison.json").read_text()
    )
    with pytest.raises(DataError, match="two post-hoc comparisons of the mc_dropout network of seed 1"):
        posthoc_tables(load_posthoc_runs(tmp_path))


def test_a_post_hoc_fit_stopped_before_its_record_is_no_training_run(tmp_path: Path):
    from gflowout.results import load_report_runs

    write_runs(tmp_path / "results", fixture_runs())
    fit = tmp_path / "posthoc" / "stopped"
    write_json_atomic(fit / "results.json", {"method": "gflowout", "dataset": "mnist", "seed": 7, "test": {}})
    (fit / "config.yaml").write_text("method: {name: gflowout, options: {freeze_backbone: true, beta: 1.0}}\n")
    assert all(run["seed"] != 7 for run in load_report_runs(tmp_path))
    (fit / "config.yaml").write_text("method: {name: gflowout, options: {beta: 1.0}}\n")  # a training of its own
    assert any(run["seed"] == 7 for run in load_report_runs(tmp_path))
