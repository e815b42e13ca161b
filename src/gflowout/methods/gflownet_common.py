"""What GFlowOut and ID-GFlowOut share: the options of a GFlowNet over masks, their optimisers, and the
record of the masks drawn so far in one forward pass.

Both methods sample the masks of a network site by site from a learned policy, train it by trajectory
balance with a log-partition term log Z, and explore with a training temperature and epsilon-random
masks; these helpers check and store those options once for both.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from gflowout.methods.base import DropoutMethod, GroupSpec, build_optimizer
from gflowout.methods.none import backbone_spec
from gflowout.methods.schedules import BetaSchedule, BetaSpec, as_beta_schedule
from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import Site


class SiteChain:
    """The masks drawn so far in one forward pass, in site order; checks that sites come in order.

    `earlier` is the list of the masks drawn so far, which the generators consume block by block
    (never concatenated: see `project_earlier_masks`).
    """

    def __init__(self, num_sites: int) -> None:
        self.num_sites = num_sites
        self.masks: list[Tensor] = []

    @property
    def earlier(self) -> list[Tensor]:
        return self.masks

    def expect(self, site: Site) -> None:
        if site.index != len(self.masks):
            raise RuntimeError(
                f"mask site {site.name!r} (index {site.index}) was reached after {len(self.masks)} site(s); "
                "sites must be "
                "visited once each, in order, per forward pass"
            )

    def push(self, mask: Tensor) -> None:
        self.masks.append(mask)

    def check_complete(self) -> None:
        if len(self.masks) != self.num_sites:
            raise RuntimeError(f"the forward pass visited {len(self.masks)} of {self.num_sites} mask sites")


class GFlowNetMethod(DropoutMethod):
    """A method whose masks come from a GFlowNet trained by trajectory balance (GFlowOut, ID-GFlowOut).

    Declares the options both share (set by `set_gflownet_options`) and advances the beta schedule; a
    subclass registers the `beta` and `epoch` buffers that `set_epoch` writes.
    """

    beta_schedule: BetaSchedule
    train_temperature: float
    epsilon: float
    epsilon_keep: float
    logz_lr: float
    beta: Tensor
    epoch: Tensor

    def set_epoch(self, epoch: int) -> None:
        """Store the epoch and the beta of the schedule at that epoch (buffers, so that checkpoints carry them)."""
        self.epoch.fill_(int(epoch))
        self.beta.fill_(self.beta_schedule.value(int(epoch)))


def set_gflownet_options(
    method: GFlowNetMethod,
    beta: BetaSpec,
    train_temperature: float,
    epsilon: float,
    epsilon_keep: float,
    logz_lr: float,
) -> None:
    """Check and store the options GFlowOut and ID-GFlowOut share: beta schedule, exploration, log Z learning rate."""
    check_exploration(train_temperature, epsilon, epsilon_keep)
    method.beta_schedule = as_beta_schedule(beta)
    method.train_temperature = float(train_temperature)
    method.epsilon, method.epsilon_keep = float(epsilon), float(epsilon_keep)
    method.logz_lr = float(logz_lr)


def gflownet_group_specs(
    net: MaskedNet, backbone_lr: float | None, posterior_lr: float, weight_decay: float
) -> dict[str, GroupSpec]:
    """The "backbone" (the baselines' optimiser unless backbone_lr is given) and "posterior" group defaults."""
    return {
        "backbone": backbone_spec(net) if backbone_lr is None else GroupSpec(lr=backbone_lr),
        "posterior": GroupSpec(lr=posterior_lr, weight_decay=weight_decay),
    }


def check_exploration(temperature: float, epsilon: float, epsilon_keep: float) -> None:
    """ValueErrors for exploration options outside their ranges."""
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"train_temperature must be a positive number, got {temperature}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    if not 0.0 <= epsilon_keep <= 1.0:
        raise ValueError(f"epsilon_keep must be in [0, 1], got {epsilon_keep}")


def posterior_optimizer(
    generators: list[nn.Parameter], log_z: list[nn.Parameter], spec: GroupSpec, logz_lr: float
) -> torch.optim.Optimizer:
    """The optimiser of the "posterior" group: generators with `spec`, log Z with its own lr and no weight decay."""
    optimizer = build_optimizer(generators, spec)
    optimizer.add_param_group({"params": log_z, "lr": logz_lr, "weight_decay": 0.0})
    return optimizer
