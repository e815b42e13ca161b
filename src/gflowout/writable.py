"""Check, before any work starts, that the folders and files a command will write can be written.

A command that trains for an hour and then fails to write its results has lost the hour; one that fails
with a raw OSError traceback has not said what to do. `writable_folder` and `writable_file` create what is
missing and prove the folder takes a file (a probe written and removed), or raise `OutputError` with one
line naming the path, the reason and the fix.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from gflowout.errors import OutputError


def _reason(error: OSError) -> str:
    if error.errno == errno.EROFS:
        return "the file system is read-only"
    if error.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a folder"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if error.errno == errno.ENOSPC:
        return "no space left on the device"
    return error.strerror or str(error)


def writable_folder(path: str | os.PathLike[str], what: str, option: str) -> Path:
    """Create folder `path` if needed and prove it takes a file; `what` names it ("run folder") and `option` the
    command-line option that chose it ("--out"), for the message. Returns the path."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{what} {str(folder)!r} is a file, not a folder; choose another {option}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(
            f"cannot write the {what} {str(folder)!r}: {_reason(error)}; choose a writable {option} "
            "(or fix the folder's permissions or mount)"
        ) from None
    return folder


def writable_file(path: str | os.PathLike[str], what: str, option: str) -> Path:
    """Prove file `path` can be written (its folder created and probed; the path itself not a folder)."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{what} {str(target)!r} is a folder; give {option} a file name")
    writable_folder(target.parent if str(target.parent) else Path("."), f"folder of the {what}", option)
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputError(f"cannot write the {what} {str(target)!r}: permission denied; choose another {option}")
    return target
