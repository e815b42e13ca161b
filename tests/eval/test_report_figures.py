"""The written report on a fixture of perturbed real results: every figure, captions with seed counts, no
Markdown left in the HTML, `gflowout train` run folders read; and the figure functions' promises (bars for
one severity, ECE and bin counts on reliability diagrams, histogram bins that fit the data)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml

from gflowout.eval import plots
from gflowout.eval.evaluate import histogram_edges
from gflowout.eval.report import _pool_histograms, aggregate, build_figures, write_report
from tests.helpers.report import fixture_runs, write_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def captured(monkeypatch) -> list[plt.Figure]:
    """The figures the plot functions draw, kept open instead of saved."""
    figures: list[plt.Figure] = []

    def keep(figure: plt.Figure, path: str | Path, tight: bool = True) -> Path:
        figures.append(figure)
        return Path(path)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def test_report_of_the_fixture_writes_every_figure_and_a_clean_page(tmp_path: Path):
    results = write_runs(tmp_path / "results", fixture_runs())
    html_path = write_report(results, tmp_path / "report")
    figures = {p.name: p for p in (tmp_path / "report" / "figures").glob("*.png")}
    expected = {
        "mnist_reliability_clean.png",
        "mnist_reliability_random_rotation.png",
        "mnist_severity.png",
        "mnist_shift_accuracy.png",
        "mnist_rotation.png",
        "mnist_ood_hist_fashion-mnist.png",
        "mnist_ood_roc_fashion-mnist.png",
        "mnist_ood_hist_animal-mnist.png",
        "mnist_ood_roc_animal-mnist.png",
    }
    assert expected <= set(figures)
    for path in figures.values():
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000

    page = html_path.read_text()
    assert "`" not in page and "**" not in page  # Markdown rendered, not leaked
    assert "<code>" in page and "<strong>" in page
    assert page.count('src="data:image/png;base64,') == len(figures) and "figures/" not in page
    markdown = (tmp_path / "report" / "report.md").read_text()
    head = markdown[: markdown.index("### mnist: clean test set")]
    assert head.index("### Settings") < head.index("### mnist: summary") < head.index("tests over seeds")
    assert "| method | seeds | accuracy ↑ | NLL ↓ | ECE (15 bins) ↓ | Brier ↓ | rotated accuracy ↑ |" in head
    assert "| mnist: cost" not in markdown and "### mnist: cost" in markdown
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert len(captions) == len(figures)
    assert all("3 seeds per method" in caption for caption in captions)
    roc = [c for c in captions if c.startswith("OOD ROC")]
    assert roc and all("averaging their true-positive rates" in c for c in roc)


def test_link_figures_writes_a_page_that_links_every_figure_beside_it(tmp_path: Path):
    from gflowout.cli.main import main

    results = write_runs(tmp_path / "results", fixture_runs())
    assert main(["report", str(results), "--out", str(tmp_path / "embedded")]) == 0
    assert main(["report", str(results), "--out", str(tmp_path / "linked"), "--link-figures"]) == 0
    embedded = (tmp_path / "embedded" / "report.html").read_text()
    linked = (tmp_path / "linked" / "report.html").read_text()
    sources = re.findall(r'<img alt="[^"]*" src="([^"]+)"', linked)
    figures = sorted(p.name for p in (tmp_path / "linked" / "figures").glob("*.png"))
    assert sorted(Path(s).name for s in sources) == figures and all(s.startswith("figures/") for s in sources)
    assert "base64" not in linked and len(linked) * 10 < len(embedded)
    strip = re.compile(r'src="[^"]+"')  # apart from where the figures come from, the two pages are the same
    assert strip.sub("", linked) == strip.sub("", embedded)
    assert (tmp_path / "linked" / "report.md").read_text() == (tmp_path / "embedded" / "report.md").read_text()


def test_a_train_run_folder_is_read_and_its_missing_sections_stay_empty(tmp_path: Path):
    runs = tmp_path / "runs"
    for method, seed, accuracy in [("gflowout", 1, 0.95), ("gflowout", 2, 0.97), ("mc_dropout", 1, 0.94)]:
        folder = runs / f"{method}-{seed}"
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text(
            yaml.safe_dump(
                {
                    "seed": seed,
                    "data": {"name": "mnist", "batch_size": 128},
                    "method": {"name": method},
                    "trainer": {"max_epochs": 200, "val_samples": 20, "val_every_n_epochs": 5},
                }
            )
        )
        (folder / "results.json").write_text(
            json.dumps(
                {
                    "method": method,
                    "dataset": "mnist",
                    "seed": seed,
                    "val_samples": 20,
                    "epochs": 200,
                    "test": {"accuracy": accuracy, "nll": 0.2, "ece": 0.01, "brier": 0.05, "count": 10000.0},
                }
            )
        )
    write_report(runs, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| gflowout | 2 | **0.9600 ± 0.0100** | **0.2000 ± 0.0000** |" in markdown
    assert "| mc_dropout | 1 | 0.9400 | 0.2000 |" in markdown  # its NLL ties, but one seed is not ranked against two
    # nothing else recorded: no other summary column
    assert "| method | seeds | accuracy ↑ | NLL ↓ | ECE (15 bins) ↓ | Brier ↓ |" in markdown
    assert "| validation every n epochs | 5 |" in markdown and "| test-set size | 10000 |" in markdown
    assert "3 of the runs are `gflowout train` run folders" in markdown
    # a single folder given directly is read too
    write_report(runs / "gflowout-1", tmp_path / "one")
    assert "| gflowout | 1 | 0.9500 | 0.2000 |" in (tmp_path / "one" / "report.md").read_text()


def test_one_severity_is_drawn_as_bars_not_one_dot(captured):
    one = {"gflowout": ([3.0], [0.9], [0.01]), "mc_dropout": ([3.0], [0.8], [0.02])}
    plots.plot_metric_curves({"accuracy": one}, "severity", "t", "unused.png")
    axis = captured[-1].axes[0]
    assert len(axis.patches) == 2
    heights = sorted(round(p.get_height(), 6) for p in axis.patches)
    assert heights == [0.8, 0.9]
    plots.plot_shift_grid(
        {"fog": one, "noise": {m: ([1.0, 3.0], [0.9, 0.8], [0, 0]) for m in one}}, "accuracy", "t", "unused.png"
    )
    fog, noise = captured[-1].axes[:2]
    assert len(fog.patches) == 2 and len(noise.patches) == 0 and len(noise.lines) >= 2


def test_reliability_diagram_shows_the_ece_and_the_bin_counts(captured):
    edges = np.linspace(0, 1, 16).tolist()
    bins = {
        "edges": edges,
        "count": [0] * 13 + [10, 90],
        "confidence": [None] * 13 + [0.9, 0.99],
        "accuracy": [None] * 13 + [0.8, 0.97],
    }
    plots.plot_reliability({"gflowout": bins}, "t", "unused.png")
    top, counts = captured[-1].axes
    assert "ECE (15 bins) 0.0280" in top.get_title()  # (10 * 0.1 + 90 * 0.02) / 100, by hand
    assert counts.get_yscale() == "log" and sorted(p.get_height() for p in counts.patches) == [10, 90]


def test_histogram_bins_fit_scores_that_pile_up_near_zero():
    rng = np.random.default_rng(0)
    entropy_in = np.exp(rng.normal(np.log(1e-4), 1.0, 5000))  # confident: entropies around 1e-4
    entropy_out = np.exp(rng.normal(np.log(0.3), 0.8, 5000))
    values = np.concatenate([entropy_in, entropy_out])
    edges, scale = histogram_edges(values, "predictive_entropy")
    assert scale == "log" and edges[-1] == pytest.approx(values.max())
    counts = np.histogram(np.clip(entropy_in, edges[0], edges[-1]), edges)[0]
    assert counts.max() < 0.3 * len(entropy_in)  # spread over many bins, not one bar
    max_probability = -(1 - entropy_in)  # negated max probability near -1
    edges, scale = histogram_edges(max_probability, "max_probability")
    assert scale == "log" and edges[0] > -1 and edges[-1] == pytest.approx(max_probability.max())
    constant, _ = histogram_edges(np.zeros(10), "mutual_information")
    assert constant[0] < 0 < constant[-1]


def test_histograms_with_their_own_bins_pool_over_seeds_keeping_every_count():
    parts = [
        {"edges": np.geomspace(1e-4, 1, 31).tolist(), "scale": "log", "in": [10] * 30, "out": [1] * 30},
        {"edges": np.geomspace(1e-5, 0.5, 31).tolist(), "scale": "log", "in": [20] * 30, "out": [2] * 30},
    ]
    pooled = _pool_histograms(parts, "predictive_entropy")
    assert pooled["scale"] == "log" and pooled["edges"][0] == pytest.approx(1e-5) and pooled["edges"][-1] == 1
    assert sum(pooled["in"]) == pytest.approx(900) and sum(pooled["out"]) == pytest.approx(90)


def test_build_figures_captions_count_seeds_per_method_when_they_differ(tmp_path: Path, captured):
    runs = [r for r in fixture_runs() if not (r["method"] == "none" and r["seed"] > 1)]
    captions = [c for c, _ in build_figures("mnist", aggregate(runs)["mnist"], tmp_path)]
    assert all("seeds per method: gflowout 3, mc_dropout 3, none 1" in c for c in captions)


def test_a_benchmark_folder_reads_its_results_not_its_harness_run_folders(tmp_path: Path):
    from gflowout.results import load_report_runs

    write_runs(tmp_path / "out" / "results", fixture_runs(methods=("gflowout",), seeds=(1,)))
    for seed in (1, 2):  # seed 2 trained but not yet evaluated: must not enter with its clean metrics alone
        folder = tmp_path / "out" / "runs" / f"mnist__gflowout__seed{seed}"
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text("seed: 1\n")
        (folder / "results.json").write_text(
            json.dumps({"method": "gflowout", "dataset": "mnist", "seed": seed, "test": {"accuracy": 0.9}})
        )
    assert [r["run_id"] for r in load_report_runs(tmp_path / "out")] == ["mnist__gflowout__seed1"]


def test_wide_tables_put_the_standard_error_under_the_mean_and_narrow_ones_keep_one_line():
    from gflowout.eval.tables import STACK_ABOVE, Table, table_html

    columns = STACK_ABOVE // len("0.9700 ± 0.0100") + 1
    wide = Table("t", [f"c{i}" for i in range(columns)], [["0.9700 ± 0.0100"] * columns])
    narrow = Table("t", ["a", "b"], [["0.9700 ± 0.0100", "better (+0.0100; p = 0.010)"]])
    assert '0.9700<br><span class="se">± 0.0100</span>' in table_html(wide)
    assert "0.9700 ± 0.0100" in table_html(narrow) and "<br>" not in table_html(narrow)


def test_a_temperature_scaled_row_takes_its_methods_colour_and_a_dashed_line():
    """Fourteen rows (seven methods and their "+ TS" twins) must not run out of distinct colours: each twin is
    drawn in its method's colour, dashed, and no two methods share a colour."""
    from gflowout.eval.plots import _colours, _dashes

    methods = ["gflowout", "id_gflowout", "mc_dropout", "concrete", "contextual", "none", "ensemble", "mine"]
    names = methods + [f"{m} + TS" for m in methods]
    colours = _colours(names)
    assert all(colours[f"{m} + TS"] == colours[m] for m in methods)
    assert len({colours[m] for m in methods}) == len(methods)
    assert _dashes("gflowout + TS") == "--" and _dashes("gflowout") == "-"
