"""The backward of `trajectory_policy`'s trajectory node: every generator parameter's gradient, batched over sites.

From the gradients of log q and log p [batch], `trajectory_backward` recomputes the LeakyReLU/LayerNorm
statistics from the tape's stacked pre-activations and forms every parameter gradient with batched
products over sites: the posterior's combiner and the prior's tail together ([2 * sites] batches), the
posterior's branch tails ([sites]), and one weight-gradient product per mask for all the later sites'
first layers of both generators. Same values as autograd through the generator modules (tested in float64).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gflowout.methods.generators import LinearParams, leaky_norm, leaky_norm_backward
from gflowout.methods.mask_sampling import log_prob_grad

if TYPE_CHECKING:
    from gflowout.methods.trajectory_policy import TrajectoryPolicy
    from gflowout.methods.trajectory_tape import TrajectoryTape


def trajectory_backward(
    policy: TrajectoryPolicy, tape: TrajectoryTape, grad_log_q: Tensor, grad_log_p: Tensor
) -> dict[Tensor, Tensor]:
    """Every generator parameter's gradient of grad_log_q . log q + grad_log_p . log p, batched over sites."""
    sites, hidden, layers = policy.num_sites, policy.hidden, len(policy.hidden)
    grads: dict[Tensor, Tensor] = {}
    weights = torch.stack([grad_log_q, grad_log_p]).unsqueeze(1)  # [2, 1, batch]
    tails = [leaky_norm(pre) for pre in tape.tail_pre]  # recomputed: cheaper than stacking per-site records
    grad_normed = tape.tail_pre[-1].new_empty(tape.tail_pre[-1].shape) if len(policy.groups) > 1 else None
    for g, group in enumerate(policy.groups):  # last layers, per group of equal width
        n, width = len(group), policy.widths[group[0]]
        grad_logits = log_prob_grad(tape.logits[g], tape.masks[g], weights, out=tape.arena.scratch[g][0])
        grad_logits = grad_logits.view(2 * n, tape.batch, width)
        normed = tails[-1][0][:, policy.group_index(g)].reshape(2 * n, tape.batch, hidden[-1])
        # [2n, width, hidden], a transposed view: the faster matmul layout even with AccumulateGrad's copy
        grad_weight = torch.bmm(normed.transpose(1, 2), grad_logits).transpose(1, 2)
        grad_bias = grad_logits.sum(dim=1)
        grad_group = torch.bmm(grad_logits, tape.last_w[g].view(2 * n, width, hidden[-1]))
        if grad_normed is None:
            grad_normed = grad_group
        else:
            grad_normed[:, policy.group_index(g)] = grad_group.view(2, n, tape.batch, -1)
        linears = [policy.posterior[k].combiner_layers[-1] for k in group] + [
            policy.prior[k].tail_layers[-1] for k in group
        ]
        _assign(grads, linears, grad_weight, grad_bias)
    assert grad_normed is not None  # set by the first group
    for i in reversed(range(layers)):  # hidden layers of the combiner and prior tails: [2 * sites] batches
        normed, activated, mean, rstd = tails[i]
        grad_pre = leaky_norm_backward(grad_normed, tape.tail_pre[i], activated, mean, rstd)
        if i == 0:
            break
        grad_flat = grad_pre.view(2 * sites, tape.batch, -1)
        previous = tails[i - 1][0].view(2 * sites, tape.batch, -1)
        grad_weight = torch.bmm(grad_flat.transpose(1, 2), previous)
        grad_bias = grad_flat.sum(dim=1)
        grad_normed = torch.bmm(grad_flat, tape.tail_w[i - 1].view(2 * sites, *tape.tail_w[i - 1].shape[2:]))
        linears = [q.combiner_layers[i - 1] for q in policy.posterior] + [p.tail_layers[i - 1] for p in policy.prior]
        _assign(grads, linears, grad_weight, grad_bias)
    grad_combined, grad_prior_first = grad_pre[0], grad_pre[1]  # [sites, batch, h]
    grad_branch_in = _posterior_branches_backward(policy, tape, grad_combined, grads)
    _first_layers_backward(policy, tape, grad_branch_in, grad_prior_first, grads)
    return grads


