"""Seeding torch's global RNG from a run's seed and a position, so that what a run draws there does not
depend on anything else it drew before (which is what lets a resumed run, or any DDP rank, draw the same).

Stream ids, one per use: 1 validation masks, 2 test masks, 3 training masks under DDP, 4 training-batch
augmentation, 5 mask diagnostics.
"""

from __future__ import annotations

import contextlib

import torch

VALIDATION, TEST, DDP_TRAINING_MASKS, BATCH_AUGMENTATION, DIAGNOSTICS = 1, 2, 3, 4, 5


def seed_stream(seed: int, stream: int, *position: int) -> None:
    """torch.manual_seed of a 62-bit value derived from (seed, stream, *position) (the same in every process:
    Python's hash of a tuple of ints is not randomised)."""
    torch.manual_seed(hash((seed, stream, *position)) % (2**62))


def private_rng(device: torch.device) -> contextlib.AbstractContextManager:
    """A forked torch RNG state for code that seeds its own draws on `device`: the caller's stream is restored
    afterwards, on the CPU and, for a CUDA device, on every visible GPU (torch.manual_seed reseeds them all)."""
    return torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if device.type == "cuda" else [])
