"""Entry point of the `gflowout` command: one sub-command module per verb (data, train, evaluate, ...)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from gflowout import __version__
from gflowout.errors import GFlowOutError

# Each module defines register(subparsers) that adds its sub-command(s) with set_defaults(func=...).
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "gflowout.cli.data",
    "gflowout.cli.train",
    "gflowout.cli.evaluate",
    "gflowout.cli.posthoc",
    "gflowout.cli.benchmark",
    "gflowout.cli.report",
    "gflowout.cli.demo",
    "gflowout.cli.active_learning",
    "gflowout.cli.transfer",
    "gflowout.cli.cohort",
    "gflowout.cli.masks",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="gflowout",
        description="GFlowOut and baselines: fetch data, train, evaluate, benchmark, report.",
    )
    parser.add_argument("--version", action="version", version=f"gflowout {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; errors of this package print one clear line and exit with status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except GFlowOutError as error:
        print(f"gflowout {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        sys.stderr.close()
        return 141
    except OSError as error:  # the last resort: one line naming the path, never a traceback
        where = f"{error.filename}: " if getattr(error, "filename", None) else ""
        print(
            f"gflowout {args.command}: error: {where}{error.strerror or error}; check that the path exists and is "
            "writable (choose another --out / --root), then rerun",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"gflowout {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
