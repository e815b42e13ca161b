"""The trained backbone of a run of `gflowout train`: read from its checkpoint and loaded into a network, checked.

`load_backbone` (also `gflowout.load_backbone`) gives the run's network with its trained weights;
`load_backbone_state` copies them into a given network and names every difference when it does not fit.
Post-hoc GFlowOut (`gflowout.posthoc`) starts from it, and warns (`NoMaskTrainingWarning`) when the
source network never saw dropout masks.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gflowout.checkpoint import metadata_of, read_checkpoint, refuse_custom_code, resolve_checkpoint
from gflowout.errors import CheckpointError
from gflowout.nets.base import MaskedNet

MASKED_SOURCES = ("mc_dropout", "concrete", "contextual", "id_gflowout", "gflowout")


class NoMaskTrainingWarning(UserWarning):
    """The source network was trained without dropout masks (method 'none')."""


def read_source(path: str | Path, allow_custom_code: bool) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """(checkpoint path, metadata, the checkpoint's backbone state {name: tensor}) of a run folder or checkpoint."""
    from gflowout.config import config_from_dict

    checkpoint_path = resolve_checkpoint(path)
    checkpoint = read_checkpoint(checkpoint_path)
    metadata = metadata_of(checkpoint, str(checkpoint_path))
    if not allow_custom_code:
        refuse_custom_code(config_from_dict(metadata["config"]), str(checkpoint_path))
    prefix = "method.net."
    state = {k[len(prefix) :]: v for k, v in checkpoint.get("state_dict", {}).items() if k.startswith(prefix)}
    if not state:
        raise CheckpointError(
            f"checkpoint {str(checkpoint_path)!r} holds no backbone weights (no 'method.net.*' entries)"
        )
    return checkpoint_path, metadata, state


def describe_backbone(metadata: Mapping[str, Any]) -> str:
    """The run's backbone and its options in words, for error messages."""
    model = metadata.get("config", {}).get("model", {})
    return f"backbone {model.get('backbone')!r} with options {model.get('options', {})}"


def load_backbone_state(net: MaskedNet, state: Mapping[str, torch.Tensor], source: str, described: str) -> None:
    """Copy `state` into `net` (every weight and buffer).

    A CheckpointError names the differences when it does not fit.
    """
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append(
                "shapes differ for "
                + ", ".join(
                    f"{k} {tuple(state[k].shape)} in the checkpoint vs {tuple(own[k].shape)}" for k in shapes[:3]
                )
            )
        if missing:
            parts.append(f"missing from the checkpoint: {missing[:3]}")
        if unexpected:
            parts.append(f"not in the network: {unexpected[:3]}")
        raise CheckpointError(
            f"checkpoint {source!r} holds another backbone ({described}) than the network it should go into "
            f"({type(net).__name__}): {'; '.join(parts)}. Build the network the run trained (or let "
            "gflowout.load_backbone build it from the checkpoint), and do not change model.* of a post-hoc run"
        )
    net.load_state_dict(state, strict=True)


def load_backbone(source: str | Path, net: MaskedNet | None = None, allow_custom_code: bool = False) -> MaskedNet:
    """The trained backbone of a run folder or checkpoint of `gflowout train`, loaded safely (weights_only).

    net: load into this network (checked: a network of another architecture or size is refused with a
        CheckpointError naming the differing tensors); None builds the run's own backbone from its config.
    allow_custom_code: as `gflowout.load_method` (a run naming package.module:Class code is refused by default).
    """
    from gflowout.config import config_from_dict
    from gflowout.training.build import build_net

    path, metadata, state = read_source(source, allow_custom_code)
    if net is None:
        config = config_from_dict(metadata["config"])
        net = build_net(config, metadata["num_classes"], tuple(metadata["input_shape"]))
    load_backbone_state(net, state, str(path), describe_backbone(metadata))
    return net


def warn_if_never_masked(method_name: str, source: str) -> None:
    """A NoMaskTrainingWarning for a network trained without dropout: it never saw masks."""
    if method_name == "none":
        warnings.warn(
            f"{source} was trained without dropout (method 'none'): the network never saw masks, so every mask "
            "GFlowOut samples changes it in a way it was not trained for; expect lower accuracy than the run itself. "
            f"Post-hoc GFlowOut is meant for networks trained with masks ({', '.join(MASKED_SOURCES)})",
            NoMaskTrainingWarning,
            stacklevel=3,
        )
