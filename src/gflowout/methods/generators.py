"""Mask generators of GFlowOut and ID-GFlowOut (the Bernoulli helpers are in `mask_sampling`, the building
blocks in `generator_layers`).

Each generator maps what is known at one mask site to one logit per unit of that site ([batch, width]):

* `PosteriorGenerator`: q(z_l | z_<l, h_l, y), the GFlowNet forward policy of GFlowOut
  (docs: The method, Prior and posterior).
  Three branch encoders (earlier masks, the site's activation summary, onehot(y)) feed a combiner
  MLP, so that the label has its own path and cannot be drowned by the wide activation input.
* `PriorGenerator`: p(z_l | z_<l, h_l), the learned prior: the paper's single MLP on [earlier masks,
  activation summary]. Its `forward` has no label argument, so prediction cannot see a label by
  construction (docs: The method, Pitfalls).
* `ChainGenerator`: q(z_l | z_<l) of ID-GFlowOut: an MLP on the earlier masks, or a
  learned constant at the first site.

Architecture (the official code's): every MLP is the paper's Linear -> LeakyReLU -> LayerNorm blocks
(hidden [32, 32]), then a Linear; branches output 10 features each. The LayerNorms have no affine
parameters, which the next Linear absorbs (see `GroupedMLPTail`).

Speed: the paper's branch MLPs are many tiny ops on [batch, 32] tensors, and on a CPU their count
matters as much as their arithmetic. So the branches of one generator run side by side as one
chain: their first layers are written into one [batch, branches * hidden] tensor, later layers are
one block-diagonal linear each (a dense weight times a fixed 0/1 block mask, so no signal or
gradient crosses branches), and each branch's LayerNorm is one `layer_norm` over a
[batch, branches, hidden] view. This is the same function as separate branch MLPs (tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The building blocks are re-exported here, where they were defined before `generator_layers` held them.
from gflowout.methods.generator_layers import (
    LAYER_NORM_EPS,
    NEGATIVE_SLOPE,
    BlockLinear,
    EarlierMasks,
    GroupedMLPTail,
    LinearParams,
    leaky_norm,
    leaky_norm_backward,
    linear_params,
    project_earlier_masks,
    stack_layers,
)

__all__ = [
    "LAYER_NORM_EPS",
    "NEGATIVE_SLOPE",
    "BlockLinear",
    "ChainGenerator",
    "EarlierMasks",
    "GroupedMLPTail",
    "LinearParams",
    "LogPartition",
    "PosteriorGenerator",
    "PriorGenerator",
    "leaky_norm",
    "leaky_norm_backward",
    "linear_params",
    "project_earlier_masks",
    "stack_layers",
]


class PosteriorGenerator(nn.Module):
    """q(z_l | z_<l, h_l, y) of one site: logits [batch, site_width].

    Three branch MLPs (earlier masks, the site's activation summary, onehot(y)), each to
    `branch_out` features, then a combiner MLP to the site's logits (the paper's
    multiMLPMaskGenerator: "use two separate MLP to ensure y is not ignored").
    mask_features: total width of the earlier sites' masks (0 at the first site, where the mask
        branch's first layer is a learned constant, as the official code's zero input gives).
    hidden: hidden sizes of every branch MLP and of the combiner (paper: [32, 32]).
    branch_out: output width of each branch (paper: 10).
    """

    def __init__(
        self,
        mask_features: int,
        site_width: int,
        num_classes: int,
        hidden: Sequence[int] = (32, 32),
        branch_out: int = 10,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"the posterior generator needs num_classes >= 2, got {num_classes}")
        hidden = [int(h) for h in hidden]
        first = hidden[0]
        self.mask_features, self.site_width = mask_features, site_width
        self.mask_in = nn.Linear(mask_features, first) if mask_features > 0 else None
        self.mask_const = nn.Parameter(torch.zeros(first)) if self.mask_in is None else None
        self.activation_in = nn.Linear(site_width, first)
        self.label_in = nn.Embedding(num_classes, first)  # onehot(y) @ W + b is an embedding lookup
        nn.init.uniform_(self.label_in.weight, -1.0 / math.sqrt(num_classes), 1.0 / math.sqrt(num_classes))
        self.branch_tail = GroupedMLPTail(3, hidden, branch_out)
        self.combiner_in = nn.Linear(3 * branch_out, first)
        self.combiner_tail = GroupedMLPTail(1, hidden, site_width)

    def forward(self, earlier_masks: EarlierMasks, features: Tensor, labels: Tensor) -> Tensor:
        """earlier_masks: [batch, mask_features] or the list of earlier site masks (None or [] at the first site);
        features [batch, width]; labels [batch]."""
        batch = features.shape[0]
        if self.mask_in is not None:
            mask_part = project_earlier_masks(self.mask_in, earlier_masks, batch)
        else:
            assert self.mask_const is not None  # set exactly when there is no mask_in (the first site)
            mask_part = self.mask_const.expand(batch, -1)
        parts = [mask_part, self.activation_in(features), self.label_in(labels)]
        return self.combiner_tail(self.combiner_in(self.branch_tail(torch.cat(parts, dim=1))))

    # --- its layers, as the fused engine (`trajectory_policy`) reads them ---------------------------
    @property
    def hidden(self) -> list[int]:
        """The hidden sizes of its branch and combiner MLPs."""
        return self.combiner_tail.input_sizes

    @property
    def mask_input(self) -> LinearParams | None:
        """First layer of the earlier-masks branch (None at the first site, which has `mask_const` instead)."""
        return None if self.mask_in is None else linear_params(self.mask_in)

    @property
    def activation_input(self) -> LinearParams:
        """First layer of the activation branch."""
        return linear_params(self.activation_in)

    @property
    def label_table(self) -> Tensor:
        """First layer of the label branch, as an embedding table [num_classes, hidden[0]] (onehot(y) @ W + b)."""
        return self.label_in.weight

    @property
    def branch_layers(self) -> list[LinearParams]:
        """The three branches' later layers, side by side (block-diagonal: hidden[1:] and the branch outputs)."""
        return self.branch_tail.layers

    @property
    def combiner_input(self) -> LinearParams:
        """The combiner's first layer, on the concatenated branch outputs."""
        return linear_params(self.combiner_in)

    @property
    def combiner_layers(self) -> list[LinearParams]:
        """The combiner's later layers, its output layer last."""
        return self.combiner_tail.layers


