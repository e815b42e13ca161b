"""`gflowout masks` end to end on a tiny real-MNIST run of our own harness: the table, JSON and figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gflowout.cli.main import main
from gflowout.errors import DataError

REPO = Path(__file__).resolve().parents[2]


def _mnist_available() -> bool:
    try:
        from gflowout.data.datasets import load_split

        load_split("mnist", "test")
        return True
    except (DataError, OSError):
        return False


@pytest.mark.skipif(not _mnist_available(), reason="needs MNIST: gflowout data fetch mnist")
def test_masks_command_on_a_trained_run(tmp_path, capsys, one_torch_thread):
    run = tmp_path / "run"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
    )
    command = [
        sys.executable,
        "-m",
        "gflowout.cli.main",
        "train",
        "--config",
        str(REPO / "configs" / "tiny_mnist.yaml"),
        "--method",
        "id_gflowout",
        "--seed",
        "1",
        "--out",
        str(run),
        "--set",
        "trainer.max_epochs=1",
        "--devices",
        "1",
        "--accelerator",
        "cpu",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "masks"
    assert (
        main(
            [
                "masks",
                str(run),
                "--out",
                str(out),
                "--samples",
                "3",
                "--limit",
                "30",
                "--condition",
                "clean",
                "--condition",
                "random_rotation",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "| id_gflowout | 1 | random_rotation |" in printed
    result = json.loads((out / "masks.json").read_text())["runs"][0]
    assert list(result["conditions"]) == ["clean", "random_rotation"]
    sites = result["conditions"]["clean"]["sites"]
    assert list(sites) == ["hidden.2", "hidden.5"]
    for stats in sites.values():
        assert 0.0 < stats["intra_mean"] <= stats["intra_max"] <= 1.0  # sampled masks differ between samples
        assert 0.0 <= stats["inter_mean"] <= stats["inter_max"] <= 1.0
    with np.load(out / "class_means.npz") as class_means:
        assert class_means["id_gflowout_seed1/clean/hidden.2"].shape == (10, 32)
    assert (out / "figures" / "mask_diversity.png").stat().st_size > 0
    assert (out / "figures" / "class_means_id_gflowout_seed1.png").stat().st_size > 0
    assert "## Mask analysis" in (out / "masks.md").read_text()


def test_masks_help(capsys):
    with pytest.raises(SystemExit):
        main(["masks", "--help"])
    assert "RUN_DIR" in capsys.readouterr().out
