"""Data loading that can resume in the middle of an epoch, bit for bit, and shard across DDP ranks.

The training order of epoch e is a pure function of (seed, epoch): a permutation drawn from a
private generator, never from the global RNG. A `ResumableLoader` counts the batches it has handed
out; Lightning saves that count in every checkpoint (the loader is "stateful") and, on resume, the
loader skips the indices already done, so the remaining batches are exactly those an uninterrupted
run would have seen (exactly so with num_workers = 0, where each batch's augmentation draws come
from torch's RNG seeded by (seed, epoch, batch, rank) in a fork; with workers, their seeds are a
function of (seed, epoch), so resuming at an epoch boundary is exact and mid-epoch augmentations may
differ). Each DDP rank takes every world_size-th index of the (padded) permutation, as
torch's DistributedSampler does, so the union of the ranks' j-th batches is the j-th global batch
of a one-process run with world_size times the batch size, exactly when the training set divides by
world_size (otherwise the padding repeats the first indices in the last global batch).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from gflowout.rng import BATCH_AUGMENTATION, seed_stream


def epoch_permutation(num_samples: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of epoch `epoch`: a deterministic function of (seed, epoch)."""
    generator = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63))
    return torch.randperm(num_samples, generator=generator)


class EpochSampler(Sampler[int]):
    """Shuffled (or ordered) indices of one rank's shard, a function of (seed, epoch); can skip done indices."""

    def __init__(self, num_samples: int, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1) -> None:
        if num_samples < 1:
            raise ValueError(f"EpochSampler needs at least one sample, got {num_samples}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside [0, {world_size})")
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's order; a pending skip for another epoch is dropped."""
        if epoch != self.epoch:
            self._skip = 0
        self.epoch = int(epoch)

    def skip_next(self, count: int) -> None:
        """Skip the first `count` indices of the next pass (batches done before an interruption)."""
        self._skip = int(count)

    def __len__(self) -> int:
        return -(-self.num_samples // self.world_size)  # noqa: PLE0303 - a ceil, never negative; short shards are padded

    def __iter__(self) -> Iterator[int]:
        order = (
            epoch_permutation(self.num_samples, self.seed, self.epoch)
            if self.shuffle
            else torch.arange(self.num_samples)
        )
        padded_length = len(self) * self.world_size
        if padded_length > self.num_samples:  # repeat the first indices so every rank has the same count
            order = torch.cat([order, order[: padded_length - self.num_samples]])
        shard = order[self.rank :: self.world_size].tolist()
        skip, self._skip = self._skip, 0
        yield from shard[skip:]


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world_size, ... in order, without padding: every example is evaluated exactly once."""

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, num_samples, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


class ResumableLoader:
    """A training DataLoader whose position within the epoch is saved in and restored from checkpoints.

    `len()` is the full epoch's number of batches (what Lightning expects after a restore); iteration
    after `load_state_dict` yields only the batches not done yet.
    """

    def __init__(self, loader: DataLoader) -> None:
        if not isinstance(loader.sampler, EpochSampler):
            raise TypeError("ResumableLoader needs a DataLoader built on an EpochSampler")
        self.loader = loader
        self.sampler: EpochSampler = loader.sampler
        self.batch_size = int(loader.batch_size)  # type: ignore[arg-type]  # not None here: set before use
        self._done = 0
        self._resume_done = 0

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        if self.loader.generator is not None:
            # Worker seeds (augmentation draws in DataLoader workers) as a function of (seed, epoch) too.
            self.loader.generator.manual_seed((self.sampler.seed * 1_000_003 + self.sampler.epoch + 7) % (2**63))
        self._done = self._resume_done
        if self._resume_done:
            self.sampler.skip_next(self._resume_done * self.batch_size)
        self._resume_done = 0
        batches = iter(self.loader)
        while True:
            try:
                batch = self._next_batch(batches)
            except StopIteration:
                return
            self._done += 1
            yield batch

    def _next_batch(self, batches: Iterator[Any]) -> Any:
        """The next batch; without workers, its collate (augmentation) draws from torch's global RNG seeded
        by (seed, epoch, batch, rank) inside a fork, so they are the same after any resume, on every DDP
        rank (whose RNG state a checkpoint does not hold), and the mask stream is left untouched."""
        if self.loader.num_workers:
            return next(batches)
        with torch.random.fork_rng(devices=[]):
            sampler = self.sampler
            seed_stream(sampler.seed, BATCH_AUGMENTATION, sampler.epoch, self._done, sampler.rank)
            return next(batches)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches_done": self._done}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.set_epoch(int(state["epoch"]))
        done = int(state["batches_done"])
        self._resume_done = done if done < len(self) else 0


def rebuild_loader(template: DataLoader, sampler: Sampler[int], seed: int) -> DataLoader:
    """A copy of `template` (dataset, batch size, collate, workers) drawing indices from `sampler`.

    The loader gets its own generator, so creating its iterator never consumes the global RNG
    (which would shift the masks sampled after a resume).
    """
    num_workers = template.num_workers
    return DataLoader(
        template.dataset,
        batch_size=template.batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=template.collate_fn,
        pin_memory=template.pin_memory,
        drop_last=template.drop_last,
        worker_init_fn=template.worker_init_fn,
        persistent_workers=bool(num_workers and template.persistent_workers),
        generator=torch.Generator().manual_seed(int(seed)),
    )
