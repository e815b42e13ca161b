"""`MCDropout` (method "mc_dropout"): fixed-rate Bernoulli masks, Gal & Ghahramani (ICML 2016).

The paper's "Random" baseline (code mask "random"): every site keeps each unit independently with
probability `keep_prob`, at training and at prediction; the S-sample predictive averages S passes.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from gflowout.methods.base import DropoutMethod, GroupSpec, StepResult, site_rates
from gflowout.methods.none import accuracy_of, backbone_spec, classification_step
from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import MaskSampler, Site, apply_mask

Scaling = Literal["inverted", "site"]


def bernoulli_masks(batch: int, width: int, keep_prob: float | Tensor, like: Tensor) -> Tensor:
    """A [batch, width] 0/1 mask, each entry 1 with probability keep_prob (dtype and device of `like`).

    `rand < p` is used instead of `torch.bernoulli` (cheaper on CPU); the comparison writes its 0/1
    result over the uniforms (`out=`), which skips a bool tensor and its slow bool -> float
    conversion. Same mask, same seed.
    """
    # at least float32: bf16 uniforms (an activation's dtype under bf16-mixed autocast) would quantise keep_prob
    # (keep 0.999 never dropped a unit, keep 0.5 kept ~0.5008)
    dtype = torch.promote_types(like.dtype, torch.float32)
    uniforms = torch.rand(batch, width, device=like.device, dtype=dtype)
    mask = torch.lt(uniforms, keep_prob, out=uniforms)
    return mask if dtype == like.dtype else mask.to(like.dtype)


DEFAULT_KEEP_PROB = 0.5  # the paper's random baseline, for backbones without rates of their own


class MCDropout(DropoutMethod):
    """Monte-Carlo dropout with a fixed keep probability at every site.

    keep_prob: probability of keeping a unit at every site. The default (None) keeps the model's own
        rates where it has them: each site of a `gflowout.wrap` net keeps 1 - p of the `nn.Dropout` it
        replaced, i.e. the user's own MC dropout; a backbone without such rates (MLP, CifarResNet18)
        keeps 0.5, the paper's random baseline. A float overrides both.
    scaling: "inverted" multiplies kept units by 1 / keep_prob (Gal & Ghahramani; the expected masked
        activation equals the unmasked one); "site" follows the site's own rule instead, as the
        official random baseline (MLP: width / number kept; ResNet: no rescaling).
    One parameter group, "backbone" (defaults from `backbone_spec`).
    `deterministic_sampler` is weight scaling: the expected mask, i.e. the identity under inverted
    scaling and keep_prob times the activation for sites that do not rescale.
    """

    name = "mc_dropout"

    def __init__(self, net: MaskedNet, keep_prob: float | None = None, scaling: Scaling = "inverted") -> None:
        super().__init__(net)
        if keep_prob is None:  # the model's own rates where it has them (`site_rates`), else 1 - DEFAULT_KEEP_PROB
            keeps = [1.0 - drop for drop in site_rates(net, None, 1.0 - DEFAULT_KEEP_PROB)]
        else:
            keeps = [float(keep_prob)] * len(net.sites)
        if not all(0.0 < keep <= 1.0 for keep in keeps):
            raise ValueError(f"keep probabilities must be in (0, 1], got {keeps if keep_prob is None else keep_prob}")
        if scaling not in ("inverted", "site"):
            raise ValueError(f"scaling must be 'inverted' or 'site', got {scaling!r}")
        self.keep_probs = tuple(keeps)  # one per site
        self.keep_prob = keep_prob  # as given: None when the per-site rates come from `site_rates`
        self.scaling: Scaling = scaling

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.net.parameters())}

    def group_defaults(self) -> dict[str, GroupSpec]:
        return {"backbone": backbone_spec(self.net)}

    def sample_masked(self, site: Site, activation: Tensor) -> Tensor:
        """The sampler: a fresh Bernoulli(keep_prob) mask per example and unit (or channel)."""
        keep = self.keep_probs[site.index]
        mask = bernoulli_masks(activation.shape[0], site.width, keep, activation)
        scale = 1.0 / keep if self.scaling == "inverted" else None
        return apply_mask(site, activation, mask, scale)

    def weight_scaled(self, site: Site, activation: Tensor) -> Tensor:
        """Deterministic pass: the activation times its expected (scaled) mask."""
        if self.scaling == "inverted" or site.rescale:
            return activation
        return activation * self.keep_probs[site.index]

    def compute_losses(self, x: Tensor, y: Tensor) -> StepResult:
        cross_entropy, logits = classification_step(self.net, x, y, self.sample_masked)
        loss = cross_entropy.mean()
        return StepResult(
            losses={"backbone": loss}, logs={"cross_entropy": loss.detach(), "accuracy": accuracy_of(logits, y)}
        )

    def prediction_sampler(self) -> MaskSampler | None:
        return self.sample_masked

    def deterministic_sampler(self) -> MaskSampler | None:
        return self.weight_scaled

    def extra_repr(self) -> str:
        return f"keep_probs={self.keep_probs}, scaling={self.scaling}"
