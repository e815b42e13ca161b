"""Where a benchmark grid stands: `gflowout benchmark --config C --out O --status`.

A grid of hours runs in pieces (a SLURM array, two workers on one machine, sessions that stop). This reads the
output folder, trains and evaluates nothing, and says for every run of the grid, in the grid's order, which
worker runs it and what is on disk: a result file (and whether it was made with this grid's settings), a finished
training awaiting its evaluation, a training's last checkpoint (its epoch), or nothing yet. A run the grid would
refuse (a result, training or checkpoint of another config, an unreadable file) is "stale".
"""

from __future__ import annotations

import datetime
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gflowout.errors import GFlowOutError

__all__ = ["RunStatus", "grid_status", "status_text"]

STATES = ("done", "stale", "evaluating", "training", "not started")


@dataclass(frozen=True)
class RunStatus:
    """One run of the grid: its id, the worker (shard) that runs it, its state (one of STATES) and what was read."""

    run_id: str
    worker: int
    state: str
    detail: str


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes = int(round(seconds / 60))
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def _written(path: Path) -> str:
    stamp = datetime.datetime.fromtimestamp(path.stat().st_mtime, tz=datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def _result_status(path: Path, digest: str) -> tuple[str, str]:
    from gflowout.results import read_result

    try:
        result = read_result(path)
    except GFlowOutError as error:
        return "stale", f"unreadable result file ({error}); the grid stops at it"
    if result.get("settings_digest") != digest:
        return "stale", "result made with other settings than this grid's; the grid stops at it"
    clean = result.get("clean") or {}
    recorded = result.get("train_time_all_sessions")
    whole = "" if recorded else " (may count only its last session)" if recorded is None else " (its last session only)"
    return "done", (
        f"accuracy {clean.get('accuracy', float('nan')):.4f}, NLL {clean.get('nll', float('nan')):.4f}; "
        f"training {_clock(result.get('train_time_s'))}{whole}, evaluation {_clock(result.get('eval_time_s'))}"
    )


def _foreign_config(run_dir: Path, config: Any) -> str | None:
    """Why the run folder cannot continue under `config` (a config.yaml of another config, or none readable
    beside training files), or None when it can."""
    from gflowout.errors import ConfigError
    from gflowout.results import read_run_config
    from gflowout.training.resume import check_resume_config

    if not (run_dir / "config.yaml").is_file():
        return None
    saved = read_run_config(run_dir)
    if not isinstance(saved, dict):
        return "its config.yaml is unreadable"
    try:
        check_resume_config(saved, config.to_dict(), str(run_dir))
    except ConfigError:
        return "it was started with another config"
    return None


def _training_status(run_dir: Path, config: Any) -> tuple[str, str]:
    from gflowout.experiments.benchmark import training_digest
    from gflowout.experiments.reevaluate import TRAINED_MARKER

    refused = f"; the grid stops at it: delete {run_dir} to retrain"
    marker = run_dir / TRAINED_MARKER
    if marker.is_file():
        try:
            trained = json.loads(marker.read_text())
        except (OSError, ValueError):
            return "stale", f"unreadable {TRAINED_MARKER}{refused}"
        if not isinstance(trained, dict) or trained.get("config_digest") != training_digest(config):
            return "stale", f"trained with another config{refused}"
        return "evaluating", f"training finished ({_written(marker)}); evaluation to come or running"
    foreign = _foreign_config(run_dir, config)
    if foreign is not None:
        return "stale", f"{foreign}{refused}"
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        if run_dir.is_dir():
            return "training", "started, no checkpoint yet (a restart begins from the first epoch)"
        return "not started", ""
    try:  # two integers of a checkpoint of tens of MB: mapped, not read
        checkpoint = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
        epoch, step = int(checkpoint["epoch"]) + 1, int(checkpoint["global_step"])
    except Exception as error:  # noqa: BLE001  (any unreadable file: the grid stops at it too)
        return "stale", f"last checkpoint unreadable ({type(error).__name__}){refused}"
    max_epochs = config.trainer.max_epochs
    return "training", f"last checkpoint in epoch {epoch} of {max_epochs}, optimiser step {step:,} ({_written(last)})"


def grid_status(bench: Any, out_dir: str | Path, workers: int = 1, root: str | Path | None = None) -> list[RunStatus]:
    """The state of every run of `bench` under `out_dir`, in the grid's order; `workers`: the N of --shard I/N,
    so each run names the worker that runs it (position p goes to worker p mod N + 1, as `shard_runs` deals)."""
    from gflowout.experiments.benchmark import run_digest
    from gflowout.experiments.benchmark_config import run_config
    from gflowout.results import run_id

    out_dir = Path(out_dir)
    statuses = []
    for position, spec in enumerate(bench.runs()):
        config = run_config(bench, spec, root)
        identity = run_id(config.data.name, spec.method, spec.seed)
        result_path = out_dir / "results" / f"{identity}.json"
        if result_path.is_file():
            state, detail = _result_status(result_path, run_digest(config, bench.evaluation))
        else:
            state, detail = _training_status(out_dir / "runs" / identity, config)
        statuses.append(RunStatus(identity, position % workers + 1, state, detail))
    return statuses


def status_text(statuses: Sequence[RunStatus], workers: int = 1) -> str:
    """One line per run (with its worker when there are several) and a last line counting the states."""
    width = max((len(s.run_id) for s in statuses), default=0)
    lines = []
    for status in statuses:
        worker = f"worker {status.worker}/{workers}  " if workers > 1 else ""
        detail = f"  {status.detail}" if status.detail else ""
        lines.append(f"{worker}{status.run_id:<{width}}  {status.state:<11}{detail}".rstrip())
    counts = Counter(s.state for s in statuses)
    summary = ", ".join(f"{counts[state]} {state}" for state in STATES if counts[state])
    lines.append(f"{len(statuses)} runs: {summary}" if statuses else "the grid has no runs")
    return "\n".join(lines)
