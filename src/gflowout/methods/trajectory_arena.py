"""Reusable memory for `trajectory_policy`: the big per-trajectory arrays, lent to one trajectory at a time.

A trajectory leases this thread's last arena when it is free and has the right shapes; the lease ends
when the trajectory (and so its autograd graph) is dropped (`weakref.finalize` in `trajectory_policy`).
"""

from __future__ import annotations

import math
import threading

import torch

from gflowout.methods.mask_sampling import persistent_empty


class Arena:
    """The trajectory's multi-megabyte arrays, per group g of equal-width sites: logits [2, n_g, batch, width_g],
    masks [n_g, batch, width_g] (copies of the drawn masks) and two scratch arrays of the logits' shape.

    Why: a fresh multi-megabyte tensor is page-faulted in at its first write, which can cost more
    than the arithmetic done in it (`benchmarks/README.md`), so the arena of a released trajectory is
    reused by the next one of the same thread and shapes once it has been dropped (a training step drops it
    with its losses). None of these arrays leaves the trajectory (the backbone gets its own mask tensors).
    """

    def __init__(self, shapes: tuple[tuple[int, int, int], ...], dtype: torch.dtype, device: torch.device) -> None:
        # normal tensors even under inference mode: an arena made there is reused by later training steps
        self.logits = [persistent_empty((2, *shape), dtype, device) for shape in shapes]
        self.masks = [persistent_empty(shape, dtype, device) for shape in shapes]
        self.scratch = [
            (persistent_empty(x.shape, dtype, device), persistent_empty(x.shape, dtype, device)) for x in self.logits
        ]
        self.lease: object | None = None  # the token of the trajectory that holds it

    def release(self, lease: object) -> None:
        """Free the arena if `lease` still holds it.

        A trajectory dropped after its backward must not free a successor's.
        """
        if self.lease is lease:
            self.lease = None


_ARENAS = threading.local()  # per thread: (key, arena) of the last CPU arena made
ARENA_LIMIT = 1 << 24  # elements (64 MB in float32; an MLP step at batch 128 needs 2.8 M); larger arenas are not kept


def lease_arena(
    shapes: tuple[tuple[int, int, int], ...], dtype: torch.dtype, device: torch.device, lease: object
) -> Arena:
    """This thread's last arena if it has these shapes and is free, else a new one.

    The arena is held by `lease` until `release(lease)`.

    Only CPU arenas up to `ARENA_LIMIT` elements are kept (other devices have caching allocators; a
    one-off scoring of a huge batch should not pin its memory), and only the last one made, so the
    memory kept is one trajectory's whatever the shapes seen (the last, smaller batch of an epoch).
    """
    key = (shapes, dtype, device)
    cached = getattr(_ARENAS, "last", None)
    if cached is not None and cached[0] == key and cached[1].lease is None:
        arena = cached[1]
    else:
        arena = Arena(shapes, dtype, device)
        if device.type == "cpu" and 7 * sum(math.prod(shape) for shape in shapes) <= ARENA_LIMIT:  # 7 arrays of n*b*w
            _ARENAS.last = (key, arena)
    arena.lease = lease
    return arena
