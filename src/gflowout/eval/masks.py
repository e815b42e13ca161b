"""Mask analysis: record the masks a method's prediction sampler applies, and measure their diversity.

Recording goes through the mask-site seam, not the backbone or the method: `MaskRecorder` puts read-only
forward hooks on a `MaskedNet`'s `MaskSite` modules, so whatever sampler is active (the one `predict`
builds, for every method) is observed, and the forward pass is unchanged (the hooks return nothing and
draw no random numbers). A site's hook sees the pre-mask activation h and the masked output o and records
the per-unit multiplier m = sum(o h) / sum(h h) over the dimensions a unit (or channel) spans, i.e. o / h
for a [batch, width] site. Each row is then brought to a mask in [0, 1]:

- a row whose non-zero multipliers are all equal (relative 1e-5) is a 0/1 mask times a scale (inverted
  dropout's 1 / keep, the MLP's width / kept): recorded as that 0/1 mask, exactly;
- any other row (Concrete's relaxed masks, Contextual's Gaussian masks) is divided by its largest |m|.

A unit whose activation is exactly zero in that pass has no observable multiplier: NaN, left out of
every distance (its count is reported as `undetermined`).

Diversity, per site (the paper's mask-analysis figures): the distance between two masks a, b of one
site is mean_u |a_u - b_u| over the units defined in both (Hamming distance / width for 0/1 masks).
Intra-sample diversity: the mean (and the max) over the S(S-1)/2 pairs of one input's S masks, averaged
over inputs. Inter-sample diversity: the same between inputs' mean masks (mean over S), averaged (and
maximised) over pairs of inputs. A deterministic method (none) has zero of both. Because mean masks
come from S samples, input-independent masks also have some inter-sample diversity; `shuffled_mean_masks`
measures that floor by mixing the samples of different inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from gflowout.nets.base import MaskedNet
from gflowout.nets.sites import MaskSite

BINARY_TOLERANCE = 1e-5


def unit_multipliers(site_kind: str, activation: Tensor, output: Tensor) -> Tensor:
    """Per-unit multiplier [batch, width] of output = activation * m (NaN where the activation is all zero).

    unit sites carry the units in the last dimension, channel sites in dimension 1; every other dimension
    (tokens, pixels) shares the unit's multiplier, so a least-squares ratio over them recovers it.
    """
    activation, output = activation.float(), output.float()
    if site_kind == "channel":
        activation, output = activation.movedim(1, -1), output.movedim(1, -1)
    activation = activation.reshape(activation.shape[0], -1, activation.shape[-1])
    output = output.reshape(output.shape[0], -1, output.shape[-1])
    energy = (activation * activation).sum(dim=1)
    ratio = (output * activation).sum(dim=1) / energy
    return torch.where(energy > 0, ratio, torch.full_like(ratio, float("nan")))


def masks_from_multipliers(multipliers: Tensor) -> Tensor:
    """[rows, width] multipliers -> masks in [0, 1] (0/1 for scaled binary rows; else m / max |m|), NaN kept."""
    known = multipliers.nan_to_num(0.0)
    largest = known.abs().amax(dim=1, keepdim=True)
    nonzero = known != 0
    spread = torch.where(nonzero, (known.abs() - largest).abs(), torch.zeros_like(known)).amax(dim=1, keepdim=True)
    binary = spread <= BINARY_TOLERANCE * largest
    scaled = torch.where(largest > 0, known / largest.clamp_min(torch.finfo(known.dtype).tiny), torch.zeros_like(known))
    masks = torch.where(binary, nonzero.to(known.dtype), scaled)
    return torch.where(multipliers.isnan(), multipliers, masks)


class MaskRecorder:
    """Collects the masks [rows, width] applied at every site of `net` while active (a context manager).

    `masks[site_index]` is the list of recorded masks of that site, one per forward pass. Nothing about the
    forward pass changes: hooks only read (see the module docstring).
    """

    def __init__(self, net: MaskedNet) -> None:
        if not isinstance(net, MaskedNet):
            raise TypeError(f"MaskRecorder needs a gflowout MaskedNet, got {type(net).__name__}")
        self.net = net
        self.masks: dict[int, list[Tensor]] = {site.index: [] for site in net.sites}
        self._handles: list = []
        self._inputs: dict[int, Tensor] = {}

    def _site_modules(self) -> list[MaskSite]:
        return [m for m in self.net.modules() if isinstance(m, MaskSite)]

    def __enter__(self) -> MaskRecorder:
        for module in self._site_modules():
            self._handles.append(module.register_forward_pre_hook(self._before))
            self._handles.append(module.register_forward_hook(self._after))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._inputs.clear()

    def _before(self, module: MaskSite, inputs: tuple[Tensor, ...]) -> None:
        # a copy: a sampler may write into buffers it reuses, never into the activation, but a copy costs little here
        self._inputs[module.site.index] = inputs[0].detach().clone()  # type: ignore[union-attr]  # not None here: set before use

    def _after(self, module: MaskSite, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        site = module.site
        activation = self._inputs.pop(site.index)  # type: ignore[union-attr]  # not None here: set before use
        if module.sampler is None:  # no sampler: the identity, every unit kept
            masks = torch.ones(activation.shape[0], site.width)  # type: ignore[union-attr]  # not None here: set before use
        else:
            masks = masks_from_multipliers(unit_multipliers(site.kind, activation, output.detach()))  # type: ignore[union-attr]  # not None here: set before use
        self.masks[site.index].append(masks.cpu())  # type: ignore[union-attr]  # not None here: set before use


@contextmanager
def recording(net: MaskedNet) -> Iterator[MaskRecorder]:
    """`with recording(method.net) as recorder: method.predict(x, S)`; then `recorder.masks`."""
    recorder = MaskRecorder(net)
    with recorder:
        yield recorder


def sample_major(masks: Tensor, samples: int, batch: int) -> Tensor:
    """The rows recorded in one `predict(x[batch], samples)` pass -> [S, batch, width].

    S * batch rows are sample-major copies (row s * batch + i is sample s of input i); batch rows come from
    a method that runs one deterministic pass and repeats it (none), so its one mask stands for all S.
    """
    rows, width = masks.shape
    if rows == samples * batch:
        return masks.reshape(samples, batch, width)
    if rows == batch:
        return masks.unsqueeze(0).expand(samples, batch, width)
    raise ValueError(f"{rows} recorded rows are neither {samples} x {batch} sample-major rows nor {batch}")


def _pair_distance(a: Tensor, b: Tensor) -> Tensor:
    """mean_u |a_u - b_u| over units defined (not NaN) in both, along the last dim; NaN if none is."""
    difference = (a - b).abs()
    valid = ~difference.isnan()
    return difference.nan_to_num(0.0).sum(dim=-1) / valid.sum(dim=-1)


@dataclass(frozen=True)
class Diversity:
    """Mean and max of a pairwise mask distance (see the module docstring), in [0, 1] for [0, 1] masks."""

    mean: float
    max: float


def intra_sample_distances(masks: Tensor) -> tuple[Tensor, Tensor]:
    """Per input, the (mean, max) distance over the pairs of its S masks: masks [S, batch, width] -> two [batch]."""
    samples = masks.shape[0]
    if samples < 2:
        raise ValueError("intra-sample diversity needs at least 2 mask samples per input")
    total = torch.zeros(masks.shape[1], dtype=torch.float64)
    largest = torch.zeros(masks.shape[1], dtype=torch.float64)
    for i in range(samples):
        for j in range(i + 1, samples):
            distance = _pair_distance(masks[i], masks[j]).double().nan_to_num(0.0)
            total += distance
            largest = torch.maximum(largest, distance)
    return total / (samples * (samples - 1) / 2), largest


def intra_sample_diversity(masks: Tensor) -> Diversity:
    """Intra-sample diversity of masks [S, batch, width].

    The per-input mean and max pair distance, averaged over inputs.
    """
    mean, largest = intra_sample_distances(masks)
    return Diversity(float(mean.mean()), float(largest.mean()))


def mean_masks(masks: Tensor) -> Tensor:
    """Each input's mean mask over its S samples: [S, batch, width] -> [batch, width] (NaN samples left out)."""
    return masks.nanmean(dim=0)


