"""Pool-based active learning for every method and acquisition score (Gal, Islam & Ghahramani, "Deep Bayesian
Active Learning with Image Data", ICML 2017; the GFlowOut paper's active-learning experiment acquires by the
Dempster-Shafer score).

One run (data set, method, score, seed):

1. the pool is a seeded random subset of the training split (its order breaks ties between equal scores);
   the initial labelled set holds `initial_per_class` examples of every class, drawn from the pool by the seed;
2. round r = 0..R: a fresh model (weights seeded by (seed, r)) trains for the same number of steps for every
   method on the labelled set; test accuracy and NLL of its S-sample predictive are recorded; then, if r < R,
   the `acquire` unlabelled pool examples with the highest score (computed from `method.predict`, never from
   a label) are labelled with their ground truth and leave the pool.

Progress is saved after every round (runs/<run id>/state.json, atomic), so a killed run resumes at its next
unfinished round and draws exactly what the uninterrupted run would have drawn.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gflowout.errors import ConfigError
from gflowout.eval.acquisition import AcquisitionScore, acquisition_scores, resolve_score, top_k
from gflowout.experiments.downstream_common import (
    ProtocolData,
    protocol_digest,
    read_state,
    run_protocol_grid,
    write_protocol_result,
)
from gflowout.experiments.downstream_config import ActiveLearningConfig, check_pool_budget
from gflowout.experiments.plain_training import (
    ACQUISITION,
    build_seeded_method,
    optimizer_overrides,
    predict_in_batches,
    train_then_test,
)
from gflowout.methods.base import DropoutMethod
from gflowout.results import write_json_atomic
from gflowout.rng import private_rng, seed_stream

PROTOCOL = "active_learning"


@dataclass(frozen=True)
class ActiveRun:
    """One cell of the grid."""

    dataset: str
    method: str
    score: str
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.dataset}__{self.method}__{self.score}__seed{self.seed}"


def grid(config: ActiveLearningConfig, default_dataset: str) -> list[ActiveRun]:
    """Every run, seed-major (a grid stopped part-way has compared all methods and scores on the same seeds)."""
    datasets = config.datasets or [default_dataset]
    return [
        ActiveRun(d, m, s, seed)
        for d in datasets
        for seed in config.seeds
        for m in config.methods
        for s in config.scores
    ]


def pool_indices(train_size: int, pool_size: int | None, seed: int) -> np.ndarray:
    """Training-split indices of the pool, in a seeded random order (that order breaks score ties)."""
    order = torch.randperm(train_size, generator=torch.Generator().manual_seed(int(seed))).numpy()
    return order if pool_size is None else order[: min(int(pool_size), train_size)]


def initial_labelled(pool: np.ndarray, labels: Tensor, per_class: int, num_classes: int) -> list[int]:
    """The first `per_class` pool examples of each class (the pool order is already seeded), class by class."""
    pool_labels = labels[torch.as_tensor(pool)].numpy()
    chosen: list[int] = []
    for cls in range(num_classes):
        members = pool[pool_labels == cls][:per_class]
        if members.size < per_class:
            raise ConfigError(
                f"the pool has {members.size} example(s) of class {cls}, fewer than "
                f"active.initial_per_class = {per_class}; raise active.pool_size or lower it"
            )
        chosen += [int(i) for i in members]
    return chosen


def acquire(
    method: DropoutMethod | None,
    x: Tensor,
    candidates: Sequence[int],
    score: str | AcquisitionScore,
    k: int,
    *,
    samples: int,
    batch_size: int,
    seed: int,
    round_index: int,
    device: torch.device | str = "cpu",
) -> tuple[list[int], list[float]]:
    """The k candidates (training-split indices, in pool order) with the highest `score`, and their scores.

    Masks (and random scores) are drawn from streams seeded by (seed, round): the same seed picks the same.
    Raises ConfigError when k exceeds the candidates.
    """
    score = resolve_score(score)
    candidates = np.asarray(candidates, dtype=np.int64)  # type: ignore[assignment]  # numpy stub precision
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= candidates.size:  # type: ignore[attr-defined]  # numpy stub precision
        raise ConfigError(
            f"cannot acquire k = {k} examples from a pool of {candidates.size} unlabelled examples; "  # type: ignore[attr-defined]  # numpy stub precision
            "lower active.acquire or active.rounds, or raise active.pool_size"
        )
    if score.needs_predictions:
        if method is None:
            raise ValueError(f"acquisition score {score.value!r} needs a trained method")
        with private_rng(torch.device(device)):
            seed_stream(seed, ACQUISITION, round_index)
            logits = predict_in_batches(
                method, x[torch.as_tensor(candidates)], samples=samples, batch_size=batch_size, device=device
            )
        values = acquisition_scores(score, logits)
    else:
        generator = torch.Generator().manual_seed(hash((seed, ACQUISITION, round_index)) % (2**62))
        values = acquisition_scores(score, count=candidates.size, generator=generator)  # type: ignore[attr-defined]  # numpy stub precision
    positions = top_k(values, int(k))
    return [int(i) for i in candidates[positions]], [float(values[p]) for p in positions]  # type: ignore[call-overload]  # numpy stub precision


def run_one(
    run: ActiveRun,
    config: ActiveLearningConfig,
    data: ProtocolData,
    harness: Any,
    out_dir: Path,
    device: torch.device,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Do (or finish) one active-learning run and write its result file; returns the result."""
    digest = protocol_digest(config, harness)
    active, training, evaluation = config.active, config.training, config.evaluation
    pool = pool_indices(int(data.y_train.shape[0]), active.pool_size, run.seed)
    check_pool_budget(active, int(pool.size), data.num_classes, f"{config.source}: {run.dataset}")
    state_path = out_dir / "runs" / run.run_id / "state.json"
    state = read_state(state_path, digest)
    if state is None:
        labelled = initial_labelled(pool, data.y_train, active.initial_per_class, data.num_classes)
        state = {"settings_digest": digest, "initial": labelled, "labelled": list(labelled), "rounds": []}
    elif state["rounds"]:
        log(f"  {run.run_id}: resuming at round {len(state['rounds'])} of {active.rounds}")
    labelled: list[int] = list(state["labelled"])  # type: ignore[no-redef]  # the same list, read back from a checkpointed state
    for round_index in range(len(state["rounds"]), active.rounds + 1):
        rows = torch.as_tensor(labelled)
        method = build_seeded_method(harness, data.num_classes, data.input_shape, len(labelled), run.seed, round_index)
        summary, metrics = train_then_test(
            method,
            data.x_train[rows],
            data.y_train[rows],
            data.x_test,
            data.y_test,
            steps=training.steps,
            batch_size=training.batch_size,
            samples=evaluation.samples,
            eval_batch_size=evaluation.batch_size,
            seed=run.seed,
            position=(round_index,),
            overrides=optimizer_overrides(harness, method),
            device=device,
        )
        record: dict[str, Any] = {
            "round": round_index,
            "labelled": len(labelled),
            "accuracy": metrics["accuracy"],
            "nll": metrics["nll"],
            "train_time_s": summary.seconds,
            "eval_time_s": metrics["eval_time_s"],
            "epochs": summary.epochs,
        }
        if round_index < active.rounds:
            started = time.perf_counter()
            taken = set(labelled)
            candidates = [int(i) for i in pool if int(i) not in taken]
            chosen, values = acquire(
                method,
                data.x_train,
                candidates,
                run.score,
                active.acquire,
                samples=active.samples,
                batch_size=evaluation.batch_size,
                seed=run.seed,
                round_index=round_index,
                device=device,
            )
            labelled += chosen
            record.update(acquired=chosen, acquired_scores=values, acquire_time_s=time.perf_counter() - started)
        state["rounds"].append(record)
        state["labelled"] = labelled
        write_json_atomic(state_path, state)
        log(
            f"  {run.run_id}: round {round_index}/{active.rounds}, {record['labelled']} labelled, "
            f"accuracy {record['accuracy']:.4f}, NLL {record['nll']:.4f} ({summary.seconds:.1f} s training)"
        )
    rounds = state["rounds"]
    outcome = {
        "labelled_sizes": [r["labelled"] for r in rounds],
        "accuracy": [r["accuracy"] for r in rounds],
        "nll": [r["nll"] for r in rounds],
        "initial": state["initial"],
        "rounds": rounds,
        "train_time_s": sum(r["train_time_s"] for r in rounds),
        "eval_time_s": sum(r["eval_time_s"] for r in rounds),
        "acquire_time_s": sum(r.get("acquire_time_s", 0.0) for r in rounds),
    }
    identity = {"dataset": run.dataset, "method": run.method, "score": run.score, "seed": run.seed}
    return write_protocol_result(out_dir, PROTOCOL, run, identity, digest, outcome, config, harness)


def run_active_learning(
    config: ActiveLearningConfig,
    out_dir: str | Path,
    root: str | Path | None = None,
    shard: tuple[int, int] = (1, 1),
    report: bool = True,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Every run of the grid that has no result file yet (this shard's), then the report once the grid is done.

    Returns the result files of this shard's runs.
    """

    def check_pool(runs: Sequence[ActiveRun]) -> None:
        if config.active.pool_size is None:
            return
        from gflowout.data.datasets import get_info

        for dataset in {run.dataset for run in runs}:  # the budget against the pool, before any data is read
            check_pool_budget(
                config.active, config.active.pool_size, get_info(dataset).num_classes, f"{config.source}: {dataset}"
            )

    def write_report(results: Path, folder: Path) -> Path:
        from gflowout.eval.downstream_report import write_active_learning_report

        return write_active_learning_report(results, folder)

    return run_protocol_grid(
        config,
        Path(out_dir),
        root,
        shard,
        log,
        protocol=PROTOCOL,
        grid=grid,
        run_one=run_one,
        write_report=write_report if report else None,
        check_runs=check_pool,
    )
