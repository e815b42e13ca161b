"""Verifying a data set's files and the fetch that puts them under the data root.

The catalogue (the sets, their files, checksums and sources) is gflowout.data.catalog; its names are
re-exported here. The CIFAR-C sets publish only an archive checksum, so their files are vouched for at fetch
time (archive verified, then a manifest of the extracted files' sha256 written next to them).

`fetch` tries the sources in order. Each writes into a staging folder under the data root; the
files are verified there and only then renamed to their final names, and the staging folder is
removed whatever happens (error, Ctrl-C), so a failed fetch leaves nothing under a final name.
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gflowout.data import fetchers
from gflowout.data.catalog import (  # noqa: F401  (re-exported: the catalogue is read through this module)
    CORRUPTIONS,
    DATASETS,
    ENV_DATA_ROOT,
    FASHION_MIRRORS,
    MNIST_MIRRORS,
    DatasetSpec,
    FileSpec,
    data_root,
    get_spec,
)
from gflowout.data.fetchers import Source, SourceUnavailable
from gflowout.data.integrity import (
    MANIFEST_FILE,
    current_digest,
    file_digest,
    read_json,
    record_stamp,
    write_json_atomic,
)
from gflowout.errors import DataError


# ---- verification -------------------------------------------------------------------------------
def expected_digest(spec: DatasetSpec, file: FileSpec, folder: Path) -> tuple[str, str] | None:
    """(algorithm, digest) a file must have: pinned in the table, or from the manifest written at fetch time."""
    if file.digest is not None:
        return file.algorithm, file.digest
    entry = read_json(folder / MANIFEST_FILE).get(file.path)
    return (entry[0], entry[1]) if isinstance(entry, list) and len(entry) == 2 else None


def verify_files(name: str, root: str | Path | None = None, paths: list[str] | None = None) -> Path:
    """Check the set's files (or only `paths`) against their checksums; return the set's folder.

    Raises DataError naming the missing file and the fetch command, or the file whose checksum
    differs (expected vs found) and how to fetch it again. Uses the stamp cache (see integrity.py).
    """
    spec = get_spec(name)
    folder = spec.folder(root)
    files = [f for f in spec.files if paths is None or f.path in paths]
    root_option = f" --root {data_root(root)}" if root is not None else ""
    for file in files:
        path = folder / file.path
        if not path.is_file():
            raise DataError(
                f"data set {name!r} is not present: {path} is missing. "
                f"Fetch it with `{spec.fetch_command}{root_option}`"
                + (
                    f" (or `{spec.fetch_command} --from {spec.archive[0]}` if you have the archive)"
                    if spec.archive
                    else ""
                )
            )
        expected = expected_digest(spec, file, folder)
        if expected is None:
            raise DataError(
                f"{path}: no checksum to verify it against ({folder / MANIFEST_FILE} has no entry): files of {name!r} "
                f"are verified through the published archive. Run `{spec.fetch_command}{root_option}`"
                + (f" or `{spec.fetch_command} --from {spec.archive[0]}`" if spec.archive else "")
            )
        try:
            found = current_digest(folder, file.path, expected[0])
        except OSError as error:  # permissions; is_file() above already saw the file
            raise DataError(f"{path}: cannot be read ({error.strerror or error}); check its permissions") from error
        if found != expected[1]:
            raise DataError(
                f"{path}: checksum mismatch: {expected[0]} expected {expected[1]}, found {found}. The file is corrupt "
                "or not the published one; refusing to use it. "
                f"Delete it and fetch again with `{spec.fetch_command}{root_option}`"
            )
    return folder


@dataclass
class DatasetStatus:
    """What `gflowout data list` shows for one set."""

    name: str
    folder: Path
    present: int
    total: int
    verified: bool
    problem: str = ""


def dataset_status(name: str, root: str | Path | None = None) -> DatasetStatus:
    """How many of the set's files are present, and whether they all verify."""
    spec = get_spec(name)
    folder = spec.folder(root)
    try:
        present = sum((folder / f.path).is_file() for f in spec.files)
    except OSError as error:  # an unreadable set folder: report it, do not stop `data list`
        return DatasetStatus(
            name,
            folder,
            0,
            len(spec.files),
            verified=False,
            problem=f"{folder}: cannot be read ({error.strerror or error}); check its permissions",
        )
    status = DatasetStatus(name, folder, present, len(spec.files), verified=False)
    if present:
        try:
            verify_files(name, root, [f.path for f in spec.files if (folder / f.path).is_file()])
            status.verified = present == len(spec.files)
        except DataError as error:
            status.problem = str(error)
    return status


