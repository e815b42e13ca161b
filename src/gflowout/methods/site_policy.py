"""GFlowOut's training work at one mask site as one autograd node with a hand-written backward.

At each site GFlowOut's training sampler (`gflowout.PosteriorSampler`) evaluates the posterior
q(z_l | z_<l, h_l, y) and the prior p(z_l | z_<l, h_l) (`generators.PosteriorGenerator`,
`generators.PriorGenerator`), draws the site's mask from q, and scores it under both:

    log q(z_l) = sum_i z_i a_i - softplus(a_i),  log p(z_l) likewise with the prior's logits b.

`site_policy_step` computes exactly that (the same parameters and functions as the modules' `forward`,
tested against them in float64), as ONE autograd node per site: the forward runs without autograd,
and the backward is written out (linear layers; LeakyReLU and LayerNorm backward through the ATen
kernels autograd itself calls; the Bernoulli log-probability's closed form d/da log q = z - sigmoid(a)).
The masks, the activation summary and the label carry no gradient (the generators never train the
backbone), so only parameter gradients are formed. Because both generators read the same inputs,
their first layers run as one product per input block, their wide last layers as one batched
product, and both log-probabilities as one pass (see `_SitePolicy`).

Why, and what it bought: the generators are some sixty small ops per site on [batch, 32] tensors, and
on this 2-core CPU their count matters as much as their arithmetic. Measured in one process, A/B
against the module path (three runs of 9 rounds, fastest round each; MNIST MLP, batch 128, the
`benchmarks/bench_engine.py` setting): GFlowOut's training step went from 1.46-1.51x to 1.43-1.47x
MC dropout's at 1 thread (0.5-0.9 ms a step). At 2 threads the gain is within the noise: the benchmark
run alternately on this commit, the one before and the one without this node gave 1.60-1.62x for all
three. A modest gain: what remains is the generators' matmuls (~4 ms at 1 thread, near
this CPU's peak), dispatch of the remaining small ops, and the two extra optimisers.

The modules stay the reference and the path for everything else (prediction, ID-GFlowOut, scoring
single generators); this node is used by GFlowOut's training sampler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from gflowout.methods.generators import (
    NEGATIVE_SLOPE,
    GroupedMLPTail,
    PosteriorGenerator,
    PriorGenerator,
)
from gflowout.methods.mask_sampling import chunked_log_prob as _log_prob
from gflowout.methods.mask_sampling import draw_policy_mask
from gflowout.methods.mask_sampling import log_prob_grad as _log_prob_grad

LAYER_NORM_EPS = 1e-5  # F.layer_norm's default, as the modules use


@dataclass
class _TailTape:
    """What a tail's forward keeps for its backward, per layer: its input, the LeakyReLU output (the
    LayerNorm's input), the norm's statistics, the normed values and the weight used."""

    pre: list[Tensor] = field(default_factory=list)
    activated: list[Tensor] = field(default_factory=list)
    mean: list[Tensor] = field(default_factory=list)
    rstd: list[Tensor] = field(default_factory=list)
    normed: list[Tensor] = field(default_factory=list)
    weights: list[Tensor] = field(default_factory=list)

    def leaky_norm(self, h: Tensor, groups: int) -> Tensor:
        """LeakyReLU, then a LayerNorm per group: [batch, groups * hidden] -> [batch, groups, hidden], recorded."""
        activated = F.leaky_relu(h, NEGATIVE_SLOPE).view(h.shape[0], groups, -1)
        normed, mean, rstd = torch.native_layer_norm(activated, activated.shape[-1:], None, None, LAYER_NORM_EPS)
        self.pre.append(h)
        self.activated.append(activated)
        self.mean.append(mean)
        self.rstd.append(rstd)
        return normed

    def leaky_norm_backward(self, layer: int, grad_normed: Tensor) -> Tensor:
        """Backward of layer `layer`'s `leaky_norm`: [batch, groups, hidden] -> [batch, groups * hidden]."""
        activated = self.activated[layer]
        grad_activated = torch.ops.aten.native_layer_norm_backward(
            grad_normed, activated, activated.shape[-1:], self.mean[layer], self.rstd[layer], None, None, [True, False, False]
        )[0]
        return torch.ops.aten.leaky_relu_backward(
            grad_activated.reshape(activated.shape[0], -1), self.pre[layer], NEGATIVE_SLOPE, False
        )


