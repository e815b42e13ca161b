"""Tabular cohorts with a group column: a user's own CSV (for example eICU-derived, one row per stay)
and the leave-one-group-out protocol (train on every group but one, test on the held-out group).

The paper's eICU task trained on all hospitals but one and tested on the held-out hospital. eICU needs
credentialed access, so this module reads whatever CSV a user derived from it: one group column
(hospital id), one binary label column (mortality) and numeric feature columns, all named by the config.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gflowout.errors import DataError


@dataclass(frozen=True)
class CohortTable:
    """A labelled table with one group per row.

    features: float64 [rows, features]; labels: int64 [rows] in {0, 1}; groups: str [rows].
    provenance: where the rows came from (file, checksum, package version, outcome definition, ...).
    """

    features: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    feature_names: tuple[str, ...]
    provenance: dict = field(default_factory=dict)

    @property
    def group_names(self) -> list[str]:
        """The distinct groups, in order of first appearance."""
        seen: dict[str, None] = {}
        for group in self.groups.tolist():
            seen.setdefault(group, None)
        return list(seen)

    def rows_of(self, groups: Sequence[str], exclude: bool = False) -> np.ndarray:
        """Indices of the rows whose group is (or, with exclude, is not) in `groups`."""
        inside = np.isin(self.groups, np.asarray(list(groups), dtype=object))
        return np.flatnonzero(~inside if exclude else inside)


@dataclass(frozen=True)
class CohortSplit:
    """One leave-one-group-out fold, standardised with the training rows' statistics.

    x_train, x_test: float32 [rows, features]; y_train, y_test: int64 [rows].
    mean, std: the training statistics applied to both (a constant feature keeps std 1).
    """

    held_out: str
    train_groups: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def check_table(table: CohortTable, source: str) -> CohortTable:
    """Raise a DataError naming `source` for NaN features, non-binary labels, or a group with one class."""
    if table.features.ndim != 2 or len({table.features.shape[0], table.labels.shape[0], table.groups.shape[0]}) != 1:
        raise DataError(
            f"{source}: features {table.features.shape}, labels {table.labels.shape} and groups "
            f"{table.groups.shape} do not have one row each"
        )
    if table.features.shape[0] == 0:
        raise DataError(f"{source}: no rows")
    bad = ~np.isfinite(table.features)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise DataError(
            f"{source}: {int(bad.sum())} missing or non-finite feature value(s), first in row {int(row) + 1} "
            f"column {table.feature_names[column]!r}; impute or drop them before loading"
        )
    values = set(np.unique(table.labels).tolist())
    if not values <= {0, 1}:
        raise DataError(
            f"{source}: the label must be binary (0 or 1); found the value(s) {sorted(values - {0, 1})[:5]}"
        )
    for group in table.group_names:
        classes = set(np.unique(table.labels[table.groups == group]).tolist())
        if len(classes) < 2:
            raise DataError(
                f"{source}: group {group!r} has only label {classes.pop()}; every group needs both classes "
                "(a held-out group with one class has no balanced accuracy, AUROC or macro-F1); merge or drop it"
            )
    return table


def _number(text: str, source: str, line: int, column: str) -> float:
    if text.strip() == "" or text.strip().lower() in ("na", "nan", "null", "none"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{source}: line {line}, column {column!r}: {text!r} is not a number") from None


def _numbers(rows: list[list[str]], positions: list[int], names: list[str], source: str) -> np.ndarray:
    """The columns at `positions` as float64 [rows, columns]; empty and NA-like cells become NaN.

    numpy parses the whole block at once (an eICU extract has ~10^8 cells); only when a cell is not a plain
    number does the cell-by-cell path run, to turn NA-like cells into NaN or name the offending cell.
    """
    picked = [[row[p] for p in positions] for row in rows]
    try:
        return np.array(picked, dtype=np.float64).reshape(len(rows), len(positions))
    except ValueError:
        pass
    out = np.empty((len(rows), len(positions)), dtype=np.float64)
    for index, values in enumerate(picked):
        for j, text in enumerate(values):
            out[index, j] = _number(text, source, index + 2, names[j])
    return out


def read_cohort_csv(
    path: str | Path, group_column: str, label_column: str, feature_columns: Sequence[str] | None = None
) -> CohortTable:
    """Read a CSV with a header row into a checked `CohortTable`.

    feature_columns: the numeric features; None takes every column but the group and label columns.
    Raises a DataError for a missing file or column, an empty or non-numeric value, a non-binary label,
    or a group whose rows all carry the same label.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise DataError(f"cohort CSV {source!r} not found")
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise DataError(f"{source}: empty file (expected a header row)") from None
        rows = list(reader)
    if feature_columns is None:
        feature_columns = [name for name in header if name not in (group_column, label_column)]
    wanted = [group_column, label_column, *feature_columns]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise DataError(f"{source}: column(s) {missing} not in the header; the file has {header}")
    if not feature_columns:
        raise DataError(f"{source}: no feature columns")
    position = {name: header.index(name) for name in wanted}
    for index, row in enumerate(rows):
        if len(row) != len(header):
            raise DataError(f"{source}: line {index + 2} has {len(row)} field(s), the header {len(header)}")
    groups = np.array([row[position[group_column]].strip() for row in rows], dtype=object)
    labels = _numbers(rows, [position[label_column]], [label_column], source)[:, 0]
    features = _numbers(rows, [position[name] for name in feature_columns], list(feature_columns), source)
    if np.isnan(labels).any():
        raise DataError(
            f"{source}: {int(np.isnan(labels).sum())} missing label(s) in column {label_column!r}, first "
            f"on line {int(np.flatnonzero(np.isnan(labels))[0]) + 2}"
        )
    if not np.all(np.isin(labels, (0.0, 1.0))):
        found = sorted(set(labels[~np.isin(labels, (0.0, 1.0))].tolist()))[:5]
        raise DataError(f"{source}: column {label_column!r} must be binary (0 or 1); found {found}")
    if any(group == "" for group in groups):
        raise DataError(f"{source}: empty group value in column {group_column!r}")
    table = CohortTable(
        features,
        labels.astype(np.int64),
        groups,
        tuple(feature_columns),
        provenance={"file": source, "group_column": group_column, "label_column": label_column},
    )
    return check_table(table, source)


def leave_one_group_out(table: CohortTable, held_out: str, train_groups: Sequence[str] | None = None) -> CohortSplit:
    """Train on `train_groups` (default: every group but `held_out`), test on `held_out`; standardised
    with the training rows' mean and standard deviation (the test rows never inform the scaling)."""
    names = table.group_names
    if held_out not in names:
        raise DataError(f"held-out group {held_out!r} is not in the table; groups: {names}")
    train_groups = [g for g in names if g != held_out] if train_groups is None else list(train_groups)
    unknown = [g for g in train_groups if g not in names]
    if unknown or held_out in train_groups or not train_groups:
        raise DataError(
            f"training groups {train_groups} must be non-empty groups of the table {names}, without the "
            f"held-out {held_out!r}"
        )
    train = table.rows_of(train_groups)
    test = table.rows_of([held_out])
    mean = table.features[train].mean(axis=0)
    std = table.features[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    scale = lambda rows: ((table.features[rows] - mean) / std).astype(np.float32)  # noqa: E731
    return CohortSplit(
        held_out, tuple(train_groups), scale(train), table.labels[train], scale(test), table.labels[test], mean, std
    )
