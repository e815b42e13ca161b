"""Transfer from noisy pre-training: fine-tuning starts from the pre-trained weights (and from-scratch training
does not), the noisy labels cover every class at the asked rate, a killed run resumes at its next subset, bad
configs raise ConfigError, and the command runs end to end on real MNIST with a report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gflowout.cli.main import main
from gflowout.errors import CheckpointError, ConfigError, DataError
from gflowout.experiments import plain_training
from gflowout.experiments import transfer as tr
from gflowout.experiments.downstream_config import (
    TrainingSettings,
    TransferConfig,
    TransferSettings,
    check_transfer,
    load_transfer_config,
)
from gflowout.experiments.plain_training import build_seeded_method
from tests.helpers.downstream import CLASSES, harness, synthetic_data

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny tensors: one torch thread (the fixture is in tests/conftest.py)."""


def tiny_config(method: str = "mc_dropout", scratch: bool = True) -> TransferConfig:
    return TransferConfig(
        config=harness(),
        methods=[method],
        seeds=[1],
        device="cpu",
        transfer=TransferSettings(
            noise_rate=0.3,
            subset_sizes=[12, 24],
            pretrain=TrainingSettings(steps=6, batch_size=16),
            finetune=TrainingSettings(steps=3, batch_size=8),
            scratch=scratch,
        ),
    )


def run(config: TransferConfig, out: Path, log=lambda line: None) -> dict:
    spec = tr.TransferRun("mnist", config.methods[0], 1)
    return tr.run_one(
        spec,
        config,
        synthetic_data(),
        config.harness_config("mnist", spec.method, 1, None),
        out,
        torch.device("cpu"),
        log,
    )


@pytest.mark.parametrize(
    "method", ["mc_dropout", "gflowout", "concrete", "id_gflowout", "contextual", "none", "ensemble"]
)
def test_fine_tuning_starts_from_the_pretrained_weights(tmp_path: Path, monkeypatch, method: str):
    """The weights each training starts from, captured at its first step, against the saved pre-trained ones."""
    starts: dict[tuple[int, ...], dict[str, torch.Tensor]] = {}
    original = plain_training.train_for_steps  # every protocol step trains through it (train_then_test)

    def capturing(model, x, y, **kwargs):
        starts[kwargs["position"]] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return original(model, x, y, **kwargs)

    monkeypatch.setattr(plain_training, "train_for_steps", capturing)
    result = run(tiny_config(method), tmp_path)
    pretrained = torch.load(tmp_path / "runs" / f"mnist__{method}__seed1" / "pretrained.pt", weights_only=True)
    saved = pretrained["state_dict"]
    fresh_pretraining_start = starts[(tr.PRETRAIN,)]
    assert any(not torch.equal(saved[k], fresh_pretraining_start[k]) for k in saved), "pre-training changed nothing"
    for size in (12, 24):
        finetune_start = starts[(tr.FINETUNE, size)]
        assert finetune_start.keys() == saved.keys()
        assert all(torch.equal(finetune_start[k], saved[k]) for k in saved), "fine-tuning did not load the weights"
        scratch_start = starts[(tr.SCRATCH, size)]
        assert any(not torch.equal(scratch_start[k], saved[k]) for k in saved), (
            "the from-scratch reference is not fresh"
        )
        assert result["subsets"][str(size)]["finetuned"]["start_weights_digest"] == pretrained["weights_digest"]


def test_pretraining_noise_covers_every_class(tmp_path: Path):
    result = run(tiny_config(), tmp_path)
    assert result["pretrained"]["noise_rate"] == pytest.approx(0.3, abs=1 / 150)
    counts = result["pretrained"]["noisy_label_counts"]
    assert len(counts) == CLASSES and all(c > 0 for c in counts) and sum(counts) == 45


def test_load_pretrained_refuses_weights_of_another_model():
    config = tiny_config()
    data = synthetic_data()
    small = build_seeded_method(
        config.harness_config("mnist", "mc_dropout", 1, None), CLASSES, data.input_shape, 10, 1, 0
    )
    wide_config = TransferConfig(config=harness(hidden=(9, 8)), methods=["mc_dropout"], seeds=[1])
    wide = build_seeded_method(
        wide_config.harness_config("mnist", "mc_dropout", 1, None), CLASSES, data.input_shape, 10, 1, 0
    )
    from gflowout.experiments.plain_training import weights_digest

    state = {k: v.clone() for k, v in wide.state_dict().items()}
    with pytest.raises(CheckpointError, match="do not fit"):
        tr.load_pretrained(small, {"state_dict": state, "weights_digest": weights_digest(state)})


