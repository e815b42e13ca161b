"""GFlowOut (Liu et al., ICML 2023): dropout masks from a GFlowNet posterior q(z | x, y), a learned prior p(z | x).

One training step (docs: The method, One training step), on one batch and one set of sampled masks:

* at each mask site l, during the forward pass, the posterior generator gives logits a^q_l from the
  earlier masks, the site's detached activation summary and y; the mask z_l ~ Bernoulli(sigmoid(a^q_l / T))
  (T = 2 while training) is applied DETACHED with the site's rescale rule. The prior generator gives
  a^p_l from the same inputs without y; it does not steer the sampling, so it runs after the pass,
  for all sites at once. log P_F = sum_l log q(z_l) at T = 1 and log p(z) = sum_l log p(z_l), in log
  space (`trajectory_policy`: one autograd node for the whole trajectory);
* three losses, one per parameter group:
  "backbone": cross-entropy of the masked forward (the masks carry no gradient);
  "posterior": trajectory balance with log R = beta * log p(y | x, z) + log p(z | x), both detached
  (trains the posterior generators and log Z(x, y));
  "prior": -log p(z | x) of the sampled masks (maximum likelihood of the prior on posterior samples).

A reader starts from `methods.reference_sampler`: the same sampler written as a plain loop over the
mask sites with the generator modules (`GFlowOut(net, engine="reference")` trains with it). The
default engine computes the same values faster (`trajectory_policy`) and is tested equal to it.

Prediction samples masks from the prior p(z | x) at T = 1. The prior generators have no label
argument and the prediction sampler holds no reference to the posterior or to log Z, so a test-time
label cannot reach a mask (docs: The method, Pitfalls).

Choices: generators and log Z without weight decay (the official decay 0.1 pulls log Z
to 0); log Z gets its own learning rate (paper: 0.1) as a second parameter group inside the
"posterior" optimiser, so the three groups of the paper stay three optimisers; epsilon-random
masks are drawn per example (the official code drew one per site and minibatch) and scored as
applied (docs: The method, Pitfalls).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gflowout.methods.base import GroupSpec, Optimizers, StepResult, build_optimizer, repeated_pass
from gflowout.methods.generators import LogPartition, PosteriorGenerator, PriorGenerator
from gflowout.methods.gflownet_common import (
    GFlowNetMethod,
    SiteChain,
    gflownet_group_specs,
    posterior_optimizer,
    set_gflownet_options,
)
from gflowout.methods.mask_sampling import (
    reusable_buffer,
    sample_and_apply,
)
from gflowout.methods.reference_sampler import ReferencePosteriorSampler
from gflowout.methods.schedules import BetaSpec
from gflowout.methods.trajectory_balance import trajectory_balance_loss
from gflowout.methods.trajectory_policy import TrajectoryPolicy
from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import Site, apply_mask, site_features

ENGINES = ("fused", "reference")


class PosteriorSampler:
    """Training sampler: masks from q(z | x, y) at `temperature`; log P_F (T = 1) and log p(z | x) of the trajectory.

    Per site it runs only the posterior and the draw (`TrajectoryPolicy.step`); after the forward
    pass, `finish()` (or the first read of `log_forward` / `log_prior`) runs the prior for all sites
    and gives both log-probabilities, summed over sites, as one autograd node (`trajectory_policy`).
    forced_masks: score these masks ([batch, width] per site) instead of sampling (teacher forcing),
    for exact evaluation of q and p on given masks.
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
        posterior_generators = cast("Sequence[PosteriorGenerator]", posterior)  # ModuleLists of them
        prior_generators = cast("Sequence[PriorGenerator]", prior)
        self.policy = TrajectoryPolicy(
            posterior_generators, prior_generators, labels, temperature, epsilon, epsilon_keep
        )
        if forced_masks is not None and len(forced_masks) != len(posterior):
            raise ValueError(f"got {len(forced_masks)} masks to score, expected one per mask site ({len(posterior)})")
        self.forced_masks = forced_masks
        self.chain = SiteChain(len(posterior))
        self._result: tuple[Tensor, Tensor] | None = None

    def __call__(self, site: Site, activation: Tensor) -> Tensor:
        self.chain.expect(site)
        features = site_features(site, activation).detach()  # generators never train the backbone
        forced = None if self.forced_masks is None else self.forced_masks[site.index]
        mask = self.policy.step(features, forced)
        self.chain.push(mask)
        return apply_mask(site, activation, mask)

    def finish(self) -> tuple[Tensor, Tensor]:
        """(log_forward, log_prior), each [batch]: log q(z | x, y) at T = 1 and log p(z | x), summed over sites."""
        if self._result is None:
            self.chain.check_complete()
            self._result = self.policy.finish()
        return self._result

    @property
    def log_forward(self) -> Tensor:
        """log q(z | x, y) of the drawn masks at T = 1, summed over sites [batch] (runs `finish` on first read)."""
        return self.finish()[0]

    @property
    def log_prior(self) -> Tensor:
        """log p(z | x) of the drawn masks, summed over sites [batch] (runs `finish` on first read)."""
        return self.finish()[1]


