"""End to end through the `gflowout` command: train a tiny real-MNIST run, evaluate it, and the error paths.

Uses real MNIST (`make test` fetches it); without it, the synthetic stand-in data module (the same
commands, a different data set).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gflowout.checkpoint import load_method
from gflowout.cli.main import main
from gflowout.errors import DataError
from tests.helpers.train import REPO, TINY_CONFIG, subprocess_env


def _mnist_available() -> bool:
    try:
        from gflowout.data.datasets import load_split

        load_split("mnist", "test")
        return True
    except (DataError, OSError):
        return False


def _gflowout(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "import sys; from gflowout.cli.main import main; sys.exit(main())", *args]
    return subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    config = REPO / "configs" / "tiny_mnist.yaml" if _mnist_available() else TINY_CONFIG
    out = tmp_path_factory.mktemp("cli") / "run"
    done = _gflowout(
        "train",
        "--config",
        str(config),
        "--method",
        "none",
        "--seed",
        "2",
        "--out",
        str(out),
        "--set",
        "trainer.max_epochs=2",
        "--devices",
        "1",
        "--accelerator",
        "cpu",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"run folder: {out}" in done.stdout
    return config, out


def test_train_writes_the_run_folder(trained_run: tuple[Path, Path]) -> None:
    config, out = trained_run
    for name in ("config.yaml", "results.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (out / name).is_file(), name
    assert list((out / "logs").glob("version_*/metrics.csv")) and list((out / "tb").glob("version_*/events.*"))
    results = json.loads((out / "results.json").read_text())
    assert results["method"] == "none" and results["seed"] == 2 and results["epochs"] == 2
    expected_test = 10000 if config.name == "tiny_mnist.yaml" else 120
    assert results["test"]["count"] == expected_test
    header = (next((out / "logs").glob("version_*/metrics.csv"))).read_text().splitlines()[0]
    for column in ("loss/backbone_step", "loss/backbone_epoch", "val/nll", "val/accuracy", "val/ece", "lr/backbone"):
        assert column in header.split(","), column
    best = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["gflowout"]["method"] == "none" and best["gflowout"]["dataset"] == (
        "mnist" if expected_test == 10000 else "synthetic"
    )


def test_evaluate_matches_an_independent_pass_and_the_training_test(
    trained_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture, one_torch_thread: None
) -> None:
    config, out = trained_run
    report = tmp_path / "eval.json"
    torch.manual_seed(123)
    state = torch.get_rng_state()
    trust = (
        [] if config.name == "tiny_mnist.yaml" else ["--allow-custom-code"]
    )  # the synthetic stand-in is a module:Class
    assert main(["evaluate", str(out), "--samples", "3", "--json", str(report), *trust]) == 0
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream is left alone
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(report.read_text()) == printed
    assert printed["samples"] == 3 and printed["checkpoint"].endswith("best.ckpt")

    # independent: the best checkpoint's predictions on the test split, metrics by gflowout.eval.metrics
    from gflowout.eval.metrics import classification_metrics
    from gflowout.eval.predictive import log_mean_probs, mean_probs
    from gflowout.training.build import build_datamodule

    method, cfg = load_method(out, allow_custom_code=True)
    datamodule = build_datamodule(cfg.data)
    datamodule.setup("test")
    batches = [(method.predict(x, samples=3), y) for x, y in datamodule.test_dataloader()]
    logits = torch.cat([b[0] for b in batches], dim=1)
    labels = torch.cat([b[1] for b in batches])
    reference = classification_metrics(mean_probs(logits), labels, log_probs=log_mean_probs(logits))
    for name in ("accuracy", "nll", "brier", "ece"):
        assert printed[name] == pytest.approx(reference[name], rel=1e-6, abs=1e-9), name
    # method "none" is deterministic, so the test pass inside `train` must agree too
    trained = json.loads((out / "results.json").read_text())["test"]
    for name in ("accuracy", "nll", "brier", "ece"):
        assert trained[name] == pytest.approx(reference[name], rel=1e-6, abs=1e-9), name


def test_existing_run_is_refused_without_resume(trained_run: tuple[Path, Path], capsys: pytest.CaptureFixture) -> None:
    config, out = trained_run
    before = (out / "checkpoints" / "last.ckpt").read_bytes()
    assert main(["train", "--config", str(config), "--method", "none", "--seed", "2", "--out", str(out)]) == 2
    assert "already holds last.ckpt; pass --resume" in capsys.readouterr().err
    assert (out / "checkpoints" / "last.ckpt").read_bytes() == before


def test_config_errors_reach_the_user_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["train", "--config", str(TINY_CONFIG), "--out", str(tmp_path / "x"), "--set", "trainer.max_epoch=2"])
    err = capsys.readouterr().err
    assert code == 2 and "did you mean 'max_epochs'?" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    assert main(["evaluate", str(tmp_path / "missing.ckpt")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_help_has_examples(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"gflowout {command}" in text
    if command == "train":
        assert "--strategy ddp" in text and "--resume" in text and "--set" in text


@pytest.mark.parametrize(
    "argv",
    [
        ["evaluate", "run", "--samples", "0"],
        ["evaluate", "run", "--batch-size", "-3"],
        ["demo", "--epochs", "0"],
        ["train", "--config", "c.yaml", "--num-nodes", "x"],
    ],
)
def test_counts_on_the_command_line_must_be_positive(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    """`evaluate --samples 0` used to reach predict and end in a traceback (status 1)."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2 and "expected a positive integer" in capsys.readouterr().err


