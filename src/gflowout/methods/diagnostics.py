"""Mask diagnostics: what each method's mask distribution looks like, per site, on a fixed batch.

They answer "did the GFlowNet learn something other than keep-0.5?" and "is trajectory balance
keeping up?" (Liu et al., ICML 2023 train q by trajectory balance, Malkin et al., NeurIPS 2022). The
harness computes them once per epoch on a fixed training batch (`training.diagnostics`), never
inside a training step, so a step costs what it did.

Every value is a float, keyed "masks/<site name>/<stat>" per site and "masks/<stat>" for the
whole network. Per-unit Bernoulli entropies are in nats, averaged over units and examples
(log 2 = 0.693 is keep-0.5; 0 is a deterministic mask).

* GFlowOut: per site q_keep and p_keep (mean keep probability of q(z|x,y) and of the prior p(z|x)
  at T = 1), q_entropy, p_entropy, keep_rate (fraction kept in masks drawn as training draws them:
  from q at the training temperature, with epsilon-random masks); whole network: log_z (mean of
  log Z(x, y)), tb_residual = mean |log Z(x, y) + log q(z|x,y) - log R(z; x, y)|, the residual
  trajectory balance drives to zero.
* ID-GFlowOut: per site q_keep, q_entropy, keep_rate; whole network: log_z (the scalar),
  tb_residual (with that log Z), centred_residual = mean |d_i - mean_j d_j| with d = log q - log R
  (the residual with the best constant log Z for this batch, i.e. the log-variance objective's),
  and log_z_gap = log Z - mean(log R - log q) (how far log Z lags the reward).
* Contextual: per site keep (mean keep probability of q(z|x)), entropy, keep_rate, prior_keep.
* Concrete: per site keep (1 - the learned drop rate).
Methods without learned masks (MC dropout, none) have none.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from gflowout.methods.mask_sampling import bernoulli_log_prob, draw_policy_mask
from gflowout.nets.sites import Site, apply_mask, site_features

if TYPE_CHECKING:
    from gflowout.methods.concrete import ConcreteDropout
    from gflowout.methods.contextual import ContextualDropout
    from gflowout.methods.gflowout import GFlowOut
    from gflowout.methods.id_gflowout import IDGFlowOut


def bernoulli_entropy(logits: Tensor) -> Tensor:
    """Entropy in nats of Bernoulli(sigmoid(logits)), elementwise, in log space:
    H = p softplus(-a) + (1 - p) softplus(a) = -p log p - (1 - p) log(1 - p)."""
    p = torch.sigmoid(logits)
    return p * F.softplus(-logits) + (1 - p) * F.softplus(logits)


class _SiteStats:
    """Collects per-site means (as floats) under "masks/<site>/<stat>"."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def add(self, site: Site, **stats: Tensor) -> None:
        for name, value in stats.items():
            self.values[f"masks/{site.name}/{name}"] = float(value.float().mean())


@torch.no_grad()
def gflowout_diagnostics(method: GFlowOut, x: Tensor, y: Tensor) -> dict[str, float]:
    """GFlowOut's diagnostics on (x, y); see the module docstring. Plain per-site generator calls (the
    readable reference path, not the fused training engine)."""
    stats = _SiteStats()
    masks: list[Tensor] = []
    log_q = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)
    log_p = torch.zeros_like(log_q)

    def sampler(site: Site, activation: Tensor) -> Tensor:
        features = site_features(site, activation).detach()
        earlier = masks if masks else None
        q_logits = method.posterior[site.index](earlier, features, y)
        p_logits = method.prior[site.index](earlier, features)
        mask = draw_policy_mask(q_logits, method.train_temperature, method.epsilon, method.epsilon_keep)
        log_q.add_(bernoulli_log_prob(q_logits, mask))
        log_p.add_(bernoulli_log_prob(p_logits, mask))
        stats.add(
            site,
            q_keep=torch.sigmoid(q_logits),
            p_keep=torch.sigmoid(p_logits),
            q_entropy=bernoulli_entropy(q_logits),
            p_entropy=bernoulli_entropy(p_logits),
            keep_rate=mask,
        )
        masks.append(mask)
        return apply_mask(site, activation, mask.to(activation.dtype))

    logits = method.net(x, sampler)
    log_likelihood = -F.cross_entropy(logits.float(), y, reduction="none")
    log_reward = method.beta * log_likelihood + log_p
    log_z = method.log_partition(x, y).float()
    stats.values["masks/log_z"] = float(log_z.mean())
    stats.values["masks/tb_residual"] = float((log_z + log_q - log_reward).abs().mean())
    stats.values["masks/keep_rate"] = _overall_keep(masks)
    return stats.values


