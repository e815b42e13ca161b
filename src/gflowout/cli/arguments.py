"""Argument types shared by the sub-commands."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An int >= 1, or argparse's usage error (status 2) saying what was given."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def shard_spec(text: str) -> tuple[int, int]:
    """'I/N' with 1 <= I <= N, or argparse's usage error."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 1/2, got {text!r}") from None
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(f"expected I/N with 1 <= I <= N, got {text!r}")
    return index, count


def slurm_array_shard(environ: dict[str, str]) -> tuple[int, int] | None:
    """The shard of a SLURM array task: (task id - min task id + 1, task count), or None outside an array."""
    if "SLURM_ARRAY_TASK_ID" not in environ or "SLURM_ARRAY_TASK_COUNT" not in environ:
        return None
    try:
        task, count = int(environ["SLURM_ARRAY_TASK_ID"]), int(environ["SLURM_ARRAY_TASK_COUNT"])
        first = int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    except ValueError:
        return None
    index = task - first + 1
    if not 1 <= index <= count:
        raise argparse.ArgumentTypeError(
            f"SLURM array task {task} (min {first}, count {count}) is not one of {count} consecutive tasks; "
            "submit a contiguous --array (e.g. 0-3) or pass --shard I/N"
        )
    return index, count
