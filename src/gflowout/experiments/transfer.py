"""Transfer from noisy pre-training (the GFlowOut paper, Liu et al. ICML 2023, section on transfer learning).

One run (data set, method, seed):

1. pre-train on the whole training split with `noise_rate` symmetric label noise over all classes
   (`gflowout.data.label_noise`), then save the weights (runs/<run id>/pretrained.pt, atomic);
2. for every subset size n: a clean subset of n training images (seeded by (seed, n)); a model built like the
   pre-trained one LOADS the pre-trained weights (the official scripts never did: they trained from scratch)
   and fine-tunes every parameter group for the same number of steps; test accuracy and NLL are recorded;
   with `scratch`, the same subset also trains a fresh model, the reference that shows what pre-training
   contributed.

Every fine-tuning checks, before its first step, that its weights are the pre-trained ones (the digest is in
the result file). Progress is saved after every subset, so a killed run resumes at the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gflowout.atomic import atomic_torch_save
from gflowout.checkpoint import read_checkpoint
from gflowout.data.label_noise import symmetric_label_noise
from gflowout.errors import CheckpointError, ConfigError
from gflowout.experiments.downstream_common import (
    ProtocolData,
    protocol_digest,
    read_state,
    run_protocol_grid,
    write_protocol_result,
)
from gflowout.experiments.downstream_config import TransferConfig
from gflowout.experiments.plain_training import (
    build_seeded_method,
    optimizer_overrides,
    train_then_test,
    weights_digest,
)
from gflowout.methods.base import DropoutMethod
from gflowout.results import write_json_atomic

PROTOCOL = "transfer"
# positions of the seeded streams: pre-training, then (FINETUNE, n) and (SCRATCH, n) per subset size n
PRETRAIN, FINETUNE, SCRATCH, SUBSET = 0, 1, 2, 3


@dataclass(frozen=True)
class TransferRun:
    """One cell of the grid."""

    dataset: str
    method: str
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.dataset}__{self.method}__seed{self.seed}"


def grid(config: TransferConfig, default_dataset: str) -> list[TransferRun]:
    """Every run, seed-major."""
    datasets = config.datasets or [default_dataset]
    return [TransferRun(d, m, s) for d in datasets for s in config.seeds for m in config.methods]


def clean_subset(train_size: int, size: int, seed: int) -> torch.Tensor:
    """Training-split indices [size] of a clean fine-tuning subset, seeded by (seed, size)."""
    if size > train_size:
        raise ValueError(f"a fine-tuning subset of {size} images does not fit in a training split of {train_size}")
    generator = torch.Generator().manual_seed(hash((seed, SUBSET, size)) % (2**62))
    return torch.randperm(train_size, generator=generator)[:size]


def pretrain(
    run: TransferRun,
    config: TransferConfig,
    data: ProtocolData,
    harness: Any,
    run_dir: Path,
    digest: str,
    device: torch.device,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Pre-train on noisy labels (or reuse the saved weights); returns the checkpoint dict."""
    path = run_dir / "pretrained.pt"
    if path.is_file():
        checkpoint = read_checkpoint(path)
        if checkpoint.get("settings_digest") != digest:
            raise CheckpointError(f"{path} was pre-trained with other settings; use another --out or delete {run_dir}")
        return checkpoint
    noisy = symmetric_label_noise(data.y_train, config.transfer.noise_rate, data.num_classes, run.seed)
    method = build_seeded_method(
        harness, data.num_classes, data.input_shape, int(data.y_train.shape[0]), run.seed, PRETRAIN
    )
    summary, metrics = train_then_test(
        method,
        data.x_train,
        noisy.labels,
        data.x_test,
        data.y_test,
        steps=config.transfer.pretrain.steps,
        batch_size=config.transfer.pretrain.batch_size,
        samples=config.evaluation.samples,
        eval_batch_size=config.evaluation.batch_size,
        seed=run.seed,
        position=(PRETRAIN,),
        overrides=optimizer_overrides(harness, method),
        device=device,
    )
    state = {k: v.detach().cpu() for k, v in method.state_dict().items()}
    counts = torch.bincount(noisy.labels[noisy.flipped], minlength=data.num_classes)
    checkpoint = {
        "state_dict": state,
        "weights_digest": weights_digest(state),
        "settings_digest": digest,
        "summary": {
            "accuracy": metrics["accuracy"],
            "nll": metrics["nll"],
            "train_time_s": summary.seconds,
            "noise_rate": noisy.rate,
            "noisy_label_counts": counts.tolist(),
        },
    }
    atomic_torch_save(checkpoint, path)
    log(
        f"  {run.run_id}: pre-trained on {noisy.rate:.1%} noisy labels, test accuracy {metrics['accuracy']:.4f} "
        f"({summary.seconds:.1f} s)"
    )
    return checkpoint


