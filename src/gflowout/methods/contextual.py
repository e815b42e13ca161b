"""`ContextualDropout` (method "contextual"): sample-dependent keep probabilities, Fan, Zhang,
Tanwisuth, Qian & Zhou (ICLR 2021).

At each site a small bottleneck network reads the site's detached activation summary
(`site_features`: the units for a unit site, global average pooling per channel for a conv site)
and gives keep logits phi = k * alpha, alpha = W2 LeakyReLU_0.1(W1 h + b1) + b2, hidden width
width / bottleneck_factor. The prior is Bernoulli(sigmoid(k * eta_l)) with one learned scalar eta_l
per site, and the loss is cross-entropy + kl_weight * KL(q(z | x) || p_eta(z)) per example.

Two variants:
- "bernoulli": z ~ Bernoulli(sigmoid(phi)), applied with the site's own rule (MLP: width / number
  kept; ResNet: none), trained by the ARM estimator (Yin & Zhou 2019): with the same uniforms u, a
  pseudo pass uses z' = 1[u > 1 - pi], and phi gets the gradient (f(z') - f(z)) (u - 1/2), f the
  per-example cross-entropy. The KL is analytic (lower variance than putting it into f). Both
  gradients are built in closed form and sent through the bottlenecks by hand (`contextual_arm`);
  the pseudo pass resumes at the first site where the backbone allows (`MaskedNet.forward_from_site`).
- "gaussian": z = 1 + sigma * eps, sigma^2 = (1 - pi) / pi, reparameterised; Gaussian prior of the
  same form with pi_prior = sigmoid(k * eta).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gflowout.methods.base import DropoutMethod, GroupSpec, StepResult, site_rates
from gflowout.methods.contextual_arm import (
    LEAKY_SLOPE,
    ArmObjective,
    ArmPlan,
    BottleneckPass,
    bernoulli_kl_and_grad_,
    bottleneck_forward,
    bottleneck_parameters,
)
from gflowout.methods.none import accuracy_of, backbone_spec, classification_step, dropout_spec
from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import MaskSampler, Site, apply_binary_mask_, apply_mask, broadcast_mask, site_features

Variant = Literal["bernoulli", "gaussian"]


class SiteBottleneck(nn.Module):
    """alpha = W2 LeakyReLU_0.1(W1 h + b1) + b2: [batch, width] -> [batch, width] keep logits / k.

    The output bias starts at (log(1 - r) - log r) / k, so the initial keep probability is 1 - r.
    """

    def __init__(self, width: int, hidden: int, init_drop: float, k: float) -> None:
        super().__init__()
        self.inner = nn.Linear(width, hidden)
        self.outer = nn.Linear(hidden, width)
        with torch.no_grad():
            self.outer.bias.fill_((math.log1p(-init_drop) - math.log(init_drop)) / k)

    def forward(self, features: Tensor) -> Tensor:
        return self.outer(F.leaky_relu(self.inner(features), LEAKY_SLOPE))


def bernoulli_kl(logits_q: Tensor, logits_p: Tensor) -> Tensor:
    """KL(Bern(sigmoid(logits_q)) || Bern(sigmoid(logits_p))) elementwise, in log space.

    logits_p may be a tensor that broadcasts against logits_q (a per-site scalar prior): its terms
    are then computed once, not per unit. With l = logsigmoid(phi), log(1 - pi) = l - phi, so
    KL = l - pi * logsigmoid(phi_p) - (1 - pi) * (phi + logsigmoid(-phi_p)), computed in the
    simplified form below.
    """
    # Since log(1 - pi) = logsigmoid(-phi) and logsigmoid(-phi_p) - logsigmoid(phi_p) = -phi_p, this is
    # KL = logsigmoid(-phi) - logsigmoid(-phi_p) + pi * (phi - phi_p): fewer temporaries, same value.
    return F.logsigmoid(-logits_q) - F.logsigmoid(-logits_p) + torch.sigmoid(logits_q) * (logits_q - logits_p)


def gaussian_kl(logits_q: Tensor, logits_p: Tensor) -> Tensor:
    """KL(N(1, s_q^2) || N(1, s_p^2)) elementwise with s^2 = (1 - pi) / pi = exp(-logit); logits_p
    may broadcast against logits_q."""
    return 0.5 * (logits_q - logits_p) + 0.5 * torch.exp(logits_p - logits_q) - 0.5


@contextmanager
def frozen_batchnorm_stats(net: nn.Module) -> Iterator[None]:
    """Batch and instance norms normalise with batch statistics but leave their running statistics unchanged
    (the ARM pseudo pass must not update them a second time per step)."""
    saved = []
    for module in net.modules():
        if (
            isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats
        ):  # BatchNorm*, InstanceNorm*
            tracked = module.num_batches_tracked.clone() if module.num_batches_tracked is not None else None
            saved.append((module, module.momentum, tracked))
            module.momentum = 0.0
    try:
        yield
    finally:
        for module, momentum, tracked in saved:
            module.momentum = momentum
            if tracked is not None:
                module.num_batches_tracked.copy_(tracked)  # type: ignore[union-attr]  # not None here: set before use


DEFAULT_INIT_DROP = 0.5  # GFNDropout's mlp_dr / wrn_dr, for backbones without rates of their own


class ContextualDropout(DropoutMethod):
    """Contextual dropout on every mask site of `net`.

    variant: "bernoulli" (ARM gradients; the version GFNDropout compared against, `ctype` =
        "Bernoulli") or "gaussian" (reparameterised; the official Contextual code's default).
    init_drop: initial drop rate r of every site. The default (None) starts each site of a `gflowout.wrap`
        net at the rate of the `nn.Dropout` it replaced, and every other backbone's sites at 0.5 (`mlp_dr` =
        `wrn_dr` = 0.5 in GFNDropout's copy; the official Contextual code used 0.2); a float sets every site.
    prior_keep: initial prior keep probability sigmoid(k * eta), 0.8 (eta = 138.6, k = 0.01 in both
        codes' config.py).
    k: logit scale, 0.01 (config.py `k`). bottleneck_factor: width / hidden, 10 (`cha_factor`).
    kl_weight: weight of the per-example KL, 1.0 (`lambda_kl`; no 1/N, as the masks are
        per-example latent variables). learn_prior: learn eta (True, `learn_prior_scalar`).
    Parameter groups: "backbone" (the net; `backbone_spec`) and "dropout" (bottlenecks and eta;
    `dropout_spec`). In the Gaussian variant the cross-entropy's reparameterised gradient also reaches
    the bottlenecks: train on the sum of the losses (as `train_step` does).
    ARM with several sites: the pseudo pass propagates its own masks (as the official code). Scoring
    f(z') against the REAL pass's keep logits, as a single-layer ARM would, is biased for the later
    sites' bottleneck weights whenever their keep probabilities depend on earlier masks (any deep
    backbone; measured by enumeration). So each site gets the average of the two augment-REINFORCE
    terms, one per trajectory, each with the logits of its own trajectory:
    grad = phi' f(z') (u - 1/2) - phi f(z) (u - 1/2), phi' the pseudo pass's logits. Each term is
    unbiased (REINFORCE with the AR identity, site by site given the earlier masks), and where
    phi' = phi (always the first site) it is exactly ARM's (f(z') - f(z)) (u - 1/2) phi.
    """

    name = "contextual"

    def __init__(
        self,
        net: MaskedNet,
        variant: Variant = "bernoulli",
        init_drop: float | None = None,
        prior_keep: float = 0.8,
        k: float = 0.01,
        bottleneck_factor: int = 10,
        kl_weight: float = 1.0,
        learn_prior: bool = True,
    ) -> None:
        super().__init__(net)
        if variant not in ("bernoulli", "gaussian"):
            raise ValueError(f"variant must be 'bernoulli' or 'gaussian', got {variant!r}")
        drops = site_rates(net, init_drop, DEFAULT_INIT_DROP)
        for label, value in [*(("init_drop", d) for d in drops), ("prior_keep", prior_keep)]:
            if not 0.0 < value < 1.0:
                raise ValueError(f"{label} must be in (0, 1), got {value}")
        if not k > 0 or bottleneck_factor < 1 or kl_weight < 0:
            raise ValueError(
                f"need k > 0, bottleneck_factor >= 1, kl_weight >= 0; got {k}, {bottleneck_factor}, {kl_weight}"
            )
        self.variant: Variant = variant
        self.k = float(k)
        self.kl_weight = float(kl_weight)
        self.bottlenecks = nn.ModuleList(
            SiteBottleneck(s.width, max(1, s.width // bottleneck_factor), drop, self.k)
            for s, drop in zip(net.sites, drops)
        )
        eta = (math.log(prior_keep) - math.log1p(-prior_keep)) / self.k
        self.prior_eta = nn.Parameter(torch.full((len(net.sites),), eta), requires_grad=learn_prior)

    # --- parameters --------------------------------------------------------------------------
    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        dropout = list(self.bottlenecks.parameters()) + ([self.prior_eta] if self.prior_eta.requires_grad else [])
        return {"backbone": list(self.net.parameters()), "dropout": dropout}

    def group_defaults(self) -> dict[str, GroupSpec]:
        return {"backbone": backbone_spec(self.net), "dropout": dropout_spec(self.net)}

    def keep_logits(self, site: Site, activation: Tensor) -> Tensor:
        """phi = k * alpha [batch, width] from the site's detached activation summary."""
        return self.k * self.bottlenecks[site.index](site_features(site, activation.detach()))

    # --- samplers ----------------------------------------------------------------------------
    def _masked(self, site: Site, activation: Tensor, logits: Tensor, uniforms: Tensor | None = None) -> Tensor:
        if self.variant == "gaussian":
            # z = 1 + sigma * eps; broadcast directly (apply_mask with scale 1.0 would add a multiply).
            mask = torch.randn_like(logits).mul(torch.exp(-0.5 * logits)).add_(1.0)
            return activation * broadcast_mask(site, mask.to(activation.dtype), activation)
        if uniforms is None:
            uniforms = torch.rand_like(logits)
        mask = (uniforms < torch.sigmoid(logits.detach())).to(activation.dtype)
        return apply_mask(site, activation, mask)

    def sample_masked(self, site: Site, activation: Tensor) -> Tensor:
        """Prediction sampler: z ~ q(z | x) at the site (Bernoulli or Gaussian)."""
        return self._masked(site, activation, self.keep_logits(site, activation))

    def expected_masked(self, site: Site, activation: Tensor) -> Tensor:
        """Deterministic pass: the expected mask (pi for Bernoulli, i.e. weight scaling; 1 for Gaussian)."""
        if self.variant == "gaussian":
            return activation
        return apply_mask(site, activation, torch.sigmoid(self.keep_logits(site, activation)))

    def mask_diagnostics(self, x: Tensor, y: Tensor) -> dict[str, float]:
        """Per-site keep probabilities and entropies (`methods.diagnostics`)."""
        from gflowout.methods.diagnostics import contextual_diagnostics

        return contextual_diagnostics(self, x, y)

    def prediction_sampler(self) -> MaskSampler | None:
        return self.sample_masked

    def deterministic_sampler(self) -> MaskSampler | None:
        return self.expected_masked

    # --- training ----------------------------------------------------------------------------
    def compute_losses(self, x: Tensor, y: Tensor) -> StepResult:
        if self.variant == "bernoulli":
            return self._arm_losses(x, y)
        logits_by_site: dict[int, Tensor] = {}

        def training_sampler(site: Site, activation: Tensor) -> Tensor:
            logits = self.keep_logits(site, activation)
            logits_by_site[site.index] = logits
            return self._masked(site, activation, logits)

        cross_entropy, output = classification_step(self.net, x, y, training_sampler)
        ce = cross_entropy.mean()
        kl = self._kl(logits_by_site)
        logs = {"cross_entropy": ce.detach(), "accuracy": accuracy_of(output, y), "kl": kl.detach()}
        return StepResult(losses={"backbone": ce, "dropout": self.kl_weight * kl}, logs=logs)

    def _kl(self, logits_by_site: dict[int, Tensor]) -> Tensor:
        """Per-example KL summed over units and sites, averaged over the batch (Gaussian variant)."""
        total = 0.0
        for index, logits in logits_by_site.items():
            prior_logit = self.k * self.prior_eta[index]  # a scalar: broadcast, not expanded
            total = total + gaussian_kl(logits, prior_logit).sum() / logits.shape[0]  # type: ignore[assignment]  # 0.0, then a tensor from the first site on
        return total  # type: ignore[return-value]

    def _arm_losses(self, x: Tensor, y: Tensor) -> StepResult:
        """Bernoulli variant: the real pass, the ARM pseudo pass, and the dropout loss (the weighted KL)
        whose backward gives the KL + ARM gradients built by hand (`contextual_arm`).

        The pseudo pass resumes at the first site from the real pass's activation where the backbone
        can (`MaskedNet.forward_from_site`): the layers before it would give the same output. At the
        first site the real keep logits are reused (phi' = phi, ARM's term). Every later site evaluates
        the bottleneck on the pseudo pass's own activation and gets phi' f(z') (u - 1/2) - phi f(z) (u - 1/2);
        where that activation happens to equal the real one, phi' = phi and this is ARM's term again
        (the same value either way, so that rare case is not tested for).
        """
        real: dict[int, BottleneckPass] = {}
        probs: dict[int, Tensor] = {}
        uniforms: dict[int, Tensor] = {}
        activations: dict[int, Tensor] = {}

        def training_sampler(site: Site, activation: Tensor) -> Tensor:
            draw = bottleneck_forward(self.bottlenecks[site.index], site_features(site, activation.detach()), self.k)
            real[site.index] = draw
            uniforms[site.index] = torch.rand_like(draw.logits)
            probs[site.index] = torch.sigmoid(draw.logits)
            activations[site.index] = activation  # the pseudo pass resumes from the first one
            mask = torch.lt(uniforms[site.index], probs[site.index], out=torch.empty_like(draw.logits))
            return apply_binary_mask_(site, activation, mask)

        cross_entropy, output = classification_step(self.net, x, y, training_sampler)
        pseudo: dict[int, BottleneckPass] = {}

        first = self.net.sites[0].index

        def pseudo_sampler(site: Site, activation: Tensor) -> Tensor:
            # z' = 1[u > 1 - pi'] = 1[u > sigmoid(-phi')]: the antithetic pseudo action.
            if site.index == first and (
                activation is activations[first] or torch.equal(activation, activations[first])
            ):
                threshold = real[first].logits.neg().sigmoid_()  # the same input through the same layers: phi' = phi
            else:
                draw = bottleneck_forward(self.bottlenecks[site.index], site_features(site, activation), self.k)
                pseudo[site.index] = draw
                if self.kl_weight:  # this site's KL on the pseudo trajectory: part of f(z') for the earlier sites
                    prior_logit = self.k * self.prior_eta[site.index].detach()
                    pseudo_kl[site.index] = bernoulli_kl(draw.logits, prior_logit).sum(dim=1)
                threshold = draw.logits.neg_().sigmoid_()  # the pseudo logits are not needed later
            mask = torch.gt(uniforms[site.index], threshold, out=threshold)  # 0/1, over the thresholds
            return apply_binary_mask_(site, activation, mask)

        with torch.no_grad(), frozen_batchnorm_stats(self.net):
            pseudo_kl: dict[
                int, Tensor
            ] = {}  # per example, at sites whose pseudo keep logits differ from the real ones
            pseudo_output = self.net.forward_from_site(first, activations[first], pseudo_sampler)
            if pseudo_output is None:  # this backbone cannot resume: the whole pass
                pseudo_output = self.net(x, pseudo_sampler)
            pseudo_cross_entropy = F.cross_entropy(pseudo_output, y, reduction="none")
            kl, plan = self._arm_plan(
                x.shape[0], cross_entropy.detach(), pseudo_cross_entropy, real, pseudo, probs, uniforms, pseudo_kl
            )
        ce = cross_entropy.mean()
        logs = {"cross_entropy": ce.detach(), "accuracy": accuracy_of(output, y), "kl": kl}
        params = bottleneck_parameters(self.bottlenecks)
        dropout_loss = ArmObjective.apply(self.kl_weight * kl, plan, self.prior_eta, *params)
        return StepResult(losses={"backbone": ce, "dropout": dropout_loss}, logs=logs)

    def _arm_plan(
        self,
        batch: int,
        cross_entropy: Tensor,
        pseudo_cross_entropy: Tensor,
        real: dict[int, BottleneckPass],
        pseudo: dict[int, BottleneckPass],
        probs: dict[int, Tensor],
        uniforms: dict[int, Tensor],
        pseudo_kl: dict[int, Tensor],
    ) -> tuple[Tensor, ArmPlan]:
        """The KL (per example, summed over sites) and every pass's d(loss) / d phi (see `contextual_arm`).

        Site j's ARM term scores f_j = CE + kl_weight * sum_{l > j} KL_l of each trajectory (the real one
        and the pseudo one, each with its own keep logits): a later site's KL depends on z_j through the
        activation its keep logits read, while site j's own KL is differentiated in closed form.
        """
        kl_scale = self.k * self.kl_weight / batch
        plan = ArmPlan(bottlenecks=self.bottlenecks)
        prior_logits = self.k * self.prior_eta.detach()
        prior_grad = torch.zeros_like(self.prior_eta)
        site_kl, kl_grads = {}, {}
        for index, draw in real.items():
            # the real logits are not needed after this: the KL's gradient is written over them
            prior_logit = prior_logits[index]
            site_kl[index], kl_grads[index], probs_sum = bernoulli_kl_and_grad_(
                draw.logits, probs[index], prior_logit, kl_scale
            )
            # d/d eta of kl_weight * KL / B: k * kl_weight / B * sum(sigmoid(phi_p) - pi)
            prior_grad[index] = kl_scale * (draw.logits.numel() * torch.sigmoid(prior_logit) - probs_sum)
        kl = sum(rows.sum() for rows in site_kl.values()) / batch
        # f_j per example, from the last site back: CE plus the KL of every later site on that trajectory
        real_loss, pseudo_loss = cross_entropy.clone(), pseudo_cross_entropy.clone()
        losses = {}
        for index in reversed(list(real)):
            losses[index] = (real_loss.mul(self.k / batch).unsqueeze(1), pseudo_loss.mul(self.k / batch).unsqueeze(1))
            if (
                self.kl_weight
            ):  # k f / B per row: the scale k is folded into the per-row factors (d/d alpha = k d/d phi)
                real_loss = real_loss.add(site_kl[index], alpha=self.kl_weight)
                pseudo_loss = pseudo_loss.add(pseudo_kl.get(index, site_kl[index]), alpha=self.kl_weight)
        for index, draw in real.items():
            # uniforms and the pseudo draws' thresholds are not needed any more: written over
            real_term, pseudo_term = losses[index]
            grad = kl_grads[index]
            centred = uniforms[index].sub_(0.5)
            pseudo_draw = pseudo.get(index)
            if pseudo_draw is None:  # phi' = phi: ARM's single term
                draw.alpha_grad = grad.addcmul_(centred, pseudo_term - real_term)
                plan.passes.append([draw])
            else:
                draw.alpha_grad = grad.addcmul_(centred, real_term, value=-1.0)
                pseudo_draw.alpha_grad = centred.mul_(pseudo_term)
                plan.passes.append([draw, pseudo_draw])
        plan.prior_grad = prior_grad if self.prior_eta.requires_grad else None
        return kl, plan  # type: ignore[return-value]  # kl is a tensor once a site is seen

    def extra_repr(self) -> str:
        return f"variant={self.variant}, k={self.k}, kl_weight={self.kl_weight}"