class PriorSampler:
    """Prediction sampler: masks from the prior p(z | x) at T = 1. It holds only the prior generators.

    copies: the batch is `copies` sample-major copies of the same inputs (`predict`'s batch
    expansion). The first site's activation is then the same in every copy of an input (no mask has
    been applied yet), so its prior logits are computed once per input and repeated; a check of every
    copy falls back to the full batch if a random layer before the first site makes them differ.
    """

    def __init__(self, prior: nn.ModuleList, copies: int = 1, reuse_buffers: bool = False) -> None:
        self.prior = cast("Sequence[PriorGenerator]", prior)  # a ModuleList of them
        self.copies = int(copies)
        self.reuse_buffers = reuse_buffers
        self.chain = SiteChain(len(prior))

    def __call__(self, site: Site, activation: Tensor) -> Tensor:
        self.chain.expect(site)
        # the prior in its parameters' dtype even under autocast (bf16-mixed validation), as in training
        with torch.autocast(activation.device.type, enabled=False):
            features = site_features(site, activation).detach().to(self.prior[site.index].first.weight.dtype)
            out = self._logits_buffer(site, features)
            logits = self._first_site_logits_once(features, out) if site.index == 0 and self.copies > 1 else None
            if logits is None:
                logits = self.prior[site.index](self.chain.earlier, features, out=out)
        mask, masked = sample_and_apply(site, activation, logits)
        self.chain.push(mask)
        return masked

    def _logits_buffer(self, site: Site, features: Tensor) -> Tensor | None:
        """With reuse_buffers, a per-site buffer of this thread.

        Predict only: its sampler and masks die with the pass.
        """
        if not self.reuse_buffers or torch.is_grad_enabled() or features.device.type != "cpu":
            return None
        return reusable_buffer(("prior-logits", site.index), (features.shape[0], site.width), features.dtype)

    def _first_site_logits_once(self, features: Tensor, out: Tensor | None = None) -> Tensor | None:
        rows = features.shape[0]
        if rows % self.copies:
            return None
        batch = rows // self.copies
        first_copy = features[:batch]
        # every copy, not only the second: a random layer before the first site (an always-on F.dropout in a
        # wrapped model) can make two copies agree by chance while the others differ
        if not torch.equal(
            features.view(self.copies, batch, -1), first_copy.reshape(1, batch, -1).expand(self.copies, -1, -1)
        ):
            return None
        logits = self.prior[0](None, first_copy)
        if out is None:
            return logits.repeat(self.copies, 1)
        out.view(self.copies, batch, -1).copy_(logits)  # broadcast over the copies
        return out


