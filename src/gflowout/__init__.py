"""gflowout: dropout as a GFlowNet posterior over masks (GFlowOut, ICML 2023), with fair baselines.

The public API is re-exported here lazily, so `import gflowout` stays cheap:

    net = gflowout.MLP()                       # or gflowout.CifarResNet18(), or gflowout.wrap(your_module)
    method = gflowout.GFlowOut(net, dataset_size=42000)
    ...train...
    logits = method.predict(x, samples=20)     # [samples, batch, classes]; never takes a label
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"  # the one place the version is written; pyproject.toml reads it from here

_EXPORTS: dict[str, str] = {
    # backbones and the mask-site seam
    "MaskedNet": "gflowout.nets.base",
    "MLP": "gflowout.nets.mlp",
    "CifarResNet18": "gflowout.nets.resnet",
    "wrap": "gflowout.nets.wrap",
    "Site": "gflowout.nets.sites",
    "MaskSite": "gflowout.nets.sites",
    # methods
    "DropoutMethod": "gflowout.methods.base",
    "GFlowOut": "gflowout.methods.gflowout",
    "IDGFlowOut": "gflowout.methods.id_gflowout",
    "MCDropout": "gflowout.methods.mc",
    "ConcreteDropout": "gflowout.methods.concrete",
    "ContextualDropout": "gflowout.methods.contextual",
    "NoDropout": "gflowout.methods.none",
    "DeepEnsemble": "gflowout.methods.ensemble",
    "method_class": "gflowout.methods",
    # evaluation
    "ConformalClassifier": "gflowout.eval.conformal",
    # training, checkpoints, configuration
    "fit": "gflowout.train",
    "posthoc": "gflowout.posthoc",
    "load_backbone": "gflowout.posthoc",
    "load_method": "gflowout.checkpoint",
    "load_config": "gflowout.config",
    "ExperimentConfig": "gflowout.config",
    # errors
    "GFlowOutError": "gflowout.errors",
    "DataError": "gflowout.errors",
    "ConfigError": "gflowout.errors",
    "CheckpointError": "gflowout.errors",
    "NonFiniteLossError": "gflowout.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]  # noqa: PLE0605 - a list, built from the export table


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gflowout' has no attribute {name!r}")
