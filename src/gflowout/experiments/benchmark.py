"""The benchmark runner: a grid of data sets x methods x seeds, trained, evaluated, reported.

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

Layout of the output folder: runs/<run id>/ (the harness's run folder: config, checkpoints),
results/<run id>.json (one result file per run, written atomically) and report/ (tables, figures,
HTML). Each run is a pure function of its files: a run with a result file is skipped, a run whose
training finished (marker `runs/<run id>/trained.json`) is only evaluated, and an interrupted
training resumes from its last checkpoint. So a killed benchmark rerun with the same command
finishes the remaining runs only. (A resumed training's `train_time_s` counts the last session only.)
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gflowout.config_types import closest_match
from gflowout.errors import ConfigError, GFlowOutError
from gflowout.experiments.grid_check import check_grid, check_method_names
from gflowout.experiments.grid_config import (
    RunSpec,
    check_required_keys,
    harness_config_path,
    read_grid_yaml,
    run_harness_config,
    shard_runs,
)
from gflowout.results import read_result, run_id, write_json_atomic
from gflowout.training.resume import settings_digest

TRAINED_MARKER = "trained.json"


class BenchmarkError(GFlowOutError):
    """Some runs of a benchmark grid failed (with --keep-going); the message lists them."""


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
class BenchmarkConfig:
    """A grid of runs: one harness config, per-run overrides, and how to evaluate each run."""

    config: str | dict[str, Any]
    methods: list[str]
    seeds: list[int]
    datasets: list[str] | None = None
    overrides: list[str] = field(default_factory=list)
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
        raise ConfigError(f"{path}: unknown benchmark key(s) {sorted(unknown)}; valid keys: {sorted(valid)}")
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
    if not isinstance(raw["config"], (str, dict)):
        raise ConfigError(f"{path}: benchmark key 'config' must be a harness config path or an inline mapping")
    if not isinstance(raw.get("trainer_overrides", {}), dict):
        raise ConfigError(f"{path}: 'trainer_overrides' must be a mapping of Lightning Trainer arguments")
    if not isinstance(raw.get("overrides", []), list):
        raise ConfigError(f"{path}: 'overrides' must be a list of key.path=value strings")
    _check_published(evaluation.get("published_corruptions"), path)
    _check_conformal(evaluation, path)
    check_method_names(raw["methods"], f"{path}: benchmark key 'methods'")
    return BenchmarkConfig(**raw, evaluation=EvaluationSettings(**evaluation), source=path)


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


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads: `threads`, or by default 1 on a machine with <= 2 cores and
    cores - 1 above. On 2 shared cores, 2 threads per process oversubscribe the CPU as soon as anything
    else runs; idle, 1 thread costs little because the per-step work is many small operations
    (measurements: benchmarks/README.md, "Threads")."""
    import os

    import torch

    if threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = 1 if cores <= 2 else min(torch.get_num_threads(), cores - 1)
    torch.set_num_threads(max(1, int(threads)))
    return torch.get_num_threads()


def quiet_lightning() -> None:
    """Hide Lightning's start-up chatter (tips, device lines) so progress lines stay readable."""
    import logging
    import warnings

    import lightning.pytorch  # noqa: F401  (it sets its loggers to INFO on import: import first, then quieten)

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*weights_only.*")


