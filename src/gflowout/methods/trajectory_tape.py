"""The stacked buffers and weights of one `TrajectoryPolicy` trajectory (`trajectory_policy`).

Both passes of the fused engine read them: the posterior's per-site forward writes its intermediates
into them, the prior's batched forward and the batched backward read them back.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from gflowout.methods.generators import LinearParams, PosteriorGenerator, stack_layers
from gflowout.methods.trajectory_arena import lease_arena

if TYPE_CHECKING:
    from gflowout.methods.trajectory_policy import TrajectoryPolicy


class TrajectoryTape:
    """The stacked buffers of one trajectory ([sites, batch, ...]) and the stacked weights both passes read.

    tail_pre[i] [2, sites, batch, hidden_i]: input of the i-th LeakyReLU of the posterior's combiner
    tail ([0]) and of the prior's tail ([1]); branch_pre[i] [sites, batch, 3 * hidden_i] likewise for
    the posterior's three branches (i = 0: [mask branch | activation branch | label branch]);
    first [sites, batch, 2 * hidden_0]: the site's features times [activation branch | prior] weights;
    earlier [batch, (sites - 1) * 2 * hidden_0]: the later sites' [posterior mask branch | prior]
    first-layer sums over the masks drawn so far; logits[g] and masks[g] from the `Arena`.
    """

    def __init__(self, policy: TrajectoryPolicy, batch: int, dtype: torch.dtype, device: torch.device) -> None:
        posterior, prior, sites = policy.posterior, policy.prior, policy.num_sites
        hidden, h = policy.hidden, policy.hidden[0]
        self.batch, self.dtype = batch, dtype

        def empty(*shape: int) -> Tensor:
            return torch.empty(shape, dtype=dtype, device=device)

        self.branch_pre = [empty(sites, batch, 3 * size) for size in hidden]
        self.branches = empty(sites, batch, posterior[0].combiner_input.in_features)
        self.tail_pre = [empty(2, sites, batch, size) for size in hidden]
        self.first = empty(sites, batch, 2 * h)
        zeros = torch.zeros(h, dtype=dtype, device=device)
        later = [t for q in posterior[1:] for t in (later_mask_input(q).bias, zeros)]
        self.earlier = torch.cat(later).expand(batch, -1).contiguous() if later else empty(batch, 0)
        shapes = tuple((len(sites_g), batch, policy.widths[sites_g[0]]) for sites_g in policy.groups)
        self.lease = object()
        self.arena = lease_arena(shapes, dtype, device, self.lease)
        # released when the trajectory is dropped (its graph included: backward may run more than once with
        # retain_graph)
        weakref.finalize(self, self.arena.release, self.lease)
        self.logits, self.masks = self.arena.logits, self.arena.masks
        self.labels = torch.stack([q.label_table for q in posterior]).index_select(
            1, policy.labels
        )  # [sites, batch, h]
        # branch layers are block-diagonal: stack_layers applies their block masks
        branch = [stack_layers([q.branch_layers[i] for q in posterior]) for i in range(len(hidden))]
        self.branch_w, self.branch_b = [w for w, _ in branch], [b for _, b in branch]
        self.combiner_w, self.combiner_b = stack_layers(
            [q.combiner_input for q in posterior]
        )  # [sites, h, 3 * branch_out]
        tails = [q.combiner_layers for q in posterior] + [
            p.tail_layers for p in prior
        ]  # [2 * sites]: posterior, then prior
        hidden_layers = [stack_layers([t[i] for t in tails]) for i in range(len(hidden) - 1)]
        self.tail_w = [w.unflatten(0, (2, sites)) for w, _ in hidden_layers]
        self.tail_b = [b.unflatten(0, (2, sites)) for _, b in hidden_layers]
        last = [stack_layers([tails[k][-1] for k in (*group, *(sites + s for s in group))]) for group in policy.groups]
        self.last_w = [w.unflatten(0, (2, -1)) for w, _ in last]  # [2, n_g, width, hidden]
        self.last_b = [b.unflatten(0, (2, -1)) for _, b in last]


def later_mask_input(posterior: PosteriorGenerator) -> LinearParams:
    """The first layer of the mask branch of a site after the first (`TrajectoryPolicy` checks that sites chain)."""
    layer = posterior.mask_input
    assert layer is not None, "a site after the first sees earlier masks"
    return layer
