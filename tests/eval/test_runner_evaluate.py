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
from gflowout.eval import test_sets as test_sets_module
from gflowout.eval.evaluate import evaluate_method
from gflowout.results import read_result, write_json_atomic
from tests.helpers.evaluation import RecordingMethod

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
    monkeypatch.setattr(test_sets_module, "_data", lambda: (datasets, shifts))
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
    assert set(result["clean"]) == {"accuracy", "nll", "brier", "ece15", "ece10"}

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
    result = evaluate_method(
        method, "digits", samples=2, shifts=(), rotation_angles=(), random_rotation=False, ood_sets=[], limit=50
    )
    assert result["test_size"] == 50 and result["shifts"] == {} and result["ood"] == {}
    with pytest.raises(evaluate_module.DataError, match="absent"):
        evaluate_method(method, "digits", samples=2, shifts=(), rotation_angles=(), ood_sets=["absent"])


def test_evaluate_method_leaves_the_callers_random_stream_alone(stand_in_data):
    method = BrightnessReader()
    torch.manual_seed(11)
    state = torch.get_rng_state()
    evaluate_method(
        method, "digits", samples=2, shifts=(), rotation_angles=(), random_rotation=False, ood_sets=[], limit=20
    )
    assert torch.equal(torch.get_rng_state(), state)


