"""The ablation rows of a benchmark report: the same protocol run again with one setting changed, beside the
runs it changes.

An ablation is a second benchmark folder (e.g. GFlowOut at a fixed beta = 1 instead of the paper's schedule):
its run ids equal the main grid's, so it lives in its own folder. `gflowout report MAIN --ablation DIR` reads
it beside MAIN: per data set and method of the ablation, the main runs of that method and the ablated ones as
mean ± SE, the ablated runs tested against the main ones seed by seed, the summary columns seed by seed and,
where both folders' reports hold a learning.json, what the masks became in each. The changed setting is read
from the runs' own configs, not from a label the user types, and an ablation evaluated differently from the
main runs is refused: its numbers would not be comparable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gflowout.config_compare import HARDWARE_KEYS, NEUTRAL_VALUES, comparable, flatten
from gflowout.errors import DataError
from gflowout.eval import comparison, significance
from gflowout.eval.aggregate import aggregate
from gflowout.eval.tables import Table
from gflowout.results import load_report_runs, read_learning, run_id

__all__ = [
    "Ablation",
    "ablation_folders",
    "ablation_tables",
    "changed_settings",
    "check_ablations",
    "load_ablation",
]

# Evaluation fields that may differ between two runs evaluated the same way (the seed is the run's own).
PER_RUN_EVALUATION_KEYS = frozenset({"seed"})
# Evaluation settings that only add sections to a result (temperature scaling, conformal sets): the ablation section
# compares neither (it leaves the "+ TS" rows out), so they may differ.
SECTION_ONLY_EVALUATION_KEYS = ("temperature_scaling", "conformal_")


@dataclass(frozen=True)
class Ablation:
    """One ablation folder's runs and, when its report holds one, the runs of its learning.json."""

    folder: Path
    runs: list[dict[str, Any]]
    learning: dict[str, Any] | None = None


def load_ablation(folder: str | Path) -> Ablation:
    """The runs under an ablation folder (a benchmark's output folder) and its report's learning.json when
    `gflowout report FOLDER` has written one. A folder without runs raises DataError."""
    folder = Path(folder)
    try:
        runs = load_report_runs(folder)
    except DataError as error:
        raise DataError(f"--ablation {folder}: {error} (check the --ablation path)") from None
    learning_path = folder / "report" / "learning.json"
    try:
        learning = read_learning(learning_path) if learning_path.is_file() else None
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read the ablation's {learning_path}: {error}") from error
    return Ablation(folder, runs, dict(learning) if learning else None)


def _config_of(run: Mapping[str, Any], method: str) -> dict[str, Any]:
    """A run's config as the numbers see it (`config_compare.comparable`: no hardware keys, keys at their neutral values
    or optimiser defaults, or empty blocks), without its seed and other methods' blocks. DataError without one."""
    config = run.get("config")
    if not isinstance(config, Mapping) or not config:
        raise DataError(
            f"run {run.get('run_id')!r} records no config, so what its ablation changes cannot be told; evaluate it "
            "again with `gflowout benchmark`"
        )
    return {
        key: value
        for key, value in comparable(config, optim_defaults=True).items()
        if key != "seed"
        and key not in HARDWARE_KEYS
        and not (key.startswith("methods.") and not key.startswith(f"methods.{method}."))
    }


def changed_settings(main: Sequence[Mapping[str, Any]], ablated: Sequence[Mapping[str, Any]]) -> dict[str, tuple]:
    """{setting: (main value, ablated value)} where the ablated runs' config differs from the main runs' of the
    same method (the main run of the same seed when there is one). The difference must be the same for every
    ablated run, else DataError: such runs do not ablate one thing."""
    method = str(ablated[0]["method"])
    by_seed = {int(r["seed"]): r for r in main}
    found: dict[str, tuple] | None = None
    first = ""
    for run in ablated:
        partner = by_seed.get(int(run["seed"]), main[0])
        theirs, ours = _config_of(partner, method), _config_of(run, method)
        keys = sorted(k for k in set(theirs) | set(ours) if theirs.get(k, _ABSENT) != ours.get(k, _ABSENT))
        diff = {k: (_shown(partner, k), _shown(run, k)) for k in keys}
        if found is None:
            found, first = diff, str(run["run_id"])
        elif diff != found:
            raise DataError(
                f"the ablation's {method} runs change different settings ({_describe(found)} in {first}, "
                f"{_describe(diff)} in {run['run_id']}); an ablation changes the same settings in every seed"
            )
    return found or {}


_ABSENT = object()


def _shown(run: Mapping[str, Any], key: str) -> Any:
    """A config value as the run's config states it: its own value, else the neutral value of a key added later,
    else "(default)" (a key the config leaves at its default)."""
    return flatten(run.get("config") or {}).get(key, NEUTRAL_VALUES.get(key, "(default)"))


