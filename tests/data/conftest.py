"""Shared fixtures of the data tests (the writers live in tests/helpers/data.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.data import grey_images, with_digests, write_idx


@pytest.fixture
def mnist_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data root with a small MNIST-layout set (100 train + 30 test), registered with its checksums."""
    folder = tmp_path / "mnist"
    for split, count, seed in (("train", 100, 1), ("t10k", 30, 2)):
        images, labels = grey_images(count, seed)
        write_idx(folder / f"{split}-images-idx3-ubyte", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels)
    with_digests("mnist", tmp_path, monkeypatch)
    return tmp_path
