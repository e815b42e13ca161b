"""Tests over seeds in the downstream reports: the verdicts against scipy's paired t-test on hand-made seeds,
bold only where p < 0.05, no verdict under two seeds, and the tables in the active-learning report."""

from __future__ import annotations

from pathlib import Path

from scipy import stats

from gflowout.eval.downstream_report import write_active_learning_report
from gflowout.eval.downstream_tests import reference_versus_baselines, scores_versus_random
from gflowout.results import write_json_atomic
from tests.eval.test_downstream_report import active_result

OURS = {1: 0.90, 2: 0.91, 3: 0.92}
CLEARLY_LOWER = {1: 0.80, 2: 0.82, 3: 0.81}  # paired differences 0.10, 0.09, 0.11: p ~ 0.003
NOISY = {1: 0.95, 2: 0.86, 3: 0.93}  # differences -0.05, +0.05, -0.01: no evidence either way


def test_reference_against_baselines_follows_the_paired_t_test():
    values = {("bald", "gflowout"): OURS, ("bald", "mc_dropout"): CLEARLY_LOWER, ("bald", "none"): NOISY}
    table = reference_versus_baselines("t", "score", ["bald"], ["gflowout", "mc_dropout", "none"], values, True)
    assert table is not None
    assert table.header == ["score", "gflowout vs mc_dropout", "gflowout vs none"]
    p_lower = stats.ttest_rel(list(OURS.values()), list(CLEARLY_LOWER.values())).pvalue
    p_noisy = stats.ttest_rel(list(OURS.values()), list(NOISY.values())).pvalue
    assert p_lower < 0.05 < p_noisy
    assert table.rows[0][1] == f"better (+0.1000; p = {p_lower:.3f})"
    assert table.rows[0][2].startswith("indistinguishable (-0.0033;")
    assert table.bold == {(0, 1)}  # only the significant cell
    # two tests in the table: Holm multiplies the smaller p by 2
    holm = min(1.0, 2 * min(p_lower, p_noisy))
    assert table.note.endswith(
        "Corrected for all 2 tests of this table (Holm's step-down method, alpha = 0.05), these remain: "
        f"bald, gflowout vs mc_dropout (better, Holm-adjusted p = {holm:.3f})."
    )


def test_a_lone_significant_cell_among_many_tests_does_not_survive_holms_correction():
    rows = [str(size) for size in range(6)]
    values = {(row, "gflowout"): OURS for row in rows}
    values |= {(row, "none"): NOISY for row in rows[1:]} | {(rows[0], "none"): {1: 0.88, 2: 0.885, 3: 0.905}}
    table = reference_versus_baselines("t", "size", rows, ["gflowout", "none"], values, True)
    p_value = stats.ttest_rel(list(OURS.values()), [0.88, 0.885, 0.905]).pvalue
    assert p_value < 0.05 < 6 * p_value  # significant alone, not among six tests
    assert table is not None and table.bold == {(0, 1)}
    assert table.note.endswith(
        "Corrected for all 6 tests of this table (Holm's step-down method, alpha = 0.05), "
        "no difference remains significant."
    )


def test_lower_is_better_turns_the_verdict_and_missing_cells_are_dashes():
    values = {("512", "gflowout"): OURS, ("512", "none"): CLEARLY_LOWER, ("1024", "gflowout"): OURS}
    table = reference_versus_baselines("t", "size", ["512", "1024"], ["gflowout", "none"], values, False)
    assert table is not None
    assert table.rows[0][1].startswith("worse (+0.1000;")  # a higher NLL is worse
    assert table.rows[1][1] == "-"


def test_under_two_seeds_no_verdict_and_without_the_reference_no_table():
    values = {("bald", "gflowout"): {1: 0.9}, ("bald", "none"): {1: 0.8}}
    table = reference_versus_baselines("t", "score", ["bald"], ["gflowout", "none"], values, True)
    assert table is not None and table.rows[0][1].startswith("n/a (+0.1000") and not table.bold
    assert reference_versus_baselines("t", "score", ["bald"], ["none"], values, True) is None


def test_scores_against_random_acquisition_with_the_same_method():
    values = {("gflowout", "bald"): OURS, ("gflowout", "random"): CLEARLY_LOWER, ("gflowout", "entropy"): NOISY}
    table = scores_versus_random("t", ["gflowout"], ["bald", "entropy", "random"], values)
    assert table is not None
    assert table.header == ["method", "bald vs random", "entropy vs random"]
    assert table.rows[0][1].startswith("better (+0.1000;")
    assert table.rows[0][2].startswith("indistinguishable (+0.1033;")  # a large mean gap, but too noisy
    assert scores_versus_random("t", ["gflowout"], ["bald"], values) is None  # no random column


def test_the_active_learning_report_says_which_differences_the_seeds_support(tmp_path: Path):
    results, score = tmp_path / "results", "bald"
    for seed, (ours, theirs, random) in enumerate([(0.9, 0.7, 0.5), (0.92, 0.71, 0.52), (0.91, 0.73, 0.5)], start=1):
        write_json_atomic(results / f"g{seed}.json", active_result(seed, [ours] * 3, score=score))
        write_json_atomic(results / f"m{seed}.json", active_result(seed, [theirs] * 3, "mc_dropout", score))
        write_json_atomic(results / f"r{seed}.json", active_result(seed, [random] * 3, score="random"))
        write_json_atomic(results / f"s{seed}.json", active_result(seed, [random] * 3, "mc_dropout", "random"))
    html = write_active_learning_report(results, tmp_path / "report").read_text()
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "is gflowout's area under the accuracy curve better than each baseline's?" in markdown
    assert "| bald | **better (+0.1967; p = 0.002)** |" in markdown
    assert "does each acquisition score beat random acquisition?" in markdown
    assert "`" not in html  # the intro's code spans are HTML, not stray backticks
