"""The clinical cohort-shift protocol (the paper's eICU task): leave one group out, every method, several seeds.

For each held-out group, method and seed: standardise with the training groups' statistics, keep a
stratified in-distribution test part of the training groups aside (`iid_fraction`), train the paper's
MLP (three hidden layers of 256, a unit mask site after each) with the method for a fixed number of
epochs (Adam, the method's own defaults), then evaluate the S-sample predictive on the in-distribution
part and on the held-out group. One JSON per run (atomic; a finished run is skipped on a rerun, so the
command resumes), then `summary.json`, `summary.md` and a figure (`gflowout.experiments.cohort_summary`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gflowout.data.cohort import CohortSplit, CohortTable, leave_one_group_out, read_cohort_csv
from gflowout.errors import ConfigError
from gflowout.experiments.cohort_summary import write_summary

ALL_METHODS = ("none", "mc_dropout", "concrete", "contextual", "id_gflowout", "gflowout", "ensemble")


@dataclass
class CohortData:
    """Where the table comes from: `source: rotterdam-gbsg` (the public cohorts) or `source: csv` with a
    file and its column names (feature_columns: null takes every other column)."""

    source: str = "csv"
    path: str | None = None
    group_column: str = "group"
    label_column: str = "label"
    feature_columns: list[str] | None = None
    root: str | None = None


@dataclass
class CohortConfig:
    """One cohort-shift experiment; every key has a default except the data."""

    data: CohortData = field(default_factory=CohortData)
    held_out: list[str] | None = None  # None: every group in turn
    methods: list[str] = field(default_factory=lambda: list(ALL_METHODS))
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    hidden: list[int] = field(default_factory=lambda: [256, 256, 256])
    epochs: int = 100
    batch_size: int = 256
    samples: int = 20
    ece_bins: int = 15
    iid_fraction: float = 0.2
    split_seed: int = 0
    threads: int = 1


def _strict(cls: type, values: Any, where: str) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise ConfigError(f"config key {where!r} must be a mapping, got {type(values).__name__}")
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]  # cls is a dataclass
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown} in {where!r}; valid keys: {sorted(known)}")
    return dict(values)


def cohort_config(values: dict[str, Any]) -> CohortConfig:
    """A checked `CohortConfig` from a parsed YAML mapping (ConfigError names the bad key)."""
    top = _strict(CohortConfig, values, "cohort config")
    top["data"] = CohortData(**_strict(CohortData, top.get("data", {}), "data"))
    config = CohortConfig(**top)
    if config.held_out is not None:  # YAML reads a hospital id such as 167 as a number; the CSV's groups are text
        if not isinstance(config.held_out, list) or not config.held_out:
            raise ConfigError(
                f"config key 'held_out' must be a non-empty list of groups or null, got {config.held_out!r}"
            )
        config.held_out = [str(group) for group in config.held_out]
    if config.data.source not in ("csv", "rotterdam-gbsg"):
        raise ConfigError(f"config key 'data.source' must be 'csv' or 'rotterdam-gbsg', got {config.data.source!r}")
    if config.data.source == "csv" and not config.data.path:
        raise ConfigError("config key 'data.path' is required with data.source: csv (the CSV file to read)")
    unknown = [m for m in config.methods if m not in ALL_METHODS]
    if unknown or not config.methods:
        raise ConfigError(f"config key 'methods': unknown method(s) {unknown}; choose from {list(ALL_METHODS)}")
    if set(config.method_options) - set(config.methods):
        raise ConfigError(
            f"config key 'method_options' names methods not in 'methods': "
            f"{sorted(set(config.method_options) - set(config.methods))}"
        )
    for key in ("epochs", "batch_size", "samples", "ece_bins", "threads"):
        if not isinstance(getattr(config, key), int) or getattr(config, key) < 1:
            raise ConfigError(f"config key {key!r} must be a positive integer, got {getattr(config, key)!r}")
    if not config.seeds or not all(isinstance(s, int) for s in config.seeds):
        raise ConfigError(f"config key 'seeds' must be a non-empty list of integers, got {config.seeds!r}")
    if not 0.0 <= config.iid_fraction < 1.0:
        raise ConfigError(f"config key 'iid_fraction' must be in [0, 1), got {config.iid_fraction!r}")
    if not config.hidden or not all(isinstance(h, int) and h > 0 for h in config.hidden):
        raise ConfigError(f"config key 'hidden' must be a list of positive layer widths, got {config.hidden!r}")
    return config


def load_cohort_config(path: str | Path) -> CohortConfig:
    """Read a YAML cohort config."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"cohort config {str(path)!r} not found")
    with path.open() as handle:
        values = yaml.safe_load(handle) or {}
    try:
        return cohort_config(values)
    except TypeError as error:
        raise ConfigError(f"{path}: {error}") from None


def load_table(data: CohortData) -> CohortTable:
    """The configured table: the user's CSV, or the harmonised Rotterdam/GBSG cohorts (verified files)."""
    if data.source == "csv":
        return read_cohort_csv(data.path, data.group_column, data.label_column, data.feature_columns)  # type: ignore[arg-type]  # not None here: set before use
    from gflowout.data.sources import get_spec
    from gflowout.data.survival import harmonised_cohorts

    return harmonised_cohorts(get_spec("rotterdam-gbsg").folder(data.root))


