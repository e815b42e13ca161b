"""What a resumed run may change: the hardware and the length of the run, nothing that changes the maths.

`gflowout train --resume` continues from checkpoints/last.ckpt with the config given on the command line.
A changed seed, batch size, learning rate, model or method option would be applied in part (the
optimiser's state keeps its learning rate, the data order changes mid-epoch), while config.yaml would
claim all of it; so such changes are refused, naming the keys, before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gflowout.config_compare import HARDWARE_KEYS, NEUTRAL_VALUES, comparable, flatten
from gflowout.errors import ConfigError

__all__ = [
    "HARDWARE_KEYS",
    "NEUTRAL_VALUES",
    "RESUMABLE_KEYS",
    "check_resume_config",
    "comparable",
    "flatten",
    "settings_digest",
]

# a resume may also change how long the run goes on
RESUMABLE_KEYS = ("trainer.max_epochs", "trainer.max_steps", *HARDWARE_KEYS)


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
