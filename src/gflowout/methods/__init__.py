"""Dropout methods on the shared mask-site seam, and the name -> class table of the command line."""

from __future__ import annotations

import importlib
from enum import Enum

from gflowout.methods.base import DropoutMethod, GroupSpec, StepResult


class MethodName(str, Enum):
    """The methods a config or the command line can name."""

    GFLOWOUT = "gflowout"
    ID_GFLOWOUT = "id_gflowout"
    MC_DROPOUT = "mc_dropout"
    CONCRETE = "concrete"
    CONTEXTUAL = "contextual"
    NONE = "none"
    ENSEMBLE = "ensemble"


# name -> "module:Class", imported on first use so that one method's import cost is paid only when used.
_TABLE: dict[MethodName, str] = {
    MethodName.GFLOWOUT: "gflowout.methods.gflowout:GFlowOut",
    MethodName.ID_GFLOWOUT: "gflowout.methods.id_gflowout:IDGFlowOut",
    MethodName.MC_DROPOUT: "gflowout.methods.mc:MCDropout",
    MethodName.CONCRETE: "gflowout.methods.concrete:ConcreteDropout",
    MethodName.CONTEXTUAL: "gflowout.methods.contextual:ContextualDropout",
    MethodName.NONE: "gflowout.methods.none:NoDropout",
    MethodName.ENSEMBLE: "gflowout.methods.ensemble:DeepEnsemble",
}


def method_class(name: str | MethodName) -> type[DropoutMethod]:
    """The class of a method by name; a ValueError lists the valid names."""
    try:
        key = MethodName(name)
    except ValueError:
        from gflowout.config_types import closest_match

        known = [m.value for m in MethodName]
        raise ValueError(f"unknown method {name!r}; choose one of {known}{closest_match(str(name), known)}") from None
    module_name, class_name = _TABLE[key].split(":")
    return getattr(importlib.import_module(module_name), class_name)


__all__ = ["DropoutMethod", "GroupSpec", "MethodName", "StepResult", "method_class"]
