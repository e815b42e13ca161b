"""`GroupSpec`: the optimiser settings of one parameter group.

Its own module because both sides name one: a backbone declares its default optimiser
(`MaskedNet.default_optimizer`) and a method its groups' defaults (`DropoutMethod.group_defaults`),
and backbones do not import methods.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GroupSpec:
    """Optimiser defaults of one parameter group (the published method's, where it has them)."""

    lr: float
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" or "sgd"
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    clip_norm: float | None = None  # gradient-norm clipping, None for none
