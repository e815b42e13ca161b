"""The post-hoc rows of a benchmark report: `gflowout posthoc` comparisons found under the results folder.

Each comparison.json holds, for one trained network, the evaluation of its own method (the source, e.g. MC
dropout) and of GFlowOut fitted post hoc on it, on the same test images with the same seeds. Over the sources'
seeds they make their own small table group: the two rows (and their temperature-scaled twins) as mean ± SE,
the post-hoc GFlowOut tested against its source network seed by seed, and the fit's cost. They stay out of the
main summary because their evaluation settings (shift severities, test subset) may differ from the grid's; the
note of each table states them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gflowout.errors import DataError
from gflowout.eval import comparison, significance
from gflowout.eval.aggregate import aggregate
from gflowout.eval.tables import Table
from gflowout.results import read_run_config

__all__ = ["POSTHOC_REFERENCE", "load_posthoc_runs", "posthoc_tables"]

POSTHOC_REFERENCE = "gflowout (post-hoc)"


def _is_posthoc_comparison(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("posthoc"), dict) and isinstance(data.get("results"), dict)


def _fit_config(folder: Path) -> dict[str, Any]:
    """The data set and seed of the fit's config.yaml beside a comparison ({} without one): what a comparison
    written before its rows recorded them (a data set evaluated on clean metrics only) falls back on."""
    config = read_run_config(folder)
    if not isinstance(config, dict) or not isinstance(config.get("data"), dict) or "seed" not in config:
        return {}
    return {"dataset": config["data"].get("name"), "seed": config["seed"]}


def load_posthoc_runs(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every row of every post-hoc comparison.json under `results_dir`, as a result whose method is the row's
    name ("mc_dropout", "gflowout (post-hoc)") and whose "posthoc" entry is the fit's record; [] when there is
    none. A comparison.json that cannot be read, or whose rows lack a data set or seed, raises DataError."""
    runs: list[dict[str, Any]] = []
    for path in sorted(Path(results_dir).rglob("comparison.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise DataError(f"cannot read the post-hoc comparison {path}: {error}") from error
        if not _is_posthoc_comparison(data):
            continue
        fit = _fit_config(path.parent)
        for name, result in data["results"].items():
            run = {**fit, **result} if isinstance(result, dict) else {}
            if "dataset" not in run or "seed" not in run:
                raise DataError(
                    f"{path}: row {name!r} has no 'dataset' and 'seed' (nor has a config.yaml beside it); write it "
                    "again with `gflowout posthoc`"
                )
            run["method"] = name
            run["run_id"] = f"{path.parent.name}/{name}"
            run["posthoc"] = data["posthoc"]
            run["posthoc_evaluation"] = data.get("evaluation", {})
            runs.append(run)
    return runs


def _settings_text(runs: Sequence[Mapping[str, Any]]) -> str:
    evaluations = {json.dumps(r.get("posthoc_evaluation", {}), sort_keys=True) for r in runs}
    if len(evaluations) != 1:
        return "Evaluation: the comparisons used different settings (see each comparison.json)."
    evaluation = json.loads(evaluations.pop())
    limit = evaluation.get("limit")
    severities = ", ".join(str(s) for s in evaluation.get("severities", [])) or "none"
    shifts = (
        f"; shifts at severity {severities} only, so the corrupted accuracy here is not comparable with the main "
        "summary's"
        if any(r.get("shifts") for r in runs)
        else "; clean test metrics only"
    )
    return (
        f"Evaluation: S = {evaluation.get('samples', '?')}; "
        f"{'the whole test set' if not limit else f'a fixed subset of {limit} test images'}{shifts}."
    )


def _cost_table(dataset: str, runs: Sequence[Mapping[str, Any]]) -> Table | None:
    fits = {int(r["seed"]): r["posthoc"] for r in runs if r["method"] == POSTHOC_REFERENCE}
    if not fits:
        return None

    def cell(fit: Mapping[str, Any], key: str, digits: int) -> str:
        value = fit.get(key)
        return "-" if value is None else f"{float(value):.{digits}f}"

    return Table(
        f"{dataset}: the cost of the post-hoc fit",
        ["seed", "fit epochs", "fit (s)", "source training (s)", "fit / source training", "fit resumed"],
        [
            [
                str(seed),
                str(fit.get("fit_epochs", "-")),
                cell(fit, "fit_time_s", 0),
                cell(fit, "source_train_time_s", 0),
                cell(fit, "fit_time_fraction", 3),
                "yes" if fit.get("resumed") else "no",
            ]
            for seed, fit in sorted(fits.items())
        ],
        note="Wall time of fitting the GFlowNet (posterior, prior and log Z) on the frozen network against the "
        "source run's own training, one row per seed: the machine may have run other work, and some times are "
        "partial, so no mean is taken. A fit that was stopped and resumed records only its last session (fit "
        "resumed: yes). A source run trained by a gflowout older than the one that adds up a resumed run's "
        "sessions records only its last call, which is seconds when that call found the training already "
        "finished. Read each time as a lower bound and each ratio as indicative only.",
    )


def _source(run: Mapping[str, Any]) -> str:
    return str(run["posthoc"].get("source_method", "?"))


def posthoc_tables(runs: Sequence[Mapping[str, Any]]) -> list[Table]:
    """Per data set and source method (the networks fitted on): the post-hoc summary (each row mean ± SE over
    the source networks' seeds), GFlowOut post hoc tested against its source network seed by seed, and the
    fit's cost; [] without post-hoc runs. Two comparisons of one source network and seed raise DataError."""
    tables: list[Table] = []
    for dataset, source in sorted({(r["dataset"], _source(r)) for r in runs}):
        own = [r for r in runs if r["dataset"] == dataset and _source(r) == source]
        seen: dict[tuple[str, int], str] = {}
        for run in own:
            key = (run["method"], int(run["seed"]))
            if key in seen:
                raise DataError(
                    f"two post-hoc comparisons of the {source} network of seed {key[1]} on {dataset} "
                    f"({seen[key]} and {run['run_id']}): they would count as two seeds; keep one"
                )
            seen[key] = run["run_id"]
        fitted = [r for r in own if r["method"] == POSTHOC_REFERENCE]
        if not fitted:
            continue
        groups = aggregate(own)[dataset]
        summary = comparison.build_summary_table(dataset, groups)
        summary.title = f"{dataset}: post-hoc GFlowOut on the trained {source} networks"
        summary.note = (
            "Each post-hoc fit freezes one trained network and learns only GFlowOut's posterior, prior and log Z; "
            f"both rows evaluate the same network on the same test images. {_settings_text(own)} "
            + comparison.SUMMARY_NOTE
        )
        tables.append(summary)
        tested = significance.build_significance_table(dataset, groups, reference=POSTHOC_REFERENCE)
        if tested is not None:
            tested.title = f"{dataset}: is post-hoc GFlowOut better than the {source} network it was fitted on?"
            tables.append(tested)
        cost = _cost_table(dataset, fitted)
        if cost is not None:
            cost.title = f"{dataset}: the cost of the post-hoc fit on the {source} networks"
            tables.append(cost)
    return tables
