"""The benchmark runner: a grid of data sets x methods x seeds, trained, evaluated, reported.

The grid's YAML config is described in `gflowout.experiments.benchmark_config`.

Layout of the output folder: runs/<run id>/ (the harness's run folder: config, checkpoints),
results/<run id>.json (one result file per run, written atomically) and report/ (tables, figures,
HTML). Each run is a pure function of its files: a run with a result file is skipped, a run whose
training finished (marker `runs/<run id>/trained.json`) is only evaluated, and an interrupted
training resumes from its last checkpoint. So a killed benchmark rerun with the same command
finishes the remaining runs only. A resumed training's `train_time_s` adds up its sessions (up to each one's
last checkpoint: the work redone after a kill is counted once).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from gflowout.errors import GFlowOutError
from gflowout.experiments.benchmark_config import (  # re-exported: the runner's public names
    BenchmarkConfig,
    EvaluationSettings,
    load_benchmark_config,
    run_config,
)
from gflowout.experiments.grid_check import check_grid
from gflowout.experiments.grid_config import check_grid_lists, shard_runs
from gflowout.experiments.reevaluate import TRAINED_MARKER, complete_result, missing_sections
from gflowout.provenance import code_provenance
from gflowout.results import read_result, run_id, training_cost, write_json_atomic
from gflowout.training.resume import settings_digest

__all__ = [
    "TRAINED_MARKER",
    "BenchmarkConfig",
    "BenchmarkError",
    "EvaluationSettings",
    "load_benchmark_config",
    "quiet_lightning",
    "run_benchmark",
    "run_config",
    "run_digest",
    "seconds_left",
    "set_threads",
    "train_and_evaluate",
    "training_digest",
    "train_run",
]


class BenchmarkError(GFlowOutError):
    """Some runs of a benchmark grid failed (with --keep-going); the message lists them."""


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
    reevaluate: bool = False,
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
    reevaluate: complete result files that lack sections this version's evaluation adds (temperature scaling,
    conformal sets, selective prediction) by evaluating their trained checkpoints again; the numbers they hold
    must come out identical (`gflowout.experiments.reevaluate`), or the grid stops with the differences.
    """
    out_dir = Path(out_dir)
    check_grid_lists(bench, "benchmark", "key")  # again here: a caller may have edited the lists it loaded
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
            missing = missing_sections(existing, bench.evaluation) if reevaluate else []
            if missing:
                log(f"[{index + 1}/{len(specs)}] {identity}: done earlier by an older gflowout; completing it")
                complete_result(
                    result_path,
                    existing,
                    out_dir / "runs" / identity,
                    partial(train_and_evaluate, config, out_dir / "runs" / identity, bench.evaluation, log=log),
                    missing,
                    log,
                )
            else:
                log(f"[{index + 1}/{len(specs)}] {identity}: done earlier, skipped")
            done_paths.append(result_path)
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
    trained_digest = training_digest(config)
    digest = run_digest(config, evaluation)  # of the config asked for (the loaded one below is the same, from the file)
    if marker.is_file():
        trained = json.loads(marker.read_text())
        if trained.get("config_digest") != trained_digest:
            raise BenchmarkError(
                f"{run_dir} was trained with another config (or by an older gflowout); its model would be reported "
                f"under this one. Use another --out, or delete {run_dir} to retrain"
            )
        cost = training_cost(trained)
        log(f"  training finished earlier ({run_dir}); evaluating")
    else:
        if progress:
            progress("training")
        cost = train_run(config, run_dir, trainer_overrides)
        write_json_atomic(marker, {**cost, "config_digest": trained_digest})
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
    result.update(config=config.to_dict(), **cost, settings_digest=digest, **code_provenance())
    return result


def training_digest(config: Any) -> str:
    """The fingerprint of what a training depends on (the run's config, not its hardware), recorded in the
    TRAINED_MARKER of a finished training: a later grid reuses that training only under the same digest."""
    return settings_digest(config=config.to_dict())


def run_digest(config: Any, evaluation: EvaluationSettings) -> str:
    """The fingerprint of what a result's numbers depend on: the run's config (not its hardware) and the evaluation."""
    return settings_digest(config=config.to_dict(), evaluation=dataclasses.asdict(evaluation))


def train_run(config: Any, run_dir: Path, trainer_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train with `gflowout.train.fit` (resuming from last.ckpt when the folder has one; a folder of this run
    killed before its first checkpoint starts afresh). Returns its cost: train_time_s and
    train_time_all_sessions (results.json's: every session's training, False for a run resumed from a checkpoint
    written before gflowout kept the time in it; this call's wall time and False when the run records none) and
    train_peak_rss_mb (the peak resident memory of the last session's training; None where unmeasured)."""
    from gflowout.train import fit

    started = time.perf_counter()
    fit(config, run_dir, resume=True, **(trainer_overrides or {}))
    return training_cost(json.loads((run_dir / "results.json").read_text()), time.perf_counter() - started)


def seconds_left(per_run: Sequence[float], remaining: int) -> float:
    """The ETA estimate: mean seconds per run finished in this session, times the runs left."""
    return remaining * sum(per_run) / len(per_run) if per_run else float("nan")