def _tail_forward(tail: GroupedMLPTail, pre_activation: Tensor) -> tuple[Tensor, _TailTape]:
    """`GroupedMLPTail.forward` without autograd, keeping what the backward needs."""
    tape = _TailTape()
    h = pre_activation
    for linear in tail.linears:
        normed = tape.leaky_norm(h, tail.groups).view(h.shape[0], -1)
        weight = linear.weight if tail.groups == 1 else linear.weight * linear.block_mask
        tape.normed.append(normed)
        tape.weights.append(weight)
        h = torch.addmm(linear.bias, normed, weight.t())
    return h, tape


def _tail_backward(tail: GroupedMLPTail, tape: _TailTape, grad: Tensor, grads: dict[Tensor, Tensor]) -> Tensor:
    """Backward of `_tail_forward`: parameter gradients into `grads`, returns the gradient of its input."""
    batch = grad.shape[0]
    for i in reversed(range(len(tail.linears))):
        linear = tail.linears[i]
        grad_weight = grad.t().mm(tape.normed[i])
        grads[linear.weight] = grad_weight if tail.groups == 1 else grad_weight.mul_(linear.block_mask)
        grads[linear.bias] = grad.sum(dim=0)
        grad = tape.leaky_norm_backward(i, grad.mm(tape.weights[i]).view(batch, tail.groups, -1))
    return grad


def _paired_tail_forward(tail_a: GroupedMLPTail, tail_b: GroupedMLPTail, pre_activation: Tensor) -> tuple[Tensor, _TailTape]:
    """Two one-group `GroupedMLPTail`s of the same sizes side by side: [batch, 2 * hidden] -> [2, batch, out].

    The hidden layers run as one block-diagonal linear over both; the wide last layer as one `baddbmm`
    over the stacked weights ([2, batch, hidden] x [2, hidden, out]): one op instead of two, measured
    no slower than two [batch, 32] x [32, 1024] products. Same functions as the two tails (tested).
    """
    tape = _TailTape()
    h = pre_activation
    batch, last = h.shape[0], len(tail_a.linears) - 1
    for i, (linear_a, linear_b) in enumerate(zip(tail_a.linears, tail_b.linears)):
        normed = tape.leaky_norm(h, 2)
        if i < last:
            weight = torch.block_diag(linear_a.weight, linear_b.weight)
            normed = normed.view(batch, -1)
            h = torch.addmm(torch.cat([linear_a.bias, linear_b.bias]), normed, weight.t())
        else:
            weight = torch.stack([linear_a.weight, linear_b.weight])  # [2, out, hidden]
            normed = normed.transpose(0, 1).contiguous()  # [2, batch, hidden]
            h = torch.baddbmm(torch.stack([linear_a.bias, linear_b.bias]).unsqueeze(1), normed, weight.transpose(1, 2))
        tape.normed.append(normed)
        tape.weights.append(weight)
    return h, tape


def _paired_tail_backward(
    tail_a: GroupedMLPTail, tail_b: GroupedMLPTail, tape: _TailTape, grad: Tensor, grads: dict[Tensor, Tensor]
) -> Tensor:
    """Backward of `_paired_tail_forward` from grad [2, batch, out]: parameter gradients into `grads`, returns [batch, 2 * hidden]."""
    batch, last = grad.shape[1], len(tail_a.linears) - 1
    for i in reversed(range(last + 1)):
        linear_a, linear_b = tail_a.linears[i], tail_b.linears[i]
        if i == last:
            grad_weight = torch.bmm(tape.normed[i].transpose(1, 2), grad).transpose(1, 2)  # [2, out, hidden]; the faster layout at 1 thread
            grad_bias = grad.sum(dim=1)
            grads[linear_a.weight], grads[linear_b.weight] = grad_weight[0], grad_weight[1]
            grads[linear_a.bias], grads[linear_b.bias] = grad_bias[0], grad_bias[1]
            grad_normed = torch.bmm(grad, tape.weights[i]).transpose(0, 1)  # [batch, 2, hidden]
        else:
            out_a, in_a = linear_a.weight.shape
            grad_weight = grad.t().mm(tape.normed[i])
            grads[linear_a.weight], grads[linear_b.weight] = grad_weight[:out_a, :in_a], grad_weight[out_a:, in_a:]
            grad_bias = grad.sum(dim=0)
            grads[linear_a.bias], grads[linear_b.bias] = grad_bias[:out_a], grad_bias[out_a:]
            grad_normed = grad.mm(tape.weights[i]).view(batch, 2, -1)
        grad = tape.leaky_norm_backward(i, grad_normed)
    return grad