# ---- one run --------------------------------------------------------------------------------------
def iid_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, in-distribution test rows): a stratified random `fraction` of each class held aside."""
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        test.append(rng.permutation(rows)[: int(round(fraction * rows.size))])
    test_rows = np.sort(np.concatenate(test)) if test else np.array([], dtype=np.int64)
    return np.setdiff1d(np.arange(labels.size), test_rows), test_rows


def build_cohort_method(
    name: str, features: int, hidden: Sequence[int], dataset_size: int, options: dict[str, Any] | None = None
) -> Any:
    """The paper's eICU MLP (features -> hidden... -> 2, a unit mask site after each hidden layer) with a method."""
    from gflowout.config import accepts_keyword, check_options
    from gflowout.methods import method_class
    from gflowout.nets.mlp import MLP

    cls = method_class(name)
    options = dict(options or {})
    check_options(cls, options, f"method_options.{name}")
    if accepts_keyword(cls, "dataset_size") and "dataset_size" not in options:
        options["dataset_size"] = int(dataset_size)
    return cls(MLP(input_shape=(features,), num_classes=2, hidden=tuple(hidden)), **options)


@torch.no_grad()
def predictive_probs(method: Any, x: torch.Tensor, samples: int, batch_size: int = 1024) -> np.ndarray:
    """Mean over S mask samples of softmax, [rows, 2] (float64); the labels are never shown to the method.

    S is `method.prediction_samples(samples)`: a deep ensemble averages its M members.
    """
    from gflowout.eval.predictive import mean_probs

    samples = method.prediction_samples(samples)
    parts = [
        mean_probs(method.predict(x[i : i + batch_size], samples=samples)) for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(parts).double().numpy()


def train_and_evaluate(config: CohortConfig, split: CohortSplit, method_name: str, seed: int) -> dict[str, Any]:
    """Train one method on one fold with one seed; metrics on the in-distribution part and the held-out group."""
    from gflowout.eval.binary import binary_metrics

    train_rows, iid_rows = iid_split(split.y_train, config.iid_fraction, config.split_seed)
    x_all, y_all = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    x_train, y_train = x_all[train_rows], y_all[train_rows]
    torch.manual_seed(seed)
    method = build_cohort_method(
        method_name, x_train.shape[1], config.hidden, x_train.shape[0], config.method_options.get(method_name)
    )
    optimizers = method.make_optimizers()
    order = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    last: dict[str, float] = {}
    for epoch in range(config.epochs):
        method.set_epoch(epoch)
        permutation = torch.randperm(x_train.shape[0], generator=order)
        for start in range(0, x_train.shape[0], config.batch_size):
            batch = permutation[start : start + config.batch_size]
            last = method.train_step(x_train[batch], y_train[batch], optimizers)
    train_seconds = time.perf_counter() - started
    method.eval()
    results: dict[str, Any] = {}
    torch.manual_seed(seed)
    if iid_rows.size:
        probs = predictive_probs(method, x_all[iid_rows], config.samples)
        results["in_distribution"] = binary_metrics(probs, split.y_train[iid_rows], bins=config.ece_bins)
    probs = predictive_probs(method, torch.from_numpy(split.x_test), config.samples)
    results["held_out"] = binary_metrics(probs, split.y_test, bins=config.ece_bins)
    results["train_seconds"] = train_seconds
    results["last_step"] = last
    results["train_rows"] = int(train_rows.size)
    return results


# ---- the grid -------------------------------------------------------------------------------------
def config_digest(config: CohortConfig) -> str:
    """A digest of everything that changes a run's numbers: not the thread count, and not the grid's axes (the
    methods, seeds and held-out groups, which each run records), so a method added to the grid leaves the runs
    already made valid."""
    values = asdict(config)
    for axis in ("threads", "methods", "seeds", "held_out"):
        values.pop(axis)
    values["data"].pop("root")
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def run_path(out: Path, held_out: str, method: str, seed: int) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in held_out)
    return out / "runs" / f"heldout-{safe}_{method}_seed{seed}.json"


def run_cohort(config: CohortConfig, out: str | Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every (held-out group, method, seed) run not already in `out`, then the summary; returns the summary."""
    from gflowout.results import write_json_atomic

    out = Path(out)
    torch.set_num_threads(config.threads)
    table = load_table(config.data)
    groups = config.held_out or table.group_names
    missing = [g for g in groups if g not in table.group_names]
    if missing:
        raise ConfigError(
            f"config key 'held_out': group(s) {missing} not in the data; its groups are {table.group_names}"
        )
    digest = config_digest(config)
    write_json_atomic(
        out / "provenance.json",
        {
            "config": asdict(config),
            "config_digest": digest,
            "rows": int(table.labels.size),
            "features": list(table.feature_names),
            "groups": {g: int((table.groups == g).sum()) for g in table.group_names},
            **table.provenance,
        },
    )
    total = len(groups) * len(config.methods) * len(config.seeds)
    done = 0
    for held_out in groups:
        split = leave_one_group_out(table, held_out)
        for seed in config.seeds:  # seed-major: an interrupted grid has every method at the first seeds
            for method in config.methods:
                done += 1
                path = run_path(out, held_out, method, seed)
                if path.is_file():
                    previous = json.loads(path.read_text())
                    if previous.get("config_digest") == digest:
                        log(f"[{done}/{total}] {path.name}: done already, skipped")
                        continue
                    log(f"[{done}/{total}] {path.name}: written under another config, run again")
                started = time.perf_counter()
                result = train_and_evaluate(config, split, method, seed)
                result.update(
                    held_out_group=held_out,
                    train_groups=list(split.train_groups),
                    method=method,
                    seed=seed,
                    config_digest=digest,
                    wall_seconds=time.perf_counter() - started,
                )
                write_json_atomic(path, result)
                held = result["held_out"]
                log(
                    f"[{done}/{total}] {held_out} {method} seed {seed}: held-out macro-F1 {held['macro_f1']:.3f} "
                    f"AUROC {held['auroc']:.3f} NLL {held['nll']:.3f} ({result['wall_seconds']:.1f} s)"
                )
    return write_summary(out, digest)
