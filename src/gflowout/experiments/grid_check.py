"""Check a whole benchmark grid before its first run trains, so a typo costs a second, not hours.

`check_grid` builds nothing heavy: it resolves every run's config (method names, config keys), checks the
backbone and method options against their constructors, the evaluation's shift names, and that every
data set a run trains on or is evaluated against is fetched. Problems are collected and raised together
in one ConfigError / DataError, each naming the key and, where one is close, the valid spelling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gflowout.config_types import closest_match
from gflowout.errors import ConfigError, DataError, GFlowOutError


def check_method_names(methods: Sequence[str], where: str) -> None:
    """A ConfigError for a method name that is neither built in nor `package.module:Class`, with the closest match."""
    from gflowout.methods import MethodName

    known = [m.value for m in MethodName]
    for name in methods:
        if ":" not in name and name not in known:
            raise ConfigError(f"{where}: unknown method {name!r}; choose one of {known}{closest_match(name, known)}")


def _missing_data(name: str, root: Any) -> str | None:
    """None when data set `name` is fetched and complete under `root`, else what is wrong and how to fix it."""
    from gflowout.data.sources import dataset_status

    try:
        status = dataset_status(name, root)
    except DataError as error:  # an unknown set name
        return str(error)
    if status.problem:
        return status.problem
    if status.present < status.total:
        return (
            f"data set {name!r} is not fetched ({status.present} of {status.total} files in {status.folder}): "
            f"run `gflowout data fetch {name}" + (f" --root {root}" if root else "") + "`"
        )
    return None


def check_grid(bench: Any, configs: Sequence[Any], root: Any = None, log: Callable[[str], None] = print) -> None:
    """Check every run of `bench` (one resolved config per run) before anything trains.

    Raises ConfigError (a bad option or shift name) or DataError (a data set that is not fetched) listing
    every problem found; logs one line for default OOD sets that are missing (those runs are evaluated
    without them, and the report says so).
    """
    from gflowout.eval.evaluate import DEFAULT_OOD
    from gflowout.training.build import validate_model_options

    where = str(bench.source or "benchmark")
    problems: list[str] = []
    seen: set[str] = set()
    for config in configs:
        key = f"{config.method.name}|{config.model.backbone}|{config.data.name}"
        if key in seen:
            continue
        seen.add(key)
        try:
            validate_model_options(config)
        except GFlowOutError as error:
            problems.append(f"method {config.method.name!r}: {error}")
    settings = bench.evaluation
    for kind in sorted({image_kind(config.data.name) for config in configs}):
        problems.extend(shift_problems(settings.shifts, settings.severities, kind))
    if problems:
        raise ConfigError(f"{where}: the grid cannot run; fix these before anything trains: " + " | ".join(problems))

    data_names = sorted({config.data.name for config in configs})
    missing = [message for name in data_names if (message := _missing_data(name, root))]
    for ood in settings.ood_sets or ():
        if ood not in data_names and (message := _missing_data(ood, root)):
            missing.append(f"evaluation.ood_sets: {message}")
    if missing:
        raise DataError(f"{where}: " + " | ".join(missing))
    if settings.ood_sets is None:
        absent = sorted({ood for name in data_names for ood in DEFAULT_OOD.get(name, ()) if _missing_data(ood, root)})
        if absent:
            log(
                f"note: OOD set(s) {', '.join(absent)} not fetched, so OOD detection against them is left out of "
                f"every run; `gflowout data fetch {' '.join(absent)}` first to include them"
            )


def shift_problems(shifts: Any, severities: Sequence[Any], kind: str) -> list[str]:
    """Unknown shift names (with the closest valid one) and severities outside 1..5 of an evaluation request."""
    from gflowout.data.shifts import available_shifts

    valid = available_shifts(kind)
    levels: list[Any] = list(severities)
    if isinstance(shifts, dict):
        levels += [v for values in shifts.values() for v in (values if isinstance(values, list) else [values])]
    problems = [
        f"evaluation.shifts: unknown {kind}-style shift {name!r}; valid: {valid}{closest_match(str(name), valid)}"
        for name in (shifts or ())
        if name not in valid
    ]
    bad = [v for v in levels if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 5]
    if bad:
        problems.append(f"evaluation severities must be integers 1..5, found {bad}")
    return problems


def image_kind(data_name: str) -> str:
    """'mnist' for the 28x28 grey sets, 'cifar' otherwise (the shift families, as the evaluation picks them)."""
    from gflowout.data.datasets import DATASET_INFO

    info = DATASET_INFO.get(data_name)
    return "mnist" if info is None or info.image_shape == (1, 28, 28) else "cifar"