class Killed(Exception):
    pass


def test_a_killed_run_resumes_at_its_next_subset(tmp_path: Path):
    config = tiny_config("gflowout")
    uninterrupted = run(config, tmp_path / "a")

    def kill_after_first_subset(line: str) -> None:
        if "12 clean images" in line:
            raise Killed

    with pytest.raises(Killed):
        run(config, tmp_path / "b", kill_after_first_subset)
    state = json.loads((tmp_path / "b" / "runs" / "mnist__gflowout__seed1" / "state.json").read_text())
    assert list(state["subsets"]) == ["12"]
    lines: list[str] = []
    resumed = run(config, tmp_path / "b", lines.append)
    assert not any("pre-trained" in line or "12 clean" in line for line in lines), "finished work was redone"
    for size in ("12", "24"):
        for kind in ("finetuned", "scratch"):
            for metric in ("accuracy", "nll"):
                assert resumed["subsets"][size][kind][metric] == uninterrupted["subsets"][size][kind][metric]


def test_bad_configs_raise_config_errors():
    for change, message in (
        (lambda t: setattr(t, "noise_rate", 1.5), "noise_rate must lie in"),
        (lambda t: setattr(t, "subset_sizes", [512, 0]), r"subset_sizes\[1\] must be a positive integer"),
        (lambda t: setattr(t.finetune, "steps", -1), "finetune.steps must be a positive integer"),
        (lambda t: setattr(t, "subset_sizes", []), "non-empty"),
    ):
        config = tiny_config()
        change(config.transfer)
        with pytest.raises(ConfigError, match=message):
            check_transfer(config, "cfg")
    config = tiny_config()
    config.methods = ["gflowoutt"]
    with pytest.raises(ConfigError, match="did you mean 'gflowout'"):
        check_transfer(config, "cfg")


def test_help_has_examples(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["transfer", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "configs/transfer_mnist.yaml" in text and "30 %" in text


def test_an_unwritable_output_folder_is_named_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "a-file").write_text("")
    tiny = str(REPO / "configs" / "transfer_tiny.yaml")
    assert main(["transfer", "--config", tiny, "--out", str(tmp_path / "a-file" / "out")]) == 2
    err = capsys.readouterr().err
    assert "a-file" in err and "--out" in err and len(err.strip().splitlines()) == 1


def test_shipped_configs_load():
    for name in ("transfer_tiny.yaml", "transfer_mnist.yaml", "transfer_cifar10.yaml"):
        assert load_transfer_config(REPO / "configs" / name).budget


def test_transfer_command_end_to_end_on_real_mnist(tmp_path: Path):
    from gflowout.data.datasets import load_split

    try:
        load_split("mnist", "test")
    except DataError as error:
        pytest.skip(f"real MNIST is needed (`make test` fetches it): {error}")
    out = tmp_path / "transfer"
    argv = [
        "transfer",
        "--config",
        str(REPO / "configs" / "transfer_tiny.yaml"),
        "--out",
        str(out),
        "--threads",
        str(torch.get_num_threads()),
    ]
    assert main(argv) == 0
    results = {p.name: json.loads(p.read_text()) for p in (out / "results").glob("*.json")}
    assert sorted(results) == ["mnist__gflowout__seed1.json", "mnist__mc_dropout__seed1.json"]
    for result in results.values():
        assert all(c > 0 for c in result["pretrained"]["noisy_label_counts"])  # every MNIST class, 9 included
        assert result["pretrained"]["noise_rate"] == pytest.approx(0.3, abs=1e-4)
        assert sorted(result["subsets"]) == ["32", "64"]
    report = (out / "report" / "report.md").read_text()
    assert "fine-tuned from the noisy pre-training" in report and "mnist_transfer_accuracy.png" in report
    assert (out / "report" / "figures" / "mnist_transfer_accuracy.png").stat().st_size > 1000


def test_gflowout_report_recognises_a_transfer_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from gflowout.cli.main import main

    run(tiny_config(), tmp_path)
    assert sorted(p.name for p in (tmp_path / "results").glob("*.json")) == ["mnist__mc_dropout__seed1.json"]
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    assert "transfer report written" in capsys.readouterr().out
    text = (tmp_path / "report" / "report.md").read_text()
    assert "mc_dropout" in text.lower().replace(" ", "_") and (tmp_path / "report" / "report.html").is_file()
