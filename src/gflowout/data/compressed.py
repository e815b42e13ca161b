"""Opening a data file that may be gzip-compressed: the one reader that both the format readers
(gflowout.data.formats) and the restricted unpickler (gflowout.data.restricted_pickle) go through."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from gflowout.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"


@contextmanager
def open_maybe_gzip(path: str | Path) -> Iterator[BinaryIO]:
    """Open `path` for binary reading, through gzip when its first two bytes are the gzip magic."""
    path = Path(path)
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(2) == GZIP_MAGIC
    except FileNotFoundError as error:
        raise DataError(f"{path}: file not found") from error
    except OSError as error:  # permissions, a folder in the file's place
        raise DataError(f"{path}: cannot be read ({error.strerror or error}); check its permissions") from error
    stream: BinaryIO = gzip.open(path, "rb") if compressed else open(path, "rb")  # type: ignore[assignment]  # noqa: SIM115 - closed below
    try:
        yield stream
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as error:  # zlib.error: a corrupt stream
        if isinstance(error, DataError):
            raise
        raise DataError(
            f"{path}: unreadable ({type(error).__name__}: {error}); the file is truncated or corrupt"
        ) from error
    finally:
        stream.close()
