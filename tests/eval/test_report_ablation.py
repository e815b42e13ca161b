"""The ablation section of a benchmark report (`gflowout report MAIN --ablation DIR`): the changed setting read
from the configs, the ablated runs tested against the main ones seed by seed (checked against scipy), the shared
seeds only, the masks of both, and clear errors for ablations that cannot be compared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

from gflowout.cli.main import main
from gflowout.errors import DataError
from gflowout.eval.aggregate import aggregate
from gflowout.eval.report_ablation import Ablation, ablation_folders, ablation_tables, changed_settings, load_ablation
from gflowout.results import load_report_runs, write_json_atomic
from tests.eval.test_learning_report import learning_record
from tests.helpers.report import fixture_run, fixture_runs, write_runs

SEEDS = (1, 2, 3)
LABEL = "gflowout (beta = 1.0)"


def as_evaluated(run: dict[str, Any]) -> dict[str, Any]:
    """A fixture run as a benchmark records it: the evaluation's seed is the run's own, and the config holds every
    method's block (as real configs do)."""
    run["evaluation"]["seed"] = run["seed"]
    run["ts"] = {"temperature": 1.5, "clean": dict(run["clean"])}  # temperature scaling's section, as real runs have
    run["config"]["methods"] = {"id_gflowout": {"options": {"prior_keep": 0.5}}, "mc_dropout": {"options": {}}}
    return run


def ablated_run(seed: int, nll_shift: float = 0.2, beta: Any = 1.0) -> dict[str, Any]:
    """The fixture's gflowout run of `seed` rerun with `methods.gflowout.options.beta` = beta: its clean NLL
    higher by `nll_shift` plus a little noise of its own (so the seeds have spread)."""
    run = as_evaluated(fixture_run("gflowout", seed, offsets_seed=7))
    run["config"]["methods"]["gflowout"] = {"options": {"beta": beta}}
    run["clean"]["nll"] += nll_shift
    return run


def write_main(folder: Path, seeds: tuple[int, ...] = SEEDS) -> Path:
    write_runs(folder / "results", [as_evaluated(run) for run in fixture_runs(seeds=seeds)])
    return folder


def write_ablation(folder: Path, seeds: tuple[int, ...] = SEEDS, **kwargs: Any) -> Path:
    write_runs(folder / "results", [ablated_run(seed, **kwargs) for seed in seeds])
    return folder


def by_title(tables: list, start: str):
    return next(t for t in tables if t.title.startswith(start))


def test_the_ablated_runs_are_tested_against_the_main_ones_seed_by_seed(tmp_path: Path):
    main_runs = load_report_runs(write_main(tmp_path / "main"))
    ablation = load_ablation(write_ablation(tmp_path / "beta1"))
    tables = ablation_tables(main_runs, ablation)
    summary = by_title(tables, "mnist: ablation, gflowout (beta = 1.0) beside gflowout")
    assert [row[:2] for row in summary.rows] == [["gflowout", "3"], [LABEL, "3"]]  # mc_dropout and none stay out
    assert "`methods.gflowout.options.beta` (default) in the main runs, 1.0 here" in summary.note
    tested = by_title(tables, f"mnist: is {LABEL} better than gflowout?")
    assert tested.header == ["column", f"{LABEL} vs gflowout"]
    nll = {r["seed"]: r["clean"]["nll"] for r in ablation.runs}
    main_nll = {r["seed"]: r["clean"]["nll"] for r in main_runs if r["method"] == "gflowout"}
    p_value = stats.ttest_rel([nll[s] for s in SEEDS], [main_nll[s] for s in SEEDS]).pvalue
    cell = tested.rows[[row[0] for row in tested.rows].index("NLL ↓")][1]
    difference = sum(nll[s] - main_nll[s] for s in SEEDS) / len(SEEDS)  # the 0.2 shift plus the seeds' noise
    assert cell.startswith(f"worse ({difference:+.4f}; ")
    assert f"p = {p_value:.3f}" in cell or (p_value < 0.001 and "p < 0.001" in cell)
    per_seed = by_title(tables, "mnist: ablation, the summary columns seed by seed")
    assert [row[:2] for row in per_seed.rows] == [["gflowout", str(s)] for s in SEEDS] + [
        [LABEL, str(s)] for s in SEEDS
    ]
    assert any(g.method == "gflowout + TS" for g in aggregate(main_runs)["mnist"])  # the main report has + TS rows
    assert not any("+ TS" in row[0] for t in tables for row in t.rows)  # the ablation leaves them out
    assert "own report" not in summary.note
    (tmp_path / "beta1" / "report").mkdir()
    (tmp_path / "beta1" / "report" / "report.md").write_text("# beta = 1\n")
    again = ablation_tables(main_runs, ablation)[0]
    assert f"The ablation's own report ({tmp_path / 'beta1' / 'report' / 'report.md'}) draws" in again.note