class MisreadingReader(BrightnessReader):
    """Deterministic and over-confident: reads class 3 as class 4 with the same confidence as its right answers."""

    name = "misreader"

    def answer(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        position = (x.mean(dim=(1, 2, 3)) * STD + MEAN) * 20 - 1
        logits = -((position[:, None] - torch.arange(10.0)) ** 2) * 4
        wrong = position.round() == 3
        logits[wrong] = logits[wrong].roll(1, dims=1)
        return logits.unsqueeze(0).repeat(samples, 1, 1)


def _normalised(labels: np.ndarray) -> torch.Tensor:
    return (torch.as_tensor(class_images(labels), dtype=torch.float32)[:, None] / 255.0 - MEAN) / STD


class UnevenReader(BrightnessReader):
    """Imperfect, with a confidence that varies by class: reads classes 2, 5 and 8 as the next class, is sharper
    for higher classes, and each of the S samples shifts every logit by its own amount (the predictive is a mixture)."""

    name = "uneven"

    def answer(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        position = (x.mean(dim=(1, 2, 3)) * STD + MEAN) * 20 - 1
        classes = torch.arange(10.0)
        sharpness = 0.3 + 0.25 * position.round()
        logits = -((position[:, None] - classes) ** 2) * sharpness[:, None]
        wrong = position.round() % 3 == 2
        logits[wrong] = logits[wrong].roll(1, dims=1)
        shifts = torch.stack([0.7 * torch.cos(classes * (s + 1)) for s in range(samples)])  # [S, 10]
        return logits.unsqueeze(0) + shifts[:, None, :]


def test_every_clean_metric_is_the_metrics_modules_value_of_an_imperfect_predictive(stand_in_data):
    """accuracy, NLL (exact log predictive), Brier and ECE with 15 and 10 bins of the S-sample predictive, each
    against `gflowout.eval.metrics` on the stand-in's own logits; the predictive is wrong on some inputs and its
    confidence varies, so every metric is informative and 15 and 10 bins give different ECEs."""
    from gflowout.eval import metrics
    from gflowout.eval.predictive import log_mean_probs

    labels = stand_in_data
    method, samples = UnevenReader(), 3
    result = evaluate_method(
        method, "digits", samples=samples, shifts=(), rotation_angles=(0,), ood_sets=[], batch_size=64
    )

    log_probs = log_mean_probs(method.answer(_normalised(labels), samples))
    probs = log_probs.exp()
    expected = {
        "accuracy": metrics.accuracy(probs, labels),
        "nll": metrics.nll(probs, labels, log_probs=log_probs),
        "brier": metrics.brier(probs, labels),
        "ece15": metrics.ece(probs, labels, bins=15),
        "ece10": metrics.ece(probs, labels, bins=10),
    }
    assert 0.5 < expected["accuracy"] < 1.0
    assert len(torch.unique(probs.max(dim=1).values.round(decimals=4))) >= 8, "confidence must vary"
    assert abs(expected["ece15"] - expected["ece10"]) > 0.005, expected
    assert set(result["clean"]) == set(expected), "a clean metric without a check here"
    for condition in ("clean", "random_rotation"):  # constant images: the stand-in rotations change nothing
        for name, value in expected.items():
            assert result[condition][name] == pytest.approx(value, rel=1e-6, abs=1e-9), (condition, name)
    assert result["rotation_sweep"]["0"] == pytest.approx(result["clean"], rel=1e-6)


def test_temperature_scaling_and_selective_prediction_in_the_result(stand_in_data):
    """T is fitted on the validation data given, every condition is also reported with it, and the selective
    metrics are those of the logits; all against computations here from the stand-in's own logits."""
    from scipy.special import logsumexp

    from gflowout.eval.selective import selective_metrics
    from gflowout.eval.temperature import fit_temperature

    labels = stand_in_data
    validation_labels = np.arange(200) % 10
    validation = (_normalised(validation_labels), torch.as_tensor(validation_labels))
    method = MisreadingReader()
    result = evaluate_method(
        method, "digits", samples=2, severities=(1,), rotation_angles=(0, 90), batch_size=64, validation=validation
    )

    expected_t = fit_temperature(method.answer(validation[0], 2), validation[1])
    assert expected_t > 1.2  # over-confident: softened
    assert result["temperature_scaling"]["temperature"] == pytest.approx(expected_t, rel=1e-9)
    assert result["temperature_scaling"]["validation_nll_scaled"] < result["temperature_scaling"]["validation_nll"]
    ts = result["ts"]
    clean_logits = method.answer(_normalised(labels), 1)[0].double().numpy() / expected_t
    log_probs = clean_logits - logsumexp(clean_logits, axis=1, keepdims=True)
    assert ts["clean"]["nll"] == pytest.approx(-log_probs[np.arange(len(labels)), labels].mean(), rel=1e-6)
    assert ts["clean"]["nll"] < result["clean"]["nll"]
    assert ts["clean"]["accuracy"] == result["clean"]["accuracy"] == pytest.approx(0.9)
    assert set(ts["shifts"]["brighter"]) == {"1"} and set(ts["rotation_sweep"]) == {"0", "90"}
    assert set(ts["ood"]["other"]) == {"max_probability", "predictive_entropy", "mutual_information"}
    assert set(ts["figures"]["reliability"]) == set(ts["selective"]) == {"clean", "random_rotation"}

    correct = np.argmax(clean_logits, axis=1) == labels
    confidence = np.exp(log_probs).max(axis=1)
    expected = selective_metrics(confidence, correct)
    for key, value in expected.items():
        assert result["selective"]["clean"]["max_probability"][key] == pytest.approx(value, abs=1e-9)
    assert set(result["selective"]) == {"clean", "random_rotation"}
    assert set(result["selective"]["clean"]) == {"max_probability", "negative_entropy", "negative_mutual_information"}
    assert len(result["figures"]["risk_coverage"]["clean"]["negative_entropy"]["risk"]) == 50


def test_validation_changes_no_number_of_the_result_without_it(stand_in_data):
    """The validation pass draws from its own seeded RNG: every key of a result without it is the same with it."""
    validation = (_normalised(np.arange(50) % 10), torch.as_tensor(np.arange(50) % 10))
    plain = evaluate_method(BrightnessReader(), "digits", samples=3, severities=(1,), rotation_angles=(0, 90))
    with_ts = evaluate_method(
        BrightnessReader(), "digits", samples=3, severities=(1,), rotation_angles=(0, 90), validation=validation
    )
    for key in plain:
        if key != "eval_time_s":
            assert json.dumps(with_ts[key], sort_keys=True) == json.dumps(plain[key], sort_keys=True), key
    assert "ts" in with_ts and "ts" not in plain


def test_a_deep_ensemble_is_evaluated_with_its_own_sample_count(stand_in_data):
    from gflowout.methods.ensemble import DeepEnsemble
    from gflowout.nets.mlp import MLP

    torch.manual_seed(0)
    method = DeepEnsemble(MLP(hidden=(8,)), members=3)
    result = evaluate_method(
        method, "digits", samples=20, shifts=(), rotation_angles=(), random_rotation=False, ood_sets=[], limit=30
    )
    assert result["samples"] == 3
