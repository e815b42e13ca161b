"""Helpers that write small data files in exactly the published formats, with their own writers
(struct / pickle / scipy.io / numpy), independent of the readers under test."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from gflowout.data import sources

IDX_CODES = {
    np.dtype("u1"): 0x08,
    np.dtype("i1"): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
    np.dtype(">f8"): 0x0E,
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of `array` (big-endian), as in http://yann.lecun.com/exdb/mnist/."""
    big = array.astype(array.dtype.newbyteorder(">")) if array.dtype.itemsize > 1 else array
    code = IDX_CODES[np.dtype(big.dtype.str.replace("<", ">"))]
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + big.tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    data = idx_bytes(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def digest(path: Path, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


def grey_images(count: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, size, size), dtype=np.uint8), rng.integers(0, 10, count).astype(np.uint8)


def colour_images(count: int, seed: int, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), rng.integers(0, classes, count)


def cifar_batch_bytes(images: np.ndarray, labels: np.ndarray, label_key: bytes = b"labels") -> bytes:
    """A CIFAR python batch as the authors wrote it: dict with bytes keys, data [N, 3072] as R, G, B planes."""
    planes = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # independent of the reader's reshape
    batch = {
        b"batch_label": b"testing batch",
        b"data": planes,
        label_key: [int(v) for v in labels],
        b"filenames": [b"x.png"] * len(images),
    }
    return pickle.dumps(batch, protocol=2)


def make_cifar10_archive(
    path: Path, per_batch: int = 6, test_count: int = 5
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A cifar-10-python.tar.gz laid out like the real one (cifar-10-batches-py/...). Returns the arrays."""
    arrays, members = {}, {}
    for index in range(1, 6):
        arrays[f"data_batch_{index}"] = colour_images(per_batch, seed=index)
    arrays["test_batch"] = colour_images(test_count, seed=99)
    for name, (images, labels) in arrays.items():
        members[f"cifar-10-batches-py/{name}"] = cifar_batch_bytes(images, labels)
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2)
    members["cifar-10-batches-py/readme.html"] = b"<html></html>"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return arrays


def with_digests(name: str, root: Path, monkeypatch: pytest.MonkeyPatch, **changes) -> sources.DatasetSpec:
    """Replace the table entry of `name` by one whose checksums are those of the fixture files under root."""
    spec = sources.DATASETS[name]
    folder = root / name
    files = tuple(sources.FileSpec(f.path, digest(folder / f.path)) for f in spec.files if (folder / f.path).is_file())
    patched = dataclasses.replace(spec, files=files, **changes)
    monkeypatch.setitem(sources.DATASETS, name, patched)
    return patched
