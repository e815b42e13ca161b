"""GFlowOut's training policy over a whole trajectory (all mask sites) as ONE autograd node.

GFlowOut's training sampler needs, per site l, the posterior's logits a_l (to draw z_l, which the
backbone needs before its next layer) and, for the losses, only two sums over sites:

    log q(z) = sum_l log Bernoulli(z_l; sigmoid(a_l)),   log p(z) = sum_l log Bernoulli(z_l; sigmoid(b_l))

(trajectory balance reads log q, the prior's likelihood log p; docs: The method, One training step).
So one node for the trajectory is exact, and it lets the work that is not on the backbone's critical path be batched
over sites:

* during the backbone's forward, `TrajectoryPolicy.step` runs per site only the posterior (the same
  functions as `PosteriorGenerator.forward`, no autograd) and the mask draw (`draw_policy_mask`, the
  same draws in the same order). Each drawn mask goes at once into the first-layer sums of every
  later site of both generators, and every intermediate is written into a stacked [sites, batch, ...]
  buffer (no stacking copies later);
* `TrajectoryPolicy.finish` then runs the prior for all sites at once (its hidden layers as one
  batched product over sites, its last layer one per group of sites of equal width) and both
  log-probabilities in one pass over the stacked logits [2, sites, batch, width]
  (`chunked_log_prob`, at temperature 1 whatever the sampling temperature);
* the backward (`_Trajectory`, computed by `trajectory_backward`) recomputes the LeakyReLU/LayerNorm
  statistics from the stacked pre-activations and forms every parameter gradient with batched products over sites: the
  posterior's combiner and the prior's tail together ([2 * sites] batches), the posterior's branch
  tails ([sites]), and one weight-gradient product per mask for all the later sites' first layers
  of both generators (one [2 * hidden * later sites, batch] x [batch, width] product).

Sites of different widths (CifarResNet18) are grouped by width for the last layers and the
log-probabilities; everything else is batched over all sites. Same values as the modules' forward
with autograd (tested in float64); the plain version of this sampler is `methods.reference_sampler`.
The stacked buffers are a `trajectory_tape.TrajectoryTape`. Measured speed: see `benchmarks/bench_engine.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from gflowout.methods.generators import PosteriorGenerator, PriorGenerator, leaky_norm
from gflowout.methods.mask_sampling import chunked_log_prob, draw_policy_mask
from gflowout.methods.trajectory_backward import trajectory_backward
from gflowout.methods.trajectory_tape import TrajectoryTape, later_mask_input


class TrajectoryPolicy:
    """Posterior draws site by site (`step`), then log q and log p of the whole trajectory as one node (`finish`).

    posterior, prior: the generators of every site, in site order (same hidden sizes); labels [batch];
    masks are drawn from sigmoid(a / temperature) with epsilon-random replacement (`draw_policy_mask`)
    unless `step` is given a forced mask.
    """

    def __init__(
        self,
        posterior: Sequence[PosteriorGenerator],
        prior: Sequence[PriorGenerator],
        labels: Tensor,
        temperature: float = 1.0,
        epsilon: float = 0.0,
        epsilon_keep: float = 0.5,
    ) -> None:
        self.posterior, self.prior, self.labels = list(posterior), list(prior), labels
        if not self.posterior or len(self.prior) != len(self.posterior):
            raise ValueError(
                "TrajectoryPolicy needs one posterior and one prior per site, "
                f"got {len(self.posterior)} and {len(self.prior)}"
            )
        if labels.dim() != 1:
            raise ValueError(f"labels must have shape [batch], found {tuple(labels.shape)}")
        self.exploration = (float(temperature), float(epsilon), float(epsilon_keep))
        self.num_sites = len(self.posterior)
        self.hidden = self.posterior[0].hidden
        for q, p in zip(self.posterior, self.prior):
            sizes = (q.hidden, p.hidden)
            if sizes[0] != self.hidden or sizes[1] != self.hidden:
                raise ValueError(
                    f"TrajectoryPolicy needs every site's generators built with one generator_hidden, found {sizes}"
                )
            if (q.mask_features, q.site_width) != (p.mask_features, p.site_width):
                raise ValueError(
                    "posterior and prior of one site disagree: (mask_features, site_width) "
                    f"{(q.mask_features, q.site_width)} "
                    f"vs {(p.mask_features, p.site_width)}"
                )
        self.widths = [q.site_width for q in self.posterior]
        chained = [sum(self.widths[:k]) for k in range(len(self.widths))]
        if [q.mask_features for q in self.posterior] != chained:
            raise ValueError(
                f"the generators' mask_features {[q.mask_features for q in self.posterior]} "
                "do not chain the site widths "
                f"{self.widths} (expected {chained}: each site sees the masks of all earlier sites)"
            )
        self.offsets = [q.mask_features for q in self.posterior]  # column of each site's mask in later first layers
        by_width: dict[int, list[int]] = {}
        for k, width in enumerate(self.widths):
            by_width.setdefault(width, []).append(k)
        self.groups = list(by_width.values())  # sites of equal width, batched in the last layers and log-probabilities
        self.slot = {k: (g, i) for g, sites in enumerate(self.groups) for i, k in enumerate(sites)}
        self.masks: list[Tensor] = []
        self.features: list[Tensor] = []
        self.tape: TrajectoryTape | None = None
        self.finished = False

    def parameters(self) -> list[Tensor]:
        """The parameters of every site's posterior and prior, the inputs autograd routes gradients to."""
        return [p for q, r in zip(self.posterior, self.prior) for m in (q, r) for p in m.parameters()]

    def step(self, features: Tensor, forced_mask: Tensor | None = None) -> Tensor:
        """The next site's mask [batch, width] from its detached activation summary `features` [batch, width]."""
        if len(self.masks) == self.num_sites:
            raise RuntimeError(f"TrajectoryPolicy.step called more than {self.num_sites} times (once per site)")
        if features.requires_grad:
            raise ValueError(
                "TrajectoryPolicy.step: features must be detached (the generators never train the backbone)"
            )
        # float32 (the parameters' dtype) even under autocast: a bf16 product of 64 probabilities would be far too
        # coarse for log q, and these small generators gain nothing from bf16
        with torch.no_grad(), torch.autocast(features.device.type, enabled=False):
            return self._step(len(self.masks), features, forced_mask)

    def _step(self, k: int, features: Tensor, forced_mask: Tensor | None) -> Tensor:
        posterior, prior = self.posterior[k], self.prior[k]
        activation_in, prior_first = posterior.activation_input, prior.first_layer
        dtype = activation_in.weight.dtype
        if self.tape is None:
            self.tape = TrajectoryTape(self, features.shape[0], dtype, features.device)
        tape, h, batch = self.tape, self.hidden[0], self.tape.batch
        expected = (batch, self.widths[k])
        if self.labels.shape[0] != batch:
            raise ValueError(f"labels have {self.labels.shape[0]} rows but the features of site {k} have {batch}")
        if features.shape != expected:
            raise ValueError(f"features of site {k} have shape {tuple(features.shape)}, expected {expected}")
        features = features.to(dtype)
        first = tape.first[k]  # [batch, 2h]: [posterior activation branch | prior], both with their bias
        # one product per generator and input block rather than one over concatenated weights: the faster
        # choice with 2 threads (`benchmarks/README.md`)
        torch.addmm(activation_in.bias, features, activation_in.weight.t(), out=first[:, :h])
        torch.addmm(prior_first.bias, features, prior_first.weight[:, posterior.mask_features :].t(), out=first[:, h:])
        if k == 0:
            assert posterior.mask_const is not None  # the first site's mask branch starts from a learned constant
            mask_part = posterior.mask_const.expand(batch, -1)
        else:
            mask_part = tape.earlier[:, (2 * k - 2) * h : (2 * k - 1) * h]
        pre = torch.cat([mask_part, first[:, :h], tape.labels[k]], dim=1, out=tape.branch_pre[0][k])
        layers = len(self.hidden)
        for i in range(layers):
            out = tape.branch_pre[i + 1][k] if i + 1 < layers else tape.branches[k]
            pre = torch.addmm(tape.branch_b[i][k], leaky_norm(pre, 3)[0].flatten(-2), tape.branch_w[i][k].t(), out=out)
        pre = torch.addmm(tape.combiner_b[k], pre, tape.combiner_w[k].t(), out=tape.tail_pre[0][0, k])
        g, slot = self.slot[k]
        for i in range(layers):
            normed = leaky_norm(pre)[0]
            if i + 1 < layers:
                pre = torch.addmm(
                    tape.tail_b[i][0, k], normed, tape.tail_w[i][0, k].t(), out=tape.tail_pre[i + 1][0, k]
                )
            else:
                pre = torch.addmm(
                    tape.last_b[g][0, slot], normed, tape.last_w[g][0, slot].t(), out=tape.logits[g][0, slot]
                )
        if forced_mask is None:
            mask = draw_policy_mask(pre, *self.exploration)
        elif forced_mask.shape != expected:
            raise ValueError(f"forced_mask of site {k} has shape {tuple(forced_mask.shape)}, expected {expected}")
        else:
            mask = forced_mask.to(dtype)
            if not ((mask == 0) | (mask == 1)).all():
                raise ValueError(
                    f"forced_mask of site {k} must hold only 0 and 1 (a mask to score), found other values"
                )
        if k + 1 < self.num_sites:  # this mask's share of every later site's first layers, both generators
            columns = slice(self.offsets[k], self.offsets[k] + self.widths[k])
            later = [
                (later_mask_input(self.posterior[j]).weight, self.prior[j].first_layer.weight)
                for j in range(k + 1, self.num_sites)
            ]
            for i, weight in enumerate((w[:, columns] for pair in later for w in pair), start=2 * k):
                tape.earlier[:, i * h : (i + 1) * h].addmm_(mask, weight.t())
        self.masks.append(mask)
        self.features.append(features)
        return mask

    def finish(self) -> tuple[Tensor, Tensor]:
        """(log q(z | x, y) [batch], log p(z | x) [batch]) of the masks drawn, summed over sites.

        Called once, after the last site.

        The outputs' graph holds this policy (its tape), so the policy does not keep them: no reference cycle
        delays the release of its arena.
        """
        if len(self.masks) != self.num_sites:
            raise RuntimeError(f"TrajectoryPolicy.finish after {len(self.masks)} of {self.num_sites} sites")
        if self.finished:
            raise RuntimeError("TrajectoryPolicy.finish called twice; keep its result")
        self.finished = True
        with torch.autocast(self.masks[0].device.type, enabled=False):
            return _Trajectory.apply(self, *self.parameters())

    def _prior_and_log_probs(self) -> tuple[Tensor, Tensor]:
        """The prior's logits of every site (batched over sites).

        Then both log-probabilities, in one pass per width group.
        """
        tape, h, sites, layers = self.stepped_tape, self.hidden[0], self.num_sites, len(self.hidden)
        pre = tape.tail_pre[0][1].copy_(tape.first[:, :, h:])  # [sites, batch, h]
        if sites > 1:
            pre[1:].add_(tape.earlier.view(tape.batch, sites - 1, 2, h)[:, :, 1].transpose(0, 1))
        for i in range(layers):
            normed = leaky_norm(pre)[0]  # [sites, batch, hidden_i]
            if i + 1 < layers:
                bias, weight = tape.tail_b[i][1].unsqueeze(1), tape.tail_w[i][1].transpose(1, 2)
                pre = torch.baddbmm(bias, normed, weight, out=tape.tail_pre[i + 1][1])
            else:
                for g, _group in enumerate(self.groups):
                    bias, weight = tape.last_b[g][1].unsqueeze(1), tape.last_w[g][1].transpose(1, 2)
                    torch.baddbmm(bias, normed[self.group_index(g)], weight, out=tape.logits[g][1])
        total: Tensor | None = None  # [2, batch]
        for g, group in enumerate(self.groups):
            masks = torch.stack([self.masks[k] for k in group], out=tape.masks[g])
            group_total = chunked_log_prob(tape.logits[g], masks, tape.arena.scratch[g]).sum(dim=1)
            total = group_total if total is None else total + group_total
        assert total is not None  # there is at least one site, so one group
        # separate tensors, not views of one: callers may update them in place
        return total[0].clone(), total[1].clone()

    @property
    def stepped_tape(self) -> TrajectoryTape:
        """The trajectory's tape, made by the first `step`."""
        if self.tape is None:
            raise RuntimeError("TrajectoryPolicy: no site has been stepped yet")
        return self.tape

    def group_index(self, g: int) -> slice | Tensor:
        """The sites of width group g as an index of a [sites, ...] tensor (a slice when they are consecutive)."""
        group = self.groups[g]
        if group == list(range(group[0], group[-1] + 1)):
            return slice(group[0], group[-1] + 1)
        return torch.tensor(group, device=self.masks[0].device)


class _Trajectory(torch.autograd.Function):
    """(log q, log p) of a `TrajectoryPolicy`'s masks from all its generators' parameters; backward batched over sites.

    The posterior's forward already ran (no autograd) during the backbone's pass; this node's forward
    adds the prior and the log-probabilities, and its backward gives every parameter's gradient.
    """

    @staticmethod
    def forward(ctx: Any, policy: TrajectoryPolicy, *parameters: Tensor) -> tuple[Tensor, Tensor]:
        ctx.policy, ctx.parameters = policy, parameters
        return policy._prior_and_log_probs()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_log_q: Tensor | None, grad_log_p: Tensor | None) -> tuple:
        policy: TrajectoryPolicy = ctx.policy
        tape = policy.stepped_tape
        reference = tape.logits[0]
        with torch.autocast(reference.device.type, enabled=False):
            zeros = reference.new_zeros(tape.batch)
            grads = trajectory_backward(
                policy,
                tape,
                zeros if grad_log_q is None else grad_log_q.to(reference.dtype),
                zeros if grad_log_p is None else grad_log_p.to(reference.dtype),
            )
        needed = ctx.needs_input_grad[1:]
        return (None,) + tuple(grads[p] if need else None for p, need in zip(ctx.parameters, needed))