def load_pretrained(method: DropoutMethod, checkpoint: dict[str, Any]) -> str:
    """Load the pre-trained weights into `method` (strictly: every tensor, same shapes); returns their digest
    after loading, which must equal the saved one (a CheckpointError otherwise)."""
    try:
        method.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"the pre-trained weights do not fit this model: {error}") from None
    loaded = weights_digest(method.state_dict())
    if loaded != checkpoint["weights_digest"]:
        raise CheckpointError("fine-tuning would not start from the pre-trained weights (their digests differ)")
    return loaded


def run_one(
    run: TransferRun,
    config: TransferConfig,
    data: ProtocolData,
    harness: Any,
    out_dir: Path,
    device: torch.device,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Do (or finish) one transfer run and write its result file; returns the result."""
    digest = protocol_digest(config, harness)
    run_dir = out_dir / "runs" / run.run_id
    state_path = run_dir / "state.json"
    state = read_state(state_path, digest) or {"settings_digest": digest, "subsets": {}}
    checkpoint = pretrain(run, config, data, harness, run_dir, digest, device, log)
    transfer, evaluation = config.transfer, config.evaluation
    train_size = int(data.y_train.shape[0])
    for size in transfer.subset_sizes:
        if str(size) in state["subsets"]:
            continue
        rows = clean_subset(train_size, size, run.seed)
        x, y = data.x_train[rows], data.y_train[rows]
        record: dict[str, Any] = {}
        starts = [("finetuned", FINETUNE)] + ([("scratch", SCRATCH)] if transfer.scratch else [])
        for kind, position in starts:
            method = build_seeded_method(harness, data.num_classes, data.input_shape, size, run.seed, position, size)
            start_digest = load_pretrained(method, checkpoint) if kind == "finetuned" else None
            summary, metrics = train_then_test(
                method,
                x,
                y,
                data.x_test,
                data.y_test,
                steps=transfer.finetune.steps,
                batch_size=transfer.finetune.batch_size,
                samples=evaluation.samples,
                eval_batch_size=evaluation.batch_size,
                seed=run.seed,
                position=(position, size),
                overrides=optimizer_overrides(harness, method),
                device=device,
            )
            record[kind] = {
                "accuracy": metrics["accuracy"],
                "nll": metrics["nll"],
                "train_time_s": summary.seconds,
                "eval_time_s": metrics["eval_time_s"],
                **({"start_weights_digest": start_digest} if start_digest else {}),
            }
        state["subsets"][str(size)] = record
        write_json_atomic(state_path, state)
        scratch = f", from scratch {record['scratch']['accuracy']:.4f}" if "scratch" in record else ""
        log(f"  {run.run_id}: {size} clean images, fine-tuned accuracy {record['finetuned']['accuracy']:.4f}{scratch}")
    outcome = {
        "pretrained": {**checkpoint["summary"], "weights_digest": checkpoint["weights_digest"]},
        "subsets": {str(s): state["subsets"][str(s)] for s in transfer.subset_sizes},
    }
    identity = {"dataset": run.dataset, "method": run.method, "seed": run.seed}
    return write_protocol_result(out_dir, PROTOCOL, run, identity, digest, outcome, config, harness)


def run_transfer(
    config: TransferConfig,
    out_dir: str | Path,
    root: str | Path | None = None,
    shard: tuple[int, int] = (1, 1),
    report: bool = True,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Every run of the grid without a result file (this shard's), then the report once the grid is done."""

    def check_subsets(run: TransferRun, data: ProtocolData) -> None:
        too_big = [s for s in config.transfer.subset_sizes if s > data.y_train.shape[0]]
        if too_big:
            raise ConfigError(
                f"{config.source}: transfer.subset_sizes {too_big} exceed the {data.y_train.shape[0]} "
                f"training images of {run.dataset}"
            )

    def write_report(results: Path, folder: Path) -> Path:
        from gflowout.eval.downstream_report import write_transfer_report

        return write_transfer_report(results, folder)

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
        check_data=check_subsets,
    )
