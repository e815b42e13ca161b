"""What a resumed run may change: the hardware and the length of the run, nothing that changes the maths.

`gflowout train --resume` continues from checkpoints/last.ckpt with the config given on the command line.
A changed seed, batch size, learning rate, model or method option would be applied in part (the
optimiser's state keeps its learning rate, the data order changes mid-epoch), while config.yaml would
claim all of it; so such changes are refused, naming the keys, before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gflowout.errors import ConfigError

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
# a resume may also change how long the run goes on
RESUMABLE_KEYS = ("trainer.max_epochs", "trainer.max_steps", *HARDWARE_KEYS)
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


def check_resume_config(saved: Mapping[str, Any], requested: Mapping[str, Any], source: str) -> None:
    """A ConfigError listing every key (other than `RESUMABLE_KEYS`) whose value differs from the run's own
    (an absent key reads as null)."""
    before, after = comparable(saved, optim_defaults=True), comparable(requested, optim_defaults=True)
    changed = sorted(
        key for key in before.keys() | after.keys() if before.get(key) != after.get(key) and key not in RESUMABLE_KEYS
    )
    if changed:
        listed = "; ".join(f"{key}: {before.get(key)!r} -> {after.get(key)!r}" for key in changed)
        raise ConfigError(
            f"--resume of {source!r} with a different config: {listed}. A resumed run keeps its config (use the "
            f"command that started it); only {', '.join(RESUMABLE_KEYS)} may change. To change the others, start "
            "a new run folder (--out)"
        )


def settings_digest(**parts: Mapping[str, Any]) -> str:
    """sha256 of JSON mappings (a run's config without `HARDWARE_KEYS`, evaluation settings, ...): equal digests,
    equal numbers-relevant settings. Used to tell a finished run made with other settings from a current one."""
    import hashlib
    import json

    plain = {
        name: {
            k: v for k, v in comparable(part, part=None if name == "config" else name).items() if k not in HARDWARE_KEYS
        }
        for name, part in parts.items()
    }
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()
