"""Checksums, verification stamps and atomic writes for data files.

Hashing 60000 MNIST images (47 MB) on every load would cost a noticeable fraction of a second per
run, so a verified file gets a stamp (size, mtime, algorithm, digest) in its set's folder. A file
whose size and mtime still match its stamp, and whose stamped digest is the expected one, counts as
verified without re-hashing; any change of size or mtime re-hashes it. A corrupt file is therefore
caught unless it was altered in place without changing its size and mtime.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gflowout.atomic import atomic_write_json

STAMP_FILE = ".verified.json"
MANIFEST_FILE = ".manifest.json"
_CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes ("sha256" or "md5")."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write a stamp or manifest as JSON atomically (gflowout.atomic: never half-written)."""
    atomic_write_json(path, payload, indent=1, trailing_newline=False)


def read_json(path: Path) -> dict:
    """A JSON object from `path`, or {} when it is missing or unreadable (stamps are only a cache)."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _stat_key(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def stamped_digest(folder: Path, relative: str, algorithm: str) -> str | None:
    """The digest stamped for `folder/relative` if its size and mtime still match the stamp, else None."""
    entry = read_json(folder / STAMP_FILE).get(relative)
    if not isinstance(entry, dict) or entry.get("algorithm") != algorithm:
        return None
    try:
        size, mtime_ns = _stat_key(folder / relative)
    except OSError:
        return None
    if entry.get("size") == size and entry.get("mtime_ns") == mtime_ns:
        return entry.get("digest")
    return None


def current_digest(folder: Path, relative: str, algorithm: str) -> str:
    """The file's digest: from its stamp when size and mtime are unchanged, else hashed and re-stamped."""
    cached = stamped_digest(folder, relative, algorithm)
    if cached is not None:
        return cached
    path = folder / relative
    size, mtime_ns = _stat_key(path)
    digest = file_digest(path, algorithm)
    record_stamp(folder, relative, algorithm, digest, size, mtime_ns)
    return digest


def record_stamp(folder: Path, relative: str, algorithm: str, digest: str, size: int, mtime_ns: int) -> None:
    """Add one file's stamp to the folder's stamp file (read-modify-write, renamed into place)."""
    stamps = read_json(folder / STAMP_FILE)
    stamps[relative] = {"algorithm": algorithm, "digest": digest, "size": size, "mtime_ns": mtime_ns}
    try:
        write_json_atomic(folder / STAMP_FILE, stamps)
    except OSError:
        pass  # a read-only data folder still verifies, it just re-hashes next time
