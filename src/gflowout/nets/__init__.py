"""Backbones with mask sites."""

from gflowout.nets.base import MaskedNet
from gflowout.nets.mlp import MLP
from gflowout.nets.sites import MaskSampler, MaskSite, Site, apply_mask, site_features

__all__ = ["MLP", "MaskSampler", "MaskSite", "MaskedNet", "Site", "apply_mask", "site_features"]
