"""The downstream protocols' plain training loop: seeded, full batches only, constant learning rate."""

from __future__ import annotations

import pytest
import torch

from gflowout.config import config_from_dict
from gflowout.errors import ConfigError
from gflowout.experiments.plain_training import (
    build_seeded_method,
    evaluate_predictive,
    optimizer_overrides,
    train_for_steps,
    weights_digest,
)
from tests.helpers.downstream import CLASSES, harness, synthetic_data


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny tensors: one torch thread (the fixture is in tests/conftest.py)."""


def config(method: str = "gflowout", **extra):
    raw = harness()
    raw["method"]["name"] = method
    raw.update(extra)
    return config_from_dict(raw)


def trained(position: tuple[int, ...], seed: int = 1, method: str = "gflowout"):
    data = synthetic_data()
    model = build_seeded_method(config(method), CLASSES, data.input_shape, 40, seed, *position)
    train_for_steps(model, data.x_train[:40], data.y_train[:40], steps=6, batch_size=16, seed=seed, position=position)
    return model


def test_training_is_a_function_of_seed_and_position():
    assert weights_digest(trained((0,)).state_dict()) == weights_digest(trained((0,)).state_dict())
    assert weights_digest(trained((0,)).state_dict()) != weights_digest(trained((1,)).state_dict())
    assert weights_digest(trained((0,), seed=2).state_dict()) != weights_digest(trained((0,)).state_dict())


def test_evaluation_is_seeded_and_leaves_the_callers_rng_alone():
    data = synthetic_data()
    model = trained((0,), method="mc_dropout")
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = evaluate_predictive(model, data.x_test, data.y_test, samples=5, batch_size=7, seed=1, position=(0,))
    assert torch.equal(torch.rand(1), expected_next)
    again = evaluate_predictive(model, data.x_test, data.y_test, samples=5, batch_size=7, seed=1, position=(0,))
    assert (first["accuracy"], first["nll"]) == (again["accuracy"], again["nll"])
    other = evaluate_predictive(model, data.x_test, data.y_test, samples=5, batch_size=7, seed=1, position=(1,))
    assert other["nll"] != first["nll"]  # another position draws other masks
    assert 0.0 <= first["accuracy"] <= 1.0 and first["nll"] > 0 and first["count"] == 60


def test_batches_are_full_and_epochs_drop_the_incomplete_tail(monkeypatch):
    data = synthetic_data()
    model = build_seeded_method(config("mc_dropout"), CLASSES, data.input_shape, 10, 1, 0)
    sizes: list[int] = []
    original = type(model).train_step

    def recording(self, x, y, optimizers):
        sizes.append(int(x.shape[0]))
        return original(self, x, y, optimizers)

    monkeypatch.setattr(type(model), "train_step", recording)
    summary = train_for_steps(model, data.x_train[:10], data.y_train[:10], steps=5, batch_size=4, seed=1)
    assert sizes == [4, 4, 4, 4, 4] and summary.epochs == 3  # 10 rows: two batches of 4 per epoch, the 2 left dropped
    sizes.clear()
    train_for_steps(model, data.x_train[:3], data.y_train[:3], steps=2, batch_size=8, seed=1)
    assert sizes == [3, 3]  # fewer rows than a batch: the whole set each step


def test_schedules_and_unknown_groups_are_refused():
    data = synthetic_data()
    scheduled = config("mc_dropout", optim={"backbone": {"lr": 0.01, "schedule": {"kind": "cosine"}}})
    model = build_seeded_method(scheduled, CLASSES, data.input_shape, 10, 1, 0)
    with pytest.raises(ConfigError, match="constant learning rate"):
        optimizer_overrides(scheduled, model)
    unknown = config("mc_dropout", optim={"posterior": {"lr": 0.01}})
    with pytest.raises(ConfigError, match="does not have"):
        optimizer_overrides(unknown, build_seeded_method(unknown, CLASSES, data.input_shape, 10, 1, 0))
    plain = config("mc_dropout", optim={"backbone": {"lr": 0.01}})
    assert optimizer_overrides(plain, model) == {"backbone": {"lr": 0.01}}
    with pytest.raises(ConfigError, match="steps >= 1"):
        train_for_steps(model, data.x_train, data.y_train, steps=0, batch_size=4, seed=1)
