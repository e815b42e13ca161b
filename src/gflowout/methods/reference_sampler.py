"""GFlowOut's training sampler written plainly: the version to read first.

One GFlowOut training step draws, at each mask site l of the backbone's forward pass,

    a_l = posterior_l(z_<l, h_l, y)          the posterior's logits (a `PosteriorGenerator` module)
    z_l ~ Bernoulli(sigmoid(a_l / T))        with epsilon-random masks (`draw_policy_mask`)
    b_l = prior_l(z_<l, h_l)                 the prior's logits (a `PriorGenerator` module, no label)

where h_l is the site's detached activation summary and z_<l the masks drawn at the earlier sites,
and applies z_l with the site's rescale rule. The losses read two sums over sites, at temperature 1:

    log q(z | x, y) = sum_l log Bernoulli(z_l; sigmoid(a_l)),   log p(z | x) = sum_l log Bernoulli(z_l; sigmoid(b_l)).

`ReferencePosteriorSampler` does exactly that, site by site, with the generator modules and autograd.
`GFlowOut(net, engine="reference")` trains with it. The default engine, `PosteriorSampler` over
`trajectory_policy.TrajectoryPolicy`, computes the same masks (same draws from the same random
stream), log-probabilities and gradients with the prior batched over sites and a hand-written
backward; `tests/methods/test_reference_engine.py` checks that the two agree in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from gflowout.methods.gflownet_common import SiteChain
from gflowout.methods.mask_sampling import bernoulli_log_prob, draw_policy_mask
from gflowout.nets.sites import Site, apply_mask, site_features


class ReferencePosteriorSampler:
    """Training sampler: masks from q(z | x, y) at `temperature`; log q (T = 1) and log p of the trajectory.

    The same interface as the fused `PosteriorSampler`: call it at each site (the backbone does), then
    `finish()` for (log_forward, log_prior), each [batch].

    Args:
        posterior, prior: one `PosteriorGenerator` and one `PriorGenerator` per site, in site order.
        labels: the batch's labels [batch] (only the posterior reads them).
        temperature: masks are drawn from sigmoid(a / temperature); log q stays at temperature 1.
        epsilon, epsilon_keep: probability of replacing an example's site mask by a Bernoulli(epsilon_keep) one.
        forced_masks: score these masks ([batch, width] per site) instead of drawing them.
    """

    def __init__(
        self,
        posterior: nn.ModuleList,
        prior: nn.ModuleList,
        labels: Tensor,
        temperature: float = 1.0,
        epsilon: float = 0.0,
        epsilon_keep: float = 0.5,
        forced_masks: Sequence[Tensor] | None = None,
    ) -> None:
        if len(prior) != len(posterior):
            raise ValueError(f"need one posterior and one prior per site, got {len(posterior)} and {len(prior)}")
        if forced_masks is not None and len(forced_masks) != len(posterior):
            raise ValueError(f"got {len(forced_masks)} masks to score, expected one per mask site ({len(posterior)})")
        self.posterior, self.prior, self.labels = posterior, prior, labels
        self.temperature, self.epsilon, self.epsilon_keep = temperature, epsilon, epsilon_keep
        self.forced_masks = forced_masks
        self.chain = SiteChain(len(posterior))
        self.log_forward_terms: list[Tensor] = []  # log q(z_l | z_<l, h_l, y) per site, each [batch]
        self.log_prior_terms: list[Tensor] = []  # log p(z_l | z_<l, h_l) per site, each [batch]

    def __call__(self, site: Site, activation: Tensor) -> Tensor:
        self.chain.expect(site)
        posterior, prior = self.posterior[site.index], self.prior[site.index]
        # the generators in their parameters' dtype even under autocast, as the fused engine
        with torch.autocast(activation.device.type, enabled=False):
            dtype = next(posterior.parameters()).dtype
            features = site_features(site, activation).detach().to(dtype)  # generators never train the backbone
            earlier = list(self.chain.earlier) or None
            posterior_logits = posterior(earlier, features, self.labels)
            if self.forced_masks is None:
                mask = draw_policy_mask(posterior_logits, self.temperature, self.epsilon, self.epsilon_keep)
            else:
                mask = self.forced_masks[site.index].to(dtype)
                if mask.shape != posterior_logits.shape:
                    raise ValueError(
                        f"forced mask of site {site.name!r} has shape {tuple(mask.shape)}, "
                        f"expected {tuple(posterior_logits.shape)}"
                    )
            prior_logits = prior(earlier, features)
            self.log_forward_terms.append(bernoulli_log_prob(posterior_logits, mask))
            self.log_prior_terms.append(bernoulli_log_prob(prior_logits, mask))
        self.chain.push(mask)
        return apply_mask(site, activation, mask)

    def finish(self) -> tuple[Tensor, Tensor]:
        """(log_forward, log_prior), each [batch]: log q(z | x, y) at T = 1 and log p(z | x), summed over sites."""
        self.chain.check_complete()
        return torch.stack(self.log_forward_terms).sum(dim=0), torch.stack(self.log_prior_terms).sum(dim=0)
