"""Post-hoc GFlowOut: a frozen backbone keeps every weight and BatchNorm statistic bit for bit while the GFlowNet
learns (its TB loss falls); trained weights load only into the backbone they came from; a network trained without
dropout is warned about."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import gflowout
from gflowout.checkpoint import checkpoint_metadata
from gflowout.config import load_config
from gflowout.errors import CheckpointError
from gflowout.methods.gflowout import GFlowOut
from gflowout.posthoc import NoMaskTrainingWarning, load_backbone, warn_if_never_masked

MNIST_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "mnist_mlp.yaml"


def bn_net() -> gflowout.MaskedNet:
    """A wrapped MLP with BatchNorm and two dropout sites, its BN statistics set as a trained network's would be."""
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Flatten(),
        nn.Linear(16, 12),
        nn.BatchNorm1d(12),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(12, 12),
        nn.BatchNorm1d(12),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(12, 3),
    )
    net = gflowout.wrap(module, input_shape=(1, 4, 4), num_classes=3)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.num_batches_tracked.fill_(1000)
    return net


def fit_generators(method: GFlowOut, steps: int) -> list[float]:
    torch.manual_seed(1)
    x, y = torch.randn(64, 1, 4, 4), torch.randint(0, 3, (64,))
    optimizers = method.make_optimizers()
    return [method.train_step(x, y, optimizers)["posterior"] for _ in range(steps)]


def test_frozen_backbone_keeps_every_weight_and_buffer_while_the_tb_loss_falls():
    method = GFlowOut(bn_net(), freeze_backbone=True, beta=1.0)
    backbone_before = {k: v.clone() for k, v in method.net.state_dict().items()}
    generators_before = [p.detach().clone() for p in method.posterior.parameters()]
    assert "backbone" not in method.make_optimizers() and method.param_groups()["backbone"] == []
    losses = fit_generators(method, 60)
    after = method.net.state_dict()
    assert any("running_mean" in k for k in after)
    for name, tensor in backbone_before.items():  # weights, BN running mean / var and num_batches_tracked
        assert torch.equal(tensor, after[name]), f"{name} changed"
    assert not method.net.training and method.training  # the backbone stays in eval mode, the method trains
    assert any(not torch.equal(a, b) for a, b in zip(generators_before, method.posterior.parameters()))
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, f"TB loss {first:.3g} -> {last:.3g}"

    # the same fit without freezing moves the backbone and its BatchNorm statistics: the check above is not vacuous
    unfrozen = GFlowOut(bn_net(), beta=1.0)
    fit_generators(unfrozen, 3)
    changed = [k for k, v in unfrozen.net.state_dict().items() if not torch.equal(v, backbone_before[k])]
    assert any("running_mean" in k for k in changed) and any("weight" in k for k in changed)


def fake_checkpoint(path, hidden):
    """A checkpoint as `gflowout train` writes it (metadata + method.net.* weights) of an MLP with `hidden` widths."""
    config = load_config(None, [f"model.options.hidden={list(hidden)}", "method.name=mc_dropout"])
    torch.manual_seed(3)
    net = gflowout.MLP(hidden=hidden)
    torch.save(
        {
            "gflowout": checkpoint_metadata(config, 10, (1, 28, 28), 100),
            "state_dict": {f"method.net.{k}": v for k, v in net.state_dict().items()},
        },
        path,
    )
    return net


def test_load_backbone_builds_the_runs_network_and_refuses_another(tmp_path):
    trained = fake_checkpoint(tmp_path / "run.ckpt", (16, 12))
    net = load_backbone(tmp_path / "run.ckpt")
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), net.state_dict().values()))
    into = gflowout.MLP(hidden=(16, 12))
    assert load_backbone(tmp_path / "run.ckpt", into) is into
    with pytest.raises(
        CheckpointError,
        match=r"another backbone \(backbone 'mlp' with options \{'hidden': \[16, 12\]\}\).*shapes differ",
    ):
        load_backbone(tmp_path / "run.ckpt", gflowout.MLP(hidden=(16, 16)))
    with pytest.raises(CheckpointError, match="another backbone"):
        load_backbone(tmp_path / "run.ckpt", bn_net())


def test_a_network_trained_without_dropout_is_warned_about():
    with pytest.warns(NoMaskTrainingWarning, match="never saw masks"):
        warn_if_never_masked("none", "runs/x")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_never_masked("mc_dropout", "runs/x")


def test_posthoc_config_keeps_the_runs_network_and_data_and_fits_only_the_generators():
    from gflowout.errors import ConfigError
    from gflowout.posthoc import posthoc_config

    source = load_config(MNIST_CONFIG, [], method="mc_dropout").to_dict()
    config = posthoc_config(source, epochs=3, overrides=["trainer.val_samples=4"])
    assert config.method.name == "gflowout" and config.trainer.max_epochs == 3 and config.trainer.val_samples == 4
    options = config.method_options()
    assert options["freeze_backbone"] is True and options["beta"] == 1.0  # not the 200-epoch paper_mnist schedule
    assert config.data == load_config(MNIST_CONFIG).data and config.seed == source["seed"]
    with pytest.raises(CheckpointError, match="must use that network"):
        posthoc_config(source, overrides=["model.options.hidden=[8, 8]"])
    with pytest.raises(ConfigError, match="freeze_backbone"):
        posthoc_config(source, overrides=["method.options.freeze_backbone=false"])


def test_the_comparison_gives_every_row_its_temperature_scaled_twin(tmp_path, monkeypatch) -> None:
    """The issue's comparison: the same network with MC dropout, post-hoc GFlowOut, and each with TS."""
    import json

    import gflowout.posthoc as posthoc_module

    def fake_evaluate(method, config, settings):
        base = {"clean": {"accuracy": 0.9, "nll": 0.4, "ece15": 0.05}, "random_rotation": {"accuracy": 0.3}}
        return {
            **base,
            "temperature_scaling": {"temperature": 1.7},
            "ts": {"clean": {"accuracy": 0.9, "nll": 0.3, "ece15": 0.02}, "random_rotation": {"accuracy": 0.3}},
        }

    monkeypatch.setattr(posthoc_module, "_evaluate", fake_evaluate)
    payload = posthoc_module.compare_posthoc(tmp_path, {"mc_dropout": object(), "gflowout (post-hoc)": object()}, None)
    assert list(payload["rows"]) == ["mc_dropout", "mc_dropout + TS", "gflowout (post-hoc)", "gflowout (post-hoc) + TS"]
    assert payload["rows"]["mc_dropout + TS"]["nll"] == 0.3 and payload["rows"]["mc_dropout + TS"]["temperature"] == 1.7
    assert "| mc_dropout + TS |" in (tmp_path / "comparison.md").read_text()
    assert json.loads((tmp_path / "comparison.json").read_text())["rows"]["mc_dropout"]["nll"] == 0.4
