"""The contract of `DropoutMethod`: the public entry points check their inputs before any hook runs, `resolve_specs`
has no side effect, and the optimisers carry the specs that `train_step` clips with."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from gflowout.methods.base import Optimizers, StepResult, eval_mode
from gflowout.methods.none import NoDropout
from gflowout.nets.mlp import MLP


class CountingNone(NoDropout):
    """NoDropout that counts the calls of its hooks."""

    def __init__(self) -> None:
        super().__init__(MLP(input_shape=(4,), hidden=(8,), num_classes=3))
        self.loss_calls = 0
        self.logit_calls = 0

    def compute_losses(self, x: Tensor, y: Tensor) -> StepResult:
        self.loss_calls += 1
        return super().compute_losses(x, y)

    def sample_logits(self, x: Tensor, samples: int) -> Tensor:
        self.logit_calls += 1
        assert not self.training and not torch.is_grad_enabled()
        return super().sample_logits(x, samples)


def test_training_losses_validate_before_the_hook_runs() -> None:
    method = CountingNone()
    x, y = torch.randn(5, 4), torch.randint(0, 3, (5,))
    with pytest.raises(ValueError, match="label"):
        method.training_losses(x, torch.tensor([0, 1, 2, 3, 0]))  # label 3 of 3 classes
    with pytest.raises(ValueError):
        method.training_losses(x[:, :3], y)
    assert method.loss_calls == 0
    method.training_losses(x, y)
    assert method.loss_calls == 1


def test_predict_checks_then_calls_the_hook_in_eval_mode_and_restores_the_mode() -> None:
    method = CountingNone().train()
    with pytest.raises(ValueError, match="positive integer"):
        method.predict(torch.randn(2, 4), samples=0)
    with pytest.raises(ValueError):
        method.predict(torch.randn(2, 5), samples=2)
    assert method.logit_calls == 0
    assert method.predict(torch.randn(2, 4), samples=3).shape == (3, 2, 3)
    assert method.predict(torch.randn(2, 4)).shape == (20, 2, 3)  # None: prediction_samples(20)
    assert method.logit_calls == 2 and method.training


def test_resolve_specs_returns_the_specs_and_stores_nothing() -> None:
    method = CountingNone()
    state = set(vars(method))
    specs = method.resolve_specs({"backbone": {"clip_norm": 0.5}})
    assert specs["backbone"].clip_norm == 0.5 and method.group_defaults()["backbone"].clip_norm is None
    assert set(vars(method)) == state


def test_make_optimizers_returns_the_specs_it_built_them_from() -> None:
    method = CountingNone()
    optimizers = method.make_optimizers({"backbone": {"lr": 0.25}})
    assert isinstance(optimizers, Optimizers) and list(optimizers) == ["backbone"]
    assert optimizers.specs["backbone"].lr == 0.25 == optimizers["backbone"].param_groups[0]["lr"]


def test_eval_mode_restores_the_previous_mode() -> None:
    method = CountingNone().train()
    with eval_mode(method):
        assert not method.training and not method.net.training
    assert method.training and method.net.training
