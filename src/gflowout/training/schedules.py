"""Learning-rate schedules of the harness: each group's rate is a pure function of the epoch, so a resumed run
needs no scheduler state (multistep, cosine, or none; config `optim.<group>.schedule`)."""

from __future__ import annotations

import math

from gflowout.config import ScheduleConfig
from gflowout.errors import ConfigError


def schedule_factor(schedule: ScheduleConfig, epoch: int, max_epochs: int) -> float:
    """Multiplier of the base learning rate at `epoch` (0-based)."""
    if schedule.kind == "none":
        return 1.0
    if schedule.kind == "multistep":
        return schedule.gamma ** sum(1 for m in schedule.milestones if epoch >= m)
    if schedule.kind == "cosine":
        t_max = schedule.t_max or max_epochs
        progress = min(epoch, t_max) / t_max
        return float("nan") if t_max < 1 else 0.5 * (1 + math.cos(math.pi * progress))
    raise ConfigError(f"unknown schedule kind {schedule.kind!r}")


def scheduled_lr(base_lr: float, schedule: ScheduleConfig, epoch: int, max_epochs: int) -> float:
    """Learning rate at `epoch` of a parameter group whose epoch-0 rate is `base_lr`.

    Cosine decays from base_lr to eta_min; the other kinds scale base_lr.
    """
    factor = schedule_factor(schedule, epoch, max_epochs)
    if schedule.kind == "cosine":
        return schedule.eta_min + (base_lr - schedule.eta_min) * factor
    return base_lr * factor
