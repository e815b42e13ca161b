"""evaluate_method's wiring: normalisation with the in-distribution training statistics (shifted and OOD
images too), bounded batches, the S-sample predictive, and the result schema; on stand-in data and shifts
whose effect on accuracy is computed here independently."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from gflowout.eval import evaluate as evaluate_module
from gflowout.eval.evaluate import evaluate_method
from gflowout.experiments.results import write_json_atomic, read_result
from eval_helpers import RecordingMethod

MEAN, STD = 0.3, 0.2  # training statistics of the stand-in set: not 0 / 1, so a missing normalisation shows


def class_images(labels: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """Constant 28x28 uint8 images whose brightness encodes the class: (k + 1) / 20 (+ offset)."""
    values = np.clip((labels + 1) / 20 + offset, 0, 1)
    return np.round(np.broadcast_to(values[:, None, None], (len(labels), 28, 28)) * 255).astype(np.uint8)


class BrightnessReader(RecordingMethod):
    """A stand-in method: undoes the expected normalisation and reads the class from the brightness."""

    name = "reader"

    def answer(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        brightness = x.mean(dim=(1, 2, 3)) * STD + MEAN
        position = brightness * 20 - 1  # the class whose brightness is nearest
        logits = -((position[:, None] - torch.arange(10.0)) ** 2) * 4
        noise = 0.01 * torch.randn(samples, *logits.shape)
        return logits.unsqueeze(0) + noise


@pytest.fixture
def stand_in_data(monkeypatch):
    labels = np.arange(300) % 10
    between = np.arange(300) % 9  # brightness half-way between class k and k + 1
    sets = {"digits": (class_images(labels), labels), "other": (class_images(between, 0.025), between)}

    def load_split(name, split, root=None):
        if name not in sets:
            raise evaluate_module.DataError(f"{name} missing: run gflowout data fetch {name}")
        return sets[name]

    info = SimpleNamespace(mean=(MEAN,), std=(STD,), num_classes=10)
    other_info = SimpleNamespace(mean=(0.5,), std=(0.5,), num_classes=10)  # must NOT be used for OOD images
    infos = {"digits": info, "other": other_info}

    def to_tensor(images, name):  # the data engineer's contract: [0, 1] floats, training statistics of `name`
        x = torch.as_tensor(images, dtype=torch.float32)[:, None]
        return (x - infos[name].mean[0]) / infos[name].std[0]

    datasets = SimpleNamespace(load_split=load_split, DATASET_INFO=infos, to_tensor=to_tensor)
    shifts = SimpleNamespace(
        available_shifts=lambda kind: ["brighter"],
        apply_shift=lambda images, shift, severity, seed: np.clip(images + 0.05 * severity, 0, 1),
        rotate=lambda images, angle: images,  # constant images are rotation-invariant
        random_rotation=lambda images, seed: images,
    )
    monkeypatch.setattr(evaluate_module, "_data", lambda: (datasets, shifts))
    monkeypatch.setitem(evaluate_module.DEFAULT_OOD, "digits", ("other", "absent"))
    return labels


def test_evaluate_method_normalises_batches_and_fills_the_schema(stand_in_data, tmp_path):
    labels = stand_in_data
    method = BrightnessReader()
    result = evaluate_method(method, "digits", samples=3, severities=(1, 2), rotation_angles=(0, 90), batch_size=64)

    assert result["clean"]["accuracy"] == pytest.approx(1.0)
    for severity in (1, 2):  # brighter by severity / 20: class k is read as min(k + severity, 9)
        expected = np.mean(np.minimum(labels + severity, 9) == labels)
        assert result["shifts"]["brighter"][str(severity)]["accuracy"] == pytest.approx(expected)
    assert result["rotation_sweep"]["90"]["accuracy"] == pytest.approx(1.0)
    assert result["random_rotation"]["accuracy"] == pytest.approx(1.0)
    assert all(batch.shape[0] <= 64 for batch in method.batches)  # bounded memory
    assert {k for k in result["clean"]} == {"accuracy", "nll", "brier", "ece15", "ece10"}

    # OOD images sit between two classes: entropy is higher than in-distribution for every image
    assert set(result["ood"]) == {"other"} and "absent" in result["ood_skipped"]
    assert result["ood"]["other"]["predictive_entropy"]["auroc"] == pytest.approx(1.0)
    assert set(result["ood"]["other"]) == {"max_probability", "predictive_entropy", "mutual_information"}
    ood_batches = torch.cat(method.batches[-5:])  # the OOD set, last, in 5 batches of <= 64
    between = np.arange(300) % 9
    expected_ood = (class_images(between, 0.025)[:, None] / 255.0 - MEAN) / STD
    assert torch.allclose(ood_batches, torch.as_tensor(expected_ood, dtype=torch.float32), atol=1e-5)
    roc = result["figures"]["roc"]["other"]["predictive_entropy"]
    assert len(roc["fpr"]) == len(roc["tpr"]) == 51 and roc["tpr"][-1] == 1.0
    hist = result["figures"]["ood_histograms"]["other"]["max_probability"]
    assert sum(hist["in"]) == sum(hist["out"]) == len(labels)
    assert sum(result["figures"]["reliability"]["clean"]["count"]) == len(labels)
    assert set(result["uncertainty"]) == {"clean", "random_rotation"}
    assert result["test_size"] == len(labels) and result["samples"] == 3

    # the result survives the JSON round trip (NaN of empty reliability bins become null)
    path = write_json_atomic(tmp_path / "run.json", result)
    assert read_result(path)["clean"] == pytest.approx(result["clean"])
    assert json.loads(path.read_text())["figures"]["reliability"]["clean"]["accuracy"].count(None) > 0


def test_evaluate_method_limit_and_explicit_missing_ood(stand_in_data):
    method = BrightnessReader()
    result = evaluate_method(method, "digits", samples=2, shifts=(), rotation_angles=(), random_rotation=False,
                             ood_sets=[], limit=50)
    assert result["test_size"] == 50 and result["shifts"] == {} and result["ood"] == {}
    with pytest.raises(evaluate_module.DataError, match="absent"):
        evaluate_method(method, "digits", samples=2, shifts=(), rotation_angles=(), ood_sets=["absent"])


def test_evaluate_method_leaves_the_callers_random_stream_alone(stand_in_data):
    method = BrightnessReader()
    torch.manual_seed(11)
    state = torch.get_rng_state()
    evaluate_method(method, "digits", samples=2, shifts=(), rotation_angles=(), random_rotation=False,
                    ood_sets=[], limit=20)
    assert torch.equal(torch.get_rng_state(), state)
