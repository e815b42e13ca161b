"""`gflowout benchmark` end to end on configs/bench_tiny.yaml and real MNIST: killed and rerun, it finishes
only the remaining runs; a finished training is reused; the report aggregates mean ± SE over seeds (checked
by hand from the result files) and its figures open as images."""

from __future__ import annotations

import base64
import io
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.image as mpimg
import pytest
import torch

from gflowout.cli.main import main
from gflowout.errors import DataError

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "bench_tiny.yaml"
KEEP_THREADS = ["--threads", str(torch.get_num_threads())]  # in-process runs must not change the suite's threads
RUN_IDS = [f"mnist__{m}__seed{s}" for m in ("gflowout", "mc_dropout") for s in (1, 2)]


@pytest.fixture(scope="module")
def mnist_present():
    from gflowout.data.datasets import load_split

    try:
        load_split("mnist", "test")
    except DataError as error:
        pytest.skip(f"real MNIST is needed (`make test` fetches it): {error}")


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*.ckpt"))}


def test_benchmark_killed_rerun_reuse_and_report(mnist_present, tmp_path: Path, capsys):
    out = tmp_path / "bench"
    command = [sys.executable, "-m", "gflowout.cli.main", "benchmark", "--config", str(CONFIG), "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    first = out / "results" / f"{RUN_IDS[0]}.json"
    deadline = time.monotonic() + 120
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.exists(), "the benchmark wrote no result file before the deadline"
    process.send_signal(signal.SIGKILL)
    process.wait()
    written_before_kill = {p.name: p.read_text() for p in (out / "results").glob("*.json")}
    assert 1 <= len(written_before_kill) < 4, "kill it while runs are left, so the rerun has work to do"

    # rerun: the finished runs are skipped (their files untouched), the remaining ones are done
    assert main(["benchmark", "--config", str(CONFIG), "--out", str(out), *KEEP_THREADS]) == 0
    log = capsys.readouterr().out
    for name, text in written_before_kill.items():
        assert f"{name[:-5]}: done earlier, skipped" in log
        assert (out / "results" / name).read_text() == text
    results = {run: json.loads((out / "results" / f"{run}.json").read_text()) for run in RUN_IDS}
    for run, result in results.items():
        assert result["run_id"] == run and result["schema_version"] == 1
        assert result["config"]["method"]["name"] == result["method"] and result["train_time_s"] > 0
        assert result["train_time_all_sessions"] is True  # the Timer's sum, over the kill and the rerun too
        assert result["train_peak_rss_mb"] > 50
        assert set(result["clean"]) == {"accuracy", "nll", "brier", "ece15", "ece10"}
        assert set(result["shifts"]) == {"shot_noise", "fog"} and set(result["shifts"]["shot_noise"]) == {"1", "3"}
        assert set(result["rotation_sweep"]) == {"0", "90"} and result["test_size"] == 200
        assert 0.0 <= result["clean"]["accuracy"] <= 1.0
        # temperature scaling (on by default) on the run's validation split, and selective prediction
        assert result["temperature_scaling"]["temperature"] > 0 and result["ts"]["temperature"] > 0
        assert result["temperature_scaling"]["validation_nll_scaled"] <= result["temperature_scaling"]["validation_nll"]
        assert set(result["ts"]["clean"]) == set(result["clean"]) and set(result["ts"]["shifts"]) == {
            "shot_noise",
            "fog",
        }
        assert set(result["selective"]) == {"clean", "random_rotation"}

    # the report: mean ± standard error over the two seeds, computed here from the files
    report = (out / "report" / "report.md").read_text()
    for method in ("gflowout", "mc_dropout"):
        a, b = (results[f"mnist__{method}__seed{s}"]["clean"]["accuracy"] for s in (1, 2))
        mean, se = (a + b) / 2, abs(a - b) / 2  # n = 2: sample std |a - b| / sqrt 2, over sqrt 2
        assert f"| {method} | 2 | {mean:.4f} ± {se:.4f} |" in report
        assert f"| {method} + TS | 2 |" in report
    pngs = sorted((out / "report" / "figures").glob("*.png"))
    assert {"mnist_reliability_clean.png", "mnist_severity.png", "mnist_rotation.png"} <= {p.name for p in pngs}
    for png in pngs:
        assert mpimg.imread(png).ndim == 3
    page = (out / "report" / "report.html").read_text()
    inline = page.split('src="data:image/png;base64,')[1:]
    assert len(inline) == len(pngs) and "<table>" in page and "clean test set" in page
    assert mpimg.imread(io.BytesIO(base64.b64decode(inline[0].split('"')[0])), format="png").ndim == 3

    # `gflowout report OUT` on the benchmark folder rebuilds the same tables
    assert main(["report", str(out)]) == 0
    tables = report[report.index("## mnist") :]
    assert (out / "report" / "report.md").read_text().endswith(tables)

    # a rerun of a finished grid trains nothing; a lost result file is re-evaluated without retraining,
    # and the seeded evaluation gives the same numbers again
    checkpoints = mtimes(out / "runs")
    lost = out / "results" / f"{RUN_IDS[3]}.json"
    lost.unlink()
    assert main(["benchmark", "--config", str(CONFIG), "--out", str(out), "--no-report", *KEEP_THREADS]) == 0
    log = capsys.readouterr().out
    assert log.count("done earlier, skipped") == 3 and "training finished earlier" in log
    assert mtimes(out / "runs") == checkpoints
    again = json.loads(lost.read_text())
    assert again["clean"] == pytest.approx(results[RUN_IDS[3]]["clean"])
    assert math.isclose(again["train_time_s"], results[RUN_IDS[3]]["train_time_s"])
    assert again["train_time_all_sessions"] is True
