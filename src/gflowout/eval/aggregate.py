"""Aggregation of benchmark runs over seeds: group by (data set, method), mean ± standard error of every metric.

A run evaluated with a temperature fitted on its validation split (section "ts" of its result file) also gives
the method "METHOD + TS" (`with_temperature_rows`), grouped next to the method itself.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Sections of a result file whose numeric leaves are aggregated over seeds.
SCALAR_SECTIONS = (
    "clean",
    "random_rotation",
    "shifts",
    "published_corruptions",
    "rotation_sweep",
    "ood",
    "uncertainty",
    "selective",
    "temperature_scaling",
    "conformal",
)
METHOD_ORDER = ("gflowout", "id_gflowout", "mc_dropout", "concrete", "contextual", "none", "ensemble")
TS_SUFFIX = " + TS"
# the sections of a result's "ts" block: the same as the run's own, with every sample's logits divided by T
TS_SECTIONS = (
    "clean",
    "random_rotation",
    "shifts",
    "published_corruptions",
    "rotation_sweep",
    "ood",
    "selective",
    "figures",
    "conformal",
)


def mean_and_standard_error(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and standard error (sample std with ddof=1 over sqrt(n)); NaN error for one value."""
    array = np.asarray([v for v in values if v is not None], dtype=float)
    if array.size == 0:
        return math.nan, math.nan
    if array.size == 1:
        return float(array[0]), math.nan
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(array.size))


class Stat(tuple):
    """(mean, standard error) of a metric over a group's seeds, with `with_value` of its `runs` having a value
    (a metric can be undefined in a run, e.g. accuracy among certain predictions when none is certain)."""

    with_value: int
    runs: int

    def __new__(cls, mean: float, standard_error: float, with_value: int, runs: int) -> Stat:
        stat = super().__new__(cls, (mean, standard_error))
        stat.with_value, stat.runs = with_value, runs
        return stat


def _leaves(tree: Any, prefix: tuple[str, ...] = ()) -> Iterable[tuple[tuple[str, ...], float | None]]:
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from _leaves(value, prefix + (str(key),))
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool) or tree is None:
        yield prefix, tree


@dataclass
class Group:
    """The runs of one (data set, method): seeds and the mean +- standard error of every metric."""

    dataset: str
    method: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[tuple[str, ...], tuple[float, float]] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return sorted(int(r["seed"]) for r in self.runs)

    def get(self, *path: str) -> tuple[float, float]:
        return self.stats.get(tuple(str(p) for p in path), (math.nan, math.nan))


def _method_key(method: str) -> tuple[int, str, bool]:
    base = method.removesuffix(TS_SUFFIX)
    return (METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER), base, base != method)


def with_temperature_rows(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The runs, and for each run with a "ts" section one more: method "METHOD + TS" with the tempered sections,
    its "temperature_scaling" record, and the run's training time (TS costs no training)."""
    expanded = [dict(run) for run in runs]
    for run in runs:
        ts = run.get("ts")
        if not isinstance(ts, Mapping):
            continue
        derived = {
            key: run[key] for key in ("schema_version", "run_id", "seed", "dataset", "train_time_s") if key in run
        }
        derived.update({section: ts[section] for section in TS_SECTIONS if section in ts})
        derived["method"] = f"{run['method']}{TS_SUFFIX}"
        derived["temperature_scaling"] = run.get("temperature_scaling", {"temperature": ts.get("temperature")})
        expanded.append(derived)
    return expanded


def is_temperature_method(method: str) -> bool:
    """Whether a row's method name is a temperature-scaled twin ("METHOD + TS")."""
    return method.endswith(TS_SUFFIX)


def is_temperature_row(group: Group) -> bool:
    return is_temperature_method(group.method)


def aggregate(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[Group]]:
    """Group runs by data set then method (in a fixed method order, each method's "+ TS" row after it), with
    mean +- SE per metric path. Runs with a "ts" section also give a "METHOD + TS" group (`with_temperature_rows`)."""
    grouped: dict[tuple[str, str], Group] = {}
    for run in with_temperature_rows(runs):
        key = (run["dataset"], run["method"])
        grouped.setdefault(key, Group(*key)).runs.append(dict(run))
    by_dataset: dict[str, list[Group]] = defaultdict(list)
    for (dataset, _), group in sorted(grouped.items(), key=lambda item: (item[0][0], _method_key(item[0][1]))):
        values: dict[tuple[str, ...], list[float | None]] = defaultdict(list)
        for run in group.runs:
            for section in SCALAR_SECTIONS:
                for path, value in _leaves(run.get(section, {}), (section,)):
                    values[path].append(value)
            for timing in ("train_time_s", "eval_time_s"):
                if run.get(timing) is not None:
                    values[(timing,)].append(run[timing])
        group.stats = {
            path: Stat(*mean_and_standard_error(v), with_value=sum(x is not None for x in v), runs=len(group.runs))
            for path, v in values.items()
        }
        by_dataset[dataset].append(group)
    return dict(by_dataset)


def format_stat(stat: tuple[float, float], digits: int = 4) -> str:
    """ "mean ± SE" ("mean" for one value, "-" for none), with "(n=k)" when only k of the group's runs had a value."""
    mean, se = stat
    if mean is None or math.isnan(mean):
        return "-"
    text = f"{mean:.{digits}f}" if math.isnan(se) else f"{mean:.{digits}f} ± {se:.{digits}f}"
    if isinstance(stat, Stat) and stat.with_value < stat.runs:
        return f"{text} (n={stat.with_value})"
    return text


def _sorted_keys(keys: Iterable[str]) -> list[str]:
    def key(k: str) -> tuple[int, float | str]:
        try:
            return (0, float(k))
        except ValueError:
            return (1, k)

    return sorted(set(keys), key=key)


def _subkeys(groups: Sequence[Group], *prefix: str) -> list[str]:
    depth = len(prefix)
    return _sorted_keys(p[depth] for g in groups for p in g.stats if p[:depth] == prefix and len(p) > depth)
