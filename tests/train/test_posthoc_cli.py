"""`gflowout posthoc RUN --out DIR`: fits GFlowOut's generators on a trained run's frozen network (resumable), leaves
every backbone tensor bit-identical, warns for a network trained without dropout, refuses another backbone, and
writes the comparison with the source method."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from tests.helpers.train import REPO, TINY_CONFIG, run_fit, subprocess_env


def posthoc(source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "gflowout.cli.main",
        "posthoc",
        str(source),
        "--out",
        str(out),
        "--allow-custom-code",
        "--samples",
        "2",
        *extra,
    ]
    return subprocess.run(
        command, env=subprocess_env(PYTHONWARNINGS="default"), capture_output=True, text=True, timeout=180, cwd=REPO
    )


def backbone(checkpoint: Path) -> dict[str, torch.Tensor]:
    state = torch.load(checkpoint, weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("method.net.")}


def test_posthoc_fit_resume_and_comparison_on_a_network_trained_without_dropout(tmp_path: Path) -> None:
    source, out = tmp_path / "none", tmp_path / "post"
    run_fit(TINY_CONFIG, source, overrides=("method.name=none", "method.options={}", "trainer.max_epochs=1"))

    refused = posthoc(source, tmp_path / "other", "--set", "model.options.hidden=[8,8]")
    assert refused.returncode == 2 and "must use that network" in refused.stderr, refused.stderr[-2000:]

    first = posthoc(source, out, "--epochs", "1", "--no-evaluate")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "NoMaskTrainingWarning" in first.stderr and "never saw masks" in first.stderr
    resumed = posthoc(source, out, "--epochs", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    assert json.loads((out / "results.json").read_text())["epochs"] == 2
    trained = backbone(source / "checkpoints" / "best.ckpt")
    for name in ("last.ckpt", "best.ckpt"):
        fitted = backbone(out / "checkpoints" / name)
        assert fitted.keys() == trained.keys()
        assert all(torch.equal(trained[k], fitted[k]) for k in trained), name
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["gflowout"]["config"]["method"] == {
        "name": "gflowout",
        "options": {"freeze_backbone": True, "beta": 1.0},
    }
    assert len(last["optimizer_states"]) == 2  # posterior and prior: no backbone optimiser

    record = json.loads((out / "posthoc.json").read_text())
    assert record["source_method"] == "none" and record["fit_epochs"] == 2 and record["fit_time_s"] > 0
    rows = json.loads((out / "comparison.json").read_text())["rows"]
    assert set(rows) == {"none", "mc_dropout (same network)", "gflowout (post-hoc)"}
    assert all(0.0 <= row["accuracy"] <= 1.0 and row["nll"] > 0 for row in rows.values())
    assert "| gflowout (post-hoc) |" in (out / "comparison.md").read_text()

    # the report of a folder holding both runs: the source as a training run, the fit in its own section
    report = subprocess.run(
        [sys.executable, "-m", "gflowout.cli.main", "report", str(tmp_path), "--out", str(tmp_path / "report")],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "report" / "report.md").read_text()
    assert text.startswith("# gflowout report\n\n1 run(s) from")  # the post-hoc folder is no training run
    posthoc_part = text.split("## Post-hoc GFlowOut on the trained networks", 1)[1]
    assert "post-hoc GFlowOut on the trained none networks" in posthoc_part
    assert "| gflowout (post-hoc) | 1 |" in posthoc_part and "| mc_dropout (same network) | 1 |" in posthoc_part
    assert "the cost of the post-hoc fit" in posthoc_part