def _posterior_branches_backward(
    policy: TrajectoryPolicy, tape: TrajectoryTape, grad_combined: Tensor, grads: dict[Tensor, Tensor]
) -> Tensor:
    """Combiner input layer and branch tails, batched over sites.

    Returns the gradient of branch_pre[0] [sites, batch, 3h].
    """
    layers = len(policy.hidden)
    grad_weight = torch.bmm(grad_combined.transpose(1, 2), tape.branches)
    grad_bias = grad_combined.sum(dim=1)
    _assign(grads, [q.combiner_input for q in policy.posterior], grad_weight, grad_bias)
    grad = torch.bmm(grad_combined, tape.combiner_w)  # [sites, batch, 3 * branch_out]
    for i in reversed(range(layers)):
        normed, activated, mean, rstd = leaky_norm(tape.branch_pre[i], 3)
        layers_i = [q.branch_layers[i] for q in policy.posterior]
        grad_weight = torch.bmm(grad.transpose(1, 2), normed.flatten(-2))
        if layers_i[0].block_mask is not None:
            grad_weight.mul_(layers_i[0].block_mask)
        grad_bias = grad.sum(dim=1)
        _assign(grads, layers_i, grad_weight, grad_bias)
        grad = leaky_norm_backward(torch.bmm(grad, tape.branch_w[i]), tape.branch_pre[i], activated, mean, rstd)
    return grad


def _first_layers_backward(
    policy: TrajectoryPolicy,
    tape: TrajectoryTape,
    grad_branch_in: Tensor,
    grad_prior_first: Tensor,
    grads: dict[Tensor, Tensor],
) -> None:
    """First layers of both generators: one weight-gradient product per input block (a mask, a site's features)."""
    sites, h, batch = policy.num_sites, policy.hidden[0], tape.batch
    grad_mask, grad_activation, grad_label = grad_branch_in.split(h, dim=2)
    bias_sums = grad_branch_in.sum(dim=1)  # [sites, 3h]
    prior_bias = grad_prior_first.sum(dim=1)
    labels = torch.zeros(
        sites, *policy.posterior[0].label_table.shape, dtype=grad_label.dtype, device=grad_label.device
    )
    labels.index_add_(1, policy.labels, grad_label)
    features = torch.cat([grad_activation, grad_prior_first], dim=2)  # [sites, batch, 2h], as `first`
    pieces: list[list[Tensor]] = [
        [] for _ in range(sites)
    ]  # column blocks of each site's [posterior mask | prior] weights
    if sites > 1:
        earlier = torch.stack([grad_mask[1:], grad_prior_first[1:]], dim=2).transpose(0, 1).reshape(batch, -1)
        for j in range(sites - 1):
            stacked = earlier[:, j * 2 * h :].t().mm(policy.masks[j])  # [(later sites) * 2h, width_j]
            for k in range(j + 1, sites):
                pieces[k].append(stacked[(k - 1 - j) * 2 * h : (k - j) * 2 * h])
    for k, (q, p) in enumerate(zip(policy.posterior, policy.prior)):
        stacked = features[k].t().mm(policy.features[k])  # [2h, width_k]
        activation_in, prior_first, mask_in = q.activation_input, p.first_layer, q.mask_input
        grads[activation_in.weight], grads[activation_in.bias] = stacked[:h], bias_sums[k, h : 2 * h]
        grads[q.label_table] = labels[k]
        grads[prior_first.bias] = prior_bias[k]
        grads[prior_first.weight] = torch.cat([piece[h:] for piece in pieces[k]] + [stacked[h:]], dim=1)
        if mask_in is None:
            assert q.mask_const is not None  # the first site's mask branch starts from a learned constant
            grads[q.mask_const] = bias_sums[k, :h]
        else:
            grads[mask_in.weight] = torch.cat([piece[:h] for piece in pieces[k]], dim=1)
            grads[mask_in.bias] = bias_sums[k, :h]


def _assign(grads: dict[Tensor, Tensor], linears: Sequence[LinearParams], weight: Tensor, bias: Tensor) -> None:
    """grads of each linear's weight and bias from stacked [len(linears), ...] gradients (one `unbind` each)."""
    for linear, grad_weight, grad_bias in zip(linears, weight.unbind(0), bias.unbind(0)):
        grads[linear.weight], grads[linear.bias] = grad_weight, grad_bias
