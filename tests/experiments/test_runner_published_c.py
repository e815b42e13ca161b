"""Evaluation on the PUBLISHED CIFAR-10-C files: read through the data layer from published-format fixtures,
normalised with the CIFAR-10 TRAINING statistics, the same rows as the clean (limited) test subset, kept in
their own result section and report tables; missing files skipped with one line naming the fetch command."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
import yaml

from gflowout.data import sources
from gflowout.data.datasets import DATASET_INFO, to_tensor
from gflowout.errors import ConfigError
from gflowout.eval.evaluate import evaluate_method
from gflowout.eval.report import summary_table, write_report
from gflowout.experiments.benchmark import load_benchmark_config, run_config
from gflowout.methods.none import NoDropout
from gflowout.nets.mlp import MLP
from gflowout.results import write_json_atomic
from tests.helpers.cifar import constant_images, install_cifar10_c
from tests.helpers.data import cifar_batch_bytes, with_digests

N_TEST = 40
MEAN = torch.tensor(DATASET_INFO["cifar10"].mean).view(1, 3, 1, 1)
STD = torch.tensor(DATASET_INFO["cifar10"].std).view(1, 3, 1, 1)


class BrightnessReader(NoDropout):
    """A stand-in method: undoes the CIFAR-10 normalisation, reads the class from the brightness of rows
    1.. ((k + 1) / 20 for class k) and records each image's row tag (pixel [0, 0] of channel 0)."""

    name = "reader"

    def __init__(self) -> None:
        super().__init__(MLP(hidden=(4,), input_shape=(3, 32, 32)))
        self.batches: list[torch.Tensor] = []

    @torch.no_grad()
    def predict(self, x: torch.Tensor, samples: int = 20) -> torch.Tensor:
        self.batches.append(x.clone())
        raw = x * STD + MEAN
        position = raw[:, :, 1:, :].mean(dim=(1, 2, 3)) * 20 - 1
        logits = -((position[:, None] - torch.arange(10.0)) ** 2) * 4
        return logits.unsqueeze(0).expand(samples, -1, -1).clone()

    def tags(self) -> list[list[int]]:
        """Per recorded batch, the row tags of its images."""
        return [
            torch.round((b[:, 0, 0, 0] * STD[0, 0, 0, 0] + MEAN[0, 0, 0, 0]) * 255).long().tolist()
            for b in self.batches
        ]


def tagged(brightness: np.ndarray) -> np.ndarray:
    images = constant_images(brightness).copy()
    images[:, 0, 0, 0] = np.arange(len(brightness))  # row tag, outside the rows the reader averages
    return images


LABELS = np.arange(N_TEST) % 10
TEST_IMAGES = tagged((LABELS + 1) / 20)


def frost_block(severity: int) -> np.ndarray:
    """Even rows brighter by (severity - 1) class steps, odd rows unchanged."""
    offset = np.where(np.arange(N_TEST) % 2 == 0, (severity - 1) / 20, 0.0)
    return tagged((LABELS + 1) / 20 + offset)


