"""Shared helpers of the harness tests: run the stand-in training in a fresh, single-threaded process.

A plain module (not conftest.py), imported as `from tests.helpers.train import ...`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STANDINS = REPO / "tests" / "train"  # train_standins.py (named by configs/tiny_synthetic.yaml) and fit_standin.py
TINY_CONFIG = REPO / "configs" / "tiny_synthetic.yaml"


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment of a child run: the stand-ins importable, one thread (bitwise-reproducible CPU maths)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(STANDINS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.update(extra)
    return env


def wait_for_stall(process: subprocess.Popen, marker: Path, timeout: float = 90) -> None:
    """Wait until the run's stalling collate writes `marker` (see train_standins.StallingCollate); fail the test
    with the run's stderr if it ends first, or if it never gets there."""
    deadline = time.monotonic() + timeout
    while not marker.exists():
        assert process.poll() is None, f"the run ended before the stall point:\n{process.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, "the run never reached the stall point"
        time.sleep(0.05)


def fit_command(config: Path, out: Path, resume: bool = False, overrides: tuple[str, ...] = ()) -> list[str]:
    return [
        sys.executable,
        str(STANDINS / "fit_standin.py"),
        str(config),
        str(out),
        "resume" if resume else "fresh",
        *overrides,
    ]


def run_fit(
    config: Path, out: Path, resume: bool = False, overrides: tuple[str, ...] = (), timeout: float = 120, **env: str
) -> None:
    """Train in a child process (extra environment variables `env`); fail the test with its output when it fails."""
    done = subprocess.run(
        fit_command(config, out, resume, overrides),
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert done.returncode == 0, f"training failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def assert_runs_end_identical(reference: Path, resumed: Path, global_step: int) -> None:
    """The two run folders end bit-identical: final step, every weight and optimiser moment (torch.equal),
    test metrics, best validation NLL, the ranks' weight digests and the best checkpoint's step."""
    import json

    import torch

    final_ref = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)
    final_res = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert final_ref["global_step"] == final_res["global_step"] == global_step
    assert final_ref["state_dict"].keys() == final_res["state_dict"].keys()
    for name, tensor in final_ref["state_dict"].items():
        assert torch.equal(tensor, final_res["state_dict"][name]), f"weights {name} differ after the resume"
    for state_ref, state_res in zip(final_ref["optimizer_states"], final_res["optimizer_states"]):
        for key, moments in state_ref["state"].items():
            for moment, value in moments.items():
                assert torch.equal(value, state_res["state"][key][moment]), f"optimiser {moment} differs"
    results_ref = json.loads((reference / "results.json").read_text())
    results_res = json.loads((resumed / "results.json").read_text())
    for key in ("test", "best_val_nll", "rank_weight_digests"):
        assert results_ref[key] == results_res[key], key
    best_ref = torch.load(reference / "checkpoints" / "best.ckpt", weights_only=True)
    best_res = torch.load(resumed / "checkpoints" / "best.ckpt", weights_only=True)
    assert best_ref["global_step"] == best_res["global_step"]
