"""Reward-temperature (beta) schedules of GFlowOut: fixed, or the paper's MNIST schedule.

The paper's MNIST runs start at beta = 0.001 and multiply it by 3.16 every 30 epochs, capped at 1:
0.001, 0.00316, 0.00999, 0.0316, 0.0997, 0.315, 0.9957 (epochs 0, 30, ..., 180), then 1 from epoch 210.
The value is a closed form of the epoch, so resuming at any epoch gives the same beta.
The method keeps the current beta in a buffer (so a checkpoint carries it) and calls `value(epoch)`
from `set_epoch`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class BetaSchedule:
    """beta(epoch) = min(cap, initial * factor ** (epoch // every)); `every=0` means a fixed beta = initial."""

    initial: float = 1.0
    factor: float = 1.0
    every: int = 0
    cap: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.initial) and self.initial > 0):
            raise ValueError(f"beta schedule: initial must be a positive finite number, got {self.initial}")
        if not (math.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"beta schedule: factor must be a positive finite number, got {self.factor}")
        if self.every < 0:
            raise ValueError(f"beta schedule: every must be >= 0 epochs (0 = fixed), got {self.every}")
        if not (self.cap > 0):
            raise ValueError(f"beta schedule: cap must be positive, got {self.cap}")

    def value(self, epoch: int) -> float:
        """beta at `epoch` (0-based)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        steps = epoch // self.every if self.every else 0
        return min(self.cap, self.initial * self.factor**steps)

    @classmethod
    def fixed(cls, beta: float) -> BetaSchedule:
        """A constant beta (the paper's ResNet runs and the exact-posterior case use 1)."""
        return cls(initial=beta, factor=1.0, every=0, cap=max(beta, 1.0))

    @classmethod
    def paper_mnist(cls) -> BetaSchedule:
        """The paper's MNIST schedule: 0.001, x3.16 every 30 epochs, capped at 1."""
        return cls(initial=0.001, factor=3.16, every=30, cap=1.0)


BetaSpec = float | int | str | Mapping[str, float] | BetaSchedule

NAMED_SCHEDULES = {"paper_mnist": BetaSchedule.paper_mnist, "paper-mnist": BetaSchedule.paper_mnist}


def as_beta_schedule(beta: BetaSpec) -> BetaSchedule:
    """Read a beta option: a number (fixed), "paper_mnist", a mapping of BetaSchedule fields, or a BetaSchedule."""
    if isinstance(beta, BetaSchedule):
        return beta
    if isinstance(beta, bool):
        raise ValueError(f"beta must be a number, a schedule name or a mapping, got {beta!r}")
    if isinstance(beta, (int, float)):
        return BetaSchedule.fixed(float(beta))
    if isinstance(beta, str):
        if beta in NAMED_SCHEDULES:
            return NAMED_SCHEDULES[beta]()
        raise ValueError(f"unknown beta schedule {beta!r}; use a number or one of {sorted(set(NAMED_SCHEDULES))}")
    if isinstance(beta, Mapping):
        unknown = set(beta) - set(BetaSchedule.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown beta schedule key(s) {sorted(unknown)}; valid: initial, factor, every, cap")
        return BetaSchedule(**beta)  # type: ignore[arg-type]  # checked by hand just above
    raise ValueError(f"beta must be a number, a schedule name or a mapping, got {type(beta).__name__}")
