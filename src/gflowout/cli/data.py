"""`gflowout data list` and `gflowout data fetch NAME [NAME ...] [--root DIR] [--from FILE]`."""

from __future__ import annotations

import argparse
import time

from gflowout.data.sources import DATASETS, ENV_DATA_ROOT, data_root, dataset_status, fetch
from gflowout.errors import DataError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `data` command and its `list` / `fetch` verbs."""
    parser = subparsers.add_parser(
        "data",
        help="list and fetch the data sets",
        description=f"Data sets live under a root folder: --root, else ${ENV_DATA_ROOT}, else ~/.cache/gflowout.",
    )
    verbs = parser.add_subparsers(dest="data_command", metavar="VERB")
    listing = verbs.add_parser("list", help="known data sets: present or not, where, verified or not")
    listing.add_argument("--root", help="data root folder (default: $GFLOWOUT_DATA or ~/.cache/gflowout)")
    listing.set_defaults(func=run_list)
    getter = verbs.add_parser("fetch", help="fetch data sets, trying each source in order, verifying checksums")
    getter.add_argument("names", nargs="+", metavar="NAME", choices=sorted(DATASETS), help=", ".join(DATASETS))
    getter.add_argument("--root", help="data root folder (default: $GFLOWOUT_DATA or ~/.cache/gflowout)")
    getter.add_argument(
        "--from",
        dest="from_path",
        metavar="FILE",
        help="take the files from an archive, folder or file you already have (one NAME only)",
    )
    getter.set_defaults(func=run_fetch)
    parser.set_defaults(func=lambda args: parser.print_help() or 1)


def run_list(args: argparse.Namespace) -> int:
    """Print one line per known set: state, files present, folder; problems on a second line."""
    root = data_root(args.root)
    print(f"data root: {root}")
    print(f"{'name':<14} {'state':<10} {'files':>7}  folder / description")
    for name, spec in DATASETS.items():
        status = dataset_status(name, args.root)
        if status.verified:
            state = "verified"
        elif status.problem:
            state = "FAILED"
        elif status.present:
            state = "partial"
        else:
            state = "absent"
        where = str(status.folder) if status.present else spec.description
        print(f"{name:<14} {state:<10} {status.present:>3}/{status.total:<3}  {where}")
        if status.problem:
            print(f"{'':<14} {status.problem}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    """Fetch each named set; report time and result per set. Exit status 2 if any set could not be fetched."""
    if args.from_path is not None and len(args.names) != 1:
        raise DataError(f"--from takes files for one data set; got {len(args.names)} names ({', '.join(args.names)})")
    from gflowout.writable import writable_folder

    writable_folder(data_root(args.root), "data folder", f"--root (or ${ENV_DATA_ROOT})")
    failed = []
    for name in args.names:
        start = time.perf_counter()
        try:
            folder = fetch(name, args.root, from_path=args.from_path)
        except DataError as error:
            print(f"{name}: FAILED: {error}")
            failed.append(name)
            continue
        if folder.name != name:
            print(
                f"{name}: NOT fetched; only the fallback {folder.name!r} ({DATASETS[folder.name].description}) "
                f"is present, in {folder} ({time.perf_counter() - start:.1f} s)"
            )
        else:
            status = dataset_status(name, args.root)
            if status.verified:
                print(f"{name}: ok, verified ({time.perf_counter() - start:.1f} s) in {folder}")
            else:
                print(
                    f"{name}: PARTIAL: {status.present} of {status.total} file(s) present in {folder}; "
                    f"add the rest with `gflowout data fetch {name} --from FILE`"
                )
    if failed:
        raise DataError(f"could not fetch {', '.join(failed)} (see the messages above)")
    return 0