def test_train_ends_with_the_test_metrics_and_takes_root(trained_run: tuple[Path, Path], tmp_path: Path) -> None:
    """`gflowout train` ended with "run folder: ..." only; a new user wants the test metrics there."""
    config, out = trained_run
    results = json.loads((out / "results.json").read_text())
    from gflowout.cli.train import final_summary

    summary = final_summary(out)
    assert f"accuracy {results['test']['accuracy']:.4f}" in summary and "NLL" in summary and "ECE" in summary
    # --root is accepted (the only data-using command without it) and reaches the config
    done = _gflowout(
        "train",
        "--config",
        str(config),
        "--out",
        str(tmp_path / "r"),
        "--root",
        str(tmp_path / "empty"),
        "--set",
        "trainer.max_epochs=1",
    )
    if config.name == "tiny_mnist.yaml":
        assert done.returncode == 2 and str(tmp_path / "empty") in done.stderr  # MNIST is not in that root


@pytest.mark.skipif(not _mnist_available(), reason="needs MNIST (`gflowout data fetch mnist`)")
def test_evaluate_runs_shifts_rotations_and_ood_of_one_run(trained_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = trained_run
    target = tmp_path / "full.json"
    done = _gflowout(
        "evaluate",
        str(out),
        "--shifts",
        "fog",
        "--severities",
        "1,3",
        "--rotation",
        "--rotation-angles",
        "0,90",
        "--ood",
        "default",
        "--limit",
        "100",
        "--samples",
        "2",
        "--json",
        str(target),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(target.read_text())
    assert set(result["shifts"]) == {"fog"} and set(result["shifts"]["fog"]) == {"1", "3"}
    assert "random_rotation" in result and set(result["rotation_sweep"]) == {"0", "90"}
    assert result["test_size"] == 100 and "rotated acc" in done.stdout
    # temperature scaling on the validation split (its fixed 100-row subset) and selective prediction, as the benchmark
    assert result["temperature_scaling"]["validation_size"] == 100 and set(result["ts"]["shifts"]) == {"fog"}
    assert set(result["selective"]) == {"clean", "random_rotation"} and "none + TS" in done.stdout
    bad = _gflowout("evaluate", str(out), "--shifts", "fgo", "--limit", "10")
    assert bad.returncode == 2 and "did you mean 'fog'?" in bad.stderr and "Traceback" not in bad.stderr


def test_a_text_file_given_as_a_checkpoint_is_named_as_such(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    text = tmp_path / "notes.ckpt"
    text.write_text("epoch 3 was the best\n")
    assert main(["evaluate", str(text)]) == 2
    assert "is not a checkpoint file (a text file" in capsys.readouterr().err


def test_evaluate_fits_a_temperature_on_the_validation_split_and_reports_ts_and_selective(
    trained_run: tuple[Path, Path], capsys: pytest.CaptureFixture, one_torch_thread: None
) -> None:
    """T is that of an independent fit on the run's validation split; "ts" are the test metrics of the logits / T
    (computed here from the checkpoint's own predictions); a row METHOD + TS goes to stderr."""
    from gflowout.eval.metrics import classification_metrics
    from gflowout.eval.predictive import log_mean_probs, mean_probs
    from gflowout.eval.selective import aurc
    from gflowout.eval.temperature import fit_temperature
    from gflowout.training.build import build_datamodule

    config, out = trained_run
    trust = [] if config.name == "tiny_mnist.yaml" else ["--allow-custom-code"]
    assert main(["evaluate", str(out), "--samples", "2", *trust]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert "none + TS (T=" in captured.err

    method, cfg = load_method(out, allow_custom_code=True)  # "none": deterministic, so the logits are the same here
    datamodule = build_datamodule(cfg.data)
    datamodule.setup("fit")
    val = [(method.predict(x, samples=1), y) for x, y in datamodule.val_dataloader()]
    expected_t = fit_temperature(torch.cat([v[0] for v in val], dim=1), torch.cat([v[1] for v in val]))
    assert printed["temperature"] == pytest.approx(expected_t, rel=1e-6)
    datamodule.setup("test")
    batches = [(method.predict(x, samples=1), y) for x, y in datamodule.test_dataloader()]
    logits, labels = torch.cat([b[0] for b in batches], dim=1), torch.cat([b[1] for b in batches])
    scaled = logits / expected_t
    reference = classification_metrics(mean_probs(scaled), labels, log_probs=log_mean_probs(scaled))
    for name in ("accuracy", "nll", "brier", "ece"):
        assert printed["ts"][name] == pytest.approx(reference[name], rel=1e-5, abs=1e-8), name
    assert printed["ts"]["accuracy"] == printed["accuracy"]
    confidence = mean_probs(logits).max(dim=-1).values
    correct = mean_probs(logits).argmax(dim=-1) == labels
    assert printed["selective"]["max_probability"]["aurc"] == pytest.approx(aurc(confidence, correct), rel=1e-6)

    assert main(["evaluate", str(out), "--samples", "2", "--no-temperature-scaling", *trust]) == 0
    assert "ts" not in json.loads(capsys.readouterr().out)
