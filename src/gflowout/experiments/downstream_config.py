"""Typed configs of the downstream protocols: active learning (configs/active_mnist.yaml) and transfer from
noisy pre-training (configs/transfer_mnist.yaml).

Both start from a harness config (backbone, per-method options and optimisers; a path or an inline mapping,
as in a benchmark config), with `overrides`, and add the protocol's own keys. Every key is checked (unknown
keys name the closest valid one) and every budget is checked before anything trains.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gflowout.config_types import build_dataclass
from gflowout.errors import ConfigError
from gflowout.eval.acquisition import resolve_score
from gflowout.experiments.grid_check import check_method_names
from gflowout.experiments.grid_config import (
    GridConfig,
    RunSpec,
    check_grid_lists,
    check_required_keys,
    read_grid_yaml,
    run_harness_config,
)


@dataclass
class TrainingSettings:
    """One plain training: `steps` optimiser steps of `batch_size` examples (the same for every method)."""

    steps: int = 500
    batch_size: int = 64


@dataclass
class EvaluationSettings:
    """The test predictive: S = `samples` mask samples, `batch_size` rows per pass, and optionally only a
    fixed seeded subset of `test_limit` test images (the same subset for every run)."""

    samples: int = 20
    batch_size: int = 1000
    test_limit: int | None = None


@dataclass
class ActiveLearningSettings:
    """The pool-based loop: `initial_per_class` labelled examples per class, then `rounds` acquisitions of
    `acquire` examples each, scored with `samples` mask samples; the pool is a seeded random subset of
    `pool_size` training images (None: the whole training split)."""

    initial_per_class: int = 2
    acquire: int = 10
    rounds: int = 10
    samples: int = 20
    pool_size: int | None = None


@dataclass
class TransferSettings:
    """Pre-training on the training split with `noise_rate` symmetric label noise, then fine-tuning from those
    weights on clean seeded subsets of `subset_sizes` images; `scratch` also trains the same subsets from fresh
    weights (the reference that shows what pre-training bought)."""

    noise_rate: float = 0.3
    subset_sizes: list[int] = field(default_factory=lambda: [512, 1024, 2048, 4096, 8192])
    pretrain: TrainingSettings = field(default_factory=lambda: TrainingSettings(steps=2000, batch_size=128))
    finetune: TrainingSettings = field(default_factory=lambda: TrainingSettings(steps=500, batch_size=64))
    scratch: bool = True


@dataclass
class DownstreamConfig(GridConfig):
    """What both protocols share: the grid (`GridConfig`), the evaluation and the device."""

    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    device: str = "auto"
    budget: str = ""  # free text: the measured cost of this grid on the machine it was sized for
    source: Path | None = None

    def harness_config(self, dataset: str | None, method: str, seed: int, root: str | Path | None) -> Any:
        """The harness `ExperimentConfig` of one run (data set, method and seed set; data.root when given)."""
        return run_harness_config(self.config, self.overrides, RunSpec(dataset, method, seed), self.source, root)


@dataclass
class ActiveLearningConfig(DownstreamConfig):
    """A grid of data sets x methods x scores x seeds, each a pool-based active-learning run."""

    scores: list[str] = field(
        default_factory=lambda: ["entropy", "bald", "variation_ratio", "dempster_shafer", "random"]
    )
    training: TrainingSettings = field(default_factory=TrainingSettings)
    active: ActiveLearningSettings = field(default_factory=ActiveLearningSettings)


@dataclass
class TransferConfig(DownstreamConfig):
    """A grid of data sets x methods x seeds, each pre-trained on noisy labels and fine-tuned per subset size."""

    transfer: TransferSettings = field(default_factory=TransferSettings)


def _positive(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} must be a positive integer, found {value!r}")


def check_common(config: DownstreamConfig, where: str) -> None:
    """Grid lists non-empty and without repeats, method names known, evaluation budget positive."""
    check_grid_lists(config, where)
    check_method_names(config.methods, f"{where}: key 'methods'")
    for key in ("samples", "batch_size"):
        _positive(getattr(config.evaluation, key), f"{where}: evaluation.{key}")
    if config.evaluation.test_limit is not None:
        _positive(config.evaluation.test_limit, f"{where}: evaluation.test_limit")


def check_training(settings: TrainingSettings, where: str) -> None:
    _positive(settings.steps, f"{where}.steps")
    _positive(settings.batch_size, f"{where}.batch_size")


def check_active_learning(config: ActiveLearningConfig, where: str) -> None:
    """Every value the loop needs, before any training: scores known, budgets positive."""
    check_common(config, where)
    if not config.scores:
        raise ConfigError(f"{where}: key 'scores' must be a non-empty list")
    for name in config.scores:
        try:
            resolve_score(name)
        except ConfigError as error:
            raise ConfigError(f"{where}: key 'scores': {error}") from None
    check_training(config.training, f"{where}: training")
    active = config.active
    for key in ("initial_per_class", "acquire", "samples"):
        _positive(getattr(active, key), f"{where}: active.{key}")
    if isinstance(active.rounds, bool) or not isinstance(active.rounds, int) or active.rounds < 0:
        raise ConfigError(f"{where}: active.rounds must be an integer >= 0, found {active.rounds!r}")
    if active.pool_size is not None:
        _positive(active.pool_size, f"{where}: active.pool_size")


def check_pool_budget(active: ActiveLearningSettings, pool_size: int, num_classes: int, where: str) -> None:
    """The initial set plus every acquisition must fit in the pool (k larger than the pool is a ConfigError)."""
    needed = active.initial_per_class * num_classes + active.acquire * active.rounds
    if needed > pool_size:
        raise ConfigError(
            f"{where}: the pool has {pool_size} examples, but {active.initial_per_class} per class x {num_classes} "
            f"classes + {active.rounds} rounds x {active.acquire} acquired = {needed}; lower active.acquire or "
            "active.rounds, or raise active.pool_size"
        )


def check_transfer(config: TransferConfig, where: str) -> None:
    check_common(config, where)
    transfer = config.transfer
    if not 0.0 <= transfer.noise_rate <= 1.0:
        raise ConfigError(f"{where}: transfer.noise_rate must lie in [0, 1], found {transfer.noise_rate}")
    if not transfer.subset_sizes:
        raise ConfigError(f"{where}: transfer.subset_sizes must be a non-empty list of positive integers")
    for index, size in enumerate(transfer.subset_sizes):
        _positive(size, f"{where}: transfer.subset_sizes[{index}]")
    if len(set(transfer.subset_sizes)) != len(transfer.subset_sizes):
        raise ConfigError(f"{where}: transfer.subset_sizes lists a size twice: {transfer.subset_sizes}")
    check_training(transfer.pretrain, f"{where}: transfer.pretrain")
    check_training(transfer.finetune, f"{where}: transfer.finetune")


def _load(cls: type, path: str | Path) -> Any:
    path = Path(path)
    raw = read_grid_yaml(path, "config", "the shipped ones in configs/")
    check_required_keys(raw, path)
    config = build_dataclass(cls, raw, "")
    config.source = path
    return config


def load_active_learning_config(path: str | Path) -> ActiveLearningConfig:
    """Read and check an active-learning YAML (see configs/active_mnist.yaml)."""
    config = _load(ActiveLearningConfig, path)
    check_active_learning(config, str(path))
    return config


def load_transfer_config(path: str | Path) -> TransferConfig:
    """Read and check a transfer YAML (see configs/transfer_mnist.yaml)."""
    config = _load(TransferConfig, path)
    check_transfer(config, str(path))
    return config


def protocol_settings(config: DownstreamConfig, exclude: Sequence[str] = ()) -> dict[str, Any]:
    """The protocol's own settings as a plain dict (for digests): everything but the grid lists and the source."""
    skip = {"source", "methods", "seeds", "datasets", "scores", "config", "overrides", "device", "budget", *exclude}
    return {f.name: dataclasses.asdict(config)[f.name] for f in dataclasses.fields(config) if f.name not in skip}
