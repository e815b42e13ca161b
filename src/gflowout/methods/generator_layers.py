"""The building blocks of the mask generators (`generators`) and the functions the fused engine shares with them.

* `BlockLinear` and `GroupedMLPTail`: `groups` side-by-side MLPs run as one chain (one block-diagonal
  linear per layer, one `layer_norm` over a [batch, groups, hidden] view), see `generators`' Speed note.
* `project_earlier_masks`: a first layer applied to the earlier sites' masks block by block, never
  building their concatenation.
* `LinearParams`, `linear_params`, `stack_layers`: a generator's linear layers as the fused engine
  (`trajectory_policy`) reads them; `leaky_norm` / `leaky_norm_backward`: the LeakyReLU -> LayerNorm
  step and its backward, which that engine runs by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NEGATIVE_SLOPE = 0.01  # LeakyReLU slope of the paper's generator MLPs (PyTorch default)


EarlierMasks = Tensor | Sequence[Tensor] | None

LAYER_NORM_EPS = 1e-5  # F.layer_norm's default, as the modules use (`trajectory_policy` runs their functions by hand)


def leaky_norm(pre: Tensor, groups: int = 1) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """LeakyReLU, then a LayerNorm per group (`GroupedMLPTail`'s step before each linear), with what its backward needs:
    [..., groups * hidden] -> (normed [..., groups, hidden], activated, mean, rstd); one group keeps [..., hidden]."""
    activated = F.leaky_relu(pre, NEGATIVE_SLOPE)
    if groups > 1:
        activated = activated.unflatten(-1, (groups, -1))
    normed, mean, rstd = torch.native_layer_norm(activated, activated.shape[-1:], None, None, LAYER_NORM_EPS)
    return normed, activated, mean, rstd


def leaky_norm_backward(grad_normed: Tensor, pre: Tensor, activated: Tensor, mean: Tensor, rstd: Tensor) -> Tensor:
    """Backward of `leaky_norm` from the gradient of `normed` (any shape of its size) to that of `pre`."""
    grad_activated = torch.ops.aten.native_layer_norm_backward(
        grad_normed.reshape(activated.shape),
        activated,
        activated.shape[-1:],
        mean,
        rstd,
        None,
        None,
        [True, False, False],
    )[0]
    return torch.ops.aten.leaky_relu_backward(grad_activated.view(pre.shape), pre, NEGATIVE_SLOPE, False)


def project_earlier_masks(layer: nn.Linear, earlier: EarlierMasks, batch: int) -> Tensor:
    """`layer` applied to the concatenation of the earlier sites' masks (or any blocks): [batch, hidden].

    earlier: one [batch, mask_features] tensor, or the list of per-site masks [batch, width_j] in
    site order (the prior appends the activation summary as a last block), whose concatenation is never
    built: the product is summed block by block over column slices of the weight, which saves writing a
    [batch, sum of widths] copy per site
    (at S = 20 x 128 prediction that copy costs as much as a generator's matmul).
    """
    expected = layer.in_features
    if isinstance(earlier, Tensor):
        if earlier.shape != (batch, expected):
            raise ValueError(f"earlier masks have shape {tuple(earlier.shape)}, expected ({batch}, {expected})")
        return layer(earlier)
    blocks: Sequence[Tensor] = earlier or ()
    widths = [m.shape[1] for m in blocks]
    if not widths or sum(widths) != expected or any(m.shape[0] != batch for m in blocks):
        found = [tuple(m.shape) for m in blocks]
        raise ValueError(f"earlier masks have shapes {found}, expected {batch} rows and {expected} columns in all")
    if len(blocks) > 1 and torch.is_grad_enabled() and not any(m.requires_grad for m in blocks):
        return _BlockProjection.apply(layer.weight, layer.bias, *blocks)
    return _project_blocks(layer.weight, layer.bias, blocks)


def _project_blocks(weight: Tensor, bias: Tensor, blocks: Sequence[Tensor]) -> Tensor:
    """bias + sum_j blocks[j] @ weight[:, columns of block j].T: [batch, out] (at least one block)."""
    out: Tensor | None = None
    start = 0
    for block in blocks:
        width = block.shape[1]
        columns = weight[:, start : start + width]
        out = F.linear(block, columns, bias) if out is None else torch.addmm(out, block, columns.t())
        start += width
    assert out is not None, "no blocks to project"  # callers check that there is at least one
    return out


class _BlockProjection(torch.autograd.Function):
    """`_project_blocks` for inputs that need no gradient (masks, detached activations), with a cheaper backward.

    Autograd's own backward of the column slices computes each block's weight gradient as
    block.T @ grad ([width, batch] x [batch, 32], a slow layout for CPU matmul) and then scatters it
    into a zero-filled full-size gradient; here it is grad.T @ block ([32, batch] x [batch, width])
    per block, joined by one `cat`. Same values (tested).
    """

    @staticmethod
    def forward(ctx: Any, weight: Tensor, bias: Tensor, *blocks: Tensor) -> Tensor:
        ctx.save_for_backward(*blocks)
        with torch.no_grad():
            return _project_blocks(weight, bias, blocks)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        blocks = ctx.saved_tensors
        grad_t = grad.t()
        grad_weight = torch.cat([grad_t.mm(block) for block in blocks], dim=1) if ctx.needs_input_grad[0] else None
        grad_bias = grad.sum(dim=0) if ctx.needs_input_grad[1] else None
        return (grad_weight, grad_bias) + (None,) * len(blocks)


# --- building blocks -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LinearParams:
    """One linear layer of a generator as the fused engine (`trajectory_policy`) reads it.

    weight [out, in] and bias [out] are the parameters themselves (gradients are assigned to them);
    block_mask is the fixed 0/1 block-diagonal mask of a grouped layer (None for a plain one): the layer
    computes x @ (weight * block_mask).T + bias, and its weight gradient is masked alike.
    """

    weight: Tensor
    bias: Tensor
    block_mask: Tensor | None = None

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])


def linear_params(layer: nn.Module) -> LinearParams:
    """The `LinearParams` of an `nn.Linear` or a `BlockLinear` (its block mask when it has several groups)."""
    if isinstance(layer, BlockLinear):
        return LinearParams(layer.weight, layer.bias, layer.block_mask if layer.groups > 1 else None)
    if isinstance(layer, nn.Linear) and layer.bias is not None:
        return LinearParams(layer.weight, layer.bias)
    raise TypeError(f"expected an nn.Linear with a bias or a BlockLinear, got {type(layer).__name__}")


def stack_layers(layers: Sequence[LinearParams]) -> tuple[Tensor, Tensor]:
    """The weights [n, out, in] (block-masked where a layer has a mask) and biases [n, out] of n like-shaped layers."""
    weights = torch.stack([layer.weight for layer in layers])
    mask = layers[0].block_mask
    if mask is not None:
        weights.mul_(mask)
    return weights, torch.stack([layer.bias for layer in layers])


class BlockLinear(nn.Module):
    """`groups` independent linear maps [in_features] -> [out_features], applied to a [batch, groups * in] tensor.

    Stored as one dense weight multiplied by a fixed block-diagonal 0/1 mask, so it is a single
    matmul on the CPU and no gradient or signal crosses from one group to another. Each block is
    initialised like `nn.Linear(in_features, out_features)`.
    """

    block_mask: Tensor  # a buffer (torch types buffers as `Tensor | Module`)

    def __init__(self, groups: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(groups * out_features, groups * in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups * out_features).uniform_(-bound, bound))
        block = torch.block_diag(*[torch.ones(out_features, in_features)] * groups)
        self.register_buffer("block_mask", block, persistent=False)
        with torch.no_grad():
            self.weight.mul_(block)

    def forward(self, x: Tensor) -> Tensor:
        if self.groups == 1:
            return F.linear(x, self.weight, self.bias)
        return F.linear(x, self.weight * self.block_mask, self.bias)

    def extra_repr(self) -> str:
        return f"groups={self.groups}, in_features={self.in_features}, out_features={self.out_features}"


class GroupedMLPTail(nn.Module):
    """The rest of `groups` side-by-side MLPs once their first linear layer has run.

    Input [batch, groups * hidden[0]] (first-layer pre-activations); each hidden block is
    LeakyReLU -> LayerNorm (per group) -> BlockLinear, the paper's Linear -> LeakyReLU -> LayerNorm
    pattern; output [batch, groups * out_features]. The LayerNorms have no affine parameters: each
    is followed directly by a linear layer, which absorbs them (W (g * n + b) + c = (W diag g) n +
    (W b + c)), so the family of functions is the paper's, with fewer tensors to optimise.
    """

    def __init__(self, groups: int, hidden: Sequence[int], out_features: int) -> None:
        super().__init__()
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"generator hidden sizes must be a non-empty list of positive ints, got {list(hidden)}")
        self.groups = groups
        sizes = list(hidden) + [out_features]
        self.linears = nn.ModuleList([BlockLinear(groups, sizes[i], sizes[i + 1]) for i in range(len(hidden))])

    @property
    def blocks(self) -> Sequence[BlockLinear]:
        """`linears` as the `BlockLinear`s they are (a ModuleList's items are typed as any Module)."""
        return cast("Sequence[BlockLinear]", self.linears)

    @property
    def layers(self) -> list[LinearParams]:
        """Its linear layers in order (hidden[1:] and the output layer), for the fused engine."""
        return [linear_params(linear) for linear in self.blocks]

    @property
    def input_sizes(self) -> list[int]:
        """The width of each layer's input per group: the MLP's hidden sizes."""
        return [linear.in_features for linear in self.blocks]

    def forward(self, pre_activation: Tensor, out: Tensor | None = None) -> Tensor:
        """Apply the generator; `out`, optional, is a [batch, groups * out_features] tensor to write the result into.

        `out` is for no-autograd passes of one group only.
        """
        h = pre_activation
        batch = h.shape[0]
        last = len(self.linears) - 1
        for i, linear in enumerate(self.blocks):
            # LayerNorm of each group's features: layer_norm over a [batch, groups, hidden] view (cheaper on CPU
            # than group_norm on [batch, groups * hidden]).
            grouped = F.leaky_relu(h, NEGATIVE_SLOPE).view(batch, self.groups, -1)
            normed = F.layer_norm(grouped, grouped.shape[-1:]).view(batch, -1)
            if i == last and out is not None and self.groups == 1 and not torch.is_grad_enabled():
                return torch.addmm(linear.bias, normed, linear.weight.t(), out=out)
            h = linear(normed)
        return h
