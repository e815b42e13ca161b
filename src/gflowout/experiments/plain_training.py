"""A small seeded training loop for the downstream protocols (active learning, transfer), without Lightning.

Their trainings are many and short (one per acquisition round, one per fine-tuning subset), on data already
in memory, so they use the method's own `make_optimizers` and `train_step` directly: the same losses,
parameter groups, clipping and optimisers as the harness, without its per-run start-up cost. Every draw is
seeded from (seed, stream, position), so a protocol resumed at any round trains exactly what an uninterrupted
one would have trained.

"Steps" are optimiser steps of `batch_size` examples drawn without replacement, epoch by epoch (a fresh seeded
permutation of the training rows each epoch; an epoch's incomplete last batch is dropped, as with
`drop_last=True`, so no batch is ever tiny, which BatchNorm backbones need; a set smaller than one batch is one
full-set batch). The method's epoch schedules (`set_epoch`) follow those epochs. A learning-rate schedule of
the harness config is refused: these loops keep the learning rate constant.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gflowout.errors import ConfigError
from gflowout.eval.metrics import accuracy, nll
from gflowout.eval.predictive import check_logits
from gflowout.methods.base import DropoutMethod, resolve_group_specs
from gflowout.rng import private_rng, seed_stream

# Stream ids of the downstream loops (the harness uses 1-4, see gflowout.rng).
INITIALISATION, TRAINING, ACQUISITION, EVALUATION, DATA_ORDER = 11, 12, 13, 14, 15

__all__ = [
    "TrainingSummary",
    "build_seeded_method",
    "evaluate_predictive",
    "optimizer_overrides",
    "predict_in_batches",
    "resolve_device",
    "train_for_steps",
    "weights_digest",
]


def resolve_device(name: str) -> torch.device:
    """ "auto" (CUDA when available, else CPU), "cpu" or "cuda[:i]"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"config key 'device': {name!r} is not a device; use 'auto', 'cpu' or 'cuda'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'device' asks for CUDA, but torch sees no GPU; use 'auto' or 'cpu'")
    return device


def build_seeded_method(
    config: Any, num_classes: int, input_shape: tuple[int, ...], dataset_size: int, seed: int, *position: int
) -> DropoutMethod:
    """The config's backbone and method, initialised from (seed, position) alone (fresh weights, reproducible)."""
    from gflowout.training.build import build_method_for

    with private_rng(torch.device("cpu")):
        seed_stream(seed, INITIALISATION, *position)
        return build_method_for(config, num_classes, input_shape, dataset_size)


def optimizer_overrides(config: Any, method: DropoutMethod) -> dict[str, dict[str, Any]]:
    """The per-group optimiser overrides of the config's `optim` blocks, checked against the method's groups."""
    blocks = config.group_optim()
    unknown = sorted(set(blocks) - set(method.group_defaults()))
    if unknown:
        raise ConfigError(
            f"config 'optim' names parameter group(s) {unknown} that method {config.method.name!r} "
            f"does not have; its groups: {sorted(method.group_defaults())}"
        )
    scheduled = sorted(name for name, block in blocks.items() if block.schedule.kind != "none")
    if scheduled:
        raise ConfigError(
            f"config 'optim': group(s) {scheduled} have a learning-rate schedule; the downstream "
            "protocols train with a constant learning rate: remove the schedule"
        )
    overrides = {name: block.spec_overrides() for name, block in blocks.items()}
    try:
        resolve_group_specs(method.group_defaults(), overrides)
    except (KeyError, TypeError) as error:
        raise ConfigError(f"config 'optim': {error}") from None
    return overrides


@dataclass(frozen=True)
class TrainingSummary:
    """What one `train_for_steps` did: steps, epochs begun, seconds, and the last step's losses and logs."""

    steps: int
    epochs: int
    seconds: float
    last: dict[str, float]


