"""What a benchmark grid is: its YAML config (`load_benchmark_config`), the evaluation settings of every run, and
the harness config of one run (`run_config`).

A benchmark config (YAML, see configs/bench_mnist.yaml):

    config: configs/mnist_mlp.yaml      # the harness config every run starts from (a path relative to the
                                        # cwd or this file, or the config itself as an inline mapping)
    overrides: [trainer.max_epochs=200] # `key.path=value` overrides for every run (as `gflowout train --set`)
    trainer_overrides: {limit_test_batches: 4}   # extra Lightning Trainer arguments for `fit` (optional)
    datasets: [mnist]                   # sets data.name per run; omit to keep the config's
    methods: [gflowout, mc_dropout]     # method names (gflowout.methods.MethodName)
    seeds: [1, 2, 3, 4, 5]
    evaluation: {samples: 20, shifts: null, severities: [1, 2, 3, 4, 5], rotation_angles: [0, 90, 180],
                 random_rotation: true, ood_sets: null, limit: null, batch_size: 256,
                 published_corruptions: null, temperature_scaling: true, conformal_alpha: 0.1,
                 conformal_scores: [lac, aps, aps_randomized], conformal_raps_lambda: 0.01, conformal_raps_k_reg: 5}
    # published_corruptions (CIFAR-10 / CIFAR-100 runs): also evaluate on the PUBLISHED CIFAR-10-C /
    # CIFAR-100-C files when they are under the data root: "all", a list of corruptions (each at
    # `severities`) or {corruption: [severities 1-5]}. Reported apart from our CIFAR-10-C-style
    # `shifts`; missing files are skipped with a line naming `gflowout data fetch cifar10-c --from FILE`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gflowout.config_types import closest_match
from gflowout.errors import ConfigError
from gflowout.experiments.grid_check import check_method_names
from gflowout.experiments.grid_config import (
    GridConfig,
    RunSpec,
    check_grid_lists,
    check_required_keys,
    harness_config_path,
    read_grid_yaml,
    run_harness_config,
)


@dataclass
class EvaluationSettings:
    """Keyword arguments of `gflowout.eval.evaluate.evaluate_method` (None = its default)."""

    samples: int = 20
    shifts: list[str] | dict[str, list[int]] | None = None
    severities: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    rotation_angles: list[float] = field(default_factory=lambda: list(range(0, 181, 15)))
    random_rotation: bool = True
    ood_sets: list[str] | None = None
    limit: int | None = None
    batch_size: int = 256
    published_corruptions: str | list[str] | dict[str, list[int]] | None = None  # "all", names or {name: severities}
    # fit a temperature on the run's validation split (the first `limit` rows of a fixed shuffle when limit is set)
    # and report every condition also with it: rows "METHOD + TS" (Guo et al. 2017)
    temperature_scaling: bool = True
    # split-conformal prediction sets calibrated on the validation split (gflowout.eval.conformal): coverage and mean
    # set size in every condition, for every row (+ TS too); null alpha for none
    conformal_alpha: float | None = 0.1
    conformal_scores: list[str] = field(default_factory=lambda: ["lac", "aps", "aps_randomized"])
    conformal_raps_lambda: float = 0.01
    conformal_raps_k_reg: int = 5


@dataclass
class BenchmarkConfig(GridConfig):
    """A grid of runs (`GridConfig`): extra Lightning Trainer arguments, and how to evaluate each run."""

    trainer_overrides: dict[str, Any] = field(default_factory=dict)  # extra lightning Trainer kwargs for fit
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    source: Path | None = None  # the YAML file it came from

    def runs(self) -> list[RunSpec]:
        """Every run, seed-major: each data set's first seed of every method, then the second, ...; so a grid
        stopped part-way has compared all methods on the same seeds."""
        datasets = self.datasets or [None]  # type: ignore[list-item]  # None: the config's own data set
        return [RunSpec(d, m, s) for d in datasets for s in self.seeds for m in self.methods]

    def config_path(self) -> Path:
        assert isinstance(self.config, str)
        return harness_config_path(self.config, self.source)


def load_benchmark_config(path: str | Path) -> BenchmarkConfig:
    """Read and validate a benchmark YAML file; unknown keys and bad types raise ConfigError."""
    path = Path(path)
    raw = read_grid_yaml(path, "benchmark config", "configs/bench_mnist.yaml")
    valid = {f.name for f in dataclasses.fields(BenchmarkConfig)} - {"source"}
    unknown = set(raw) - valid
    if unknown:
        first = sorted(unknown)[0]
        raise ConfigError(
            f"{path}: unknown benchmark key(s) {sorted(unknown)}; valid keys: {sorted(valid)}"
            f"{closest_match(str(first), sorted(valid))}"
        )
    check_required_keys(raw, path, "benchmark key")
    evaluation = raw.pop("evaluation", None) or {}
    valid_eval = sorted(f.name for f in dataclasses.fields(EvaluationSettings))
    if not isinstance(evaluation, dict):
        raise ConfigError(f"{path}: 'evaluation' must be a mapping with keys among {valid_eval}")
    for key in evaluation:
        if key not in valid_eval:
            raise ConfigError(
                f"{path}: unknown key 'evaluation.{key}'; valid keys: {valid_eval}{closest_match(str(key), valid_eval)}"
            )
    for key, kind in (("methods", str), ("seeds", int)):
        if not isinstance(raw[key], list) or not raw[key] or not all(isinstance(v, kind) for v in raw[key]):
            raise ConfigError(
                f"{path}: benchmark key {key!r} must be a non-empty list of {kind.__name__}, found {raw[key]!r}"
            )
    datasets = raw.get("datasets")
    if datasets is not None and (not isinstance(datasets, list) or not all(isinstance(v, str) for v in datasets)):
        raise ConfigError(
            f"{path}: benchmark key 'datasets' must be a list of data set names (or left out), found {datasets!r}"
        )
    if not isinstance(raw["config"], (str, dict)):
        raise ConfigError(f"{path}: benchmark key 'config' must be a harness config path or an inline mapping")
    if not isinstance(raw.get("trainer_overrides", {}), dict):
        raise ConfigError(f"{path}: 'trainer_overrides' must be a mapping of Lightning Trainer arguments")
    if not isinstance(raw.get("overrides", []), list):
        raise ConfigError(f"{path}: 'overrides' must be a list of key.path=value strings")
    _check_published(evaluation.get("published_corruptions"), path)
    _check_conformal(evaluation, path)
    check_method_names(raw["methods"], f"{path}: benchmark key 'methods'")
    bench = BenchmarkConfig(**raw, evaluation=EvaluationSettings(**evaluation), source=path)
    check_grid_lists(bench, str(path), "benchmark key")
    return bench


def _check_conformal(evaluation: dict[str, Any], path: Path) -> None:
    """Check the conformal settings before any training (`gflowout.eval.conformal.settings_problems`)."""
    from gflowout.eval.conformal import settings_problems

    defaults = EvaluationSettings()
    problems = settings_problems(
        *(
            evaluation.get(f"conformal_{key}", getattr(defaults, f"conformal_{key}"))
            for key in ("alpha", "scores", "raps_lambda", "raps_k_reg")
        )
    )
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(f"evaluation.{problem}" for problem in problems))


def _check_published(request: Any, path: Path) -> None:
    """Check evaluation.published_corruptions before any training: None, "all", names or {name: severities}."""
    if request is None or request == "all":
        return
    from gflowout.data.sources import CORRUPTIONS

    names = list(request) if isinstance(request, (list, dict)) else None
    levels = (
        [v for vs in request.values() for v in (vs if isinstance(vs, list) else [vs])]
        if isinstance(request, dict)
        else []
    )
    if (
        names is None
        or not all(isinstance(n, str) and n in CORRUPTIONS for n in names)
        or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5 for v in levels)
        or isinstance(request, dict)
        and not all(isinstance(vs, list) for vs in request.values())
    ):
        raise ConfigError(
            f"{path}: evaluation.published_corruptions must be null, 'all', a list of corruptions or "
            f"{{corruption: [severities 1-5]}} with corruptions among {', '.join(CORRUPTIONS)}; "
            f"found {request!r}"
        )


def run_config(bench: BenchmarkConfig, spec: RunSpec, root: str | Path | None = None) -> Any:
    """The harness `ExperimentConfig` of one run: the base config, the overrides, data set, method and seed."""
    return run_harness_config(bench.config, bench.overrides, spec, bench.source, root)