class PriorGenerator(nn.Module):
    """p(z_l | z_<l, h_l) of one site: logits [batch, site_width]. It takes no label, by design.

    The paper's prior generator (MLPMaskGenerator): one MLP on the concatenation
    [earlier masks, activation summary], hidden [32, 32]. Unlike the posterior it needs no separate
    branches (there is no label to protect from being ignored), and it is the only generator that
    runs at prediction time, so it is kept this small.
    """

    def __init__(self, mask_features: int, site_width: int, hidden: Sequence[int] = (32, 32)) -> None:
        super().__init__()
        self.mask_features, self.site_width = mask_features, site_width
        self.first = nn.Linear(mask_features + site_width, int(hidden[0]))
        self.tail = GroupedMLPTail(1, hidden, site_width)

    def forward(self, earlier_masks: EarlierMasks, features: Tensor, out: Tensor | None = None) -> Tensor:
        """earlier_masks: [batch, mask_features] or the list of earlier site masks (None or [] at the first site);
        features [batch, width]; out: optional [batch, width] tensor for the logits (prediction, no autograd)."""
        if isinstance(earlier_masks, Tensor):
            blocks = [earlier_masks, features]
        else:
            blocks = [*(earlier_masks or ()), features]
        return self.tail(project_earlier_masks(self.first, blocks, features.shape[0]), out=out)

    # --- its layers, as the fused engine (`trajectory_policy`) reads them ---------------------------
    @property
    def hidden(self) -> list[int]:
        """The hidden sizes of its MLP."""
        return self.tail.input_sizes

    @property
    def first_layer(self) -> LinearParams:
        """Its first layer, on [earlier masks | activation summary] (columns mask_features: are the activation's)."""
        return linear_params(self.first)

    @property
    def tail_layers(self) -> list[LinearParams]:
        """Its later layers, the output layer last."""
        return self.tail.layers


