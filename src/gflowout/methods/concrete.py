"""`ConcreteDropout` (method "concrete"): a learned drop probability per site, Gal, Hron & Kendall
(NeurIPS 2017).

Each site l has one drop logit a_l (p_l = sigmoid(a_l)). Masks are relaxed Bernoulli (Concrete)
samples, so the cross-entropy's gradient reaches a_l by reparameterisation:

    keep = 1 - sigmoid((logit p + logit u) / t) = sigmoid(-(a + logit u) / t),  u ~ U(0, 1),
    masked = activation * keep / (1 - p).

The published regulariser, per site (K = site width, N = training-set size):

    weight_reg * ||W_l||^2 / (1 - p_l)  +  dropout_reg * K * (p_l log p_l + (1 - p_l) log(1 - p_l)),

with weight_reg = length_scale^2 / N and dropout_reg = 2 / N (Gal's reference code), where W_l are
the weights that read the site's output. N is the caller's `dataset_size`, never a hard-coded 60000
(docs: The method, Pitfalls).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gflowout.methods.base import DropoutMethod, GroupSpec, StepResult, site_rates
from gflowout.methods.none import accuracy_of, backbone_spec, classification_step, dropout_spec
from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import MaskSampler, MaskSite, Site, apply_mask


def relaxed_keep_mask(drop_logit: Tensor, shape: tuple[int, ...], temperature: float, eps: float = 1e-7) -> Tensor:
    """Concrete (relaxed Bernoulli) keep mask of `shape`, tending to Bernoulli(1 - p) as t -> 0.

    drop_logit: logit of the drop probability p (a scalar tensor; gradients flow to it).
    """
    # the noise and the relaxation in at least float32 (a bf16 drop_logit, as in bf16-true training, would bias the
    # keep rate: p = 0.01 kept ~0.9918 instead of ~0.9898); the mask comes back in drop_logit's dtype
    dtype = torch.promote_types(drop_logit.dtype, torch.float32)
    logistic_noise = torch.rand(shape, device=drop_logit.device, dtype=dtype).clamp_(eps, 1.0 - eps).logit_()
    keep = torch.sigmoid((logistic_noise + drop_logit.to(dtype)) * (-1.0 / temperature))
    return keep if dtype == drop_logit.dtype else keep.to(drop_logit.dtype)


def check_dataset_size(dataset_size: object, method: str) -> int:
    """The training-set size N of a regulariser: a positive int (never 0, never a default 60000)."""
    if isinstance(dataset_size, bool) or not isinstance(dataset_size, int) or dataset_size < 1:
        raise ValueError(
            f"{method} needs dataset_size = the number of training examples (a positive int), got {dataset_size!r}"
        )
    return dataset_size


def consumer_weights(net: MaskedNet) -> list[list[nn.Parameter]]:
    """Per site, the weight matrices that read its output (for the 1 / (1 - p) weight term).

    A backbone may say so itself with `site_consumers()` (CifarResNet18 does). Otherwise a trace
    forward on a zero batch takes, for each site, the first module with a weight of two or more
    dimensions (Linear, Conv) that runs after it: exact for chains like the MLP, an approximation
    for other graphs.
    """
    if hasattr(net, "site_consumers"):
        return net.site_consumers()  # type: ignore[operator]  # torch types Module attributes as Tensor | Module
    order: list[nn.Module] = []
    handles = [
        m.register_forward_pre_hook(lambda module, _inputs: order.append(module))
        for m in net.modules()
        if not list(m.children())
    ]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            first = next(net.parameters())
            net(torch.zeros((2,) + net.input_shape, dtype=first.dtype, device=first.device), None)
    finally:
        net.train(was_training)
        for handle in handles:
            handle.remove()
    consumers: list[list[nn.Parameter]] = []
    site_modules = sorted((m for m in net.modules() if isinstance(m, MaskSite)), key=lambda m: m.site.index)  # type: ignore[union-attr]  # a MaskSite's site is set when the net is built
    for site_module in site_modules:
        start = order.index(site_module) + 1 if site_module in order else len(order)
        found = [
            m.weight
            for m in order[start:]
            if not isinstance(m, MaskSite)
            and isinstance(getattr(m, "weight", None), nn.Parameter)
            and m.weight.dim() >= 2  # type: ignore[operator]  # torch types Module attributes as Tensor | Module
        ]
        consumers.append(found[:1])  # type: ignore[arg-type]  # torch types Module attributes as Tensor | Module
    return consumers


DEFAULT_INIT_DROP = 0.1  # Gal's code, for backbones without rates of their own


class ConcreteDropout(DropoutMethod):
    """Concrete dropout on every mask site of `net`.

    dataset_size: N, the number of training examples (scales the regulariser; required).
    temperature: relaxation temperature t = 0.1 (Gal et al. 2017; `concrete_temp` = 0.1 in GFNDropout).
    init_drop: initial drop probability of every site. The default (None) starts each site of a
        `gflowout.wrap` net at the rate of the `nn.Dropout` it replaced, and every other backbone's sites
        at 0.1 (init_min = init_max = 0.1 in Gal's code); a float sets every site.
    length_scale: prior length-scale l = 1e-4 of Gal's examples, giving weight_reg = l^2 / N.
    weight_reg, dropout_reg: override l^2 / N and 2 / N (Gal's reference code).
    Parameter groups: "backbone" (the net; `backbone_spec`) and "dropout" (the drop logits;
    `dropout_spec`). The losses: "backbone" = cross-entropy + weight term, "dropout" = entropy
    term; the cross-entropy's reparameterised gradient also reaches the drop logits, so train on the
    sum of the losses (as `train_step` does): that sum is the published objective.
    Prediction samples relaxed masks as at training (Gal's code); the deterministic pass is weight
    scaling, the identity under the 1 / (1 - p) scaling.
    """

    name = "concrete"

    def __init__(
        self,
        net: MaskedNet,
        dataset_size: int,
        temperature: float = 0.1,
        init_drop: float | None = None,
        length_scale: float = 1e-4,
        weight_reg: float | None = None,
        dropout_reg: float | None = None,
    ) -> None:
        super().__init__(net)
        self.dataset_size = check_dataset_size(dataset_size, "ConcreteDropout")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        drops = site_rates(net, init_drop, DEFAULT_INIT_DROP)
        if not all(0.0 < drop < 1.0 for drop in drops):
            raise ValueError(f"init_drop must be in (0, 1), got {init_drop if init_drop is not None else drops}")
        self.temperature = float(temperature)
        self.weight_reg = float(length_scale**2 / dataset_size if weight_reg is None else weight_reg)
        self.dropout_reg = float(2.0 / dataset_size if dropout_reg is None else dropout_reg)
        self.drop_logits = nn.Parameter(torch.tensor([math.log(p) - math.log1p(-p) for p in drops]))
        # Not a module attribute: these parameters belong to the net and must not be registered twice.
        object.__setattr__(self, "_consumers", consumer_weights(net))

    @property
    def drop_probabilities(self) -> Tensor:
        """Current drop probability p of each site [num_sites] (detached)."""
        return torch.sigmoid(self.drop_logits.detach())

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.net.parameters()), "dropout": [self.drop_logits]}

    def group_defaults(self) -> dict[str, GroupSpec]:
        return {"backbone": backbone_spec(self.net), "dropout": dropout_spec(self.net)}

    def sample_masked(self, site: Site, activation: Tensor) -> Tensor:
        """The sampler: a relaxed keep mask [batch, width], scaled by 1 / (1 - p)."""
        drop_logit = self.drop_logits[site.index].to(activation.dtype)
        keep = relaxed_keep_mask(drop_logit, (activation.shape[0], site.width), self.temperature)
        inverse_keep = 1.0 + torch.exp(drop_logit)  # 1 / (1 - p) with p = sigmoid(a)
        return apply_mask(site, activation, keep, inverse_keep)

    def regularisers(self) -> tuple[Tensor, Tensor]:
        """(weight term, entropy term), each summed over sites (scalars)."""
        log_p = F.logsigmoid(self.drop_logits)
        log_keep = F.logsigmoid(-self.drop_logits)
        widths = torch.tensor([s.width for s in self.net.sites], dtype=log_p.dtype, device=log_p.device)
        negative_entropy = log_p.exp() * log_p + log_keep.exp() * log_keep
        entropy_term = self.dropout_reg * (widths * negative_entropy).sum()
        weight_norms = torch.stack(
            [
                sum((w.pow(2).sum() for w in weights), torch.zeros((), device=log_p.device))
                for weights in self._consumers  # type: ignore[union-attr]  # torch types Module attributes as Tensor | Module
            ]
        )
        weight_term = self.weight_reg * (weight_norms * torch.exp(-log_keep)).sum()
        return weight_term, entropy_term

    def compute_losses(self, x: Tensor, y: Tensor) -> StepResult:
        cross_entropy, logits = classification_step(self.net, x, y, self.sample_masked)
        ce = cross_entropy.mean()
        weight_term, entropy_term = self.regularisers()
        logs = {
            "cross_entropy": ce.detach(),
            "accuracy": accuracy_of(logits, y),
            "drop_rate_mean": self.drop_probabilities.mean(),
        }
        return StepResult(losses={"backbone": ce + weight_term, "dropout": entropy_term}, logs=logs)

    def mask_diagnostics(self, x: Tensor, y: Tensor) -> dict[str, float]:
        """Per-site keep probabilities (`methods.diagnostics`)."""
        from gflowout.methods.diagnostics import concrete_diagnostics

        return concrete_diagnostics(self, x, y)

    def prediction_sampler(self) -> MaskSampler | None:
        return self.sample_masked

    def deterministic_sampler(self) -> MaskSampler | None:
        return _identity

    def extra_repr(self) -> str:
        return f"dataset_size={self.dataset_size}, temperature={self.temperature}"


def _identity(site: Site, activation: Tensor) -> Tensor:
    return activation
