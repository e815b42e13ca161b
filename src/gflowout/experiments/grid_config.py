"""What the grid configs share (benchmark, active learning, transfer): reading their YAML, the harness config of
one run of the grid, and the shards that let several workers share one output folder."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gflowout.errors import ConfigError

REQUIRED_KEYS = ("config", "methods", "seeds")


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid (dataset None = the harness config's data set)."""

    dataset: str | None
    method: str
    seed: int


@dataclass
class GridConfig:
    """What every grid config holds: the harness config (a path or an inline mapping) with its `overrides`, and the
    grid itself, data sets (None: the harness config's own) x methods x seeds."""

    config: str | dict[str, Any]
    methods: list[str]
    seeds: list[int]
    datasets: list[str] | None = None
    overrides: list[str] = field(default_factory=list)


def check_grid_lists(config: GridConfig, where: str, key_name: str = "key") -> None:
    """A ConfigError for an empty methods / seeds / datasets list or one that names a value twice (a run listed
    twice would be trained twice, by two shards at once); `key_name`: how the error calls a key."""
    for key in ("methods", "seeds"):
        if not getattr(config, key):
            raise ConfigError(f"{where}: {key_name} {key!r} must be a non-empty list")
    if config.datasets is not None and not config.datasets:
        raise ConfigError(
            f"{where}: {key_name} 'datasets' must be a non-empty list (or left out for the config's data set)"
        )
    for key in ("methods", "seeds", "datasets"):
        values = list(getattr(config, key) or [])
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        if repeated:
            raise ConfigError(
                f"{where}: {key_name} {key!r} lists {', '.join(repeated)} more than once ({values}); name each once"
            )


def read_grid_yaml(path: str | Path, what: str, example: str) -> dict[str, Any]:
    """The top-level mapping of a grid YAML, with its required keys (config, methods, seeds) present.

    Args:
        path: the YAML file.
        what: how errors name the file and its keys, e.g. "benchmark config".
        example: a shipped config the missing-file error points to.

    Returns:
        The raw mapping (keys and types are checked by the caller's dataclass).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist; see {example}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {str(path)!r} must hold a mapping at the top")
    if "source" in raw:
        raise ConfigError(f"{path}: 'source' is not a config key (it is set to the file the config came from)")
    return raw


def check_required_keys(raw: dict[str, Any], path: str | Path, key_name: str = "key") -> None:
    """A ConfigError naming the first of config / methods / seeds that `raw` lacks (`key_name`: how the error
    calls a key, e.g. "benchmark key")."""
    for key in REQUIRED_KEYS:
        if key not in raw:
            raise ConfigError(f"{path}: {key_name} {key!r} is required")


def harness_config_path(config: str, source: Path | None) -> Path:
    """The harness config file a grid names: as given (relative to the cwd), else next to the grid's own file."""
    path = Path(config)
    if not path.is_absolute() and not path.exists() and source is not None:
        path = source.parent / path
    if not path.is_file():
        raise ConfigError(
            f"grid key 'config': harness config {config!r} not found "
            f"(looked in the current folder and next to {source})"
        )
    return path


def run_harness_config(
    config: str | dict[str, Any],
    overrides: Sequence[str],
    spec: RunSpec,
    source: Path | None,
    root: str | Path | None = None,
) -> Any:
    """The harness `ExperimentConfig` of one run: the base config (a path or an inline mapping), the grid's
    overrides, then the run's data set, method and seed (and data.root when `root` is given)."""
    from gflowout.config import apply_override, config_from_dict, load_config

    items = list(overrides) + ([f"data.name={spec.dataset}"] if spec.dataset else [])
    if root is not None:
        items.append(f"data.root={root}")
    if isinstance(config, str):
        return load_config(harness_config_path(config, source), items, method=spec.method, seed=spec.seed)
    raw = copy.deepcopy(config)
    for item in items:
        apply_override(raw, item)
    raw.setdefault("method", {})["name"] = spec.method
    raw["seed"] = spec.seed
    return config_from_dict(raw)


def shard_runs(items: Sequence[Any], index: int, count: int) -> list[Any]:
    """The items of shard `index` of `count` (1-based): every count-th item from position index - 1."""
    if not (isinstance(index, int) and isinstance(count, int) and 1 <= index <= count):
        raise ConfigError(f"shard {index}/{count}: the shard must be I/N with 1 <= I <= N")
    return list(items[index - 1 :: count])