def test_only_the_seeds_both_sides_have_are_compared(tmp_path: Path):
    main_runs = load_report_runs(write_main(tmp_path / "main"))
    tables = ablation_tables(main_runs, load_ablation(write_ablation(tmp_path / "beta1", seeds=(1, 2))))
    summary = tables[0]
    assert [row[:2] for row in summary.rows] == [["gflowout", "2"], [LABEL, "2"]]
    assert "seeds the two share (seeds 1, 2; seed 3 (main runs only) left out until the other side has it)" in (
        summary.note
    )
    assert "paired t-test, seed by seed" in tables[1].note
    with pytest.raises(DataError, match="no seed is in both"):
        ablation_tables(
            load_report_runs(write_main(tmp_path / "other", seeds=(3,))),
            load_ablation(write_ablation(tmp_path / "b2", seeds=(1, 2))),
        )


def test_the_changed_setting_must_be_the_same_in_every_seed(tmp_path: Path):
    main_runs = [as_evaluated(r) for r in fixture_runs() if r["method"] == "gflowout"]
    assert changed_settings(main_runs, [ablated_run(1), ablated_run(2)]) == {
        "methods.gflowout.options.beta": ("(default)", 1.0)
    }
    mixed = [ablated_run(1, beta=1.0), ablated_run(2, beta=0.5)]
    with pytest.raises(DataError, match="beta: \\(default\\) -> 1.0 in mnist__gflowout__seed1, .*-> 0.5 in mnist__"):
        changed_settings(main_runs, mixed)
    rerun = as_evaluated(fixture_run("gflowout", 1, offsets_seed=7))
    rerun["config"]["data"]["num_workers"] = 4  # execution and logging only: no change to the numbers
    rerun["config"]["diagnostics"] = {"enabled": False}
    rerun["config"]["trainer"]["strategy"] = "ddp"
    rerun["config"]["trainer"]["val_every_n_epochs"] = 1  # a newer key at the value that means "absent"
    rerun["config"]["methods"]["id_gflowout"]["options"]["prior_keep"] = 0.9  # another method's block
    assert changed_settings(main_runs, [rerun]) == {}


def test_each_ablated_run_is_compared_with_the_main_run_of_its_own_seed():
    main_runs = [as_evaluated(r) for r in fixture_runs() if r["method"] == "gflowout"]
    main_runs[1]["config"]["model"]["options"]["hidden"] = [64, 64]  # main seed 2 differs from seeds 1 and 3
    ablated = [ablated_run(1), ablated_run(2)]
    ablated[1]["config"]["model"]["options"]["hidden"] = [64, 64]  # ... and so does its ablated rerun
    assert changed_settings(main_runs, ablated) == {"methods.gflowout.options.beta": ("(default)", 1.0)}
    bare = ablated_run(1)
    bare["config"] = {}
    with pytest.raises(DataError, match="records no config"):
        changed_settings(main_runs, [bare])


def rewrite(folder: Path, change: Any) -> None:
    """Apply `change` to every result file under folder/results."""
    for path in (folder / "results").glob("*.json"):
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))


def test_an_ablation_evaluated_differently_or_of_another_method_is_refused(tmp_path: Path):
    main_runs = load_report_runs(write_main(tmp_path / "main"))
    folder = write_ablation(tmp_path / "beta1")
    rewrite(folder, lambda run: run.update(samples=5))  # every ablated run alike: S = 5 against the main's
    with pytest.raises(
        DataError,
        match="evaluated differently \\(samples: 4 in main run mnist__gflowout__seed1, 5 in ablated run",
    ):
        ablation_tables(main_runs, load_ablation(folder))
    rewrite(folder, lambda run: run.update(samples=4) or run["ood"].pop("animal-mnist"))
    with pytest.raises(
        DataError,
        match="ood_sets: \\['animal-mnist', 'fashion-mnist'\\] in main run mnist__gflowout__seed1, \\['fashion-mn",
    ):
        ablation_tables(main_runs, load_ablation(folder))
    rewrite(folder, lambda run: run["ood"].update({"animal-mnist": {}}))  # the ablation is as the main runs again
    assert ablation_tables(main_runs, load_ablation(folder))
    main_runs[1]["evaluation"]["batch_size"] = 7  # main gflowout seed 2 evaluated in other batches
    assert main_runs[1]["run_id"] == "mnist__gflowout__seed2"
    with pytest.raises(
        DataError,
        match="two of the main runs were evaluated differently \\(evaluation.batch_size: 100 in main run mnist__g",
    ):
        ablation_tables(main_runs, load_ablation(folder))
    contextual = fixture_run("contextual", 1)
    with pytest.raises(DataError, match="the main results have no contextual runs on mnist"):
        ablation_tables(main_runs, load_ablation(write_runs(tmp_path / "ctx" / "results", [contextual]).parent))
    with pytest.raises(DataError, match="--ablation .*nowhere: results folder .* does not exist"):
        load_ablation(tmp_path / "nowhere")