def _format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    return (
        f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def run_benchmark(
    bench: BenchmarkConfig,
    out_dir: str | Path,
    root: str | Path | None = None,
    log: Callable[[str], None] = print,
    report: bool = True,
    trainer_overrides: dict[str, Any] | None = None,
    progress: Callable[[str, str], None] | None = None,
    keep_going: bool = False,
    shard: tuple[int, int] = (1, 1),
) -> list[Path]:
    """Train, evaluate and record every run of the grid that has no result file yet; then write the report.

    Returns the result files of all runs of the grid. `trainer_overrides` go to `gflowout.train.fit`.
    keep_going: a run that fails with a gflowout error (a diverged loss, missing data) is logged and
    skipped; the others go on, the report covers the finished ones, and a BenchmarkError listing the
    failed runs is raised at the end. Without it the first failure stops the grid.
    progress: called as progress(run id, stage) when a stage starts ("training", each evaluation
    condition, "done"), for progress bars.
    shard: (i, n), 1 <= i <= n: run only the runs at positions i-1, i-1+n, i-1+2n, ... of the grid, so n
    workers (a SLURM array, two processes on one machine) share one output folder; each run has its own run
    folder and result file. The report is written by whichever worker finds the whole grid finished.
    """
    out_dir = Path(out_dir)
    all_specs = bench.runs()
    all_configs = [run_config(bench, spec, root) for spec in all_specs]
    check_grid(bench, all_configs, root, log)  # the whole grid, before any training (a typo costs a second)
    shard_index, shard_count = shard
    specs = shard_runs(all_specs, shard_index, shard_count)
    configs = shard_runs(all_configs, shard_index, shard_count)
    done_paths: list[Path] = []
    session_times: list[float] = []
    failures: dict[str, str] = {}
    for index, (spec, config) in enumerate(zip(specs, configs)):
        identity = run_id(config.data.name, spec.method, spec.seed)
        result_path = out_dir / "results" / f"{identity}.json"
        remaining = len(specs) - index
        if result_path.is_file():
            existing = read_result(result_path)  # a corrupt file stops here with its name, not later in the report
            if existing.get("settings_digest") != run_digest(config, bench.evaluation):
                raise BenchmarkError(
                    f"{result_path} was made with other settings than this benchmark's (its config, training length or "
                    "evaluation differ, or an older gflowout wrote it); a report would mix them. Use another --out, or "
                    f"delete that file (and {out_dir / 'runs' / identity} to retrain) to redo the run"
                )
            done_paths.append(result_path)
            log(f"[{index + 1}/{len(specs)}] {identity}: done earlier, skipped")
            if progress:
                progress(identity, "done")
            continue
        eta = f", ETA {_format_seconds(seconds_left(session_times, remaining))}" if session_times else ""
        log(f"[{index + 1}/{len(specs)}] {identity}: {index} done, {remaining} left{eta}")
        started = time.perf_counter()
        try:
            result = train_and_evaluate(
                config,
                out_dir / "runs" / identity,
                bench.evaluation,
                log=log,
                trainer_overrides={**bench.trainer_overrides, **(trainer_overrides or {})},
                progress=(lambda stage, i=identity: progress(i, stage)) if progress else None,  # type: ignore[misc]  # a lambda binding its loop value by default argument
            )
        except GFlowOutError as error:
            if not keep_going:
                raise
            failures[identity] = f"{type(error).__name__}: {error}"
            log(f"[{index + 1}/{len(specs)}] {identity}: FAILED ({failures[identity]}); going on")
            if progress:
                progress(identity, "done")
            continue
        write_json_atomic(result_path, result)
        session_times.append(time.perf_counter() - started)
        done_paths.append(result_path)
        if progress:
            progress(identity, "done")
        log(
            f"[{index + 1}/{len(specs)}] {identity}: clean accuracy {result['clean']['accuracy']:.4f}, "
            f"NLL {result['clean']['nll']:.4f}, ECE {result['clean']['ece15']:.4f} "
            f"({_format_seconds(session_times[-1])})"
        )
    if shard_count > 1 and report:
        finished = [out_dir / "results" / f"{run_id(c.data.name, c.method.name, c.seed)}.json" for c in all_configs]
        report = all(path.is_file() for path in finished)  # the last worker to finish writes it
        if not report:
            log(f"shard {shard_index}/{shard_count} finished; the report is written when every shard has finished")
    if report:
        from gflowout.eval.report import write_report
        from gflowout.experiments.learning import learning_for_report

        if done_paths:
            learning = learning_for_report(out_dir, out_dir / "report")
            html = write_report(out_dir / "results", out_dir / "report", learning=learning)
            log(f"report: {html}")
    if failures:
        listing = "; ".join(f"{k}: {v}" for k, v in failures.items())
        raise BenchmarkError(
            f"{len(failures)} of {len(specs)} run(s) failed ({listing}); "
            "fix the cause and rerun the same command to do only those"
        )
    return done_paths


def train_and_evaluate(
    config: Any,
    run_dir: Path,
    evaluation: EvaluationSettings,
    log: Callable[[str], None] = print,
    trainer_overrides: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train one run with the harness (resuming, or reusing a finished training), then evaluate it."""
    from gflowout.checkpoint import load_method
    from gflowout.eval.evaluate import evaluate_method

    marker = run_dir / TRAINED_MARKER
    training_digest = settings_digest(config=config.to_dict())
    digest = run_digest(config, evaluation)  # of the config asked for (the loaded one below is the same, from the file)
    if marker.is_file():
        trained = json.loads(marker.read_text())
        if trained.get("config_digest") != training_digest:
            raise BenchmarkError(
                f"{run_dir} was trained with another config (or by an older gflowout); its model would be reported "
                f"under this one. Use another --out, or delete {run_dir} to retrain"
            )
        train_time = float(trained["train_time_s"])
        log(f"  training finished earlier ({run_dir}); evaluating")
    else:
        if progress:
            progress("training")
        train_time = train_run(config, run_dir, trainer_overrides)
        write_json_atomic(marker, {"train_time_s": train_time, "config_digest": training_digest})
    method, config = load_method(
        run_dir, allow_custom_code=True
    )  # our own run folder; on the CPU, evaluated where the compute is
    method.to("cuda" if torch.cuda.is_available() else "cpu")
    settings = dataclasses.asdict(evaluation)
    samples = settings.pop("samples")
    validation = None
    if evaluation.temperature_scaling or evaluation.conformal_alpha is not None:
        from gflowout.training.evaluation import validation_tensors

        validation = validation_tensors(config, limit=evaluation.limit)
    result = evaluate_method(
        method,
        config.data.name,
        root=config.data.root,
        samples=samples,
        seed=config.seed,
        progress=progress,
        log=log,
        validation=validation,
        **settings,
    )
    result.update(config=config.to_dict(), train_time_s=train_time, settings_digest=digest)
    return result


def run_digest(config: Any, evaluation: EvaluationSettings) -> str:
    """The fingerprint of what a result's numbers depend on: the run's config (not its hardware) and the evaluation."""
    return settings_digest(config=config.to_dict(), evaluation=dataclasses.asdict(evaluation))


def train_run(config: Any, run_dir: Path, trainer_overrides: dict[str, Any] | None = None) -> float:
    """Train with `gflowout.train.fit` (resuming from last.ckpt when the folder has one; a folder of this run
    killed before its first checkpoint starts afresh); seconds spent."""
    from gflowout.train import fit

    started = time.perf_counter()
    fit(config, run_dir, resume=True, **(trainer_overrides or {}))
    return time.perf_counter() - started


def seconds_left(per_run: Sequence[float], remaining: int) -> float:
    """The ETA estimate: mean seconds per run finished in this session, times the runs left."""
    return remaining * sum(per_run) / len(per_run) if per_run else float("nan")