def shuffled_mean_masks(masks: Tensor, generator: torch.Generator) -> Tensor:
    """Mean masks [batch, width] of pseudo-inputs whose S masks are drawn from S different random inputs.

    Each sample s is permuted independently along the batch, which keeps the masks' distribution over the
    batch and removes any dependence on the input. The inter-sample diversity of these means is the floor
    that S-sample noise alone produces; a method's inter-sample diversity above it is input dependence.
    """
    samples, batch, _ = masks.shape
    picks = torch.stack([torch.randperm(batch, generator=generator) for _ in range(samples)])  # [S, batch]
    return torch.gather(masks, 1, picks.unsqueeze(-1).expand_as(masks)).nanmean(dim=0)


def inter_sample_diversity(input_means: Tensor) -> Diversity:
    """Inter-sample diversity of inputs' mean masks [batch, width]: mean and max distance over the pairs of inputs."""
    rows = input_means.shape[0]
    if rows < 2:
        raise ValueError("inter-sample diversity needs at least 2 inputs")
    means = input_means.double()
    width = means.shape[1]
    if not means.isnan().any():  # every unit defined: cdist's L1 distance / width, fast
        distances = torch.cdist(means.unsqueeze(0), means.unsqueeze(0), p=1.0)[0] / width
        upper = distances[torch.triu_indices(rows, rows, offset=1).unbind()]
    else:
        upper = torch.cat([_pair_distance(means[i], means[i + 1 :]) for i in range(rows - 1)])
        upper = upper[~upper.isnan()]
    return Diversity(float(upper.mean()), float(upper.max()))


def class_mean_masks(input_means: Tensor, labels: Tensor, classes: int) -> Tensor:
    """Mean mask per class [classes, width] from inputs' mean masks [batch, width] (NaN for a class without inputs)."""
    out = torch.full((classes, input_means.shape[1]), float("nan"), dtype=torch.float64)
    for c in range(classes):
        chosen = input_means[labels == c]
        if chosen.shape[0]:
            out[c] = chosen.double().nanmean(dim=0)
    return out
