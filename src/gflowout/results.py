"""Result files: one JSON per run, written atomically, read back for reports.

The schema of a result file is documented in `gflowout.eval.evaluate`. This module only moves
those dictionaries to and from disk, so that a run killed halfway never leaves a half-written file:
a result file either exists complete or not at all (writes go through `gflowout.atomic`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gflowout.atomic import atomic_write_text
from gflowout.errors import ConfigError, DataError

SCHEMA_VERSION = 1


def _clean_json(value: Any) -> Any:
    """Plain JSON types only: numpy / torch scalars become floats, NaN and inf become null."""
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if hasattr(value, "tolist"):  # numpy array / scalar, torch tensor
        return _clean_json(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


def write_json_atomic(path: str | Path, data: dict[str, Any]) -> Path:
    """Write `data` as strict JSON (NaN -> null) atomically (gflowout.atomic)."""
    return atomic_write_text(path, json.dumps(_clean_json(data), indent=1, allow_nan=False) + "\n")


def read_result(path: str | Path) -> dict[str, Any]:
    """Read one result file; a DataError names the file when it is not a gflowout result."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read result file {path}: {error}; delete it and rerun the benchmark") from error
    if not isinstance(data, dict) or "schema_version" not in data or "run_id" not in data:
        raise DataError(f"{path} is not a gflowout result file (no 'schema_version' / 'run_id' keys)")
    if data["schema_version"] != SCHEMA_VERSION:
        raise DataError(
            f"{path} has result schema version {data['schema_version']}, this gflowout reads {SCHEMA_VERSION}; "
            "re-evaluate the run with this version"
        )
    return data


