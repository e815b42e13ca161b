"""`gflowout report RESULTS_DIR [--out DIR]`: tables, figures and an HTML page from result files."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="aggregate result files into Markdown tables, PNG figures and one HTML page",
        description="Read every result JSON under RESULTS_DIR (and every `gflowout train` run folder: its "
        "results.json), aggregate mean ± standard error over seeds, and write report.md, figures/*.png and "
        "report.html (self-contained, or linking figures/ with --link-figures): the settings, a summary table, "
        "tests over seeds, detail tables, the cost and the figures. Given one run folder of `gflowout train` "
        "(config.yaml and logs/), it also draws the run's mask diagnostics over epochs: run_report.md and "
        "figures/masks_*.png. Given the output folder of `gflowout transfer` or `gflowout active-learning`, it "
        "writes that protocol's report.",
    )
    parser.add_argument(
        "results_dir",
        help="a benchmark's output folder, any folder of result files or "
        "`gflowout train` run folders (searched recursively), or one run folder",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="report folder (default: RESULTS_DIR/report for a benchmark folder, else RESULTS_DIR/../report)",
    )
    parser.add_argument("--title", default="gflowout report")
    parser.add_argument(
        "--runs",
        default=None,
        help="the benchmark's run folders (RESULTS_DIR/runs when it exists): their training logs, "
        "event files and checkpoints are distilled into REPORT/learning.json (training curves, "
        "mask statistics of the best and last checkpoints, time per epoch) and reported; without "
        "run folders an existing REPORT/learning.json is reported again",
    )
    parser.add_argument(
        "--link-figures",
        action="store_true",
        help="report.html links figures/*.png instead of embedding them: a page about a tenth the size that "
        "must stay beside its figures/ folder (e.g. a report committed to a repository, so that no figure "
        "is stored twice); default: one self-contained page",
    )
    parser.add_argument(
        "--ablation",
        action="append",
        default=[],
        metavar="DIR",
        help="a benchmark's output folder that reruns some of RESULTS_DIR's methods with one setting changed "
        "(e.g. GFlowOut at a fixed beta = 1; repeatable): reported beside the same methods here, tested seed by "
        "seed, the changed setting read from the runs' configs; its mask statistics come from "
        "DIR/report/learning.json (write it first with `gflowout report DIR`)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gflowout.eval.mask_report import is_run_folder, write_run_report
    from gflowout.eval.report import write_report
    from gflowout.writable import writable_folder

    results = Path(args.results_dir)
    if args.ablation and (is_run_folder(results) or downstream_protocol(results)[0] is not None):
        from gflowout.errors import ConfigError

        raise ConfigError(
            f"--ablation compares a benchmark's runs with a rerun of them; {results} is a single run folder or a "
            "downstream protocol's results: leave --ablation out"
        )
    if is_run_folder(results):
        out = writable_folder(Path(args.out) if args.out else results / "report", "report folder", "--out")
        page = write_run_report(results, out)
        print(f"mask diagnostics report written: {page}")
        if (results / "results.json").is_file():
            html = write_report(results, out, title=args.title, embed_figures=not args.link_figures)
            print(f"report written: {out / 'report.md'} and {html}")
        return 0
    if args.ablation:
        from gflowout.eval.report_ablation import check_ablations

        check_ablations(results, args.ablation)  # before the report folder, learning.json or a figure is written
    if args.out:
        out = Path(args.out)
    elif (results / "results").is_dir():  # a benchmark's output folder: results/, runs/, report/
        out = results / "report"
    else:
        out = results.resolve().parent / "report"
    writable_folder(out, "report folder", "--out")
    protocol, folder = downstream_protocol(results)
    if protocol is not None:
        from gflowout.eval import downstream_report

        writer = {
            "transfer": downstream_report.write_transfer_report,
            "active_learning": downstream_report.write_active_learning_report,
        }[protocol]
        page = writer(folder, out, embed_figures=not args.link_figures)
        print(f"{protocol.replace('_', ' ')} report written: {page}")
        return 0
    from gflowout.experiments.learning import learning_for_report

    learning = learning_for_report(results, out, args.runs)
    html = write_report(
        results,
        out,
        title=args.title,
        learning=learning,
        embed_figures=not args.link_figures,
        ablations=args.ablation,
    )
    print(f"report written: {out / 'report.md'} and {html}")
    return 0


def downstream_protocol(results: Path) -> tuple[str | None, Path]:
    """("transfer" or "active_learning", the folder of its result files) when RESULTS holds a downstream
    protocol's results (the folder itself or its results/ subfolder), else (None, RESULTS)."""
    import json

    for folder in (results / "results", results):
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            try:
                protocol = json.loads(path.read_text()).get("protocol")
            except (OSError, ValueError, AttributeError):
                continue
            if protocol in ("transfer", "active_learning"):
                return protocol, folder
    return None, results