def _describe(changes: Mapping[str, tuple]) -> str:
    return "; ".join(f"{key}: {old} -> {new}" for key, (old, new) in changes.items()) or "nothing"


def _label(method: str, changes: Mapping[str, tuple]) -> str:
    short = [key.rsplit(".", 1)[-1] for key in changes]
    names = short if len(set(short)) == len(short) else list(changes)
    settings = ", ".join(f"{name} = {new}" for name, (_, new) in zip(names, changes.values()))
    return f"{method} ({settings or 'rerun'})"


def _evaluation_of(run: Mapping[str, Any]) -> dict[str, Any]:
    """What a run's numbers depend on at evaluation: its evaluation block (without its own seed and keys at their
    neutral values), S, the test-set size and the OOD sets evaluated and skipped."""
    evaluation = comparable(run.get("evaluation") or {}, part="evaluation")
    setting = {
        f"evaluation.{k}": v
        for k, v in evaluation.items()
        if k not in PER_RUN_EVALUATION_KEYS and not k.startswith(SECTION_ONLY_EVALUATION_KEYS)
    }
    setting.update(
        samples=run.get("samples"),
        test_size=run.get("test_size"),
        ood_sets=sorted(run.get("ood") or {}),
        ood_skipped=sorted(run.get("ood_skipped") or {}),
    )
    return setting


def _check_evaluation(main: Sequence[Mapping[str, Any]], ablated: Sequence[Mapping[str, Any]], where: str) -> None:
    """Refuse runs evaluated differently (evaluation block, S, test set, OOD sets), naming the fields and runs:
    first among the main runs themselves, then the ablation's against the main runs."""
    reference = main[0]
    expected = _evaluation_of(reference)
    for run in [*main[1:], *ablated]:
        found = _evaluation_of(run)
        fields = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        if not fields:
            continue
        in_main = any(run is m for m in main)
        other = f"{'main' if in_main else 'ablated'} run {run['run_id']}"
        listed = "; ".join(
            f"{k}: {_shown_evaluation(reference, k)!r} in main run {reference['run_id']}, "
            f"{_shown_evaluation(run, k)!r} in {other}"
            for k in fields
        )
        whose = "two of the main runs were" if in_main else "the ablation's runs were"
        raise DataError(
            f"{where}: {whose} evaluated differently ({listed}), so their numbers are not comparable; "
            "evaluate all of them with the same benchmark `evaluation:` block"
        )


def _shown_evaluation(run: Mapping[str, Any], field: str) -> Any:
    """An evaluation field as the run's result file records it (a neutral value where the file predates it)."""
    if field.startswith("evaluation."):
        name = field.removeprefix("evaluation.")
        return (run.get("evaluation") or {}).get(name, NEUTRAL_VALUES.get(field, "(absent)"))
    return _evaluation_of(run).get(field)


def _seeds(seeds: Sequence[int] | set[int]) -> str:
    ordered = sorted(seeds)
    return f"seed{'s' if len(ordered) != 1 else ''} {', '.join(map(str, ordered))}"


def _pronoun(seeds: Sequence[int]) -> str:
    return "it" if len(seeds) == 1 else "them"


def _commits_text(main: Sequence[Mapping[str, Any]], ablated: Sequence[Mapping[str, Any]]) -> str:
    def commits(runs: Sequence[Mapping[str, Any]]) -> str:
        found = sorted({str(r["commit"])[:7] for r in runs if r.get("commit")})
        missing = any(not r.get("commit") for r in runs)
        return ", ".join(found + (["not recorded"] if missing else []))

    return f" Code: commit {commits(main)} (main runs), {commits(ablated)} (ablated runs)."


def _mask_table(
    title: str, parts: Sequence[tuple[Mapping[str, Any] | None, str, str]], dataset: str, seeds: set[int]
) -> Table | None:
    """The "What the masks became" rows of each (learning runs, method, label) part, for `seeds`, one table."""
    from gflowout.eval import learning_report

    rows, header, note = [], None, ""
    for learning, method, label in parts:
        if not learning:
            continue
        own = {k: v for k, v in learning.items() if k in {run_id(dataset, method, seed) for seed in seeds}}
        table = learning_report.learning_table(own, labels={method: label})
        if table is not None:
            rows += table.rows
            header, note = table.header, table.note
    if header is None or len({row[0] for row in rows}) < 2:
        return None
    return Table(title, header, rows, note=note)


