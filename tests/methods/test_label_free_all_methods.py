"""Every method predicts without labels, behaviourally: labels seen in training cannot leak into predict.

The signature test (test_baselines_common.py) only shows that predict takes no label argument; a
method could still keep the last training batch's labels in its state (a sampler closure, a cached
tensor) and use them at prediction. Here the same method sees the same inputs with two different
label sets, and its seeded predictions must be bitwise identical. Predict must also leave every
parameter and buffer (persistent or not) untouched.
"""

from __future__ import annotations

import pytest
import torch

from gflowout.methods import MethodName
from tests.helpers.methods import EVERY_METHOD, EVERY_METHOD_IDS, tiny_method

BATCH, CLASSES = 6, 5
METHODS, IDS = EVERY_METHOD, EVERY_METHOD_IDS


def test_every_method_name_is_covered() -> None:
    assert {name for name, _ in METHODS} == set(MethodName)


def _method(name: MethodName, options: dict):
    return tiny_method(name, options, CLASSES)


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(BATCH, 1, 4, 4, generator=generator)
    y_a = torch.arange(BATCH) % CLASSES
    y_b = (y_a + 1 + torch.arange(BATCH) % (CLASSES - 1)) % CLASSES  # every label changed
    assert (y_a != y_b).all()
    return x, y_a, y_b


def _snapshot(method: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and every buffer (non-persistent ones too), plus the state_dict, cloned."""
    state = {f"state_dict:{k}": v.detach().clone() for k, v in method.state_dict().items()}
    state.update({f"param:{k}": v.detach().clone() for k, v in method.named_parameters()})
    state.update({f"buffer:{k}": v.detach().clone() for k, v in method.named_buffers()})
    return state


def _assert_same(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], what: str) -> None:
    assert before.keys() == after.keys(), f"{what}: keys changed {set(before) ^ set(after)}"
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert not changed, f"{what} changed {changed}"


@pytest.mark.parametrize("name, options", METHODS, ids=IDS)
@pytest.mark.parametrize("seed", [3, 11])
def test_prediction_ignores_the_labels_seen_in_training(name: MethodName, options: dict, seed: int) -> None:
    method = _method(name, options)
    x, y_a, y_b = _batch()

    method.train()
    method.training_losses(x, y_a)  # no optimiser step: only state a method might cache
    samples = method.prediction_samples(5)  # a deep ensemble predicts its M members
    torch.manual_seed(seed)
    p_a = method.predict(x, samples=samples)

    method.train()
    method.training_losses(x, y_b)
    torch.manual_seed(seed)
    p_b = method.predict(x, samples=samples)

    assert p_a.shape == (samples, BATCH, CLASSES)
    assert torch.isfinite(p_a).all()
    assert torch.equal(p_a, p_b), (
        f"{name.value}: predictions depend on the labels of the last training batch "
        f"(max difference {float((p_a - p_b).abs().max()):.3g})"
    )


@pytest.mark.parametrize("name, options", METHODS, ids=IDS)
def test_predict_changes_no_parameter_or_buffer(name: MethodName, options: dict) -> None:
    method = _method(name, options)
    x, y_a, _ = _batch()
    method.train()
    method.training_losses(x, y_a)
    before = _snapshot(method)
    was_training = method.training
    torch.manual_seed(5)
    method.predict(x, samples=method.prediction_samples(5))
    _assert_same(before, _snapshot(method), f"{name.value}: predict")
    assert method.training == was_training, "predict must restore the train/eval mode it found"


@pytest.mark.parametrize(("name", "options"), METHODS, ids=IDS)
def test_int32_labels_and_a_float64_batch_get_clear_errors(name: MethodName, options: dict) -> None:
    """int32 labels used to pass validation and crash inside cross-entropy ("expected ... Long"); a float64
    batch on a float32 network crashed in its first layer. Both are refused up front, saying how to convert."""
    method = _method(name, options)
    x, y = torch.rand(BATCH, 1, 4, 4), torch.randint(0, CLASSES, (BATCH,))
    with pytest.raises(
        ValueError,
        match=r"y must hold int64 \(torch.long\) class labels, got dtype torch.int32; convert with y.long\(\)",
    ):
        method.training_losses(x, y.int())
    with pytest.raises(
        ValueError,
        match=r"x has dtype torch.float64 but the network's parameters are torch.float32; convert with x.float\(\)",
    ):
        method.training_losses(x.double(), y)
    with pytest.raises(ValueError, match="x has dtype torch.float64"):
        method.predict(x.double(), samples=method.prediction_samples(2))
