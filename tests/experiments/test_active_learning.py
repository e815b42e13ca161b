"""Active learning: acquired examples leave the pool and are never acquired twice, the labelled set grows by k
per round, a killed run resumes at its next round with the same picks, bad configs raise ConfigError, and the
command runs end to end on real MNIST with a report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from gflowout.cli.main import main
from gflowout.errors import ConfigError, DataError
from gflowout.eval.acquisition import AcquisitionScore
from gflowout.experiments import active_learning as al
from gflowout.experiments.downstream_config import (
    ActiveLearningConfig,
    ActiveLearningSettings,
    TrainingSettings,
    check_active_learning,
    load_active_learning_config,
)
from gflowout.experiments.plain_training import build_seeded_method, train_for_steps
from tests.helpers.downstream import CLASSES, harness, synthetic_data

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny tensors: one torch thread (the fixture is in tests/conftest.py)."""


def tiny_config(score: str = "bald", method: str = "mc_dropout", rounds: int = 3) -> ActiveLearningConfig:
    return ActiveLearningConfig(
        config=harness(),
        methods=[method],
        seeds=[1],
        scores=[score],
        device="cpu",
        training=TrainingSettings(steps=4, batch_size=8),
        active=ActiveLearningSettings(initial_per_class=2, acquire=4, rounds=rounds, samples=3, pool_size=90),
    )


def run(config: ActiveLearningConfig, out: Path, log=lambda line: None) -> dict:
    spec = al.ActiveRun("mnist", config.methods[0], config.scores[0], 1)
    return al.run_one(
        spec,
        config,
        synthetic_data(),
        config.harness_config("mnist", spec.method, 1, None),
        out,
        torch.device("cpu"),
        log,
    )


@pytest.mark.parametrize("score", [s.value for s in AcquisitionScore])
def test_acquired_examples_leave_the_pool_and_are_never_acquired_twice(tmp_path: Path, score: str):
    result = run(tiny_config(score), tmp_path)
    pool = set(al.pool_indices(150, 90, 1).tolist())
    labelled = list(result["initial"])
    assert len(labelled) == 2 * CLASSES and set(labelled) <= pool
    for record in result["rounds"][:-1]:
        acquired = record["acquired"]
        assert len(acquired) == 4 and len(set(acquired)) == 4
        assert set(acquired) <= pool and not set(acquired) & set(labelled), "an example was acquired twice"
        labelled += acquired
    assert "acquired" not in result["rounds"][-1]
    assert result["labelled_sizes"] == [6, 10, 14, 18]
    assert len(result["accuracy"]) == len(result["nll"]) == 4


@pytest.mark.parametrize("method", ["ensemble", "gflowout"])
def test_every_score_runs_for_a_sampled_and_a_fixed_size_predictive(tmp_path: Path, method: str):
    """The ensemble predicts its M members whatever S is asked; BALD and the others still rank its pool."""
    for score in ("bald", "dempster_shafer"):
        result = run(tiny_config(score, method=method, rounds=2), tmp_path / score)
        assert result["labelled_sizes"] == [6, 10, 14]
        assert all(len(record["acquired"]) == 4 for record in result["rounds"][:-1])


def test_acquisition_never_reads_the_labels_of_the_pool(tmp_path: Path):
    """Changing the labels of every example that is never acquired changes no pick and no number. (The balanced
    initial set reads the labels of the pool's first examples, up to its last pick: those stay.)"""
    config = tiny_config("entropy", "gflowout")
    spec = al.ActiveRun("mnist", "gflowout", "entropy", 1)
    harness_config = config.harness_config("mnist", "gflowout", 1, None)
    data = synthetic_data()
    first = al.run_one(spec, config, data, harness_config, tmp_path / "a", torch.device("cpu"), lambda line: None)
    pool = al.pool_indices(150, 90, 1).tolist()
    scanned = pool[: max(pool.index(i) for i in first["initial"]) + 1]
    used = set(scanned) | {i for r in first["rounds"] for i in r.get("acquired", [])}
    relabelled = data.y_train.clone()
    unused = torch.tensor(sorted(set(range(150)) - used))
    relabelled[unused] = (relabelled[unused] + 1) % CLASSES
    other = type(data)(data.name, data.x_train, relabelled, data.x_test, data.y_test, data.num_classes)
    second = al.run_one(spec, config, other, harness_config, tmp_path / "b", torch.device("cpu"), lambda line: None)
    assert [r.get("acquired") for r in second["rounds"]] == [r.get("acquired") for r in first["rounds"]]
    assert second["accuracy"] == first["accuracy"] and second["nll"] == first["nll"]


def test_acquire_takes_the_highest_scores_among_the_candidates_only():
    data = synthetic_data()
    config = tiny_config()
    harness_config = config.harness_config("mnist", "mc_dropout", 1, None)
    method = build_seeded_method(harness_config, CLASSES, data.input_shape, 20, 1, 0)
    train_for_steps(method, data.x_train[:20], data.y_train[:20], steps=3, batch_size=8, seed=1)
    candidates = list(range(40, 100))
    chosen, scores = al.acquire(
        method, data.x_train, candidates, "entropy", 5, samples=4, batch_size=16, seed=1, round_index=0
    )
    assert set(chosen) <= set(candidates) and len(set(chosen)) == 5
    assert scores == sorted(scores, reverse=True)
    # the same seed and round pick the same; random acquisition of another seed picks others
    assert (
        al.acquire(method, data.x_train, candidates, "entropy", 5, samples=4, batch_size=16, seed=1, round_index=0)[0]
        == chosen
    )
    random_1 = al.acquire(None, data.x_train, candidates, "random", 5, samples=4, batch_size=16, seed=1, round_index=0)
    random_2 = al.acquire(None, data.x_train, candidates, "random", 5, samples=4, batch_size=16, seed=2, round_index=0)
    assert random_1[0] != random_2[0]
    with pytest.raises(ConfigError, match="cannot acquire k = 61 examples from a pool of 60"):
        al.acquire(method, data.x_train, candidates, "entropy", 61, samples=4, batch_size=16, seed=1, round_index=0)


