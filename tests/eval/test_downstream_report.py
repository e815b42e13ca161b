"""The downstream reports: the normalised area under the curve by hand, and the tables' mean ± SE over seeds
checked against the result files."""

from __future__ import annotations

from pathlib import Path

import pytest

from gflowout.eval.downstream_report import normalised_auc, write_active_learning_report, write_transfer_report
from gflowout.results import PROTOCOL_SCHEMA, write_json_atomic


def test_normalised_auc_by_hand():
    # trapezoids: 100 x (0.8 + 0.9) / 2 + 100 x (0.9 + 0.9) / 2 = 175, over a range of 200
    assert normalised_auc([200, 300, 400], [0.8, 0.9, 0.9]) == pytest.approx(0.875)
    # uneven steps weigh by their width: (0.5 + 0.7) / 2 x 10 + (0.7 + 0.7) / 2 x 30 = 27, over 40
    assert normalised_auc([10, 20, 50], [0.5, 0.7, 0.7]) == pytest.approx(27 / 40)
    assert normalised_auc([20], [0.6]) == 0.6
    with pytest.raises(ValueError, match="increase strictly"):
        normalised_auc([20, 20], [0.5, 0.6])


def active_result(seed: int, accuracy: list[float], method: str = "gflowout", score: str = "bald") -> dict:
    return {
        "protocol": "active_learning",
        "protocol_schema": PROTOCOL_SCHEMA,
        "run_id": f"mnist__{method}__{score}__seed{seed}",
        "dataset": "mnist",
        "method": method,
        "score": score,
        "seed": seed,
        "labelled_sizes": [20, 30, 40],
        "accuracy": accuracy,
        "nll": [1.0, 0.8, 0.6],
        "protocol_settings": {
            "active": {"initial_per_class": 2, "rounds": 2, "acquire": 10, "samples": 4},
            "training": {"steps": 5, "batch_size": 8},
        },
    }


def test_active_learning_report_tables_are_mean_and_standard_error_over_seeds(tmp_path: Path):
    results = tmp_path / "results"
    write_json_atomic(results / "a.json", active_result(1, [0.5, 0.6, 0.7]))  # AUC 0.6
    write_json_atomic(results / "b.json", active_result(2, [0.5, 0.8, 0.9]))  # AUC (0.65 + 0.85) / 2 = 0.75
    write_json_atomic(results / "c.json", active_result(1, [0.4, 0.4, 0.4], score="random"))
    html = write_active_learning_report(results, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    standard_error = abs(0.75 - 0.6) / 2  # two values: sample std / sqrt(2) = |a - b| / 2
    assert f"| gflowout | {0.675:.4f} ± {standard_error:.4f} | 0.4000 |" in markdown
    assert f"| gflowout | {0.8:.4f} ± {0.1:.4f} | 0.4000 |" in markdown  # last-round accuracy
    assert html.is_file() and (tmp_path / "report" / "figures" / "mnist_active_accuracy.png").is_file()


def test_transfer_report_tables(tmp_path: Path):
    results = tmp_path / "results"
    for seed, accuracy in ((1, 0.9), (2, 0.8)):
        subsets = {"512": {"finetuned": {"accuracy": accuracy, "nll": 0.3}, "scratch": {"accuracy": 0.5, "nll": 1.0}}}
        write_json_atomic(
            results / f"{seed}.json",
            {
                "protocol": "transfer",
                "protocol_schema": PROTOCOL_SCHEMA,
                "run_id": f"mnist__none__seed{seed}",
                "dataset": "mnist",
                "method": "none",
                "seed": seed,
                "subsets": subsets,
                "pretrained": {"noise_rate": 0.3, "accuracy": 0.7, "nll": 0.9},
                "protocol_settings": {
                    "transfer": {
                        "noise_rate": 0.3,
                        "pretrain": {"steps": 3, "batch_size": 4},
                        "finetune": {"steps": 2, "batch_size": 4},
                    }
                },
            },
        )
    write_transfer_report(results, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert f"| none | 2 | {0.85:.4f} ± {0.05:.4f} |" in markdown
    assert "| none | 2 | 0.5000 ± 0.0000 |" in markdown
    assert "fine-tuned and from scratch" in markdown