def expected_frost_accuracy(severity: int, rows: np.ndarray) -> float:
    """Hand computation: the reader predicts the nearest class of brightness; clipping at 1 reads as class 9."""
    shifted = np.where(rows % 2 == 0, np.minimum(LABELS[rows] + severity - 1, 9), LABELS[rows])
    return float(np.mean(shifted == LABELS[rows]))


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cifar10 test batch (pinned digest) and a CIFAR-10-C with frost and gaussian_noise, fetched with --from."""
    root = tmp_path / "root"
    test_batch = root / "cifar10" / "cifar-10-batches-py" / "test_batch"
    test_batch.parent.mkdir(parents=True)
    test_batch.write_bytes(cifar_batch_bytes(TEST_IMAGES, LABELS))
    with_digests("cifar10", root, monkeypatch)
    corruptions = {
        "frost": np.concatenate([frost_block(s) for s in range(1, 6)]),
        "gaussian_noise": np.concatenate([TEST_IMAGES] * 5),
    }
    archive = install_cifar10_c(root, monkeypatch, corruptions, np.tile(LABELS, 5).astype(np.uint8))
    sources.fetch("cifar10-c", root, from_path=archive, log=lambda m: None)
    return root


def evaluate(method, root, **options):
    lines: list[str] = []
    options = {"shifts": (), "rotation_angles": (), "random_rotation": False, "ood_sets": (), "samples": 2, **options}
    return evaluate_method(method, "cifar10", root=root, log=lines.append, **options), lines


def test_published_files_evaluated_apart_normalised_and_paired_with_clean(root: Path) -> None:
    method = BrightnessReader()
    result, lines = evaluate(method, root, limit=16, published_corruptions=["frost", "gaussian_noise", "snow"])
    tags = method.tags()
    clean_rows = np.asarray(tags[0])
    assert len(clean_rows) == 16 and len(tags) == 1 + 2 * 5
    for batch in tags[1:]:  # every published condition reads the rows of the clean subset, in order
        assert batch == tags[0]
    # normalised with the CIFAR-10 TRAINING statistics: the same tensor as to_tensor of the raw images
    torch.testing.assert_close(method.batches[-1], to_tensor(TEST_IMAGES[clean_rows], "cifar10"))
    assert result["published_set"] == "cifar10-c" and result["shifts"] == {}
    published = result["published_corruptions"]
    assert set(published) == {"frost", "gaussian_noise"} and set(published["frost"]) == {"1", "2", "3", "4", "5"}
    for severity in range(1, 6):
        assert published["frost"][str(severity)]["accuracy"] == pytest.approx(
            expected_frost_accuracy(severity, clean_rows)
        )
        assert published["gaussian_noise"][str(severity)]["accuracy"] == 1.0
    assert published["gaussian_noise"]["3"] == pytest.approx(result["clean"])
    # snow was requested but is not under the root: one line naming the fetch command, recorded too
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "gflowout data fetch cifar10-c --from FILE" in lines[0] and "snow" in lines[0]
    assert result["published_skipped"]["cifar10-c"] == lines[0]
    assert result["evaluation"]["published_corruptions"] == {
        c: [1, 2, 3, 4, 5] for c in ("frost", "gaussian_noise", "snow")
    }


def test_absent_published_set_is_skipped_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    test_batch = root / "cifar10" / "cifar-10-batches-py" / "test_batch"
    test_batch.parent.mkdir(parents=True)
    test_batch.write_bytes(cifar_batch_bytes(TEST_IMAGES, LABELS))
    with_digests("cifar10", root, monkeypatch)
    method = BrightnessReader()
    result, lines = evaluate(method, root, published_corruptions="all")
    assert "published_corruptions" not in result and len(method.batches) == 1  # clean only
    assert len(lines) == 1 and "not found" in lines[0] and "`gflowout data fetch cifar10-c --from FILE`" in lines[0]
    result, lines = evaluate(BrightnessReader(), root)  # not requested: silent, no section
    assert lines == [] and "published_corruptions" not in result and "published_skipped" not in result
    with pytest.raises(ConfigError, match="unknown corruption"):
        evaluate(BrightnessReader(), root, published_corruptions=["rain"])


def test_report_keeps_published_apart_from_generated_shifts(root: Path, tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    runs = []
    for seed in (1, 2):
        result, _ = evaluate(
            BrightnessReader(), root, seed=seed, shifts={"brightness": [1]}, published_corruptions={"frost": [1, 2, 5]}
        )
        result["run_id"] = f"cifar10__reader__seed{seed}"
        write_json_atomic(results_dir / f"{result['run_id']}.json", result)
        runs.append(result)
    write_report(results_dir, tmp_path / "report")
    report = (tmp_path / "report" / "report.md").read_text()
    published_title = "### cifar10: PUBLISHED CIFAR-10-C files (Hendrycks & Dietterich 2019), accuracy"
    generated_title = "### cifar10: shifted test sets (generated here: MNIST-C / CIFAR-10-C-style shifts), accuracy"
    assert published_title in report and generated_title in report
    published_table = report.split(published_title)[1].split("###")[0]
    generated_table = report.split(generated_title)[1].split("###")[0]
    for severity in (1, 2, 5):  # both seeds see the same published images: mean = that accuracy, SE 0
        accuracy = expected_frost_accuracy(severity, np.arange(N_TEST))
        assert f"| frost | {severity} | {accuracy:.4f} ± 0.0000 |" in published_table
    assert "frost" not in generated_table and "brightness" not in published_table
    figures = tmp_path / "report" / "figures"
    for name in ("cifar10_published_severity.png", "cifar10_published_shift_accuracy.png", "cifar10_severity.png"):
        assert mpimg.imread(figures / name).ndim == 3
    assert "Accuracy against severity per published corruption (PUBLISHED CIFAR-10-C files), cifar10" in report
    assert "published-C acc" in summary_table(results_dir)


@pytest.mark.parametrize(
    "request_, ok",
    [
        ("all", True),
        (["frost", "snow"], True),
        ({"frost": [1, 5]}, True),
        (["rain"], False),
        ({"frost": [0]}, False),
        ({"frost": 3}, False),
        ("frost", False),
    ],
)
def test_benchmark_key_checked_before_training(tmp_path: Path, request_, ok: bool) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "config": {"data": {"name": "cifar10"}},
                "methods": ["none"],
                "seeds": [1],
                "evaluation": {"published_corruptions": request_},
            }
        )
    )
    if ok:
        assert load_benchmark_config(path).evaluation.published_corruptions == request_
    else:
        with pytest.raises(ConfigError, match="published_corruptions"):
            load_benchmark_config(path)


def test_shipped_cifar10_grid_asks_for_every_published_corruption() -> None:
    bench = load_benchmark_config(Path(__file__).resolve().parents[2] / "configs" / "bench_cifar10.yaml")
    assert bench.evaluation.published_corruptions == "all" and bench.evaluation.shifts is None
    configs = [run_config(bench, spec) for spec in bench.runs()]
    assert len(configs) == 35 and {c.data.name for c in configs} == {"cifar10"}  # 7 methods x 5 seeds
    assert {c.model.backbone for c in configs} == {"resnet18"}


def test_published_files_are_also_reported_with_the_temperature(root: Path) -> None:
    """With validation data, the "ts" section has the published corruptions too, each the metrics of logits / T."""
    from gflowout.eval.evaluate import condition_metrics

    method = BrightnessReader()
    validation_labels = np.arange(20) % 10
    shifted = validation_labels + (np.arange(20) % 4 == 0)  # a quarter misread: the reader is over-confident
    validation = (to_tensor(tagged((shifted + 1) / 20), "cifar10"), torch.as_tensor(validation_labels))
    result, _ = evaluate(method, root, limit=16, published_corruptions=["frost"], validation=validation)
    temperature = result["ts"]["temperature"]
    assert temperature > 1.0 and set(result["ts"]["published_corruptions"]) == {"frost"}
    clean_rows = np.asarray(method.tags()[1])  # tags()[0]: the validation batch, predicted first
    frost_3 = to_tensor(frost_block(3)[clean_rows], "cifar10")
    expected = condition_metrics(BrightnessReader().predict(frost_3, 2) / temperature, LABELS[clean_rows])[0]
    assert result["ts"]["published_corruptions"]["frost"]["3"] == pytest.approx(expected)
    assert (
        result["ts"]["published_corruptions"]["frost"]["3"]["nll"]
        != result["published_corruptions"]["frost"]["3"]["nll"]
    )