# ---- fetch --------------------------------------------------------------------------------------
def _install(
    spec: DatasetSpec, staging: Path, folder: Path, vouched: dict[str, tuple[str, str]] | None, partial_ok: bool
) -> list[str]:
    """Verify the staged files, then rename them to their final names. Returns the installed paths."""
    staged = [f for f in spec.files if (staging / f.path).is_file()]
    missing = [f.path for f in spec.files if f not in staged]
    if not staged or (missing and not partial_ok):
        raise SourceUnavailable(
            f"delivered {len(staged)} of {len(spec.files)} files (missing: {', '.join(missing[:4])})"
        )
    manifest = read_json(folder / MANIFEST_FILE)
    for file in staged:
        expected = (file.algorithm, file.digest) if file.digest is not None else (vouched or {}).get(file.path)
        if expected is None:
            raise SourceUnavailable(
                f"{file.path} has no published checksum; "
                f"give the published archive {spec.archive[0] if spec.archive else ''}"
            )
        found = file_digest(staging / file.path, expected[0])
        if found != expected[1]:
            raise SourceUnavailable(f"{file.path}: {expected[0]} expected {expected[1]}, found {found}")
        if file.digest is None:
            manifest[file.path] = list(expected)
    if any(f.digest is None for f in staged):
        write_json_atomic(folder / MANIFEST_FILE, manifest)
    for file in staged:
        target = folder / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / file.path, target)
        status = target.stat()
        stamp_algorithm, stamp_digest = (file.algorithm, file.digest) if file.digest else tuple(manifest[file.path])
        record_stamp(folder, file.path, stamp_algorithm, stamp_digest, status.st_size, status.st_mtime_ns)
    return [f.path for f in staged]


Log = Callable[[str], None]

# what a source's bad download can raise: corrupt gzip streams raise zlib.error, which is not an OSError
SOURCE_FAILURES = (SourceUnavailable, DataError, OSError, EOFError, zlib.error, tarfile.TarError, zipfile.BadZipFile)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


STALE_STAGING_SECONDS = 3600  # a fetch's staging folder untouched this long belongs to a killed fetch


def _remove_stale_staging(folder: Path) -> None:
    """Delete the `.fetch-*` staging folders a killed fetch left (an hour old: a running fetch's are newer)."""
    if not folder.is_dir():
        return
    now = time.time()
    for staging in folder.glob(".fetch-*"):
        try:
            if staging.is_dir() and now - staging.stat().st_mtime > STALE_STAGING_SECONDS:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError:
            pass


def fetch(name: str, root: str | Path | None = None, from_path: str | Path | None = None, log: Log = _stderr) -> Path:
    """Make data set `name` present and verified under the data root; returns its folder.

    A set already present and verified is a fast no-op. Otherwise the sources are tried in order
    (or only `--from` `from_path`); the first whose files verify is installed. When all fail, a set
    with a fallback fetches that instead with a loud warning; otherwise DataError lists every failure.
    """
    spec = get_spec(name)
    folder = spec.folder(root)
    if from_path is None and dataset_status(name, root).verified:
        log(f"{name}: already present and verified in {folder}")
        return folder
    if from_path is not None:
        path = Path(from_path).expanduser()
        archive_checksum = (spec.archive[1], spec.archive[2]) if spec.archive else None
        chain: tuple[Source, ...] = (Source(f"--from {path}", fetchers.local_files(path, archive_checksum)),)
    else:
        chain = spec.sources
    failures = []
    _remove_stale_staging(folder)
    for source in chain:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=".fetch-"))
        try:
            log(f"{name}: trying {source.label} ...")
            vouched = source.fetch(staging, [f.path for f in spec.files])
            installed = _install(spec, staging, folder, vouched, partial_ok=from_path is not None)
        except SOURCE_FAILURES as error:  # one bad source lets the chain go on; every failure is listed if all fail
            reason = (
                error
                if isinstance(error, (SourceUnavailable, DataError, OSError))
                else f"{type(error).__name__}: {error}"
            )
            failures.append(f"{source.label}: {reason}")
            log(f"{name}: {source.label} failed: {reason}")
            continue
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        missing = len(spec.files) - len(installed)
        log(
            f"{name}: {len(installed)} file(s) verified and installed in {folder} from {source.label}"
            + (f"; {missing} file(s) still missing" if missing else "")
        )
        return folder
    try:
        folder.rmdir()  # only if empty: a failed fetch leaves no trace of a new set
    except OSError:
        pass
    if spec.fallback and from_path is None:
        banner = (
            f"WARNING: could not fetch the full {name!r} ({len(failures)} source(s) failed). Falling back to "
            f"{spec.fallback!r}: {get_spec(spec.fallback).description}. This is NOT the full data set; "
            f"`load_split({name!r}, ...)` will keep failing until `{spec.fetch_command}` succeeds."
        )
        log("!" * 100 + "\n" + banner + "\n" + "!" * 100)
        warnings.warn(banner, stacklevel=2)
        return fetch(spec.fallback, root, log=log)
    hint = ""
    if spec.archive and from_path is None:
        hint = f"\nIf you have {spec.archive[0]} already, run `{spec.fetch_command} --from /path/to/{spec.archive[0]}`."
    raise DataError(f"could not fetch {name!r}; every source failed:\n  " + "\n  ".join(failures) + hint)
