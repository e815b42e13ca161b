"""Bernoulli mask helpers shared by GFlowOut and ID-GFlowOut: log-probabilities, policy draws, and the
fast prediction-time sampler.

`bernoulli_log_prob` is the log-probability of a mask under per-unit logits (through logsigmoid, never
log(sigmoid)); `draw_policy_mask` samples a training mask (temperature, epsilon-random masks);
`sample_and_apply` draws and applies prediction masks with 16-bit uniforms on reusable per-thread CPU
buffers (keep probabilities rounded up by less than 2^-16; other devices take the plain path).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gflowout.nets.sites import Site, apply_mask, broadcast_mask


def bernoulli_log_prob(logits: Tensor, mask: Tensor) -> Tensor:
    """log prod_i Bernoulli(mask_i; sigmoid(logits_i)), summed over units: [batch, width] -> [batch].

    Written as z * a + logsigmoid(-a), which equals z log sigmoid(a) + (1 - z) log sigmoid(-a) and
    stays finite for every finite logit (no log of a rounded probability; docs: The method, Pitfalls).
    The mask carries no gradient (it is a sample). The backward pass is the closed form
    d/da = z - sigmoid(a), one fused expression instead of autograd's chain through
    addcmul, logsigmoid and neg.
    """
    if not torch.is_grad_enabled() or not logits.requires_grad:
        return torch.addcmul(F.logsigmoid(-logits), mask, logits).sum(dim=1)
    return _BernoulliLogProb.apply(logits, mask.detach())


class _BernoulliLogProb(torch.autograd.Function):
    """sum_i z_i a_i + logsigmoid(-a_i) with the gradient z - sigmoid(a) (see `bernoulli_log_prob`)."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, mask: Tensor) -> Tensor:
        ctx.save_for_backward(logits, mask)
        return torch.addcmul(F.logsigmoid(-logits), mask, logits).sum(dim=1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        logits, mask = ctx.saved_tensors
        return (mask - torch.sigmoid(logits)).mul_(grad.unsqueeze(1)), None


LOG_CHUNK = 64  # units whose probabilities are multiplied before one log (2^-64 is far above float32's smallest normal)


def chunked_log_prob(logits: Tensor, mask: Tensor, scratch: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """log Bernoulli(z; sigmoid(a)) summed over the last dim: [..., batch, width] -> [..., batch].

    With t = (2z - 1) a the log-probability is sum_i log sigmoid(t_i), and
    log sigmoid(t) = min(t, 0) + log sigmoid(|t|), where sigmoid(|t|) lies in [1/2, 1]. So the
    products of `LOG_CHUNK` such factors stay >= 2^-64 (no underflow, no log of a rounded-to-zero
    probability: docs: The method, Pitfalls) and one log per chunk replaces one softplus per unit. Why:
    on CPU `sigmoid` is several times cheaper than `softplus`/`logsigmoid`/`exp`/`log` per element, and
    this function runs on 2 x [batch, width] logits at every site. float32 error: <= 64 ulp per
    chunk product, ~4e-6 in its log, comparable to summing 1024 softplus terms (tested against
    `bernoulli_log_prob`).
    -t = a - 2za is formed in one exact op (z is 0 or 1), and sum min(t, 0) = -sum max(-t, 0) exactly.
    scratch: two tensors of the broadcast shape of logits and mask for the two full-size temporaries
    (reused memory: a fresh multi-megabyte tensor costs page faults); same values without.
    """
    negated, positive = scratch if scratch is not None else (None, None)
    negated = torch.addcmul(logits, mask, logits, value=-2.0, out=negated)  # -t = (1 - 2z) a
    total = torch.clamp(negated, min=0.0, out=positive).sum(dim=-1).neg_()  # sum min(t, 0)
    factors = negated.abs_().sigmoid_()  # sigmoid(|t|), in place
    width = factors.shape[-1]
    whole = width - width % LOG_CHUNK
    if whole:
        chunks = factors[..., :whole].unflatten(-1, (whole // LOG_CHUNK, LOG_CHUNK))
        total = total + chunks.prod(dim=-1).log_().sum(dim=-1)
    if whole < width:
        total = total + factors[..., whole:].prod(dim=-1).log_()
    return total


def log_prob_grad(logits: Tensor, mask: Tensor, grad: Tensor, out: Tensor | None = None) -> Tensor:
    """d/da of grad * log q: (z - sigmoid(a)) * grad[..., None], in two in-place passes (into `out` if given)."""
    return torch.sigmoid(logits, out=out).sub_(mask).mul_(grad.neg().unsqueeze(-1))


def sample_bernoulli(probs: Tensor) -> Tensor:
    """A float 0/1 sample with P(1) = probs, same shape; `rand < p` is cheaper than torch.bernoulli on CPU.

    The bool result is converted through a uint8 view: on CPU bool -> float is an element-by-element
    path while uint8 -> float is vectorised.
    """
    return as_float_mask(torch.rand_like(probs) < probs, probs.dtype)


def as_float_mask(keep: Tensor, dtype: torch.dtype) -> Tensor:
    """bool -> 0/1 float tensor via a (free) uint8 view; see `sample_bernoulli`."""
    return keep.view(torch.uint8).to(dtype)


def draw_policy_mask(
    logits: Tensor, temperature: float = 1.0, epsilon: float = 0.0, epsilon_keep: float = 0.5
) -> Tensor:
    """Sample a site's mask [batch, width] from a policy with logits [batch, width].

    temperature: masks come from sigmoid(logits / temperature) (exploration; log P_F is still
    computed at temperature 1 by the caller, which makes trajectory balance off-policy).
    epsilon: each example's mask at this site is, with this probability, replaced by a
    Bernoulli(epsilon_keep) mask. The caller scores the mask this function RETURNS, i.e. the mask
    actually applied (the official code scored the unapplied policy sample: docs: The method, Pitfalls).
    Policy samples come from `mask_with_16_bits` (P(keep) = p rounded up by < 2^-16; a quarter of the
    random words of `rand < p`); the log-probability is that of the drawn mask
    under the exact policy, so trajectory balance is unaffected (the tiny rounding is off-policy).
    """
    logits = logits.detach()
    probs = torch.sigmoid(logits) if temperature == 1.0 else (logits / temperature).sigmoid_()
    mask = mask_with_16_bits(probs)  # p to 2^-16, a quarter of a random word per unit
    if epsilon > 0.0:
        replace = torch.rand(mask.shape[0], 1, dtype=mask.dtype, device=mask.device) < epsilon
        random_mask = as_float_mask(torch.rand_like(mask) < epsilon_keep, mask.dtype)
        mask = torch.where(replace, random_mask, mask)
    return mask


def sample_and_apply(site: Site, activation: Tensor, logits: Tensor) -> tuple[Tensor, Tensor]:
    """Prediction: sample a site's mask from sigmoid(logits) (T = 1) and apply it with the site's rule.

    Returns (mask [batch, width] 0/1, masked activation), bit for bit what
    `apply_mask(site, activation, mask)` gives for the mask drawn by `keep_with_16_bits`, with three
    fewer full-size temporaries: without autograd it overwrites `logits` (probabilities, thresholds,
    then the mask) and rescales the product in place. A fresh 10 MB tensor costs page faults here,
    so at S = 20 x 128 these two changes cut predict's overhead over a mask-free pass by about a third.
    """
    if torch.is_grad_enabled() and (logits.requires_grad or activation.requires_grad):
        mask = sample_bernoulli(torch.sigmoid(logits))
        return mask, apply_mask(site, activation, mask)
    if logits._base is not None or not logits.is_contiguous():  # never write through a view (of a parameter)
        logits = logits.clone(memory_format=torch.contiguous_format)
    probs = logits.sigmoid_()
    mask = mask_with_16_bits(probs)  # the 0/1 mask, written over the probabilities
    masked = activation * broadcast_mask(site, mask.to(activation.dtype), activation)
    if site.rescale:  # width / (number kept + 1e-6), as apply_mask; x * 1 * s == x * (1 * s) exactly
        scale = site.width / (mask.sum(dim=1).to(masked.dtype) + 1e-6)
        masked.mul_(scale.reshape((-1,) + (1,) * (masked.dim() - 1)))
    return mask, masked


def random_words(rows: int, words: int) -> Tensor:
    """A [rows, words] int64 tensor of uniformly random 64-bit words (every bit random), seeded from torch's generator.

    The bits come from numpy's SFC64 generator (`random_raw`), cheaper per word than
    `Tensor.random_()` on CPU (whose words carry 63 random bits); its seed is one draw of
    torch's default generator, so `torch.manual_seed` still makes every mask reproducible.
    """
    seed = int(torch.randint(0, 2**62, (), dtype=torch.int64))
    raw = np.random.SFC64(seed).random_raw(rows * words)
    return torch.from_numpy(raw.view(np.int64)).view(rows, words)


def keep_with_16_bits(probs: Tensor, overwrite: bool = False) -> Tensor:
    """A bool [rows, width] sample, True with probability `probs` resolved to 2^-16, from 16 random bits per unit.

    Why: at S = 20 x 128 prediction draws 2.6 M uniforms per site, and `torch.rand` (one 32-bit draw
    of the CPU generator per unit) was the largest single cost after the matmuls. Here each random
    64-bit word (`random_words`) is read as four int16 units, a quarter of a word per unit; unit i
    keeps when v_i = u_i + 32768 (uniform on 0..65535) is below 65536 p_i, a comparison that is exact
    in float. P(keep) = ceil(65536 p) / 65536: p itself, rounded up by less than 2^-16, far below any
    Monte Carlo error; p = 0 never keeps, p = 1 always does. This is `mask_with_16_bits` as a bool.
    overwrite: let the draw use `probs`' memory (saves a copy; `probs` is lost).
    Off the CPU, or for other than 2-D input, it is `torch.rand_like(probs) < probs`.
    """
    if probs.device.type != "cpu" or probs.dim() != 2 or not probs.is_floating_point():
        return torch.rand_like(probs) < probs
    target = probs if overwrite and probs.is_contiguous() else probs.clone(memory_format=torch.contiguous_format)
    return _draw_16_bit_mask(target) > 0


_SCRATCH = threading.local()


def persistent_empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str = "cpu") -> Tensor:
    """An empty tensor for a buffer kept across calls, made outside inference mode even when called inside it.

    Why: a tensor created under `torch.inference_mode` (Lightning's validate/test/predict hooks, evaluation
    code) can never be written again outside it, so a cached buffer first made there would make every later
    training step of the same shape fail; a normal tensor can be written in both modes.
    """
    with torch.inference_mode(False):
        return torch.empty(shape, dtype=dtype, device=device)


def _float_scratch(rows: int, width: int, dtype: torch.dtype) -> Tensor:
    """A reusable [rows, width] buffer of this thread (the last shape asked for is kept).

    Why: a fresh multi-megabyte tensor is page-faulted in on its first write, which on this
    machine costs more than the arithmetic done in it (at S = 20 x 128 prediction, about a third of
    the sampling time); a buffer that stays mapped does not pay that again.
    """
    buffer = getattr(_SCRATCH, "buffer", None)
    if buffer is None or buffer.shape != (rows, width) or buffer.dtype != dtype:
        buffer = persistent_empty((rows, width), dtype)
        _SCRATCH.buffer = buffer
    return buffer


def mask_with_16_bits(probs: Tensor) -> Tensor:
    """The 0/1 float mask of `keep_with_16_bits(probs)` (the same sample for the same seed), written over `probs`."""
    if probs.device.type != "cpu" or probs.dim() != 2 or not probs.is_floating_point() or not probs.is_contiguous():
        return probs.copy_(keep_with_16_bits(probs).view(torch.uint8))
    return _draw_16_bit_mask(probs)


def _draw_16_bit_mask(probs: Tensor) -> Tensor:
    """In place over a contiguous CPU [rows, width] `probs`: 1.0 where v * 2^-16 < p, else 0.0.

    v = u + 32768, see above.

    Four passes over the rows: v * 2^-16 is widened into a reused scratch buffer (exact: v is an
    integer below 2^16), then p - v * 2^-16 (`sub_` with alpha; its sign is exact) and `gt_(0)`.
    No fresh full-size temporary is written (no bool tensor, no widened copy of the draws), which
    matters at S = 20 x 128 prediction, where every full-size pass over the masks counts.
    """
    rows, width = probs.shape
    uniform = random_words(rows, (width + 3) // 4).view(torch.int16)[:, :width]
    # v = u + 32768 (exact); widening by copy_ casts on the fly, where add(uniform, ..., out=) made a temporary
    shifted = _float_scratch(rows, width, probs.dtype).copy_(uniform).add_(32768.0)
    return probs.sub_(shifted, alpha=2.0**-16).gt_(0.0)


REUSABLE_BUFFER_LIMIT = 1 << 23  # elements (32 MB in float32); larger buffers are allocated afresh


def reusable_buffer(slot: object, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor | None:
    """A CPU buffer of this thread for `slot` (the last shape asked for is kept), or None when it would be large.

    For prediction's per-site logits (which become the masks): writing into memory that stays mapped
    avoids the page faults of a fresh multi-megabyte tensor on every call (see `_float_scratch`).
    The caller must not let the buffer outlive one forward pass.
    """
    if math.prod(shape) > REUSABLE_BUFFER_LIMIT:
        return None
    buffers = getattr(_SCRATCH, "slots", None)
    if buffers is None:
        buffers = _SCRATCH.slots = {}
    buffer = buffers.get(slot)
    if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
        buffer = buffers[slot] = persistent_empty(shape, dtype)
    return buffer
