"""`NoDropout` (method "none"): the backbone trained and evaluated with every unit kept.

Also home of what every baseline shares: the backbone's optimiser defaults and the masked
cross-entropy step.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from gflowout.methods.base import DropoutMethod, GroupSpec, StepResult
from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import MaskSampler, ones_sampler


def backbone_spec(net: MaskedNet) -> GroupSpec:
    """Optimiser defaults of the "backbone" group: the ones the backbone declares (`MaskedNet.default_optimizer`).

    CifarResNet18: SGD, Nesterov momentum 0.9, lr 0.1, weight decay 5e-4 (the CIFAR Concrete and
    Contextual scripts). The MLP and wrapped modules: Adam lr 1e-3, no weight decay (MNIST_MLP_all.sh
    and the MNIST ARMMLP scripts). A config may override them under `optim.backbone`.
    """
    return net.default_optimizer()


def dropout_spec(net: MaskedNet) -> GroupSpec:
    """Defaults of a baseline's own dropout parameters: the backbone's optimiser and lr, no weight
    decay (the official baselines train them with the same optimiser as the network)."""
    spec = backbone_spec(net)
    return GroupSpec(**{**spec.__dict__, "weight_decay": 0.0})


def classification_step(net: MaskedNet, x: Tensor, y: Tensor, sampler: MaskSampler | None) -> tuple[Tensor, Tensor]:
    """Masked forward pass: per-example cross-entropy [batch] and logits [batch, classes]."""
    logits = net(x, sampler)
    return F.cross_entropy(logits, y, reduction="none"), logits


def accuracy_of(logits: Tensor, y: Tensor) -> Tensor:
    """Fraction of correct arg-max predictions (a detached scalar for logs)."""
    return (logits.detach().argmax(dim=1) == y).float().mean()


class NoDropout(DropoutMethod):
    """No masks: every site keeps every unit, at training and at prediction.

    One parameter group, "backbone" (defaults from `backbone_spec`). `predict(x, samples=S)`
    returns S identical copies of the single deterministic pass, computed once.
    """

    name = "none"

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.net.parameters())}

    def group_defaults(self) -> dict[str, GroupSpec]:
        return {"backbone": backbone_spec(self.net)}

    def compute_losses(self, x: Tensor, y: Tensor) -> StepResult:
        cross_entropy, logits = classification_step(self.net, x, y, None)
        loss = cross_entropy.mean()
        return StepResult(
            losses={"backbone": loss}, logs={"cross_entropy": loss.detach(), "accuracy": accuracy_of(logits, y)}
        )

    def prediction_sampler(self) -> MaskSampler | None:
        return ones_sampler

    def deterministic_sampler(self) -> MaskSampler | None:
        return ones_sampler

    def sample_logits(self, x: Tensor, samples: int) -> Tensor:
        """Logits [samples, batch, classes]: one pass, repeated (all samples are equal)."""
        return self.net(x, None).unsqueeze(0).repeat(samples, 1, 1)
