"""Tiny CIFAR-10, CIFAR-10-C and SVHN files in exactly the published on-disk formats, installed under a
data root through the supported routes: `gflowout data fetch NAME --from FILE` for the archives (with the
table's pinned checksums replaced by the fixture's own, as tests/data does) and pinned digests for SVHN."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from gflowout.data import sources
from tests.helpers.data import cifar_batch_bytes, with_digests


def write_tar(path: Path, members: dict[str, bytes], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def install_cifar10(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    train: list[tuple[np.ndarray, np.ndarray]],
    test: tuple[np.ndarray, np.ndarray],
) -> Path:
    """cifar-10-python.tar.gz (5 training batches + test_batch, python pickles as the authors wrote them),
    fetched with --from after pinning its members' md5s in the table. train: 5 (images, labels) batches."""
    members = {f"cifar-10-batches-py/data_batch_{i + 1}": cifar_batch_bytes(*batch) for i, batch in enumerate(train)}
    members["cifar-10-batches-py/test_batch"] = cifar_batch_bytes(*test)
    members["cifar-10-batches-py/batches.meta"] = b"\x80\x02}q\x00."  # pickle protocol 2 of {}: never read
    archive = write_tar(root.parent / "cifar-10-python.tar.gz", members, "w:gz")
    md5s = {name: hashlib.md5(data).hexdigest() for name, data in members.items()}
    spec = sources.DATASETS["cifar10"]
    files = tuple(dataclasses.replace(f, digest=md5s[f.path]) for f in spec.files)
    monkeypatch.setitem(sources.DATASETS, "cifar10", dataclasses.replace(spec, files=files))
    return archive


def install_cifar10_c(
    root: Path, monkeypatch: pytest.MonkeyPatch, corruptions: dict[str, np.ndarray], labels: np.ndarray
) -> Path:
    """CIFAR-10-C.tar (CIFAR-10-C/<corruption>.npy uint8 [5*M, 32, 32, 3] + labels.npy) with the table's
    archive md5 replaced by this archive's, so `gflowout data fetch cifar10-c --from` vouches for it."""
    members = {f"CIFAR-10-C/{name}.npy": npy_bytes(array) for name, array in corruptions.items()}
    members["CIFAR-10-C/labels.npy"] = npy_bytes(labels)
    archive = write_tar(root.parent / "CIFAR-10-C.tar", members)
    spec = sources.DATASETS["cifar10-c"]
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(sources.DATASETS, "cifar10-c", dataclasses.replace(spec, archive=(archive.name, "md5", md5)))
    return archive


def install_svhn_test(root: Path, monkeypatch: pytest.MonkeyPatch, images: np.ndarray, digits: np.ndarray) -> None:
    """test_32x32.mat as published (X [32, 32, 3, N], y [N, 1] with 10 for the digit 0), digest pinned."""
    path = root / "svhn" / "test_32x32.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"X": images.transpose(1, 2, 3, 0), "y": np.where(digits == 0, 10, digits)[:, None]})
    with_digests("svhn", root, monkeypatch)


def constant_images(brightness: np.ndarray) -> np.ndarray:
    """uint8 [N, 32, 32, 3] images of one grey level per image (brightness in [0, 1])."""
    values = np.round(np.clip(brightness, 0, 1) * 255).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(values[:, None, None, None], (len(values), 32, 32, 3)))
