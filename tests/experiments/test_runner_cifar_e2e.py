"""CIFAR end to end on tiny published-format files: `gflowout data fetch ... --from FILE` installs CIFAR-10 and
CIFAR-10-C, SVHN sits under the same root, and `gflowout benchmark` trains GFlowOut and MC dropout on a narrow
CifarResNet18 (crop + flip on training batches only), evaluates clean, rotated, CIFAR-10-C-style, published
CIFAR-10-C and CIFAR-10 -> SVHN, and writes the report."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
import yaml

from gflowout.cli.main import main
from gflowout.data import datamodule
from gflowout.data.datasets import load_split
from tests.helpers.cifar import install_cifar10, install_cifar10_c, install_svhn_test
from tests.helpers.data import colour_images

REPO = Path(__file__).resolve().parents[2]
PER_BATCH, N_TEST, BATCH = 13, 32, 16  # 65 training images: 49 train + 16 validation (val_fraction 0.25)
TRAIN_SIZE = 65 - round(65 * 0.25)


@pytest.fixture
def cifar_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    train = [colour_images(PER_BATCH, seed=i) for i in range(1, 6)]
    test_images, test_labels = colour_images(N_TEST, seed=99)
    cifar_archive = install_cifar10(root, monkeypatch, train, (test_images, test_labels))
    rng = np.random.default_rng(5)
    corrupted = {c: rng.integers(0, 256, (5 * N_TEST, 32, 32, 3), dtype=np.uint8) for c in ("frost", "gaussian_noise")}
    c_archive = install_cifar10_c(root, monkeypatch, corrupted, np.tile(test_labels, 5).astype(np.uint8))
    install_svhn_test(root, monkeypatch, *colour_images(24, seed=7))
    for name, archive in (("cifar10", cifar_archive), ("cifar10-c", c_archive)):
        assert main(["data", "fetch", name, "--from", str(archive), "--root", str(root)]) == 0
    np.testing.assert_array_equal(load_split("cifar10", "test", root)[0], test_images)
    return root


@pytest.fixture
def one_thread():
    """The benchmark sets torch's threads: 1 here (2 threads on the 2 shared cores made this test 10x slower
    under load), and the suite's count is restored afterwards."""
    previous = torch.get_num_threads()
    yield "1"
    torch.set_num_threads(previous)


def test_cifar_benchmark_end_to_end(
    cifar_root: Path, one_thread: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    augmented: list[int] = []

    def counting_crop_flip(images, *args, **kwargs):
        augmented.append(images.shape[0])
        return original(images, *args, **kwargs)

    original = datamodule.random_crop_flip
    monkeypatch.setattr(datamodule, "random_crop_flip", counting_crop_flip)
    bench = tmp_path / "bench_cifar_tiny.yaml"
    bench.write_text(
        yaml.safe_dump(
            {
                "config": str(REPO / "configs" / "cifar10_resnet18.yaml"),  # the paper's CIFAR set-up, shrunk below
                "overrides": [
                    f"data.batch_size={BATCH}",
                    "data.val_fraction=0.25",
                    "model.options.width=4",
                    "trainer.max_epochs=1",
                    "trainer.val_samples=2",
                    "trainer.checkpoint_every_n_steps=0",
                    "trainer.enable_progress_bar=false",
                    "trainer.accelerator=cpu",
                    "trainer.log_every_n_steps=1",
                ],
                "trainer_overrides": {"limit_test_batches": 1},
                "methods": ["gflowout", "mc_dropout"],
                "seeds": [1],
                "evaluation": {
                    "samples": 2,
                    "random_rotation": True,
                    "rotation_angles": [0, 90],
                    "shifts": {"gaussian_noise": [1], "contrast": [3]},
                    "batch_size": 64,
                    "published_corruptions": ["frost", "gaussian_noise"],
                },
            }
        )
    )
    out = tmp_path / "bench"
    assert (
        main(
            ["benchmark", "--config", str(bench), "--out", str(out), "--root", str(cifar_root), "--threads", one_thread]
        )
        == 0
    )
    capsys.readouterr()
    # crop + flip on every training batch of both runs, and on nothing else (validation, test, evaluation)
    assert augmented == [BATCH, BATCH, BATCH, TRAIN_SIZE - 3 * BATCH] * 2
    for method in ("gflowout", "mc_dropout"):
        result = json.loads((out / "results" / f"cifar10__{method}__seed1.json").read_text())
        assert result["config"]["model"] == {"backbone": "resnet18", "options": {"width": 4, "mask_blocks": "all"}}
        assert result["test_size"] == N_TEST and result["train_time_s"] > 0
        for condition in (result["clean"], result["random_rotation"], result["rotation_sweep"]["90"]):
            assert 0.0 <= condition["accuracy"] <= 1.0 and np.isfinite(condition["nll"])
        assert {k: set(v) for k, v in result["shifts"].items()} == {"gaussian_noise": {"1"}, "contrast": {"3"}}
        assert result["published_set"] == "cifar10-c"
        assert {k: set(v) for k, v in result["published_corruptions"].items()} == {
            c: {"1", "2", "3", "4", "5"} for c in ("frost", "gaussian_noise")
        }
        assert set(result["ood"]) == {"svhn"} and set(result["ood_skipped"]) == {"cifar100"}
        assert 0.0 <= result["ood"]["svhn"]["predictive_entropy"]["auroc"] <= 1.0
    report = (out / "report" / "report.md").read_text()
    assert "PUBLISHED CIFAR-10-C files" in report and "CIFAR-10-C-style shifts" in report
    assert "OOD detection: cifar10 (in) vs svhn (out)" in report
    figures = {p.name for p in (out / "report" / "figures").glob("*.png")}
    assert {
        "cifar10_severity.png",
        "cifar10_published_severity.png",
        "cifar10_ood_roc_svhn.png",
        "cifar10_reliability_clean.png",
    } <= figures
    assert mpimg.imread(out / "report" / "figures" / "cifar10_published_severity.png").ndim == 3
