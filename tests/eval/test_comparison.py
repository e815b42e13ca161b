"""The head of a report: settings block, summary table (bold best mean, arrows, readable names), the tests
over seeds in plain words, and the cost table; checked on a perturbed real result and on hand-made numbers."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import stats

from gflowout.eval.comparison import (
    build_cost_table,
    build_per_seed_table,
    build_summary_table,
    settings_rows,
    summary_columns,
    values_by_seed,
)
from gflowout.eval.report import aggregate
from gflowout.eval.significance import (
    Comparison,
    build_significance_table,
    compare,
    holm_adjusted,
    verdict_cell,
    verdicts_in_words,
)
from gflowout.eval.tables import table_html, table_markdown
from tests.helpers.report import OFFSETS, fixture_run, fixture_runs


def test_summary_table_has_readable_names_arrows_and_the_best_mean_in_bold():
    runs = fixture_runs()
    groups = aggregate(runs)["mnist"]
    table = build_summary_table("mnist", groups)
    assert table.header[:6] == ["method", "seeds", "accuracy ↑", "NLL ↓", "ECE (15 bins) ↓", "Brier ↓"]
    assert {
        "rotated accuracy ↑",
        "rotated NLL ↓",
        "corrupted accuracy (mean) ↑",
        "AUROC animal-mnist ↑",
        "AUROC fashion-mnist ↑",
    } <= set(table.header)
    assert not any("ece15" in h or "_" in h for h in table.header)
    rows = {row[0]: i for i, row in enumerate(table.rows)}
    column = {h: j for j, h in enumerate(table.header)}
    # "none" has the largest accuracy offset, gflowout the lowest ECE offset (OFFSETS): bold there and only there
    assert OFFSETS["none"]["accuracy"] > OFFSETS["gflowout"]["accuracy"] > 0
    assert (rows["none"], column["accuracy ↑"]) in table.bold
    assert (rows["gflowout"], column["accuracy ↑"]) not in table.bold
    assert (rows["gflowout"], column["ECE (15 bins) ↓"]) in table.bold
    assert sum(1 for _, j in table.bold if j == column["accuracy ↑"]) == 1
    # the cell is mean ± standard error over the three seeds, computed here independently
    values = np.array([r["clean"]["accuracy"] for r in runs if r["method"] == "mc_dropout"])
    expected = f"{values.mean():.4f} ± {values.std(ddof=1) / math.sqrt(3):.4f}"
    assert table.rows[rows["mc_dropout"]][column["accuracy ↑"]] == expected
    markdown, page = table_markdown(table), table_html(table)
    assert f"**{table.rows[rows['none']][column['accuracy ↑']]}**" in markdown
    assert "<strong>" in page and "bold marks the best mean" in table.note.lower()
    assert "not a significant win" in table.note


def test_bold_ranks_only_the_rows_with_the_most_seeds():
    """A method with one seed so far (a grid still running) has the best accuracy here ("none", OFFSETS), yet
    bold goes to the best of the three-seed rows, and the note says which rows were not ranked."""
    runs = fixture_runs(methods=("gflowout", "mc_dropout")) + [fixture_run("none", 1)]
    table = build_summary_table("mnist", aggregate(runs)["mnist"])
    rows = {row[0]: i for i, row in enumerate(table.rows)}
    accuracy = table.header.index("accuracy ↑")
    assert float(table.rows[rows["none"]][accuracy]) > float(table.rows[rows["gflowout"]][accuracy].split()[0])
    assert (rows["none"], accuracy) not in table.bold and (rows["gflowout"], accuracy) in table.bold
    assert not any(i == rows["none"] for i, _ in table.bold)
    assert "among the rows with 3 seeds only" in table.note and "(none)" in table.note
    full = build_summary_table("mnist", aggregate(fixture_runs())["mnist"])
    assert "rows with" not in full.note  # every method has its three seeds: no such sentence


def test_corrupted_accuracy_is_the_mean_over_shifts_and_severities_then_over_seeds():
    runs = fixture_runs(methods=("gflowout",))
    table = build_summary_table("mnist", aggregate(runs)["mnist"])
    j = table.header.index("corrupted accuracy (mean) ↑")
    per_run = [np.mean([m["accuracy"] for levels in r["shifts"].values() for m in levels.values()]) for r in runs]
    assert table.rows[0][j].startswith(f"{np.mean(per_run):.4f} ± ")


def test_compare_says_better_worse_indistinguishable_or_n_a():
    rng = np.random.default_rng(0)
    noise = {s: 0.9 + rng.normal(0, 0.01) for s in (1, 2, 3)}
    clear = {s: v + 0.05 + rng.normal(0, 0.002) for s, v in noise.items()}
    assert compare(clear, noise, higher_is_better=True).verdict == "better"
    assert compare(clear, noise, higher_is_better=False).verdict == "worse"  # e.g. an NLL that went up
    assert compare(noise, clear, higher_is_better=True).verdict == "worse"
    same_seeds_noise = {s: 0.9 + rng.normal(0, 0.01) for s in (1, 2, 3)}
    result = compare(same_seeds_noise, noise, higher_is_better=True)
    assert result.verdict == "indistinguishable" and result.test == "paired t"
    a, b = [same_seeds_noise[s] for s in (1, 2, 3)], [noise[s] for s in (1, 2, 3)]
    d = np.subtract(a, b)  # paired t by hand: mean difference over its standard error, two-sided
    t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(t), df=2))
    assert result.p_value >= 0.05
    assert compare({1: 0.9, 2: 0.91}, {3: 0.5, 4: 0.52}, True).test == "Welch t"  # different seeds
    one = compare({1: 0.99}, noise, higher_is_better=True)
    assert one.verdict == "n/a" and math.isnan(one.p_value)


def test_the_same_difference_in_every_seed_is_no_test_and_no_claim():
    # accuracies on a 1e-4 grid: both seeds +0.0012, equal up to float rounding; scipy would give p ~ 1e-14
    ours, theirs = {1: 0.9812, 2: 0.9805}, {1: 0.9800, 2: 0.9793}
    assert stats.ttest_rel(list(ours.values()), list(theirs.values())).pvalue < 1e-6
    result = compare(ours, theirs, higher_is_better=True)
    assert result.verdict == "n/a" and math.isnan(result.p_value) and result.test == "paired t"
    assert verdict_cell(result, 4) == "n/a (+0.0012; the same difference in every seed: t undefined)"
    same = compare(ours, dict(ours), higher_is_better=True)  # identical runs: no difference at all
    assert same.verdict == "indistinguishable" and same.p_value == 1.0
    constant = compare({1: 0.9, 2: 0.9}, {3: 0.8, 4: 0.8}, higher_is_better=True)  # Welch, no spread either side
    assert constant.verdict == "n/a" and math.isnan(constant.p_value)
    # untested cells stay out of the Holm family and out of the words
    words = verdicts_in_words(
        {("mc_dropout", "clean_accuracy"): result}, summary_columns(fixture_runs()), ["mc_dropout"]
    )
    assert words == ""
    with pytest.raises(ValueError, match="no p-value"):
        holm_adjusted({"a": math.nan, "b": 0.01})


def test_significance_table_reads_the_fixture_in_plain_words():
    groups = aggregate(fixture_runs())["mnist"]
    table = build_significance_table("mnist", groups)
    assert table is not None and table.header == ["column", "gflowout vs mc_dropout", "gflowout vs none"]
    cells = {(row[0], header): cell for row in table.rows for header, cell in zip(table.header[1:], row[1:])}
    assert cells[("accuracy ↑", "gflowout vs mc_dropout")].startswith("better (+0.0")  # +0.05 against noise 0.002
    assert cells[("accuracy ↑", "gflowout vs none")].startswith("worse (-0.0")
    assert cells[("ECE (15 bins) ↓", "gflowout vs mc_dropout")].startswith("better (-0.0")  # lower ECE
    assert cells[("NLL ↓", "gflowout vs mc_dropout")].startswith("indistinguishable")  # noise only
    accuracy = next(i for i, row in enumerate(table.rows) if row[0] == "accuracy ↑")
    assert (accuracy, 1) in table.bold and (accuracy, 2) in table.bold
    assert "paired t-test, seed by seed" in table.note and "alpha = 0.05" in table.note
    assert "no win is claimed inside the noise" in table.note
    single = aggregate([fixture_run("gflowout", 1), fixture_run("mc_dropout", 1)])["mnist"]
    assert {row[1].split(" ")[0] for row in build_significance_table("mnist", single).rows} == {"n/a"}
    assert "In words" not in build_significance_table("mnist", single).note  # nothing tested, nothing said
    assert build_significance_table("mnist", aggregate(fixture_runs(methods=("mc_dropout", "none")))["mnist"]) is None


def test_the_significance_table_leaves_out_gflowouts_own_temperature_scaled_row():
    runs = fixture_runs()
    for run in runs:
        run["ts"] = {"temperature": 1.5, "clean": dict(run["clean"])}
        run["temperature_scaling"] = {"temperature": 1.5}
        if run["method"] == "gflowout":  # its tempered NLL is no longer its own: the two tests must differ
            run["ts"]["clean"]["nll"] -= 0.3 + 0.01 * run["seed"] ** 2
    groups = aggregate(runs)["mnist"]
    assert "gflowout + TS" in [g.method for g in groups] and "mc_dropout + TS" in [g.method for g in groups]
    table = build_significance_table("mnist", groups)
    assert "gflowout vs gflowout + TS" not in table.header
    # like with like: the tempered baseline meets gflowout's own tempered row, the plain one gflowout itself
    assert "gflowout + TS vs mc_dropout + TS" in table.header and "gflowout vs mc_dropout" in table.header
    assert "Like with like" in table.note and "Against mc_dropout + TS, gflowout + TS is" in table.note
    by_method = {g.method: g for g in groups}
    column = next(c for c in summary_columns(runs) if c.key == "clean_nll")
    ours = values_by_seed(by_method["gflowout + TS"], column)
    theirs = values_by_seed(by_method["mc_dropout + TS"], column)
    p_value = stats.ttest_rel([ours[s] for s in (1, 2, 3)], [theirs[s] for s in (1, 2, 3)]).pvalue
    cell = table.rows[[r[0] for r in table.rows].index("NLL ↓")][table.header.index("gflowout + TS vs mc_dropout + TS")]
    assert f"p = {p_value:.3f}" in cell or (p_value < 0.001 and "p < 0.001" in cell)


def test_settings_block_says_mixed_where_runs_differ():
    runs = fixture_runs()
    runs[0]["config"]["trainer"]["max_epochs"] = 200
    runs[1]["config"]["trainer"]["val_every_n_epochs"] = 5
    rows = dict(settings_rows(runs))
    assert rows["data set"] == "mnist" and rows["test samples S"] == "4" and rows["test-set size"] == "200"
    assert rows["seeds"] == "1, 2, 3" and rows["methods"] == "gflowout, mc_dropout, none"
    assert rows["epochs"].startswith("mixed (") and "200" in rows["epochs"]
    assert rows["validation every n epochs"].startswith("mixed (")
    assert rows["validation batches per check"] == "2"
    assert rows["commit"] == "not recorded"
    for run in runs:  # what benchmark, evaluate and train record now (gflowout.provenance)
        run.update(gflowout_version="0.1.0", commit="abc123")
    runs[0]["commit"] = None  # a file an older gflowout wrote
    recorded = dict(settings_rows(runs))
    assert recorded["gflowout version"] == "0.1.0"
    assert recorded["commit"] == "abc123 (not recorded for some runs)"
    runs = [r for r in runs if not (r["method"] == "none" and r["seed"] == 3)]
    assert dict(settings_rows(runs))["seeds"] == "mixed (gflowout: 1, 2, 3; mc_dropout: 1, 2, 3; none: 1, 2)"


def test_cost_table_gives_mean_wall_time_and_the_ratio_to_mc_dropout():
    table = build_cost_table("mnist", aggregate(fixture_runs())["mnist"])
    rows = {row[0]: row for row in table.rows}
    # train times 20 + 0.1 s, 10 + 0.1 s ... per seed (report_fixture): means 20.2 and 10.2
    assert rows["gflowout"][2].startswith("20.2 ± ") and rows["gflowout"][3].startswith(f"{20.2 / 10.2:.2f}×")
    assert rows["mc_dropout"][3].startswith("1.00×")
    # the fixture's file predates train_time_all_sessions: a resumed run may count its last session only
    assert rows["gflowout"][2].endswith("*") and "counts only its last session" in table.note
    complete = fixture_runs()
    for run in complete:
        run["train_time_all_sessions"] = True
    whole = build_cost_table("mnist", aggregate(complete)["mnist"])
    assert not any(row[2].endswith("*") or row[3].endswith("*") for row in whole.rows)
    assert "last session" not in whole.note
    for run in complete:
        run["train_time_all_sessions"] = run["method"] != "mc_dropout"  # only the reference is partial
    mixed = {row[0]: row for row in build_cost_table("mnist", aggregate(complete)["mnist"]).rows}
    assert not mixed["gflowout"][2].endswith("*") and mixed["gflowout"][3].endswith("×*")  # its ratio is off
    assert mixed["mc_dropout"][2].endswith("*") and mixed["mc_dropout"][3] == "1.00×"  # its own ratio is exact
    assert len(table.header) == 6 and "Peak memory" not in table.note  # no run measured its memory
    for run in complete:
        run["train_peak_rss_mb"] = {"gflowout": 600.0, "mc_dropout": 400.0}.get(run["method"], 300.0)
    measured = build_cost_table("mnist", aggregate(complete)["mnist"])
    assert measured.header[6:] == ["peak memory (MiB)", "memory / mc_dropout"] and "Peak memory" in measured.note
    by_method = {row[0]: row for row in measured.rows}
    assert by_method["gflowout"][6] == "600 ± 0" and by_method["gflowout"][7] == "1.50×"
    untimed = fixture_runs(methods=("gflowout",))
    for run in untimed:
        run["train_time_s"] = run["eval_time_s"] = None
    assert build_cost_table("mnist", aggregate(untimed)["mnist"]) is None


def test_the_tests_read_out_in_words_follow_the_table_cell_by_cell():
    groups = aggregate(fixture_runs())["mnist"]
    table = build_significance_table("mnist", groups)
    words = table.note.split("corrects for the whole table): ", 1)[1]
    sentences = {s.split(",")[0]: s for s in words.split(". ") if s}
    assert set(sentences) == {
        "Against mc_dropout",
        "Against none",
        "Corrected for all 18 tests of this table (Holm's step-down method",
    }
    for j, baseline in enumerate(("mc_dropout", "none"), start=1):
        sentence = sentences[f"Against {baseline}"]
        verdicts = {row[0]: row[j].split(" ")[0] for row in table.rows}
        same = sum(v == "indistinguishable" for v in verdicts.values())
        assert f"indistinguishable on the other {same} column" in sentence or same == 0
        lists = dict(re.findall(r"(better|worse) on (.*?)(?=; worse on |; indistinguishable|\.$)", sentence))
        named = {v: re.findall(r"(?:^|\), )(.+?) \([+-]\d", text) for v, text in lists.items()}
        for verdict in ("better", "worse"):
            expected = [h.rsplit(" ", 1)[0] for h, v in verdicts.items() if v == verdict]
            assert named.get(verdict, []) == expected
    assert "better on accuracy (+0.0" in sentences["Against mc_dropout"]
    assert "worse on accuracy (-0.0" in sentences["Against none"]


def test_holm_adjusted_p_values_match_the_step_down_procedure_by_hand():
    # sorted: d 0.005 x 4 = 0.02, a 0.01 x 3 = 0.03, c 0.03 x 2 = 0.06, b 0.04 x 1 = 0.04 -> kept monotone at 0.06
    adjusted = holm_adjusted({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    assert adjusted == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06, "d": 0.02})
    assert holm_adjusted({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}  # capped at 1
    assert holm_adjusted({}) == {}
    # Holm's procedure as written: step through the sorted p-values, reject while p_(i) < alpha / (m - i)
    rng = np.random.default_rng(3)
    for _ in range(50):
        p_values = dict(enumerate(rng.uniform(0, 0.05, size=8) ** rng.uniform(0.5, 2)))
        rejected = set()
        for rank, (key, p_value) in enumerate(sorted(p_values.items(), key=lambda item: item[1])):
            if p_value >= 0.05 / (len(p_values) - rank):
                break
            rejected.add(key)
        assert {k for k, p in holm_adjusted(p_values).items() if p < 0.05} == rejected


def test_the_words_say_what_survives_holms_correction_over_the_whole_table():
    groups = aggregate(fixture_runs())["mnist"]
    table = build_significance_table("mnist", groups)
    words = table.note.split("corrects for the whole table): ", 1)[1]
    last = words.rsplit(". ", 1)[-1] if not words.startswith("Corrected") else words
    assert last.startswith("Corrected for all 18 tests of this table (Holm's step-down method, alpha = 0.05)")
    assert "Holm-adjusted p" in words  # each claimed difference carries its adjusted p
    # the fixture's accuracy differences (+-0.05 against noise 0.002, three seeds) are large enough to survive
    assert "these remain: better on accuracy against mc_dropout" in last and "worse on accuracy against none" in last
    assert "one test in twenty" not in table.note and "a share alpha = 0.05 of the tests" in table.note
    # one p of 0.04 among three tests: significant alone, not after the correction (0.04 x 3 = 0.12)
    columns = [c for c in summary_columns(fixture_runs()) if c.key in ("clean_accuracy", "clean_nll", "clean_ece15")]
    results = {
        ("mc_dropout", columns[0].key): Comparison(0.01, 0.04, "paired t", "better"),
        ("mc_dropout", columns[1].key): Comparison(0.001, 0.5, "paired t", "indistinguishable"),
        ("mc_dropout", columns[2].key): Comparison(0.001, 0.6, "paired t", "indistinguishable"),
    }
    said = verdicts_in_words(results, columns, ["mc_dropout"])
    assert "p = 0.040; Holm-adjusted p = 0.120" in said
    assert said.endswith(
        "Corrected for all 3 tests of this table (Holm's step-down method, alpha = 0.05), "
        "no difference remains significant."
    )


def test_the_per_seed_table_holds_the_values_the_summary_averages_and_the_tests_pair():
    groups = aggregate(fixture_runs())["mnist"]
    per_seed = build_per_seed_table("mnist", groups)
    summary = build_summary_table("mnist", groups)
    assert per_seed is not None and per_seed.header[2:] == summary.header[2:]
    values: dict[tuple[str, str], dict[int, float]] = {}
    for row in per_seed.rows:
        for header, cell in zip(per_seed.header[2:], row[2:]):
            values.setdefault((row[0], header), {})[int(row[1])] = float(cell)
    assert set(map(len, values.values())) == {3}
    for row in summary.rows:
        for header, cell in zip(summary.header[2:], row[2:]):
            mean = float(cell.replace("**", "").split(" ± ")[0])
            assert np.mean(list(values[(row[0], header)].values())) == pytest.approx(mean, abs=1e-4)
    ours, theirs = values[("gflowout", "accuracy ↑")], values[("mc_dropout", "accuracy ↑")]
    p_value = stats.ttest_rel([ours[s] for s in (1, 2, 3)], [theirs[s] for s in (1, 2, 3)]).pvalue
    significance = build_significance_table("mnist", groups)
    cell = significance.rows[[r[0] for r in significance.rows].index("accuracy ↑")][1]
    assert f"{p_value:.3f}" in cell or (p_value < 0.001 and "p < 0.001" in cell)
    assert build_per_seed_table("mnist", aggregate([fixture_run("gflowout", 1)])["mnist"]) is None


def test_a_pipe_inside_a_cell_does_not_split_the_markdown_table():
    from gflowout.eval.tables import Table

    table = Table("t", ["method", "P(accurate | certain) ↑"], [["gflowout", "0.9 | 0.1"]], bold={(0, 1)})
    lines = [line for line in table_markdown(table).splitlines() if line.startswith("|")]
    cells = [re.split(r"(?<!\\)\|", line.strip())[1:-1] for line in lines]
    assert [len(c) for c in cells] == [2, 2, 2]  # header, separator, row: the same number of cells
    assert "P(accurate \\| certain) ↑" in lines[0] and "**0.9 \\| 0.1**" in lines[2]


def test_settings_block_names_each_methods_own_options():
    """A schedule and its ablation (gflowout, beta 1.0) must not show the same settings block."""
    runs = fixture_runs()
    assert "method options" not in dict(settings_rows(runs))  # no run records any
    for run in runs:
        options = {"gflowout": {"beta": "paper_mnist"}, "mc_dropout": {"keep_prob": 0.5}}.get(run["method"], {})
        run["config"]["methods"] = {run["method"]: {"options": options}}
    rows = dict(settings_rows(runs))
    others = ", ".join(m for m in rows["methods"].split(", ") if m not in ("gflowout", "mc_dropout"))
    assert others  # the fixture has methods without options, named as run with their defaults
    expected = f"gflowout (beta: paper_mnist); mc_dropout (keep_prob: 0.5); {others}: their defaults"
    assert rows["method options"] == expected
    runs[0]["config"]["methods"]["gflowout"]["options"]["beta"] = 1.0
    assert dict(settings_rows(runs))["method options"].startswith("gflowout (mixed (beta: 1.0; beta: paper_mnist))")
    assert list(dict(settings_rows(runs)))[:4] == ["data set", "methods", "seeds", "method options"]
