"""ID-GFlowOut (the paper's sample-independent ablation): a dataset posterior q(z) over masks.

* q(z) = prod_l q(z_l | z_<l): each site's generator sees only the earlier masks (the first site's
  logits are a learned constant); every example still draws its own mask.
* Fixed prior p(z): Bernoulli(prior_keep) per unit (paper: 0.5).
* Scalar log Z and the per-example estimate of the dataset posterior's reward,
  log R_i = beta * N * log p(y_i | x_i, z_i) + log p(z_i), with N the training-set size: its mean
  over the data set is beta * sum_n log p(y_n | x_n, z) + log p(z), the log of
  p(z) prod_n p(y_n | x_n, z)^beta, so trajectory balance on it makes q(z) that posterior.
  N must be >= 1: the official ResNet code used N = 0, which removes the likelihood and trains q(z)
  towards the prior (docs: The method, Pitfalls).
* Two parameter groups: "backbone" (cross-entropy on the masked forward) and "posterior"
  (generators + log Z, trajectory balance). The prior is fixed, so there is no "prior" group.
* log Z starts where the first training batch puts it (`logz_init="first_batch"`, an addition to
  the paper): the reward beta * N * log p(y | x, z) is of order -N (thousands), so a log Z started
  at 0 with lr 0.1 trails it for tens of thousands of steps (TB loss ~1e6 after 3 MNIST epochs).
  On the first training batch log Z is set to mean(log R - log P_F), the closed-form minimiser of
  that batch's TB loss, before the step; a buffer records it, so a resumed run does not redo it.
  `logz_init="zero"` is the paper's start.
* objective: "tb" (default, the paper's trajectory balance with the learned scalar log Z) or
  "vargrad", the log-variance objective (Richter et al., NeurIPS 2020; Malkin et al., ICLR 2023):
  log Z is replaced by the batch estimate mean(log R - log P_F) (detached; the gradient is the same
  either way, see `log_variance_loss`) and the loss is the batch variance of log P_F - log R. Its
  log Z cannot lag behind the reward, which with beta = 1 is ~N nats from 0 and moves by thousands
  of nats while the backbone trains; a learned log Z (Adam, lr 0.1) moves ~10 nats an epoch.
  Under "vargrad" the `log_z` parameter is not trained: each step writes the batch estimate into
  it (averaged over processes under DDP), so logs, diagnostics and checkpoints still show log Z.
Prediction samples masks from q(z) at T = 1; it never sees a label or an input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gflowout.methods.base import GroupSpec, Optimizers, StepResult, build_optimizer, repeated_pass
from gflowout.methods.generators import ChainGenerator
from gflowout.methods.gflownet_common import (
    GFlowNetMethod,
    SiteChain,
    gflownet_group_specs,
    posterior_optimizer,
    set_gflownet_options,
)
from gflowout.methods.mask_sampling import (
    bernoulli_log_prob,
    draw_policy_mask,
    reusable_buffer,
    sample_and_apply,
)
from gflowout.methods.schedules import BetaSpec
from gflowout.methods.trajectory_balance import log_variance_loss, trajectory_balance_loss
from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import Site, apply_mask

LOGZ_INITS = ("first_batch", "zero")
OBJECTIVES = ("tb", "vargrad")


class ChainSampler:
    """Masks from q(z) (at `temperature`, optional epsilon-random masks).

    Accumulates log q(z) at T = 1 and the kept count.

    forced_masks: score these masks instead of sampling (teacher forcing).
    """

    def __init__(
        self,
        generators: nn.ModuleList,
        temperature: float = 1.0,
        epsilon: float = 0.0,
        epsilon_keep: float = 0.5,
        forced_masks: Sequence[Tensor] | None = None,
        score: bool = True,
        reuse_buffers: bool = False,
    ) -> None:
        self.generators = generators
        self.reuse_buffers = reuse_buffers  # prediction only: per-site logits in reused memory (see `reusable_buffer`)
        self.temperature, self.epsilon, self.epsilon_keep = temperature, epsilon, epsilon_keep
        self.forced_masks, self.score = forced_masks, score
        self.chain = SiteChain(len(generators))
        self.log_forward: Tensor | float = 0.0

    def __call__(self, site: Site, activation: Tensor) -> Tensor:
        self.chain.expect(site)
        rows = activation.shape[0]
        generator = self.generators[site.index]
        out = None
        if self.reuse_buffers and not self.score and not torch.is_grad_enabled() and activation.device.type == "cpu":
            dtype = next(generator.parameters()).dtype
            out = reusable_buffer(("chain-logits", site.index), (rows, site.width), dtype)
        # q(z) in the parameters' dtype even under autocast: bf16 is far too coarse for log q, and prediction
        # (bf16-mixed validation) draws from the same float32 logits as training
        with torch.autocast(activation.device.type, enabled=False):
            logits = generator(self.chain.earlier, rows, out=None if self.score else out)
        if not self.score and self.forced_masks is None:  # prediction
            mask, masked = sample_and_apply(site, activation, logits)
            self.chain.push(mask)
            return masked
        if self.forced_masks is not None:
            mask = self.forced_masks[site.index].to(logits.dtype)
        else:
            mask = draw_policy_mask(logits, self.temperature, self.epsilon, self.epsilon_keep)
        if self.score:
            self.log_forward = self.log_forward + bernoulli_log_prob(logits, mask)
        self.chain.push(mask)
        return apply_mask(site, activation, mask)

    @property
    def scored_log_forward(self) -> Tensor:
        """log q(z) [batch] of the trajectory (at T = 1), once a site has been scored."""
        if not isinstance(self.log_forward, Tensor):
            raise RuntimeError("ChainSampler: no mask site was scored (score=False, or the pass reached no site)")
        return self.log_forward


class IDGFlowOut(GFlowNetMethod):
    """ID-GFlowOut on any MaskedNet; see the module docstring.

    dataset_size: N, the number of training examples (required, >= 1).
    prior_keep: keep probability of the fixed Bernoulli prior (paper: 0.5), in (0, 1).
    beta: reward temperature, as in GFlowOut (a number, "paper_mnist", a mapping or a BetaSchedule).
    train_temperature, epsilon, epsilon_keep: exploration, as in GFlowOut.
    generator_hidden: hidden sizes of each site's MLP on the earlier masks (paper: [32, 32]).
    backbone_lr: None = the baselines' backbone optimiser; posterior_lr, logz_lr: Adam lrs (paper 1e-3, 0.1).
    generator_weight_decay: default 0 (paper 0.1, which pulls log Z towards 0); log Z never gets weight decay.
    logz_init: "first_batch" (default; an addition to the paper, see the module docstring) or
        "zero" (the paper: log Z starts at 0). Ignored by objective "vargrad".
    objective: "tb" (default: trajectory balance, the paper) or "vargrad" (the log-variance objective;
        see the module docstring).
    """

    logz_initialized: Tensor  # a buffer (torch types buffers as `Tensor | Module`)

    name = "id_gflowout"

    def __init__(
        self,
        net: MaskedNet,
        dataset_size: int,
        prior_keep: float = 0.5,
        beta: BetaSpec = 1.0,
        train_temperature: float = 2.0,
        epsilon: float = 0.0,
        epsilon_keep: float = 0.5,
        generator_hidden: Sequence[int] = (32, 32),
        backbone_lr: float | None = None,
        posterior_lr: float = 1e-3,
        logz_lr: float = 0.1,
        generator_weight_decay: float = 0.0,
        logz_init: str = "first_batch",
        objective: str = "tb",
    ) -> None:
        super().__init__(net)
        if logz_init not in LOGZ_INITS:
            raise ValueError(f"logz_init must be one of {LOGZ_INITS}, got {logz_init!r}")
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
        self.objective = objective
        if (
            not isinstance(dataset_size, (int, float))
            or isinstance(dataset_size, bool)
            or int(dataset_size) != dataset_size
            or dataset_size < 1
        ):
            raise ValueError(
                f"dataset_size must be the number of training examples (an integer >= 1), got {dataset_size!r}; "
                "N = 0 would drop the likelihood from the reward, as in the official ResNet code"
            )
        if not 0.0 < prior_keep < 1.0:
            raise ValueError(f"prior_keep must be in (0, 1), got {prior_keep}")
        set_gflownet_options(self, beta, train_temperature, epsilon, epsilon_keep, logz_lr)
        self.dataset_size = int(dataset_size)
        self.prior_keep = float(prior_keep)
        self._specs = gflownet_group_specs(net, backbone_lr, posterior_lr, generator_weight_decay)
        sites = net.sites
        offsets = [sum(s.width for s in sites[:i]) for i in range(len(sites))]
        self.generators = nn.ModuleList(
            ChainGenerator(offsets[i], s.width, generator_hidden) for i, s in enumerate(sites)
        )
        self.log_z = nn.Parameter(torch.zeros(()))
        self.logz_init = logz_init
        # True once log Z has been started from a batch (or when it must not be: "zero"); checkpoints carry it
        self.register_buffer("logz_initialized", torch.tensor(logz_init == "zero"))
        self.register_buffer("beta", torch.tensor(self.beta_schedule.value(0)))
        self.register_buffer("epoch", torch.tensor(0, dtype=torch.long))

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"backbone": list(self.net.parameters()), "posterior": list(self.generators.parameters()) + [self.log_z]}

    def group_defaults(self) -> dict[str, GroupSpec]:
        return dict(self._specs)

    def make_optimizers(self, overrides: Mapping[str, Mapping[str, object]] | None = None) -> Optimizers:
        """Two optimisers; the "posterior" one has log Z as a second parameter group (lr `logz_lr`, no decay).
        Returned with their specs, which `train_step` clips with."""
        specs = self.resolve_specs(overrides)
        optimizers = {
            "backbone": build_optimizer(list(self.net.parameters()), specs["backbone"]),
            "posterior": posterior_optimizer(
                list(self.generators.parameters()), [self.log_z], specs["posterior"], self.logz_lr
            ),
        }
        return Optimizers(optimizers, specs)

    def log_prior(self, masks: Sequence[Tensor]) -> Tensor:
        """log p(z) under the fixed Bernoulli(prior_keep) prior: [batch]."""
        kept = cast(Tensor, sum(m.sum(dim=1) for m in masks))  # a Tensor: every net has at least one site
        total = sum(m.shape[1] for m in masks)
        return kept * math.log(self.prior_keep) + (total - kept) * math.log1p(-self.prior_keep)

    def compute_losses(self, x: Tensor, y: Tensor) -> StepResult:
        sampler = ChainSampler(self.generators, self.train_temperature, self.epsilon, self.epsilon_keep)
        logits = self.net(x, sampler)
        sampler.chain.check_complete()
        log_forward = sampler.scored_log_forward
        log_likelihood = -F.cross_entropy(logits, y, reduction="none")
        log_prior = self.log_prior(sampler.chain.masks)
        log_reward = self.beta * self.dataset_size * log_likelihood.detach() + log_prior
        if self.objective == "vargrad":
            tb_loss, log_z_hat = log_variance_loss(log_forward, log_reward)
            self.record_log_z(log_z_hat)
            # log Z takes part with a zero gradient: DDP expects a gradient for every parameter, and Adam's
            # update of an all-zero gradient history is exactly zero
            tb_loss = tb_loss + 0.0 * self.log_z
        else:
            if not bool(self.logz_initialized):
                self.initialize_log_z(log_reward, log_forward)
            tb_loss = trajectory_balance_loss(self.log_z, log_forward, log_reward)
        with torch.no_grad():
            logs = {
                "accuracy": (logits.argmax(dim=1) == y).float().mean(),
                "log_z": self.log_z.detach().clone(),
                "log_forward": log_forward.mean(),
                "log_reward": log_reward.mean(),
                "keep_rate": torch.cat(sampler.chain.masks, dim=1).mean(),
                "beta": self.beta.clone(),
            }
        return StepResult(losses={"backbone": -log_likelihood.mean(), "posterior": tb_loss}, logs=logs)

    @torch.no_grad()
    def initialize_log_z(self, log_reward: Tensor, log_forward: Tensor) -> None:
        """Set log Z to mean(log R - log P_F) over this batch (averaged over processes under DDP) and mark it done.

        That value minimises this batch's trajectory-balance loss mean((log Z + log P_F - log R)^2) in log Z.
        """
        value = (log_reward - log_forward).mean().to(self.log_z.dtype)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(value)
            value /= torch.distributed.get_world_size()
        self.log_z.copy_(value)
        self.logz_initialized.fill_(True)

    @torch.no_grad()
    def record_log_z(self, log_z_hat: Tensor) -> None:
        """VarGrad: store the batch estimate of log Z (averaged over processes under DDP) in `log_z`, untrained."""
        value = log_z_hat.detach().to(self.log_z.dtype).clone()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(value)
            value /= torch.distributed.get_world_size()
        self.log_z.copy_(value)
        self.logz_initialized.fill_(True)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        """Checkpoints from before `logz_init` have no flag: their log Z is trained, so it counts as initialised."""
        state_dict.setdefault(prefix + "logz_initialized", torch.tensor(True))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @torch.no_grad()
    def score_masks(self, x: Tensor, y: Tensor, masks: Sequence[Tensor]) -> dict[str, Tensor]:
        """Exact scores of given masks (one [batch, width] per site): log q(z), log p(z), log p(y|x,z)."""
        self.validate(x, y)
        sampler = ChainSampler(self.generators, forced_masks=list(masks))
        logits = self.net(x, sampler)
        sampler.chain.check_complete()
        return {
            "log_forward": sampler.scored_log_forward,
            "log_prior": self.log_prior(list(masks)),
            "log_likelihood": -F.cross_entropy(logits, y, reduction="none"),
        }

    def mask_diagnostics(self, x: Tensor, y: Tensor) -> dict[str, float]:
        """Per-site keep probabilities, entropies and the trajectory-balance residual (`methods.diagnostics`)."""
        from gflowout.methods.diagnostics import id_gflowout_diagnostics

        return id_gflowout_diagnostics(self, x, y)

    def prediction_sampler(self) -> ChainSampler:
        return ChainSampler(self.generators, score=False)

    def sample_logits(self, x: Tensor, samples: int) -> Tensor:
        """Per-sample logits [samples, batch, classes], masks from q(z) at T = 1; no label.

        One batched pass over x repeated S times (`repeated_pass`) with a sampler that writes each site's
        logits (then masks) into per-thread buffers reused between calls: its masks die with the pass,
        unlike those of a `prediction_sampler()` handed out.
        """
        return repeated_pass(self.net, x, samples, ChainSampler(self.generators, score=False, reuse_buffers=True))

    def extra_repr(self) -> str:
        return (
            f"dataset_size={self.dataset_size}, prior_keep={self.prior_keep}, logz_init={self.logz_init!r}, "
            f"objective={self.objective!r}"
        )