class GFlowOut(GFlowNetMethod):
    """GFlowOut on any MaskedNet. See the module docstring for the step; defaults follow the paper's code.

    Three parameter groups, each with its own loss and optimiser: "backbone" (cross-entropy of the masked
    forward), "posterior" (q(z | x, y) and log Z(x, y), trajectory balance) and "prior" (p(z | x), maximum
    likelihood of the posterior's masks). Prediction draws masks from the prior only.

    Args:
        net: the backbone (`gflowout.MLP`, `gflowout.CifarResNet18`, `gflowout.wrap(module)`).
        beta: reward temperature: a number (fixed; default 1: the Bayesian posterior, and the paper's
            CIFAR runs), "paper_mnist" (the MNIST runs: 0.001, x3.16 every 30 epochs, capped at 1), a
            mapping of `BetaSchedule` fields or a BetaSchedule. Advanced by `set_epoch`; the current
            value lives in the `beta` buffer, so checkpoints carry it.
        train_temperature: masks are sampled from sigmoid(logit / T) during training (paper: 2).
        epsilon, epsilon_keep: probability of replacing an example's site mask by a Bernoulli(keep) mask.
        generator_hidden, branch_out: generator MLP sizes (paper: [32, 32]; the posterior's branches output 10).
        logz_hidden: hidden width of log Z(x, y) (paper: 16).
        backbone_lr: None (default) takes the baselines' backbone optimiser (`methods.none.backbone_spec`: MLP
            Adam 1e-3 as the paper; CifarResNet18 SGD) so every method trains the same backbone alike;
            a number means Adam with that lr.
        posterior_lr, logz_lr, prior_lr: Adam learning rates (paper: 1e-3, 0.1, 1e-3).
        generator_weight_decay: Adam weight decay of the generators (paper: 0.1; default 0: decay pulls log Z to 0).
            log Z never gets weight decay.
        dataset_size: accepted so that every method takes the same options; GFlowOut's reward does not use it.
        freeze_backbone: post-hoc GFlowOut on an already trained network: every backbone weight is frozen
            (requires_grad False, no "backbone" loss or optimiser) and the backbone stays in eval mode, so
            BatchNorm normalises with, and never updates, its running statistics; only q(z|x,y), p(z|x) and
            log Z(x, y) train, by the same trajectory-balance and prior losses. The reward
            log p(y | x, z) then scores masks under the fixed trained network (`gflowout.posthoc`).
        engine: how the training sampler computes the posterior and prior: "fused" (default, the fast
            `trajectory_policy` engine) or "reference" (`methods.reference_sampler`: the generator modules
            called site by site with autograd, the plain version to read). Same masks, losses and gradients.

    Raises:
        ValueError: for an option outside its range (temperature, epsilon, dataset_size, engine).
    """

    name = "gflowout"

    def __init__(
        self,
        net: MaskedNet,
        beta: BetaSpec = 1.0,
        train_temperature: float = 2.0,
        epsilon: float = 0.0,
        epsilon_keep: float = 0.5,
        generator_hidden: Sequence[int] = (32, 32),
        branch_out: int = 10,
        logz_hidden: int = 16,
        backbone_lr: float | None = None,
        posterior_lr: float = 1e-3,
        logz_lr: float = 0.1,
        prior_lr: float = 1e-3,
        generator_weight_decay: float = 0.0,
        dataset_size: int | None = None,
        freeze_backbone: bool = False,
        engine: str = "fused",
    ) -> None:
        super().__init__(net)
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.engine = engine
        self.freeze_backbone = bool(freeze_backbone)
        if self.freeze_backbone:
            net.requires_grad_(False)
            net.eval()
        if dataset_size is not None and int(dataset_size) < 1:
            raise ValueError(f"dataset_size must be a positive number of training examples, got {dataset_size}")
        set_gflownet_options(self, beta, train_temperature, epsilon, epsilon_keep, logz_lr)
        self._specs = {
            **gflownet_group_specs(net, backbone_lr, posterior_lr, generator_weight_decay),
            "prior": GroupSpec(lr=prior_lr, weight_decay=generator_weight_decay),
        }
        sites = net.sites
        offsets = [sum(s.width for s in sites[:i]) for i in range(len(sites))]
        self.posterior = nn.ModuleList(
            PosteriorGenerator(offsets[i], s.width, net.num_classes, generator_hidden, branch_out)
            for i, s in enumerate(sites)
        )
        self.prior = nn.ModuleList(PriorGenerator(offsets[i], s.width, generator_hidden) for i, s in enumerate(sites))
        self.log_partition = LogPartition(net.input_shape, net.num_classes, logz_hidden)
        self.register_buffer("beta", torch.tensor(self.beta_schedule.value(0)))
        self.register_buffer("epoch", torch.tensor(0, dtype=torch.long))

    # --- groups and optimisers -----------------------------------------------------------------
    def train(self, mode: bool = True) -> GFlowOut:
        """As nn.Module.train (returns self), except that a frozen backbone stays in eval mode (BatchNorm statistics
        fixed)."""
        super().train(mode)
        if self.freeze_backbone:
            self.net.eval()
        return self

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "backbone": [] if self.freeze_backbone else list(self.net.parameters()),
            "posterior": list(self.posterior.parameters()) + list(self.log_partition.parameters()),
            "prior": list(self.prior.parameters()),
        }

    def group_defaults(self) -> dict[str, GroupSpec]:
        return dict(self._specs)

    def make_optimizers(self, overrides: Mapping[str, Mapping[str, object]] | None = None) -> Optimizers:
        """Three optimisers (two with a frozen backbone); the "posterior" one has log Z as a second parameter group
        (lr `logz_lr`, no decay). Returned with their specs, which `train_step` clips with."""
        specs = self.resolve_specs(overrides)
        generators, log_z = list(self.posterior.parameters()), list(self.log_partition.parameters())
        optimizers = (
            {}
            if self.freeze_backbone
            else {"backbone": build_optimizer(list(self.net.parameters()), specs["backbone"])}
        )
        optimizers["posterior"] = posterior_optimizer(generators, log_z, specs["posterior"], self.logz_lr)
        optimizers["prior"] = build_optimizer(list(self.prior.parameters()), specs["prior"])
        return Optimizers(optimizers, specs)

    # --- training ------------------------------------------------------------------------------
    def compute_losses(self, x: Tensor, y: Tensor) -> StepResult:
        sampler = self.training_sampler(y, self.train_temperature, self.epsilon, self.epsilon_keep)
        logits = self.net(x, sampler)
        log_forward, log_prior = sampler.finish()
        log_likelihood = -F.cross_entropy(logits, y, reduction="none")  # [batch]
        log_reward = self.beta * log_likelihood.detach() + log_prior.detach()
        log_z = self.log_partition(x, y)
        tb_loss = trajectory_balance_loss(log_z, log_forward, log_reward)
        losses = {"backbone": -log_likelihood.mean(), "posterior": tb_loss, "prior": -log_prior.mean()}
        if self.freeze_backbone:
            del losses["backbone"]  # nothing to train: the frozen forward built no graph for it
        with torch.no_grad():
            kept = sum(float(m.sum()) for m in sampler.chain.masks)
            logs = {
                "accuracy": (logits.argmax(dim=1) == y).float().mean(),
                "log_z": log_z.mean(),
                "log_forward": log_forward.mean(),
                "log_reward": log_reward.mean(),
                "keep_rate": torch.tensor(kept / (x.shape[0] * sum(s.width for s in self.net.sites))),
                "beta": self.beta.clone(),
            }
        return StepResult(losses=losses, logs=logs)

    @torch.no_grad()
    def score_masks(self, x: Tensor, y: Tensor, masks: Sequence[Tensor]) -> dict[str, Tensor]:
        """Exact scores of given masks, without gradients.

        Args:
            x, y: a labelled batch.
            masks: one 0/1 mask [batch, width] per site, in site order.

        Returns:
            Each [batch]: "log_forward" log q(z | x, y), "log_prior" log p(z | x), "log_likelihood"
            log p(y | x, z) and "log_z" log Z(x, y).
        """
        self.validate(x, y)
        sampler = self.training_sampler(y, forced_masks=list(masks))
        logits = self.net(x, sampler)
        log_forward, log_prior = sampler.finish()
        return {
            "log_forward": log_forward,
            "log_prior": log_prior,
            "log_likelihood": -F.cross_entropy(logits, y, reduction="none"),
            "log_z": self.log_partition(x, y),
        }

    def training_sampler(
        self,
        labels: Tensor,
        temperature: float = 1.0,
        epsilon: float = 0.0,
        epsilon_keep: float = 0.5,
        forced_masks: Sequence[Tensor] | None = None,
    ) -> PosteriorSampler | ReferencePosteriorSampler:
        """A posterior sampler for one forward pass of the backbone, from this method's `engine`.

        Args:
            labels: the batch's labels [batch].
            temperature, epsilon, epsilon_keep: exploration (`draw_policy_mask`); 1, 0, 0.5 sample q itself.
            forced_masks: score these masks (one [batch, width] per site) instead of drawing.

        Returns:
            "fused": a `PosteriorSampler`; "reference": a `ReferencePosteriorSampler`. Both draw the same masks
            and give the same (log q, log p) from `finish()`.
        """
        cls = PosteriorSampler if self.engine == "fused" else ReferencePosteriorSampler
        return cls(self.posterior, self.prior, labels, temperature, epsilon, epsilon_keep, forced_masks)

    def mask_diagnostics(self, x: Tensor, y: Tensor) -> dict[str, float]:
        """Per-site keep probabilities, entropies and the trajectory-balance residual (`methods.diagnostics`)."""
        from gflowout.methods.diagnostics import gflowout_diagnostics

        return gflowout_diagnostics(self, x, y)

    # --- prediction ----------------------------------------------------------------------------
    def prediction_sampler(self) -> PriorSampler:
        return PriorSampler(self.prior)

    def sample_logits(self, x: Tensor, samples: int) -> Tensor:
        """Per-sample logits [samples, batch, classes], masks from the prior p(z | x) at T = 1; no label.

        One batched pass over x repeated S times (`repeated_pass`), with a sampler told about the S copies
        so that the first site's prior runs once per input, and whose per-site buffers are reused between
        calls (its masks die with the pass, unlike those of a `prediction_sampler()` handed out).
        """
        return repeated_pass(self.net, x, samples, PriorSampler(self.prior, copies=samples, reuse_buffers=True))
