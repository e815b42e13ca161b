"""Backbones with mask sites."""

from gflowout.nets.base import MaskedNet
from gflowout.nets.mlp import MLP
from gflowout.nets.resnet import CifarResNet18
from gflowout.nets.sites import MaskSampler, MaskSite, Site, apply_mask, site_features
from gflowout.nets.wrap import wrap

__all__ = [
    "CifarResNet18",
    "MLP",
    "MaskSampler",
    "MaskSite",
    "MaskedNet",
    "Site",
    "apply_mask",
    "site_features",
    "wrap",
]