class Killed(Exception):
    pass


def test_a_killed_run_resumes_at_its_next_round_with_the_same_picks(tmp_path: Path):
    config = tiny_config("bald", "gflowout")
    uninterrupted = run(config, tmp_path / "a")

    def kill_after_round_1(line: str) -> None:
        if "round 1/" in line:
            raise Killed

    with pytest.raises(Killed):
        run(config, tmp_path / "b", kill_after_round_1)
    state = json.loads((tmp_path / "b" / "runs" / "mnist__gflowout__bald__seed1" / "state.json").read_text())
    assert [r["round"] for r in state["rounds"]] == [0, 1]
    lines: list[str] = []
    resumed = run(config, tmp_path / "b", lines.append)
    assert any("resuming at round 2" in line for line in lines)
    assert not any("round 0/" in line or "round 1/" in line for line in lines), "finished rounds were redone"
    for key in ("accuracy", "nll", "labelled_sizes", "initial"):
        assert resumed[key] == uninterrupted[key]
    assert [r.get("acquired") for r in resumed["rounds"]] == [r.get("acquired") for r in uninterrupted["rounds"]]
    # other settings in the same folder are refused, not mixed
    other = tiny_config("bald", "gflowout")
    other.training.steps = 5
    (tmp_path / "b" / "results" / "mnist__gflowout__bald__seed1.json").unlink()
    with pytest.raises(ConfigError, match="other settings"):
        run(other, tmp_path / "b")


def test_bad_configs_raise_config_errors(tmp_path: Path):
    config = tiny_config()
    config.scores = ["entropyy"]
    with pytest.raises(ConfigError, match="did you mean 'entropy'"):
        check_active_learning(config, "cfg")
    for section, key in (("training", "steps"), ("active", "acquire"), ("training", "batch_size")):
        config = tiny_config()
        setattr(getattr(config, section), key, 0)
        with pytest.raises(ConfigError, match=f"{section}.{key} must be a positive integer"):
            check_active_learning(config, "cfg")
    config = tiny_config(rounds=30)  # 6 initial + 30 x 4 > a pool of 90
    with pytest.raises(ConfigError, match="the pool has 90 examples"):
        run(config, tmp_path)
    with pytest.raises(ConfigError, match=r"10 classes \+ 30 rounds x 4 acquired = 140"):  # up front, no data read
        al.run_active_learning(config, tmp_path / "grid", root=tmp_path / "no-data-here")
    raw = yaml.safe_load((REPO / "configs" / "active_tiny.yaml").read_text())
    raw["activ"] = raw.pop("active")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="did you mean 'active'"):
        load_active_learning_config(path)


def test_help_has_examples(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["active-learning", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "--shard 2/2" in text and "dempster_shafer" in text


def test_config_errors_reach_the_user_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = yaml.safe_load((REPO / "configs" / "active_tiny.yaml").read_text())
    raw["scores"] = ["bald", "dempster-shafer"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["active-learning", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'dempster_shafer'?" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    (tmp_path / "a-file").write_text("")
    tiny = str(REPO / "configs" / "active_tiny.yaml")
    assert main(["active-learning", "--config", tiny, "--out", str(tmp_path / "a-file")]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder; choose another --out" in err and len(err.strip().splitlines()) == 1


def test_shipped_configs_load():
    for name in ("active_tiny.yaml", "active_mnist.yaml"):
        config = load_active_learning_config(REPO / "configs" / name)
        assert config.budget


def test_active_learning_command_end_to_end_on_real_mnist(tmp_path: Path):
    from gflowout.data.datasets import load_split

    try:
        load_split("mnist", "test")
    except DataError as error:
        pytest.skip(f"real MNIST is needed (`make test` fetches it): {error}")
    out = tmp_path / "al"
    argv = [
        "active-learning",
        "--config",
        str(REPO / "configs" / "active_tiny.yaml"),
        "--out",
        str(out),
        "--threads",
        str(torch.get_num_threads()),
    ]
    assert main(argv) == 0
    results = sorted(p.name for p in (out / "results").glob("*.json"))
    assert results == sorted(
        f"mnist__{m}__{s}__seed1.json" for m in ("mc_dropout", "gflowout") for s in ("bald", "random")
    )
    report = (out / "report" / "report.md").read_text()
    assert "normalised area under the accuracy" in report and "mnist_active_accuracy.png" in report
    assert (out / "report" / "figures" / "mnist_active_accuracy.png").stat().st_size > 1000
    before = {p.name: p.read_text() for p in (out / "results").glob("*.json")}
    assert main(argv) == 0  # a rerun skips the finished runs
    assert before == {p.name: p.read_text() for p in (out / "results").glob("*.json")}


def test_gflowout_report_recognises_an_active_learning_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from gflowout.cli.main import main

    run(tiny_config(), tmp_path)
    assert main(["report", str(tmp_path / "results"), "--out", str(tmp_path / "report")]) == 0
    assert "active learning report written" in capsys.readouterr().out
    assert (tmp_path / "report" / "report.md").read_text().count("|") > 10