def test_the_masks_of_both_are_reported_when_both_reports_hold_a_learning_json(tmp_path: Path):
    main_runs = load_report_runs(write_main(tmp_path / "main"))
    folder = write_ablation(tmp_path / "beta1")
    learning = {
        "schema_version": 1,
        "runs": {
            "mnist__gflowout__seed1": learning_record("gflowout", 1, 30.0, 0.1),
            "mnist__gflowout__seed4": learning_record("gflowout", 4, 30.0, 0.2),  # no result: not a shared seed
        },
    }
    write_json_atomic(folder / "report" / "learning.json", learning)
    main_learning = {"mnist__gflowout__seed1": learning_record("gflowout", 1, 30.0, 0.6)}
    masks = by_title(ablation_tables(main_runs, load_ablation(folder), main_learning), "mnist: what the masks became")
    assert [(row[0], row[2], row[5]) for row in masks.rows] == [
        ("gflowout", "best", "0.693"),
        ("gflowout", "last", "0.600"),
        (LABEL, "best", "0.693"),
        (LABEL, "last", "0.100"),
    ]
    assert all("what the masks became" not in t.title for t in ablation_tables(main_runs, load_ablation(folder)))
    (folder / "report" / "learning.json").write_text("{")
    with pytest.raises(DataError, match="cannot read the ablation's .*learning.json"):
        load_ablation(folder)


def test_gflowout_report_writes_the_ablation_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    main_folder, ablation = write_main(tmp_path / "main"), write_ablation(tmp_path / "beta1")
    assert main(["report", str(main_folder), "--ablation", str(ablation)]) == 0
    text = (main_folder / "report" / "report.md").read_text()
    grid, section = text.split(f"## Ablation: {ablation}", 1)
    assert LABEL not in grid  # the ablated runs stay out of the main summary and its tests
    assert f"### mnist: is {LABEL} better than gflowout? (tests over seeds)" in section
    assert f"<h2>Ablation: {ablation}</h2>" in (main_folder / "report" / "report.html").read_text()
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in (main_folder / "report").rglob("*")}
    assert main(["report", str(main_folder), "--ablation", str(tmp_path / "typo")]) == 2
    assert "(check the --ablation path)" in capsys.readouterr().err
    fresh = tmp_path / "fresh-report"
    assert main(["report", str(main_folder), "--out", str(fresh), "--ablation", str(tmp_path / "typo")]) == 2
    assert not fresh.exists()  # the --out folder is not even created
    assert {p: p.stat().st_mtime_ns for p in (main_folder / "report").rglob("*")} == before  # nothing rewritten
    run_folder = tmp_path / "run"
    (run_folder / "logs" / "version_0").mkdir(parents=True)
    (run_folder / "logs" / "version_0" / "metrics.csv").write_text("epoch,step\n0,1\n")
    (run_folder / "config.yaml").write_text("seed: 1\n")
    capsys.readouterr()
    assert main(["report", str(run_folder), "--ablation", str(ablation)]) == 2
    assert "leave --ablation out" in capsys.readouterr().err
    assert not (run_folder / "report").exists()  # refused before anything is written


def test_an_ablation_names_what_its_configs_say_and_may_skip_sections_only(tmp_path: Path):
    main_runs = [as_evaluated(r) for r in fixture_runs() if r["method"] == "gflowout"]
    for run in main_runs:
        run["config"]["trainer"]["val_every_n_epochs"] = 5
    reruns = [as_evaluated(fixture_run("gflowout", seed, offsets_seed=7)) for seed in SEEDS]
    for run in reruns:
        run["config"]["trainer"]["val_every_n_epochs"] = 1  # the neutral value: dropped by comparisons, still shown
        run["evaluation"]["temperature_scaling"] = False  # adds no section: not an unlike evaluation
    assert changed_settings(main_runs, reruns) == {"trainer.val_every_n_epochs": (5, 1)}
    tables = ablation_tables(main_runs, Ablation(tmp_path, reruns))
    assert tables[0].title == "mnist: ablation, gflowout (val_every_n_epochs = 1) beside gflowout"


def test_the_main_folder_or_a_repeated_one_is_no_ablation(tmp_path: Path):
    main_folder, ablation = write_main(tmp_path / "main"), write_ablation(tmp_path / "beta1")
    assert ablation_folders(main_folder, [ablation]) == [ablation]
    for same in (main_folder, main_folder / "results", tmp_path):
        with pytest.raises(DataError, match="is the main results folder .* or overlaps it"):
            ablation_folders(main_folder, [same])
    with pytest.raises(DataError, match="is named twice"):
        ablation_folders(main_folder, [ablation, tmp_path / "beta1" / "."])
