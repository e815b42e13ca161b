"""The ARM estimator of `ContextualDropout(variant="bernoulli")` with a hand-written gradient.

Why a hand-written gradient: the bottleneck inputs are detached and the masks are samples, so the
only gradients that reach the bottlenecks are d(loss) / d(keep logits), known in closed form (the
analytic KL's and ARM's). Building them directly and sending them through one matrix backward per
site saves the autograd graph of 3 x 2 thin linears, the surrogate's passes over [batch, width]
tensors, and the KL's autograd chain, a large share of the ARM step's time outside its matrix
products (`benchmarks/README.md`). The estimator is the one `ContextualDropout` describes:

    d/d phi  = kl_weight / B * pi (1 - pi) (phi - phi_p)        (the analytic KL)
             + (u - 1/2) (f(z') - f(z)) / B                      (ARM, where phi' = phi)
    or       - (u - 1/2) f(z) / B  and  d/d phi' = (u - 1/2) f(z') / B   (where phi' != phi),
    with f = CE + kl_weight * (the KL of every LATER site) of the trajectory (real z or pseudo z'),
    d/d eta  = kl_weight * k / B * sum (sigmoid(k eta) - pi)     (the prior's scalar),

then phi = k * (W2 LeakyReLU_0.1(W1 h + b1) + b2) is differentiated by hand (`bottleneck_backward`).
tests/methods/test_contextual_arm.py checks these gradients against the autograd surrogate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEAKY_SLOPE = 0.1  # the bottleneck's LeakyReLU slope (the official code's)


@dataclass
class BottleneckPass:
    """One bottleneck evaluation [batch rows] at one site, kept for the hand-written backward.

    features: the detached site summary [batch, width]; hidden: LeakyReLU output [batch, hidden];
    logits: phi = k * alpha [batch, width] (no graph); alpha_grad: d(loss) / d alpha = k d(loss) / d phi,
    set once both passes have run. The ARM step writes over `logits` once it has used them (the
    pseudo thresholds and masks, the real gradient), as the backward does not read them.
    """

    features: Tensor
    hidden: Tensor
    logits: Tensor
    alpha_grad: Tensor | None = None
    features_version: int = 0  # `features._version` when saved: an in-place change since is an error


def bottleneck_linears(bottleneck: nn.Module) -> tuple[nn.Linear, nn.Linear]:
    """(inner, outer): the two layers of a site's bottleneck (`contextual.SiteBottleneck`, typed as a Module)."""
    return cast(nn.Linear, bottleneck.inner), cast(nn.Linear, bottleneck.outer)


def bottleneck_forward(bottleneck: nn.Module, features: Tensor, k: float) -> BottleneckPass:
    """phi = k * (W2 LeakyReLU_0.1(W1 h + b1) + b2) without autograd (the scale k folded into the matmul).

    In the parameters' dtype even under autocast (bf16-mixed): the hand-written backward multiplies
    saved tensors with the weights outside autocast, and these small nets gain nothing from bf16.
    """
    inner, outer = bottleneck_linears(bottleneck)
    with torch.no_grad(), torch.autocast(features.device.type, enabled=False):
        features = features.to(inner.weight.dtype)
        hidden = F.leaky_relu(torch.addmm(inner.bias, features, inner.weight.t()), LEAKY_SLOPE)
        logits = torch.addmm(outer.bias, hidden, outer.weight.t(), beta=k, alpha=k)
    return BottleneckPass(features=features, hidden=hidden, logits=logits, features_version=features._version)


def bottleneck_backward(bottleneck: nn.Module, passes: list[BottleneckPass]) -> list[Tensor]:
    """Gradients [W1, b1, W2, b2] of sum over `passes` of <alpha_grad, alpha>, accumulated over the passes.

    alpha = W2 a + b2 with a = LeakyReLU(W1 h + b1); a > 0 exactly where the pre-activation is > 0
    (slope 0.1 > 0), so the saved output gives the LeakyReLU derivative. W2's gradient is computed
    as (a^T G)^T ([hidden, rows] x [rows, width]), the faster layout for CPU matmul than G^T a.
    """
    outer_weight = bottleneck_linears(bottleneck)[1].weight
    grads: list[Tensor] = []
    for item in passes:
        assert item.alpha_grad is not None, "alpha_grad is set before the backward"
        if item.features._version != item.features_version:  # what autograd's saved tensors would check
            raise RuntimeError(
                "a site activation read by a Contextual-dropout bottleneck was modified in place before the "
                "backward pass; make the backbone's operation after the dropout site out of place"
            )
        grad_alpha = item.alpha_grad
        grad_hidden = torch.mm(grad_alpha, outer_weight)
        grad_hidden = torch.where(item.hidden > 0, grad_hidden, grad_hidden * LEAKY_SLOPE)
        if not grads:
            grads = [
                torch.mm(grad_hidden.t(), item.features),
                grad_hidden.sum(0),
                torch.mm(item.hidden.t(), grad_alpha),  # W2's gradient, transposed
                grad_alpha.sum(0),
            ]
        else:  # a second pass accumulates into the first one's products (no fresh [hidden, width] tensors)
            grads[0].addmm_(grad_hidden.t(), item.features)
            grads[1].add_(grad_hidden.sum(0))
            grads[2].addmm_(item.hidden.t(), grad_alpha)
            grads[3].add_(grad_alpha.sum(0))
    grads[2] = grads[2].t()
    return grads