class ChainGenerator(nn.Module):
    """q(z_l | z_<l) of ID-GFlowOut for one site: logits [batch, site_width].

    At the first site (mask_features = 0) the logits are a learned constant (the official code feeds
    a zero vector to an MLP, which is the same thing); later sites use an MLP on the earlier masks.
    """

    def __init__(self, mask_features: int, site_width: int, hidden: Sequence[int] = (32, 32)) -> None:
        super().__init__()
        self.mask_features = mask_features
        self.site_width = site_width
        self.constant: nn.Parameter | None
        self.first: nn.Linear | None
        self.tail: GroupedMLPTail | None
        if mask_features == 0:
            self.constant = nn.Parameter(torch.zeros(site_width))
            self.first = None
            self.tail = None
        else:
            self.constant = None
            self.first = nn.Linear(mask_features, int(hidden[0]))
            self.tail = GroupedMLPTail(1, hidden, site_width)

    def forward(self, earlier_masks: EarlierMasks, batch: int, out: Tensor | None = None) -> Tensor:
        """earlier_masks: [batch, mask_features] or the list of earlier site masks (None or [] at the first site)
        -> logits [batch, site_width]; out: optional [batch, site_width] tensor for them (prediction, no autograd)."""
        if self.first is None:
            assert self.constant is not None  # the first site: a constant instead of first and tail
            if out is not None and not torch.is_grad_enabled():
                return out.copy_(self.constant.expand(batch, -1))
            return self.constant.repeat(batch, 1)  # a fresh tensor: prediction samples in place over logits
        assert self.tail is not None  # built with first
        return self.tail(project_earlier_masks(self.first, earlier_masks, batch), out=out)


class LogPartition(nn.Module):
    """log Z(x, y) of GFlowOut: an MLP on the (pooled) input and onehot(y) -> [batch].

    The paper's MNIST MLP(in = 784 + 10, hidden [16], out 1) with the Linear -> LeakyReLU ->
    LayerNorm block; onehot(y) @ W is an embedding lookup. Inputs with more than
    `max_input_features` values per example are average-pooled first: images [C, H, W] spatially to
    the largest s x s grid with C * s * s <= max_input_features (CIFAR: 3 x 18 x 18), other shapes
    (a wrapped model's tokens) along their flattened values. A documented simplification of the
    paper's small CNN for CIFAR: log Z only has to tell examples apart, and this keeps it small.
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, hidden: int = 16, max_input_features: int = 1024
    ) -> None:
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)
        total = math.prod(self.input_shape)
        self.grid: int | None = None  # spatial pooling size for images, None for no or 1-D pooling
        if total <= max_input_features:
            self.pooled_features = total
        elif len(self.input_shape) == 3 and self.input_shape[0] <= max_input_features:
            self.grid = max(1, math.isqrt(max_input_features // self.input_shape[0]))
            self.pooled_features = self.input_shape[0] * self.grid**2
        else:
            self.pooled_features = int(max_input_features)
        self.input_layer = nn.Linear(self.pooled_features, hidden)
        self.label_layer = nn.Embedding(num_classes, hidden)
        nn.init.uniform_(self.label_layer.weight, -1.0 / math.sqrt(num_classes), 1.0 / math.sqrt(num_classes))
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False)  # absorbed by `output`
        self.output = nn.Linear(hidden, 1)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        """log Z(x, y) [batch], in the parameters' dtype even under autocast: log Z is a sum of hundreds of
        log-probabilities, and bf16's 8-bit mantissa would round a value near 700 to a multiple of 4."""
        with torch.autocast(x.device.type, enabled=False):
            return self._log_z(x.to(self.input_layer.weight.dtype), labels)

    def _log_z(self, x: Tensor, labels: Tensor) -> Tensor:
        if self.grid is not None:
            flat = F.adaptive_avg_pool2d(x, self.grid).flatten(1)
        else:
            flat = x.flatten(1)
            if flat.shape[1] > self.pooled_features:
                flat = F.adaptive_avg_pool1d(flat.unsqueeze(1), self.pooled_features).squeeze(1)
        h = self.input_layer(flat) + self.label_layer(labels)
        return self.output(self.norm(F.leaky_relu(h, NEGATIVE_SLOPE))).squeeze(1)
