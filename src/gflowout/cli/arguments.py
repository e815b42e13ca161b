"""Argument types and the grid options shared by the sub-commands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


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
        from gflowout.errors import ConfigError

        raise ConfigError(
            f"SLURM array task {task} (min {first}, count {count}) is not one of {count} consecutive tasks; "
            "submit a contiguous --array (e.g. 0-3) or pass --shard I/N"
        )
    return index, count


SHARD_HELP = (
    "run only shard I of N of the grid (every N-th run from run I), so N workers share one --out; default: "
    "from SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT in a SLURM array, else 1/1"
)


def add_grid_arguments(parser: argparse.ArgumentParser, config_help: str, out_prefix: str) -> None:
    """The options every grid sub-command (benchmark, active-learning, transfer) takes: --config, --out, --root,
    --shard, --threads and --no-report; the default --out is `<out_prefix>-<config name>` (see `grid_out_folder`)."""
    parser.add_argument("--config", required=True, help=config_help)
    parser.add_argument("--out", default=None, help=f"output folder (default: {out_prefix}-<config name>)")
    parser.add_argument("--root", default=None, help="data folder (default: GFLOWOUT_DATA or the cache)")
    parser.add_argument("--shard", type=shard_spec, default=None, metavar="I/N", help=SHARD_HELP)
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch threads (default: 1 on a machine with <= 2 cores, else cores - 1)",
    )
    parser.add_argument("--no-report", action="store_true", help="skip the report at the end")


def grid_shard(args: argparse.Namespace) -> tuple[int, int]:
    """The shard this worker runs: --shard, else the SLURM array task's, else (1, 1)."""
    return args.shard or slurm_array_shard(dict(os.environ)) or (1, 1)


def grid_out_path(args: argparse.Namespace, out_prefix: str) -> Path:
    """--out, default `<out_prefix>-<config name>`; nothing is created (`grid_out_folder` creates and checks it)."""
    return Path(args.out) if args.out else Path(f"{out_prefix}-{Path(args.config).stem}")


def grid_out_folder(args: argparse.Namespace, out_prefix: str) -> Path:
    """--out (default `<out_prefix>-<config name>`), checked writable before hours of training rather than after."""
    from gflowout.writable import writable_folder

    return writable_folder(grid_out_path(args, out_prefix), "output folder", "--out")