def train_for_steps(
    method: DropoutMethod,
    x: Tensor,
    y: Tensor,
    *,
    steps: int,
    batch_size: int,
    seed: int,
    position: tuple[int, ...] = (),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    device: torch.device | str = "cpu",
) -> TrainingSummary:
    """Train `method` in place for `steps` optimiser steps on (x [N, ...], y [N]) with its own optimisers.

    Masks and batch order are drawn from streams seeded by (seed, position); the caller's RNG state is
    restored afterwards. Raises NonFiniteLossError (from `train_step`) on a diverged loss.
    """
    if steps < 1 or batch_size < 1:
        raise ConfigError(f"training needs steps >= 1 and batch_size >= 1, got steps={steps}, batch_size={batch_size}")
    count = int(y.shape[0])
    if count < 1:
        raise ConfigError("training needs at least one labelled example")
    device = torch.device(device)
    method.to(device)
    optimizers = method.make_optimizers(overrides)
    order_generator = torch.Generator().manual_seed(hash((seed, DATA_ORDER, *position)) % (2**62))
    started = time.perf_counter()
    last: dict[str, float] = {}
    batch = min(batch_size, count)
    epoch, cursor, order = -1, count, torch.empty(0, dtype=torch.long)
    with private_rng(device):
        seed_stream(seed, TRAINING, *position)
        for _ in range(steps):
            if cursor + batch > count:  # a new epoch: a fresh permutation, the method's schedules advanced
                epoch, cursor = epoch + 1, 0
                order = torch.randperm(count, generator=order_generator)
                method.set_epoch(epoch)
            rows = order[cursor : cursor + batch]
            cursor += batch
            last = method.train_step(x[rows].to(device), y[rows].to(device), optimizers)
    return TrainingSummary(steps=steps, epochs=epoch + 1, seconds=time.perf_counter() - started, last=last)


def predict_in_batches(
    method: DropoutMethod, x: Tensor, *, samples: int, batch_size: int, device: torch.device | str = "cpu"
) -> Tensor:
    """Per-sample logits [S, N, C] on the CPU, from `method.predict` over batches of `batch_size` rows (no labels).

    S is `method.prediction_samples(samples)`: `samples` for the masked methods, M for a deep ensemble.
    """
    device = torch.device(device)
    method.to(device)
    samples = method.prediction_samples(samples)
    parts = [
        method.predict(x[start : start + batch_size].to(device), samples=samples).cpu()
        for start in range(0, int(x.shape[0]), batch_size)
    ]
    return torch.cat(parts, dim=1)


def evaluate_predictive(
    method: DropoutMethod,
    x: Tensor,
    y: Tensor,
    *,
    samples: int,
    batch_size: int,
    seed: int,
    position: tuple[int, ...] = (),
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Accuracy and NLL (nats) of the S-sample predictive (mean softmax) on (x, y), masks seeded by (seed, position)."""
    device = torch.device(device)
    started = time.perf_counter()
    with private_rng(device):
        seed_stream(seed, EVALUATION, *position)
        logits = predict_in_batches(method, x, samples=samples, batch_size=batch_size, device=device)
    logits = check_logits(logits, "test logits")
    log_probs = torch.logsumexp(torch.log_softmax(logits, dim=-1), dim=0) - math.log(logits.shape[0])
    probs = log_probs.exp()
    return {
        "accuracy": accuracy(probs, y),
        "nll": nll(probs, y, log_probs=log_probs),
        "count": int(y.shape[0]),
        "eval_time_s": time.perf_counter() - started,
    }


def train_then_test(
    method: DropoutMethod,
    x: Tensor,
    y: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    *,
    steps: int,
    batch_size: int,
    samples: int,
    eval_batch_size: int,
    seed: int,
    position: tuple[int, ...],
    overrides: Mapping[str, Mapping[str, Any]] | None,
    device: torch.device | str = "cpu",
) -> tuple[TrainingSummary, dict[str, float]]:
    """`train_for_steps` on (x, y), then `evaluate_predictive` on (x_test, y_test), both seeded by (seed, position):
    the step every downstream protocol repeats for each round, subset or pre-training."""
    summary = train_for_steps(
        method,
        x,
        y,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        position=position,
        overrides=overrides,
        device=device,
    )
    metrics = evaluate_predictive(
        method, x_test, y_test, samples=samples, batch_size=eval_batch_size, seed=seed, position=position, device=device
    )
    return summary, metrics


def weights_digest(state: Mapping[str, Tensor]) -> str:
    """sha256 of a state dict's names, shapes and exact values (to check which weights a training started from)."""
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(tensor.numpy().tobytes() if tensor.dtype != torch.bfloat16 else tensor.float().numpy().tobytes())
    return digest.hexdigest()
