"""learning.json from a real run folder: curves from the CSV logs, epoch times from the events, and the mask
diagnostics of the best and last checkpoints (gflowout.experiments.learning)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gflowout.experiments.learning import collect_learning, learning_for_report, read_learning, run_learning
from gflowout.results import write_json_atomic
from tests.helpers.train import TINY_CONFIG, run_fit

GFLOWOUT = ("method.name=gflowout", "method.options={}", "trainer.max_epochs=3")


@pytest.fixture(scope="module")
def gflowout_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("runs")
    run_fit(TINY_CONFIG, runs / "synthetic__gflowout__seed3", overrides=GFLOWOUT)
    return runs


def test_a_run_folder_gives_curves_timing_and_checkpoint_masks(gflowout_run: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))  # the stand-in data module of the tiny config
    record = run_learning(gflowout_run / "synthetic__gflowout__seed3")
    curves = record["curves"]
    assert sorted(curves["train/keep_rate_epoch"], key=int) == ["0", "1", "2"]
    assert all(0.0 < value < 1.0 for value in curves["train/keep_rate_epoch"].values())
    assert {"train/log_forward_epoch", "train/beta_epoch", "val/nll", "masks/log_z"} <= set(curves)
    assert record["timing"]["epochs"] == 2 and record["timing"]["median_s"] > 0  # epoch 0 has no start in the file
    last = record["checkpoints"]["last"]
    assert last["epoch"] == 2 and last["units"] == 32
    means = last["site_means"]
    assert set(means) >= {"q_keep", "q_entropy", "p_keep", "p_entropy", "keep_rate"}
    assert 0.0 <= means["q_entropy"] <= 0.6932 and 0.0 < means["p_keep"] < 1.0
    sites = [key for key in last["diagnostics"] if key.endswith("/q_entropy")]
    assert len(sites) == 2
    assert means["q_entropy"] == pytest.approx(sum(last["diagnostics"][k] for k in sites) / 2)


def test_collect_writes_a_learning_json_the_report_can_read(gflowout_run: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    written = collect_learning(gflowout_run, tmp_path / "learning.json", log=lambda line: None)
    assert read_learning(tmp_path / "learning.json") == written
    assert list(written) == ["synthetic__gflowout__seed3"]
    with pytest.raises(FileNotFoundError, match="no run folders"):
        collect_learning(tmp_path, tmp_path / "other.json", log=lambda line: None)
    (tmp_path / "bad.json").write_text('{"runs": []}')
    with pytest.raises(ValueError, match="not a learning.json"):
        read_learning(tmp_path / "bad.json")


def test_a_report_keeps_the_records_of_runs_whose_folders_are_gone(gflowout_run: Path, tmp_path: Path, monkeypatch):
    """A runs folder that lost some run folders (a purged scratch disk, a new machine) rewrites learning.json
    from the folders left and keeps the earlier records of the other finished runs: none is lost."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    results, report = tmp_path / "results", tmp_path / "report"
    results.mkdir()
    for run_id in ("synthetic__gflowout__seed3", "synthetic__mc_dropout__seed1"):
        (results / f"{run_id}.json").write_text("{}")
    gone = {"curves": {"val/nll": {"4": 0.07}}, "timing": None, "checkpoints": {}}
    earlier = {"synthetic__mc_dropout__seed1": gone, "synthetic__none__seed9": gone}  # the second has no result
    write_json_atomic(report / "learning.json", {"schema_version": 1, "runs": earlier})
    learning = learning_for_report(results, report, runs=gflowout_run)
    assert list(learning) == ["synthetic__gflowout__seed3", "synthetic__mc_dropout__seed1"]
    assert learning["synthetic__mc_dropout__seed1"] == gone
    assert learning["synthetic__gflowout__seed3"]["checkpoints"]["last"]["epoch"] == 2  # distilled afresh
    assert read_learning(report / "learning.json") == learning
    (report / "learning.json").write_text("{")  # an unreadable earlier file is rewritten, not a stop
    assert list(learning_for_report(results, report, runs=gflowout_run)) == ["synthetic__gflowout__seed3"]
