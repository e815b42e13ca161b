"""Mask diagnostics in the harness: logged per epoch to CSV and TensorBoard, a residual above the threshold is warned
about and recorded, the run report draws them, and training is bit-identical with or without them."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import torch

from gflowout.config import load_config
from gflowout.eval.mask_report import read_mask_diagnostics
from gflowout.training.resume import settings_digest
from tests.helpers.train import REPO, TINY_CONFIG, assert_runs_end_identical, fit_command, run_fit, subprocess_env

GFLOWOUT = ("method.name=gflowout", "method.options={}", "trainer.max_epochs=2")


def test_diagnostics_are_logged_warned_and_drawn_and_leave_training_unchanged(tmp_path: Path) -> None:
    on, off = tmp_path / "on", tmp_path / "off"
    done = subprocess.run(
        fit_command(TINY_CONFIG, on, overrides=(*GFLOWOUT, "diagnostics.residual_threshold=1e-9")),
        env=subprocess_env(PYTHONWARNINGS="default"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_fit(TINY_CONFIG, off, overrides=(*GFLOWOUT, "diagnostics.enabled=false"))

    digests = [json.loads((run / "results.json").read_text())["rank_weight_digests"] for run in (on, off)]
    assert digests[0] == digests[1]  # computed in eval mode and a private RNG stream: training is the same

    # one warning per epoch, in the log
    assert done.stderr.count("ResidualWarning: epoch") == 2, done.stderr[-2000:]
    diagnostics = read_mask_diagnostics(on)
    assert sorted(diagnostics["tb_residual"]) == [0, 1]
    assert diagnostics["residual_warning"] == {0: 1.0, 1: 1.0}
    assert {"hidden.2/q_keep", "hidden.2/p_entropy", "hidden.5/keep_rate", "log_z"} <= set(diagnostics)
    assert read_mask_diagnostics(off) == {}
    header = next(csv.reader((off / "logs" / "version_0" / "metrics.csv").open()))
    assert not any(name.startswith("masks/") for name in header)
    events = b"".join(path.read_bytes() for path in (on / "tb").rglob("events.out.tfevents.*"))
    assert b"masks/tb_residual" in events and b"masks/hidden.2/q_entropy" in events

    from gflowout.cli.main import main

    assert main(["report", str(on), "--out", str(tmp_path / "report")]) == 0  # a run folder: its mask diagnostics
    text = (tmp_path / "report" / "run_report.md").read_text()
    assert "epoch(s) 0, 1" in text
    for name in ("masks_per_site.png", "masks_network.png"):
        assert (tmp_path / "report" / "figures" / name).read_bytes()[:4] == b"\x89PNG"


def test_diagnostics_defaults_are_left_out_of_digests() -> None:
    plain = load_config(TINY_CONFIG, []).to_dict()
    older = json.loads(json.dumps(plain))
    del older["diagnostics"]  # a config written before the block existed
    assert settings_digest(config=plain) == settings_digest(config=older)


def test_a_gflowout_run_with_diagnostics_resumes_bit_identical(tmp_path: Path) -> None:
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    run_fit(TINY_CONFIG, whole, overrides=(*GFLOWOUT[:2], "trainer.max_epochs=2"))
    run_fit(TINY_CONFIG, resumed, overrides=(*GFLOWOUT[:2], "trainer.max_epochs=1"))
    run_fit(TINY_CONFIG, resumed, resume=True, overrides=(*GFLOWOUT[:2], "trainer.max_epochs=2"))
    steps = int(torch.load(whole / "checkpoints" / "last.ckpt", weights_only=True)["global_step"])
    assert_runs_end_identical(whole, resumed, steps)
    assert read_mask_diagnostics(resumed)["tb_residual"] == read_mask_diagnostics(whole)["tb_residual"]


def test_the_warning_names_the_fix_that_fits_the_diagnostics() -> None:
    from gflowout.training.module import residual_warning_text

    lagging = {"masks/tb_residual": 2.6e4, "masks/log_z": -27600.0, "masks/centred_residual": 1207.0}
    assert "objective=vargrad" in residual_warning_text(3, lagging, 100.0, "tb")
    assert "objective=vargrad" not in residual_warning_text(3, lagging, 100.0, "vargrad")
    noisy = {"masks/tb_residual": 1403.0, "masks/log_z": -1275.0, "masks/centred_residual": 747.0}
    assert "does not match the reward up to a constant" in residual_warning_text(3, noisy, 100.0, "tb")
    conditional = {"masks/tb_residual": 140.0, "masks/log_z": 3.0}  # GFlowOut: log Z(x, y), no centred residual
    assert "logz_lr" in residual_warning_text(0, conditional, 100.0, None)
