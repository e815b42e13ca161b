"""Mask sites: the one seam between backbones and dropout methods.

A backbone places `MaskSite` modules where masks go. During a forward pass each site hands its
pre-mask activation to the active `MaskSampler`, which returns the masked activation. A method
supplies the sampler; a backbone never knows which method runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor, nn

SiteKind = Literal["unit", "channel"]


@dataclass(frozen=True)
class Site:
    """One place where a mask is applied.

    index: position in forward order (0-based); sites are visited in increasing index.
    name: the module path of the site inside the backbone.
    width: number of maskable units (unit sites) or channels (channel sites).
    kind: "unit" masks the last dimension of [batch, ..., width];
          "channel" masks dimension 1 of [batch, width, ...] (conv feature maps).
    rescale: whether binary masks rescale the kept units by width / number kept (the paper's MLP).
    """

    index: int
    name: str
    width: int
    kind: SiteKind
    rescale: bool = False


class MaskSampler(Protocol):
    """Called once per site during a forward pass: returns the masked activation (same shape)."""

    def __call__(self, site: Site, activation: Tensor) -> Tensor: ...


def site_features(site: Site, activation: Tensor) -> Tensor:
    """Summarise a site's activation as [batch, width] (mean over token or spatial dimensions).

    Mask generators see this summary: for conv sites it is global average pooling per channel.
    """
    if site.kind == "unit":
        return activation if activation.dim() == 2 else activation.flatten(1, -2).mean(dim=1)
    return activation if activation.dim() == 2 else activation.flatten(2).mean(dim=2)


def broadcast_mask(site: Site, mask: Tensor, activation: Tensor) -> Tensor:
    """Reshape a [batch, width] mask so that it broadcasts against the site's activation."""
    if site.kind == "unit":
        shape = (mask.shape[0],) + (1,) * (activation.dim() - 2) + (mask.shape[1],)
    else:
        shape = tuple(mask.shape) + (1,) * (activation.dim() - 2)
    return mask.reshape(shape)


def apply_mask(site: Site, activation: Tensor, mask: Tensor, scale: Tensor | float | None = None) -> Tensor:
    """Multiply an activation by a [batch, width] mask.

    scale: an explicit multiplier ([batch] tensor or float). When None and the site rescales,
    binary masks are rescaled by width / (number kept + 1e-6) per example (MLP_GFN's rule), so the
    expected size of the layer's output stays roughly the same whatever the keep rate.
    """
    if mask.shape != (activation.shape[0], site.width):
        raise ValueError(
            f"mask for site {site.name!r} has shape {tuple(mask.shape)}, expected ({activation.shape[0]}, {site.width})"
        )
    mask = mask.to(activation.dtype)
    if scale is None and site.rescale:
        scale = rescale_factor(site, mask)
    if isinstance(scale, Tensor):
        mask = mask * scale.reshape(-1, 1)
    elif scale is not None:
        mask = mask * scale
    return activation * broadcast_mask(site, mask, activation)


def apply_binary_mask_(site: Site, activation: Tensor, mask: Tensor) -> Tensor:
    """`apply_mask(site, activation, mask)` for a 0/1 mask [batch, width] that the caller no longer needs:
    the site's rescaling is written into the mask, one [batch, width] temporary fewer. Same values:
    kept units get activation * scale, dropped ones activation * 0, as with apply_mask. The count and
    scale are taken in the mask's dtype (float32 keep logits under bf16 autocast: an exact count)."""
    if site.rescale:
        mask.mul_(rescale_factor(site, mask).unsqueeze(1))
    return activation * broadcast_mask(site, mask.to(activation.dtype), activation)


def rescale_factor(site: Site, mask: Tensor) -> Tensor:
    """width / (number kept + 1e-6) per example [batch] for a 0/1 mask [batch, width] (MLP_GFN's rule)."""
    return site.width / (mask.sum(dim=1) + 1e-6)


class MaskSite(nn.Module):
    """A placeholder module where a mask is applied; the identity when no sampler is active."""

    def __init__(self, width: int, kind: SiteKind = "unit", rescale: bool = False) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"a mask site needs width >= 1, got {width}")
        if kind not in ("unit", "channel"):
            raise ValueError(f"mask site kind must be 'unit' or 'channel', got {kind!r}")
        self.width = width
        self.kind: SiteKind = kind
        self.rescale = rescale
        self.site: Site | None = None  # set by MaskedNet when it registers its sites
        self.sampler: MaskSampler | None = None  # set by MaskedNet for one forward pass

    def forward(self, activation: Tensor) -> Tensor:
        if self.sampler is None:
            return activation
        assert self.site is not None, "MaskSite used outside a MaskedNet"
        dim = -1 if self.kind == "unit" else 1
        if activation.dim() < 2 or activation.shape[dim] != self.width:
            raise ValueError(
                f"activation at site {self.site.name!r} has shape {tuple(activation.shape)}; "
                f"expected width {self.width} in dimension {dim} ({self.kind} site)"
            )
        return self.sampler(self.site, activation)

    def extra_repr(self) -> str:
        return f"width={self.width}, kind={self.kind}, rescale={self.rescale}"


def ones_sampler(site: Site, activation: Tensor) -> Tensor:
    """The sampler of 'no dropout': every unit kept, no rescaling."""
    return activation


def full_masks(batch: int, sites: tuple[Site, ...], device: torch.device | None = None) -> list[Tensor]:
    """All-ones masks for every site: a convenience for tests and the 'none' method."""
    return [torch.ones(batch, s.width, device=device) for s in sites]