def ablation_tables(
    main_runs: Sequence[Mapping[str, Any]],
    ablation: Ablation,
    main_learning: Mapping[str, Any] | None = None,
) -> list[Table]:
    """Per data set and method of the ablation: the summary (main and ablated rows), the ablated runs tested
    against the main ones seed by seed, the summary columns seed by seed, and what the masks became in both
    when both learning.json files are there. DataError when the main results have no runs of an ablated method,
    or the two were evaluated differently."""
    tables: list[Table] = []
    for dataset, method in sorted({(r["dataset"], r["method"]) for r in ablation.runs}):
        ablated = [r for r in ablation.runs if (r["dataset"], r["method"]) == (dataset, method)]
        main = [r for r in main_runs if (r["dataset"], r["method"]) == (dataset, method)]
        where = f"ablation {ablation.folder}, {method} on {dataset}"
        if not main:
            raise DataError(
                f"{where}: the main results have no {method} runs on {dataset} to compare with; point --ablation "
                "at a folder that reruns methods of the main grid"
            )
        common = {int(r["seed"]) for r in main} & {int(r["seed"]) for r in ablated}
        if not common:
            raise DataError(
                f"{where}: no seed is in both the main runs and the ablation's, so nothing can be paired; run the "
                "ablation with seeds of the main grid"
            )
        main_only = sorted({int(r["seed"]) for r in main} - common)
        ablation_only = sorted({int(r["seed"]) for r in ablated} - common)
        main = [r for r in main if int(r["seed"]) in common]
        ablated = [r for r in ablated if int(r["seed"]) in common]
        _check_evaluation(main, ablated, where)
        changes = changed_settings(main, ablated)
        label = _label(method, changes)
        rows = [{k: v for k, v in r.items() if k != "ts"} for r in main]  # no + TS rows: one change at a time
        rows += [{**{k: v for k, v in r.items() if k != "ts"}, "method": label} for r in ablated]
        groups = aggregate(rows)[dataset]
        changed = (
            "; ".join(f"`{key}` {old} in the main runs, {new} here" for key, (old, new) in changes.items())
            or "no setting (a rerun of the same configuration)"
        )
        own_report = (
            f" The ablation's own report ({ablation.folder / 'report' / 'report.md'}) draws its masks and training "
            "curves over epochs."
            if (ablation.folder / "report" / "report.md").is_file()
            else ""
        )
        summary = comparison.build_summary_table(dataset, groups)
        summary.title = f"{dataset}: ablation, {label} beside {method}"
        summary.note = (
            f"The ablated runs ({ablation.folder}) change {changed}; everything else in the config, and the "
            "evaluation (its settings, S, the test set and the OOD sets: checked), is "
            f"the main runs'. Both rows over the seeds the two share ({_seeds(common)}"
            + "".join(
                f"; {_seeds(seeds)} ({side} only) left out until the other side has {_pronoun(seeds)}"
                for seeds, side in ((main_only, "main runs"), (ablation_only, "ablation"))
                if seeds
            )
            + ")."
            + _commits_text(main, ablated)
            + " Without temperature scaling."
            + own_report
            + " "
            + comparison.SUMMARY_NOTE
        )
        tables.append(summary)
        tested = significance.build_significance_table(dataset, groups, reference=label)
        if tested is not None:
            tested.title = f"{dataset}: is {label} better than {method}? (tests over seeds)"
            tables.append(tested)
        per_seed = comparison.build_per_seed_table(dataset, groups)
        if per_seed is not None:
            per_seed.title = f"{dataset}: ablation, the summary columns seed by seed"
            tables.append(per_seed)
        masks = _mask_table(
            f"{dataset}: what the masks became, {method} and {label}",
            [(main_learning, method, method), (ablation.learning, method, label)],
            dataset,
            common,
        )
        if masks is not None:
            tables.append(masks)
    return tables


def ablation_folders(results_dir: str | Path, folders: Sequence[str | Path]) -> list[Path]:
    """The ablation folders as paths, after refusing one that is the main results folder, lies inside it or holds
    it (its runs would be compared with themselves), or is named twice."""
    main = Path(results_dir).resolve()
    seen: dict[Path, str | Path] = {}
    for folder in folders:
        resolved = Path(folder).resolve()
        if resolved == main or main in resolved.parents or resolved in main.parents:
            raise DataError(
                f"--ablation {folder} is the main results folder {results_dir} or overlaps it: its runs would be "
                "compared with themselves; point --ablation at the rerun's own output folder"
            )
        if resolved in seen:
            raise DataError(f"--ablation {folder} is named twice (also as {seen[resolved]}); name it once")
        seen[resolved] = folder
    return [Path(folder) for folder in folders]


def check_ablations(results_dir: str | Path, folders: Sequence[str | Path]) -> None:
    """Raise the DataError `ablation_tables` would raise for any of `folders` beside the runs under
    `results_dir`, before a report writes anything (a typo in --ablation must not leave a half-written report)."""
    if not folders:
        return
    main_runs = load_report_runs(results_dir)
    for folder in ablation_folders(results_dir, folders):
        ablation_tables(main_runs, load_ablation(folder))
