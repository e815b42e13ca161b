"""Trajectory balance (Malkin et al., "Trajectory balance: improved credit assignment in GFlowNets", NeurIPS 2022).

For a trajectory tau = (s_0 -> ... -> s_n = z) with context c (Malkin et al. 2022):

    L_TB(tau) = ( log Z(c) + sum_t log P_F(s_{t+1} | s_t, c) - log R(z; c) - sum_t log P_B(s_t | s_{t+1}) )^2

In GFlowOut the masks are filled site by site in a fixed order, so every state has one parent and
log P_B = 0 (docs: The method, The GFlowNet view); the loss is averaged over the batch, one
trajectory per example (docs: The method, Reward and trajectory balance). At its minimum the
forward policy samples z with probability R(z; c) / Z(c).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gflowout.errors import NonFiniteLossError


def trajectory_balance_loss(log_z: Tensor, log_forward: Tensor, log_reward: Tensor) -> Tensor:
    """Mean over the batch of (log Z + log P_F - log R)^2, with log P_B = 0.

    log_z: [batch] (conditional log Z(x, y)) or a scalar (ID-GFlowOut's log Z), trained by this loss.
    log_forward: [batch] sum over sites of log P_F of the masks actually applied, at temperature 1.
    log_reward: [batch] log R; detached here, so this loss never trains the backbone or the prior.

    Raises NonFiniteLossError naming the offending term when any input or the loss is NaN or infinite.
    """
    if log_forward.dim() != 1 or log_reward.shape != log_forward.shape:
        raise ValueError(
            "log_forward and log_reward must both be [batch]; "
            f"got {tuple(log_forward.shape)} and {tuple(log_reward.shape)}"
        )
    if log_z.dim() not in (0, 1) or (log_z.dim() == 1 and log_z.shape != log_forward.shape):
        raise ValueError(f"log_z must be a scalar or [batch] = {tuple(log_forward.shape)}, got {tuple(log_z.shape)}")
    residual = log_z + log_forward - log_reward.detach()
    loss = residual.pow(2).mean()
    if not torch.isfinite(loss):
        raise NonFiniteLossError(_diagnose(log_z, log_forward, log_reward))
    return loss


def log_variance_loss(log_forward: Tensor, log_reward: Tensor) -> tuple[Tensor, Tensor]:
    """The log-variance ("VarGrad") objective: the batch variance of log P_F - log R, and the log Z it implies.

    Richter, Boustati, Nüsken, Ruiz & Akyildiz, "VarGrad: a low-variance gradient estimator for
    variational inference", NeurIPS 2020; in GFlowNet terms, trajectory balance with log Z replaced by
    its batch estimate (the log-variance loss of Malkin et al., "GFlowNets and variational inference",
    ICLR 2023). With d_i = log P_F(tau_i) - log R(tau_i) over the B trajectories of a batch:

        log Z_hat = mean_i (log R_i - log P_F_i) = -mean_i d_i
        loss      = mean_i (log Z_hat + d_i)^2 = (1 / B) sum_i (d_i - mean_j d_j)^2

    It is zero exactly when P_F(tau) ∝ R(tau) on the sampled trajectories, whatever distribution
    drew them (so it stays valid off-policy, with tempered masks), and it needs no learned log Z,
    so no log Z can lag behind a reward that moves by thousands of nats. log Z_hat is DETACHED:
    the gradient is the same with or without that detach, since
    d/dphi of the cross term, -2 (d/dphi mean_j d_j) * (1/B) sum_i (d_i - mean_j d_j), is zero
    (the centred residuals sum to zero); VarGrad's estimator is therefore
    (2 / B) sum_i (d_i - mean_j d_j) d/dphi log P_F(tau_i), REINFORCE-like with the batch mean as
    baseline, and the detach only saves a backward path. log R is detached as in TB.

    Returns (loss, log_z_hat) with log_z_hat a detached scalar. Needs B >= 2 (one trajectory has no variance).
    Raises NonFiniteLossError as `trajectory_balance_loss` does.
    """
    if log_forward.dim() != 1 or log_reward.shape != log_forward.shape:
        raise ValueError(
            "log_forward and log_reward must both be [batch]; "
            f"got {tuple(log_forward.shape)} and {tuple(log_reward.shape)}"
        )
    if log_forward.shape[0] < 2:
        raise ValueError("the log-variance objective needs at least 2 trajectories per batch (one has no variance)")
    log_z_hat = (log_reward.detach() - log_forward.detach()).mean()
    loss = (log_z_hat + log_forward - log_reward.detach()).pow(2).mean()
    if not torch.isfinite(loss):
        raise NonFiniteLossError(_diagnose(log_z_hat, log_forward, log_reward))
    return loss, log_z_hat


def _diagnose(log_z: Tensor, log_forward: Tensor, log_reward: Tensor) -> str:
    """A one-paragraph account of which term went non-finite and its range."""
    parts = []
    for name, value in (("log_z", log_z), ("log_forward (log P_F)", log_forward), ("log_reward (log R)", log_reward)):
        value = value.detach()
        bad = int((~torch.isfinite(value)).sum())
        finite = value[torch.isfinite(value)]
        span = (
            f"finite range [{float(finite.min()):.4g}, {float(finite.max()):.4g}]"
            if finite.numel()
            else "no finite value"
        )
        parts.append(f"{name}: {bad} non-finite of {value.numel()}, {span}")
    return (
        "trajectory balance loss is not finite; " + "; ".join(parts) + ". A non-finite log R usually means the "
        "backbone's logits overflowed (lower its learning rate); a non-finite log Z or log P_F means the "
        "posterior diverged (lower the posterior or log Z learning rate, or enable clip_norm)."
    )