def bernoulli_kl_and_grad_(
    logits: Tensor, probs: Tensor, prior_logit: Tensor, grad_scale: float
) -> tuple[Tensor, Tensor, Tensor]:
    """KL(Bern(sigmoid(phi)) || Bern(sigmoid(phi_p))) summed per row [batch], grad_scale * d KL / d phi, sum(pi).

    KL = logsigmoid(-phi) - logsigmoid(-phi_p) + pi (phi - phi_p) (`contextual.bernoulli_kl`), whose
    derivative is pi (1 - pi) (phi - phi_p). probs = sigmoid(phi); prior_logit is a scalar tensor.
    The gradient is written over `logits`, sparing [batch, width] temporaries; the caller must not need the
    logits afterwards.
    """
    width = logits.shape[1]
    negated = logits.neg_()  # -phi, in place
    log_complement = F.logsigmoid(negated).sum(dim=1)  # sum of logsigmoid(-phi) per row
    negated_weighted = negated.add_(prior_logit).mul_(probs)  # pi (phi_p - phi) = -pi (phi - phi_p)
    total = log_complement - width * F.logsigmoid(-prior_logit) - negated_weighted.sum(dim=1)
    # pi (phi - phi_p) (1 - pi), scaled: the sign folded into the scale
    grad = negated_weighted.addcmul_(negated_weighted, probs, value=-1.0).mul_(-grad_scale)
    return total, grad, probs.sum()


@dataclass
class ArmPlan:
    """What the hand-written backward needs: per site its passes (real, then pseudo where it ran one)
    and the prior's gradient per site (None when the prior is not learned)."""

    bottlenecks: nn.ModuleList
    passes: list[list[BottleneckPass]] = field(default_factory=list)
    prior_grad: Tensor | None = None


class ArmObjective(torch.autograd.Function):
    """Returns `value` (the weighted KL) unchanged; its backward gives the bottleneck parameters and the
    prior the planned gradients (KL + ARM) times the incoming gradient.

    Inputs: value, plan, prior_eta, then per site (W1, b1, W2, b2) of its bottleneck, so that autograd
    reaches every parameter; only `plan` is read in the backward (it is kept for a second backward
    with retain_graph=True and freed with the graph).
    """

    @staticmethod
    def forward(ctx: Any, value: Tensor, plan: ArmPlan, prior_eta: Tensor, *params: Tensor) -> Tensor:
        ctx.plan = plan
        return value.detach().clone()

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        # Lightning's manual_backward runs inside bf16-mixed autocast; the planned gradients are float32 and
        # accumulate in place, so autocast (which would make the products bf16) stays off here
        with torch.autocast(grad_output.device.type, enabled=False):
            return ArmObjective._backward(ctx, grad_output)

    @staticmethod
    def _backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        plan: ArmPlan = ctx.plan
        scale = grad_output.reshape(())
        unscaled = bool(scale == 1.0)  # the usual case (loss.backward()): no multiplications
        prior_grad = None
        if ctx.needs_input_grad[2] and plan.prior_grad is not None:
            prior_grad = plan.prior_grad.clone() if unscaled else plan.prior_grad * scale
        param_grads: list[Tensor | None] = []
        for site, (bottleneck, passes) in enumerate(zip(plan.bottlenecks, plan.passes)):
            wanted = ctx.needs_input_grad[3 + 4 * site : 7 + 4 * site]
            if not any(wanted):
                param_grads += [None] * 4
                continue
            grads = bottleneck_backward(bottleneck, passes)
            param_grads += [(g if unscaled else g.mul_(scale)) if need else None for g, need in zip(grads, wanted)]
        return (None, None, prior_grad, *param_grads)


def bottleneck_parameters(bottlenecks: nn.ModuleList) -> list[Tensor]:
    """(W1, b1, W2, b2) of every site's bottleneck, in site order: `ArmObjective`'s inputs."""
    layers = [bottleneck_linears(b) for b in bottlenecks]
    return [p for inner, outer in layers for p in (inner.weight, inner.bias, outer.weight, outer.bias)]