_LEADING_INPUTS = 7  # `_SitePolicy.forward`'s inputs before the parameters (none of them gets a gradient)


class _SitePolicy(torch.autograd.Function):
    """One site's posterior and prior: forward gives (mask, log q, log p), backward the parameter gradients.

    Layout: the first layers of both generators share their inputs (earlier masks, features), so
    each input block is multiplied once by the stacked weights of both ([2 * hidden, block width]),
    into one [batch, 3 * hidden] tensor with columns [posterior mask branch | prior | posterior
    activation branch] (mask blocks fill the first two thirds, the features the last two). The
    posterior's combiner tail and the prior's tail then run as a pair (`_paired_tail_forward`), and
    both log-probabilities are one pass over the [2, batch, width] logits.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        posterior: PosteriorGenerator,
        prior: PriorGenerator,
        earlier: list[Tensor],
        features: Tensor,
        labels: Tensor,
        forced_mask: Tensor | None,
        exploration: tuple[float, float, float],
        *parameters: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        # float32 (the parameters' dtype) even under autocast: a bf16 product of 64 probabilities would be
        # far too coarse for log q, and these small generators gain nothing from bf16
        with torch.autocast(features.device.type, enabled=False):
            return _SitePolicy._forward(ctx, posterior, prior, earlier, features, labels, forced_mask, exploration, parameters)

    @staticmethod
    def _forward(ctx, posterior, prior, earlier, features, labels, forced_mask, exploration, parameters):  # noqa: ANN001, ANN205
        dtype = posterior.activation_in.weight.dtype
        features, earlier = features.to(dtype), [block.to(dtype) for block in earlier]
        batch, hidden = features.shape[0], posterior.activation_in.out_features
        mask_bias = posterior.mask_in.bias if posterior.mask_in is not None else posterior.mask_const
        first = torch.cat([mask_bias, prior.first.bias, posterior.activation_in.bias]).expand(batch, -1).contiguous()
        start = 0
        for block in earlier:
            width = block.shape[1]
            weight = torch.cat([posterior.mask_in.weight[:, start : start + width], prior.first.weight[:, start : start + width]])
            first[:, : 2 * hidden].addmm_(block, weight.t())
            start += width
        first[:, hidden:].addmm_(features, torch.cat([prior.first.weight[:, start:], posterior.activation_in.weight]).t())

        branch_input = torch.cat(
            [first[:, :hidden], first[:, 2 * hidden :], posterior.label_in.weight.index_select(0, labels)], dim=1
        )
        branches, branch_tape = _tail_forward(posterior.branch_tail, branch_input)
        combined = torch.addmm(posterior.combiner_in.bias, branches, posterior.combiner_in.weight.t())
        paired_input = torch.cat([combined, first[:, hidden : 2 * hidden]], dim=1)
        logits, paired_tape = _paired_tail_forward(posterior.combiner_tail, prior.tail, paired_input)  # [2, batch, width]

        if forced_mask is not None:
            mask = forced_mask.to(logits.dtype)
        else:
            temperature, epsilon, epsilon_keep = exploration
            mask = draw_policy_mask(logits[0], temperature, epsilon, epsilon_keep)
        log_q, log_p = _log_prob(logits, mask).unbind(0)

        ctx.modules = (posterior, prior)
        ctx.parameters = parameters
        ctx.device_type = features.device.type
        ctx.tapes = (branch_tape, paired_tape)
        ctx.blocks = (list(earlier), features, labels, branches)
        ctx.save_for_backward(logits, mask)
        ctx.mark_non_differentiable(mask)
        return mask, log_q, log_p

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, _grad_mask: Tensor, grad_log_q: Tensor | None, grad_log_p: Tensor | None) -> tuple:  # type: ignore[override]
        with torch.autocast(ctx.device_type, enabled=False):
            return _SitePolicy._backward(ctx, grad_log_q, grad_log_p)

    @staticmethod
    def _backward(ctx, grad_log_q: Tensor | None, grad_log_p: Tensor | None) -> tuple:  # noqa: ANN001
        posterior, prior = ctx.modules
        branch_tape, paired_tape = ctx.tapes
        earlier, features, labels, branches = ctx.blocks
        logits, mask = ctx.saved_tensors
        hidden = posterior.activation_in.out_features
        grad_log_q = torch.zeros_like(logits[0, :, 0]) if grad_log_q is None else grad_log_q.to(logits.dtype)
        grad_log_p = torch.zeros_like(logits[1, :, 0]) if grad_log_p is None else grad_log_p.to(logits.dtype)
        grads: dict[Tensor, Tensor] = {}
        grad_logits = _log_prob_grad(logits, mask, torch.stack([grad_log_q, grad_log_p]))
        grad_paired = _paired_tail_backward(posterior.combiner_tail, prior.tail, paired_tape, grad_logits, grads)
        grad_combined, grad_prior_first = grad_paired[:, :hidden], grad_paired[:, hidden:]
        grads[posterior.combiner_in.weight] = grad_combined.t().mm(branches)
        grads[posterior.combiner_in.bias] = grad_combined.sum(dim=0)
        grad_branches = _tail_backward(posterior.branch_tail, branch_tape, grad_combined.mm(posterior.combiner_in.weight), grads)
        grad_mask_part, grad_features_part, grad_label_part = grad_branches.split(hidden, dim=1)

        # first layers: each input block's gradient for the stacked weights in one product
        prior_columns, mask_columns = [], []
        if earlier:
            grad_mask_rows = torch.cat([grad_mask_part, grad_prior_first], dim=1).t()  # [2 * hidden, batch]
            for block in earlier:
                stacked = grad_mask_rows.mm(block)
                mask_columns.append(stacked[:hidden])
                prior_columns.append(stacked[hidden:])
            grads[posterior.mask_in.weight] = torch.cat(mask_columns, dim=1)
            grads[posterior.mask_in.bias] = grad_mask_part.sum(dim=0)
        else:
            grads[posterior.mask_const] = grad_mask_part.sum(dim=0)
        stacked = torch.cat([grad_prior_first, grad_features_part], dim=1).t().mm(features)
        prior_columns.append(stacked[:hidden])
        grads[prior.first.weight] = torch.cat(prior_columns, dim=1)
        grads[prior.first.bias] = grad_prior_first.sum(dim=0)
        grads[posterior.activation_in.weight] = stacked[hidden:]
        grads[posterior.activation_in.bias] = grad_features_part.sum(dim=0)
        label_weight = posterior.label_in.weight
        grads[label_weight] = torch.zeros_like(label_weight).index_add_(0, labels, grad_label_part)

        needed = ctx.needs_input_grad[_LEADING_INPUTS:]
        parameter_grads = tuple(grads.get(p) if need else None for p, need in zip(ctx.parameters, needed))
        return (None,) * _LEADING_INPUTS + parameter_grads


def _parameters(posterior: PosteriorGenerator, prior: PriorGenerator) -> list[Tensor]:
    """The parameters of both generators in a fixed order (the inputs autograd routes gradients to)."""
    return [*posterior.parameters(), *prior.parameters()]


def site_policy_step(
    posterior: PosteriorGenerator,
    prior: PriorGenerator,
    earlier: Sequence[Tensor],
    features: Tensor,
    labels: Tensor,
    temperature: float = 1.0,
    epsilon: float = 0.0,
    epsilon_keep: float = 0.5,
    forced_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """One site of GFlowOut's training sampler: (mask [batch, width], log q(z | .) [batch], log p(z | .) [batch]).

    earlier: the masks of the earlier sites ([batch, width_j] each, in site order; empty at the first
    site); features: the site's detached activation summary [batch, width]; labels [batch].
    The mask is drawn from q at `temperature` with epsilon-random replacement (`draw_policy_mask`),
    or is `forced_mask`; both log-probabilities are at temperature 1 and carry gradients to the
    posterior's and the prior's parameters only.
    """
    if posterior.activation_in.out_features != prior.first.out_features or len(posterior.combiner_tail.linears) != len(
        prior.tail.linears
    ):
        raise ValueError("site_policy_step needs a posterior and a prior built with the same generator_hidden sizes")
    if features.requires_grad:
        raise ValueError("site_policy_step: features must be detached (the generators never train the backbone)")
    if posterior.mask_in is not None:
        widths = sum(m.shape[1] for m in earlier)
        if widths != posterior.mask_features or any(m.shape[0] != features.shape[0] for m in earlier):
            found = [tuple(m.shape) for m in earlier]
            raise ValueError(
                f"earlier masks have shapes {found}, expected {features.shape[0]} rows and {posterior.mask_features} columns"
            )
    return _SitePolicy.apply(
        posterior, prior, list(earlier), features, labels, forced_mask, (float(temperature), float(epsilon), float(epsilon_keep)),
        *_parameters(posterior, prior),
    )