def load_results(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every result file (`*.json` with a gflowout schema) under `results_dir`, sorted by run id."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise DataError(f"results folder {results_dir} does not exist; run `gflowout benchmark` first")
    runs = []
    seen: dict[str, Path] = {}
    for path in sorted(results_dir.rglob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and "schema_version" in data and "run_id" in data:
            run = read_result(path)
            if run["run_id"] in seen:  # two benchmarks' outputs under one folder: they would count as more seeds
                raise DataError(
                    f"run {run['run_id']!r} appears twice, in {seen[run['run_id']]} and {path}; point the report at "
                    "one benchmark's results folder"
                )
            seen[run["run_id"]] = path
            runs.append(run)
    if not runs:
        raise DataError(f"no result files (*.json with a 'schema_version') under {results_dir}")
    return sorted(runs, key=lambda r: r["run_id"])


def run_id(dataset: str, method: str, seed: int) -> str:
    """The id of one benchmark run, also its file name: e.g. 'mnist__gflowout__seed1'."""
    return f"{dataset}__{method}__seed{int(seed)}"


def training_cost(record: Mapping[str, Any], fallback_s: float | None = None) -> dict[str, Any]:
    """The cost a training records (a run's results.json, a benchmark's trained.json): train_time_s (its
    training over every session, `fallback_s` when it records none), train_time_all_sessions (False without a
    recorded time, or for a run resumed from a checkpoint older than the time it carries) and train_peak_rss_mb."""
    recorded = record.get("train_time_s")
    return {
        "train_time_s": float(recorded) if recorded is not None else fallback_s,
        "train_time_all_sessions": recorded is not None and bool(record.get("train_time_all_sessions", False)),
        "train_peak_rss_mb": record.get("train_peak_rss_mb"),
    }


def read_run_config(folder: str | Path) -> Any:
    """The parsed config.yaml of a run folder, or None when it is missing or unreadable (a report then shows the
    run without it)."""
    import yaml

    try:
        return yaml.safe_load((Path(folder) / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None


def read_train_run(folder: str | Path) -> dict[str, Any]:
    """A `gflowout train` run folder (its results.json and config.yaml) as a result in the RESULT SCHEMA.

    A training run records only the test metrics of its best checkpoint, so only "clean" (accuracy, NLL,
    Brier, ECE with 15 bins), the test-set size, S and the configuration are filled; every other section is
    absent and shows as "-" in a report. "source" says where the run came from.
    """
    folder = Path(folder)
    path = folder / "results.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict) or not {"method", "dataset", "seed"} <= set(data):
        raise DataError(f"{path} is not a `gflowout train` results.json (needs 'method', 'dataset' and 'seed')")
    config = read_run_config(folder)
    test = data.get("test") or {}
    clean = {
        "accuracy": test.get("accuracy"),
        "nll": test.get("nll"),
        "brier": test.get("brier"),
        "ece15": test.get("ece"),
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id(data["dataset"], data["method"], data["seed"]),
        "method": data["method"],
        "seed": int(data["seed"]),
        "dataset": data["dataset"],
        "config": config,
        # older runs record only fit_time_s: their last call, the test pass included
        **training_cost(data, data.get("fit_time_s")),
        "eval_time_s": None,
        "samples": data.get("val_samples"),
        "test_size": int(test["count"]) if test.get("count") is not None else None,
        "clean": {k: v for k, v in clean.items() if v is not None},
        "source": f"gflowout train run folder {folder}",
    }


def load_report_runs(path: str | Path) -> list[dict[str, Any]]:
    """The runs a report reads under `path`: benchmark result files (`load_results`) and `gflowout train` run
    folders (a results.json next to config.yaml; `read_train_run`), or `path` itself when it is a run folder.

    A benchmark's own training folders (runs/<run id>/ beside its results/) are left out: their evaluation is
    in results/, and a run still being evaluated must not enter the report with its clean metrics alone. So is
    a training folder whose run has a result file, and a `gflowout posthoc` folder (its GFlowOut was fitted on
    another method's network: `gflowout.eval.report_posthoc` reports its comparison.json). Two runs with one id
    raise DataError.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"results folder {path} does not exist; run `gflowout benchmark` or `gflowout train` first")
    train_folders = [
        p.parent
        for p in sorted(path.rglob("results.json"))
        if (p.parent / "config.yaml").is_file()
        and not _is_result_file(p)
        and not _in_benchmark_folder(p.parent)
        and not _is_posthoc_fit(p.parent)  # its comparison.json is reported instead (gflowout.eval.report_posthoc)
    ]
    trained = [read_train_run(folder) for folder in train_folders]
    try:
        evaluated = load_results(path)
    except DataError as error:
        if not str(error).startswith("no result files"):
            raise
        if not trained:
            raise DataError(
                f"no result files (*.json with a 'schema_version') and no `gflowout train` run folders "
                f"(results.json with config.yaml) under {path}"
            ) from None
        evaluated = []
    # a benchmark keeps each run's training folder (runs/<run id>/) next to its evaluated result: the result wins
    evaluated_ids = {run["run_id"] for run in evaluated}
    runs = evaluated + [run for run in trained if run["run_id"] not in evaluated_ids]
    seen: dict[str, str] = {}
    for run in runs:
        where = run.get("source", "a benchmark result file")
        if run["run_id"] in seen:
            raise DataError(
                f"run {run['run_id']!r} appears twice ({seen[run['run_id']]} and {where}); they would "
                "count as two seeds: point the report at one set of runs"
            )
        seen[run["run_id"]] = where
    return sorted(runs, key=lambda r: r["run_id"])


def _is_posthoc_fit(folder: Path) -> bool:
    """A `gflowout posthoc` folder: its posthoc.json, or (a fit stopped before writing it) a config whose method
    freezes the backbone. Its GFlowOut was fitted on another method's network: no training run of its own."""
    if (folder / "posthoc.json").is_file():
        return True
    config = read_run_config(folder)
    options = ((config or {}).get("method") or {}).get("options") or {} if isinstance(config, dict) else {}
    return isinstance(options, dict) and options.get("freeze_backbone") is True


def _in_benchmark_folder(folder: Path) -> bool:
    """True for a benchmark's harness run folder: OUT/runs/<run id>/ next to OUT/results/."""
    return folder.parent.name == "runs" and (folder.parent.parent / "results").is_dir()


def _is_result_file(path: Path) -> bool:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and "schema_version" in data


# --- the downstream protocols' result files (active learning, transfer) ----------------------------
PROTOCOL_SCHEMA = 1


def read_protocol_result(path: Path, protocol: str, digest: str | None = None) -> dict[str, Any]:
    """One result file of `protocol`; with `digest`, a ConfigError if it was made with other settings."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read result file {path}: {error}; delete it and rerun the command") from error
    if not isinstance(data, dict) or data.get("protocol") != protocol:
        raise DataError(f'{path} is not a {protocol} result file (no "protocol": {protocol!r})')
    if data.get("protocol_schema") != PROTOCOL_SCHEMA:
        raise DataError(
            f"{path} has schema {data.get('protocol_schema')}, this gflowout reads {PROTOCOL_SCHEMA}; rerun it"
        )
    if digest is not None and data.get("settings_digest") != digest:
        raise ConfigError(
            f"{path} was made with other settings than this config's; a report would mix them. Use "
            "another --out, or delete that file (and its runs/ folder) to redo the run"
        )
    return data


def load_protocol_results(results_dir: str | Path, protocol: str) -> list[dict[str, Any]]:
    """Every `protocol` result file under `results_dir`, sorted by run id."""
    results_dir = Path(results_dir)
    runs = []
    for path in sorted(results_dir.glob("*.json")):
        runs.append(read_protocol_result(path, protocol))
    if not runs:
        raise DataError(f"no {protocol} result files under {results_dir}")
    return sorted(runs, key=lambda run: run["run_id"])


def read_learning(path: str | Path) -> dict[str, Any]:
    """The runs of a learning.json (`gflowout.experiments.learning.collect_learning` writes it): the training
    curves, checkpoint mask statistics and epoch times a report reads. ValueError for another file."""
    payload = json.loads(Path(path).read_text())
    if not isinstance(payload, dict) or payload.get("schema_version") != 1 or not isinstance(payload.get("runs"), dict):
        raise ValueError(
            f"{str(path)!r} is not a learning.json of this version (schema_version 1 with 'runs'); "
            "write it again with `gflowout report RESULTS --runs RUNS`"
        )
    return payload["runs"]
