"""What the downstream protocols share: in-memory data, their result files, per-run state, digests, and the
loop over a grid (`run_protocol_grid`: skip finished runs, resume the others, write the report at the end).

Layout of a protocol's output folder (`--out`):

    runs/<run id>/state.json     progress of an unfinished run (written atomically after every round / subset)
    runs/<run id>/pretrained.pt  transfer only: the weights pre-trained on noisy labels
    results/<run id>.json        one result file per finished run (written atomically)
    report/                      report.md, figures/*.png, report.html (when the whole grid has finished)

A result file carries `protocol` ("active_learning" or "transfer") and `protocol_schema`; it is deliberately
not a benchmark result file (`gflowout report` of a benchmark folder never mixes them in).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gflowout.errors import ConfigError, DataError
from gflowout.results import PROTOCOL_SCHEMA, load_protocol_results, read_protocol_result  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class ProtocolData:
    """A data set in memory: training and test images float [N, C, H, W], labels int64 [N]."""

    name: str
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])


def load_protocol_data(name: str, root: str | Path | None, test_limit: int | None) -> ProtocolData:
    """The verified training and test splits of `name`, normalised; with `test_limit`, a fixed subset of the
    test split (a permutation seeded by 0, the same for every run and protocol)."""
    from gflowout.data.datasets import get_info, load_split, to_tensor

    info = get_info(name)
    if "train" not in info.splits or "test" not in info.splits:
        raise DataError(f"data set {name!r} has no train and test splits; the downstream protocols need both")
    train_images, train_labels = load_split(name, "train", root)
    test_images, test_labels = load_split(name, "test", root)
    x_test, y_test = to_tensor(test_images, name), torch.from_numpy(test_labels).to(torch.int64)
    if test_limit is not None and test_limit < y_test.shape[0]:
        keep = torch.randperm(int(y_test.shape[0]), generator=torch.Generator().manual_seed(0))[:test_limit]
        x_test, y_test = x_test[keep], y_test[keep]
    return ProtocolData(
        name,
        to_tensor(train_images, name),
        torch.from_numpy(train_labels).to(torch.int64),
        x_test,
        y_test,
        info.num_classes,
    )


def read_state(path: Path, digest: str) -> dict[str, Any] | None:
    """The saved progress of a run, None when it has none; a ConfigError when it was made with other settings."""
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read {path}: {error}; delete it to restart that run") from error
    if state.get("settings_digest") != digest:
        raise ConfigError(
            f"{path} was made with other settings than this config's; use another --out, or delete "
            f"{path.parent} to redo that run"
        )
    return state


def protocol_digest(config: Any, harness: Any) -> str:
    """Fingerprint of what a protocol run's numbers depend on: its harness config and the protocol settings."""
    from gflowout.experiments.downstream_config import protocol_settings
    from gflowout.training.resume import settings_digest

    return settings_digest(config=harness.to_dict(), protocol=protocol_settings(config))


def run_protocol_grid(
    config: Any,
    out_dir: Path,
    root: str | Path | None,
    shard: tuple[int, int],
    log: Callable[[str], None],
    *,
    protocol: str,
    grid: Callable[[Any, str], Sequence[Any]],
    run_one: Callable[..., dict[str, Any]],
    write_report: Callable[[Path, Path], Path] | None,
    check_runs: Callable[[Sequence[Any]], None] | None = None,
    check_data: Callable[[Any, ProtocolData], None] | None = None,
) -> list[Path]:
    """Every run of a protocol's grid (this shard's) that has no result file yet, then the report once the whole
    grid is done; returns the result files of this shard's runs.

    Args:
        config: the protocol config (ActiveLearningConfig, TransferConfig).
        out_dir: the output folder (see the module docstring for its layout).
        root: the data folder (None: GFLOWOUT_DATA or the cache).
        shard: (i, n): only every n-th run from run i, so n workers share `out_dir`.
        log: progress lines.
        protocol: the `protocol` of the result files (a finished run's file is checked against it and its digest).
        grid: (config, the harness config's data set) -> the runs, in order.
        run_one: (run, config, data, harness, out_dir, device, log) -> result; does or finishes one run and writes
            its result file.
        write_report: (results folder, report folder) -> the report file; None: no report.
        check_runs: called with every run before any data is read (budgets that need no data).
        check_data: called with a run and its data before the run starts (budgets against the data).
    """
    from gflowout.experiments.grid_config import shard_runs
    from gflowout.experiments.plain_training import resolve_device
    from gflowout.training.build import validate_model_options

    device = resolve_device(config.device)
    first = config.harness_config(None, config.methods[0], config.seeds[0], root)
    runs = grid(config, first.data.name)
    harnesses = {run: config.harness_config(run.dataset, run.method, run.seed, root) for run in runs}
    for harness in harnesses.values():  # every option of every method, before the first run trains
        validate_model_options(harness)
    if check_runs is not None:
        check_runs(runs)
    mine = shard_runs(runs, *shard)
    data_cache: dict[str, ProtocolData] = {}
    paths: list[Path] = []
    for index, run in enumerate(mine, start=1):
        harness = harnesses[run]
        path = out_dir / "results" / f"{run.run_id}.json"
        if path.is_file():
            read_protocol_result(path, protocol, protocol_digest(config, harness))
            log(f"[{index}/{len(mine)}] {run.run_id}: done earlier, skipped")
            paths.append(path)
            continue
        if run.dataset not in data_cache:
            data_cache = {run.dataset: load_protocol_data(run.dataset, root, config.evaluation.test_limit)}
        data = data_cache[run.dataset]
        if check_data is not None:
            check_data(run, data)
        log(f"[{index}/{len(mine)}] {run.run_id}")
        run_one(run, config, data, harness, out_dir, device, log)
        paths.append(path)
    finished = all((out_dir / "results" / f"{run.run_id}.json").is_file() for run in runs)
    if write_report is not None and finished:
        log(f"report: {write_report(out_dir / 'results', out_dir / 'report')}")
    elif write_report is not None:
        log("this shard is done; the report is written by the worker that finishes the grid")
    return paths


def write_protocol_result(
    out_dir: Path,
    protocol: str,
    run: Any,
    identity: dict[str, Any],
    digest: str,
    outcome: dict[str, Any],
    config: Any,
    harness: Any,
) -> dict[str, Any]:
    """Assemble a finished run's result (protocol, run id, `identity`, digest, `outcome`, then the settings that
    made it) and write it atomically to results/<run id>.json; returns the result."""
    from gflowout.experiments.downstream_config import protocol_settings
    from gflowout.results import write_json_atomic

    result = {
        "protocol": protocol,
        "protocol_schema": PROTOCOL_SCHEMA,
        "run_id": run.run_id,
        **identity,
        "settings_digest": digest,
        **outcome,
        "config": harness.to_dict(),
        "protocol_settings": protocol_settings(config),
        "budget": config.budget,
    }
    write_json_atomic(out_dir / "results" / f"{run.run_id}.json", result)
    return result
