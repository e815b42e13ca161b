"""Reports: aggregate runs over seeds and write Markdown tables, PNG figures and one HTML page.

`write_report(results_dir, out_dir)` reads every run under `results_dir`: benchmark result files (schema in
`gflowout.eval.evaluate`) and `gflowout train` run folders (clean test metrics only), groups them by (data
set, method) and reports each metric as mean +- standard error over seeds (standard error = sample standard
deviation / sqrt(n); a single seed has none and shows the mean alone). Per data set it writes the settings
the runs share, the summary table, the tests over seeds (`gflowout.eval.significance`), the detail tables of
`build_tables`, the cost and the figures of `build_figures`, to `report.md`, `figures/*.png` and
`report.html` (the figures inline as base64, so the page is one self-contained file, or linked to figures/:
`gflowout.eval.report_page`). The head and tail
tables are the lists `HEAD_TABLES` and `TAIL_TABLES`: a new table is one more function there.

Temperature scaling: a run evaluated with a temperature fitted on its validation split (section "ts" of
its result file) is also reported as the method "METHOD + TS" (`with_temperature_rows`), in every table
and figure that the tempered numbers exist for, next to the method itself. Selective prediction: a table
of AURC and accuracy at 90 / 95 / 99 % coverage per condition and score, and a figure of the
risk-coverage curves (mean over seeds, with a standard-error band).
Conformal prediction sets (`gflowout.eval.report_conformal`): coverage and mean set size per method and score,
clean and under every shift and rotation, size-stratified coverage, and figures against severity and angle; a
result without them (older files) leaves the section out.

Two kinds of corrupted test sets are kept apart: our generated "-style" shifts (section "shifts",
titled "generated ... -style shifts") and, when a run evaluated them, the PUBLISHED CIFAR-10-C /
CIFAR-100-C files (section "published_corruptions", titled "PUBLISHED CIFAR-10-C files"), each with
its own tables and figures.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gflowout import __version__
from gflowout.eval import comparison, report_ablation, report_posthoc, significance
from gflowout.eval.aggregate import (
    METHOD_ORDER,
    SCALAR_SECTIONS,
    TS_SECTIONS,
    TS_SUFFIX,
    Group,
    Stat,
    _subkeys,
    aggregate,
    format_stat,
    is_temperature_row,
    mean_and_standard_error,
    with_temperature_rows,
)
from gflowout.eval.report_figures import _pool_histograms, build_figures, seeds_phrase
from gflowout.eval.report_page import figure_html, figure_markdown, write_page
from gflowout.eval.report_tables import CLEAN_METRICS, CURVE_METRICS, OOD_METRICS, build_tables
from gflowout.eval.tables import Table, inline_html, table_html, table_markdown
from gflowout.results import load_report_runs, load_results

# the parts of a report live in gflowout.eval.aggregate (over seeds), .report_tables and .report_figures; their
# public names stay importable from here
__all__ = [
    "CLEAN_METRICS",
    "CURVE_METRICS",
    "METHOD_ORDER",
    "OOD_METRICS",
    "SCALAR_SECTIONS",
    "TS_SECTIONS",
    "TS_SUFFIX",
    "Group",
    "Stat",
    "Table",
    "_pool_histograms",
    "aggregate",
    "build_figures",
    "build_tables",
    "format_stat",
    "is_temperature_row",
    "load_results",
    "mean_and_standard_error",
    "seeds_phrase",
    "summarise_result",
    "summary_table",
    "table_html",
    "table_markdown",
    "with_temperature_rows",
    "write_report",
]


# --- the report --------------------------------------------------------------------------------
# The sections at the head of each data set, in order; each returns a table or None (nothing to show).
HEAD_TABLES: list[Callable[[str, Sequence[Group]], Table | None]] = [
    comparison.build_summary_table,
    significance.build_significance_table,
]
# After the detail tables of `build_tables`.
TAIL_TABLES: list[Callable[[str, Sequence[Group]], Table | None]] = [
    comparison.build_per_seed_table,
    comparison.build_cost_table,
]


def _settings_markdown(rows: Sequence[tuple[str, str]]) -> str:
    return "\n".join(["| setting | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]) + "\n"


def _settings_html(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td>{inline_html(k)}</td><td>{inline_html(v)}</td></tr>" for k, v in rows)
    return f'<table class="settings"><tbody>{body}</tbody></table>'


def _sources_note(runs: Sequence[Mapping[str, Any]]) -> str:
    trained = [r for r in runs if str(r.get("source", "")).startswith("gflowout train")]
    if not trained:
        return ""
    return (
        f"{len(trained)} of the runs are `gflowout train` run folders: they record only the clean test metrics "
        "of the best checkpoint (accuracy, NLL, Brier, ECE with 15 bins), so their other cells are empty (-); "
        "`gflowout evaluate --full` gives the rest."
    )


def _commands_note(results_dir: Path) -> str:
    """A pointer to the COMMANDS.md kept beside the results (how they were made), when there is one."""
    for folder in (results_dir, results_dir.parent):
        if (folder / "COMMANDS.md").is_file():
            return (
                f"How these runs were made (the commands, the code's commits, the machine and the wall times): "
                f"`{folder / 'COMMANDS.md'}`."
            )
    return ""


def write_report(
    results_dir: str | Path,
    out_dir: str | Path,
    title: str = "gflowout report",
    learning: Mapping[str, Any] | None = None,
    embed_figures: bool = True,
    ablations: Sequence[str | Path] = (),
) -> Path:
    """Aggregate the runs under `results_dir` (benchmark result files and `gflowout train` run folders); write
    report.md, figures/ and report.html to `out_dir`: the figures inline, one self-contained file, or with
    `embed_figures=False` linked to figures/ (`gflowout.eval.report_page`).

    Per data set: the settings, a summary table, the tests over seeds, the detail tables, the cost and the
    figures. Post-hoc fits found under `results_dir` (`gflowout posthoc` comparison.json files) get their own
    section (`gflowout.eval.report_posthoc`), and so does each folder of `ablations` (the same protocol with one
    setting changed, reported beside the runs it changes: `gflowout.eval.report_ablation`). With `learning` (the
    runs of a learning.json, `gflowout.experiments.learning`), a last section: what the masks became, the
    GFlowNets' training curves and the cost per epoch. Returns the path of the HTML page.
    """
    runs = load_report_runs(results_dir)
    ablation_sections = [  # read and checked before anything is written
        (folder, report_ablation.ablation_tables(runs, report_ablation.load_ablation(folder), learning))
        for folder in report_ablation.ablation_folders(results_dir, ablations)
    ]
    out_dir = Path(out_dir)
    figure_dir = out_dir / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    by_dataset = aggregate(runs)
    intro = (
        f"{len(runs)} run(s) from `{results_dir}`, reported by gflowout {__version__}. Each cell is the mean ± "
        "standard error over seeds "
        "(one seed: the mean alone). Predictive: the mean softmax of S mask samples."
    )
    sources = " ".join(note for note in (_sources_note(runs), _commands_note(Path(results_dir))) if note)
    markdown = [f"# {title}", "", intro, "", *([sources, ""] if sources else [])]
    page = [
        f"<h1>{html.escape(title)}</h1><p>{inline_html(intro)}</p>"
        + (f'<p class="note">{inline_html(sources)}</p>' if sources else "")
    ]
    for dataset, groups in by_dataset.items():
        settings = comparison.settings_rows([r for g in groups if not is_temperature_row(g) for r in g.runs])
        markdown += [f"## {dataset}", "", "### Settings", "", _settings_markdown(settings)]
        page.append(f"<h2>{html.escape(dataset)}</h2><h3>Settings</h3>{_settings_html(settings)}")
        tables = [t for build in HEAD_TABLES if (t := build(dataset, groups)) is not None]
        tables += build_tables(dataset, groups)
        tables += [t for build in TAIL_TABLES if (t := build(dataset, groups)) is not None]
        _append_tables(tables, markdown, page)
        for caption, path in build_figures(dataset, groups, figure_dir):
            markdown += figure_markdown(caption, path, out_dir)
            page.append(figure_html(caption, path, out_dir, embed_figures))
    posthoc = report_posthoc.posthoc_tables(report_posthoc.load_posthoc_runs(results_dir))
    if posthoc:
        heading = "Post-hoc GFlowOut on the trained networks"
        markdown += [f"## {heading}", ""]
        page.append(f"<h2>{html.escape(heading)}</h2>")
        _append_tables(posthoc, markdown, page)
    for folder, tables in ablation_sections:
        heading = f"Ablation: {folder}"
        markdown += [f"## {heading}", ""]
        page.append(f"<h2>{html.escape(heading)}</h2>")
        _append_tables(tables, markdown, page)
    if learning:
        _learning_section(dict(learning), figure_dir, out_dir, markdown, page, embed_figures)
    return write_page(out_dir, title, markdown, page)


def _append_tables(tables: Sequence[Table], markdown: list[str], page: list[str]) -> None:
    """Each table to both pages: a Markdown section and an HTML table."""
    for table in tables:
        markdown.append(table_markdown(table))
        page.append(table_html(table))


def _learning_section(
    learning: dict[str, Any], figure_dir: Path, out_dir: Path, markdown: list[str], page: list[str], embed: bool
) -> None:
    """Append "What the masks became", the training curves and the cost per epoch to both pages."""
    from gflowout.eval import learning_report

    heading = "What the GFlowNets learned, and the cost per epoch"
    markdown += [f"## {heading}", ""]
    page.append(f"<h2>{html.escape(heading)}</h2>")
    tables = [
        learning_report.best_epoch_table(learning, METHOD_ORDER),
        learning_report.learning_table(learning),
        learning_report.cost_table(learning, METHOD_ORDER),
    ]
    _append_tables([t for t in tables if t is not None], markdown, page)
    figures = [
        (
            learning_report.plot_mask_curves(learning, figure_dir / "mask_curves.png"),
            learning_report.mask_curves_caption,
        ),
        (
            learning_report.plot_learning_curves(learning, figure_dir / "learning_curves.png"),
            learning_report.learning_caption,
        ),
    ]
    for path, describe in figures:
        if path is None:
            continue
        caption = describe(learning)
        markdown += figure_markdown(caption, path, out_dir)
        page.append(figure_html(caption, path, out_dir, embed))


def summary_table(results_dir: str | Path) -> str:
    """A compact plain-text comparison (one row per data set and method) for the terminal.

    Columns: clean accuracy / NLL / ECE, accuracy under random rotation, mean accuracy over the shifted
    sets (generated here), the mean accuracy over the PUBLISHED -C files when any run has them, and
    AUROC of predictive entropy for each OOD set (mean over seeds).
    """
    return summary_of_results(load_report_runs(results_dir))


def summarise_result(result: Mapping[str, Any]) -> str:
    """`summary_table`'s one row, for a single result (`gflowout evaluate --full`), and its METHOD + TS row when the
    result has temperature-scaled sections."""
    return summary_of_results([result], temperature_rows=True)


def summary_of_results(runs: Sequence[Mapping[str, Any]], temperature_rows: bool = False) -> str:
    """The plain-text table of `summary_table` for results already loaded. Without `temperature_rows`, the runs' own
    rows only (the "+ TS" rows are in the report), so the demo's table reads as before."""
    groups = [g for gs in aggregate(runs).values() for g in gs if temperature_rows or not is_temperature_row(g)]
    pairs = _subkeys(groups, "ood")
    with_published = bool(_subkeys(groups, "published_corruptions"))
    header = [
        "data set",
        "method",
        "seeds",
        "accuracy",
        "NLL",
        "ECE",
        "rotated acc",
        "shifted acc",
        *(["published-C acc"] if with_published else []),
        *(f"AUROC {p}" for p in pairs),
    ]
    rows = []
    for g in groups:
        shifted = [v[0] for path, v in g.stats.items() if path[0] == "shifts" and path[-1] == "accuracy"]
        published = [
            v[0] for path, v in g.stats.items() if path[0] == "published_corruptions" and path[-1] == "accuracy"
        ]
        rows.append(
            [
                g.dataset,
                g.method,
                str(len(g.runs)),
                *(format_stat((g.get("clean", m)[0], math.nan)) for m in ("accuracy", "nll", "ece15")),
                format_stat((g.get("random_rotation", "accuracy")[0], math.nan)),
                format_stat((float(np.mean(shifted)) if shifted else math.nan, math.nan)),
                *(
                    [format_stat((float(np.mean(published)) if published else math.nan, math.nan))]
                    if with_published
                    else []
                ),
                *(format_stat((g.get("ood", p, "predictive_entropy", "auroc")[0], math.nan)) for p in pairs),
            ]
        )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
