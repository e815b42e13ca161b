"""float16 training is refused up front: `gflowout train --set trainer.precision=16-mixed` exits 2, names
bf16-mixed as the way out, and leaves no run behind; and that way out works end to end.

Why it is refused (config.py _check_values): Lightning's fp16 loss scaler unscales only inside
optimizer_step, so per-group clipping would clip scaled gradients. The refusal must come before
anything is written, so the --out folder stays absent (or empty).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gflowout.cli.main import main
from gflowout.config import load_config
from gflowout.errors import ConfigError
from tests.helpers.train import REPO, TINY_CONFIG, run_fit, subprocess_env


def test_without_the_precision_override_the_same_command_line_is_valid() -> None:
    """The control: the config the refusal tests use is otherwise valid, so their exit 2 is the precision guard's."""
    config = load_config(TINY_CONFIG, [])
    assert config.trainer.precision == "32-true"


def _assert_no_run(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), f"a refused run wrote {sorted(out.rglob('*'))}"


def test_cli_refuses_fp16_mixed_with_status_2_and_no_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "gflowout.cli.main",
        "train",
        "--config",
        str(TINY_CONFIG),  # its own method: it trains
        "--out",
        str(out),
        "--set",
        "trainer.precision=16-mixed",
    ]
    done = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2, f"exit status {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert "gflowout train: error:" in done.stderr
    assert "trainer.precision" in done.stderr and "'16-mixed'" in done.stderr
    assert "bf16-mixed" in done.stderr
    assert "Traceback" not in done.stderr  # one clear line, not a crash
    _assert_no_run(out)


@pytest.mark.parametrize("precision", ["16-true", "'16'"])  # '16': the YAML string (a bare 16 is an int: a type error)
def test_other_float16_spellings_are_refused_too(tmp_path: Path, precision: str, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    status = main(["train", "--config", str(TINY_CONFIG), "--out", str(out), "--set", f"trainer.precision={precision}"])
    assert status == 2
    assert "bf16-mixed" in capsys.readouterr().err
    _assert_no_run(out)


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_the_suggested_precisions_are_accepted(precision: str) -> None:
    """The control: the guard refuses float16 only, not every precision override."""
    config = load_config(TINY_CONFIG, [f"trainer.precision={precision}"])
    assert config.trainer.precision == precision


def test_load_config_raises_config_error_for_fp16() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.precision.*bf16-mixed"):
        load_config(TINY_CONFIG, ["trainer.precision=16-mixed"])


@pytest.mark.parametrize("method", ["gflowout", "contextual"])
def test_bf16_mixed_trains_validates_and_tests_end_to_end(tmp_path: Path, method: str) -> None:
    """The precision the refusal recommends must work for the methods with hand-written backwards and
    generator samplers: Lightning runs their backward and their validation predict inside autocast
    (both crashed before: a bf16 product into a float32 sum, bf16 activations into float32 buffers)."""
    import json

    out = tmp_path / method
    run_fit(
        TINY_CONFIG,
        out,
        overrides=(
            "trainer.precision=bf16-mixed",
            f"method.name={method}",
            "method.options={}",
            "trainer.max_epochs=1",
        ),
    )
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == method and results["epochs"] == 1
    assert "bf16-mixed" in (out / "config.yaml").read_text()
    assert 0.0 <= results["test"]["accuracy"] <= 1.0 and results["test"]["nll"] == results["test"]["nll"]  # not NaN