@torch.no_grad()
def id_gflowout_diagnostics(method: IDGFlowOut, x: Tensor, y: Tensor) -> dict[str, float]:
    """ID-GFlowOut's diagnostics on (x, y); see the module docstring."""
    stats = _SiteStats()
    masks: list[Tensor] = []
    log_q = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)

    def sampler(site: Site, activation: Tensor) -> Tensor:
        q_logits = method.generators[site.index](masks if masks else None, activation.shape[0])
        mask = draw_policy_mask(q_logits, method.train_temperature, method.epsilon, method.epsilon_keep)  # their dtype
        log_q.add_(bernoulli_log_prob(q_logits.float(), mask.float()))
        stats.add(site, q_keep=torch.sigmoid(q_logits), q_entropy=bernoulli_entropy(q_logits), keep_rate=mask)
        masks.append(mask)
        return apply_mask(site, activation, mask.to(activation.dtype))

    logits = method.net(x, sampler)
    log_likelihood = -F.cross_entropy(logits.float(), y, reduction="none")
    log_reward = method.beta * method.dataset_size * log_likelihood + method.log_prior(masks)
    difference = log_q - log_reward  # d = log q - log R
    log_z = float(method.log_z)
    stats.values["masks/log_z"] = log_z
    stats.values["masks/tb_residual"] = float((log_z + difference).abs().mean())
    stats.values["masks/centred_residual"] = float((difference - difference.mean()).abs().mean())
    stats.values["masks/log_z_gap"] = log_z + float(difference.mean())
    stats.values["masks/keep_rate"] = _overall_keep(masks)
    return stats.values


@torch.no_grad()
def contextual_diagnostics(method: ContextualDropout, x: Tensor, y: Tensor) -> dict[str, float]:
    """Contextual dropout's diagnostics on x (the label is not used); see the module docstring."""
    stats = _SiteStats()
    masks: list[Tensor] = []

    def sampler(site: Site, activation: Tensor) -> Tensor:
        logits = method.keep_logits(site, activation).float()
        keep = torch.sigmoid(logits)
        mask = (torch.rand_like(keep) < keep).float()
        stats.add(
            site,
            keep=keep,
            entropy=bernoulli_entropy(logits),
            keep_rate=mask,
            prior_keep=torch.sigmoid(method.k * method.prior_eta[site.index].detach()),
        )
        masks.append(mask)
        return apply_mask(site, activation, mask.to(activation.dtype))

    method.net(x, sampler)
    stats.values["masks/keep_rate"] = _overall_keep(masks)
    return stats.values


@torch.no_grad()
def concrete_diagnostics(method: ConcreteDropout, x: Tensor, y: Tensor) -> dict[str, float]:
    """Concrete dropout's keep probability (1 - learned drop rate) per site; no forward pass needed."""
    stats = _SiteStats()
    for site, drop in zip(method.net.sites, method.drop_probabilities):
        stats.add(site, keep=1.0 - drop, entropy=bernoulli_entropy(method.drop_logits.detach()[site.index]))
    return stats.values


def _overall_keep(masks: list[Tensor]) -> float:
    kept = sum(float(m.sum()) for m in masks)
    total = sum(m.numel() for m in masks)
    return kept / total if total else math.nan
