"""DropoutMethod's plain-PyTorch training step honours per-group optimiser overrides."""

from __future__ import annotations

import torch

from gflowout.methods import method_class
from gflowout.nets.mlp import MLP


def test_train_step_clips_with_the_overridden_clip_norm() -> None:
    torch.manual_seed(0)
    net = MLP(input_shape=(6,), num_classes=3, hidden=(8,))
    method = method_class("none")(net)
    clip = 1e-3
    optimizers = method.make_optimizers(
        {"backbone": {"optimizer": "sgd", "lr": 1.0, "momentum": 0.0, "clip_norm": clip}}
    )
    before = [p.detach().clone() for p in net.parameters()]
    x, y = torch.randn(16, 6) * 10, torch.randint(0, 3, (16,))
    method.train_step(x, y, optimizers)
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(net.parameters(), before)))
    # plain SGD with lr 1: the update is the clipped gradient, so its norm is at most the clip norm
    assert 0 < float(step) <= clip * 1.0001


def test_train_step_without_overrides_uses_the_method_defaults() -> None:
    torch.manual_seed(0)
    net = MLP(input_shape=(6,), num_classes=3, hidden=(8,))
    method = method_class("none")(net)
    optimizers = method.make_optimizers({"backbone": {"optimizer": "sgd", "lr": 1.0, "momentum": 0.0}})
    before = [p.detach().clone() for p in net.parameters()]
    method.train_step(torch.randn(16, 6) * 10, torch.randint(0, 3, (16,)), optimizers)
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(net.parameters(), before)))
    assert float(step) > 1e-2  # unclipped: far larger than the clip of the other test


def test_adam_is_fused_where_torch_allows_and_plain_where_it_refuses(monkeypatch) -> None:
    """Fused Adam on CPU needs torch >= 2.4; on an older torch (which refuses fused=True) the group gets plain Adam."""
    from gflowout.methods.base import GroupSpec, build_optimizer

    params = [torch.nn.Parameter(torch.zeros(3))]
    assert build_optimizer(params, GroupSpec(lr=0.1)).defaults["fused"] is True  # torch 2.13 here

    real_adam = torch.optim.Adam

    def old_torch_adam(*args, fused=None, **kwargs):
        if fused:
            raise RuntimeError(
                "`fused=True` requires all the params to be floating point Tensors of supported devices: ['cuda']"
            )
        return real_adam(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", old_torch_adam)
    optimizer = build_optimizer(params, GroupSpec(lr=0.1, weight_decay=0.01))
    assert isinstance(optimizer, real_adam) and not optimizer.defaults["fused"]
    assert optimizer.defaults["lr"] == 0.1 and optimizer.defaults["weight_decay"] == 0.01
