"""What in a config changes a run's numbers, and what does not: the keys that only change where a run executes
(HARDWARE_KEYS), keys at the neutral value of a setting added after runs were recorded (NEUTRAL_VALUES), and the
flattened, comparable form of a config (`comparable`). Shared by resumes and result digests
(`gflowout.training.resume`) and by reports that compare runs (`gflowout.eval.report_ablation`), so it sits below
both layers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["HARDWARE_KEYS", "NEUTRAL_VALUES", "comparable", "flatten"]

# dotted config keys that change where a run executes and how often it saves and logs, never its numbers
HARDWARE_KEYS = (
    "trainer.devices",
    "trainer.accelerator",
    "trainer.strategy",
    "trainer.num_nodes",
    "trainer.checkpoint_every_n_steps",
    "trainer.log_every_n_steps",
    "trainer.enable_progress_bar",
    "data.root",
    "data.num_workers",
    "diagnostics.enabled",
    "diagnostics.batch_size",
    "diagnostics.residual_threshold",  # logging only
)
# keys added after runs were recorded, with the value that reproduces the behaviour from before they existed:
# at that value a key is left out of comparisons and digests, so older runs and results stay valid. Keys of a
# digest part other than the config are named "<part>.<key>" (the evaluation settings: "evaluation.<key>").
# evaluation.temperature_scaling only adds sections ("temperature_scaling", "ts") to a result: none of the others
# changes, so results made before it existed stay valid (a rerun without --out of a fresh folder keeps them)
# evaluation.conformal_* likewise only add the "conformal" sections (at their defaults: other settings are other
# numbers)
NEUTRAL_VALUES: dict[str, Any] = {
    "trainer.val_every_n_epochs": 1,
    "evaluation.temperature_scaling": True,
    "evaluation.conformal_alpha": 0.1,
    "evaluation.conformal_scores": ["lac", "aps", "aps_randomized"],
    "evaluation.conformal_raps_lambda": 0.01,
    "evaluation.conformal_raps_k_reg": 5,
    "diagnostics.enabled": True,
    "diagnostics.batch_size": 256,
    "diagnostics.residual_threshold": 100.0,
}


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; empty mappings stay as values."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _optim_defaults() -> dict[str, Any]:
    """Flattened defaults of one optimiser-group block (`optim.<group>`): a block that sets only `lr` says
    nothing about its schedule, so its default schedule keys are no difference from an absent block."""
    import dataclasses

    from gflowout.config import GroupOptimConfig

    return flatten(dataclasses.asdict(GroupOptimConfig()))


def _is_default_optim_key(key: str, value: Any, defaults: Mapping[str, Any]) -> bool:
    parts = key.split(".")
    for start in range(len(parts)):  # optim.<group>.<rest> or methods.<m>.optim.<group>.<rest>
        if parts[start] == "optim" and len(parts) > start + 2:
            rest = ".".join(parts[start + 2 :])
            return rest in defaults and defaults[rest] == value
    return False


def comparable(config: Mapping[str, Any], optim_defaults: bool = False, part: str | None = None) -> dict[str, Any]:
    """The flattened config as compared and digested: no empty mappings (an absent block and `{}` are the
    same settings) and no key at its `NEUTRAL_VALUES` value (looked up as "<part>.<key>" for a named part, e.g.
    "evaluation"). optim_defaults: also drop optimiser-group keys at their defaults (see `_optim_defaults`), for
    listing a resume's real differences; digests keep them, so that digests of recorded results never change."""
    defaults = _optim_defaults() if optim_defaults else {}

    def neutral(key: str, value: Any) -> bool:
        name = f"{part}.{key}" if part else key
        return name in NEUTRAL_VALUES and value == NEUTRAL_VALUES[name]

    return {
        key: value
        for key, value in flatten(config).items()
        if value != {}
        and not neutral(key, value)
        and not (optim_defaults and _is_default_optim_key(key, value, defaults))
    }
